//! Sites in one store (issue 23): two EHRs numbering their resources alike
//! never overwrite each other, a store of the release before sites is upgraded
//! in place, and `imnm sync --config registry.toml` syncs each site, a failing
//! one not stopping the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imnm_fhir::mock::MockEhr;
use imnm_fhir::store::{site_id_for, Row, Store, SCHEMA_VERSION};
use imnm_fhir::sync::{self, SyncOptions};
use serde_json::Value;

use crate::mock::demo_resources;
use crate::support::{imnm, mappings, root};
use crate::sync::{client, new_store, rows};

pub(crate) async fn ehr_serving(resources: Vec<Value>) -> MockEhr {
    MockEhr::builder()
        .dataset(resources)
        .retry_after(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

/// The demo's resources as another hospital's: other children (every resource
/// differs) under the very same resource ids.
fn other_hospital() -> Vec<Value> {
    demo_resources()
        .into_iter()
        .map(|mut r| {
            r["language"] = "en-GB".into();
            if r["resourceType"] == "Patient" {
                r["gender"] = if r["gender"] == "female" { "male" } else { "female" }.into();
            }
            r
        })
        .collect()
}

async fn sync_site(ehr: &MockEhr, store: &Arc<Mutex<Store>>, site: &str) -> sync::SyncReport {
    let options = SyncOptions {
        site: site.into(),
        page_size: 7,
        ..SyncOptions::default()
    };
    sync::run(&client(ehr), store.clone(), &mappings(), &options)
        .await
        .unwrap()
}

fn site_rows(rows: &[Row], site: &str) -> Vec<Row> {
    rows.iter().filter(|r| r.site == site).cloned().collect()
}

// See: issue 23 (the second sync reported "0 new, 43 updated" and one hospital's data was lost).
#[tokio::test]
async fn r23_two_ehrs_with_the_same_ids_keep_both_sites() {
    let a = ehr_serving(demo_resources()).await;
    let b = ehr_serving(other_hospital()).await;
    let store = new_store();
    let first = sync_site(&a, &store, "a").await;
    let a_rows = rows(&store);
    assert!(!a_rows.is_empty() && a_rows.iter().all(|r| r.site == "a"));
    assert_eq!(first.inserted as usize, a_rows.len());
    let second = sync_site(&b, &store, "b").await;
    assert_eq!(second.site, "b");
    assert_eq!(second.updated, 0, "nothing of site a is replaced: {second:?}");
    let all = rows(&store);
    let b_rows = site_rows(&all, "b");
    assert_eq!(second.inserted as usize, b_rows.len());
    assert_eq!(
        all.len(),
        a_rows.len() + b_rows.len(),
        "every resource of both sites is held"
    );
    assert_eq!(
        site_rows(&all, "a"),
        a_rows,
        "site a's rows are byte for byte unchanged"
    );
    // The same (type, id) under both sites, with each hospital's own JSON.
    let same: Vec<_> = b_rows
        .iter()
        .filter(|r| {
            a_rows
                .iter()
                .any(|x| x.rtype == r.rtype && x.id == r.id && x.json != r.json)
        })
        .collect();
    assert_eq!(
        same.len(),
        b_rows.len(),
        "every id is shared and every resource differs"
    );
    let s = store.lock().unwrap();
    assert_eq!(s.sites().unwrap(), ["a", "b"]);
    assert_eq!(
        s.counts_in("a").unwrap().values().sum::<u64>() + s.counts_in("b").unwrap().values().sum::<u64>(),
        all.len() as u64
    );
    let base_a = s.sync_state("a").unwrap().unwrap().base_url.unwrap();
    assert!(base_a.starts_with(&a.base_url()), "{base_a}");
    assert_eq!(
        s.cohort("a").unwrap(),
        s.cohort("b").unwrap(),
        "same patient ids, kept per site"
    );
    // The cohort from the store: every case of both sites, each with its own sex.
    let sites = imnm_fhir::pipeline::collect_store_sites(&s, "store", &mappings()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let formats = imnm_fhir::cohort::Formats::default();
    let run = imnm_fhir::cohort::build_and_write_sites(sites, &mappings(), out.path(), formats).unwrap();
    let rows = &run.cohort.rows.all().unwrap();
    let of = |site: &str| rows.iter().filter(|r| r.site == site).collect::<Vec<_>>();
    assert_eq!((of("a").len(), of("b").len()), (10, 10), "20 cases, not 10");
    for (x, y) in of("a").iter().zip(of("b")) {
        assert_eq!(x.patient_id, y.patient_id);
        assert_ne!(crate::support::cell(x, "sex"), crate::support::cell(y, "sex"));
    }
}

/// One resource row without its site: (type, id, versionId, lastUpdated, json).
type BareRow = (String, String, Option<String>, Option<String>, String);

/// The rows of a store file as the release before sites wrote them.
fn v1_rows(path: &std::path::Path) -> Vec<BareRow> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT rtype, id, version_id, last_updated, json FROM resource ORDER BY rtype, id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[test]
fn a_store_of_the_release_before_sites_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    std::fs::copy(root().join("tests/fixtures/store-v1.db"), &path).unwrap();
    let before = v1_rows(&path);
    assert_eq!(before.len(), 75);
    let site = site_id_for("http://127.0.0.1:8080/fhir/");
    assert_eq!(site, "127-0-0-1-8080");

    let store = Store::open(&path).unwrap();
    let upgraded = store.rows().unwrap();
    let got: Vec<_> = upgraded
        .iter()
        .map(|r| {
            assert_eq!(r.site, site);
            (
                r.rtype.clone(),
                r.id.clone(),
                r.version_id.clone(),
                r.last_updated.clone(),
                r.json.clone(),
            )
        })
        .collect();
    assert_eq!(
        got, before,
        "every resource kept, byte for byte, under the derived site"
    );
    assert_eq!(store.sites().unwrap(), std::slice::from_ref(&site));
    let state = store.sync_state(&site).unwrap().unwrap();
    assert_eq!(state.base_url.as_deref(), Some("http://127.0.0.1:8080/fhir/"));
    assert_eq!(state.watermark.as_deref(), Some("2026-11-30T10:00:00Z"));
    assert_eq!(state.status, "done");
    assert_eq!(store.cohort(&site).unwrap().len(), 3);
    assert_eq!(store.outcomes(&site).unwrap().len(), 1);
    let state_before = (state, store.cohort(&site).unwrap(), store.outcomes(&site).unwrap());
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let leftovers: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(leftovers, 0, "the old tables are gone");
    drop(conn);

    // Opening again changes nothing.
    let again = Store::open(&path).unwrap();
    assert_eq!(again.rows().unwrap(), upgraded);
    let state_again = (
        again.sync_state(&site).unwrap().unwrap(),
        again.cohort(&site).unwrap(),
        again.outcomes(&site).unwrap(),
    );
    assert_eq!(state_again, state_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_config_with_a_site_down_stores_the_other_and_fails() {
    let up = ehr_serving(demo_resources()).await;
    let dir = tempfile::tempdir().unwrap();
    // Site "down": nothing listens on port 9 (connection refused).
    let config = format!(
        "store = \"registry.db\"\n\n\
         [[site]]\nid = \"down\"\nname = \"Hospital Down\"\nbase_url = \"http://127.0.0.1:9/fhir\"\n\n\
         [[site]]\nid = \"up\"\nname = \"Hospital Up\"\nbase_url = \"{}\"\nconcurrency = 2\n",
        up.base_url()
    );
    std::fs::write(dir.path().join("registry.toml"), config).unwrap();
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        imnm(&["sync", "--config", "registry.toml", "--parallel-sites", "2"], &cwd)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(imnm_fhir::exit::REMOTE as i32), "{stderr}");
    let line = |id: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(&format!("site {id} ")))
            .unwrap_or_else(|| panic!("no line for site {id}: {stderr}"))
            .to_string()
    };
    assert!(line("down").contains("failed"), "{stderr}");
    assert!(line("up").contains(" ok ") && line("up").contains(" new"), "{stderr}");
    assert!(stderr.contains("1 of 2 site(s) failed"), "{stderr}");

    let store = Store::open(&dir.path().join("registry.db")).unwrap();
    assert!(store.counts_in("up").unwrap()["Patient"] >= 10);
    assert!(store.counts_in("down").unwrap().is_empty());
    assert_eq!(store.sync_state("down").unwrap().unwrap().status, "failed");
    assert_eq!(store.sync_state("up").unwrap().unwrap().status, "done");
    let log = std::fs::read_to_string(dir.path().join("log.ndjson")).unwrap();
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e["site"] == "up" || e["site"] == "down"), "{log}");
    assert!(events.iter().any(|e| e["site"] == "down" && e["event"] == "failed"));

    // --site picks one; the next run of it is incremental (its watermark).
    let cwd = dir.path().to_path_buf();
    let again = tokio::task::spawn_blocking(move || imnm(&["sync", "--config", "registry.toml", "--site", "up"], &cwd))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("site down"), "{stderr}");
    assert!(stderr.contains("changes since"), "{stderr}");
    // Single-server flags are set per site in a registry config.
    let cwd = dir.path().to_path_buf();
    let bad =
        tokio::task::spawn_blocking(move || imnm(&["sync", "--config", "registry.toml", "--concurrency", "3"], &cwd))
            .await
            .unwrap();
    assert_eq!(bad.status.code(), Some(imnm_fhir::exit::USAGE as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_without_site_names_the_derived_one() {
    let ehr = ehr_serving(demo_resources()).await;
    let dir = tempfile::tempdir().unwrap();
    let base = ehr.base_url();
    let cwd = dir.path().to_path_buf();
    let (derived, named, bad) = tokio::task::spawn_blocking(move || {
        (
            imnm(&["sync", "--base-url", &base, "--store", "s.db"], &cwd),
            imnm(
                &["sync", "--base-url", &base, "--store", "s.db", "--site", "hospital-a"],
                &cwd,
            ),
            imnm(
                &["sync", "--base-url", &base, "--store", "s.db", "--site", "Hospital A"],
                &cwd,
            ),
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&derived.stderr);
    assert!(derived.status.success(), "{stderr}");
    let site = site_id_for(&ehr.base_url());
    assert!(
        stderr.contains(&format!("site {site} (from the base URL; --site to name it)")),
        "{stderr}"
    );
    assert!(named.status.success(), "{}", String::from_utf8_lossy(&named.stderr));
    assert_eq!(bad.status.code(), Some(imnm_fhir::exit::USAGE as i32));
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(store.sites().unwrap().len(), 2);
    assert_eq!(store.counts_in(&site).unwrap(), store.counts_in("hospital-a").unwrap());
}

/// A second hospital synced under a site id the store already holds for
/// another server is refused (never mixed); a hospital that moved its
/// endpoint is synced with `new_base_url`.
#[tokio::test]
async fn a_site_id_already_synced_from_another_server_is_refused() {
    let (a, b) = (ehr_serving(demo_resources()).await, ehr_serving(other_hospital()).await);
    let store = new_store();
    sync_site(&a, &store, "a").await;
    let before = rows(&store);
    let options = SyncOptions {
        site: "a".into(),
        ..SyncOptions::default()
    };
    let err = sync::run(&client(&b), store.clone(), &mappings(), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, sync::SyncError::SiteMoved { .. }), "{err}");
    assert!(err.to_string().contains("--new-base-url"), "{err}");
    assert_eq!(rows(&store), before, "nothing written");
    let moved = SyncOptions {
        new_base_url: true,
        ..options
    };
    sync::run(&client(&b), store.clone(), &mappings(), &moved)
        .await
        .unwrap();
    let s = store.lock().unwrap();
    assert!(s
        .sync_state("a")
        .unwrap()
        .unwrap()
        .base_url
        .unwrap()
        .starts_with(&b.base_url()));
}
