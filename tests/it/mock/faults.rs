//! Each injected fault, seen from a plain client, and that retrying gets through.

use std::time::{Duration, Instant};

use imnm_fhir::mock::{Fault, FaultPlan, MockEhr, Vendor};
use serde_json::Value;

use super::{all_pages, demo_ids, demo_path, http};

async fn faulty(plan: FaultPlan) -> MockEhr {
    MockEhr::builder()
        .dataset(demo_path())
        .vendor(Vendor::Generic)
        .faults(plan)
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

/// The same GET until it answers 200 with JSON, at most `tries` times; returns the statuses seen.
async fn retry(url: &str, tries: usize) -> (Vec<u16>, Option<Value>) {
    let mut seen = Vec::new();
    for _ in 0..tries {
        match http().get(url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.bytes().await;
                seen.push(status);
                if let (200, Ok(bytes)) = (status, body) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                        return (seen, Some(v));
                    }
                }
            }
            Err(_) => seen.push(0),
        }
    }
    (seen, None)
}

#[tokio::test]
async fn status_faults_carry_retry_after_and_an_outcome_then_retrying_succeeds() {
    for (fault, status) in [
        (Fault::TooManyRequests, 429),
        (Fault::ServerError, 500),
        (Fault::Unavailable, 503),
    ] {
        let ehr = faulty(FaultPlan::none().with(fault, 1.0)).await;
        let url = format!("{}/Patient", ehr.base_url());
        let resp = http().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(resp.headers().contains_key("retry-after"), status != 500, "{fault}");
        let outcome: Value = resp.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        let (seen, body) = retry(&url, 5).await;
        assert_eq!(
            seen,
            vec![status, 200],
            "{fault}: at most 2 faults per request by default"
        );
        assert_eq!(body.unwrap()["total"], 14);
        let faults: Vec<_> = ehr.journal().into_iter().filter_map(|e| e.fault).collect();
        assert_eq!(faults, vec![fault.name(), fault.name()]);
    }
}

#[tokio::test]
async fn a_truncated_body_is_not_json_and_a_dropped_one_is_an_error() {
    let ehr = faulty(FaultPlan::none().with(Fault::Truncate, 1.0).max_per_request(1)).await;
    let url = format!("{}/Patient", ehr.base_url());
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());
    assert_eq!(retry(&url, 2).await.0, vec![200]);

    let ehr = faulty(FaultPlan::none().with(Fault::Drop, 1.0).max_per_request(1)).await;
    let url = format!("{}/Patient", ehr.base_url());
    let read = async { http().get(&url).send().await?.bytes().await };
    assert!(read.await.is_err(), "the connection ends before the announced length");
    assert_eq!(retry(&url, 2).await.0, vec![200]);
}

#[tokio::test]
async fn latency_delays_every_response() {
    let ehr = faulty(FaultPlan::none().latency(Duration::from_millis(150))).await;
    let t = Instant::now();
    let resp = http().get(format!("{}/Patient", ehr.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_repeated_entry_starts_a_page_but_never_loses_one() {
    let ehr = faulty(FaultPlan::none().with(Fault::RepeatLast, 1.0).max_per_request(1)).await;
    let pages = all_pages(&format!("{}/Observation?_count=20", ehr.base_url())).await;
    for pair in pages.windows(2) {
        assert_eq!(
            pair[1].first(),
            pair[0].last(),
            "each later page repeats the previous page's last entry"
        );
    }
    let mut got: Vec<String> = pages.concat();
    got.dedup();
    assert_eq!(
        got.into_iter().collect::<std::collections::BTreeSet<_>>(),
        demo_ids()["Observation"]
    );
}

#[tokio::test]
async fn permanent_faults_never_let_a_retry_through() {
    let ehr = faulty(FaultPlan::none().with(Fault::Unavailable, 1.0).permanent()).await;
    let (seen, body) = retry(&format!("{}/Patient", ehr.base_url()), 6).await;
    assert_eq!(seen, vec![503; 6]);
    assert!(body.is_none());
}

#[tokio::test]
async fn a_seeded_mix_is_the_same_on_every_run_and_retries_finish() {
    let plan: FaultPlan = "429:0.2,503:0.1,truncate:0.05,drop:0.05,seed=7".parse().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let ehr = faulty(plan.clone()).await;
        for rtype in demo_ids().keys() {
            let (_, body) = retry(&format!("{}/{rtype}", ehr.base_url()), 3).await;
            assert!(body.is_some(), "{rtype}: at most 2 faults, then success");
        }
        runs.push(
            ehr.journal()
                .into_iter()
                .map(|e| (e.path, e.status, e.fault))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].iter().any(|(_, _, f)| f.is_some()),
        "the seed injects something"
    );
}
