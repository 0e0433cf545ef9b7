//! One task per site: sync on the site's `every` (jittered), sooner after a
//! "sync now", with exponential backoff after a failure (capped at the
//! interval); one rebuild task that rebuilds the cohort outputs after
//! successful syncs (several finishing together give one rebuild).

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::state::{lock, now, unix_now, App};
use crate::registry::SiteConfig;
use crate::store::RunRecord;
use crate::sync::{self, Since, SyncReport};

/// The first backoff after a failure: a sixteenth of the interval, at least a second (never more than the interval).
fn backoff(every: Duration, failures: u32) -> Duration {
    let base = (every / 16).max(Duration::from_secs(1)).min(every);
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(every)
}

/// Up to a tenth of `every`, at random, so sites due together do not start together.
fn jitter(every: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let random = getrandom::getrandom(&mut bytes)
        .map(|()| u32::from_le_bytes(bytes))
        .unwrap_or(0);
    (every / 10).mul_f64(f64::from(random) / f64::from(u32::MAX))
}

/// Starts each site's task and the rebuild task; they end when `stop` turns true.
pub(crate) fn start(app: &App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = app
        .config
        .sites
        .iter()
        .map(|site| tokio::spawn(site_loop(app.clone(), site.clone(), stop.clone())))
        .collect();
    tasks.push(tokio::spawn(rebuild_loop(app.clone(), stop)));
    // The outputs of what the store already holds, before the first sync ends.
    app.rebuild.notify_one();
    tasks
}

/// Builds the cohort outputs whenever asked, until `stop`.
async fn rebuild_loop(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = app.rebuild.notified() => {}
            () = stopped(&mut stop) => return,
        }
        let worker = app.clone();
        match tokio::task::spawn_blocking(move || super::snapshot::rebuild(&worker)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "rebuilding the cohort outputs failed"),
            Err(e) => tracing::warn!(error = %e, "the rebuild task stopped"),
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Syncs one site on its schedule until `stop`.
async fn site_loop(app: App, site: SiteConfig, mut stop: watch::Receiver<bool>) {
    let Some(wake) = app.wake.get(&site.id).cloned() else {
        return;
    };
    // First run soon after start (jittered): an incremental run from the store's watermark.
    let mut delay = jitter(site.every.min(Duration::from_secs(10)));
    loop {
        let due = std::time::SystemTime::now() + delay;
        let due_unix = due
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let next = crate::domain::date::instant_from_unix(i64::try_from(due_unix).unwrap_or(0));
        app.update_run(&site.id, |r| r.next_run = Some(next));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = wake.notified() => {}
            () = stopped(&mut stop) => return,
        }
        let Some(ok) = run_once(&app, &site, &mut stop).await else {
            return;
        };
        delay = if ok {
            site.every + jitter(site.every)
        } else {
            let failures = lock(&app.runs).get(&site.id).map_or(1, |r| r.failures_in_row);
            backoff(site.every, failures)
        };
    }
}

/// One sync of `site`; `None` when stopped meanwhile, else whether it succeeded.
async fn run_once(app: &App, site: &SiteConfig, stop: &mut watch::Receiver<bool>) -> Option<bool> {
    let started_at = now();
    app.update_run(&site.id, |r| {
        r.status = "running";
        r.last_start = Some(started_at.clone());
        r.next_run = None;
    });
    let started = Instant::now();
    let prepared = (app.prepare)(site);
    let outcome = match prepared {
        Err(message) => Err(message),
        Ok((client, mut options)) => {
            options.since = Since::Auto;
            options.site = site.id.clone();
            let run = sync::run(&client, app.store.clone(), &app.mappings, &options);
            tokio::select! {
                r = run => r.map_err(|e| error_text(&e)),
                () = stopped(stop) => {
                    // The run stopped at its await point: pages written so far stay; a pending export is cancelled.
                    let _ = sync::bulk::cancel(&client, &app.store, &site.id).await;
                    app.update_run(&site.id, |r| r.status = "failed");
                    let stopped = Err("stopped: the service shut down during the run".to_string());
                    remember(app, &site.id, &started_at, &stopped, started.elapsed().as_secs_f64());
                    return None;
                }
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    remember(app, &site.id, &started_at, &outcome, seconds);
    Some(record(app, &site.id, outcome, seconds))
}

/// Adds a finished run to the store's run history (what the page and
/// `/api/sites/{id}/runs` show, kept across restarts); a store error is
/// logged and the run goes on.
fn remember(app: &App, site: &str, started: &str, outcome: &Result<SyncReport, String>, seconds: f64) {
    let (status, new, updated, error) = match outcome {
        Ok(r) => ("ok", r.inserted, r.updated, None),
        Err(text) => ("failed", 0, 0, Some(text.clone())),
    };
    let run = RunRecord {
        started: started.to_string(),
        ended: now(),
        status: status.to_string(),
        new,
        updated,
        seconds,
        error,
    };
    if let Err(e) = lock(&app.store).record_run(site, &run) {
        tracing::warn!(site, error = %e, "recording the run in the store's history failed");
    }
}

/// Records a run's outcome in the site's state and counters; asks for a rebuild after a success.
fn record(app: &App, site: &str, outcome: Result<SyncReport, String>, seconds: f64) -> bool {
    let ok = outcome.is_ok();
    app.count(site, |c| {
        c.syncs += 1;
        c.duration_seconds += seconds;
        match &outcome {
            Ok(r) => {
                c.resources_new += r.inserted;
                c.resources_updated += r.updated;
                c.last_success_unix = Some(unix_now());
            }
            Err(_) => c.failures += 1,
        }
    });
    app.update_run(site, |r| {
        r.last_end = Some(now());
        match outcome {
            Ok(report) => {
                r.status = "ok";
                r.new = report.inserted;
                r.updated = report.updated;
                r.watermark = report.watermark.or(r.watermark.take());
                r.last_error = None;
                r.failures_in_row = 0;
            }
            Err(text) => {
                r.status = "failed";
                r.last_error = Some(text);
                r.failures_in_row = r.failures_in_row.saturating_add(1);
            }
        }
    });
    if ok {
        app.rebuild.notify_one();
    }
    ok
}

/// A sync error as shown: its causes joined, no URL query (everything after `?` in a URL is cut).
pub(crate) fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    strip_queries(&text)
}

/// `text` with every URL query cut (`?…` up to the next space).
pub(crate) fn strip_queries(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.find('?') {
            Some(i) if word[..i].contains('/') => &word[..i],
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_the_interval() {
        let every = Duration::from_secs(3600);
        let steps: Vec<u64> = (1..=8).map(|n| backoff(every, n).as_secs()).collect();
        assert_eq!(steps, [225, 450, 900, 1800, 3600, 3600, 3600, 3600]);
        assert_eq!(backoff(Duration::from_millis(500), 3), Duration::from_millis(500));
    }

    #[test]
    fn jitter_is_at_most_a_tenth() {
        let every = Duration::from_secs(100);
        assert!((0..50).all(|_| jitter(every) <= Duration::from_secs(10)));
    }

    #[test]
    fn queries_are_cut_from_error_text() {
        let t = strip_queries("GET http://h/fhir/Patient?identifier=123 failed: 500");
        assert_eq!(t, "GET http://h/fhir/Patient failed: 500");
    }
}
