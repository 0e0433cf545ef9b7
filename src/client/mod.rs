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

mod auth;
mod bulk;
mod error;
mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;

pub use auth::{Auth, Smart};
pub use bulk::{BulkLevel, BulkPoll, Download};
pub use error::{ClientError, Failure, JwksProblem, SigningProblem};
pub use retry::RetryPolicy;
use retry::{retry_after, retryable};

/// One request as the log of a run sees it: no query, no ids (path segments
/// that are not type names or operations become `{id}`), no token, no body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// What was asked, e.g. "Observation search".
    pub what: String,
    /// The HTTP method.
    pub method: String,
    /// The URL path relative to the base, ids replaced by `{id}`; `(other origin)` when not on the base's origin.
    pub path: String,
    /// The status answered, if any.
    pub status: Option<u16>,
    /// 1-based attempt of this request.
    pub attempt: u32,
    /// When this attempt is retried: the wait before the next one.
    pub retry_wait_ms: Option<u64>,
    /// Why the attempt failed (transport or body problems; never the URL or the server's text).
    pub error: Option<String>,
    /// Time to the answer.
    pub elapsed_ms: u64,
}

impl Event {
    fn retry(what: &str, method: &str, failure: &ClientError, wait: Duration) -> Self {
        Event {
            what: what.to_string(),
            method: method.to_string(),
            path: "(token endpoint)".into(),
            status: failure.status(),
            attempt: 0,
            retry_wait_ms: Some(wait.as_millis() as u64),
            error: failure.status().is_none().then(|| "no answer".into()),
            elapsed_ms: 0,
        }
    }
}

/// A callback receiving every request [`Event`] (e.g. to write `log.ndjson`).
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Builds a [`FhirClient`]; see the module example.
#[must_use]
pub struct FhirClientBuilder {
    base: String,
    timeout: Duration,
    concurrency: usize,
    retry: RetryPolicy,
    user_agent: String,
    auth: Auth,
    events: Option<EventSink>,
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

    /// Receives an [`Event`] per attempt. Default none.
    pub fn on_event(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<FhirClient, ClientError> {
        let mut base = Url::parse(self.base.trim()).map_err(|e| ClientError::BaseUrl { source: Box::new(e) })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BaseScheme {
                scheme: base.scheme().to_string(),
            });
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
            .pool_max_idle_per_host(self.concurrency.max(8))
            .build()
            .map_err(|e| ClientError::HttpClient {
                source: e.without_url(),
            })?;
        Ok(FhirClient {
            inner: Arc::new(Inner {
                http,
                base,
                retry: self.retry,
                auth: self.auth,
                permits: Semaphore::new(self.concurrency),
                concurrency: self.concurrency,
                token: tokio::sync::Mutex::new(None),
                events: self.events,
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
    concurrency: usize,
    /// The current SMART access token and when to stop using it.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    events: Option<EventSink>,
}

/// A FHIR client for one base URL. Cloning is cheap (an `Arc`); clones share
/// the connection pool and the concurrency limit.
#[derive(Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

/// One request, sent with retries by [`FhirClient::send`].
struct Req<'a> {
    method: Method,
    url: Url,
    /// Names the request in errors and logs.
    what: &'a str,
    accept: &'static str,
    prefer_async: bool,
    /// A FHIR JSON body to send (POST).
    body: Option<Vec<u8>>,
    /// Whether to send the token (never sent to another origin than the base's).
    auth: bool,
}

impl<'a> Req<'a> {
    fn get(url: Url, what: &'a str) -> Self {
        Req {
            method: Method::GET,
            url,
            what,
            accept: "application/fhir+json",
            prefer_async: false,
            body: None,
            auth: true,
        }
    }
}

/// A response with a 2xx or 3xx status.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why an accepted status was still no good.
enum Reject {
    /// Retry it (a truncated or unparsable body).
    Retry(Failure),
    /// Give up (a protocol violation).
    Fatal(Failure),
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
            events: None,
        }
    }

    /// The base URL (with a trailing `/`).
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// Requests in flight at most.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
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
            server_time: None,
            seen: std::collections::HashSet::new(),
            last_page: None,
        }
    }

    /// Reads `rtype/id`; `Ok(None)` when the server answers 404 or 410.
    pub async fn read(&self, rtype: &str, id: &str) -> Result<Option<Value>, ClientError> {
        let what = format!("{rtype} read");
        match self.get_json(self.url(&format!("{rtype}/{id}"), &[]), &what).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if matches!(e.status(), Some(404 | 410)) => Ok(None),
            Err(e) => Err(e),
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

    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.inner.base.origin()
    }

    /// POSTs a transaction or batch Bundle to the base and returns the response
    /// Bundle. Retried like a read: conditional creates make a replay harmless.
    pub async fn transaction(&self, bundle: &Value) -> Result<Value, ClientError> {
        let req = Req {
            method: Method::POST,
            body: Some(bundle.to_string().into_bytes()),
            ..Req::get(self.url("", &[]), "transaction")
        };
        self.send(&req, json_body).await
    }

    /// GETs `url` as JSON with retries (an unparsable body is retried).
    async fn get_json(&self, url: Url, what: &str) -> Result<Value, ClientError> {
        self.send(&Req::get(url, what), json_body).await
    }

    /// Sends `req` until `accept` takes a 2xx/3xx answer, retrying transient
    /// statuses, connection errors and rejected bodies; a 401 under SMART gets
    /// one new token (not counted as a retry).
    async fn send<T>(&self, req: &Req<'_>, mut accept: impl FnMut(Raw) -> Result<T, Reject>) -> Result<T, ClientError> {
        let what = req.what;
        let _permit = self.inner.permits.acquire().await.map_err(|_| ClientError::GaveUp {
            what: what.to_string(),
            attempts: 0,
            reason: Failure::Closed,
        })?;
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let last_try = attempt > policy.max_retries;
            let token = match req.auth && self.same_origin(&req.url) {
                true => self.token(what).await?,
                false => None,
            };
            let started = Instant::now();
            let outcome = self.once(req, token.as_deref()).await;
            let mut event = self.event_for(req, attempt, started);
            let (reason, wait) = match outcome {
                Ok(raw) if raw.status.is_success() || raw.status.is_redirection() => {
                    event.status = Some(raw.status.as_u16());
                    match accept(raw) {
                        Ok(t) => {
                            self.event(event);
                            return Ok(t);
                        }
                        Err(Reject::Fatal(reason)) => {
                            self.event(event);
                            return Err(ClientError::GaveUp {
                                what: what.to_string(),
                                attempts: attempt,
                                reason,
                            });
                        }
                        Err(Reject::Retry(reason)) if last_try => {
                            self.event(event);
                            return Err(ClientError::GaveUp {
                                what: what.to_string(),
                                attempts: attempt,
                                reason,
                            });
                        }
                        Err(Reject::Retry(reason)) => (reason, None),
                    }
                }
                Ok(raw) => {
                    let status = raw.status;
                    event.status = Some(status.as_u16());
                    let expired = status == StatusCode::UNAUTHORIZED
                        && token.is_some()
                        && matches!(self.inner.auth, Auth::Smart(_));
                    if expired {
                        self.drop_token(token.as_deref()).await;
                        if !refreshed {
                            // A new token, once per request, not counted as a retry; a second 401
                            // (the new token expired under concurrent use) counts as one.
                            self.event(event);
                            refreshed = true;
                            attempt -= 1;
                            continue;
                        }
                    }
                    if last_try || !(retryable(status) || expired) {
                        self.event(event);
                        return Err(ClientError::Status {
                            what: what.to_string(),
                            status: status.as_u16(),
                            outcome: outcome_text(&raw.body),
                        });
                    }
                    (
                        Failure::Status {
                            status: status.as_u16(),
                        },
                        retry_after(&raw.headers),
                    )
                }
                Err(reason) if last_try => {
                    event.error = Some(reason.to_string());
                    self.event(event);
                    return Err(ClientError::GaveUp {
                        what: what.to_string(),
                        attempts: attempt,
                        reason,
                    });
                }
                Err(reason) => (reason, None),
            };
            let wait = policy.delay(attempt - 1, wait);
            if event.status.is_none() || event.status.is_some_and(|s| s < 300) {
                event.error = Some(reason.to_string());
            }
            event.retry_wait_ms = Some(wait.as_millis() as u64);
            self.event(event);
            tracing::info!(what, attempt, reason = %reason, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: the answer with its whole body, or a transport failure (without the URL).
    async fn once(&self, req: &Req<'_>, token: Option<&str>) -> Result<Raw, Failure> {
        let mut r = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .header(ACCEPT, req.accept);
        if req.prefer_async {
            r = r.header("prefer", "respond-async");
        }
        if let Some(body) = &req.body {
            r = r.header(CONTENT_TYPE, "application/fhir+json").body(body.clone());
        }
        if let Some(token) = token {
            r = r.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let resp = r.send().await.map_err(Failure::transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(Failure::transport)?.to_vec();
        Ok(Raw { status, headers, body })
    }

    fn event_for(&self, req: &Req<'_>, attempt: u32, started: Instant) -> Event {
        Event {
            what: req.what.to_string(),
            method: req.method.to_string(),
            path: self.path_template(&req.url),
            status: None,
            attempt,
            retry_wait_ms: None,
            error: None,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }

    fn event(&self, event: Event) {
        if let Some(sink) = &self.inner.events {
            sink(event);
        }
    }

    /// The path of `url` relative to the base with every id-like segment replaced by `{id}`.
    fn path_template(&self, url: &Url) -> String {
        if !self.same_origin(url) {
            return "(other origin)".into();
        }
        let rel = url.path().strip_prefix(self.inner.base.path()).unwrap_or(url.path());
        // The first segment is a type (or an operation); later ones are ids unless they are operations or words.
        let keep = |i: usize, s: &str| {
            (i == 0 && s.starts_with(|c: char| c.is_ascii_uppercase()))
                || s.starts_with(['$', '_', '.'])
                || matches!(
                    s,
                    "metadata" | "auth" | "token" | "smart-configuration" | "status" | "files"
                )
        };
        rel.split('/')
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| if keep(i, s) { s } else { "{id}" })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// A 2xx answer's JSON body (an unparsable body is retried; a 3xx is not expected).
fn json_body(raw: Raw) -> Result<Value, Reject> {
    if !raw.status.is_success() {
        return Err(Reject::Fatal(Failure::Unexpected {
            status: raw.status.as_u16(),
        }));
    }
    serde_json::from_slice(&raw.body).map_err(|source| Reject::Retry(Failure::Body { source }))
}

/// A JSON body with the response's `Date` header less one second, as a FHIR instant.
fn dated_json_body(raw: Raw) -> Result<(Value, Option<String>), Reject> {
    let date = raw
        .headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| crate::domain::date::instant_from_unix(d.as_secs() as i64 - 1));
    Ok((json_body(raw)?, date))
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
    server_time: Option<String>,
    /// The page URLs asked for so far: a `next` link back to one is a loop.
    seen: std::collections::HashSet<Url>,
    /// The last page's `Type/id`s: a server that ignores its own offset
    /// parameter sends the same page again under new URLs.
    last_page: Option<Vec<String>>,
}

impl Pages {
    /// The server's clock when the search ran: the first page's `Bundle.meta.lastUpdated`, else its
    /// HTTP `Date` header less one second (the header is truncated to the second; servers such as
    /// Medplum send no `meta` on a searchset), if it sent either.
    pub fn server_time(&self) -> Option<&str> {
        self.server_time.as_deref()
    }

    /// Refuses a page holding exactly the resources of the page before (a
    /// server ignoring its own paging parameter would repeat it forever).
    fn check_not_repeated(&mut self, resources: &[Value]) -> Result<(), ClientError> {
        let keys: Vec<String> = resources
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap_or(""),
                    r["id"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !keys.is_empty() && self.last_page.as_ref() == Some(&keys) {
            return Err(ClientError::PagingLoop {
                what: self.what.clone(),
            });
        }
        self.last_page = Some(keys);
        Ok(())
    }

    /// The next page's resources (entries with `search.mode` `match` or absent,
    /// plus `include`d ones), or `None` after the last page.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ClientError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if !self.seen.insert(url.clone()) {
            return Err(ClientError::PagingLoop {
                what: self.what.clone(),
            });
        }
        let (mut bundle, date) = self.client.send(&Req::get(url, &self.what), dated_json_body).await?;
        if bundle["resourceType"] != "Bundle" {
            return Err(ClientError::GaveUp {
                what: self.what.clone(),
                attempts: 1,
                reason: Failure::NotABundle,
            });
        }
        if self.server_time.is_none() {
            self.server_time = bundle["meta"]["lastUpdated"].as_str().map(str::to_string).or(date);
        }
        let resources = match bundle["entry"].take() {
            Value::Array(entries) => entries
                .into_iter()
                .filter(|e| e["search"]["mode"].as_str() != Some("outcome"))
                .filter_map(|mut e| e.get_mut("resource").map(Value::take))
                .collect(),
            _ => Vec::new(),
        };
        self.check_not_repeated(&resources)?;
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
    fn a_page_without_meta_dates_itself_by_the_date_header_less_a_second() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::DATE, "Wed, 25 Nov 2026 12:54:15 GMT".parse().unwrap());
        let raw = |headers| Raw {
            status: StatusCode::OK,
            headers,
            body: br#"{"resourceType":"Bundle"}"#.to_vec(),
        };
        let (_, date) = dated_json_body(raw(headers)).ok().unwrap();
        assert_eq!(date.as_deref(), Some("2026-11-25T12:54:14Z"));
        let (_, date) = dated_json_body(raw(HeaderMap::new())).ok().unwrap();
        assert_eq!(date, None);
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
    fn logged_paths_hide_ids() {
        let c = FhirClient::builder("http://h/fhir/R4").build().unwrap();
        let t = |u: &str| c.path_template(&Url::parse(u).unwrap());
        assert_eq!(t("http://h/fhir/R4/Observation?patient=p1"), "Observation");
        assert_eq!(t("http://h/fhir/R4/Patient/T1234"), "Patient/{id}");
        assert_eq!(t("http://h/fhir/R4/Group/G7/$export"), "Group/{id}/$export");
        assert_eq!(
            t("http://h/fhir/R4/_bulk/files/j1/Observation.ndjson"),
            "_bulk/files/{id}/{id}"
        );
        assert_eq!(t("http://storage.example/files/x"), "(other origin)");
    }

    #[tokio::test]
    async fn a_refused_connection_is_told_from_a_timeout_and_shows_no_url() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let policy = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        let c = FhirClient::builder(format!("http://127.0.0.1:{port}/fhir"))
            .retry(policy)
            .build()
            .unwrap();
        let e = c.read("Patient", "secret-id").await.unwrap_err();
        assert!(e.is_connect(), "{e:?}");
        assert!(!e.is_timeout() && !e.is_config());
        assert!(matches!(
            &e,
            ClientError::GaveUp {
                reason: Failure::Transport { .. },
                ..
            }
        ));
        let mut chain = vec![e.to_string()];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        assert!(
            chain.len() > 2,
            "reqwest's error and its causes stay the source: {chain:?}"
        );
        assert!(
            chain
                .iter()
                .all(|m| !m.contains("secret-id") && !m.contains("127.0.0.1")),
            "{chain:?}"
        );
    }

    #[test]
    fn configuration_errors_say_what_is_wrong() {
        let e = FhirClient::builder("ftp://h").build().err().unwrap();
        assert!(matches!(&e, ClientError::BaseScheme { scheme } if scheme == "ftp"));
        assert_eq!(
            e.to_string(),
            "client configuration: the base URL must be http or https"
        );
        assert!(e.is_config());
        let e = Auth::bearer_from_env("IMNM_TEST_SURELY_UNSET").unwrap_err();
        assert!(matches!(&e, ClientError::TokenVar { var } if var == "IMNM_TEST_SURELY_UNSET"));
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
