//! The mock EHR driven with plain reqwest calls (never our own client): reads,
//! each search parameter, paging, vendor quirks, writes and the CLI. Faults,
//! SMART auth and `$export` are in the sibling modules.

mod auth;
mod bulk;
mod faults;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use imnm_fhir::mock::{MockEhr, Vendor};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::root;

/// The demo dataset (254 resources).
pub fn demo_path() -> std::path::PathBuf {
    root().join("examples/demo-cohort/bundle.json")
}

/// The demo dataset's resources.
pub fn demo_resources() -> Vec<Value> {
    let text = std::fs::read_to_string(demo_path()).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The demo dataset's ids by type.
pub fn demo_ids() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in demo_resources() {
        out.entry(r["resourceType"].as_str().unwrap().to_string())
            .or_default()
            .insert(r["id"].as_str().unwrap().to_string());
    }
    out
}

/// A mock on the demo data with `Retry-After: 0`.
pub async fn start(vendor: Vendor) -> MockEhr {
    MockEhr::builder()
        .dataset(demo_path())
        .vendor(vendor)
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

/// A plain client.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// GET `url` as FHIR JSON: status and body (Null when not JSON).
pub async fn get(url: &str) -> (StatusCode, Value) {
    let resp = http()
        .get(url)
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The string at `pointer` in each entry of a Bundle ("" when absent).
fn per_entry<'a>(bundle: &'a Value, pointer: &str) -> Vec<&'a str> {
    let entries = bundle["entry"].as_array().into_iter().flatten();
    entries
        .map(|e| e.pointer(pointer).and_then(Value::as_str).unwrap_or_default())
        .collect()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn search(ehr: &MockEhr, query: &str) -> (StatusCode, Value) {
    get(&format!("{}/{query}", ehr.base_url())).await
}

pub const PATIENT: &str = "eUJeKazw7ejFvXBgyIVRk9g3";
const LOINC_CK: &str = "http://loinc.org|2157-6";

#[tokio::test]
async fn metadata_lists_served_types_and_params_per_vendor() {
    let generic = start(Vendor::Generic).await;
    let resp = http()
        .get(format!("{}/metadata", generic.base_url()))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/fhir+json");
    let cs: Value = resp.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    let types = |cs: &Value| -> BTreeMap<String, Vec<String>> {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let params = r["searchParam"].as_array().unwrap();
                let names = params.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
                (r["type"].as_str().unwrap().to_string(), names)
            })
            .collect()
    };
    let g = types(&cs);
    assert_eq!(
        g.keys().cloned().collect::<BTreeSet<_>>(),
        demo_ids().keys().cloned().collect()
    );
    assert!(g["Observation"].contains(&"_lastUpdated".to_string()));
    assert!(g["Observation"].contains(&"category".to_string()));

    let epic = start(Vendor::Epic).await;
    let (_, cs) = get(&format!("{}/metadata", epic.base_url())).await;
    let e = types(&cs);
    assert!(!e.contains_key("MedicationStatement"));
    assert!(e.values().all(|p| !p.contains(&"_lastUpdated".to_string())));
}

#[tokio::test]
async fn read_serves_versioned_resources_and_404s_with_an_outcome() {
    let ehr = start(Vendor::Generic).await;
    let (status, patient) = search(&ehr, &format!("Patient/{PATIENT}")).await;
    assert_eq!(status, 200);
    assert_eq!(patient["id"], PATIENT);
    assert_eq!(patient["meta"]["versionId"], "1");
    assert!(patient["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .starts_with("2024-01-01T"));
    let (status, outcome) = search(&ehr, "Patient/nobody").await;
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn each_search_parameter_filters() {
    let ehr = start(Vendor::Generic).await;
    let demo = demo_resources();
    let of_patient = |t: &str| {
        demo.iter()
            .filter(|r| r["resourceType"] == t && r["subject"]["reference"] == format!("Patient/{PATIENT}"))
            .count()
    };

    // patient / subject, with Patient/x and bare x.
    for q in [
        format!("patient=Patient/{PATIENT}"),
        format!("patient={PATIENT}"),
        format!("subject=Patient/{PATIENT}"),
    ] {
        let (status, b) = search(&ehr, &format!("Condition?{q}")).await;
        assert_eq!(status, 200, "{q}");
        assert_eq!(b["total"], of_patient("Condition"), "{q}");
    }
    // _id with comma = OR.
    let (_, b) = search(&ehr, &format!("Patient?_id={PATIENT},12724064,nobody")).await;
    assert_eq!(ids(&b).len(), 2);
    // code: system|code, bare code, |code (no system: none here), comma OR.
    let (_, b) = search(&ehr, &format!("Observation?code={LOINC_CK}")).await;
    assert_eq!(b["total"], 21);
    let (_, b) = search(&ehr, "Observation?code=2157-6").await;
    assert_eq!(b["total"], 21);
    let (_, b) = search(&ehr, "Observation?code=%7C2157-6").await;
    assert_eq!(b["total"], 0);
    let (_, b) = search(
        &ehr,
        "Observation?code=http://loinc.org%7C2157-6,http://loinc.org%7C8867-4",
    )
    .await;
    assert_eq!(b["total"], 21 + 35);
    // category.
    let (_, b) = search(
        &ehr,
        "Observation?category=http://terminology.hl7.org/CodeSystem/observation-category%7Claboratory",
    )
    .await;
    assert_eq!(b["total"], 47);
    // _lastUpdated: the dataset is stamped one second apart from 2024-01-01T00:00:00Z.
    let all = demo_resources().len() as u64;
    for (q, n) in [
        ("gt2024-01-01T00:00:09Z", all - 10),
        ("ge2024-01-01T00:00:09Z", all - 9),
        ("lt2024-01-01T00:00:09Z", 9),
        ("le2024-01-01T00:00:09Z", 10),
    ] {
        let mut total = 0;
        for t in demo_ids().keys() {
            let (_, b) = search(&ehr, &format!("{t}?_lastUpdated={q}")).await;
            total += b["total"].as_u64().unwrap();
        }
        assert_eq!(total, n, "{q}");
    }
    // _count, and _include=MedicationRequest:medication.
    let (_, b) = search(&ehr, "Observation?_count=5").await;
    assert_eq!(ids(&b).len(), 5);
    assert_eq!(b["total"], demo_ids()["Observation"].len());
    let (_, b) = search(
        &ehr,
        &format!("MedicationRequest?patient={PATIENT}&_include=MedicationRequest:medication"),
    )
    .await;
    let modes = per_entry(&b, "/search/mode");
    assert!(modes.contains(&"include"), "{modes:?}");
    assert!(per_entry(&b, "/resource/resourceType").contains(&"Medication"));
    // Unknown parameters: 400 OperationOutcome on a generic server.
    let (status, o) = search(&ehr, "Condition?_sort=date").await;
    assert_eq!(
        (status.as_u16(), o["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
}

#[tokio::test]
async fn post_search_takes_a_form_body() {
    let ehr = start(Vendor::Generic).await;
    let resp = http()
        .post(format!("{}/Observation/_search", ehr.base_url()))
        .form(&[("code", LOINC_CK), ("_count", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!((b["total"].as_u64(), ids(&b).len()), (Some(21), 3));
}

/// Follows `next` links from `first`; returns every page's ids.
pub async fn all_pages(first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = Some(first.to_string());
    while let Some(u) = url {
        let (status, b) = get(&u).await;
        assert_eq!(status, 200, "{u}");
        pages.push(ids(&b));
        url = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
    }
    pages
}

#[tokio::test]
async fn pages_concatenate_to_exactly_the_dataset() {
    let ehr = start(Vendor::Generic).await;
    let mut total = 0;
    for (rtype, expected) in demo_ids() {
        let pages = all_pages(&format!("{}/{rtype}?_count=7", ehr.base_url())).await;
        let got: Vec<String> = pages.concat();
        total += got.len();
        assert_eq!(got.len(), expected.len(), "{rtype}: no duplicates, nothing lost");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected, "{rtype}");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "{rtype}: stable order by id");
        assert!(pages.iter().all(|p| p.len() <= 7));
    }
    assert_eq!(total, demo_resources().len());
    let (_, first) = search(&ehr, "Observation?_count=7").await;
    let next = first["link"][1]["url"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/_page?token=", ehr.base_url())), "{next}");
    assert!(!next.contains("Observation"), "the next link is opaque");
}

#[tokio::test]
async fn epic_quirks() {
    let ehr = start(Vendor::Epic).await;
    let (status, o) = search(&ehr, &format!("Observation?patient={PATIENT}")).await;
    assert_eq!(
        (status.as_u16(), o["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
    let (status, _) = search(&ehr, &format!("Observation?patient={PATIENT}&category=laboratory")).await;
    assert_eq!(status, 200);
    let (status, _) = search(&ehr, "MedicationStatement").await;
    assert_eq!(status, 404);
    let (_, b) = search(
        &ehr,
        &format!("MedicationRequest?patient={PATIENT}&_include=MedicationRequest:medication"),
    )
    .await;
    assert!(per_entry(&b, "/resource/resourceType")
        .iter()
        .all(|t| *t == "MedicationRequest"));
    let mine = b["total"].clone();
    let (_, b) = search(&ehr, &format!("MedicationRequest?patient={PATIENT}&code=no-such-code")).await;
    assert_eq!(
        b["total"], mine,
        "Epic's MedicationRequest has no code parameter: it is ignored"
    );
    let (status, _) = search(&ehr, "Condition?_lastUpdated=gt2024-01-01").await;
    assert_eq!(status, 400);
    let (status, _) = search(&ehr, "Condition?_sort=date").await;
    assert_eq!(status, 200, "Epic ignores parameters it does not know");
}

#[tokio::test]
async fn cerner_and_hapi_quirks() {
    let cerner = start(Vendor::Cerner).await;
    let (status, _) = search(&cerner, "Condition?_count=lots").await;
    assert_eq!(status, 500, "Cerner hides a fatal parameter error as 500");
    let hapi = start(Vendor::Hapi).await;
    let (status, b) = search(&hapi, "Condition?_lastUpdated=ge2024-01-01").await;
    assert_eq!((status.as_u16(), b["total"].as_u64()), (200, Some(14)));
    let (status, _) = search(&hapi, "Condition?_sort=date").await;
    assert_eq!(status, 400);
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn writes_version_resources_and_conditional_create_answers_201_200_412() {
    let ehr = start(Vendor::Generic).await;
    let base = ehr.base_url();
    let obs = json!({"resourceType": "Observation", "status": "final",
        "identifier": [{"system": "urn:test", "value": "ck-1"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
        "subject": {"reference": format!("Patient/{PATIENT}")}});
    let (status, headers, created) = send(http().post(format!("{base}/Observation")).json(&obs)).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(headers["location"]
        .to_str()
        .unwrap()
        .ends_with(&format!("/Observation/{id}/_history/1")));
    // The dataset's last resource is stamped (resources - 1) seconds after 2024-01-01T00:00:00Z.
    let last = demo_resources().len() - 1;
    let q = format!(
        "Observation?_lastUpdated=gt2024-01-01T00:{:02}:{:02}Z",
        last / 60,
        last % 60
    );
    let (_, b) = search(&ehr, &q).await;
    assert_eq!(ids(&b), vec![id.clone()], "_lastUpdated finds what changed");

    let mut updated = created.clone();
    updated["status"] = json!("amended");
    let (status, _, v2) = send(http().put(format!("{base}/Observation/{id}")).json(&updated)).await;
    assert_eq!((status, v2["meta"]["versionId"].as_str()), (200, Some("2")));
    assert!(v2["meta"]["lastUpdated"].as_str() > created["meta"]["lastUpdated"].as_str());

    let cond = format!("code={LOINC_CK}&_id={id}");
    let (status, _, same) = send(
        http()
            .post(format!("{base}/Observation"))
            .header("if-none-exist", cond)
            .json(&obs),
    )
    .await;
    assert_eq!((status, same["id"].as_str()), (200, Some(id.as_str())));
    let (status, _, _) = send(
        http()
            .post(format!("{base}/Observation"))
            .header("if-none-exist", format!("code={LOINC_CK}"))
            .json(&obs),
    )
    .await;
    assert_eq!(status, 412, "ambiguous");
    let (status, _, _) = send(
        http()
            .post(format!("{base}/Observation"))
            .header("if-none-exist", "_id=nobody")
            .json(&obs),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn transactions_resolve_uuids_and_roll_back_on_failure() {
    let ehr = start(Vendor::Generic).await;
    let base = ehr.base_url();
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "gender": "female"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "_id=nobody"}},
        {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:p"}},
         "request": {"method": "POST", "url": "Condition"}},
        {"resource": {"resourceType": "Patient", "id": PATIENT, "gender": "female"},
         "request": {"method": "PUT", "url": format!("Patient/{PATIENT}")}}
    ]});
    let (status, _, resp) = send(http().post(&base).json(&tx)).await;
    assert_eq!(status, 200);
    assert_eq!(resp["type"], "transaction-response");
    let statuses = per_entry(&resp, "/response/status");
    assert_eq!(statuses, vec!["201 Created", "201 Created", "200 OK"]);
    let patient_id = resp["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        resp["entry"][1]["resource"]["subject"]["reference"],
        format!("Patient/{patient_id}")
    );

    let (_, before) = search(&ehr, "Patient").await;
    let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation",
         "ifNoneExist": format!("code={LOINC_CK}")}}
    ]});
    let (status, _, _) = send(http().post(&base).json(&bad)).await;
    assert_eq!(status, 412);
    let (_, after) = search(&ehr, "Patient").await;
    assert_eq!(
        before["total"], after["total"],
        "atomic: the first entry was rolled back"
    );
}

#[tokio::test]
async fn batches_answer_per_entry() {
    let ehr = start(Vendor::Generic).await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        {"request": {"method": "GET", "url": format!("Patient/{PATIENT}")}}
    ]});
    let (status, _, resp) = send(http().post(ehr.base_url()).json(&batch)).await;
    assert_eq!((status, resp["type"].as_str()), (200, Some("batch-response")));
    let statuses = per_entry(&resp, "/response/status");
    assert_eq!(statuses, vec!["201 Created", "404 Not Found", "200 OK"]);
    assert_eq!(
        resp["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
}

/// Polls `url` until it answers 200 (the binary needs a moment to start).
async fn wait_for(url: &str) -> Option<Value> {
    for _ in 0..100 {
        if let Ok(resp) = http().get(url).send().await {
            if resp.status() == 200 {
                return resp.json().await.ok();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn the_cli_serves_until_killed_and_writes_the_journal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.ndjson");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args([
            "mock-ehr",
            "--data",
            demo_path().to_str().unwrap(),
            "--vendor",
            "epic",
            "--port",
            &port.to_string(),
        ])
        .arg("--journal")
        .arg(&journal)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cs = wait_for(&format!("http://127.0.0.1:{port}/metadata")).await;
    let mut logged = false;
    for _ in 0..40 {
        logged = std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("/metadata"));
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        cs.expect("the mock answered GET /metadata")["resourceType"],
        "CapabilityStatement"
    );
    assert!(logged, "the journal recorded the request");
}
