//! The registry service (`imnm serve`): syncs every site of a registry config
//! on its own schedule, rebuilds the cohort outputs after each successful sync,
//! and serves them as a JSON API and a server-rendered page.
//!
//! This module owns the scheduling of sites (`schedule`: `every` with jitter,
//! exponential backoff after a failure capped at the interval, one task per
//! site so a site that is down never delays another), the in-memory run state
//! of each site (`state`), the latest built cohort (`snapshot`), the HTTP API
//! with its bearer tokens (a browser signs in with one: `login`), audit log and
//! problem documents (`api`, `audit`),
//! and the page (`page`, `chart`). It reuses, and must not re-implement, the
//! sync ([`crate::sync::run`], one site at a time, incremental from the
//! store's watermark), reading the store ([`crate::pipeline::collect_store_sites`])
//! and the cohort outputs ([`crate::cohort::build_and_write_linked`]); it never
//! touches FHIR parsing or the mapping rules.
//!
//! Durable state is the store's (resources, watermarks, the status of the last
//! run); run times, counts and errors since the service started are in memory.
//! Errors shown keep no identifiers and no URL queries; metrics and the audit
//! log hold counts, route templates and token names only.

mod api;
mod audit;
mod chart;
mod login;
mod page;
mod schedule;
mod snapshot;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::client::FhirClient;
use crate::mapping::MappingSet;
use crate::registry::{RegistryConfig, SiteConfig};
use crate::sync::SyncOptions;

/// Counts from 1 to this minus 1 are hidden from reader-role callers.
pub const MIN_CELL: u64 = 5;

/// Why the service cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A non-loopback address without API tokens.
    #[error(
        "refusing to listen on {listen}: it is not a loopback address and the registry config has no \
         [[serve.token]]; add tokens (imnm serve hash-token) or listen on 127.0.0.1"
    )]
    OpenToNetwork {
        /// The address asked for.
        listen: SocketAddr,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        /// The address.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error("opening the store {store}: {source}")]
    Store {
        /// The store (a URL shown without password or query).
        store: crate::store::StoreLocation,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The output folder or audit log cannot be written.
    #[error("writing {path}: {source}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server stopped with an error.
    #[error("the HTTP server stopped: {source}")]
    Server {
        /// Why.
        source: std::io::Error,
    },
}

impl ServiceError {
    /// Whether the service was refused by its configuration (as opposed to the machine).
    pub fn is_config(&self) -> bool {
        matches!(self, ServiceError::OpenToNetwork { .. })
    }
}

/// Whether an issue is about `site` (a linked case's `a+b` is about both).
fn issue_at(issue: &crate::report::Issue, site: &str) -> bool {
    issue.site.as_deref().is_some_and(|x| x.split('+').any(|x| x == site))
}

/// Makes a site's client and sync options from its config (the binary's, so
/// `imnm serve` syncs a site exactly as `imnm sync --config` does). The error
/// text is shown on the page: it must hold no secret, identifier or URL query.
pub type Prepare = Arc<dyn Fn(&SiteConfig) -> Result<(FhirClient, SyncOptions), String> + Send + Sync>;

/// What `imnm serve` runs with.
pub struct ServeOptions {
    /// The registry config (sites, store, `[serve]`).
    pub config: RegistryConfig,
    /// The address to listen on (`--listen`, else `[serve] listen`).
    pub listen: SocketAddr,
    /// Where the cohort outputs are rebuilt.
    pub out: PathBuf,
    /// The audit log (JSON lines).
    pub audit: PathBuf,
    /// The mappings.
    pub mappings: Arc<MappingSet>,
    /// A site's client and options.
    pub prepare: Prepare,
}

/// Checks that the service may listen where asked: a non-loopback address needs tokens.
pub fn check_listen(config: &RegistryConfig, listen: SocketAddr) -> Result<(), ServiceError> {
    if !listen.ip().is_loopback() && config.serve.tokens.is_empty() {
        return Err(ServiceError::OpenToNetwork { listen });
    }
    Ok(())
}

/// The lowercase hex SHA-256 of a token (what `[[serve.token]] sha256` holds).
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the service until `stop` resolves (SIGTERM or Ctrl-C in the binary):
/// then no new sync starts, running ones stop at their next page boundary
/// (a pending bulk export is cancelled), and the server drains.
pub async fn serve(
    options: ServeOptions,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    check_listen(&options.config, options.listen)?;
    let app = state::Inner::start(options)?;
    let listener = tokio::net::TcpListener::bind(app.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            listen: app.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServiceError::Listen {
        listen: app.listen,
        source,
    })?;
    tracing::info!(%local, sites = app.config.sites.len(), "imnm serve listening");
    eprintln!(
        "imnm serve: listening on http://{local} ({} site(s))",
        app.config.sites.len()
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tasks = schedule::start(&app, rx.clone());
    let router = api::router(app.clone());
    let mut server_stop = rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    stop.await;
    eprintln!("imnm serve: stopping (running syncs end at their next page)");
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    match server.await {
        Ok(Err(source)) => Err(ServiceError::Server { source }),
        _ => Ok(()),
    }
}
