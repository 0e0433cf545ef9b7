//! Store benchmark (`cargo bench --bench store`): resources written per second
//! into each backend, the same pages in the same run: a SQLite file, and a
//! PostgreSQL database when `IMNM_PG_URL` names a server (`bash .ci/postgres
//! start`). 50,000 Observations of ~600 bytes in pages of 500 (a sync's page
//! writes: one transaction each), first as new rows, then the same pages again
//! (unchanged: each row read and compared), then as newer versions (replaced).
//! Prints resources/s per backend and phase and PostgreSQL ÷ SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imnm_fhir::store::{testing, Store};
use serde_json::{json, Value};

const RESOURCES: usize = 50_000;
const PAGE: usize = 500;

fn page(start: usize, version: u32) -> Vec<Value> {
    (start..start + PAGE)
        .map(|i| {
            json!({"resourceType": "Observation", "id": format!("ck-{i}"),
                   "meta": {"versionId": version.to_string(), "lastUpdated": format!("2024-0{version}-01T00:00:00Z")},
                   "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6", "display": "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma"}]},
                   "subject": {"reference": format!("Patient/p{}", i / 150)},
                   "effectiveDateTime": "2014-09-02", "valueQuantity": {"value": 1000 + i % 9000, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}})
        })
        .collect()
}

/// Resources/s for each phase (new, unchanged, replaced).
fn rates(store: &mut Store) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (phase, version) in [(0, 1), (1, 1), (2, 2)] {
        let pages: Vec<Vec<Value>> = (0..RESOURCES).step_by(PAGE).map(|s| page(s, version)).collect();
        let started = Instant::now();
        for p in &pages {
            store.write_page("bench", p).unwrap();
        }
        out[phase] = RESOURCES as f64 / started.elapsed().as_secs_f64();
    }
    out
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let lite = rates(&mut Store::open(&dir.path().join("bench.db")).unwrap());
    let pg = testing::fresh_database()
        .unwrap()
        .map(|url| rates(&mut Store::connect(&url).unwrap()));
    println!("store writes: {RESOURCES} Observations in pages of {PAGE}, resources/s");
    println!("{:<10} {:>10} {:>10} {:>10}", "backend", "new", "unchanged", "replaced");
    let row = |name: &str, r: &[f64; 3]| println!("{name:<10} {:>10.0} {:>10.0} {:>10.0}", r[0], r[1], r[2]);
    row("sqlite", &lite);
    match pg {
        Some(pg) => {
            row("postgres", &pg);
            println!(
                "{:<10} {:>10.2} {:>10.2} {:>10.2}",
                "pg/sqlite",
                pg[0] / lite[0],
                pg[1] / lite[1],
                pg[2] / lite[2]
            );
        }
        None => println!("postgres   (IMNM_PG_URL not set: not measured)"),
    }
}
