//! Deletions from servers (issue 24 item 9): a resource deleted on the EHR
//! after the last run is listed in the bulk manifest's `deleted` files
//! (`--since auto`), leaves the store and the cohort, and is counted.

use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
use imnm_fhir::sync::{Since, SyncOptions};
use serde_json::{json, Value};

use super::bulk::{bulk_into, bulk_options};
use super::new_store;
use crate::support::{cell, imnm_condition, mappings, observation, patient};

fn ck(id: &str, value: f64) -> Value {
    observation(
        id,
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": value, "unit": "U/L"}}),
    )
}

fn cohort_row(store: &std::sync::Mutex<imnm_fhir::store::Store>) -> imnm_fhir::domain::CaseRow {
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_store(&store.lock().unwrap(), "store", &m).unwrap();
    let mut issues = collected.issues;
    let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).unwrap();
    assert_eq!(cohort.rows.len(), 1);
    cohort.rows.all().unwrap()[0].clone()
}

#[tokio::test]
async fn resources_deleted_on_the_server_leave_the_store_and_the_cohort() {
    let values = [5000.0, 3000.0];
    let data = vec![
        patient("p1"),
        imnm_condition("c1", "p1"),
        ck("ck1", values[0]),
        ck("ck2", values[1]),
    ];
    let ehr = MockEhr::builder()
        .dataset(data)
        .vendor(Vendor::Generic)
        .faults(FaultPlan::none())
        .retry_after(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap();
    let store = new_store();
    let first = bulk_into(&ehr, &store, &bulk_options()).await;
    assert_eq!(first.deleted, 0);
    let row = cohort_row(&store);
    assert_eq!(cell(&row, "ck_count"), values.len().to_string());
    assert_eq!(cell(&row, "ck_peak_u_per_l"), values[0].to_string());

    let gone = reqwest::Client::new()
        .delete(format!("{}/Observation/ck1", ehr.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    let read = reqwest::get(format!("{}/Observation/ck1", ehr.base_url()))
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 410);

    let since = SyncOptions {
        since: Since::Auto,
        ..bulk_options()
    };
    let second = bulk_into(&ehr, &store, &since).await;
    assert_eq!(second.deleted, 1, "{second:?}");
    assert!(!store.lock().unwrap().contains("mock", "Observation", "ck1").unwrap());
    let row = cohort_row(&store);
    assert_eq!(cell(&row, "ck_count"), "1");
    assert_eq!(cell(&row, "ck_peak_u_per_l"), values[1].to_string());
    let journal = ehr.journal();
    let kick_off = journal.iter().rfind(|e| e.path.ends_with("$export")).unwrap();
    assert!(kick_off.params.contains(&"_since".to_string()));

    // Nothing deleted since: a third run removes nothing.
    let third = bulk_into(&ehr, &store, &since).await;
    assert_eq!(third.deleted, 0);
}
