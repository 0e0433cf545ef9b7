//! The shared registry database (issue 26): the same sites synced into a
//! SQLite file and into PostgreSQL give the same stored rows and the same
//! cohort outputs byte for byte, for the demo's hospitals and a generated
//! (bench) hospital. Needs a server: `IMNM_PG_URL` (see `.ci/postgres`);
//! skipped with a note without one, a failure with `IMNM_PG=1` (CI).

use std::path::Path;
use std::time::Duration;

use imnm_fhir::mock::MockEhr;
use imnm_fhir::store::{testing, StoreLocation};
use serde_json::Value;

use crate::mock::demo_resources;
use crate::support::imnm;

pub(crate) fn pg_url() -> Option<String> {
    testing::fresh_database().unwrap()
}

use crate::sync_sites::ehr_serving;

/// A generated hospital-wide export's resources (the bench generator's NDJSON lines).
fn bench_resources(n: u64) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ndjson");
    let spec = imnm_fhir::bench_data::Spec::new(n);
    imnm_fhir::bench_data::write_one_ndjson(&spec, &file, None).unwrap();
    std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A registry config of `sites` (id, base URL, mode) keeping its store at `store`.
pub(crate) fn registry_toml(store: &str, sites: &[(&str, String, &str)]) -> String {
    let mut text = format!("store = \"{store}\"\n");
    for (id, url, mode) in sites {
        text.push_str(&format!(
            "\n[[site]]\nid = \"{id}\"\nname = \"Hospital {id}\"\nbase_url = \"{url}\"\nmode = \"{mode}\"\nconcurrency = 2\n"
        ));
    }
    text
}

/// Runs `imnm` off the async runtime; asserts success; returns stderr.
pub(crate) async fn run_ok(args: Vec<String>, cwd: &Path) -> String {
    let cwd = cwd.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        imnm(&args, &cwd)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "imnm failed: {stderr}");
    stderr
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

use crate::support::dir_files as files;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_stores_give_the_same_rows_and_cohort() {
    let Some(url) = pg_url() else { return };
    let a = ehr_serving(demo_resources()).await;
    let bench = ehr_serving(bench_resources(6_000)).await;
    let sites = [
        ("a", a.base_url().to_string(), "crawl"),
        ("bench", bench.base_url().to_string(), "bulk"),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lite.toml"), registry_toml("lite.db", &sites)).unwrap();
    std::fs::write(dir.path().join("pg.toml"), registry_toml(&url, &sites)).unwrap();
    for config in ["lite.toml", "pg.toml"] {
        run_ok(args(&["sync", "--config", config, "--parallel-sites", "2"]), dir.path()).await;
        let out = format!("out-{config}");
        run_ok(args(&["cohort", "--config", config, "--out", &out]), dir.path()).await;
    }
    // The stores hold the same rows in the same order.
    let lite = StoreLocation::Path(dir.path().join("lite.db")).open().unwrap();
    let pg = StoreLocation::parse(&url).open().unwrap();
    assert_eq!(lite.sites().unwrap(), ["a", "bench"]);
    assert_eq!(pg.sites().unwrap(), lite.sites().unwrap());
    let (lite_rows, pg_rows) = (lite.rows().unwrap(), pg.rows().unwrap());
    assert!(lite_rows.len() > 1_000, "{}", lite_rows.len());
    assert_eq!(pg_rows, lite_rows);
    for site in ["a", "bench"] {
        assert_eq!(pg.cohort(site).unwrap(), lite.cohort(site).unwrap());
        assert_eq!(pg.sync_state(site).unwrap().map(|s| s.status), Some("done".to_string()));
    }
    // The cohort outputs are the same bytes.
    let (from_lite, from_pg) = (
        files(&dir.path().join("out-lite.toml")),
        files(&dir.path().join("out-pg.toml")),
    );
    assert!(
        from_lite.iter().any(|(n, _)| n == "cohort.csv"),
        "{:?}",
        from_lite.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, lite), (pg_name, pg)) in from_lite.iter().zip(&from_pg) {
        assert_eq!(name, pg_name);
        assert!(lite == pg, "{name} differs between the SQLite and PostgreSQL stores");
    }
    assert_eq!(from_lite.len(), from_pg.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_url_password_never_shows() {
    let Some(url) = pg_url() else { return };
    let ehr = ehr_serving(demo_resources()).await;
    // The test server trusts loopback: the password is sent and ignored, and must appear nowhere.
    let with_password = url.replacen("://imnm@", "://imnm:s3cret-pw@", 1);
    assert_ne!(with_password, url, "IMNM_PG_URL is expected as postgres://imnm@…");
    let dir = tempfile::tempdir().unwrap();
    let mut said = run_ok(
        args(&[
            "sync",
            "--base-url",
            &ehr.base_url().to_string(),
            "--site",
            "a",
            "--store",
            &format!("{with_password}?application_name=x"),
        ]),
        dir.path(),
    )
    .await;
    said += &run_ok(args(&["cohort", "--store", &with_password, "--out", "out"]), dir.path()).await;
    said += &std::fs::read_to_string(dir.path().join("log.ndjson")).unwrap();
    for (name, bytes) in files(&dir.path().join("out")) {
        said += &format!("{name}: {}", String::from_utf8_lossy(&bytes));
    }
    assert!(said.contains("store postgres://imnm@"), "{said}");
    assert!(
        !said.contains("s3cret-pw") && !said.contains("application_name"),
        "{said}"
    );
    // A refused connection names the store without its password.
    let bad = with_password.replacen(":54", ":1", 1);
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || imnm(&["cohort", "--store", &bad, "--out", "o2"], &cwd))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(imnm_fhir::exit::INPUT as i32), "{stderr}");
    assert!(
        !stderr.contains("s3cret-pw") && stderr.contains("postgres://imnm@"),
        "{stderr}"
    );
}

/// The demo's resources as hospital `tag`'s (every resource differs, same ids).
fn hospital(tag: &str) -> Vec<Value> {
    demo_resources()
        .into_iter()
        .map(|mut r| {
            r["language"] = format!("en-{tag}").into();
            r
        })
        .collect()
}

async fn slow_ehr(resources: Vec<Value>, latency_ms: u64) -> MockEhr {
    MockEhr::builder()
        .dataset(resources)
        .retry_after(Duration::ZERO)
        .faults(imnm_fhir::mock::FaultPlan::none().latency(Duration::from_millis(latency_ms)))
        .start()
        .await
        .unwrap()
}

fn spawn_worker(cwd: &Path, config: &str, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args(["sync", "--config", config, "--worker"])
        .args(extra)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child off the async runtime: its exit status and stderr.
async fn finish(child: std::process::Child) -> (std::process::ExitStatus, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).to_string())
}

/// Sites a worker's stderr says it synced.
fn synced(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("site "))
        .filter(|l| l.contains("  ok "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sync_three_sites_into_postgres_each_once() {
    let Some(url) = pg_url() else { return };
    let ehrs = [
        slow_ehr(hospital("AU"), 3).await,
        slow_ehr(hospital("GB"), 3).await,
        slow_ehr(hospital("US"), 3).await,
    ];
    let sites: Vec<(&str, String, &str)> = ["a", "b", "c"]
        .into_iter()
        .zip(&ehrs)
        .map(|(id, e)| (id, e.base_url().to_string(), "crawl"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lite.toml"), registry_toml("lite.db", &sites)).unwrap();
    std::fs::write(dir.path().join("pg.toml"), registry_toml(&url, &sites)).unwrap();
    run_ok(
        args(&["sync", "--config", "lite.toml", "--parallel-sites", "3"]),
        dir.path(),
    )
    .await;
    let one = spawn_worker(dir.path(), "pg.toml", &[]);
    let two = spawn_worker(dir.path(), "pg.toml", &[]);
    let ((s1, e1), (s2, e2)) = (finish(one).await, finish(two).await);
    assert!(s1.success() && s2.success(), "{e1}\n{e2}");
    let mut all = synced(&e1);
    all.extend(synced(&e2));
    all.sort();
    assert_eq!(all, ["a", "b", "c"], "each site synced once:\n{e1}\n{e2}");
    let lite = StoreLocation::Path(dir.path().join("lite.db")).open().unwrap();
    let pg = StoreLocation::parse(&url).open().unwrap();
    assert_eq!(pg.rows().unwrap(), lite.rows().unwrap());
    // Nothing is due any more: a third worker syncs nothing.
    let (s3, e3) = finish(spawn_worker(dir.path(), "pg.toml", &[])).await;
    assert!(s3.success() && synced(&e3).is_empty(), "{e3}");
    assert_eq!(e3.matches("not due").count(), 3, "{e3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_lease_expires_and_another_worker_finishes_the_site() {
    let Some(url) = pg_url() else { return };
    let ehr = slow_ehr(hospital("NZ"), 15).await;
    let sites = [("a", ehr.base_url().to_string(), "crawl")];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lite.toml"), registry_toml("lite.db", &sites)).unwrap();
    std::fs::write(dir.path().join("pg.toml"), registry_toml(&url, &sites)).unwrap();
    run_ok(args(&["sync", "--config", "lite.toml"]), dir.path()).await;
    let clean = StoreLocation::Path(dir.path().join("lite.db"))
        .open()
        .unwrap()
        .rows()
        .unwrap();

    let mut killed = spawn_worker(dir.path(), "pg.toml", &["--lease-ttl", "3"]);
    let started = std::time::Instant::now();
    let rows_so_far = || {
        StoreLocation::parse(&url)
            .open()
            .map_or(0, |s| s.rows().map_or(0, |r| r.len()))
    };
    while rows_so_far() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the worker stored nothing");
        assert!(
            killed.try_wait().unwrap().is_none(),
            "the worker ended before a row was seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed.kill().unwrap(); // SIGKILL
    let _ = finish(killed).await;
    let partial = rows_so_far();
    assert!(partial < clean.len(), "the kill landed mid-run ({partial} rows)");
    // Its lease still holds: another worker leaves the site alone…
    let (s, e) = finish(spawn_worker(dir.path(), "pg.toml", &[])).await;
    assert!(
        s.success() && synced(&e).is_empty() && e.contains("held by another worker"),
        "{e}"
    );
    // …until it expires; then one takes it over and the store equals an uninterrupted run's.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (s, e) = finish(spawn_worker(dir.path(), "pg.toml", &[])).await;
    assert!(s.success() && synced(&e) == ["a"], "{e}");
    assert_eq!(StoreLocation::parse(&url).open().unwrap().rows().unwrap(), clean);
}

/// Every row of a published table, as text cells, in a stable order (PostgreSQL via its own thread).
fn pg_table(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(&sql, &[])
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
            .collect()
    })
    .join()
    .unwrap()
}

fn sqlite_table(path: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Option<String>>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cohort_tables_are_published_for_a_read_only_role() {
    let Some(url) = pg_url() else { return };
    let (a, b) = (ehr_serving(hospital("AU")).await, ehr_serving(hospital("GB")).await);
    let sites = [
        ("a", a.base_url().to_string(), "crawl"),
        ("b", b.base_url().to_string(), "crawl"),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lite.toml"), registry_toml("lite.db", &sites)).unwrap();
    std::fs::write(dir.path().join("pg.toml"), registry_toml(&url, &sites)).unwrap();
    for config in ["lite.toml", "pg.toml"] {
        run_ok(args(&["sync", "--config", config]), dir.path()).await;
        let out = format!("out-{config}");
        let said = run_ok(args(&["cohort", "--config", config, "--out", &out]), dir.path()).await;
        assert!(said.contains("published 6 table(s)"), "{said}");
    }
    // The cases table is cohort.csv, row for row; SQLite and PostgreSQL hold the same cells.
    let csv = std::fs::read_to_string(dir.path().join("out-pg.toml/cohort.csv")).unwrap();
    let cases = pg_table(
        &url,
        "SELECT site, patient_id, ck_peak_u_per_l FROM imnm_cohort.cases ORDER BY site, patient_id",
    );
    assert_eq!(cases.len(), csv.lines().count() - 1);
    assert!(
        cases.iter().any(|r| r[0].as_deref() == Some("b")),
        "per site: {cases:?}"
    );
    let lite = dir.path().join("lite.db");
    for (table, order) in [
        ("cases", "site, patient_id"),
        ("table1", "site, variable, level"),
        ("issues", "1"),
    ] {
        let q = |prefix: &str| format!("SELECT * FROM {prefix}{table} ORDER BY {order}");
        assert_eq!(
            pg_table(&url, &q("imnm_cohort.")),
            sqlite_table(&lite, &q("imnm_cohort_")),
            "{table}"
        );
    }
    let pooled = pg_table(
        &url,
        "SELECT n FROM imnm_cohort.table1 WHERE site = 'all' AND variable = 'n'",
    );
    assert_eq!(pooled, [[Some((csv.lines().count() - 1).to_string())]]);
    // The README's read-only role reads every table, also after the next build, and writes none.
    let admin = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let db: String = c.query_one("SELECT current_database()", &[]).unwrap().get(0);
            let role = format!("{db}_reader");
            c.batch_execute(&format!(
                "CREATE ROLE {role} LOGIN;
                 GRANT CONNECT ON DATABASE {db} TO {role};
                 GRANT USAGE ON SCHEMA imnm_cohort TO {role};
                 GRANT SELECT ON ALL TABLES IN SCHEMA imnm_cohort TO {role};
                 ALTER DEFAULT PRIVILEGES IN SCHEMA imnm_cohort GRANT SELECT ON TABLES TO {role};"
            ))
            .unwrap();
            role
        }
    })
    .join()
    .unwrap();
    run_ok(args(&["cohort", "--config", "pg.toml", "--out", "again"]), dir.path()).await;
    let reader_url = url.replacen("://imnm@", &format!("://{admin}@"), 1);
    let n = pg_table(&reader_url, "SELECT count(*)::text FROM imnm_cohort.cases");
    assert_eq!(n, [[Some(cases.len().to_string())]]);
    let refused = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&reader_url, postgres::NoTls).unwrap();
        c.batch_execute("DELETE FROM imnm_cohort.cases").is_err() && c.batch_execute("SELECT * FROM resource").is_err()
    })
    .join()
    .unwrap();
    assert!(refused, "the reader can write the cohort or read the raw resources");
}

/// The test server's CA (`.ci/postgres` makes it), when the server offers TLS.
fn test_ca() -> Option<std::path::PathBuf> {
    let ca = crate::support::root().join("target/pg/ca.pem");
    ca.is_file().then_some(ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_tls_checks_the_servers_certificate() {
    let Some(url) = pg_url() else { return };
    let Some(ca) = test_ca() else {
        assert!(
            std::env::var("IMNM_PG").as_deref() != Ok("1"),
            "CI's server offers TLS (.ci/postgres)"
        );
        eprintln!("no target/pg/ca.pem: the TLS test is skipped");
        return;
    };
    let ehr = ehr_serving(demo_resources()).await;
    let dir = tempfile::tempdir().unwrap();
    let tls_url = format!("{url}?sslmode=require");
    let sync = |roots: Option<&std::ffi::OsStr>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imnm"));
        cmd.args([
            "sync",
            "--base-url",
            &ehr.base_url().to_string(),
            "--site",
            "a",
            "--store",
            &tls_url,
        ])
        .current_dir(dir.path());
        match roots {
            Some(ca) => cmd.env("PGSSLROOTCERT", ca),
            None => cmd.env_remove("PGSSLROOTCERT"),
        };
        cmd.output().unwrap()
    };
    // Trusting the registry's CA: the sync goes over TLS (sslmode=require allows nothing else);
    // without a root, as libpq, encrypted and unverified.
    for roots in [Some(ca.as_os_str()), None] {
        let ok = sync(roots);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    }
    // With only the system's roots the test CA is unknown: refused, and said so without secrets or query.
    let refused = sync(Some(std::ffi::OsStr::new("system")));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(imnm_fhir::exit::OUTPUT as i32), "{stderr}");
    assert!(
        stderr.contains("certificate") || stderr.contains("Certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("sslmode"), "{stderr}");
    let store = StoreLocation::parse(&url).open().unwrap();
    assert!(store.counts_in("a").unwrap()["Patient"] >= 10);
}
