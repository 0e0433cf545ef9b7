//! SMART Fetch (PyPI `smart-fetch` 1.0.3, the Cumulus project's fetcher) against the mock EHR on the
//! demo data with SMART Backend Services auth (an RS384 PEM key, an ES384 JWKS): `crawl` with and
//! without `--id-list`, `bulk`, `hydrate` and the managed `export`. Its folders hold exactly the
//! dataset's resources of the types it fetches, and `imnm cohort --input` reads them as they lie.
//!
//! SMART Fetch never fetches MedicationStatement or MedicationAdministration (not in its list of
//! patient types), which carry some of the demo's medicines: Table 1 from its folders equals the
//! demo restricted to the types it fetches, and the seed's on every row but the medicines.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imnm_fhir::mock::{Auth, MockEhr, Vendor};
use serde_json::Value;

use super::tools::{self, imnm_cmd, run_ok_async};
use crate::cli::{assert_seed_figures, table1};
use crate::mock::{demo_ids, demo_path, demo_resources};
use crate::support::{bundle, mappings, read_ndjson, root};

const CLIENT: &str = "smart-fetch-client";

/// What SMART Fetch fetches of the demo data (its patient types the mock serves, plus hydrated
/// Medications): the reports and notes of site C, whose findings are text, too.
const FETCHED: [&str; 9] = [
    "Condition",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Medication",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Patient",
];

const MEDICINES: [&str; 4] = ["glucocorticoid", "methotrexate", "rituximab", "ivig"];

/// The fixture key files: a PEM (its `kid` is its RFC 7638 thumbprint) and a JWKS (`kid` test-es384).
#[derive(Clone, Copy)]
enum Key {
    Rs384Pem,
    Es384Jwks,
}

impl Key {
    fn path(self) -> PathBuf {
        let name = match self {
            Key::Rs384Pem => "rs384-private.pem",
            Key::Es384Jwks => "es384-private.jwks",
        };
        root().join("tests/fixtures/smart").join(name)
    }
}

async fn mock_on(
    dataset: impl Into<imnm_fhir::mock::Dataset>,
    vendor: Vendor,
    listener: Option<std::net::TcpListener>,
) -> MockEhr {
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/smart/jwks-smart-fetch.json")).unwrap())
            .unwrap();
    let mut builder = MockEhr::builder()
        .dataset(dataset)
        .vendor(vendor)
        .auth(Auth::Smart {
            jwks,
            client_id: CLIENT.into(),
        })
        .retry_after(Duration::ZERO);
    if let Some(l) = listener {
        builder = builder.listener(l);
    }
    builder.start().await.unwrap()
}

async fn mock() -> MockEhr {
    mock_on(demo_path(), Vendor::Generic, None).await
}

/// `smart-fetch SUBCOMMAND ARGS… --fhir-url BASE --smart-client-id … --smart-key … OUT`.
fn smart_fetch(exe: &Path, ehr: &MockEhr, key: Key, args: &[&str], out: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .args(["--fhir-url", &ehr.base_url(), "--smart-client-id", CLIENT])
        .arg("--smart-key")
        .arg(key.path())
        .arg(out)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100");
    cmd
}

/// Reads a file SMART Fetch wrote (gzip or not).
fn lines(path: &Path) -> Vec<Value> {
    if path.extension().is_some_and(|e| e == "gz") {
        let file = std::fs::File::open(path).unwrap();
        let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file));
        reader
            .lines()
            .map(|l| l.unwrap())
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    } else {
        read_ndjson(path)
    }
}

/// The resources in a folder's top-level NDJSON files (links followed), ids per type; panics on
/// a resource written twice.
fn folder_ids(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() || name == "log.ndjson" || !name.contains(".ndjson") {
            continue;
        }
        for r in lines(&path) {
            let (t, id) = (r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
            assert!(
                out.entry(t.into()).or_default().insert(id.into()),
                "{t}/{id} twice in {dir:?}"
            );
        }
    }
    out
}

/// The demo dataset's ids of the types in `types`.
fn demo_ids_of(types: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    demo_ids()
        .into_iter()
        .filter(|(t, _)| types.contains(&t.as_str()))
        .collect()
}

/// Table 1 of the demo dataset restricted to `types`.
fn demo_table1_of(types: &[&str]) -> Vec<Value> {
    let kept: Vec<Value> = demo_resources()
        .into_iter()
        .filter(|r| types.contains(&r["resourceType"].as_str().unwrap()))
        .collect();
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_json_text("demo", &bundle(&kept), &m);
    let out = tempfile::tempdir().unwrap();
    imnm_fhir::cohort::build_and_write(collected, &m, out.path()).unwrap();
    table1(out.path())
}

/// `imnm cohort --input` each of `inputs`: Table 1 and the issues.
async fn cohort(inputs: &[&Path]) -> (Vec<Value>, Vec<Value>) {
    let out = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["cohort".into()];
    for i in inputs {
        args.push("--input".into());
        args.push(i.display().to_string());
    }
    args.extend(["--out".into(), out.path().display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok_async(imnm_cmd(&args, out.path()), "imnm cohort --input <smart-fetch folder>").await;
    (table1(out.path()), read_ndjson(&out.path().join("issues.ndjson")))
}

/// Table 1 from SMART Fetch's folder is the demo's of the fetched types, and the seed's but for medicines.
fn assert_fetched_table1(t: &[Value]) {
    assert_eq!(t, demo_table1_of(&FETCHED).as_slice());
    let full = demo_table1_of(&demo_ids().keys().map(String::as_str).collect::<Vec<_>>());
    assert_seed_figures(&full);
    for (got, seed) in t.iter().zip(&full) {
        if !MEDICINES.contains(&seed["variable"].as_str().unwrap()) {
            assert_eq!(got, seed);
        }
    }
}

/// No issue above information: nothing unreadable, dangling or misread in SMART Fetch's folders.
fn assert_only_information(issues: &[Value]) {
    let bad: Vec<_> = issues.iter().filter(|i| i["severity"] != "information").collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_by_id_list_with_an_rs384_pem_then_hydrate_gets_the_dataset_per_type() {
    let Some(exe) = tools::smart_fetch() else { return };
    let ehr = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crawl");
    let ids: Vec<String> = demo_ids()["Patient"].iter().cloned().collect();
    let ids = ids.join(",");
    let crawl = smart_fetch(&exe, &ehr, Key::Rs384Pem, &["crawl", "--id-list", &ids], &out);
    run_ok_async(crawl, "smart-fetch crawl --id-list").await;
    let hydrate = smart_fetch(&exe, &ehr, Key::Rs384Pem, &["hydrate"], &out);
    run_ok_async(hydrate, "smart-fetch hydrate").await;
    assert!(out.join("Medication.referenced.ndjson.gz").is_file());
    assert_eq!(folder_ids(&out), demo_ids_of(&FETCHED));
    let journal = ehr.journal();
    assert!(journal
        .iter()
        .all(|e| e.authorization || !e.path.chars().nth(1).is_some_and(|c| c.is_ascii_uppercase())));
    let (t, issues) = cohort(&[&out]).await;
    assert_fetched_table1(&t);
    assert_only_information(&issues);
    assert!(issues
        .iter()
        .any(|i| i["message"].as_str().unwrap().contains("Bulk Data export log")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_without_id_list_exports_patients_in_bulk_with_an_es384_jwks() {
    let Some(exe) = tools::smart_fetch() else { return };
    let ehr = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crawl");
    run_ok_async(
        smart_fetch(&exe, &ehr, Key::Es384Jwks, &["crawl"], &out),
        "smart-fetch crawl",
    )
    .await;
    let journal = ehr.journal();
    assert!(
        journal.iter().any(|e| e.path.ends_with("$export")),
        "patients by bulk export"
    );
    let without_meds: Vec<&str> = FETCHED.iter().copied().filter(|t| *t != "Medication").collect();
    assert_eq!(folder_ids(&out), demo_ids_of(&without_meds));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_then_hydrate_gets_the_dataset_per_type_and_cleans_up_the_export() {
    let Some(exe) = tools::smart_fetch() else { return };
    let ehr = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bulk");
    run_ok_async(
        smart_fetch(&exe, &ehr, Key::Es384Jwks, &["bulk"], &out),
        "smart-fetch bulk",
    )
    .await;
    assert!(out.join("Patient.001.ndjson.gz").is_file(), "Type.NNN.ndjson.gz files");
    run_ok_async(
        smart_fetch(&exe, &ehr, Key::Rs384Pem, &["hydrate"], &out),
        "smart-fetch hydrate",
    )
    .await;
    assert_eq!(folder_ids(&out), demo_ids_of(&FETCHED));
    // SMART Fetch deletes the finished export with its read-only token: allowed (Bulk Data spec).
    let journal = ehr.journal();
    let delete = journal
        .iter()
        .find(|e| e.method == "DELETE")
        .expect("the export is cleaned up");
    assert!(delete.status < 300, "DELETE answered {}", delete.status);
    let (t, issues) = cohort(&[&out]).await;
    assert_fetched_table1(&t);
    assert_only_information(&issues);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_exports_numbered_folders_links_and_a_deletion() {
    let Some(exe) = tools::smart_fetch() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("managed");
    let first = mock().await;
    let port = first.base_url().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    run_ok_async(
        smart_fetch(&exe, &first, Key::Rs384Pem, &["export"], &out),
        "smart-fetch export",
    )
    .await;
    drop(first);
    // The same server (same URL) later: one case's IMNM Condition is gone.
    let mut resources = demo_resources();
    let gone = resources
        .iter()
        .position(|r| r["resourceType"] == "Condition" && r["code"].to_string().contains("715863001"))
        .unwrap();
    let gone = resources.remove(gone)["id"].as_str().unwrap().to_string();
    // The port comes free once the first server's connections close: wait for it (a loaded machine).
    let mut tries = 0;
    let listener = loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => break l,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("port {port} not free yet ({e}); waiting");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("port {port} never came free: {e}"),
        }
    };
    let second = mock_on(resources, Vendor::Generic, Some(listener)).await;
    let again = smart_fetch(&exe, &second, Key::Rs384Pem, &["export", "--nickname", "later"], &out);
    run_ok_async(again, "smart-fetch export (second)").await;
    let work: Vec<PathBuf> = {
        let mut w: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        w.sort();
        w
    };
    assert_eq!(work.len(), 2, "{work:?}");
    assert!(std::fs::symlink_metadata(out.join("Condition.001.ndjson.gz"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(work[1].join("deleted/Bundle.Condition.ndjson.gz").is_file());
    // The managed folder: only the linked (latest) export is read, so 9 cases, no duplicates.
    let (t, issues) = cohort(&[&out]).await;
    assert_eq!(t[0]["n"], 9, "{:?}", t[0]);
    assert!(issues.iter().any(|i| i["code"] == "superseded"
        && i["location"]
            .as_str()
            .unwrap()
            .ends_with(work[0].file_name().unwrap().to_str().unwrap())));
    assert!(!issues.iter().any(|i| i["code"] == "duplicate"), "{issues:#?}");
    // Both work folders given explicitly: the later one's deleted/ file takes the Condition out.
    let (t, issues) = cohort(&[&work[0], &work[1]]).await;
    assert_eq!(t[0]["n"], 9);
    let deleted: Vec<_> = issues.iter().filter(|i| i["code"] == "deleted").collect();
    assert_eq!(deleted.len(), 1, "{issues:#?}");
    assert_eq!(deleted[0]["location"], format!("Condition/{gone}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_export_from_each_vendor_style_gets_the_dataset_per_type() {
    let Some(exe) = tools::smart_fetch() else { return };
    // Epic by crawl (its quirks are in search), Cerner and HAPI by bulk (307 to a storage origin,
    // random file names).
    for (vendor, mode) in [
        (Vendor::Epic, "crawl"),
        (Vendor::Cerner, "bulk"),
        (Vendor::Hapi, "bulk"),
    ] {
        let ehr = mock_on(demo_path(), vendor, None).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("managed");
        let export = smart_fetch(&exe, &ehr, Key::Es384Jwks, &["export", "--export-mode", mode], &out);
        run_ok_async(export, "smart-fetch export").await;
        assert_eq!(folder_ids(&out), demo_ids_of(&FETCHED), "{vendor}");
        let (t, issues) = cohort(&[&out]).await;
        assert_fetched_table1(&t);
        assert_only_information(&issues);
    }
}
