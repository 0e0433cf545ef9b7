//! The registry service (issue 25): `imnm serve` started as a subprocess
//! against mock EHR sites (one with faults, one down that comes back), its
//! schedule, API, tokens, audit log, metrics, the page in a headless Chromium,
//! and kill -9 during a sync then a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imnm_fhir::mock::{Fault, FaultPlan, MockEhr};
use serde_json::{json, Value};

use crate::mock::demo_resources;
use crate::support::root;

/// A running `imnm serve`; killed when dropped.
struct Served {
    child: Option<Child>,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Served {
    /// SIGTERM, then the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A registry config of `sites` (id, base URL), each synced every second, plus `extra` TOML.
fn config(sites: &[(&str, &str)], extra: &str) -> String {
    let mut text = format!("store = \"registry.db\"\n{extra}\n");
    for (id, base) in sites {
        text.push_str(&format!(
            "[[site]]\nid = \"{id}\"\nname = \"Hospital {id}\"\nbase_url = \"{base}\"\nconcurrency = 2\nevery = \"1s\"\n\n"
        ));
    }
    text
}

/// Starts `imnm serve` in `dir` (holding registry.toml) and waits for /healthz.
async fn serve(dir: &Path) -> Served {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args(["serve", "--config", "registry.toml", "--out", "out"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_for(Duration::from_secs(30), "healthz", || async {
        reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    served
}

/// Polls `check` every 100 ms until it holds; fails after `limit`.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Each site's status from /api/sites.
async fn statuses(base: &str) -> Vec<(String, String)> {
    let sites = get_json(&format!("{base}/api/sites")).await;
    sites["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn status_of(base: &str, site: &str) -> String {
    statuses(base)
        .await
        .into_iter()
        .find(|(id, _)| id == site)
        .map(|s| s.1)
        .unwrap_or_default()
}

/// A counter of /metrics for `site`.
async fn metric(base: &str, name: &str, site: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{site=\"{site}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .unwrap()
}

async fn mock_of(resources: Vec<Value>, faults: FaultPlan, listener: Option<std::net::TcpListener>) -> MockEhr {
    let mut builder = MockEhr::builder()
        .dataset(resources)
        .faults(faults)
        .retry_after(Duration::ZERO);
    if let Some(l) = listener {
        builder = builder.listener(l);
    }
    builder.start().await.unwrap()
}

/// The demo as another hospital's data (same ids, every resource different).
fn other_hospital() -> Vec<Value> {
    demo_resources()
        .into_iter()
        .map(|mut r| {
            r["language"] = "en-GB".into();
            r
        })
        .collect()
}

/// Every Patient id of the demo.
fn patient_ids() -> Vec<String> {
    let patients = demo_resources().into_iter().filter(|r| r["resourceType"] == "Patient");
    patients.map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

/// A CK Observation of `patient` (LOINC 2157-6) with a reference range.
fn ck_observation(id: &str, patient: &str, value: f64, date: &str) -> Value {
    json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": date,
        "valueQuantity": {"value": value, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},
        "referenceRange": [{"low": {"value": 30}, "high": {"value": 200}}]
    })
}

// See: issue 25 (scheduled syncs of every site, the API, a site down that comes back, metrics, audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_every_site_on_schedule_and_answers_the_api() {
    let a = mock_of(demo_resources(), FaultPlan::none(), None).await;
    let faults = FaultPlan::none()
        .with(Fault::Unavailable, 0.1)
        .with(Fault::TooManyRequests, 0.1)
        .seed(25);
    let b = mock_of(other_hospital(), faults, None).await;
    let down_port = free_port();
    let down_url = format!("http://127.0.0.1:{down_port}");
    let dir = tempfile::tempdir().unwrap();
    let text = config(&[("a", &a.base_url()), ("b", &b.base_url()), ("down", &down_url)], "");
    std::fs::write(dir.path().join("registry.toml"), text).unwrap();
    let served = serve(dir.path()).await;
    let base = served.base.clone();
    wait_for(Duration::from_secs(90), "a and b synced, down failed", || async {
        let s = statuses(&base).await;
        s.iter().any(|x| x.0 == "a" && x.1 == "ok")
            && s.iter().any(|x| x.0 == "b" && x.1 == "ok")
            && s.iter().any(|x| x.0 == "down" && x.1 == "failed")
    })
    .await;
    wait_for(Duration::from_secs(30), "both sites in the cohort", || async {
        let c = get_json(&format!("{base}/api/cohort")).await;
        c["rows"].as_array().is_some_and(|r| r.len() == 20)
    })
    .await;
    let sites = get_json(&format!("{base}/api/sites")).await;
    let down = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "down")
        .unwrap()
        .clone();
    let error = down["last_error"].as_str().unwrap();
    assert!(!error.is_empty() && !error.contains('?'), "{error}");

    // Table 1 pooled and per site; completeness; issues filtered by site; problems for bad requests.
    let t1 = get_json(&format!("{base}/api/table1")).await;
    for site in ["all", "a", "b"] {
        let n = t1["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["site"] == site && r["variable"] == "n");
        assert_eq!(n.unwrap()["n"], if site == "all" { 20 } else { 10 }, "{t1}");
    }
    let completeness = get_json(&format!("{base}/api/completeness")).await;
    assert!(completeness["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["site"] == "b"));
    let issues = get_json(&format!("{base}/api/issues?site=a")).await;
    assert!(issues["issues"].as_array().unwrap().iter().all(|i| i["site"] == "a"));
    let bad = reqwest::get(format!("{base}/api/issues?site=nowhere")).await.unwrap();
    assert_eq!(bad.status(), 404);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    assert_eq!(bad.json::<Value>().await.unwrap()["status"], 404);

    // The cohort as JSON per site, as cohort.csv's bytes, as the Parquet file.
    let at_a = get_json(&format!("{base}/api/cohort?site=a")).await;
    assert_eq!(at_a["rows"].as_array().unwrap().len(), 10);
    let http = reqwest::Client::new();
    let csv = http
        .get(format!("{base}/api/cohort"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    let csv = csv.bytes().await.unwrap();
    assert_eq!(csv.as_ref(), std::fs::read(dir.path().join("out/cohort.csv")).unwrap());
    let parquet = http
        .get(format!("{base}/api/cohort"))
        .header("accept", "application/vnd.apache.parquet");
    let parquet = parquet.send().await.unwrap().bytes().await.unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));

    // A CK result added at site a shows in its case after the next scheduled run; metrics move.
    let syncs_before = metric(&base, "imnm_syncs_total", "a").await;
    let new_before = metric(&base, "imnm_resources_new_total", "a").await;
    let cases = get_json(&format!("{base}/api/cohort?site=a")).await;
    let patient = cases["rows"][0]["patient_id"].as_str().unwrap().to_string();
    let added = ck_observation("ck-added", &patient, 98765.0, "2021-01-15");
    let put = http
        .put(format!("{}/Observation/ck-added", a.base_url()))
        .json(&added)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let case_url = format!("{base}/api/cases/a/{patient}");
    wait_for(Duration::from_secs(30), "the added CK in the case", || async {
        let case = get_json(&case_url).await;
        let series = case["series"]["ck_peak_u_per_l"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        series.iter().any(|p| p["source"] == "Observation/ck-added")
    })
    .await;
    let case = get_json(&case_url).await;
    assert_eq!(case["row"]["ck_peak_u_per_l"], "98765", "{}", case["row"]);
    let point = case["series"]["ck_peak_u_per_l"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"] == "Observation/ck-added")
        .unwrap()
        .clone();
    assert_eq!(
        (point["date"].as_str(), point["unit"].as_str()),
        (Some("2021-01-15"), Some("U/L"))
    );
    let sources = case["sources"].as_array().unwrap();
    assert!(sources
        .iter()
        .any(|s| s["reference"] == "Observation/ck-added" && s["resource"]["valueQuantity"]["value"] == 98765.0));
    assert!(case["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["column"] == "ck_peak_u_per_l"));
    assert!(metric(&base, "imnm_syncs_total", "a").await > syncs_before);
    assert!(metric(&base, "imnm_resources_new_total", "a").await > new_before);
    assert!(metric(&base, "imnm_sync_failures_total", "down").await >= 1.0);

    // The site that was down comes back and is synced.
    let listener = std::net::TcpListener::bind(("127.0.0.1", down_port)).unwrap();
    let _back = mock_of(demo_resources(), FaultPlan::none(), Some(listener)).await;
    wait_for(Duration::from_secs(60), "the site that came back synced", || async {
        status_of(&base, "down").await == "ok"
    })
    .await;

    // Sync now: 202, then 409 while it runs; 404 for an unknown site.
    let post = |site: &str| http.post(format!("{base}/api/sites/{site}/sync")).send();
    wait_for(Duration::from_secs(30), "a idle", || async {
        status_of(&base, "a").await != "running"
    })
    .await;
    assert_eq!(post("a").await.unwrap().status(), 202);
    assert_eq!(post("a").await.unwrap().status(), 409);
    assert_eq!(post("nowhere").await.unwrap().status(), 404);

    // The audit log: one line per patient-level read, no patient id, route templates only.
    let audit = std::fs::read_to_string(dir.path().join("out/audit.ndjson")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines
        .iter()
        .any(|l| l["route"] == "/api/cases/{site}/{patient_id}" && l["patients"] == 1 && l["site"] == "a"));
    assert!(lines
        .iter()
        .any(|l| l["route"] == "/api/cohort" && l["patients"] == 20 && l["token"] == "open"));
    for id in patient_ids().iter().chain(std::iter::once(&patient)) {
        assert!(!audit.contains(id.as_str()), "a patient id in the audit log");
    }
    assert!(lines.iter().all(|l| l.as_object().unwrap().len() == 5), "{audit}");

    // The run history: the site that was down failed, then came back; unknown sites are 404.
    let history = get_json(&format!("{base}/api/sites/down/runs?limit=200")).await;
    let runs = history["runs"].as_array().unwrap().clone();
    let failed: Vec<&Value> = runs.iter().filter(|r| r["status"] == "failed").collect();
    assert!(
        !failed.is_empty() && runs.iter().any(|r| r["status"] == "ok"),
        "{history}"
    );
    assert!(failed
        .iter()
        .all(|r| r["error"].as_str().is_some_and(|e| !e.contains('?'))));
    assert_eq!(post("nowhere").await.unwrap().status(), 404);
    let missing = reqwest::get(format!("{base}/api/sites/nowhere/runs")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let page = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("<table id=\"runs\">") && page.contains("failed"),
        "no recent runs on the page"
    );

    let a_newest = get_json(&format!("{base}/api/sites/a/runs?limit=1")).await["runs"][0].clone();

    // SIGTERM: exit 0.
    let status = served.terminate().await;
    assert_eq!(status.code(), Some(0));

    // A restart shows what happened before it: the run history and the last runs are the store's,
    // and the request log goes on in the same file.
    let log_before = std::fs::read_to_string(dir.path().join("out/sync-log.ndjson")).unwrap();
    let served = serve(dir.path()).await;
    let base = served.base.clone();
    let sites = get_json(&format!("{base}/api/sites")).await;
    for site in sites["sites"].as_array().unwrap() {
        assert!(site["last_end"].is_string(), "{site}");
    }
    let again = get_json(&format!("{base}/api/sites/down/runs?limit=200")).await;
    let again = again["runs"].as_array().unwrap();
    assert!(again.len() >= runs.len(), "runs before the restart lost");
    let first_failure = failed.last().unwrap();
    assert!(
        again.iter().any(|r| r == *first_failure),
        "the first failure is kept across the restart"
    );
    wait_for(Duration::from_secs(30), "a run after the restart", || async {
        let h = get_json(&format!("{base}/api/sites/a/runs?limit=1")).await;
        h["runs"][0] != a_newest && h["runs"][0]["status"] == "ok"
    })
    .await;
    // The store records a run as ended before the run's last log line is written and flushed.
    let log_path = dir.path().join("out/sync-log.ndjson");
    let (path, before) = (&log_path, log_before.len());
    wait_for(
        Duration::from_secs(30),
        "the run's log line after the restart",
        move || async move { std::fs::read_to_string(path).is_ok_and(|l| l.len() > before) },
    )
    .await;
    let log_after = std::fs::read_to_string(&log_path).unwrap();
    assert!(log_after.starts_with(&log_before) && log_after.len() > log_before.len());
    assert_eq!(served.terminate().await.code(), Some(0));
}

// See: issue 25 (bearer tokens stored as hashes, reader and operator roles, no open network listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_give_readers_get_and_operators_post() {
    let a = mock_of(demo_resources(), FaultPlan::none(), None).await;
    let dir = tempfile::tempdir().unwrap();
    // Without tokens a non-loopback address is refused (a config error).
    let open = config(&[("a", &a.base_url())], "[serve]\nlisten = \"0.0.0.0:18725\"\n");
    std::fs::write(dir.path().join("registry.toml"), open).unwrap();
    let cwd = dir.path().to_path_buf();
    let refused =
        tokio::task::spawn_blocking(move || crate::support::imnm(&["serve", "--config", "registry.toml"], &cwd))
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(imnm_fhir::exit::USAGE as i32), "{stderr}");
    assert!(stderr.contains("refusing to listen on 0.0.0.0:18725"), "{stderr}");

    // `imnm serve hash-token` gives what the config holds.
    let mut hasher = Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args(["serve", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    hasher.stdin.take().unwrap().write_all(b"operator-secret\n").unwrap();
    let hashed = hasher.wait_with_output().unwrap();
    let operator_hash = String::from_utf8(hashed.stdout).unwrap().trim().to_string();
    assert_eq!(operator_hash, imnm_fhir::service::hash_token("operator-secret"));
    let tokens = format!(
        "[serve]\n[[serve.token]]\nname = \"analyst\"\nrole = \"reader\"\nsha256 = \"{}\"\n\
         [[serve.token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{operator_hash}\"\n",
        imnm_fhir::service::hash_token("reader-secret")
    );
    std::fs::write(
        dir.path().join("registry.toml"),
        config(&[("a", &a.base_url())], &tokens),
    )
    .unwrap();
    let served = serve(dir.path()).await;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let anonymous = get("/api/sites", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(get("/api/sites", Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(get("/api/sites", Some("reader-secret")).await.unwrap().status(), 200);
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    let post = |token: &str| http.post(format!("{base}/api/sites/a/sync")).bearer_auth(token).send();
    let forbidden = post("reader-secret").await.unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(forbidden.headers()["content-type"], "application/problem+json");
    wait_for(Duration::from_secs(60), "a synced", || async {
        let r = get("/api/sites", Some("operator-secret"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        r["sites"][0]["status"] == "ok"
    })
    .await;
    assert_eq!(post("operator-secret").await.unwrap().status(), 202);
    // A reader sees Table 1 with small cells hidden; the operator sees the counts.
    wait_for(Duration::from_secs(30), "the cohort", || async {
        get("/api/table1", Some("reader-secret")).await.unwrap().status() == 200
    })
    .await;
    let reader = get("/api/table1", Some("reader-secret"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let rows = reader["rows"].as_array().unwrap();
    assert_eq!(reader["min_cell"], imnm_fhir::service::MIN_CELL);
    let hidden: Vec<&Value> = rows.iter().filter(|r| r["suppressed"] == true).collect();
    assert!(
        !hidden.is_empty() && hidden.iter().all(|r| r["n"].is_null()),
        "{reader}"
    );
    let operator = get("/api/table1", Some("operator-secret"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(operator["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.get("suppressed").is_none()));
    // A browser signs in with a token (a cookie) and is sent to /login without one;
    // a form posted from another site starts nothing.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(format!("{base}/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (page.status().as_u16(), &page.headers()["location"]),
        (303, &"/login".parse().unwrap())
    );
    let wrong = browser
        .post(format!("{base}/login"))
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let signed = browser
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=operator-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = browser
        .get(format!("{base}/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Table 1"));
    let forged = browser
        .post(format!("{base}/sites/a/sync"))
        .header("cookie", &pair)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // The audit log names the token, not the token's text.
    let _ = get("/api/cohort", Some("reader-secret")).await.unwrap();
    let audit = std::fs::read_to_string(dir.path().join("out/audit.ndjson")).unwrap();
    assert!(audit.contains("\"token\":\"analyst\""), "{audit}");
    assert!(!audit.contains("secret"), "{audit}");
    assert_eq!(served.terminate().await.code(), Some(0));
}

/// Chromium's binary, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn headless(browser: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// See: issue 25 (the registry page and a case page rendered by a real browser).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_a_case_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("IMNM_BROWSER").is_err(),
            "IMNM_BROWSER is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED serve::the_page_and_a_case_render_in_headless_chromium: no chromium on PATH (CI installs it)"
        );
        return;
    };
    let a = mock_of(demo_resources(), FaultPlan::none(), None).await;
    let b = mock_of(other_hospital(), FaultPlan::none(), None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("registry.toml"),
        config(&[("a", &a.base_url()), ("b", &b.base_url())], ""),
    )
    .unwrap();
    let served = serve(dir.path()).await;
    let base = served.base.clone();
    wait_for(Duration::from_secs(60), "both sites in the cohort", || async {
        let c = get_json(&format!("{base}/api/cohort")).await;
        c["rows"].as_array().is_some_and(|r| r.len() == 20)
    })
    .await;
    let (page_url, browser2) = (format!("{base}/"), browser.clone());
    let dom = tokio::task::spawn_blocking(move || headless(&browser2, &page_url, &["--dump-dom"]))
        .await
        .unwrap();
    assert!(
        dom.contains("<h2>Table 1</h2>") && dom.contains("id=\"table1\""),
        "{dom}"
    );
    assert!(dom.contains("Peak CK, U/L"), "Table 1's CK row");
    assert!(
        dom.contains("<th>a</th>") && dom.contains("<th>b</th>"),
        "a column per site"
    );
    assert!(dom.contains("id=\"completeness\"") && dom.contains("sync now"));
    assert_eq!(
        dom.matches("<tr><td>sex</td>").count(),
        1,
        "one completeness row per variable"
    );
    let case_link = dom
        .split("href=\"/cases/a/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let case_url = format!("{base}/cases/a/{case_link}");
    let browser3 = browser.clone();
    let case = tokio::task::spawn_blocking(move || headless(&browser3, &case_url, &["--dump-dom"]))
        .await
        .unwrap();
    assert!(case.contains("<svg") && case.contains("class=\"peak\""), "{case}");
    assert!(case.contains("href=\"/sources/a/"), "cells link to their source JSON");
    let shots = root().join("target/serve");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("page.png");
    let _ = std::fs::remove_file(&png);
    let (page_url, shot) = (format!("{base}/"), format!("--screenshot={}", png.display()));
    tokio::task::spawn_blocking(move || headless(&browser, &page_url, &[&shot, "--window-size=1280,2000"]))
        .await
        .unwrap();
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "a screenshot");
    eprintln!(
        "chromium rendered the registry page and a case page; screenshot {}",
        png.display()
    );
    assert_eq!(served.terminate().await.code(), Some(0));
}

/// Resource rows in a store another process is writing (0 before its table exists).
fn rows_so_far(path: &Path) -> usize {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(path, flags)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM resource", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
}

fn store_rows(path: &Path) -> Vec<imnm_fhir::store::Row> {
    imnm_fhir::store::Store::open(path).unwrap().rows().unwrap()
}

// See: issue 25 (SIGTERM and kill -9 of serve during a sync, a restart: the store equals an uninterrupted run's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_kill_9_of_serve_during_a_sync_then_restart_give_the_clean_store() {
    let ehr = mock_of(
        demo_resources(),
        FaultPlan::none().latency(Duration::from_millis(15)),
        None,
    )
    .await;
    let text = config(&[("a", &ehr.base_url())], "");
    let (clean, killed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&clean, &killed] {
        std::fs::write(dir.path().join("registry.toml"), &text).unwrap();
    }
    // The uninterrupted run: imnm sync of the same config.
    let cwd = clean.path().to_path_buf();
    let synced =
        tokio::task::spawn_blocking(move || crate::support::imnm(&["sync", "--config", "registry.toml"], &cwd))
            .await
            .unwrap();
    assert!(synced.status.success(), "{}", String::from_utf8_lossy(&synced.stderr));
    let clean_rows = store_rows(&clean.path().join("registry.db"));

    // serve, stopped by SIGTERM during its first sync: exit 0 at a page boundary, the pages kept.
    let served = serve(killed.path()).await;
    let db = killed.path().join("registry.db");
    wait_for(Duration::from_secs(60), "a first page stored", || async {
        rows_so_far(&db) > 0
    })
    .await;
    let stopping = Instant::now();
    assert_eq!(served.terminate().await.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "SIGTERM ends the sync at its next page"
    );
    let stopped = store_rows(&db).len();
    assert!(stopped > 0 && stopped < clean_rows.len(), "{stopped} rows");

    // serve again, killed with SIGKILL once it has stored more than the stopped run.
    let mut served = serve(killed.path()).await;
    wait_for(Duration::from_secs(60), "more pages stored", || async {
        rows_so_far(&db) > stopped
    })
    .await;
    let mut child = served.child.take().unwrap();
    child.kill().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    let partial = store_rows(&db).len();
    assert!(
        partial < clean_rows.len(),
        "the kill landed mid-sync ({partial} of {} rows)",
        clean_rows.len()
    );

    // Restarted, it resumes and ends with the clean store.
    let served = serve(killed.path()).await;
    let base = served.base.clone();
    wait_for(Duration::from_secs(60), "the restarted sync", || async {
        status_of(&base, "a").await == "ok"
    })
    .await;
    assert_eq!(served.terminate().await.code(), Some(0));
    assert_eq!(
        store_rows(&db),
        clean_rows,
        "killed after {partial} rows, then restarted"
    );
}
