//! `imnm sync` against a FHIR server nobody here wrote (Medplum's FHIR router, see `medplum.rs`):
//! the demo data loaded into it comes back through sync and the store as the seed's Table 1, small
//! pages follow Medplum's own `_offset` paging, a second sync changes nothing, and conditional create
//! and transactions (what `imnm push` will rely on) behave as Medplum's own.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use imnm_fhir::client::FhirClient;
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, SyncOptions};

use super::medplum::{ck_observation, Medplum};
use super::tools::{imnm_cmd, run_ok_async};
use crate::cli::{assert_seed_figures, table1};
use crate::mock::{demo_ids, demo_resources};
use crate::support::mappings;

/// Medplum with the demo dataset loaded (ids kept) and checked to hold exactly it, per type.
async fn loaded() -> Option<Medplum> {
    let server = Medplum::start()?;
    server.load(&demo_resources()).await;
    let want = demo_ids();
    let types: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(server.ids_by_type(&types).await, want, "Medplum holds the demo data");
    Some(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imnm_sync_from_medplum_reproduces_the_seed_and_a_resync_changes_nothing() {
    let Some(server) = loaded().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sync_args = ["sync", "--base-url", server.base_url(), "--store", "medplum.db"];
    let first = run_ok_async(imnm_cmd(&sync_args, dir.path()), "imnm sync").await;
    let first = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.contains("synced 13 patient(s)"), "{first}");
    let cohort = ["cohort", "--store", "medplum.db", "--out", "out"];
    run_ok_async(imnm_cmd(&cohort, dir.path()), "imnm cohort --store").await;
    assert_seed_figures(&table1(&dir.path().join("out")));
    let again = run_ok_async(imnm_cmd(&sync_args, dir.path()), "imnm sync again").await;
    let again = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(again.contains(" 0 new, 0 updated"), "{again}");
    // One more CK result on the server (server-assigned id): the next sync brings just it.
    let case = demo_resources()
        .into_iter()
        .find(|r| r["resourceType"] == "Condition" && r["code"].to_string().contains("715863001"))
        .unwrap();
    let patient = case["subject"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Patient/")
        .to_string();
    let added = server
        .add_observation(&ck_observation(&patient, 20000.0, "2025-02-03"))
        .await;
    assert!(added["id"].is_string() && added["meta"]["lastUpdated"].is_string());
    let third = run_ok_async(imnm_cmd(&sync_args, dir.path()), "imnm sync after a new Observation").await;
    let third = String::from_utf8_lossy(&third.stderr).to_string();
    assert!(third.contains(" 1 new, 0 updated"), "{third}");
    run_ok_async(imnm_cmd(&cohort, dir.path()), "imnm cohort --store").await;
    let t = table1(&dir.path().join("out"));
    let ck = t.iter().find(|r| r["variable"] == "ck_peak_u_per_l").unwrap();
    assert_eq!(ck["max"].as_f64(), Some(20000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_follow_medplums_offset_links_to_the_same_store() {
    let Some(server) = loaded().await else { return };
    let client = FhirClient::builder(server.base_url()).build().unwrap();
    let crawl = |page_size| {
        let store = Arc::new(Mutex::new(Store::in_memory().unwrap()));
        let options = SyncOptions {
            concurrency: 2,
            page_size,
            ..SyncOptions::default()
        };
        let client = client.clone();
        async move {
            let report = sync::crawl(&client, store.clone(), &mappings(), &options)
                .await
                .unwrap();
            let rows = store.lock().unwrap().rows().unwrap();
            let keys: BTreeSet<(String, String)> = rows.into_iter().map(|r| (r.rtype, r.id)).collect();
            (report, keys)
        }
    };
    let (big, all) = crawl(500).await;
    let (small, paged) = crawl(3).await;
    assert!(small.pages > big.pages + 20, "pages: {} vs {}", small.pages, big.pages);
    assert_eq!(paged, all);
    // Everything of the 13 patients the cohort search found, Encounters aside (not crawled).
    let demo = demo_ids();
    assert_eq!(
        all.iter().filter(|(t, _)| t == "MedicationStatement").count(),
        demo["MedicationStatement"].len()
    );
    assert_eq!(
        all.iter().filter(|(t, _)| t == "Medication").count(),
        demo["Medication"].len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medplum_conditional_create_and_transactions_are_its_own() {
    let Some(server) = Medplum::start() else { return };
    let patient = serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "urn:imnm:test", "value": "case-1"}], "gender": "female"});
    let query = "identifier=urn:imnm:test|case-1";
    let (first, created) = server.create_if_none_exist(&patient, query).await;
    let (second, found) = server.create_if_none_exist(&patient, query).await;
    assert_eq!((first, second), (201, 200), "created once, then found");
    assert_eq!(created["id"], found["id"]);
    assert_eq!(server.ids("Patient").await.len(), 1);
    // A transaction: `urn:uuid:` references are rewritten to the ids Medplum assigns.
    let tx = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1d3a52-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "gender": "male"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": ck_observation("x", 1500.0, "2025-01-01"), "request": {"method": "POST", "url": "Observation"}}]});
    let mut tx = tx;
    tx["entry"][1]["resource"]["subject"]["reference"] = "urn:uuid:6f1d3a52-0000-4000-8000-000000000001".into();
    let answer = server.post_bundle(&tx).await;
    assert_eq!(answer["type"], "transaction-response");
    let obs = server.ids("Observation").await;
    assert_eq!(obs.len(), 1);
    let patients = server.ids("Patient").await;
    assert_eq!(patients.len(), 2);
    let observation = server.read("Observation", obs.first().unwrap()).await;
    let subject = observation["subject"]["reference"].as_str().unwrap();
    let new_patient = subject.strip_prefix("Patient/").expect("a Patient reference");
    assert!(
        patients.contains(new_patient) && new_patient != created["id"],
        "{subject}"
    );
}
