//! A real third-party FHIR R4 server for tests: Medplum's FHIR router and in-memory repository
//! (npm `@medplum/fhir-router` 5.2.13) behind the thin HTTP shim in tests/medplum-shim/, started on
//! 127.0.0.1 on a free port. Hooks for end-to-end tests: start it, load resources as the server
//! accepts them, list what it holds per type, read, conditional create, add one Observation.
//!
//! The end-to-end test of issue 8 item 2 (to-fhir → push twice → sync → cohort → one new
//! Observation → `sync --since auto`) is `round_trip.rs`; `real_server.rs` loads the demo data directly.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::tools;

/// A running Medplum server; stopped (killed) when dropped.
pub struct Medplum {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Medplum {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node before 22 has no global WebSocket, which @medplum/core needs at load time.
fn needs_websocket_flag(node: &std::path::Path) -> bool {
    let out = Command::new(node).arg("--version").output();
    let version = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    major < 22
}

impl Medplum {
    /// Starts the server, or `None` (after a `SKIPPED` line) when Node or the packages are missing.
    pub fn start() -> Option<Medplum> {
        let node = tools::node_with_medplum()?;
        let mut cmd = Command::new(&node);
        if needs_websocket_flag(&node) {
            cmd.arg("--experimental-websocket");
        }
        let mut child = cmd
            .arg("server.mjs")
            .arg("0")
            .current_dir(tools::shim_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(base) = line.trim().strip_prefix("listening ").map(str::to_string) else {
            let _ = child.kill();
            panic!("the Medplum shim did not start (first line: {line:?})");
        };
        Some(Medplum {
            child,
            base,
            http: reqwest::Client::new(),
        })
    }

    /// The FHIR base URL (the server root).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one Bundle to the base; returns the response Bundle.
    pub async fn post_bundle(&self, bundle: &Value) -> Value {
        let resp = self
            .http
            .post(&self.base)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
            .expect("Medplum answers");
        assert!(resp.status().is_success(), "Bundle refused: {}", resp.status());
        resp.json().await.expect("a Bundle")
    }

    /// Loads resources keeping their ids: batch Bundles of `PUT Type/id` (update as create), 100
    /// entries each. Every entry must succeed.
    pub async fn load(&self, resources: &[Value]) {
        for chunk in resources.chunks(100) {
            let entry: Vec<Value> = chunk
                .iter()
                .map(|r| {
                    let url = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
                    json!({"resource": r, "request": {"method": "PUT", "url": url}})
                })
                .collect();
            let answer = self
                .post_bundle(&json!({"resourceType": "Bundle", "type": "batch", "entry": entry}))
                .await;
            for e in answer["entry"].as_array().expect("one answer per entry") {
                let status = e["response"]["status"].as_str().unwrap_or_default();
                assert!(status.starts_with("20"), "a batch entry failed: {e}");
            }
        }
    }

    /// The ids the server holds for `rtype` (one search, every page).
    pub async fn ids(&self, rtype: &str) -> BTreeSet<String> {
        let mut url = Some(format!("{}/{rtype}?_count=100", self.base));
        let mut out = BTreeSet::new();
        while let Some(u) = url.take() {
            let page: Value = self.http.get(&u).send().await.unwrap().json().await.unwrap();
            for e in page["entry"].as_array().into_iter().flatten() {
                out.insert(e["resource"]["id"].as_str().unwrap().to_string());
            }
            url = page["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str().map(str::to_string));
        }
        out
    }

    /// `GET /{type}/{id}`: the resource as held.
    pub async fn read(&self, rtype: &str, id: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/{rtype}/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{rtype}/{id} not readable");
        resp.json().await.unwrap()
    }

    /// The ids held per type, for `types`.
    pub async fn ids_by_type(&self, types: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for t in types {
            out.insert(t.to_string(), self.ids(t).await);
        }
        out
    }

    /// `POST /{type}` with `If-None-Exist: query` (conditional create): the status and the body.
    pub async fn create_if_none_exist(&self, resource: &Value, query: &str) -> (u16, Value) {
        let rtype = resource["resourceType"].as_str().unwrap();
        let resp = self
            .http
            .post(format!("{}/{rtype}", self.base))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", query)
            .body(resource.to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates one Observation (POST, server-assigned id) and returns it as stored.
    pub async fn add_observation(&self, observation: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/Observation", self.base))
            .header("content-type", "application/fhir+json")
            .body(observation.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "Observation not created");
        resp.json().await.unwrap()
    }
}

/// A CK result for `patient` (LOINC 2157-6, U/L), for "one more Observation" tests.
pub fn ck_observation(patient: &str, value: f64, date: &str) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": date,
        "valueQuantity": {"value": value, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}
    })
}
