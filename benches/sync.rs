//! Sync benchmark (`cargo bench --bench sync`): crawls of ≥ 2,000 resources
//! from the in-process mock EHR with 20 ms injected latency per response. Prints
//! requests/s and the ratio of the ideal time (requests × latency / concurrency)
//! to the measured time (1.0 = every request slot always busy; the target is
//! ≥ 0.9 at concurrency 8), then the store's write rate (resources/s, pages of
//! 100 into a SQLite file). A first run without latency shows the processing
//! cost per request (mock + client).
//!
//! Two cohorts of the same kind of data: *deep* (96 patients with 20 CK results
//! each: 290 requests, concurrency 1, 4 and 8) and *wide* (400 patients with 4
//! each: 1,202 requests, concurrency 4 and 8). Every crawl starts with one
//! round trip that nothing else can overlap (the CapabilityStatement and the
//! cohort's Condition search, sent side by side; patients' searches need both):
//! with 290 requests at concurrency 8 it alone caps the ratio near 0.97; the
//! wide cohort shows the steady state.
//!
//! Then three sites at once, as `imnm sync --config` and `imnm serve` run them:
//! three mock EHRs, one client each, one SQLite store file shared behind its
//! lock. The sites run side by side, so the ideal is the longest site's
//! requests × latency / concurrency; the target is ≥ 0.9 of it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::sync::{Arc, Mutex};

// The allocator the `imnm` binary uses, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use imnm_fhir::client::FhirClient;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::mock::{FaultPlan, MockEhr};
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, SyncOptions};
use serde_json::{json, Value};

const LATENCY: Duration = Duration::from_millis(20);

/// `patients` IMNM patients, each with a Condition and `observations` CK results.
fn dataset(patients: usize, observations: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for p in 0..patients {
        let pid = format!("bench-p{p:04}");
        out.push(json!({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "2010-01-15"}));
        out.push(json!({"resourceType": "Condition", "id": format!("bench-c{p:04}"),
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "715863001"}]},
            "subject": {"reference": format!("Patient/{pid}")}, "onsetDateTime": "2015-03-01"}));
        for o in 0..observations {
            out.push(json!({"resourceType": "Observation", "id": format!("bench-o{p:04}-{o:02}"), "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
                "subject": {"reference": format!("Patient/{pid}")}, "effectiveDateTime": "2015-03-02",
                "valueQuantity": {"value": 1000 + o, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}));
        }
    }
    out
}

/// The in-process mock EHR serving `resources` with `latency` per response.
async fn mock(resources: &[Value], latency: Duration) -> MockEhr {
    MockEhr::builder()
        .dataset(resources.to_vec())
        .faults(FaultPlan::none().latency(latency))
        .start()
        .await
        .expect("mock starts")
}

fn client_of(ehr: &MockEhr, concurrency: usize) -> FhirClient {
    FhirClient::builder(ehr.base_url())
        .concurrency(concurrency)
        .build()
        .expect("client")
}

async fn crawl(
    resources: &[Value],
    mappings: &MappingSet,
    concurrency: usize,
    latency: Duration,
) -> (usize, usize, Duration) {
    let ehr = mock(resources, latency).await;
    let client = client_of(&ehr, concurrency);
    let store = Arc::new(Mutex::new(Store::in_memory().expect("store")));
    let options = SyncOptions {
        concurrency,
        ..SyncOptions::default()
    };
    let started = Instant::now();
    sync::run(&client, store.clone(), mappings, &options)
        .await
        .expect("sync");
    let took = started.elapsed();
    let stored: u64 = store.lock().expect("store").counts().expect("counts").values().sum();
    (ehr.journal().len(), stored as usize, took)
}

/// What one request costs a client when the mock adds `latency`: the mean of 20 serial
/// `GET /metadata`, loopback and the mock's own work included (the floor any request has).
async fn seen_latency(latency: Duration) -> Duration {
    let ehr = MockEhr::builder()
        .faults(FaultPlan::none().latency(latency))
        .start()
        .await
        .expect("mock starts");
    let http = reqwest::Client::new();
    let url = format!("{}/metadata", ehr.base_url());
    let started = Instant::now();
    for _ in 0..20 {
        http.get(&url)
            .send()
            .await
            .expect("metadata")
            .bytes()
            .await
            .expect("body");
    }
    started.elapsed() / 20
}

/// Three sites synced side by side into one SQLite file, each from its own mock EHR:
/// (requests of each site, stored resources, wall time).
async fn three_sites(
    resources: &[Value],
    mappings: &MappingSet,
    concurrency: usize,
    latency: Duration,
) -> (Vec<usize>, usize, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("sites.db")).expect("store")));
    let mut ehrs = Vec::new();
    for _ in 0..3 {
        ehrs.push(mock(resources, latency).await);
    }
    let mut running = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (i, ehr) in ehrs.iter().enumerate() {
        let client = client_of(ehr, concurrency);
        let options = SyncOptions {
            site: format!("site-{i}"),
            concurrency,
            ..SyncOptions::default()
        };
        let (store, mappings) = (store.clone(), mappings.clone());
        running.spawn(async move { sync::run(&client, store, &mappings, &options).await.expect("sync") });
    }
    while let Some(done) = running.join_next().await {
        done.expect("site task");
    }
    let took = started.elapsed();
    let stored: u64 = store.lock().expect("store").counts().expect("counts").values().sum();
    (ehrs.iter().map(|e| e.journal().len()).collect(), stored as usize, took)
}

fn store_write_rate(resources: &[Value]) -> (usize, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    let started = Instant::now();
    for page in resources.chunks(100) {
        store.write_page("bench", page).expect("write");
    }
    (resources.len(), started.elapsed())
}

fn main() {
    let mappings = MappingSet::builtin().expect("mappings");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deep = dataset(96, 20);
    println!(
        "sync benchmark: crawls from the in-process mock EHR, {} ms latency per response",
        LATENCY.as_millis()
    );
    // Processing alone (mock + client, no injected latency), serial: what each request costs
    // besides the waiting.
    let (requests, _, took) = runtime.block_on(crawl(&deep, &mappings, 1, Duration::ZERO));
    println!(
        "baseline without latency, concurrency 1: {requests} requests in {:.3} s = {:.2} ms processing per request",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / requests as f64
    );
    let floor = runtime.block_on(seen_latency(LATENCY));
    println!(
        "latency as a client sees it: {:.2} ms per serial GET /metadata (asked: {} ms)",
        floor.as_secs_f64() * 1000.0,
        LATENCY.as_millis()
    );
    println!("cohort  resources  concurrency  requests  stored  seconds  requests/s  ideal s  ratio (ideal/measured)");
    let wide = dataset(400, 4);
    for (name, resources, levels) in [("deep", &deep, &[1, 4, 8][..]), ("wide", &wide, &[4, 8][..])] {
        for &concurrency in levels {
            let (requests, stored, took) = runtime.block_on(crawl(resources, &mappings, concurrency, LATENCY));
            let ideal = LATENCY.as_secs_f64() * requests as f64 / concurrency as f64;
            println!(
                "{name:>6}  {:>9}  {concurrency:>11}  {requests:>8}  {stored:>6}  {:>7.2}  {:>10.1}  {ideal:>7.2}  {:>5.2}",
                resources.len(),
                took.as_secs_f64(),
                requests as f64 / took.as_secs_f64(),
                ideal / took.as_secs_f64()
            );
        }
    }
    println!("three sites at once, one SQLite store file (ideal = the longest site's requests x latency / concurrency; target >= 0.9)");
    println!(
        "cohort  resources/site  concurrency  requests per site  stored  seconds  ideal s  ratio (ideal/measured)"
    );
    for (name, resources) in [("deep", &deep), ("wide", &wide)] {
        let (requests, stored, took) = runtime.block_on(three_sites(resources, &mappings, 8, LATENCY));
        let longest = requests.iter().copied().max().unwrap_or(0);
        let ideal = LATENCY.as_secs_f64() * longest as f64 / 8.0;
        let per_site: Vec<String> = requests.iter().map(ToString::to_string).collect();
        println!(
            "{name:>6}  {:>14}  {:>11}  {:>17}  {stored:>6}  {:>7.2}  {ideal:>7.2}  {:>5.2}",
            resources.len(),
            8,
            per_site.join("/"),
            took.as_secs_f64(),
            ideal / took.as_secs_f64()
        );
    }
    let (n, took) = store_write_rate(&deep);
    println!(
        "store writes: {n} resources in pages of 100 into a SQLite file: {:.3} s, {:.0} resources/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
