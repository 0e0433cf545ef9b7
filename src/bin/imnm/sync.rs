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

/// One demo site: which mock vendor serves it, and how it is synced.
struct DemoSite {
    site: char,
    vendor: imnm_fhir::mock::Vendor,
    mode: Mode,
    smart: bool,
    faults: &'static str,
}

/// Site A writes Epic style (Epic mock, SMART Backend Services with a key made
/// now, token expiry, crawl), site B Cerner style (Cerner mock, Bulk Data export
/// whose files redirect to another origin), site C HAPI style (HAPI mock, crawl).
const DEMO_SITES: [DemoSite; 3] = [
    DemoSite {
        site: 'a',
        vendor: imnm_fhir::mock::Vendor::Epic,
        mode: Mode::Crawl,
        smart: true,
        faults: "429:0.05,503:0.05,truncate:0.03,token-expiry:10,seed=7",
    },
    DemoSite {
        site: 'b',
        vendor: imnm_fhir::mock::Vendor::Cerner,
        mode: Mode::Bulk,
        smart: false,
        faults: "503:0.1,drop:0.05,seed=8",
    },
    DemoSite {
        site: 'c',
        vendor: imnm_fhir::mock::Vendor::Hapi,
        mode: Mode::Crawl,
        smart: false,
        faults: "429:0.05,repeat-last:0.1,seed=9",
    },
];

/// `imnm demo`'s sync: one mock EHR per demo site, in-process, serving only that
/// site's patients as the vendor whose style the site writes (see [`DEMO_SITES`]),
/// each synced into the store at `path` (made anew). Returns the store.
pub fn demo_sync(path: &std::path::Path, mappings: &imnm_fhir::mapping::MappingSet) -> Result<Store, Exit> {
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
    let mut sites = imnm_fhir::demo::sites(&resources);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = Store::open(path)
        .with_context(|| format!("opening store {}", path.display()))
        .map_err(|e| Exit(4, e))?;
    let store = Arc::new(Mutex::new(store));
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(fail)?;
    runtime.block_on(async {
        for site in &DEMO_SITES {
            let data = sites.remove(&site.site).unwrap_or_default();
            demo_site(site, data, &store, mappings).await.map_err(fail)?;
        }
        Ok::<_, Exit>(())
    })?;
    Arc::try_unwrap(store)
        .map_err(|_| fail(anyhow::anyhow!("the store is still in use")))
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
}

async fn demo_site(
    site: &DemoSite,
    data: Vec<serde_json::Value>,
    store: &Arc<Mutex<Store>>,
    mappings: &imnm_fhir::mapping::MappingSet,
) -> anyhow::Result<()> {
    use imnm_fhir::mock::{Dataset, FaultPlan, MockEhr};
    let faults: FaultPlan = site.faults.parse().context("demo faults")?;
    let mut ehr = MockEhr::builder()
        .dataset(Dataset::Resources(data))
        .vendor(site.vendor)
        .faults(faults)
        .retry_after(std::time::Duration::ZERO);
    let mut auth = Auth::None;
    if site.smart {
        let (smart, jwks) = Smart::generate_es384("imnm-demo", "demo-es384", "system/*.rs")?;
        ehr = ehr.auth(imnm_fhir::mock::Auth::Smart {
            jwks,
            client_id: "imnm-demo".into(),
        });
        auth = Auth::Smart(smart);
    }
    let ehr = ehr.start().await.context("starting the mock EHR")?;
    let client = FhirClient::builder(ehr.base_url())
        .concurrency(4)
        .auth(auth)
        .build()?;
    let options = SyncOptions {
        mode: site.mode,
        max_poll_wait: std::time::Duration::from_millis(50),
        ..SyncOptions::default()
    };
    let report = sync::run(&client, store.clone(), mappings, &options)
        .await
        .with_context(|| format!("syncing the site {} mock EHR", site.site.to_ascii_uppercase()))?;
    let journal = ehr.journal();
    let faults = journal.iter().filter(|e| e.fault.is_some()).count();
    eprintln!(
        "site {}: {} mock EHR, {}{}: {} request(s), {faults} fault(s) injected and retried, {} resource(s) stored",
        site.site.to_ascii_uppercase(),
        site.vendor,
        if site.mode == Mode::Bulk { "Bulk Data $export" } else { "search crawl" },
        if site.smart { ", SMART Backend Services (ES384 key made for this run)" } else { "" },
        journal.len(),
        report.inserted,
    );
    Ok(())
}
