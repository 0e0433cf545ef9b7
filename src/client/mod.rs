//! The FHIR client: HTTP GETs against one FHIR base URL with retries,
//! backoff, bounded concurrency, auth and paging.
//!
//! This module owns talking HTTP to a FHIR server. It never writes the store
//! and never decides what to fetch ([`crate::sync`] does). Its errors and logs
//! name what was asked (e.g. "Observation search") and the status, never the
//! URL query, an id or a token.
//!
//! ```no_run
//! use std::time::Duration;
//! use imnm_fhir::client::{Auth, FhirClient, RetryPolicy};
//!
//! # async fn demo() -> Result<(), imnm_fhir::client::ClientError> {
//! let client = FhirClient::builder("https://ehr.example.org/fhir/R4")
//!     .timeout(Duration::from_secs(60))
//!     .concurrency(4)
//!     .retry(RetryPolicy::default())
//!     .auth(Auth::bearer_from_env("IMNM_TOKEN")?)
//!     .build()?;
//! let mut pages = client.search("Condition", &[("code", "http://snomed.info/sct|715863001".into())]);
//! while let Some(page) = pages.next().await? {
//!     println!("{} resources", page.len());
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client cannot be built (bad base URL, missing token variable).
    #[error("client configuration: {0}")]
    Config(String),
    /// The server refused the request (a status that retrying does not fix, or
    /// retries ran out), with the server's OperationOutcome text when it sent one.
    #[error("{what}: HTTP {status}{}", outcome_suffix(.outcome))]
    Status {
        /// What was asked, e.g. "Observation search".
        what: String,
        /// The last HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics/details text, or empty.
        outcome: String,
    },
    /// No usable answer after every retry (connection errors, truncated or unparsable bodies).
    #[error("{what}: no usable answer after {attempts} attempts: {reason}")]
    GaveUp {
        /// What was asked.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure (without the URL).
        reason: String,
    },
    /// A `next` link points to another origin than the base URL: not followed.
    #[error("{what}: the server's next link points to another origin; not followed")]
    ForeignOrigin {
        /// What was asked.
        what: String,
    },
}

fn outcome_suffix(outcome: &str) -> String {
    if outcome.is_empty() {
        String::new()
    } else {
        format!(": {outcome}")
    }
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

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

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 5.
    pub max_retries: u32,
    /// First backoff; doubles each retry (with jitter). Default 200 ms.
    pub base_delay: Duration,
    /// Largest backoff. Default 10 s.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured; longer waits are cut to this. Default 30 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `Retry-After` when given
    /// (capped), else exponential backoff with jitter (between half and all of it).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        let mut b = [0u8; 4];
        let r = match getrandom::getrandom(&mut b) {
            Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
            Err(_) => 0.5,
        };
        exp.mul_f64(0.5 + 0.5 * r)
    }
}

/// Builds a [`FhirClient`]; see the module example.
#[must_use]
pub struct FhirClientBuilder {
    base: String,
    timeout: Duration,
    concurrency: usize,
    retry: RetryPolicy,
    user_agent: String,
    auth: Auth,
}

impl FhirClientBuilder {
    /// Per-request timeout (connect + whole body). Default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Requests in flight at most, over all clones of the client. Default 4.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The retry policy. Default [`RetryPolicy::default`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `User-Agent`. Default `imnm-fhir/VERSION`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Authorization. Default [`Auth::None`].
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<FhirClient, ClientError> {
        let mut base =
            Url::parse(self.base.trim()).map_err(|e| ClientError::Config(format!("the base URL is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Config("the base URL must be http or https".into()));
        }
        base.set_query(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(self.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {}", e.without_url())))?;
        Ok(FhirClient {
            inner: Arc::new(Inner {
                http,
                base,
                retry: self.retry,
                auth: self.auth,
                permits: Semaphore::new(self.concurrency),
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
    auth: Auth,
    permits: Semaphore,
    /// The current SMART access token and when to stop using it.
    token: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
}

/// A FHIR client for one base URL. Cloning is cheap (an `Arc`); clones share
/// the connection pool and the concurrency limit.
#[derive(Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

impl FhirClient {
    /// A builder for the server at `base_url` (e.g. `https://ehr.example.org/fhir/R4`).
    pub fn builder(base_url: impl Into<String>) -> FhirClientBuilder {
        FhirClientBuilder {
            base: base_url.into(),
            timeout: Duration::from_secs(60),
            concurrency: 4,
            retry: RetryPolicy::default(),
            user_agent: format!("imnm-fhir/{}", env!("CARGO_PKG_VERSION")),
            auth: Auth::None,
        }
    }

    /// The base URL (with a trailing `/`).
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The server's CapabilityStatement (`GET [base]/metadata`).
    pub async fn capabilities(&self) -> Result<Value, ClientError> {
        let url = self.url("metadata", &[]);
        self.get_json(url, "CapabilityStatement").await
    }

    /// A search on `rtype` with `params`, as pages of resources (`search` mode entries only).
    pub fn search(&self, rtype: &str, params: &[(&str, String)]) -> Pages {
        Pages {
            client: self.clone(),
            what: format!("{rtype} search"),
            next: Some(self.url(rtype, params)),
        }
    }

    fn url(&self, path: &str, params: &[(&str, String)]) -> Url {
        let mut url = self.inner.base.clone();
        let p = format!("{}{}", url.path(), path);
        url.set_path(&p);
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// POSTs a transaction or batch Bundle to the base and returns the response
    /// Bundle. Retried like a read: conditional creates make a replay harmless.
    pub async fn transaction(&self, bundle: &Value) -> Result<Value, ClientError> {
        let url = self.url("", &[]);
        self.request_json(url, Some(bundle), "transaction").await
    }

    /// GETs `url` as JSON with retries. `what` names the request in errors and logs.
    async fn get_json(&self, url: Url, what: &str) -> Result<Value, ClientError> {
        self.request_json(url, None, what).await
    }

    /// GETs `url`, or POSTs `body` to it, as JSON with retries.
    async fn request_json(&self, url: Url, body: Option<&Value>, what: &str) -> Result<Value, ClientError> {
        let _permit = self.inner.permits.acquire().await.map_err(|_| ClientError::GaveUp {
            what: what.to_string(),
            attempts: 0,
            reason: "client closed".into(),
        })?;
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let last_try = attempt > policy.max_retries;
            let token = self.token(what).await?;
            let failure = match self.once(&url, body, token.as_deref()).await {
                Ok(Answer::Json(v)) => return Ok(v),
                Ok(Answer::Status { status, .. })
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed
                        && matches!(self.inner.auth, Auth::Smart(_)) =>
                {
                    // A new token, once per request, not counted as a retry.
                    refreshed = true;
                    attempt -= 1;
                    self.drop_token(token.as_deref()).await;
                    continue;
                }
                Ok(Answer::Status {
                    status,
                    outcome,
                    retry_after,
                }) => {
                    if last_try || !retryable(status) {
                        return Err(ClientError::Status {
                            what: what.to_string(),
                            status: status.as_u16(),
                            outcome,
                        });
                    }
                    (format!("HTTP {}", status.as_u16()), retry_after)
                }
                Err(reason) => {
                    if last_try {
                        return Err(ClientError::GaveUp {
                            what: what.to_string(),
                            attempts: attempt,
                            reason,
                        });
                    }
                    (reason, None)
                }
            };
            let wait = policy.delay(attempt - 1, failure.1);
            tracing::info!(what, attempt, reason = %failure.0, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: a JSON body, a non-success status, or a retryable failure text.
    async fn once(&self, url: &Url, body: Option<&Value>, token: Option<&str>) -> Result<Answer, String> {
        let mut req = match body {
            Some(b) => self
                .inner
                .http
                .post(url.clone())
                .header(CONTENT_TYPE, "application/fhir+json")
                .body(b.to_string()),
            None => self.inner.http.get(url.clone()),
        }
        .header(ACCEPT, "application/fhir+json");
        if let Some(token) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = resp.bytes().await.map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            return Ok(Answer::Status {
                status,
                outcome: outcome_text(&body),
                retry_after,
            });
        }
        serde_json::from_slice(&body)
            .map(Answer::Json)
            .map_err(|e| format!("unparsable body: {e}"))
    }
}

impl FhirClient {
    /// The bearer token to send, fetching a SMART token when none is fresh.
    async fn token(&self, what: &str) -> Result<Option<String>, ClientError> {
        let smart = match &self.inner.auth {
            Auth::None => return Ok(None),
            Auth::Bearer(t) => return Ok(Some(t.clone())),
            Auth::Smart(s) => s,
        };
        let mut held = self.inner.token.lock().await;
        if let Some((t, until)) = held.as_ref() {
            if std::time::Instant::now() < *until {
                return Ok(Some(t.clone()));
            }
        }
        let (token, lifetime) = self.fetch_token(smart, what).await?;
        let margin = Duration::from_secs(30).min(lifetime / 2);
        *held = Some((token.clone(), std::time::Instant::now() + lifetime - margin));
        Ok(Some(token))
    }

    /// Forgets `used` if it is still the current token (so concurrent 401s refresh once).
    async fn drop_token(&self, used: Option<&str>) {
        let mut held = self.inner.token.lock().await;
        if held.as_ref().map(|(t, _)| t.as_str()) == used {
            *held = None;
        }
    }

    /// Discovers the token endpoint and exchanges a fresh assertion for a token.
    async fn fetch_token(&self, smart: &Smart, what: &str) -> Result<(String, Duration), ClientError> {
        let fail = |reason: String| ClientError::GaveUp {
            what: format!("{what} (SMART token)"),
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
        let token_url = config["token_endpoint"]
            .as_str()
            .ok_or_else(|| fail("smart-configuration has no token_endpoint".into()))?
            .to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut jti = [0u8; 16];
        getrandom::getrandom(&mut jti).map_err(|e| fail(format!("no randomness for jti: {e}")))?;
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let claims = serde_json::json!({
            "iss": smart.client_id, "sub": smart.client_id, "aud": token_url,
            "exp": now + 240, "jti": jti,
        });
        let mut header = jsonwebtoken::Header::new(smart.alg);
        header.kid = smart.kid.clone();
        let assertion = jsonwebtoken::encode(&header, &claims, &smart.key)
            .map_err(|e| fail(format!("cannot sign the assertion: {e}")))?;
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
            .map_err(|e| fail(e.without_url().to_string()))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let Some(token) = body["access_token"].as_str().filter(|_| status.is_success()) else {
            let why = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("");
            return Err(ClientError::Status {
                what: format!("{what} (SMART token)"),
                status: status.as_u16(),
                outcome: why.to_string(),
            });
        };
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300).max(1));
        Ok((token.to_string(), lifetime))
    }
}

enum Answer {
    Json(Value),
    Status {
        status: StatusCode,
        outcome: String,
        retry_after: Option<Duration>,
    },
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (an HTTP date is not read yet).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The text of an OperationOutcome body's issues (diagnostics, else details.text), joined.
fn outcome_text(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    if v["resourceType"] != "OperationOutcome" {
        return String::new();
    }
    let issues = v["issue"].as_array().into_iter().flatten();
    issues
        .filter_map(|i| {
            i["diagnostics"]
                .as_str()
                .or_else(|| i["details"]["text"].as_str())
                .map(str::to_string)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pages of one search. Call [`Pages::next`] until it gives `None`.
pub struct Pages {
    client: FhirClient,
    what: String,
    next: Option<Url>,
}

impl Pages {
    /// The next page's resources (entries with `search.mode` `match` or absent,
    /// plus `include`d ones), or `None` after the last page.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ClientError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let bundle = self.client.get_json(url, &self.what).await?;
        if bundle["resourceType"] != "Bundle" {
            return Err(ClientError::GaveUp {
                what: self.what.clone(),
                attempts: 1,
                reason: "the answer is not a Bundle".into(),
            });
        }
        let resources = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"].as_str() != Some("outcome"))
            .filter_map(|e| e.get("resource").cloned())
            .collect();
        let next = bundle["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str());
        if let Some(next) = next {
            let base = &self.client.inner.base;
            let url = base.join(next).map_err(|_| ClientError::ForeignOrigin {
                what: self.what.clone(),
            })?;
            if url.origin() != base.origin() {
                return Err(ClientError::ForeignOrigin {
                    what: self.what.clone(),
                });
            }
            self.next = Some(url);
        }
        Ok(Some(resources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_up_to_the_cap_and_backoff_grows_with_jitter() {
        let p = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(2),
        };
        assert_eq!(p.delay(0, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(p.delay(0, Some(Duration::from_secs(90))), Duration::from_secs(2));
        let d0 = p.delay(0, None);
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        let d5 = p.delay(5, None);
        assert!(d5 >= Duration::from_millis(175) && d5 <= Duration::from_millis(350));
    }

    #[test]
    fn outcome_text_reads_diagnostics_and_details() {
        let body = br#"{"resourceType":"OperationOutcome","issue":[{"diagnostics":"a"},{"details":{"text":"b"}}]}"#;
        assert_eq!(outcome_text(body), "a; b");
        assert_eq!(outcome_text(b"not json"), "");
    }

    #[test]
    fn auth_debug_hides_the_token_and_base_gets_a_slash() {
        assert_eq!(format!("{:?}", Auth::Bearer("secret".into())), "Bearer(<redacted>)");
        let c = FhirClient::builder("http://h/fhir?x=1").build().unwrap();
        assert_eq!(c.base_url(), "http://h/fhir/");
        assert!(FhirClient::builder("ftp://h").build().is_err());
    }

    #[test]
    fn errors_never_show_the_query() {
        let e = ClientError::Status {
            what: "Observation search".into(),
            status: 400,
            outcome: "this server requires the 'category' parameter".into(),
        };
        assert_eq!(
            e.to_string(),
            "Observation search: HTTP 400: this server requires the 'category' parameter"
        );
    }
}
