//! `imnm_fhir::sync` crawling the mock EHR into the store, and `imnm sync` /
//! `imnm cohort --store` end to end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imnm_fhir::client::{Auth, FhirClient, RetryPolicy, Smart};
use imnm_fhir::mock::{Dataset, Fault, FaultPlan, MockEhr, Vendor};
use imnm_fhir::store::{Row, Store};
use imnm_fhir::sync::{self, SyncOptions, SyncReport};

use crate::cli::{assert_seed_figures, table1};
use crate::mock::{demo_path, demo_resources};
use crate::support::{bundle, imnm, mappings};

// Bulk mode against the mock's $export (every vendor), faults, the Cerner redirect, resume, Ctrl-C.
mod bulk;

// `--since auto`: only changes are asked for and stored.
mod incremental;

// Bulk `deleted` files: resources deleted on the server leave the store and the cohort.
mod deleted;

// Interrupted syncs (aborts at random moments, kill -9) then a rerun: the clean store.
mod kill;

pub(crate) async fn mock(vendor: Vendor, faults: FaultPlan) -> MockEhr {
    mock_with(demo_path(), vendor, faults).await
}

/// A mock EHR of `vendor` serving `data`, with `faults` and no waits between retries.
pub(crate) async fn mock_with(data: impl Into<Dataset>, vendor: Vendor, faults: FaultPlan) -> MockEhr {
    MockEhr::builder()
        .dataset(data)
        .vendor(vendor)
        .faults(faults)
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

pub(crate) fn client(ehr: &MockEhr) -> FhirClient {
    FhirClient::builder(ehr.base_url())
        .concurrency(4)
        .retry(RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
        })
        .build()
        .unwrap()
}

/// A client of `ehr` with SMART auth as `imnm-test`, signing with fixture key `key` (id `kid`).
pub(crate) fn smart_client(ehr: &MockEhr, key: &str, kid: &str, retry: RetryPolicy) -> FhirClient {
    let pem = std::fs::read(crate::support::root().join("tests/fixtures/smart").join(key)).unwrap();
    let smart = Smart::from_pem("imnm-test", &pem, Some(kid.into()), "system/*.rs").unwrap();
    FhirClient::builder(ehr.base_url())
        .auth(Auth::Smart(smart))
        .concurrency(4)
        .retry(retry)
        .build()
        .unwrap()
}

/// The site the library-level sync tests keep their mock's data under: one id
/// whatever port the mock got, so stores of different mocks compare row for row.
pub(crate) const SITE: &str = "mock";

/// Small pages, so paging (and faults on `next` links) is exercised.
pub(crate) fn options() -> SyncOptions {
    SyncOptions {
        site: SITE.into(),
        concurrency: 4,
        page_size: 7,
        ..SyncOptions::default()
    }
}

pub(crate) async fn sync_into(ehr: &MockEhr, store: &Arc<Mutex<Store>>) -> SyncReport {
    sync::crawl(&client(ehr), store.clone(), &mappings(), &options())
        .await
        .unwrap()
}

pub(crate) fn rows(store: &Arc<Mutex<Store>>) -> Vec<Row> {
    store.lock().unwrap().rows().unwrap()
}

/// The sync state the store holds for [`SITE`] (it must hold one).
pub(crate) fn state_of(store: &Arc<Mutex<Store>>) -> imnm_fhir::store::SyncState {
    store.lock().unwrap().sync_state(SITE).unwrap().unwrap()
}

pub(crate) fn new_store() -> Arc<Mutex<Store>> {
    Arc::new(Mutex::new(Store::in_memory().unwrap()))
}

/// Table 1 (as JSON rows) of the cohort built from the store.
pub(crate) fn store_table1(store: &Arc<Mutex<Store>>) -> Vec<serde_json::Value> {
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_store(&store.lock().unwrap(), "store", &m).unwrap();
    let out = tempfile::tempdir().unwrap();
    imnm_fhir::cohort::build_and_write(collected, &m, out.path()).unwrap();
    table1(out.path())
}

/// Table 1 of the demo dataset restricted to the resource types `vendor` serves.
pub(crate) fn served_table1(vendor: Vendor) -> Vec<serde_json::Value> {
    let served: Vec<_> = demo_resources()
        .into_iter()
        .filter(|r| vendor.serves(r["resourceType"].as_str().unwrap()))
        .collect();
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_json_text("served", &bundle(&served), &m);
    let out = tempfile::tempdir().unwrap();
    imnm_fhir::cohort::build_and_write(collected, &m, out.path()).unwrap();
    table1(out.path())
}

#[tokio::test]
async fn crawl_of_the_demo_data_gives_the_served_table1_and_the_seed_on_generic() {
    for vendor in [Vendor::Generic, Vendor::Epic] {
        let ehr = mock(vendor, FaultPlan::none()).await;
        let store = new_store();
        let report = sync_into(&ehr, &store).await;
        assert!(report.patients >= 10, "{vendor}: {report:?}");
        assert!(
            report.pages > report.patients * 4,
            "{vendor}: paging happened: {report:?}"
        );
        let t = store_table1(&store);
        // Everything the server serves reaches Table 1 (Epic serves no MedicationStatement,
        // which carries three children's methotrexate in the demo data).
        assert_eq!(t, served_table1(vendor), "{vendor}");
        if vendor == Vendor::Generic {
            assert_seed_figures(&t);
        }
        let state = state_of(&store);
        assert_eq!(
            (state.status.as_str(), state.pages_done),
            ("done", report.pages),
            "{vendor}"
        );
    }
}

#[tokio::test]
async fn resync_changes_nothing() {
    let ehr = mock(Vendor::Generic, FaultPlan::none()).await;
    let store = new_store();
    let first = sync_into(&ehr, &store).await;
    let before = rows(&store);
    assert_eq!(first.inserted, before.len() as u64);
    let second = sync_into(&ehr, &store).await;
    assert_eq!((second.inserted, second.updated), (0, 0));
    assert_eq!(rows(&store), before, "same rows, same versions, same JSON");
}

#[tokio::test]
async fn faults_leave_the_store_identical_to_a_clean_sync() {
    let clean = new_store();
    sync_into(&mock(Vendor::Generic, FaultPlan::none()).await, &clean).await;
    let plan = FaultPlan::none()
        .with(Fault::TooManyRequests, 0.15)
        .with(Fault::Unavailable, 0.1)
        .with(Fault::Truncate, 0.1)
        .with(Fault::Drop, 0.05)
        .with(Fault::RepeatLast, 0.2)
        .seed(11);
    let ehr = mock(Vendor::Generic, plan).await;
    let faulty = new_store();
    sync_into(&ehr, &faulty).await;
    let journal = ehr.journal();
    for fault in ["429", "503", "truncate", "drop", "repeat-last"] {
        assert!(
            journal.iter().any(|e| e.fault.as_deref() == Some(fault)),
            "fault {fault} was injected at least once"
        );
    }
    assert_eq!(rows(&faulty), rows(&clean), "0 lost, 0 duplicated, same versions");
    assert_seed_figures(&store_table1(&faulty));
}

#[tokio::test]
async fn epic_profile_observations_by_category_and_medications_from_requests() {
    let ehr = mock(Vendor::Epic, FaultPlan::none()).await;
    let store = new_store();
    let report = sync_into(&ehr, &store).await;
    let journal = ehr.journal();
    let observation_searches: Vec<_> = journal.iter().filter(|e| e.path == "/Observation").collect();
    assert!(!observation_searches.is_empty());
    assert!(
        observation_searches
            .iter()
            .all(|e| e.params.iter().any(|p| p == "category")),
        "no Observation search without category"
    );
    assert!(journal.iter().all(|e| e.status < 400), "Epic refused nothing");
    assert!(!journal.iter().any(|e| e.path.starts_with("/MedicationStatement")));
    assert!(journal.iter().any(|e| e.path == "/MedicationRequest"));
    assert!(journal.iter().any(|e| e.path == "/Medication"));
    assert!(report.medications_fetched > 0);
    let counts = store.lock().unwrap().counts().unwrap();
    assert!(!counts.contains_key("MedicationStatement"));
    assert!(
        counts["MedicationRequest"] > 0 && counts["Medication"] > 0 && counts["DocumentReference"] > 0,
        "{counts:?}"
    );
}

/// Epic behind a gateway that names itself, which also refuses DocumentReference
/// searches without `category`: its CapabilityStatement does not say Epic, so the
/// first Observation and DocumentReference searches go without `category`, are
/// refused (400), and are sent again with the categories.
#[tokio::test]
async fn a_server_refusing_searches_without_category_is_searched_by_category() {
    let named = mock(Vendor::Epic, FaultPlan::none()).await;
    let named_store = new_store();
    sync_into(&named, &named_store).await;
    let gateway = MockEhr::builder()
        .dataset(demo_path())
        .vendor(Vendor::Epic)
        .software("Acme FHIR gateway")
        .require_param("DocumentReference", "category")
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let store = new_store();
    sync_into(&gateway, &store).await;
    let journal = gateway.journal();
    for rtype in ["/Observation", "/DocumentReference"] {
        let searches: Vec<_> = journal.iter().filter(|e| e.path == rtype).collect();
        let refused: Vec<_> = searches.iter().filter(|e| e.status == 400).collect();
        assert!(
            !refused.is_empty(),
            "{rtype}: the gateway refused a search without category"
        );
        assert!(
            refused.iter().all(|e| !e.params.iter().any(|p| p == "category")),
            "{rtype}: only searches without category were refused"
        );
        assert!(searches
            .iter()
            .any(|e| e.status == 200 && e.params.iter().any(|p| p == "category")));
    }
    assert_eq!(
        rows(&store),
        rows(&named_store),
        "the same resources as from Epic named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_cohort_from_the_store_on_the_command_line() {
    let ehr = mock(Vendor::Generic, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let base = ehr.base_url();
    let cwd = dir.path().to_path_buf();
    let (sync_out, cohort_out) = tokio::task::spawn_blocking(move || {
        let s = imnm(
            &["sync", "--base-url", &base, "--store", "s.db", "--concurrency", "3"],
            &cwd,
        );
        let c = imnm(&["cohort", "--store", "s.db", "--out", "out"], &cwd);
        (s, c)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&sync_out.stderr);
    assert!(sync_out.status.success(), "{stderr}");
    assert!(stderr.contains("synced"), "{stderr}");
    assert!(
        cohort_out.status.success(),
        "{}",
        String::from_utf8_lossy(&cohort_out.stderr)
    );
    assert_seed_figures(&table1(&dir.path().join("out")));
    let bad = imnm(
        &["sync", "--base-url", "http://127.0.0.1:9", "--store", "x.db"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(6), "unreachable server: exit 6");
}

#[tokio::test]
async fn smart_backend_services_with_expiring_tokens_gives_the_same_store() {
    let clean = new_store();
    sync_into(&mock(Vendor::Generic, FaultPlan::none()).await, &clean).await;
    let fixtures = crate::support::root().join("tests/fixtures/smart");
    let jwks: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures.join("jwks.json")).unwrap()).unwrap();
    for (key, kid) in [("rs384-private.pem", "test-rs384"), ("es384-private.pem", "test-es384")] {
        let ehr = MockEhr::builder()
            .dataset(demo_path())
            .auth(imnm_fhir::mock::Auth::Smart {
                jwks: jwks.clone(),
                client_id: "imnm-test".into(),
            })
            .faults(FaultPlan::none().token_expiry(15))
            .retry_after(Duration::ZERO)
            .start()
            .await
            .unwrap();
        let client = smart_client(&ehr, key, kid, RetryPolicy::default());
        let store = new_store();
        sync::crawl(&client, store.clone(), &mappings(), &options())
            .await
            .unwrap();
        assert_eq!(rows(&store), rows(&clean), "{key}");
        let journal = ehr.journal();
        let tokens = journal.iter().filter(|e| e.path == "/auth/token").count();
        assert!(tokens > 1, "{key}: tokens were renewed after expiry ({tokens})");
        let api = journal
            .iter()
            .filter(|e| !e.path.starts_with("/auth") && !e.path.starts_with("/.well-known"));
        assert!(
            api.clone().all(|e| e.authorization),
            "{key}: every API request carried a token"
        );
        assert!(api.clone().any(|e| e.status == 401), "{key}: expiry was injected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_flags_win_and_the_run_log_holds_no_identifiers() {
    let ehr = mock(Vendor::Generic, "429:0.1,seed=3".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sync.toml"),
        format!(
            "base-url = \"{}\"\nstore = \"from-config.db\"\nconcurrency = 2\nmode = \"crawl\"\n",
            ehr.base_url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "base-url = \"http://x\"\nstorre = \"typo.db\"\n",
    )
    .unwrap();
    let cwd = dir.path().to_path_buf();
    let (ok, bad) = tokio::task::spawn_blocking(move || {
        let ok = imnm(&["sync", "--config", "sync.toml", "--store", "flag.db"], &cwd);
        let bad = imnm(&["sync", "--config", "bad.toml"], &cwd);
        let since = imnm(&["sync", "--config", "sync.toml", "--since", "yesterday"], &cwd);
        assert_eq!(
            since.status.code(),
            Some(2),
            "--since that is not an instant: usage error"
        );
        (ok, bad)
    })
    .await
    .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(dir.path().join("flag.db").is_file(), "the flag wins over the config");
    assert!(!dir.path().join("from-config.db").exists());
    assert_eq!(bad.status.code(), Some(2), "unknown config key: usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("storre"));
    let log = std::fs::read_to_string(dir.path().join("log.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let requests: Vec<_> = lines.iter().filter(|l| l["event"] == "request").collect();
    assert_eq!(
        requests.len(),
        ehr.journal().len(),
        "one line per request the server answered"
    );
    assert!(requests
        .iter()
        .any(|l| l["status"] == 429 && l["retry_wait_ms"].is_u64()));
    assert!(requests.iter().any(|l| l["path"] == "Patient"));
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done");
    assert!(done["inserted"].as_u64().unwrap() > 0);
    for r in demo_resources() {
        if r["resourceType"] == "Patient" {
            let id = r["id"].as_str().unwrap();
            assert!(!log.contains(id), "the log names no patient");
        }
    }
    assert!(!log.contains('?'), "no query strings");
}

#[tokio::test]
async fn uncategorised_observations_are_found_where_category_is_optional() {
    let mut resources = demo_resources();
    let pid = resources
        .iter()
        .find(|r| r["resourceType"] == "Condition" && r.to_string().contains("715863001"))
        .and_then(|c| c["subject"]["reference"].as_str())
        .unwrap()
        .trim_start_matches("Patient/")
        .to_string();
    resources.push(
        serde_json::json!({"resourceType": "Observation", "id": "no-category", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
        "subject": {"reference": format!("Patient/{pid}")}, "effectiveDateTime": "2016-01-01",
        "valueQuantity": {"value": 3000, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}),
    );
    let ehr = MockEhr::builder()
        .dataset(resources)
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let store = new_store();
    sync_into(&ehr, &store).await;
    assert!(store
        .lock()
        .unwrap()
        .contains(SITE, "Observation", "no-category")
        .unwrap());
    let journal = ehr.journal();
    assert!(journal
        .iter()
        .filter(|e| e.path == "/Observation")
        .all(|e| !e.params.iter().any(|p| p == "category")));
}

#[tokio::test]
async fn the_token_endpoint_is_retried_honouring_retry_after_as_an_http_date() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let base = server.uri();
    // Retry-After as an HTTP date 3 s ahead (1 s resolution): the retry waits at least 1 s.
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    let mounts = [
        Mock::given(method("GET"))
            .and(path("/.well-known/smart-configuration"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"token_endpoint": format!("{base}/token")})),
            )
            .named("discovery")
            .expect(1),
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(503).insert_header("retry-after", later.as_str()))
            .up_to_n_times(1)
            .named("token endpoint busy")
            .expect(1),
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "tok", "expires_in": 300})),
            )
            .named("token")
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/metadata"))
            .and(header("authorization", "Bearer tok"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"resourceType": "CapabilityStatement"})),
            )
            .named("metadata with the token")
            .expect(1),
    ];
    for m in mounts {
        m.mount(&server).await;
    }
    let pem = std::fs::read(crate::support::root().join("tests/fixtures/smart/es384-private.pem")).unwrap();
    let smart = Smart::from_pem("imnm-test", &pem, None, "system/*.rs").unwrap();
    let client = FhirClient::builder(base).auth(Auth::Smart(smart)).build().unwrap();
    let started = std::time::Instant::now();
    client.capabilities().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    server.verify().await;
}

/// A CapabilityStatement declaring `types` (each with `patient`, and `code` on Condition when `code`).
fn statement(types: &[&str], code: bool) -> serde_json::Value {
    let resource: Vec<serde_json::Value> = types
        .iter()
        .map(|t| {
            let mut params = vec![serde_json::json!({"name": "patient"})];
            if *t == "Condition" && code {
                params.push(serde_json::json!({"name": "code"}));
            }
            serde_json::json!({"type": t, "searchParam": params})
        })
        .collect();
    serde_json::json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": resource}]})
}

/// A crawl asks for the cohort's Condition search while the CapabilityStatement is
/// still on its way (one round trip less per site), and searches patients once it came.
#[tokio::test]
async fn the_cohort_search_is_sent_while_the_capability_statement_is_on_its_way() {
    use std::time::Instant;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    let server = MockServer::start().await;
    let delay = Duration::from_millis(1500);
    let asked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let log = |asked: &Arc<Mutex<Vec<(String, Instant)>>>, answer: ResponseTemplate| {
        let asked = asked.clone();
        move |r: &Request| {
            asked.lock().unwrap().push((r.url.path().to_string(), Instant::now()));
            answer.clone()
        }
    };
    let cs = statement(&["Patient", "Condition", "Observation"], true);
    let condition = serde_json::json!({"resourceType": "Condition", "id": "c1",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "715863001"}]},
        "subject": {"reference": "Patient/p1"}});
    let empty = serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": []});
    let mounts = [
        Mock::given(method("GET")).and(path("/metadata")).respond_with(log(
            &asked,
            ResponseTemplate::new(200).set_body_json(cs).set_delay(delay),
        )),
        Mock::given(method("GET")).and(path("/Condition")).respond_with(log(
            &asked,
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition}]}),
            ),
        )),
        Mock::given(method("GET")).respond_with(log(&asked, ResponseTemplate::new(200).set_body_json(empty))),
    ];
    for m in mounts {
        m.mount(&server).await;
    }
    let client = FhirClient::builder(server.uri()).build().unwrap();
    let report = sync::crawl(&client, new_store(), &mappings(), &options())
        .await
        .unwrap();
    assert_eq!(report.patients, 1);
    let asked = asked.lock().unwrap();
    let at = |p: &str| asked.iter().find(|(q, _)| q == p).map(|(_, t)| *t).unwrap();
    let (metadata, cohort) = (at("/metadata"), at("/Condition"));
    assert!(
        cohort.saturating_duration_since(metadata) < delay,
        "the cohort search waited {:?} for the CapabilityStatement",
        cohort.saturating_duration_since(metadata)
    );
    assert!(
        at("/Patient").duration_since(metadata) >= delay,
        "a patient's search started before the CapabilityStatement came"
    );
}

/// What the CapabilityStatement refuses (Condition not declared, or no Condition `code`
/// search) stays the run's error when the cohort search sent beside it fails first.
#[tokio::test]
async fn the_capability_statements_refusal_comes_before_the_cohort_search_failure() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    for (cs, refused) in [
        (statement(&["Patient", "Condition"], false), "no Condition code search"),
        (statement(&["Patient"], false), "no Condition declared"),
    ] {
        let server = MockServer::start().await;
        let later = ResponseTemplate::new(200)
            .set_body_json(cs)
            .set_delay(Duration::from_millis(300));
        Mock::given(method("GET"))
            .and(path("/metadata"))
            .respond_with(later)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/Condition"))
            .respond_with(ResponseTemplate::new(400))
            .mount(&server)
            .await;
        let client = FhirClient::builder(server.uri()).build().unwrap();
        let err = sync::crawl(&client, new_store(), &mappings(), &options())
            .await
            .unwrap_err();
        let expected = match refused {
            "no Condition code search" => matches!(err, sync::SyncError::NoSearchParam { param: "code", .. }),
            _ => matches!(
                err,
                sync::SyncError::NotDeclared {
                    resource_type: "Condition"
                }
            ),
        };
        assert!(expected, "{refused}: {err}");
    }
}

#[tokio::test]
async fn patients_are_searched_while_the_cohort_search_still_pages() {
    let ehr = mock(Vendor::Generic, FaultPlan::none()).await;
    let store = new_store();
    let opts = SyncOptions {
        page_size: 2,
        ..options()
    };
    let report = sync::crawl(&client(&ehr), store.clone(), &mappings(), &opts)
        .await
        .unwrap();
    let journal = ehr.journal();
    let cohort_pages = (report.patients as usize).div_ceil(2);
    assert!(cohort_pages >= 3, "the cohort search spans pages ({cohort_pages})");
    let first_patient = journal.iter().position(|e| e.path == "/Patient").unwrap();
    let pages_before = journal[..first_patient].iter().filter(|e| e.path == "/_page").count();
    assert!(
        pages_before + 1 < cohort_pages,
        "the first Patient search waited for {pages_before} of the cohort's {cohort_pages} pages"
    );
    let resync = new_store();
    sync_into(&ehr, &resync).await;
    assert_eq!(rows(&store), rows(&resync), "the same store as with larger pages");
}

/// A server whose paging goes round — a `next` link back to the first page,
/// or an offset it ignores so the same page comes again under new URLs — ends
/// the search with an error naming the search (no URL), after reading each
/// page once, instead of reading forever.
#[tokio::test]
async fn a_search_whose_paging_goes_round_stops_with_an_error() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let base = server.uri();
    let page = |ids: &[&str], next: &str| {
        let entry: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"resource": {"resourceType": "Patient", "id": id}}))
            .collect();
        serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": entry,
            "link": [{"relation": "next", "url": format!("{base}{next}")}]})
    };
    let mounts = [
        // Round: page 1 → page 2 → page 1.
        Mock::given(method("GET"))
            .and(path("/Patient"))
            .and(query_param("name", "round"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(&["a", "b"], "/_page?p=2")))
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/_page"))
            .and(query_param("p", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(&["c"], "/Patient?name=round")))
            .expect(1),
        // Ignored offset: every page is the first one again.
        Mock::given(method("GET"))
            .and(path("/Patient"))
            .and(query_param("name", "stuck"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(page(&["x", "y"], "/Observation?name=stuck&_offset=2")),
            )
            .expect(1),
        Mock::given(method("GET"))
            .and(path("/Observation"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(page(&["x", "y"], "/Observation?name=stuck&_offset=4")),
            )
            .expect(1),
    ];
    for m in mounts {
        m.mount(&server).await;
    }
    let client = FhirClient::builder(base).build().unwrap();
    for (name, pages_before) in [("round", 2), ("stuck", 1)] {
        let mut pages = client.search("Patient", &[("name", name.to_string())]);
        let mut read = 0;
        let err = loop {
            match pages.next().await {
                Ok(Some(_)) => read += 1,
                Ok(None) => panic!("{name}: the search ended"),
                Err(e) => break e,
            }
        };
        assert_eq!(read, pages_before, "{name}");
        let text = err.to_string();
        assert!(
            text.starts_with("Patient search: the server's paging repeats itself"),
            "{text}"
        );
        assert!(!text.contains("http") && !text.contains('?'), "{text}");
        assert_eq!(imnm_fhir::exit::ExitCode::exit_code(&err), imnm_fhir::exit::REMOTE);
    }
    server.verify().await;
}
