//! Bulk mode (`$export`) against the mock EHR: the seed and the dataset's
//! per-type counts on every vendor, faults and SMART with the Cerner redirect,
//! `Retry-After` on polls, resume from a saved status URL, Group export, Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
use imnm_fhir::store::site_id_for;
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, Mode, SyncOptions, SyncReport, SYNCED_TYPES};
use serde_json::Value;

use super::{client, mock, new_store, rows, served_table1, state_of, store_table1, SITE};
use crate::cli::assert_seed_figures;
use crate::mock::{demo_path, demo_resources};
use crate::support::mappings;

pub(crate) fn bulk_options() -> SyncOptions {
    SyncOptions {
        site: SITE.into(),
        mode: Mode::Bulk,
        concurrency: 4,
        max_poll_wait: Duration::from_millis(10),
        ..SyncOptions::default()
    }
}

pub(crate) async fn bulk_into(ehr: &MockEhr, store: &Arc<Mutex<Store>>, options: &SyncOptions) -> SyncReport {
    sync::run(&client(ehr), store.clone(), &mappings(), options)
        .await
        .unwrap()
}

fn patient_of(r: &Value) -> Option<&str> {
    ["subject", "patient"]
        .iter()
        .find_map(|f| r[*f]["reference"].as_str())
        .and_then(|r| r.strip_prefix("Patient/"))
}

/// Per-type counts of the demo dataset a sync should store: the synced types the vendor
/// serves, for `patients` (all when `None`), plus the Medications they reference.
pub(crate) fn expected_counts(vendor: Vendor, patients: Option<&BTreeSet<String>>) -> BTreeMap<String, u64> {
    let all = demo_resources();
    let in_scope = |r: &Value| {
        let t = r["resourceType"].as_str().unwrap();
        let pid = if t == "Patient" {
            r["id"].as_str()
        } else {
            patient_of(r)
        };
        SYNCED_TYPES.contains(&t)
            && t != "Medication"
            && vendor.serves(t)
            && patients.is_none_or(|set| pid.is_some_and(|p| set.contains(p)))
    };
    let kept: Vec<&Value> = all.iter().filter(|r| in_scope(r)).collect();
    let referenced: BTreeSet<&str> = kept
        .iter()
        .filter_map(|r| r["medicationReference"]["reference"].as_str())
        .filter_map(|r| r.strip_prefix("Medication/"))
        .collect();
    let mut counts = BTreeMap::new();
    let meds = all
        .iter()
        .filter(|r| r["resourceType"] == "Medication" && referenced.contains(r["id"].as_str().unwrap()));
    for r in kept.into_iter().chain(meds) {
        *counts
            .entry(r["resourceType"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn bulk_sync_reproduces_the_seed_and_the_dataset_counts_on_every_vendor() {
    for vendor in Vendor::ALL {
        let ehr = mock(vendor, FaultPlan::none()).await;
        let store = new_store();
        let report = bulk_into(&ehr, &store, &bulk_options()).await;
        let counts = store.lock().unwrap().counts().unwrap();
        assert_eq!(counts, expected_counts(vendor, None), "{vendor}: per-type counts");
        assert_eq!(report.inserted, counts.values().sum::<u64>(), "{vendor}");
        assert_eq!(store_table1(&store), served_table1(vendor), "{vendor}");
        if vendor != Vendor::Epic {
            assert_seed_figures(&store_table1(&store));
        }
        let journal = ehr.journal();
        let kick_offs: Vec<_> = journal.iter().filter(|e| e.path.ends_with("$export")).collect();
        assert_eq!(kick_offs.len(), 1, "{vendor}");
        assert_eq!(kick_offs[0].path, "/Patient/$export");
        assert!(kick_offs[0].params.contains(&"_type".to_string()));
        let polls = journal
            .iter()
            .filter(|e| e.method == "GET" && e.path.starts_with("/_bulk/status/"));
        assert_eq!(polls.count(), 3, "{vendor}: two 202s, then the manifest");
        assert!(
            journal
                .iter()
                .any(|e| e.method == "DELETE" && e.path.starts_with("/_bulk/status/")),
            "{vendor}: the finished export is released"
        );
        let state = state_of(&store);
        assert_eq!((state.status.as_str(), state.status_url), ("done", None), "{vendor}");
        assert!(
            state.watermark.is_some_and(|w| w.starts_with("2024-01-01T")),
            "{vendor}: transactionTime"
        );
    }
}

#[tokio::test]
async fn error_files_are_kept_and_short_files_are_refetched() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let base = server.uri();
    let cs = serde_json::json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Patient", "searchParam": [{"name": "_id"}]}]}]});
    let manifest = serde_json::json!({"transactionTime": "2025-02-01T00:00:00Z", "requiresAccessToken": false,
        "output": [{"type": "Patient", "url": format!("{base}/files/p.ndjson"), "count": 2}],
        "error": [{"type": "OperationOutcome", "url": format!("{base}/files/e.ndjson")}]});
    let two = "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
    let outcome = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"processing\",\"diagnostics\":\"Patient/b has a bad birthDate\"}]}\n";
    let mounts = [
        Mock::given(method("GET"))
            .and(path("/metadata"))
            .respond_with(ResponseTemplate::new(200).set_body_json(cs))
            .named("metadata")
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/Patient/$export"))
            .respond_with(
                ResponseTemplate::new(202).insert_header("content-location", format!("{base}/status/1").as_str()),
            )
            .named("kick-off")
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/status/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(manifest))
            .named("status: done")
            .expect(1),
        Mock::given(method("DELETE"))
            .and(path("/status/1"))
            .respond_with(ResponseTemplate::new(202))
            .named("release")
            .expect(1),
        // The first answer is one line short of the manifest's count: fetched again.
        Mock::given(method("GET"))
            .and(path("/files/p.ndjson"))
            .respond_with(ResponseTemplate::new(200).set_body_string(&two[..=two.find('\n').unwrap()]))
            .up_to_n_times(1)
            .named("short file")
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/files/p.ndjson"))
            .respond_with(ResponseTemplate::new(200).set_body_string(two))
            .named("whole file")
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/files/e.ndjson"))
            .respond_with(ResponseTemplate::new(200).set_body_string(outcome))
            .named("error file")
            .expect(1),
    ];
    for m in mounts {
        m.mount(&server).await;
    }
    let client = imnm_fhir::client::FhirClient::builder(base.clone())
        .retry(imnm_fhir::client::RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..Default::default()
        })
        .build()
        .unwrap();
    let store = new_store();
    let report = sync::run(&client, store.clone(), &mappings(), &bulk_options())
        .await
        .unwrap();
    server.verify().await;
    assert_eq!((report.inserted, report.server_issues), (2, 1));
    let kept = store.lock().unwrap().outcomes(SITE).unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0].contains("bad birthDate"),
        "the OperationOutcome is kept whole in the store"
    );
    let state = store.lock().unwrap().sync_state(SITE).unwrap().unwrap();
    assert_eq!(state.watermark.as_deref(), Some("2025-02-01T00:00:00Z"));
}

#[tokio::test]
async fn a_system_export_when_asked() {
    let ehr = mock(Vendor::Generic, FaultPlan::none()).await;
    let store = new_store();
    let opts = SyncOptions {
        system_export: true,
        ..bulk_options()
    };
    bulk_into(&ehr, &store, &opts).await;
    assert!(ehr.journal().iter().any(|e| e.path == "/$export"));
    assert_eq!(
        store.lock().unwrap().counts().unwrap(),
        expected_counts(Vendor::Generic, None)
    );
}

#[tokio::test]
async fn bulk_with_faults_smart_and_redirects_gives_the_clean_store() {
    let clean = new_store();
    bulk_into(&mock(Vendor::Generic, FaultPlan::none()).await, &clean, &bulk_options()).await;
    let fixtures = crate::support::root().join("tests/fixtures/smart");
    let jwks: Value = serde_json::from_slice(&std::fs::read(fixtures.join("jwks.json")).unwrap()).unwrap();
    for vendor in [Vendor::Cerner, Vendor::Generic, Vendor::Hapi] {
        let plan: FaultPlan = "429:0.2,503:0.1,truncate:0.2,drop:0.1,seed=5".parse().unwrap();
        let ehr = MockEhr::builder()
            .dataset(demo_path())
            .vendor(vendor)
            .auth(imnm_fhir::mock::Auth::Smart {
                jwks: jwks.clone(),
                client_id: "imnm-test".into(),
            })
            .faults(plan.token_expiry(4))
            .retry_after(Duration::ZERO)
            .start()
            .await
            .unwrap();
        let retry = imnm_fhir::client::RetryPolicy {
            max_retries: 8,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        };
        let client = super::smart_client(&ehr, "rs384-private.pem", "test-rs384", retry);
        let store = new_store();
        sync::run(&client, store.clone(), &mappings(), &bulk_options())
            .await
            .unwrap();
        assert_eq!(rows(&store), rows(&clean), "{vendor}: 0 lost, 0 duplicated");
        let journal = ehr.journal();
        let faulted_files = journal
            .iter()
            .filter(|e| e.path.starts_with("/_bulk/files/") && e.fault.is_some());
        let storage: Vec<_> = journal.iter().filter(|e| e.server == "storage").collect();
        if vendor == Vendor::Cerner {
            assert!(!storage.is_empty(), "downloads went to the storage origin");
            assert!(
                storage.iter().all(|e| !e.authorization && e.status == 200),
                "no Authorization across the redirect"
            );
            assert!(journal.iter().any(|e| e.status == 307));
        } else {
            assert!(faulted_files.count() > 0, "{vendor}: file downloads met faults");
        }
        assert!(
            journal.iter().any(|e| e.fault.as_deref() == Some("token-expiry")),
            "{vendor}: a token expired mid-run"
        );
    }
}

/// The demo data behind a mock whose export answers `polls` status polls with 202 and Retry-After: 1.
async fn polling_mock(polls: u32) -> MockEhr {
    MockEhr::builder()
        .dataset(demo_path())
        .retry_after(Duration::from_secs(1))
        .bulk_polls(polls)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn polls_honour_retry_after() {
    let ehr = polling_mock(2).await;
    let store = new_store();
    let started = Instant::now();
    // max_poll_wait is 10 ms: only the server's Retry-After: 1 can make the run wait.
    bulk_into(&ehr, &store, &bulk_options()).await;
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
}

/// An export that stays "running" longer than `max_export_wait`: the run
/// fails with a clear error (exit 6), keeps the status URL, and the next run
/// resumes polling that export (no second kick-off) and completes.
#[tokio::test]
async fn an_export_running_past_the_wait_limit_fails_and_the_next_run_resumes_it() {
    let ehr = MockEhr::builder()
        .dataset(demo_path())
        .retry_after(Duration::from_secs(1))
        .bulk_polls(3)
        .start()
        .await
        .unwrap();
    let store = new_store();
    let impatient = SyncOptions {
        max_export_wait: Duration::from_millis(1500),
        ..bulk_options()
    };
    let err = sync::run(&client(&ehr), store.clone(), &mappings(), &impatient)
        .await
        .unwrap_err();
    assert!(matches!(err, sync::SyncError::ExportStillRunning { .. }), "{err}");
    assert!(err.to_string().contains("the next run resumes polling it"), "{err}");
    assert_eq!(imnm_fhir::exit::ExitCode::exit_code(&err), imnm_fhir::exit::REMOTE);
    let held = store.lock().unwrap().sync_state(SITE).unwrap().unwrap();
    assert!(held.status_url.is_some(), "the status URL is kept");
    let report = bulk_into(&ehr, &store, &bulk_options()).await;
    assert!(report.resumed, "the next run polls the same export");
    assert!(report.inserted > 0);
    let kick_offs = ehr.journal().iter().filter(|e| e.path.ends_with("$export")).count();
    assert_eq!(kick_offs, 1, "one export, kicked off once");
}

#[tokio::test]
async fn an_interrupted_export_resumes_from_the_saved_status_url() {
    let ehr = MockEhr::builder()
        .dataset(demo_path())
        .retry_after(Duration::from_secs(3))
        .bulk_polls(1)
        .start()
        .await
        .unwrap();
    let store = new_store();
    let opts = bulk_options();
    let base = SITE;
    // Stop the run as soon as the status URL is saved (it then waits 3 s before polling again);
    // watching the store instead of a fixed delay keeps this right on a loaded machine.
    let saved = async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let state = store.lock().unwrap().sync_state(base).unwrap();
            if state.is_some_and(|s| s.status_url.is_some()) {
                break;
            }
        }
    };
    tokio::select! {
        _ = bulk_into(&ehr, &store, &opts) => panic!("the run finished before its status URL was seen saved"),
        waited = tokio::time::timeout(Duration::from_secs(60), saved) => assert!(waited.is_ok(), "no status URL saved in 60 s"),
    }
    let state = store.lock().unwrap().sync_state(base).unwrap().unwrap();
    assert!(state.status_url.is_some(), "the status URL is saved before polling");
    let report = bulk_into(&ehr, &store, &bulk_options()).await;
    assert!(report.resumed);
    let journal = ehr.journal();
    assert_eq!(
        journal.iter().filter(|e| e.path.ends_with("$export")).count(),
        1,
        "no second kick-off"
    );
    assert_eq!(
        store.lock().unwrap().counts().unwrap(),
        expected_counts(Vendor::Generic, None)
    );
    assert_seed_figures(&store_table1(&store));
}

/// The demo dataset plus a Group of three IMNM children.
pub(crate) fn with_group() -> (Vec<Value>, BTreeSet<String>) {
    let mut resources = demo_resources();
    let members: BTreeSet<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .take(3)
        .collect();
    let entries: Vec<Value> = members
        .iter()
        .map(|id| serde_json::json!({"entity": {"reference": format!("Patient/{id}")}}))
        .collect();
    resources.push(
        serde_json::json!({"resourceType": "Group", "id": "imnm-registry", "type": "person",
        "actual": true, "member": entries}),
    );
    (resources, members)
}

#[tokio::test]
async fn group_cohorts_by_crawl_and_by_group_export() {
    let (resources, members) = with_group();
    for mode in [Mode::Crawl, Mode::Bulk] {
        let ehr = MockEhr::builder()
            .dataset(resources.clone())
            .retry_after(Duration::ZERO)
            .start()
            .await
            .unwrap();
        let store = new_store();
        let opts = SyncOptions {
            mode,
            group: Some("imnm-registry".into()),
            ..bulk_options()
        };
        let report = bulk_into(&ehr, &store, &opts).await;
        assert_eq!(report.patients, 3, "{mode:?}");
        let counts = store.lock().unwrap().counts().unwrap();
        assert_eq!(counts, expected_counts(Vendor::Generic, Some(&members)), "{mode:?}");
        let journal = ehr.journal();
        match mode {
            Mode::Crawl => assert!(journal.iter().any(|e| e.path == "/Group/imnm-registry")),
            Mode::Bulk => assert!(journal.iter().any(|e| e.path == "/Group/imnm-registry/$export")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_the_pending_export() {
    let ehr = polling_mock(100).await;
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args([
            "sync",
            "--base-url",
            &ehr.base_url(),
            "--mode",
            "bulk",
            "--store",
            "s.db",
        ])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ehr.journal().iter().any(|e| e.path.starts_with("/_bulk/status/")) {
        assert!(Instant::now() < deadline, "the sync never polled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled on the server"), "{stderr}");
    let journal = ehr.journal();
    assert!(journal
        .iter()
        .any(|e| e.method == "DELETE" && e.path.starts_with("/_bulk/status/") && e.status == 202));
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let state = store.sync_state(&site_id_for(&ehr.base_url())).unwrap().unwrap();
    assert_eq!(state.status_url, None, "nothing left to resume");
}
