//! Authorization: none, a bearer token, or SMART Backend Services (a token
//! bought with a signed JWT assertion, renewed before expiry and once on a
//! 401). Tokens never appear in errors, logs or `Debug` output.

use std::time::{Duration, Instant};

use reqwest::header::ACCEPT;
use serde_json::Value;

use super::retry::{retry_after, retryable};
use super::{ClientError, FhirClient};

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed bearer token.
    Bearer(String),
    /// SMART Backend Services: tokens from a signed JWT assertion (see [`Smart`]).
    Smart(Smart),
}

/// SMART Backend Services settings: the token endpoint is discovered from
/// `{base}/.well-known/smart-configuration`; each assertion is signed with
/// RS384 or ES384, lives 4 minutes and has a fresh `jti`. A new token is asked
/// for before expiry and once on a 401 (concurrent 401s share one refresh).
/// The token endpoint is retried on 429, 5xx and connection errors like any request.
#[derive(Clone)]
pub struct Smart {
    /// The registered client id (`iss` and `sub` of the assertion).
    pub client_id: String,
    /// The signing key (PEM: RSA for RS384, EC P-384 for ES384).
    pub key: jsonwebtoken::EncodingKey,
    /// `RS384` or `ES384`.
    pub alg: jsonwebtoken::Algorithm,
    /// The key id sent in the JWT header, when the server needs it.
    pub kid: Option<String>,
    /// Scopes asked for, e.g. `system/*.rs` (v2) or `system/*.read` (v1).
    pub scope: String,
}

impl Smart {
    /// Settings from a PEM private key file; the algorithm follows the key (RSA → RS384, EC → ES384).
    pub fn from_pem(client_id: &str, pem: &[u8], kid: Option<String>, scope: &str) -> Result<Self, ClientError> {
        let bad = |e: jsonwebtoken::errors::Error| ClientError::Config(format!("the SMART key is not usable: {e}"));
        let (key, alg) = match jsonwebtoken::EncodingKey::from_ec_pem(pem) {
            Ok(k) => (k, jsonwebtoken::Algorithm::ES384),
            Err(_) => (
                jsonwebtoken::EncodingKey::from_rsa_pem(pem).map_err(bad)?,
                jsonwebtoken::Algorithm::RS384,
            ),
        };
        Ok(Smart {
            client_id: client_id.to_string(),
            key,
            alg,
            kid,
            scope: scope.to_string(),
        })
    }
}

impl Smart {
    /// A fresh ES384 (P-384) key pair: the settings that sign with it, and the
    /// public JWK Set (`{"keys": [...]}`) to register with the server under `kid`.
    pub fn generate_es384(client_id: &str, kid: &str, scope: &str) -> Result<(Self, Value), ClientError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        use p384::pkcs8::EncodePrivateKey;
        let mut bytes = [0u8; 48];
        let secret = loop {
            getrandom::getrandom(&mut bytes).map_err(|e| ClientError::Config(format!("no randomness: {e}")))?;
            if let Ok(k) = p384::SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| ClientError::Config(format!("cannot encode the key: {e}")))?;
        let point = secret.public_key().to_encoded_point(false);
        let coord = |c: Option<&p384::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384", "use": "sig",
            "x": coord(point.x()), "y": coord(point.y())}]});
        let smart = Smart {
            client_id: client_id.to_string(),
            key: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            alg: jsonwebtoken::Algorithm::ES384,
            kid: Some(kid.to_string()),
            scope: scope.to_string(),
        };
        Ok((smart, jwks))
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Smart(s) => write!(f, "Smart({:?}, {:?})", s.alg, s.scope),
        }
    }
}

impl Auth {
    /// A bearer token read from the environment variable `var`.
    pub fn bearer_from_env(var: &str) -> Result<Self, ClientError> {
        match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(Auth::Bearer(t.trim().to_string())),
            _ => Err(ClientError::Config(format!(
                "environment variable {var} is unset or empty (it should hold the bearer token)"
            ))),
        }
    }
}

impl FhirClient {
    /// The bearer token to send, fetching a SMART token when none is fresh.
    pub(super) async fn token(&self, what: &str) -> Result<Option<String>, ClientError> {
        let smart = match &self.inner.auth {
            Auth::None => return Ok(None),
            Auth::Bearer(t) => return Ok(Some(t.clone())),
            Auth::Smart(s) => s,
        };
        let mut held = self.inner.token.lock().await;
        if let Some((t, until)) = held.as_ref() {
            if Instant::now() < *until {
                return Ok(Some(t.clone()));
            }
        }
        let (token, lifetime) = self.fetch_token(smart, what).await?;
        let margin = Duration::from_secs(30).min(lifetime / 2);
        *held = Some((token.clone(), Instant::now() + lifetime - margin));
        Ok(Some(token))
    }

    /// Forgets `used` if it is still the current token (so concurrent 401s refresh once).
    pub(super) async fn drop_token(&self, used: Option<&str>) {
        let mut held = self.inner.token.lock().await;
        if held.as_ref().map(|(t, _)| t.as_str()) == used {
            *held = None;
        }
    }

    /// Discovers the token endpoint and exchanges a fresh assertion for a token,
    /// retrying transient failures of the token endpoint.
    async fn fetch_token(&self, smart: &Smart, what: &str) -> Result<(String, Duration), ClientError> {
        let what = format!("{what} (SMART token)");
        let token_url = self.token_endpoint(&what).await?;
        let policy = &self.inner.retry;
        let mut retry = 0;
        loop {
            let (failure, wait) = match self.token_once(smart, &token_url, &what).await {
                Ok(got) => return Ok(got),
                Err(TokenFailure::Fatal(e)) => return Err(e),
                Err(TokenFailure::Transient(e, wait)) => (e, wait),
            };
            if retry >= policy.max_retries {
                return Err(failure);
            }
            let wait = policy.delay(retry, wait);
            self.event(super::Event::retry(&what, "POST", &failure, wait));
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn token_endpoint(&self, what: &str) -> Result<String, ClientError> {
        let fail = |reason: String| ClientError::GaveUp {
            what: what.to_string(),
            attempts: 1,
            reason,
        };
        let config_url = self.url(".well-known/smart-configuration", &[]);
        let config: Value = self
            .inner
            .http
            .get(config_url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| fail(format!("smart-configuration: {}", e.without_url())))?;
        Ok(config["token_endpoint"]
            .as_str()
            .ok_or_else(|| fail("smart-configuration has no token_endpoint".into()))?
            .to_string())
    }

    async fn token_once(&self, smart: &Smart, token_url: &str, what: &str) -> Result<(String, Duration), TokenFailure> {
        let transient = |reason: String, wait| {
            TokenFailure::Transient(
                ClientError::GaveUp {
                    what: what.to_string(),
                    attempts: 1,
                    reason,
                },
                wait,
            )
        };
        let assertion = assertion(smart, token_url).map_err(|reason| {
            TokenFailure::Fatal(ClientError::Config(format!(
                "cannot sign the SMART assertion: {reason}"
            )))
        })?;
        let resp = self
            .inner
            .http
            .post(token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
                ("scope", smart.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transient(e.without_url().to_string(), None))?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(token) = body["access_token"].as_str().filter(|_| status.is_success()) {
            let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300).max(1));
            return Ok((token.to_string(), lifetime));
        }
        let why = body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("");
        let err = ClientError::Status {
            what: what.to_string(),
            status: status.as_u16(),
            outcome: why.to_string(),
        };
        if retryable(status) {
            Err(TokenFailure::Transient(err, wait))
        } else {
            Err(TokenFailure::Fatal(err))
        }
    }
}

enum TokenFailure {
    Fatal(ClientError),
    Transient(ClientError, Option<Duration>),
}

/// A signed client assertion for `token_url`: exp = now + 4 min, a fresh random `jti`.
fn assertion(smart: &Smart, token_url: &str) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti).map_err(|e| format!("no randomness for jti: {e}"))?;
    let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
    let claims = serde_json::json!({
        "iss": smart.client_id, "sub": smart.client_id, "aud": token_url,
        "exp": now + 240, "jti": jti,
    });
    let mut header = jsonwebtoken::Header::new(smart.alg);
    header.kid = smart.kid.clone();
    jsonwebtoken::encode(&header, &claims, &smart.key).map_err(|e| e.to_string())
}
