//! `imnm sql` on real engines: DuckDB and Spark (local[2], one session for
//! every query) over the facts of three demo sites (one cut into a shard per
//! resource file) and of a bench input cut into 32 overlapping shards (a
//! resource in two shards counts once); the
//! engine's cohort and candidates equal `imnm cohort`'s cohort.csv and
//! candidates.csv cell for cell and its Table 1 equals table1.json figure for figure.
//!
//! Normalisation, one rule: a number the engine returns is printed with the
//! cohort's own `format_number` (at most 3 decimals, no trailing zeros), the
//! way cohort.csv and table1.md print it; text is compared as is.
//! Needs `.ci/engines-install` (target/engines/venv); skips with a message
//! without it, unless IMNM_ENGINES=1 (CI), which makes a missing venv a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imnm_fhir::domain::case::format_number;
use serde_json::Value;

use crate::support::{imnm, root};

fn python() -> Option<PathBuf> {
    let p = root().join("target/engines/venv/bin/python");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("IMNM_ENGINES").is_err(),
        "IMNM_ENGINES=1 but {} is missing: run .ci/engines-install",
        p.display()
    );
    eprintln!("SKIPPED engines tests: no {} (run .ci/engines-install)", p.display());
    None
}

fn run(args: &[&str]) {
    let o = imnm(args, &root());
    assert!(
        o.status.success(),
        "imnm {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A cell as the test compares it.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) => n.as_f64().map(format_number).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of a JSON-lines file keyed by `key` fields, every field normalised.
fn keyed(lines: &str, key: &[&str]) -> BTreeMap<Vec<String>, BTreeMap<String, String>> {
    lines
        .lines()
        .map(|l| {
            let row: BTreeMap<String, Value> = serde_json::from_str(l).unwrap();
            let k = key.iter().map(|f| cell(&row[*f])).collect();
            (k, row.iter().map(|(f, v)| (f.clone(), cell(v))).collect())
        })
        .collect()
}

/// Compares a CSV of `imnm cohort` (keyed by site and patient_id) with the
/// engine's JSON lines, cell for cell; the number of rows.
fn compare_rows(csv_path: &Path, json_path: &Path, what: &str) -> usize {
    let mut csv = csv::Reader::from_path(csv_path).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_string).collect();
    let engine = keyed(&std::fs::read_to_string(json_path).unwrap(), &["site", "patient_id"]);
    let mut rows = 0;
    for r in csv.records() {
        let r = r.unwrap();
        let key = vec![r[0].to_string(), r[1].to_string()];
        let Some(e) = engine.get(&key) else {
            panic!("{what}: {key:?} missing from the engine's {}", json_path.display())
        };
        for (name, value) in header.iter().zip(r.iter()) {
            assert_eq!(e[name], value, "{what}: {key:?} column {name}");
        }
        rows += 1;
    }
    assert_eq!(engine.len(), rows, "{what}: as many rows as {}", csv_path.display());
    rows
}

/// Compares the engine's outputs in `got` with `imnm cohort`'s in `want`.
fn compare(want: &Path, got: &Path, what: &str) {
    let rows = compare_rows(
        &want.join("cohort.csv"),
        &got.join("cohort.json"),
        &format!("{what} cohort"),
    );
    assert!(rows > 0, "{what}: cases");
    let candidates = compare_rows(
        &want.join("candidates.csv"),
        &got.join("candidates.json"),
        &format!("{what} candidates"),
    );
    assert!(candidates > 0, "{what}: candidates");
    let table: Vec<BTreeMap<String, Value>> =
        serde_json::from_str(&std::fs::read_to_string(want.join("table1.json")).unwrap()).unwrap();
    let engine = keyed(
        &std::fs::read_to_string(got.join("table1.json")).unwrap(),
        &["site", "variable", "level"],
    );
    for r in &table {
        let key: Vec<String> = ["site", "variable", "level"].iter().map(|f| cell(&r[*f])).collect();
        let Some(e) = engine.get(&key) else {
            panic!("{what}: Table 1 row {key:?} missing")
        };
        for f in ["n", "percent", "median", "q1", "q3", "min", "max", "missing"] {
            assert_eq!(e[f], cell(&r[f]), "{what}: Table 1 {key:?} {f}");
        }
    }
    assert_eq!(engine.len(), table.len(), "{what}: as many Table 1 rows");
    compare_suppressed(&table, got, what);
}

/// The engine's suppressed Table 1 equals `cohort::suppress` (min cell 5) of `imnm cohort`'s Table 1.
fn compare_suppressed(table: &[BTreeMap<String, Value>], got: &Path, what: &str) {
    let num = |r: &BTreeMap<String, Value>, f: &str| r[f].as_f64();
    let int = |r: &BTreeMap<String, Value>, f: &str| r[f].as_u64();
    let rows: Vec<imnm_fhir::cohort::table1::Table1Row> = table
        .iter()
        .map(|r| imnm_fhir::cohort::table1::Table1Row {
            site: r["site"].as_str().unwrap().to_string(),
            variable: r["variable"].as_str().unwrap().to_string(),
            level: r["level"].as_str().map(str::to_string),
            n: int(r, "n"),
            percent: num(r, "percent"),
            median: num(r, "median"),
            q1: num(r, "q1"),
            q3: num(r, "q3"),
            min: num(r, "min"),
            max: num(r, "max"),
            missing: int(r, "missing"),
        })
        .collect();
    let want = imnm_fhir::cohort::suppress::suppress(&rows, 5);
    let engine = keyed(
        &std::fs::read_to_string(got.join("table1_suppressed.json")).unwrap(),
        &["site", "variable", "level"],
    );
    assert_eq!(engine.len(), want.len(), "{what}: as many suppressed rows");
    let mut hidden = 0;
    for w in &want {
        let w: BTreeMap<String, Value> = serde_json::from_value(serde_json::to_value(w).unwrap()).unwrap();
        let key: Vec<String> = ["site", "variable", "level"].iter().map(|f| cell(&w[*f])).collect();
        let e = &engine[&key];
        for f in [
            "n",
            "percent",
            "median",
            "q1",
            "q3",
            "min",
            "max",
            "missing",
            "suppressed",
            "missing_suppressed",
        ] {
            assert_eq!(e[f], cell(&w[f]), "{what}: suppressed Table 1 {key:?} {f}");
        }
        hidden += usize::from(w["suppressed"] == Value::Bool(true));
    }
    if what.ends_with("demo") {
        assert!(
            hidden > 0,
            "{what}: some cells are suppressed (10 cases a site), so the rule is exercised"
        );
    }
}

/// Site D: cases whose findings are read from codes, reports and notes that
/// disagree, so the order of evidence decides (README "Findings from text"):
/// a coded "no" over a note's "yes", an EMG report's "normal" over a note's
/// "myopathic", an MRI report's edema over an MRI note's fatty infiltration; and
/// a note alone, which counts.
fn evidence_site(dir: &Path) -> PathBuf {
    use crate::text_findings::{note, report, Form};
    let sct = "http://snomed.info/sct";
    let mut all = Vec::new();
    for p in ["d1", "d2", "d3", "d4"] {
        all.push(crate::support::patient(p));
        all.push(crate::support::imnm_condition(&format!("{p}-c"), p));
    }
    all.push(crate::support::observation(
        "d1-o",
        "https://imnm-fhir.org/fhir/CodeSystem/imnm-case",
        "rash",
        serde_json::json!({"valueBoolean": false, "subject": {"reference": "Patient/d1"}}),
    ));
    all.extend(note("d1-n", "d1", "Heliotrope rash.", Form::Plain));
    all.extend(report(
        "d2-r",
        "d2",
        (sct, "42803009"),
        "Normal EMG study.",
        Form::Conclusion,
    ));
    all.extend(note("d2-n", "d2", "EMG showed a myopathic pattern.", Form::Plain));
    all.extend(note("d3-n", "d3", "EMG showed a myopathic pattern.", Form::Plain));
    let mri = ("http://loinc.org", "18748-4");
    all.extend(report(
        "d4-r",
        "d4",
        mri,
        "Muscle edema of both thighs.",
        Form::Conclusion,
    ));
    let mut mri_note = note("d4-n", "d4", "Fatty infiltration of the thighs.", Form::Plain);
    mri_note[0]["type"] = serde_json::json!({"coding": [{"system": mri.0, "code": mri.1}]});
    all.extend(mri_note);
    let path = dir.join("site-d.ndjson");
    let lines: Vec<String> = all.iter().map(serde_json::Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The demo as three sites (a Bundle, an NDJSON folder, and the same folder
/// one shard per file) and site D of [`evidence_site`].
fn demo(dir: &Path) -> (PathBuf, PathBuf) {
    let d = root().join("examples/demo-cohort");
    let facts = dir.join("demo-facts");
    let (a, b) = (
        format!("site-a={}", d.join("bundle.json").display()),
        format!("site-b={}", d.join("ndjson").display()),
    );
    let site_d = format!("site-d={}", evidence_site(dir).display());
    run(&[
        "facts",
        "--input",
        &a,
        "--input",
        &b,
        "--input",
        &site_d,
        "--out",
        facts.to_str().unwrap(),
    ]);
    for e in std::fs::read_dir(d.join("ndjson")).unwrap() {
        let c = format!("site-c={}", e.unwrap().path().display());
        run(&["facts", "--input", &c, "--out", facts.to_str().unwrap()]);
    }
    let cohort = dir.join("demo-cohort");
    let c = format!("site-c={}", d.join("ndjson").display());
    run(&[
        "cohort",
        "--input",
        &a,
        "--input",
        &b,
        "--input",
        &c,
        "--input",
        &site_d,
        "--out",
        cohort.to_str().unwrap(),
    ]);
    let cases = std::fs::read_to_string(cohort.join("cohort.csv")).unwrap();
    for (case, column, value) in [
        ("d1", "rash", "no"),
        ("d2", "emg_myopathic", "no"),
        ("d3", "emg_myopathic", "yes"),
        ("d4", "mri_thigh", "edema"),
    ] {
        let mut csv = csv::Reader::from_reader(cases.as_bytes());
        let header = csv.headers().unwrap().clone();
        let at = header.iter().position(|h| h == column).unwrap();
        let row = csv.records().map(Result::unwrap).find(|r| &r[1] == case).unwrap();
        assert_eq!(&row[at], value, "imnm cohort: {case} {column} by the order of evidence");
    }
    (facts, cohort)
}

/// A generated export cut into 32 shards of consecutive lines (Medications in
/// the first only) that overlap: each shard also holds the first eighth of
/// the next one's lines, so those resources are in two shards (as a re-sent
/// export page or two overlapping `_since` runs give) and must count once.
fn bench(dir: &Path) -> (PathBuf, PathBuf) {
    let whole = dir.join("bench.ndjson");
    let spec = imnm_fhir::bench_data::Spec::new(20_000);
    imnm_fhir::bench_data::write_one_ndjson(&spec, &whole, None).unwrap();
    let text = std::fs::read_to_string(&whole).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let per = lines.len().div_ceil(32);
    let facts = dir.join("bench-facts");
    for i in 0..32 {
        let chunk = &lines[(i * per).min(lines.len())..((i + 1) * per + per / 8).min(lines.len())];
        let shard = dir.join(format!("shard-{i:02}.ndjson"));
        std::fs::write(&shard, chunk.join("\n") + "\n").unwrap();
        let input = format!("bench={}", shard.display());
        run(&[
            "facts",
            "--input",
            &input,
            "--out",
            facts.to_str().unwrap(),
            "--shard",
            &format!("{i:02}"),
        ]);
    }
    let n = std::fs::read_dir(&facts)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet"))
        .count();
    assert_eq!(n, 32);
    let cohort = dir.join("bench-cohort");
    run(&[
        "cohort",
        "--input",
        &format!("bench={}", whole.display()),
        "--out",
        cohort.to_str().unwrap(),
    ]);
    (facts, cohort)
}

/// Three sites whose patients share NHS numbers (`link` rows under a link
/// key): a pair (la/pa, lb/pb), a chain over three sites (qa–qb by one number,
/// qb–qc by another), a group with two patients of site la (ra, ra2, rb: not
/// linked), a group without a case (ta, tc: not linked, tc a candidate) and
/// cases of their own. `imnm cohort --link-identifier` gives the cohort.
fn linked(dir: &Path) -> (PathBuf, PathBuf) {
    use crate::support::{imnm_condition, patient};
    const NHS: &str = "https://nhs.example/nhs-number";
    let referred = |id: &str, numbers: &[&str]| {
        let mut p = patient(id);
        let ids: Vec<Value> = numbers
            .iter()
            .map(|n| serde_json::json!({"system": NHS, "value": n}))
            .collect();
        p["identifier"] = Value::Array(ids);
        p
    };
    let ck = |id: &str, p: &str, value: f64| {
        crate::support::observation(
            id,
            "http://loinc.org",
            "2157-6",
            serde_json::json!({"subject": {"reference": format!("Patient/{p}")},
                "valueQuantity": {"value": value, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}),
        )
    };
    let mut parent = imnm_condition("tc-c", "tc");
    parent["code"] = serde_json::json!({"coding": [{"system": "http://snomed.info/sct", "code": "26889001"}]});
    let sites: [(&str, Vec<Value>); 3] = [
        (
            "la",
            vec![
                referred("pa", &["1"]),
                imnm_condition("pa-c", "pa"),
                ck("pa-o", "pa", 300.0),
                referred("qa", &["2"]),
                imnm_condition("qa-c", "qa"),
                referred("ra", &["3"]),
                imnm_condition("ra-c", "ra"),
                referred("ra2", &["3"]),
                referred("ta", &["5"]),
            ],
        ),
        (
            "lb",
            vec![
                referred("pb", &["1"]),
                ck("pb-o", "pb", 5000.0),
                referred("qb", &["2", "4"]),
                referred("rb", &["3"]),
                imnm_condition("rb-c", "rb"),
                patient("sb"),
                imnm_condition("sb-c", "sb"),
            ],
        ),
        (
            "lc",
            vec![
                referred("qc", &["4"]),
                ck("qc-o", "qc", 1200.0),
                referred("tc", &["5"]),
                parent,
            ],
        ),
    ];
    let key = dir.join("link.key");
    run(&["keygen", "--out", key.to_str().unwrap()]);
    let mut inputs = Vec::new();
    for (site, resources) in &sites {
        let path = dir.join(format!("{site}.ndjson"));
        let lines: Vec<String> = resources.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        inputs.push(format!("{site}={}", path.display()));
    }
    let facts = dir.join("linked-facts");
    let cohort = dir.join("linked-cohort");
    let mut args = vec![
        "facts",
        "--out",
        facts.to_str().unwrap(),
        "--link-key",
        key.to_str().unwrap(),
    ];
    let mut cohort_args = vec!["cohort", "--out", cohort.to_str().unwrap()];
    for a in [&mut args, &mut cohort_args] {
        a.extend(["--link-identifier", NHS]);
        for i in &inputs {
            a.extend(["--input", i.as_str()]);
        }
    }
    run(&args);
    run(&cohort_args);
    let mut csv = csv::Reader::from_path(cohort.join("cohort.csv")).unwrap();
    let keys: Vec<(String, String)> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect();
    for key in [
        ("la+lb", "pa+pb"),
        ("la+lb+lc", "qa+qb+qc"),
        ("la", "ra"),
        ("lb", "rb"),
        ("lb", "sb"),
    ] {
        assert!(
            keys.contains(&(key.0.into(), key.1.into())),
            "imnm cohort: {key:?} in {keys:?}"
        );
    }
    (facts, cohort)
}

/// Runs the SQL of `dialect` on the engine over each set, then compares
/// with `imnm cohort`'s outputs; the linked set's facts with
/// `--link-rounds 1` (its three-site chain needs two) must fail, saying so.
fn engine(python: &Path, dialect: &str, sets: &[(&str, PathBuf, PathBuf)], dir: &Path, chain: &Path) {
    let sql = dir.join(format!("{dialect}.sql"));
    let o = imnm(&["sql", "--dialect", dialect], &root());
    assert!(o.status.success());
    std::fs::write(&sql, o.stdout).unwrap();
    let short = dir.join(format!("{dialect}-1.sql"));
    let o = imnm(&["sql", "--dialect", dialect, "--link-rounds", "1"], &root());
    assert!(o.status.success());
    std::fs::write(&short, o.stdout).unwrap();
    let mut jobs: Vec<String> = sets
        .iter()
        .map(|(name, facts, _)| {
            format!(
                "{},{},{}",
                facts.display(),
                sql.display(),
                dir.join(format!("{dialect}-{name}")).display()
            )
        })
        .collect();
    jobs.push(format!(
        "{},{},{}",
        chain.display(),
        short.display(),
        dir.join(format!("{dialect}-short")).display()
    ));
    let o = std::process::Command::new(python)
        .arg(root().join("scripts/engines_run.py"))
        .arg(dialect)
        .args(&jobs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("did not settle into groups in 1 rounds"),
        "{dialect}: the last job fails on the link check: {err}"
    );
    for (name, _, cohort) in sets {
        compare(
            cohort,
            &dir.join(format!("{dialect}-{name}")),
            &format!("{dialect} {name}"),
        );
    }
}

#[test]
fn duckdb_and_spark_give_imnm_cohorts_cohort_and_table1_on_the_demo_sites_and_32_bench_shards() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (demo_facts, demo_cohort) = demo(tmp.path());
    let (bench_facts, bench_cohort) = bench(tmp.path());
    let (linked_facts, linked_cohort) = linked(tmp.path());
    let sets = [
        ("demo", demo_facts, demo_cohort),
        ("bench", bench_facts, bench_cohort),
        ("linked", linked_facts.clone(), linked_cohort),
    ];
    engine(&python, "duckdb", &sets, tmp.path(), &linked_facts);
    engine(&python, "spark", &sets, tmp.path(), &linked_facts);
}
