//! Bulk Data `$export` against the mock: kick-off rules, polling, the manifest,
//! downloads (Cerner's 307 to another origin), `_type`/`_since`, and cancel.

use std::collections::BTreeMap;

use imnm_fhir::mock::{MockEhr, Vendor};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use super::{demo_ids, http, start};

/// Sends a kick-off request with `Prefer: respond-async`.
async fn kick_off(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.header("prefer", "respond-async")
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap()
}

/// Kicks off `path` (GET) and polls to the manifest; returns it and the 202 poll headers seen.
async fn export(ehr: &MockEhr, path: &str) -> (Value, Vec<HeaderMap>) {
    let resp = kick_off(http().get(format!("{}/{path}", ehr.base_url()))).await;
    assert_eq!(resp.status(), 202, "{path}");
    poll(resp).await
}

/// Polls the status URL of an accepted kick-off to the manifest.
async fn poll(accepted: reqwest::Response) -> (Value, Vec<HeaderMap>) {
    let status_url = accepted.headers()["content-location"].to_str().unwrap().to_string();
    let mut polls = Vec::new();
    loop {
        let resp = http().get(&status_url).send().await.unwrap();
        match resp.status().as_u16() {
            202 => polls.push(resp.headers().clone()),
            200 => return (resp.json().await.unwrap(), polls),
            other => panic!("status poll answered {other}"),
        }
        assert!(polls.len() < 10, "the export never finished");
    }
}

/// Downloads every output file; returns resource counts per type (and checks the manifest's counts).
async fn download(manifest: &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for out in manifest["output"].as_array().unwrap() {
        let resp = http().get(out["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/fhir+ndjson");
        let text = resp.text().await.unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.iter().all(|r| r["resourceType"] == out["type"]));
        assert_eq!(out["count"], lines.len());
        *counts.entry(out["type"].as_str().unwrap().to_string()).or_insert(0) += lines.len();
    }
    counts
}

#[tokio::test]
async fn system_export_returns_exactly_the_dataset() {
    let ehr = start(Vendor::Generic).await;
    let (manifest, polls) = export(&ehr, "$export").await;
    assert_eq!(polls.len(), 2, "two 202 polls before the manifest");
    assert!(polls
        .iter()
        .all(|h| h.contains_key("x-progress") && h.contains_key("retry-after")));
    assert!(manifest["transactionTime"].is_string());
    assert_eq!(manifest["requiresAccessToken"], false);
    assert_eq!(manifest["error"], serde_json::json!([]));
    let expected: BTreeMap<String, usize> = demo_ids().into_iter().map(|(t, ids)| (t, ids.len())).collect();
    assert_eq!(download(&manifest).await, expected);
}

#[tokio::test]
async fn kick_off_needs_prefer_and_honours_type_and_since() {
    let ehr = start(Vendor::Generic).await;
    let resp = http().get(format!("{}/$export", ehr.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 400, "Prefer: respond-async is required");
    let (manifest, _) = export(&ehr, "Patient/$export?_type=Patient,Condition").await;
    let counts = download(&manifest).await;
    assert_eq!(
        counts,
        BTreeMap::from([("Condition".to_string(), 14), ("Patient".to_string(), 14)])
    );
    // `_since` keeps what changed after the instant (Bulk Data spec), so an export `_since` the
    // previous transactionTime brings nothing twice: the last 9 resources, stamped one second
    // apart up to (resources - 1) seconds after 2024-01-01T00:00:00Z.
    let since = crate::mock::demo_resources().len() - 10;
    let q = format!("$export?_since=2024-01-01T00:{:02}:{:02}Z", since / 60, since % 60);
    let (manifest, _) = export(&ehr, &q).await;
    assert_eq!(download(&manifest).await.values().sum::<usize>(), 9);
    let resp = kick_off(http().post(format!("{}/Group/no-such-group/$export", ehr.base_url()))).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn group_export_by_post_covers_the_members_and_applies_type_filter() {
    let mut resources = super::demo_resources();
    resources.push(
        json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "member": [{"entity": {"reference": format!("Patient/{}", super::PATIENT)}}]}),
    );
    let ehr = MockEhr::builder()
        .dataset(resources.clone())
        .bulk_polls(0)
        .start()
        .await
        .unwrap();
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient,Observation,MedicationRequest,Medication"},
        {"name": "_typeFilter", "valueString": "Observation?code=http://loinc.org%7C2157-6"}]});
    let resp = kick_off(
        http()
            .post(format!("{}/Group/g1/$export", ehr.base_url()))
            .json(&params),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let (manifest, polls) = poll(resp).await;
    assert!(polls.is_empty());
    let of_member = |t: &str, extra: &dyn Fn(&Value) -> bool| {
        let member = format!("Patient/{}", super::PATIENT);
        resources
            .iter()
            .filter(|r| r["resourceType"] == t && r["subject"]["reference"] == member && extra(r))
            .count()
    };
    let is_ck = |r: &Value| {
        r["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "2157-6")
    };
    let referenced: std::collections::BTreeSet<_> = resources
        .iter()
        .filter(|r| {
            r["resourceType"] == "MedicationRequest"
                && r["subject"]["reference"] == format!("Patient/{}", super::PATIENT)
        })
        .map(|r| r["medicationReference"]["reference"].as_str().unwrap().to_string())
        .collect();
    let expected = BTreeMap::from([
        ("Patient".to_string(), 1),
        ("Observation".to_string(), of_member("Observation", &is_ck)),
        (
            "MedicationRequest".to_string(),
            of_member("MedicationRequest", &|_| true),
        ),
        ("Medication".to_string(), referenced.len()),
    ]);
    assert!(expected.values().all(|n| *n > 0), "{expected:?}");
    assert_eq!(download(&manifest).await, expected);
}

#[tokio::test]
async fn delete_cancels_a_job() {
    let ehr = start(Vendor::Generic).await;
    let resp = kick_off(http().post(format!("{}/$export", ehr.base_url()))).await;
    let status_url = resp.headers()["content-location"].to_str().unwrap().to_string();
    assert_eq!(http().delete(&status_url).send().await.unwrap().status(), 202);
    assert_eq!(http().get(&status_url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn cerner_redirects_files_to_another_origin_and_epic_exports_no_medication_statement() {
    let ehr = start(Vendor::Cerner).await;
    let (manifest, _) = export(&ehr, "$export?_type=Patient").await;
    let url = manifest["output"][0]["url"].as_str().unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().unwrap();
    let storage = ehr.storage_url().unwrap();
    assert!(location.starts_with(&storage) && !storage.starts_with(&ehr.base_url()));
    // reqwest follows the redirect and drops Authorization on the way to another origin.
    let resp = http().get(url).bearer_auth("not-for-storage").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let last = ehr.journal().into_iter().rev().find(|e| e.server == "storage").unwrap();
    assert!(!last.authorization, "Authorization did not follow the redirect");

    let epic = start(Vendor::Epic).await;
    let (manifest, _) = export(&epic, "$export?_type=MedicationStatement,Patient").await;
    let counts = download(&manifest).await;
    assert_eq!(counts, BTreeMap::from([("Patient".to_string(), 14)]));
    assert_eq!(
        manifest["error"][0]["type"], "OperationOutcome",
        "partial success lists the refused type"
    );
}

#[tokio::test]
async fn hapi_names_files_randomly_but_the_same_way_every_run() {
    let names = |m: &Value| -> Vec<String> {
        m["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let a = export(&start(Vendor::Hapi).await, "$export").await.0;
    let b = export(&start(Vendor::Hapi).await, "$export").await.0;
    assert_eq!(names(&a), names(&b));
    assert!(
        names(&a).iter().all(|n| !n.contains("ndjson") && n.len() >= 16),
        "{:?}",
        names(&a)
    );
}
