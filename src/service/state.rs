//! The service's shared state: the config, the store, each site's run state
//! and counters, the latest cohort snapshot, and what wakes a site early.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;

use super::snapshot::Snapshot;
use super::{Prepare, ServeOptions, ServiceError};
use crate::mapping::MappingSet;
use crate::registry::RegistryConfig;
use crate::store::Store;

/// A site's last run, as `GET /api/sites` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SiteRun {
    /// The site id.
    pub id: String,
    /// The site's name.
    pub name: String,
    /// `never`, `running`, `ok` or `failed`.
    pub status: &'static str,
    /// When the last (or current) run started.
    pub last_start: Option<String>,
    /// When the last run ended.
    pub last_end: Option<String>,
    /// Resources new in the last successful run.
    pub new: u64,
    /// Resources updated in the last successful run.
    pub updated: u64,
    /// The store's watermark: the next run asks for changes since it.
    pub watermark: Option<String>,
    /// When the next run is due.
    pub next_run: Option<String>,
    /// The last failure's text (no identifiers, no URL queries).
    pub last_error: Option<String>,
    /// Failures in a row (the backoff's exponent).
    pub failures_in_row: u32,
}

/// A site's last run as the store's run history tells it (`history` newest
/// first): a restarted service shows what happened before it stopped.
fn restore(run: &mut SiteRun, history: &[crate::store::RunRecord]) {
    let Some(last) = history.first() else { return };
    run.last_start = Some(last.started.clone());
    run.last_end = Some(last.ended.clone());
    run.last_error.clone_from(&last.error);
    let failed = history.iter().take_while(|r| r.status != "ok").count();
    run.failures_in_row = u32::try_from(failed).unwrap_or(u32::MAX);
    if let Some(ok) = history.iter().find(|r| r.status == "ok") {
        run.new = ok.new;
        run.updated = ok.updated;
    }
}

/// Counters per site for `/metrics` (since the service started).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub syncs: u64,
    pub failures: u64,
    pub resources_new: u64,
    pub resources_updated: u64,
    pub duration_seconds: f64,
    pub last_success_unix: Option<i64>,
}

/// The service's state, shared by the scheduler and the HTTP handlers.
pub(crate) struct Inner {
    pub config: RegistryConfig,
    pub listen: SocketAddr,
    pub store_at: crate::store::StoreLocation,
    pub out: PathBuf,
    pub mappings: Arc<MappingSet>,
    pub prepare: Prepare,
    /// The store connection syncs write through (one writer).
    pub store: Arc<Mutex<Store>>,
    pub runs: Mutex<BTreeMap<String, SiteRun>>,
    pub counters: Mutex<BTreeMap<String, Counters>>,
    /// Wakes a site's task for a sync now.
    pub wake: BTreeMap<String, Arc<tokio::sync::Notify>>,
    /// Wakes the rebuild task.
    pub rebuild: tokio::sync::Notify,
    pub snapshot: RwLock<Option<Arc<Snapshot>>>,
    pub audit: super::audit::Audit,
}

/// A handle on [`Inner`].
pub(crate) type App = Arc<Inner>;

/// The lock's data even after a panic elsewhere (the state stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Now, as a FHIR instant (UTC).
pub(crate) fn now() -> String {
    crate::domain::date::instant_from_unix(unix_now())
}

/// Seconds since 1970: the store's clock, so run times compare with its records.
pub(crate) use crate::store::unix_now;

/// A site's status from the store's record of its last run.
fn status_of(stored: Option<&str>) -> &'static str {
    match stored {
        Some("done") => "ok",
        Some("failed") => "failed",
        // A run the last process did not finish (killed): its pages are kept, the next run resumes.
        Some("running") => "failed",
        _ => "never",
    }
}

impl Inner {
    /// Opens the store and the audit log and reads each site's last state from the store.
    pub(crate) fn start(options: ServeOptions) -> Result<App, ServiceError> {
        let store_at = options.config.store.clone();
        let store = store_at.open().map_err(|source| ServiceError::Store {
            store: store_at.clone(),
            source,
        })?;
        std::fs::create_dir_all(&options.out).map_err(|source| ServiceError::Output {
            path: options.out.clone(),
            source,
        })?;
        let audit = super::audit::Audit::open(&options.audit)?;
        let mut runs = BTreeMap::new();
        let mut wake = BTreeMap::new();
        for site in &options.config.sites {
            let held = store.sync_state(&site.id).ok().flatten();
            let unfinished = held.as_ref().is_some_and(|s| s.status == "running");
            let mut run = SiteRun {
                id: site.id.clone(),
                name: site.name.clone(),
                status: status_of(held.as_ref().map(|s| s.status.as_str())),
                watermark: held.and_then(|s| s.watermark),
                ..SiteRun::default()
            };
            match store.runs(&site.id, crate::store::RUNS_KEPT) {
                Ok(history) => restore(&mut run, &history),
                Err(e) => tracing::warn!(site = %site.id, error = %e, "reading the run history failed"),
            }
            if unfinished {
                run.last_error = Some("the last run did not finish (the service stopped); the next run resumes".into());
            }
            runs.insert(site.id.clone(), run);
            wake.insert(site.id.clone(), Arc::new(tokio::sync::Notify::new()));
        }
        Ok(Arc::new(Inner {
            listen: options.listen,
            store_at,
            out: options.out,
            mappings: options.mappings,
            prepare: options.prepare,
            store: Arc::new(Mutex::new(store)),
            counters: Mutex::new(runs.keys().map(|k| (k.clone(), Counters::default())).collect()),
            runs: Mutex::new(runs),
            wake,
            rebuild: tokio::sync::Notify::new(),
            snapshot: RwLock::new(None),
            audit,
            config: options.config,
        }))
    }

    /// Every site's run state, in config order.
    pub(crate) fn site_runs(&self) -> Vec<SiteRun> {
        let runs = lock(&self.runs);
        let ordered = self.config.sites.iter().filter_map(|s| runs.get(&s.id));
        ordered.cloned().collect()
    }

    /// Changes a site's run state.
    pub(crate) fn update_run(&self, site: &str, f: impl FnOnce(&mut SiteRun)) {
        if let Some(run) = lock(&self.runs).get_mut(site) {
            f(run);
        }
    }

    /// Changes a site's counters.
    pub(crate) fn count(&self, site: &str, f: impl FnOnce(&mut Counters)) {
        if let Some(c) = lock(&self.counters).get_mut(site) {
            f(c);
        }
    }

    /// The latest snapshot, if one was built.
    pub(crate) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
