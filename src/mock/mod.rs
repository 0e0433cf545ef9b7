//! The mock EHR: a FHIR R4 server with real vendor behaviour and fault
//! injection, for tests (ours and our users') and for `imnm mock-ehr`.
//!
//! It is a [wiremock] server with one named mock whose [`wiremock::Respond`]
//! implementation answers from an in-memory dataset (read, search, paging,
//! writes, Bulk Data `$export`, SMART Backend Services), shaped by a [`Vendor`]
//! profile and a seeded [`FaultPlan`]. Every request lands in a journal
//! ([`JournalEntry`]) that never holds a token.
//!
//! This module owns serving FHIR over HTTP for tests. It reads datasets only
//! through [`crate::fhir::source`], uses `domain`'s FHIR dates and nothing
//! else of the library: it must not touch the cohort, mapping or sync layers.
//!
//! Inside, lowest first: `call` (a request and a reply), `clock`, `faults`,
//! `journal`, `params` (R4 search parameters) → `store`, `vendor` →
//! `search`, `auth` → `bulk`, `write` (handlers) → `respond` (routing,
//! wiremock); only `mod.rs` uses `respond`.
//!
//! ```no_run
//! use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
//!
//! # async fn demo() -> Result<(), imnm_fhir::mock::MockError> {
//! let ehr = MockEhr::builder()
//!     .dataset("examples/demo-cohort/bundle.json")
//!     .vendor(Vendor::Epic)
//!     .faults("429:0.1,seed=7".parse::<FaultPlan>()?)
//!     .start()
//!     .await?;
//! let url = format!("{}/Patient", ehr.base_url());
//! // … drive your client against `url` …
//! assert!(ehr.journal().iter().all(|e| e.status < 500));
//! # let _ = url;
//! # Ok(())
//! # }
//! ```

mod auth;
mod bulk;
mod call;
mod clock;
mod faults;
mod journal;
mod params;
mod respond;
mod search;
mod store;
mod vendor;
mod write;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

pub use faults::{Fault, FaultPlan};
pub use journal::JournalEntry;
pub use vendor::Vendor;

use auth::AuthConfig;
use respond::{EhrResponder, Shared, State, StorageResponder};

/// Why the mock cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A dataset path cannot be opened or listed.
    #[error("cannot read dataset {path}: {source}")]
    Input {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A piece of the dataset is not JSON.
    #[error("dataset {location}: {message}")]
    Unreadable {
        /// File and line or entry.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A dataset item has no `resourceType`.
    #[error("dataset resource #{index} has no resourceType")]
    NotAResource {
        /// 0-based position in the dataset.
        index: usize,
    },
    /// The JWKS given for SMART auth is not a JWK Set.
    #[error("the JWKS is not a valid JWK Set: {reason}")]
    Jwks {
        /// Why.
        reason: String,
    },
    /// A fault spec part cannot be used.
    #[error("fault spec '{part}': {reason}")]
    FaultSpec {
        /// The part (e.g. `429:2`).
        part: String,
        /// Why.
        reason: &'static str,
    },
    /// An unknown vendor name.
    #[error("unknown vendor '{name}' (expected epic, cerner, hapi or generic)")]
    UnknownVendor {
        /// The name given.
        name: String,
    },
}

/// The data the mock serves.
#[derive(Debug, Clone)]
pub enum Dataset {
    /// Files or folders, read like `imnm cohort --input`.
    Paths(Vec<PathBuf>),
    /// Resources given directly.
    Resources(Vec<Value>),
}

impl From<&str> for Dataset {
    fn from(p: &str) -> Self {
        Dataset::Paths(vec![p.into()])
    }
}

impl From<PathBuf> for Dataset {
    fn from(p: PathBuf) -> Self {
        Dataset::Paths(vec![p])
    }
}

impl From<&std::path::Path> for Dataset {
    fn from(p: &std::path::Path) -> Self {
        Dataset::Paths(vec![p.to_path_buf()])
    }
}

impl From<Vec<Value>> for Dataset {
    fn from(r: Vec<Value>) -> Self {
        Dataset::Resources(r)
    }
}

/// How the mock guards its API.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Open. The default.
    #[default]
    None,
    /// SMART Backend Services: tokens from `{base}/auth/token` for `client_id`,
    /// whose assertions must verify with a key of `jwks` (a JWK Set as JSON).
    Smart {
        /// The client's public keys, `{"keys": [...]}`.
        jwks: Value,
        /// The registered client id.
        client_id: String,
    },
}

/// Fixed settings of a running mock.
pub(crate) struct Config {
    base: String,
    storage: Option<String>,
    vendor: Vendor,
    faults: FaultPlan,
    auth: AuthConfig,
    retry_after: Duration,
    token_lifetime: Duration,
    bulk_polls: u32,
    /// The CapabilityStatement's `software.name` (default: names the vendor).
    software: Option<String>,
    /// Search parameters required besides the vendor's: (type, parameter).
    required: Vec<(&'static str, &'static str)>,
    /// The delay asked of wiremock for `faults.latency` (see [`timer_lateness`]).
    delay: Duration,
}

impl Config {
    fn token_url(&self) -> String {
        format!("{}/auth/token", self.base)
    }
}

/// Builds a [`MockEhr`]. Start one with [`MockEhr::builder`].
#[must_use]
pub struct MockEhrBuilder {
    dataset: Dataset,
    vendor: Vendor,
    faults: FaultPlan,
    auth: Auth,
    retry_after: Duration,
    token_lifetime: Duration,
    bulk_polls: u32,
    software: Option<String>,
    required: Vec<(&'static str, &'static str)>,
    listener: Option<TcpListener>,
}

impl MockEhrBuilder {
    /// The data to serve: a path (`&str`, `PathBuf`) or resources. Default is empty.
    pub fn dataset(mut self, dataset: impl Into<Dataset>) -> Self {
        self.dataset = dataset.into();
        self
    }

    /// The vendor profile. Default is [`Vendor::Generic`].
    pub fn vendor(mut self, vendor: Vendor) -> Self {
        self.vendor = vendor;
        self
    }

    /// Faults to inject. Default is none.
    pub fn faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// Authorization. Default is [`Auth::None`].
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The `Retry-After` sent with 429, 503 and bulk status polls. Default is 1 s; tests use 0.
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Access token lifetime. Default is 300 s.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// How many status polls answer 202 before the manifest. Default is 2.
    pub fn bulk_polls(mut self, polls: u32) -> Self {
        self.bulk_polls = polls;
        self
    }

    /// The `software.name` the CapabilityStatement gives. Default names the vendor
    /// (`imnm mock EHR (epic)`); a gateway in front of a real EHR often names itself.
    pub fn software(mut self, name: impl Into<String>) -> Self {
        self.software = Some(name.into());
        self
    }

    /// Refuse (400) searches of `rtype` without `param`, besides what the vendor
    /// requires: some servers refuse e.g. a DocumentReference search without `category`.
    pub fn require_param(mut self, rtype: &'static str, param: &'static str) -> Self {
        self.required.push((rtype, param));
        self
    }

    /// Serve on this listener (e.g. a fixed port) instead of a random local port.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Loads the dataset and starts the server (and, for Cerner, the storage origin).
    pub async fn start(self) -> Result<MockEhr, MockError> {
        let resources = match self.dataset {
            Dataset::Paths(paths) if paths.is_empty() => Vec::new(),
            Dataset::Paths(paths) => store::load_paths(&paths)?,
            Dataset::Resources(r) => r,
        };
        let store = store::Store::from_resources(resources)?;
        let auth = match self.auth {
            Auth::None => AuthConfig::None,
            Auth::Smart { jwks, client_id } => AuthConfig::Smart {
                keys: serde_json::from_value(jwks).map_err(|e| MockError::Jwks { reason: e.to_string() })?,
                client_id,
            },
        };
        let server = match self.listener {
            Some(l) => MockServer::builder().listener(l),
            None => MockServer::builder(),
        }
        .disable_request_recording()
        .start()
        .await;
        let storage = if self.vendor.redirects_downloads() {
            Some(MockServer::builder().disable_request_recording().start().await)
        } else {
            None
        };
        let delay = match self.faults.latency {
            l if l.is_zero() => l,
            l => l.saturating_sub(timer_lateness().await.min(l / 2)),
        };
        let cfg = Config {
            delay,
            base: server.uri(),
            storage: storage.as_ref().map(MockServer::uri),
            vendor: self.vendor,
            faults: self.faults,
            auth,
            retry_after: self.retry_after,
            token_lifetime: self.token_lifetime,
            bulk_polls: self.bulk_polls,
            software: self.software,
            required: self.required,
        };
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State {
                store,
                ..State::default()
            }),
        });
        Mock::given(any())
            .respond_with(EhrResponder(shared.clone()))
            .named("mock EHR: FHIR base")
            .mount(&server)
            .await;
        if let Some(storage) = &storage {
            Mock::given(any())
                .respond_with(StorageResponder(shared.clone()))
                .named("mock EHR: bulk file storage (another origin)")
                .mount(storage)
                .await;
        }
        Ok(MockEhr {
            server,
            storage,
            shared,
        })
    }
}

/// How late tokio wakes a short sleep (median of five): wiremock delays a
/// response by sleeping, and the timer wakes about a millisecond late (a 20 ms
/// sleep took 21.2 ms on the 2-core CI machine), so the mock asks for that much
/// less and `latency:20ms` comes close to 20 ms as a client sees it (20.5–21.2 ms
/// per serial request measured, loopback and the mock's own work included).
async fn timer_lateness() -> Duration {
    const ASK: Duration = Duration::from_millis(3);
    let mut late = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = std::time::Instant::now();
        tokio::time::sleep(ASK).await;
        late.push(started.elapsed().saturating_sub(ASK));
    }
    late.sort();
    late[2]
}

/// A running mock EHR. It stops when dropped.
pub struct MockEhr {
    server: MockServer,
    storage: Option<MockServer>,
    shared: Arc<Shared>,
}

impl MockEhr {
    /// A builder with the defaults: no data, [`Vendor::Generic`], no faults, no auth.
    pub fn builder() -> MockEhrBuilder {
        MockEhrBuilder {
            dataset: Dataset::Paths(Vec::new()),
            vendor: Vendor::Generic,
            faults: FaultPlan::none(),
            auth: Auth::None,
            retry_after: Duration::from_secs(1),
            token_lifetime: Duration::from_secs(300),
            bulk_polls: 2,
            software: None,
            required: Vec::new(),
            listener: None,
        }
    }

    /// The FHIR base URL (the server root, e.g. `http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The token endpoint (`{base}/auth/token`).
    pub fn token_url(&self) -> String {
        self.shared.cfg.token_url()
    }

    /// The storage origin bulk files redirect to (Cerner only).
    pub fn storage_url(&self) -> Option<String> {
        self.storage.as_ref().map(MockServer::uri)
    }

    /// The requests answered so far.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.lock().journal.clone()
    }
}
