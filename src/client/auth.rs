//! Authorization: none, a bearer token, or SMART Backend Services (a token
//! bought with a signed JWT assertion, renewed before expiry and once on a
//! 401). Tokens never appear in errors, logs or `Debug` output.

use std::time::{Duration, Instant};

use reqwest::header::ACCEPT;
use serde_json::Value;

use super::retry::{retry_after, retryable};
use super::{ClientError, Failure, FhirClient, JwksProblem, SigningProblem};

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
        let bad = |source| ClientError::SmartKey { source };
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
            getrandom::getrandom(&mut bytes).map_err(|source| ClientError::Signing {
                problem: SigningProblem::KeyRandom { source },
            })?;
            if let Ok(k) = p384::SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let der = secret.to_pkcs8_der().map_err(|source| ClientError::Signing {
            problem: SigningProblem::KeyEncoding { source },
        })?;
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

impl Smart {
    /// Settings from a JWK Set with private members (`d`, and for RSA `p`, `q`): the key
    /// with `kid` when given, else the first RS384/ES384 key (or RSA / EC P-384 key) with
    /// private members. The key's own `kid` is sent unless `kid` is given.
    pub fn from_jwks(client_id: &str, jwks: &[u8], kid: Option<String>, scope: &str) -> Result<Self, ClientError> {
        let bad = |problem| ClientError::SmartJwks { problem };
        let set: Value = serde_json::from_slice(jwks).map_err(|_| bad(JwksProblem::NotJson))?;
        let keys = set["keys"].as_array().ok_or_else(|| bad(JwksProblem::NoKeys))?;
        let usable = |k: &&Value| {
            let alg_ok = match k["alg"].as_str() {
                Some(a) => a == "RS384" || a == "ES384",
                None => k["kty"] == "RSA" || k["crv"] == "P-384",
            };
            k["d"].is_string() && alg_ok
        };
        let jwk = match &kid {
            Some(id) => keys
                .iter()
                .find(|k| k["kid"].as_str() == Some(id))
                .ok_or_else(|| bad(JwksProblem::NoKid))?,
            None => keys.iter().find(usable).ok_or_else(|| bad(JwksProblem::NoUsableKey))?,
        };
        if !usable(&jwk) {
            return Err(bad(JwksProblem::NotUsable));
        }
        let (key, alg) = jwk_encoding_key(jwk).map_err(bad)?;
        Ok(Smart {
            client_id: client_id.to_string(),
            key,
            alg,
            kid: kid.or_else(|| jwk["kid"].as_str().map(str::to_string)),
            scope: scope.to_string(),
        })
    }
}

/// The signing key of a private JWK (RSA or EC P-384).
fn jwk_encoding_key(jwk: &Value) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm), JwksProblem> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let member = |member: &'static str| {
        let text = jwk[member].as_str().ok_or(JwksProblem::MissingMember { member })?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| JwksProblem::NotBase64 { member })
    };
    match jwk["kty"].as_str() {
        Some("EC") => {
            use p384::pkcs8::EncodePrivateKey;
            let secret = p384::SecretKey::from_slice(&member("d")?).map_err(|_| JwksProblem::NotP384)?;
            let der = secret
                .to_pkcs8_der()
                .map_err(|source| JwksProblem::EcEncoding { source })?;
            Ok((
                jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
                jsonwebtoken::Algorithm::ES384,
            ))
        }
        Some("RSA") => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let big = |name: &'static str| member(name).map(|b| rsa::BigUint::from_bytes_be(&b));
            let key = rsa::RsaPrivateKey::from_components(big("n")?, big("e")?, big("d")?, vec![big("p")?, big("q")?])
                .map_err(|source| JwksProblem::RsaMembers { source })?;
            let der = key
                .to_pkcs1_der()
                .map_err(|source| JwksProblem::RsaEncoding { source })?;
            Ok((
                jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
                jsonwebtoken::Algorithm::RS384,
            ))
        }
        _ => Err(JwksProblem::Kty),
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
            _ => Err(ClientError::TokenVar { var: var.to_string() }),
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
        let fail = |reason: Failure| ClientError::GaveUp {
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
            .map_err(|e| fail(Failure::transport(e)))?
            .json()
            .await
            .map_err(|e| {
                fail(Failure::SmartConfiguration {
                    source: e.without_url(),
                })
            })?;
        Ok(config["token_endpoint"]
            .as_str()
            .ok_or_else(|| fail(Failure::NoTokenEndpoint))?
            .to_string())
    }

    async fn token_once(&self, smart: &Smart, token_url: &str, what: &str) -> Result<(String, Duration), TokenFailure> {
        let transient = |reason: Failure, wait| {
            TokenFailure::Transient(
                ClientError::GaveUp {
                    what: what.to_string(),
                    attempts: 1,
                    reason,
                },
                wait,
            )
        };
        let assertion =
            assertion(smart, token_url).map_err(|problem| TokenFailure::Fatal(ClientError::Signing { problem }))?;
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
            .map_err(|e| transient(Failure::transport(e), None))?;
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
fn assertion(smart: &Smart, token_url: &str) -> Result<String, SigningProblem> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti).map_err(|source| SigningProblem::JtiRandom { source })?;
    let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
    let claims = serde_json::json!({
        "iss": smart.client_id, "sub": smart.client_id, "aud": token_url,
        "exp": now + 240, "jti": jti,
    });
    let mut header = jsonwebtoken::Header::new(smart.alg);
    header.kid = smart.kid.clone();
    jsonwebtoken::encode(&header, &claims, &smart.key).map_err(|source| SigningProblem::Sign { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn verify(smart: &Smart, decoding: &jsonwebtoken::DecodingKey) {
        let token = assertion(smart, "http://h/token").unwrap();
        let mut v = jsonwebtoken::Validation::new(smart.alg);
        v.set_audience(&["http://h/token"]);
        jsonwebtoken::decode::<Value>(&token, decoding, &v).unwrap();
    }

    #[test]
    fn jwks_private_keys_sign_verifiable_assertions() {
        // EC: the generated key's public JWK plus its private scalar.
        let (generated, public) = Smart::generate_es384("c", "ec-1", "system/*.rs").unwrap();
        let x = public["keys"][0]["x"].as_str().unwrap();
        let y = public["keys"][0]["y"].as_str().unwrap();
        let mut d = [0u8; 48];
        getrandom::getrandom(&mut d).unwrap();
        let secret = p384::SecretKey::from_slice(&d).unwrap();
        let point = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let ec = serde_json::json!({"kty": "EC", "crv": "P-384", "kid": "ec-2", "alg": "ES384",
            "d": b64(&d), "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
        // RSA: the test fixture key's members.
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/smart/rs384-private.pem"
        ))
        .unwrap();
        let rsa_key = {
            use rsa::pkcs8::DecodePrivateKey;
            rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
                .or_else(|_| rsa::pkcs1::DecodeRsaPrivateKey::from_pkcs1_pem(&pem))
                .unwrap()
        };
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let primes = rsa_key.primes();
        let rsa_jwk = serde_json::json!({"kty": "RSA", "kid": "rsa-1", "n": b64(&rsa_key.n().to_bytes_be()),
            "e": b64(&rsa_key.e().to_bytes_be()), "d": b64(&rsa_key.d().to_bytes_be()),
            "p": b64(&primes[0].to_bytes_be()), "q": b64(&primes[1].to_bytes_be())});
        let set = serde_json::json!({"keys": [public["keys"][0], rsa_jwk, ec]}).to_string();
        // No kid: the first key with private members (the public-only one is skipped).
        let first = Smart::from_jwks("c", set.as_bytes(), None, "system/*.rs").unwrap();
        assert_eq!(
            (first.alg, first.kid.as_deref()),
            (jsonwebtoken::Algorithm::RS384, Some("rsa-1"))
        );
        let n = b64(&rsa_key.n().to_bytes_be());
        let e = b64(&rsa_key.e().to_bytes_be());
        verify(&first, &jsonwebtoken::DecodingKey::from_rsa_components(&n, &e).unwrap());
        let by_kid = Smart::from_jwks("c", set.as_bytes(), Some("ec-2".into()), "system/*.rs").unwrap();
        assert_eq!(by_kid.alg, jsonwebtoken::Algorithm::ES384);
        let (ex, ey) = (b64(point.x().unwrap()), b64(point.y().unwrap()));
        verify(
            &by_kid,
            &jsonwebtoken::DecodingKey::from_ec_components(&ex, &ey).unwrap(),
        );
        verify(
            &generated,
            &jsonwebtoken::DecodingKey::from_ec_components(x, y).unwrap(),
        );
        let public_only = Smart::from_jwks("c", set.as_bytes(), Some("ec-1".into()), "s");
        assert!(public_only.err().unwrap().to_string().contains("private members"));
        assert!(Smart::from_jwks("c", b"[]", None, "s").is_err());
    }
}
