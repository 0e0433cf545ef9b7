//! `imnm sync --config registry.toml --worker`: one of several sync workers
//! (processes, on one machine or several) sharing the registry's store. Each
//! takes the due sites no other worker holds, one at a time, under a lease in
//! the store ([`Store::take_lease`]) renewed while the site syncs, and exits
//! when none is left. Two workers never sync one site at once; a killed
//! worker's lease expires and its site is taken over (writes are idempotent,
//! so the store ends as an uninterrupted run's).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imnm_fhir::mapping::MappingSet;
use imnm_fhir::registry::SiteConfig;
use imnm_fhir::store::{Store, SyncState};
use imnm_fhir::sync::Since;

use crate::sync::RunLog;
use crate::sync_sites::{prepare, run_sites, Outcome};
use crate::Exit;

/// How soon a site whose last run failed is due again, at most.
const RETRY_FAILED: Duration = Duration::from_secs(15 * 60);

/// One worker's run over the registry's sites.
pub(crate) struct Work<'a> {
    /// The sites it may take, in the config's order.
    pub sites: &'a [&'a SiteConfig],
    /// `--since`.
    pub since: Since,
    /// The shared store.
    pub store: Arc<Mutex<Store>>,
    /// The mappings.
    pub mappings: Arc<MappingSet>,
    /// The run log.
    pub log: &'a Arc<RunLog>,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

impl Work<'_> {
    /// Syncs every due site it can lease; the outcomes of those it synced.
    pub(crate) async fn run(self) -> Result<Vec<(String, Outcome)>, Exit> {
        let holder = holder_id();
        eprintln!("worker {holder}: {} site(s) in the config", self.sites.len());
        let mut outcomes = Vec::new();
        for site in self.sites {
            if !self.is_due(site)? {
                eprintln!("site {}  not due", site.id);
                continue;
            }
            if !self.with_store(|s| s.take_lease(&site.id, &holder, self.lease))? {
                eprintln!("site {}  held by another worker", site.id);
                continue;
            }
            // Another worker may have finished it between the look and the lease.
            if !self.is_due(site)? {
                self.with_store(|s| s.release_lease(&site.id, &holder))?;
                eprintln!("site {}  just synced by another worker", site.id);
                continue;
            }
            let renewing = self.renew(site.id.clone(), holder.clone());
            let prepared = prepare(site, self.since.clone(), None, self.log);
            let done = run_sites(
                vec![(site.id.clone(), prepared)],
                self.store.clone(),
                self.mappings.clone(),
                1,
                self.log,
            )
            .await;
            renewing.abort();
            self.with_store(|s| s.release_lease(&site.id, &holder))?;
            outcomes.extend(done?);
        }
        Ok(outcomes)
    }

    /// Whether `site` should be synced now (see the module docs and `--worker`).
    fn is_due(&self, site: &SiteConfig) -> Result<bool, Exit> {
        let state = self.with_store(|s| s.sync_state(&site.id))?;
        Ok(due(state.as_ref(), site.every, imnm_fhir::store::unix_now()))
    }

    /// Renews the lease every third of its length until aborted.
    fn renew(&self, site: String, holder: String) -> tokio::task::JoinHandle<()> {
        let (store, lease) = (self.store.clone(), self.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let kept = store
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take_lease(&site, &holder, lease);
                if !matches!(kept, Ok(true)) {
                    eprintln!("warning: site {site}: the lease could not be renewed; another worker may take the site");
                }
            }
        })
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, imnm_fhir::store::StoreError>) -> Result<T, Exit> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut store).map_err(|e| Exit::new(imnm_fhir::exit::OUTPUT, anyhow::Error::new(e).context("the store")))
    }
}

/// Due: never finished; or its last run ended `every` ago (done) or
/// min(`every`, [`RETRY_FAILED`]) ago (failed); a run left `running` by a
/// killed worker is due (its lease tells whether someone still holds it).
fn due(state: Option<&SyncState>, every: Duration, now: i64) -> bool {
    let Some(state) = state else { return true };
    let Some(ended) = state.finished_at else { return true };
    let wait = match state.status.as_str() {
        "done" => every,
        "failed" => every.min(RETRY_FAILED),
        _ => return true,
    };
    now.saturating_sub(ended) >= i64::try_from(wait.as_secs()).unwrap_or(i64::MAX)
}

/// This worker's name in leases: host, process id and a random tag (never a patient's or user's data).
fn holder_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let mut tag = [0u8; 3];
    let _ = getrandom::getrandom(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{tag}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str, finished_at: Option<i64>) -> SyncState {
        SyncState {
            status: status.into(),
            finished_at,
            ..SyncState::default()
        }
    }

    #[test]
    fn what_is_due() {
        let day = Duration::from_secs(86_400);
        assert!(due(None, day, 1_000_000));
        assert!(due(Some(&state("done", None)), day, 1_000_000));
        assert!(!due(Some(&state("done", Some(1_000_000 - 10))), day, 1_000_000));
        assert!(due(Some(&state("done", Some(1_000_000 - 86_400))), day, 1_000_000));
        assert!(!due(Some(&state("failed", Some(1_000_000 - 60))), day, 1_000_000));
        assert!(due(Some(&state("failed", Some(1_000_000 - 900))), day, 1_000_000));
        assert!(due(Some(&state("running", Some(1_000_000))), day, 1_000_000));
    }
}
