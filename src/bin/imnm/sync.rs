//! `imnm sync`: crawls a FHIR server's IMNM cohort into the SQLite store.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use imnm_fhir::client::{Auth, FhirClient, Smart};
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, Mode, Since, SinceMode, SyncError, SyncOptions, SyncReport};

use crate::cli::{SinceModeArg, SyncArgs, SyncMode};
use crate::Exit;

/// The environment variable holding the token for `--auth bearer`.
pub const TOKEN_VAR: &str = "IMNM_TOKEN";

/// Parses the arguments, runs the crawl, prints counts.
pub fn run(args: SyncArgs) -> Result<u8, Exit> {
    let usage = |e: anyhow::Error| Exit(2, e);
    let mappings = crate::load_mappings(args.mappings.as_deref())?;
    let auth = match args.auth.as_str() {
        "none" => Auth::None,
        "bearer" => Auth::bearer_from_env(TOKEN_VAR).map_err(|e| usage(e.into()))?,
        "smart" => {
            let (Some(client_id), Some(key)) = (&args.client_id, &args.key) else {
                return Err(usage(anyhow::anyhow!("--auth smart needs --client-id and --key")));
            };
            let pem = std::fs::read(key)
                .with_context(|| format!("reading key {}", key.display()))
                .map_err(|e| Exit(3, e))?;
            Auth::Smart(Smart::from_pem(client_id, &pem, args.kid.clone(), &args.scope).map_err(|e| usage(e.into()))?)
        }
        other => return Err(usage(anyhow::anyhow!("--auth {other}: expected none, bearer or smart"))),
    };
    let patients = match &args.patients {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(|e| Exit(3, e))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let concurrency = usize::try_from(args.concurrency).unwrap_or(4);
    let client = FhirClient::builder(args.base_url.clone())
        .concurrency(concurrency)
        .auth(auth)
        .build()
        .map_err(|e| usage(e.into()))?;
    let store = Store::open(&args.store)
        .with_context(|| format!("opening store {}", args.store.display()))
        .map_err(|e| Exit(4, e))?;
    let store = Arc::new(Mutex::new(store));
    let options = SyncOptions {
        concurrency,
        patients,
        group: args.group.clone(),
        mode: match args.mode {
            SyncMode::Crawl => Mode::Crawl,
            SyncMode::Bulk => Mode::Bulk,
        },
        system_export: args.system,
        since: match args.since.as_deref() {
            None => Since::All,
            Some("auto") => Since::Auto,
            Some(t) => Since::At(t.to_string()),
        },
        since_mode: match args.since_mode {
            SinceModeArg::LastUpdated => SinceMode::LastUpdated,
            SinceModeArg::Created => SinceMode::Created,
        },
        ..SyncOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(usage)?;
    let report = runtime
        .block_on(run_until_ctrl_c(&client, store.clone(), &mappings, &options))
        .map_err(|e| match e {
            Stopped::Sync(SyncError::Options(m)) => usage(anyhow::anyhow!(m)),
            Stopped::Sync(e) => Exit(6, anyhow::Error::new(e).context("sync")),
            Stopped::Interrupted(msg) => Exit(130, anyhow::anyhow!(msg)),
        })?;
    let counts = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .counts()
        .context("counting the store")
        .map_err(|e| Exit(4, e))?;
    eprintln!(
        "synced {} patient(s): {} page(s), {} new, {} updated, {} medication(s) fetched by reference",
        report.patients, report.pages, report.inserted, report.updated, report.medications_fetched
    );
    if report.resumed {
        eprintln!("resumed the bulk export an interrupted run had started");
    }
    if let Some(since) = &report.since {
        eprintln!("changes since {since}");
    }
    if report.server_issues > 0 {
        eprintln!(
            "the server reported {} problem(s) in the export's error files (kept in the store's server_outcome table)",
            report.server_issues
        );
    }
    let per_type: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("store {}: {}", args.store.display(), per_type.join(", "));
    Ok(0)
}

enum Stopped {
    Sync(SyncError),
    Interrupted(String),
}

/// Runs the sync; on Ctrl-C stops it, cancels (DELETE) a pending bulk export and says so.
async fn run_until_ctrl_c(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &imnm_fhir::mapping::MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, Stopped> {
    tokio::select! {
        r = sync::run(client, store.clone(), mappings, options) => r.map_err(Stopped::Sync),
        _ = tokio::signal::ctrl_c() => {
            let cancelled = sync::bulk::cancel(client, &store).await;
            let msg = match cancelled {
                Ok(true) => "interrupted: the pending bulk export was cancelled on the server (pages already written stay in the store)",
                Ok(false) => "interrupted (pages already written stay in the store)",
                Err(_) => "interrupted; cancelling the pending bulk export failed (a rerun resumes it)",
            };
            Err(Stopped::Interrupted(msg.to_string()))
        }
    }
}

/// `imnm demo`'s sync: starts the mock EHR in-process on the built-in demo data
/// (generic vendor, a few 429, 503 and truncated answers), crawls it into the
/// store at `path` and returns the store.
pub fn demo_sync(path: &std::path::Path, mappings: &imnm_fhir::mapping::MappingSet) -> Result<Store, Exit> {
    use imnm_fhir::mock::{Dataset, FaultPlan, MockEhr, Vendor};
    let fail = |e: anyhow::Error| Exit(6, e);
    let bundle: serde_json::Value = serde_json::from_str(imnm_fhir::demo::BUNDLE_JSON)
        .context("the built-in demo data")
        .map_err(fail)?;
    let resources: Vec<serde_json::Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource").cloned())
        .collect();
    let faults: FaultPlan = "429:0.05,503:0.05,truncate:0.03,seed=7"
        .parse()
        .context("demo faults")
        .map_err(fail)?;
    let store = Store::open(path)
        .with_context(|| format!("opening store {}", path.display()))
        .map_err(|e| Exit(4, e))?;
    let store = Arc::new(Mutex::new(store));
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(fail)?;
    let report = runtime.block_on(async {
        let ehr = MockEhr::builder()
            .dataset(Dataset::Resources(resources))
            .vendor(Vendor::Generic)
            .faults(faults)
            .retry_after(std::time::Duration::ZERO)
            .start()
            .await
            .context("starting the mock EHR")
            .map_err(fail)?;
        let client = FhirClient::builder(ehr.base_url())
            .concurrency(4)
            .build()
            .map_err(|e| fail(e.into()))?;
        let report = sync::crawl(&client, store.clone(), mappings, &SyncOptions::default())
            .await
            .context("syncing the mock EHR")
            .map_err(fail)?;
        let faults = ehr.journal().iter().filter(|e| e.fault.is_some()).count();
        Ok::<_, Exit>((report, ehr.journal().len(), faults))
    })?;
    let (report, requests, faults) = report;
    eprintln!(
        "synced {} patient(s) from the mock EHR: {requests} request(s), {faults} fault(s) injected and retried, {} new resource(s) stored",
        report.patients, report.inserted
    );
    Arc::try_unwrap(store)
        .map_err(|_| fail(anyhow::anyhow!("the store is still in use")))
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
}
