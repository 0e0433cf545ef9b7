//! `imnm demo`'s sync: one mock EHR per demo site, in-process, synced into one store
//! (as sites `a`, `b` and `c`).

use std::sync::{Arc, Mutex};

use anyhow::Context;
use imnm_fhir::client::{Auth, FhirClient, Smart};
use imnm_fhir::exit;
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, Mode, SyncOptions};

use crate::{Exit, OrExit};

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
    // The demo's sync is a sync: whatever stops it exits as a failed sync.
    let fail = |e: anyhow::Error| Exit::new(exit::REMOTE, e);
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
        .or_exit(exit::OUTPUT)?;
    let store = Arc::new(Mutex::new(store));
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(fail)?;
    runtime.block_on(async {
        for site in &DEMO_SITES {
            // Each site numbers its resources 1, 2, 3, … as HAPI does: the sites share ids.
            let data = imnm_fhir::demo::renumber(&sites.remove(&site.site).unwrap_or_default());
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
    let client = FhirClient::builder(ehr.base_url()).concurrency(4).auth(auth).build()?;
    let options = SyncOptions {
        site: site.site.to_string(),
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
        if site.mode == Mode::Bulk {
            "Bulk Data $export"
        } else {
            "search crawl"
        },
        if site.smart {
            ", SMART Backend Services (ES384 key made for this run)"
        } else {
            ""
        },
        journal.len(),
        report.inserted,
    );
    Ok(())
}
