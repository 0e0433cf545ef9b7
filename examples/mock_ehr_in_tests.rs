//! How to put the mock EHR in your own integration tests.
//!
//! Run it with `cargo run --example mock_ehr_in_tests`. In a test, the body of
//! `main` is what goes in an `#[tokio::test] async fn`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::time::Duration;

use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One call: the demo data served Epic-style, with a few seeded 429s.
    let ehr = MockEhr::builder()
        .dataset("examples/demo-cohort/bundle.json")
        .vendor(Vendor::Epic)
        .faults("429:0.3,seed=7".parse::<FaultPlan>()?)
        .retry_after(Duration::ZERO)
        .start()
        .await?;

    // Your client talks to ehr.base_url() as to a hospital's FHIR base. Here, plain reqwest
    // with the retry loop a real client needs (a fault hits one request at most twice).
    let url = format!("{}/Observation?category=laboratory&_count=10", ehr.base_url());
    let mut bundle = Value::Null;
    for _ in 0..3 {
        let resp = reqwest::get(&url).await?;
        if resp.status().is_success() {
            bundle = resp.json().await?;
            break;
        }
    }
    println!("laboratory Observations: {}", bundle["total"]);

    // The journal shows what your client did: paths, parameter names, statuses, faults.
    for entry in ehr.journal() {
        println!(
            "{} {} {:?} -> {} {:?}",
            entry.method, entry.path, entry.params, entry.status, entry.fault
        );
    }
    Ok(())
}
