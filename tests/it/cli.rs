//! The binary end to end.

use std::path::Path;

use serde_json::Value;

use crate::support::{imnm, root};

pub(crate) fn table1(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("table1.json")).expect("table1.json written");
    serde_json::from_str(&text).expect("table1.json is JSON")
}

fn figure<'a>(t: &'a [Value], variable: &str, level: Option<&str>) -> &'a Value {
    t.iter()
        .find(|r| r["variable"] == variable && r["level"].as_str() == level)
        .unwrap_or_else(|| panic!("no Table 1 row {variable} {level:?}"))
}

fn n(t: &[Value], variable: &str, level: &str) -> u64 {
    figure(t, variable, Some(level))["n"].as_u64().unwrap()
}

/// Every Table 1 figure of the seed case series.
pub(crate) fn assert_seed_figures(t: &[Value]) {
    assert_eq!(figure(t, "n", None)["n"], 10);
    assert_eq!((n(t, "sex", "male"), n(t, "sex", "female")), (4, 6));
    let age = figure(t, "onset_age_years", None);
    assert_eq!(
        (age["median"].as_f64(), age["min"].as_f64(), age["max"].as_f64()),
        (Some(5.5), Some(3.0), Some(16.0))
    );
    let ck = figure(t, "ck_peak_u_per_l", None);
    assert_eq!(
        (ck["median"].as_f64(), ck["min"].as_f64(), ck["max"].as_f64()),
        (Some(3988.5), Some(2080.0), Some(13524.0))
    );
    assert_eq!(n(t, "anti_hmgcr", "positive"), 4);
    assert_eq!(
        figure(t, "anti_hmgcr", Some("positive"))["percent"].as_f64(),
        Some(40.0)
    );
    assert_eq!(n(t, "anti_srp", "positive"), 6);
    assert_eq!(figure(t, "anti_srp", Some("positive"))["percent"].as_f64(), Some(60.0));
    assert_eq!(n(t, "proximal_weakness", "yes"), 10);
    assert_eq!(n(t, "rash", "yes"), 5);
    assert_eq!(n(t, "emg_myopathic", "yes"), 10);
    assert_eq!(n(t, "glucocorticoid", "yes"), 10);
    assert_eq!(n(t, "methotrexate", "yes"), 10);
    assert_eq!(n(t, "rituximab", "yes"), 5);
    assert_eq!(n(t, "ivig", "yes"), 8);
    assert_eq!(n(t, "outcome", "complete_remission"), 4);
    assert_eq!(n(t, "outcome", "partial_remission"), 5);
    assert_eq!(n(t, "outcome", "no_remission"), 1);
}

#[test]
fn cohort_from_the_demo_bundle_reproduces_the_seed() {
    let out = tempfile::tempdir().unwrap();
    let o = imnm(
        &[
            "cohort",
            "--input",
            "examples/demo-cohort/bundle.json",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_seed_figures(&table1(out.path()));
    let cohort = std::fs::read_to_string(out.path().join("cohort.csv")).unwrap();
    assert_eq!(cohort.lines().count(), 11);
    assert!(
        cohort.starts_with("site,patient_id,sex,birth_date,onset_date,onset_age_years,diagnosis_code,ck_peak_u_per_l")
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("| n | 10 |"));
}

#[test]
fn cohort_from_the_demo_ndjson_folder_gives_the_same_outputs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let run = |input: &str, out: &Path| {
        let o = imnm(&["cohort", "--input", input, "--out", out.to_str().unwrap()], &root());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("examples/demo-cohort/ndjson", b.path());
    run("examples/demo-cohort/bundle.json", a.path());
    assert_seed_figures(&table1(b.path()));
    for file in [
        "cohort.csv",
        "table1.json",
        "table1.md",
        "candidates.csv",
        "completeness.csv",
    ] {
        let x = std::fs::read_to_string(a.path().join(file)).unwrap();
        let y = std::fs::read_to_string(b.path().join(file)).unwrap();
        assert_eq!(x, y, "{file} differs between Bundle and NDJSON input");
    }
}

#[test]
fn every_cohort_cell_has_provenance() {
    let out = tempfile::tempdir().unwrap();
    let o = imnm(
        &[
            "cohort",
            "--input",
            "examples/demo-cohort/bundle.json",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success());
    let prov = crate::support::read_ndjson(&out.path().join("provenance.ndjson"));
    let sources = crate::support::read_ndjson(&out.path().join("sources.ndjson"));
    let held: std::collections::HashSet<String> = sources
        .iter()
        .map(|s| &s["resource"])
        .map(|s| format!("{}/{}", s["resourceType"].as_str().unwrap(), s["id"].as_str().unwrap()))
        .collect();
    let cohort = std::fs::read_to_string(out.path().join("cohort.csv")).unwrap();
    let mut lines = cohort.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut checked = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(header[..2], ["site", "patient_id"]);
        for (column, cell) in header.iter().zip(&cells).skip(2) {
            if matches!(*cell, "" | "unknown" | "not_tested" | "no") {
                continue;
            }
            let found = prov.iter().any(|p| {
                p["site"] == cells[0] && p["patient_id"] == cells[1] && p["column"] == *column && p["value"] == *cell
            });
            assert!(found, "no provenance for {column}={cell} of {}", cells[1]);
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} cells checked");
    for p in &prov {
        for s in p["sources"].as_array().unwrap() {
            assert!(held.contains(s.as_str().unwrap()), "sources.ndjson lacks {s}");
        }
    }
}

#[test]
fn demo_command_prints_table1() {
    let out = tempfile::tempdir().unwrap();
    let o = imnm(&["demo", "--out", out.path().to_str().unwrap()], &root());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| Peak CK, U/L, median (range) | 3988.5 (2080–13524)"),
        "{stdout}"
    );
    assert_seed_figures(&table1(out.path()));
    // One mock EHR per demo site, each as the vendor whose style the site writes.
    let stderr = String::from_utf8_lossy(&o.stderr);
    for site in [
        "site A: epic mock EHR, search crawl, SMART Backend Services",
        "site B: cerner mock EHR, Bulk Data $export",
        "site C: hapi mock EHR, search crawl",
    ] {
        assert!(stderr.contains(site), "{stderr}");
    }
    assert!(out.path().join("imnm-demo.db").is_file());
    // The three sites number their resources alike (Patient/1 at each) and stay three sets of cases.
    let cohort = std::fs::read_to_string(out.path().join("cohort.csv")).unwrap();
    let keys: Vec<(&str, &str)> = cohort
        .lines()
        .skip(1)
        .map(|l| {
            let mut c = l.split(',');
            (c.next().unwrap(), c.next().unwrap())
        })
        .collect();
    assert_eq!(keys.len(), 10);
    for site in ["a", "b", "c"] {
        assert!(keys.contains(&(site, "1")), "{site} has its Patient/1: {keys:?}");
    }
    // Table 1 pooled and per site, in table1.md and table1.json.
    let md = std::fs::read_to_string(out.path().join("table1.md")).unwrap();
    assert!(
        md.starts_with("| Characteristic | All sites (n=10) | a (n=4) | b (n=3) | c (n=3) |"),
        "{md}"
    );
    let t1 = table1(out.path());
    let n_of = |site: &str| t1.iter().find(|r| r["site"] == site && r["variable"] == "n").unwrap()["n"].clone();
    assert_eq!(
        (n_of("all"), n_of("a"), n_of("b"), n_of("c")),
        (10.into(), 4.into(), 3.into(), 3.into())
    );
    assert_seed_figures(&t1.iter().filter(|r| r["site"] == "all").cloned().collect::<Vec<_>>());
}

#[test]
fn exit_codes_and_fail_on_issues() {
    let out = tempfile::tempdir().unwrap();
    let o = imnm(
        &[
            "cohort",
            "--input",
            "no/such/file.json",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(3));
    let o = imnm(&["cohort", "--out", "x"], &root());
    assert_eq!(o.status.code(), Some(2));
    let bad = out.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\nnot json\n").unwrap();
    let o = imnm(
        &[
            "cohort",
            "--input",
            bad.to_str().unwrap(),
            "--out",
            out.path().join("o").to_str().unwrap(),
        ],
        &root(),
    );
    // Something could not be read: exit 1, the outputs written from the rest.
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("malformed-json") && stderr.contains("1 error-level issue"),
        "{stderr}"
    );
    assert!(out.path().join("o/cohort.csv").exists());
    // A warning alone (a CK result without a value): exit 0, and 1 with --fail-on-issues.
    let warned = out.path().join("warned.ndjson");
    let ck = r#"{"resourceType":"Observation","id":"ck","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-01"}"#;
    std::fs::write(
        &warned,
        format!("{{\"resourceType\":\"Patient\",\"id\":\"p1\"}}\n{ck}\n"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let (input, o) = (warned.to_str().unwrap(), out.path().join("w"));
        let mut args = vec!["cohort", "--input", input, "--out", o.to_str().unwrap()];
        args.extend(extra);
        imnm(&args, &root())
    };
    assert_eq!(run(&[]).status.code(), Some(0));
    let issues = std::fs::read_to_string(out.path().join("w/issues.ndjson")).unwrap();
    assert!(
        issues.contains("\"warning\"") && !issues.contains("\"error\""),
        "{issues}"
    );
    let strict = run(&["--fail-on-issues"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("1 warning(s)"));
}

/// A `sources.ndjson` the disk refuses part-way (several rounds of texts: the
/// writer fails while more are on their way) is an output error naming the
/// file, whether it is written on the reading thread or on one of its own.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_under_sources_ndjson_is_an_output_error_on_one_thread_and_two() {
    use imnm_fhir::bench_data::{self, Spec};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("all.ndjson");
    bench_data::write_one_ndjson(&Spec::registry(6_000, 100), &input, None).unwrap();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}"));
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink("/dev/full", out.join("sources.ndjson")).unwrap();
        let (input, o) = (input.to_str().unwrap(), out.to_str().unwrap());
        let run = imnm(&["cohort", "--threads", threads, "--input", input, "--out", o], &root());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(4), "{threads} thread(s): {stderr}");
        assert!(
            stderr.contains("sources.ndjson") && stderr.contains("No space left on device"),
            "{threads} thread(s): {stderr}"
        );
        assert!(out.join("cohort.csv").exists(), "the outputs before it are written");
    }
}

#[test]
fn mappings_check_reports_every_problem_and_a_local_code_needs_no_recompile() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&root().join("mappings"), dir.path());
    let o = imnm(&["mappings", "check", dir.path().to_str().unwrap()], &root());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A site's own CK code, added by editing a TOML file.
    let labs = dir.path().join("codes/labs.toml");
    let text = std::fs::read_to_string(&labs).unwrap().replace(
        "  { system = \"http://loinc.org\", code = \"2157-6\"",
        "  { system = \"urn:oid:1.2.840.114350.1.13.0.1.7.2.768282\", code = \"9999\", source = \"site\", confidence = \"N\" },\n  { system = \"http://loinc.org\", code = \"2157-6\"",
    );
    std::fs::write(&labs, text).unwrap();
    let input = dir.path().join("in.ndjson");
    let lines = [
        crate::support::patient("p1").to_string(),
        crate::support::imnm_condition("c1", "p1").to_string(),
        crate::support::observation(
            "o1",
            "urn:oid:1.2.840.114350.1.13.0.1.7.2.768282",
            "9999",
            serde_json::json!({"valueQuantity": {"value": 7000, "unit": "U/L"}}),
        )
        .to_string(),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("out");
    let o = imnm(
        &[
            "cohort",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--mappings",
            dir.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(out.join("cohort.csv"))
        .unwrap()
        .contains(",7000,"));
    // Two broken files: both problems in one run, exit 2.
    std::fs::write(
        dir.path().join("rules.toml"),
        std::fs::read_to_string(root().join("mappings/rules.toml"))
            .unwrap()
            .replace("valueset = \"anti-srp\"", "valueset = \"nope\""),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("units.toml"),
        "version = 1\nkind = \"units\"\n[[quantity]]\nid = 3\n",
    )
    .unwrap();
    let o = imnm(&["mappings", "check", dir.path().to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rules.toml:anti-srp: valueset \"nope\" is not a value set"),
        "{err}"
    );
    assert!(err.contains("units.toml: TOML parse error"), "{err}");
}
