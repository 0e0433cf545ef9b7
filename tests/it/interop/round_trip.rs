//! Issue 8 item 2, end to end against Medplum (see `medplum.rs`), all through the binary as a user
//! runs it: the demo cases (`imnm cohort` → cohort.csv) → `imnm to-fhir` → `imnm push` twice (the
//! second creates nothing) → `imnm sync` into a fresh store → `imnm cohort --store` gives the seed's
//! Table 1 → one Observation added on the server → `imnm sync --since auto` fetches just that.
//! Medplum assigns its own ids on create, so Table 1 figures are compared, never patient ids.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::medplum::{ck_observation, Medplum};
use super::tools::{imnm_cmd, run_ok_async};
use crate::cli::{assert_seed_figures, table1};
use crate::support::root;

async fn imnm(args: &[&str], dir: &Path, what: &'static str) -> (String, String) {
    let out = run_ok_async(imnm_cmd(args, dir), what).await;
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (text(&out.stdout), text(&out.stderr))
}

/// Entries per resource type of a Bundle file.
fn per_type(bundle: &Path) -> BTreeMap<String, usize> {
    let b: Value = serde_json::from_str(&std::fs::read_to_string(bundle).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for e in b["entry"].as_array().unwrap() {
        *out.entry(e["resource"]["resourceType"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

/// `push`'s stdout: one `entry I Type STATUS …` line per entry; the statuses, checked in order.
fn statuses(stdout: &str, entries: usize) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), entries, "{stdout}");
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(&f[..2], &["entry", i.to_string().as_str()], "{l}");
            f[3].to_string()
        })
        .collect()
}

/// The last `done` event of a sync log.
fn done_event(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap();
    let done = text.lines().rev().find(|l| l.contains(r#""event":"done""#));
    serde_json::from_str(done.expect("a done event")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_cases_pushed_twice_synced_back_and_one_new_observation_fetched_alone() {
    let Some(server) = Medplum::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = root().join("examples/demo-cohort/bundle.json");
    let seed = ["cohort", "--input", demo.to_str().unwrap(), "--out", "seed"];
    imnm(&seed, d, "imnm cohort (seed)").await;
    imnm(
        &["to-fhir", "--cases", "seed/cohort.csv", "--out", "cases.json"],
        d,
        "imnm to-fhir",
    )
    .await;
    let want = per_type(&d.join("cases.json"));
    let n: usize = want.values().sum();
    let types: Vec<&str> = want.keys().map(String::as_str).collect();

    // Medplum caps a transaction with conditional entries at 8: in one piece it is refused whole.
    let whole = ["push", "cases.json", "--base-url", server.base_url()];
    let refused = tokio::task::spawn_blocking({
        let mut cmd = imnm_cmd(&whole, d);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(6), "{err}");
    let slice = format!(
        "slice 1 of 1 (entries 0..={}) failed after 0 entries were committed",
        n - 1
    );
    assert!(err.contains(&slice), "{err}");
    assert_eq!(
        err.matches("too many entries").count(),
        1,
        "Medplum's reason, once: {err}"
    );
    assert!(server.ids("Patient").await.is_empty());
    let push = [
        "push",
        "cases.json",
        "--base-url",
        server.base_url(),
        "--batch-size",
        "8",
    ];
    let (out, err) = imnm(&push, d, "imnm push").await;
    assert!(statuses(&out, n).iter().all(|s| s == "201"), "{out}");
    assert!(
        err.contains(&format!("pushed {n} entries: {n} created, 0 already there, 0 failed")),
        "{err}"
    );
    let held = server.ids_by_type(&types).await;
    let counts: BTreeMap<String, usize> = held.iter().map(|(t, ids)| (t.clone(), ids.len())).collect();
    assert_eq!(counts, want, "one resource on the server per Bundle entry");
    let (out, err) = imnm(&push, d, "imnm push again").await;
    assert!(statuses(&out, n).iter().all(|s| s == "200"), "{out}");
    assert!(
        err.contains(&format!("pushed {n} entries: 0 created, {n} already there, 0 failed")),
        "{err}"
    );
    assert_eq!(
        server.ids_by_type(&types).await,
        held,
        "the second push created nothing"
    );

    // Resources pushed in the second before a sync starts count as changed by it (its watermark
    // is the server's Date less one second); wait that out so the incremental run below is exact.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let sync = ["sync", "--base-url", server.base_url(), "--store", "medplum.db"];
    let (_, err) = imnm(&sync, d, "imnm sync").await;
    assert!(err.contains("synced 10 patient(s)"), "{err}");
    assert!(err.contains(&format!(" {n} new, 0 updated")), "{err}");
    let cohort = ["cohort", "--store", "medplum.db", "--out", "out"];
    imnm(&cohort, d, "imnm cohort --store").await;
    let t = table1(&d.join("out"));
    assert_seed_figures(&t);
    assert_eq!(
        t,
        table1(&d.join("seed")),
        "Table 1 through Medplum equals the seed's, row for row"
    );

    let patient = held["Patient"].first().unwrap();
    server
        .add_observation(&ck_observation(patient, 20000.0, "2025-02-03"))
        .await;
    let since = [
        "sync",
        "--base-url",
        server.base_url(),
        "--store",
        "medplum.db",
        "--since",
        "auto",
    ];
    let (_, err) = imnm(&since, d, "imnm sync --since auto").await;
    assert!(
        err.contains(" 1 new, 0 updated") && err.contains("changes since "),
        "{err}"
    );
    let obs = want["Observation"] + 1;
    assert!(err.contains(&format!("Observation {obs},")), "{err}");
    let done = done_event(&d.join("log.ndjson"));
    assert_eq!(
        done["received"],
        serde_json::json!({"Observation": 1}),
        "only the new one came: {done}"
    );
    assert_eq!(
        (done["inserted"].as_u64(), done["updated"].as_u64()),
        (Some(1), Some(0))
    );
    imnm(&cohort, d, "imnm cohort --store again").await;
    let t = table1(&d.join("out"));
    let ck = t.iter().find(|r| r["variable"] == "ck_peak_u_per_l").unwrap();
    assert_eq!(ck["max"].as_f64(), Some(20000.0), "the new CK peak is in the cohort");
}
