//! `--since auto`: a second run asks only for changes (crawl `_lastUpdated`, bulk
//! `_since`, Epic's clinical dates) and stores only what changed.

use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
use imnm_fhir::sync::{self, Mode, Since, SyncOptions, SyncReport};
use serde_json::json;

use super::bulk::bulk_options;
use super::{client, mock, new_store, options};
use crate::support::mappings;

fn since_auto(mode: Mode) -> SyncOptions {
    let base = if mode == Mode::Bulk { bulk_options() } else { options() };
    SyncOptions {
        since: Since::Auto,
        mode,
        ..base
    }
}

async fn add_observation(ehr: &MockEhr, patient: &str) {
    let obs = json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2025-01-02", "valueQuantity": {"value": 20000, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}});
    let resp = reqwest::Client::new()
        .post(format!("{}/Observation", ehr.base_url()))
        .header("content-type", "application/fhir+json")
        .body(obs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

fn received(r: &SyncReport) -> u64 {
    r.received.values().sum()
}

#[tokio::test]
async fn since_auto_fetches_only_what_changed() {
    for mode in [Mode::Crawl, Mode::Bulk] {
        let ehr = mock(Vendor::Generic, FaultPlan::none()).await;
        let store = new_store();
        let (c, m, opts) = (client(&ehr), mappings(), since_auto(mode));
        let run = || sync::run(&c, store.clone(), &m, &opts);
        let first = run().await.unwrap();
        assert_eq!(first.since, None, "{mode:?}: no watermark yet, a full sync");
        let rows = store.lock().unwrap().rows().unwrap();
        let case = rows
            .iter()
            .find(|r| r.rtype == "Condition" && r.json.contains("715863001"))
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.json).unwrap())
            .unwrap();
        let pid = case["subject"]["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches("Patient/");
        add_observation(&ehr, pid).await;
        let seen = ehr.journal().len();
        let second = run().await.unwrap();
        assert_eq!(second.since, first.watermark, "{mode:?}");
        assert_eq!((second.inserted, second.updated), (1, 0), "{mode:?}: {second:?}");
        assert_eq!(store.lock().unwrap().rows().unwrap().len(), rows.len() + 1);
        let journal = ehr.journal();
        let later = &journal[seen..];
        match mode {
            Mode::Crawl => {
                assert_eq!(received(&second), 1, "only the new Observation came: {second:?}");
                let searches = later
                    .iter()
                    .filter(|e| e.path != "/metadata" && !e.path.starts_with("/_page"));
                assert!(searches.clone().count() > 0);
                assert!(
                    searches.clone().all(|e| e.params.iter().any(|p| p == "_lastUpdated")),
                    "every search asks for changes only"
                );
            }
            Mode::Bulk => {
                // _since is inclusive: the resource stamped at transactionTime may come again, unchanged.
                assert!(received(&second) <= 2, "{second:?}");
                let kick_off = later.iter().find(|e| e.path.ends_with("$export")).unwrap();
                assert!(kick_off.params.iter().any(|p| p == "_since"));
            }
        }
    }
}

#[tokio::test]
async fn epic_incremental_uses_no_last_updated() {
    let ehr = mock(Vendor::Epic, FaultPlan::none()).await;
    let store = new_store();
    let opts = since_auto(Mode::Crawl);
    sync::run(&client(&ehr), store.clone(), &mappings(), &opts)
        .await
        .unwrap();
    let before = store.lock().unwrap().rows().unwrap();
    let second = sync::run(&client(&ehr), store.clone(), &mappings(), &opts)
        .await
        .unwrap();
    assert!(second.since.is_some());
    assert_eq!((second.inserted, second.updated), (0, 0));
    assert_eq!(store.lock().unwrap().rows().unwrap(), before);
    let journal = ehr.journal();
    assert!(journal.iter().all(|e| e.status < 400), "Epic refused nothing");
    assert!(!journal.iter().any(|e| e.params.iter().any(|p| p == "_lastUpdated")));
}
