//! Bulk mode: a Group, Patient or system `$export` with `_type` (the declared
//! types of [`SYNCED_TYPES`]) and `_since`; the status URL is saved in the
//! store before the first poll, so an interrupted run resumes polling it. Polls
//! honour `Retry-After` (else back off from 1 s to `max_poll_wait`); the
//! manifest's files are downloaded `concurrency` at a time, checked against
//! their `count`, and written in chunks of [`CHUNK`] resources per transaction.
//! The `error` files' OperationOutcomes are kept in the store (never logged:
//! their text may name patients). The `deleted` files (sent with `_since`:
//! Bundles of DELETE entries, `request.url` = `Type/id`) remove those
//! resources from the store once every output file is written, counted in
//! [`super::SyncReport::deleted`]. A finished export is DELETEd on the server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{bulk_level, lock, Capabilities, Ctx, Progress, SyncError, SyncOptions, SYNCED_TYPES};
use crate::client::{BulkPoll, FhirClient};
use crate::fhir::reference::Ref;
use crate::store::Store;

/// Resources written per transaction while storing a bulk file.
pub const CHUNK: usize = 1000;

/// Longest `Retry-After` honoured between polls.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Exports; returns the manifest's `transactionTime` (the watermark).
pub(super) async fn run(
    ctx: &Arc<Ctx>,
    caps: &Capabilities,
    options: &SyncOptions,
    since: Option<&str>,
) -> Result<Option<String>, SyncError> {
    let saved = lock(&ctx.store).sync_state(&ctx.site)?.and_then(|s| s.status_url);
    let manifest = match saved {
        Some(url) => match poll(ctx, &url, options).await {
            Ok(m) => {
                ctx.report.lock().unwrap_or_else(|e| e.into_inner()).resumed = true;
                tracing::info!("resumed the saved bulk export");
                (url, m)
            }
            Err(SyncError::Client(e)) if matches!(e.status(), Some(404 | 410)) => {
                tracing::info!("the saved bulk export is gone on the server; starting a new one");
                lock(&ctx.store).set_status_url(&ctx.site, None)?;
                kick_off_and_poll(ctx, caps, options, since).await?
            }
            Err(e) => return Err(e),
        },
        None => kick_off_and_poll(ctx, caps, options, since).await?,
    };
    let (status_url, manifest) = manifest;
    download_all(ctx, &manifest, options.concurrency).await?;
    lock(&ctx.store).set_status_url(&ctx.site, None)?;
    if let Err(e) = ctx.client.bulk_cancel(&status_url).await {
        tracing::info!(
            status = e.status(),
            "the server did not accept the DELETE of a finished export"
        );
    }
    Ok(manifest["transactionTime"].as_str().map(str::to_string))
}

async fn kick_off_and_poll(
    ctx: &Ctx,
    caps: &Capabilities,
    options: &SyncOptions,
    since: Option<&str>,
) -> Result<(String, Value), SyncError> {
    let types: Vec<&str> = SYNCED_TYPES.iter().copied().filter(|t| caps.supports(t)).collect();
    if !types.contains(&"Patient") {
        return Err(SyncError::NotDeclared {
            resource_type: "Patient",
        });
    }
    let mut params = vec![("_type", types.join(","))];
    if let Some(since) = since {
        params.push(("_since", since.to_string()));
    }
    let url = ctx.client.bulk_kick_off(&bulk_level(options), &params).await?;
    lock(&ctx.store).set_status_url(&ctx.site, Some(&url))?;
    tracing::info!("bulk export started");
    let manifest = poll(ctx, &url, options).await?;
    Ok((url, manifest))
}

/// Polls until the manifest comes.
async fn poll(ctx: &Ctx, status_url: &str, options: &SyncOptions) -> Result<Value, SyncError> {
    ctx.progress(Progress::Phase {
        name: "export",
        total: None,
    });
    let mut backoff = Duration::from_secs(1).min(options.max_poll_wait);
    let started = std::time::Instant::now();
    loop {
        match ctx.client.bulk_poll(status_url).await? {
            BulkPoll::Done(manifest) => return Ok(manifest),
            BulkPoll::Running { progress, retry_after } => {
                let wait = match retry_after {
                    Some(ra) => ra.min(MAX_RETRY_AFTER),
                    None => {
                        let w = backoff;
                        backoff = (backoff * 2).min(options.max_poll_wait);
                        w
                    }
                };
                if let Some(p) = &progress {
                    ctx.progress(Progress::Message(p.clone()));
                }
                tracing::info!(
                    progress = progress.as_deref().unwrap_or(""),
                    wait_ms = wait.as_millis() as u64,
                    "bulk export running"
                );
                if started.elapsed() + wait > options.max_export_wait {
                    return Err(SyncError::ExportStillRunning {
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Which list of the manifest a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    Error,
    Deleted,
}

/// One manifest file to fetch.
struct File {
    url: String,
    count: Option<u64>,
    kind: Kind,
}

fn files(manifest: &Value) -> Vec<File> {
    let list = |key: &str, kind: Kind| {
        manifest[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(move |f| {
                Some(File {
                    url: f["url"].as_str()?.to_string(),
                    count: f["count"].as_u64(),
                    kind,
                })
            })
            .collect::<Vec<_>>()
    };
    let mut all = list("output", Kind::Output);
    all.extend(list("error", Kind::Error));
    all.extend(list("deleted", Kind::Deleted));
    all
}

/// The `(type, id)` of every DELETE entry of the `deleted` files' Bundles,
/// and how many entries could not be read as one.
fn deletions(bundles: &[Value]) -> (Vec<(String, String)>, u64) {
    let (mut refs, mut unreadable) = (Vec::new(), 0);
    for entry in bundles.iter().flat_map(|b| b["entry"].as_array().into_iter().flatten()) {
        let request = &entry["request"];
        let target = request["url"].as_str().map(crate::fhir::reference::parse);
        match (request["method"].as_str(), target) {
            (Some("DELETE"), Some(Ref::Typed { resource_type, id })) => refs.push((resource_type, id)),
            _ => unreadable += 1,
        }
    }
    (refs, unreadable)
}

async fn download_all(ctx: &Arc<Ctx>, manifest: &Value, concurrency: usize) -> Result<(), SyncError> {
    // The token goes to file URLs on the base's origin only (the client checks the origin of
    // every hop, redirects included), whatever `requiresAccessToken` says: a storage origin
    // that needs no token never sees it, and the base's own file endpoint may still want it.
    let with_token = true;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let files = files(manifest);
    ctx.progress(Progress::Phase {
        name: "files",
        total: Some(files.len() as u64),
    });
    for file in files {
        let (ctx, permits) = (ctx.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let got = ctx.client.bulk_download(&file.url, with_token, file.count).await?;
            ctx.progress(Progress::Step);
            if file.kind != Kind::Output {
                return Ok::<_, SyncError>((file.kind, got.resources));
            }
            let mut resources = got.resources.into_iter();
            loop {
                let chunk: Vec<Value> = resources.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                ctx.write_off_runtime(chunk).await?;
            }
            Ok((file.kind, Vec::new()))
        });
    }
    let (mut outcomes, mut deleted) = (Vec::new(), Vec::new());
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap_or_else(|source| {
            Err(SyncError::Task {
                task: "download",
                source,
            })
        }) {
            Ok((Kind::Deleted, bundles)) => deleted.extend(bundles),
            Ok((_, o)) => outcomes.extend(o),
            Err(e) if first_error.is_none() => {
                tasks.abort_all();
                first_error = Some(e);
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let issues: usize = outcomes.iter().map(|o| o["issue"].as_array().map_or(1, Vec::len)).sum();
    if !outcomes.is_empty() {
        tracing::warn!(
            outcomes = outcomes.len(),
            issues,
            "the server reported problems in the export's error files (kept in the store)"
        );
    }
    lock(&ctx.store).replace_outcomes(&ctx.site, &outcomes)?;
    let (refs, unreadable) = deletions(&deleted);
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "entries of the export's deleted files are not DELETEs of Type/id; ignored"
        );
    }
    let removed = lock(&ctx.store).delete(&ctx.site, &refs)?;
    tracing::info!(listed = refs.len(), removed, "deleted resources removed from the store");
    let mut report = ctx.report.lock().unwrap_or_else(|e| e.into_inner());
    report.deleted = removed;
    report.server_issues = issues as u64;
    report.patients = report.received.get("Patient").copied().unwrap_or(0);
    Ok(())
}

/// Cancels the bulk export a run left pending for `site` (DELETE on the saved
/// status URL with `client`, then forgets it). Returns whether there was one.
/// An empty `site` means the one derived from the client's base URL, as in [`super::run`].
pub async fn cancel(client: &FhirClient, store: &std::sync::Mutex<Store>, site: &str) -> Result<bool, SyncError> {
    let site = super::site_of(client, site)?;
    let saved = lock(store).sync_state(&site)?.and_then(|s| s.status_url);
    let Some(url) = saved else {
        return Ok(false);
    };
    match client.bulk_cancel(&url).await {
        Ok(()) => {}
        Err(e) if matches!(e.status(), Some(404 | 410)) => {}
        Err(e) => return Err(e.into()),
    }
    lock(store).set_status_url(&site, None)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifest_files_with_counts_and_errors() {
        let m = json!({"output": [{"type": "Patient", "url": "http://h/f/1", "count": 3}, {"type": "X"}],
                       "error": [{"type": "OperationOutcome", "url": "http://h/e/1"}]});
        let f = files(&m);
        assert_eq!(f.len(), 2, "an entry without url is skipped");
        assert_eq!((f[0].count, f[0].kind), (Some(3), Kind::Output));
        assert_eq!((f[1].count, f[1].kind), (None, Kind::Error));
    }

    #[test]
    fn deletions_from_bundles_of_delete_entries() {
        let line = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Observation/o1"}},
            {"request": {"method": "DELETE", "url": "http://h/fhir/Patient/p2"}},
            {"request": {"method": "PUT", "url": "Observation/o3"}},
            {"request": {"method": "DELETE", "url": "Observation?code=x"}}]});
        let (refs, unreadable) = deletions(&[line]);
        let want = [("Observation", "o1"), ("Patient", "p2")].map(|(t, i)| (t.to_string(), i.to_string()));
        assert_eq!(refs, want);
        assert_eq!(unreadable, 2);
    }
}
