//! Study bundles, second round (issue 6's gaps): `--store` input, `urn:uuid:`
//! references resolved, verify's date check, `merge --mappings`, the onset age
//! read back by `imnm cohort`.

use std::path::{Path, PathBuf};

use imnm_fhir::deid::SiteKey;
use imnm_fhir::export::{self, ExportOptions};
use imnm_fhir::pipeline::Input;
use serde_json::Value;

use crate::export::demo;
use crate::support::{imnm, mappings};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh key file made by `imnm keygen` (mode 0600).
fn keyfile(dir: &Path) -> PathBuf {
    let k = dir.join("site.key");
    let o = imnm(&["keygen", "--out", s(&k)], dir);
    assert_eq!(o.status.code(), Some(0));
    k
}

fn export_with(input: Input, out: &Path, key: &SiteKey) -> export::ExportSummary {
    let opts = ExportOptions {
        input,
        out: out.to_path_buf(),
        profile: Default::default(),
        min_cell: 5,
        site: "A".into(),
        threads: None,
    };
    export::export(&opts, key, &mappings()).expect("export runs")
}

fn bundle_resources(dir: &Path) -> Vec<Value> {
    let b: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("bundle.json")).unwrap()).unwrap();
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

#[test]
fn export_from_a_sync_store_equals_export_from_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keyfile(tmp.path());
    let key = SiteKey::load(&k).unwrap();
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(demo()).unwrap()).unwrap();
    let resources: Vec<Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    let db = tmp.path().join("s.db");
    let mut store = imnm_fhir::store::Store::open(&db).unwrap();
    store.write_page("ehr-test", &resources).unwrap();
    drop(store);

    let from_files = tmp.path().join("files");
    export_with(Input::Files(vec![demo()]), &from_files, &key);
    let from_store = tmp.path().join("store");
    let o = imnm(
        &[
            "export",
            "--store",
            s(&db),
            "--out",
            s(&from_store),
            "--site-key",
            s(&k),
            "--site",
            "A",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["bundle.json", "cohort.csv", "table1.json", "ndjson/Patient.ndjson"] {
        let (a, b) = (
            std::fs::read(from_files.join(f)).unwrap(),
            std::fs::read(from_store.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between file and store input");
    }
    assert_eq!(crate::export::exported_rows(&from_store).len(), 10);

    let missing = imnm(
        &["export", "--store", "nope.db", "--out", "x", "--site-key", s(&k)],
        tmp.path(),
    );
    assert_eq!(missing.status.code(), Some(3), "a missing store is an input error");
    assert!(!tmp.path().join("nope.db").exists(), "a missing store is never created");
}

/// Every reference in the exported resources names a resource of the bundle.
fn assert_references_resolve(resources: &[Value]) -> usize {
    let ids: std::collections::BTreeSet<String> = resources
        .iter()
        .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    let mut n = 0;
    for r in resources {
        let focus = r["focus"].as_array().into_iter().flatten();
        for (k, target) in [
            ("subject", &r["subject"]),
            ("medicationReference", &r["medicationReference"]),
        ]
        .into_iter()
        .chain(focus.map(|f| ("focus", f)))
        {
            if let Some(t) = target["reference"].as_str() {
                assert!(ids.contains(t), "{k} of {} names {t}, not in the bundle", r["id"]);
                n += 1;
            }
        }
    }
    n
}

#[test]
fn urn_uuid_references_of_a_transaction_bundle_are_resolved_and_dangling_ones_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mappings();
    let rows = crate::export::source_rows();
    let mut tx = imnm_fhir::to_fhir::build_bundle(&rows, &m, imnm_fhir::to_fhir::DEFAULT_SITE_SYSTEM).unwrap();
    assert_eq!(tx["type"], "transaction");
    // One CK Observation also points at a resource outside the cohort (a Practitioner) and one nowhere.
    let entries = tx["entry"].as_array_mut().unwrap();
    let ck = entries
        .iter_mut()
        .find(|e| e["resource"]["resourceType"] == "Observation" && e["resource"]["valueQuantity"].is_object())
        .unwrap();
    ck["resource"]["focus"] = serde_json::json!([{"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"},
        {"reference": "urn:uuid:99999999-2222-4333-8444-555555555555"}]);
    entries.push(
        serde_json::json!({"fullUrl": "urn:uuid:11111111-2222-4333-8444-555555555555",
        "resource": {"resourceType": "Practitioner", "id": "pr1"}}),
    );
    assert!(entries
        .iter()
        .all(|e| e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:")));
    let input = tmp.path().join("tx.json");
    std::fs::write(&input, tx.to_string()).unwrap();

    let out = tmp.path().join("bundle");
    let summary = export_with(Input::Files(vec![input.clone()]), &out, &crate::export::key(8));
    let fired = &summary.manifest.rules_fired;
    assert!(fired.get("reference-resolved").copied().unwrap_or(0) > 30, "{fired:?}");
    assert_eq!(fired.get("removed:unresolvable-reference"), Some(&2), "{fired:?}");
    assert_eq!(
        fired.get("removed:date-without-patient"),
        None,
        "every dated resource found its patient"
    );
    let resources = bundle_resources(&out);
    assert!(assert_references_resolve(&resources) > 30);
    let focus: usize = resources
        .iter()
        .filter_map(|r| r["focus"].as_array())
        .map(Vec::len)
        .sum();
    let source_focus = tx["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["focus"].as_array());
    assert_eq!(
        focus + 2,
        source_focus.map(Vec::len).sum::<usize>(),
        "only the two dangling ones left"
    );
    assert!(focus > 5, "to-fhir's focus links (Observation → Condition) are kept");
    // The links carry the cohort: the same Table 1 as the transaction Bundle itself.
    let direct = imnm_fhir::pipeline::collect(&[input], &m, |_| {}).unwrap();
    let mut issues = direct.issues;
    let src_rows = imnm_fhir::cohort::build::build(&direct.patients, &m, &mut issues)
        .unwrap()
        .rows
        .all()
        .unwrap();
    let exported = crate::export::exported_rows(&out);
    assert_eq!(exported.len(), 10);
    use imnm_fhir::cohort::table1::table1;
    assert_eq!(table1(&exported, &m.dictionary), table1(&src_rows, &m.dictionary));
    assert!(exported
        .iter()
        .all(|r| crate::export::date_of(r, "onset_date").is_some()
            || !crate::support::cell(r, "onset_age_years").is_empty()));
}

#[test]
fn merge_reads_the_mappings_the_bundles_were_made_with() {
    let tmp = tempfile::tempdir().unwrap();
    // A site's own mapping folder: the built-in one with systems.toml at a new version.
    let dir = tmp.path().join("site-mappings");
    let src = crate::support::root().join("mappings");
    for f in walk_files(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let target = dir.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let text = if rel == Path::new("systems.toml") {
            text.replacen("\nversion = 2\n", "\nversion = 3\n", 1)
        } else {
            text
        };
        std::fs::write(target, text).unwrap();
    }
    let local = imnm_fhir::mapping::MappingSet::load_dir(&dir).expect("the copied mappings load");
    assert_eq!(local.versions["systems.toml"], 3);
    let mut bundles = Vec::new();
    for (site, byte) in [("A", 11u8), ("B", 12)] {
        let out = tmp.path().join(site);
        let opts = ExportOptions {
            input: Input::Files(vec![demo()]),
            out: out.clone(),
            profile: Default::default(),
            min_cell: 5,
            site: site.into(),
            threads: None,
        };
        export::export(&opts, &crate::export::key(byte), &local).unwrap();
        bundles.push(out);
    }
    let (a, b) = (s(&bundles[0]), s(&bundles[1]));
    let o = imnm(&["merge", a, b, "--out", "p1"], tmp.path());
    assert_eq!(o.status.code(), Some(5), "built-in mappings: other versions, refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mappings"));
    let o = imnm(&["merge", a, b, "--out", "p2", "--mappings", s(&dir)], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("p2/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["mapping_versions"]["systems.toml"], 3);
    assert_eq!(m["cases"], 20);
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("rules.toml"), "version = \"x\"\n").unwrap();
    let o = imnm(&["merge", a, b, "--out", "p3", "--mappings", s(&broken)], tmp.path());
    assert_eq!(o.status.code(), Some(2), "a broken mapping folder is a usage error");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn kinds(dir: &Path, source: bool) -> Vec<String> {
    let terms = export::scan::SourceTerms::from_inputs(&[demo()]).unwrap();
    let report = export::verify(dir, source.then_some(&terms)).unwrap();
    report.findings.iter().map(ToString::to_string).collect()
}

fn edit_bundle(dir: &Path, edit: impl FnOnce(&mut Vec<Value>)) {
    let path = dir.join("bundle.json");
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut rs: Vec<Value> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    edit(&mut rs);
    b["entry"] = rs.into_iter().map(|r| serde_json::json!({"resource": r})).collect();
    std::fs::write(&path, serde_json::to_string_pretty(&b).unwrap()).unwrap();
}

fn first_of<'v>(rs: &'v mut [Value], t: &str, with: &str) -> &'v mut Value {
    rs.iter_mut()
        .find(|r| r["resourceType"] == t && !r[with].is_null())
        .unwrap()
}

#[test]
fn verify_finds_dates_the_shift_rules_cannot_have_written() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = crate::export::export_demo(tmp.path(), 21, "A");
    assert_eq!(
        kinds(&clean, true),
        Vec::<String>::new(),
        "a fresh export passes the date check"
    );
    let has = |k: &[String], what: &str| k.iter().any(|f| f.starts_with("bundle.json:") && f.contains(what));

    let far = tmp.path().join("far");
    crate::export::copy_dir(&clean, &far);
    edit_bundle(&far, |rs| {
        first_of(rs, "Observation", "effectiveDateTime")["effectiveDateTime"] = "1950-01-01".into()
    });
    assert!(has(
        &kinds(&far, true),
        "effectiveDateTime: full date outside the shifted range"
    ));
    assert!(
        !has(&kinds(&far, false), "shifted range"),
        "without the source the range is unknown"
    );

    let stray = tmp.path().join("stray");
    crate::export::copy_dir(&clean, &stray);
    edit_bundle(&stray, |rs| {
        first_of(rs, "Observation", "status")["status"] = "final 2016-11-10".into()
    });
    assert!(has(
        &kinds(&stray, false),
        "status: full date outside the date-shifted elements"
    ));

    let timed = tmp.path().join("timed");
    crate::export::copy_dir(&clean, &timed);
    edit_bundle(&timed, |rs| {
        let o = first_of(rs, "Observation", "effectiveDateTime");
        let d = o["effectiveDateTime"].as_str().unwrap().to_string();
        o["effectiveDateTime"] = format!("{d}T10:30:00Z").into();
        let p = first_of(rs, "Patient", "birthDate");
        p["birthDate"] = format!("{}-06-15", p["birthDate"].as_str().unwrap()).into();
    });
    let k = kinds(&timed, true);
    assert!(has(&k, "effectiveDateTime: date with a time of day"), "{k:?}");
    assert!(has(&k, "birthDate: more than a year under safe-harbor"), "{k:?}");

    let csv = tmp.path().join("csv");
    crate::export::copy_dir(&clean, &csv);
    let text = std::fs::read_to_string(csv.join("cohort.csv")).unwrap();
    let date = export::datecheck::dates_in(&text)[0].to_string();
    std::fs::write(csv.join("cohort.csv"), text.replacen(&date, "2001-01-01", 1)).unwrap();
    let k = kinds(&csv, false);
    assert!(
        k.iter()
            .any(|f| f.contains("cohort.csv:") && f.contains("full date that no resource")),
        "{k:?}"
    );
}

#[test]
fn cohort_on_an_exported_bundle_gives_the_onset_ages_of_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::export::export_demo(tmp.path(), 31, "A");
    let conditions: Vec<Value> = bundle_resources(&dir)
        .into_iter()
        .filter(|r| r["resourceType"] == "Condition")
        .collect();
    let with_age = conditions
        .iter()
        .filter(|c| c["extension"][0]["url"] == imnm_fhir::deid::transform::ONSET_AGE_URL)
        .count();
    let mut expected: Vec<String> = crate::export::source_rows()
        .iter()
        .map(|r| crate::support::cell(r, "onset_age_years"))
        .collect();
    expected.sort();
    assert!(with_age >= expected.iter().filter(|a| !a.is_empty()).count());
    assert!(with_age >= 8, "{with_age}");
    let patients = bundle_resources(&dir)
        .into_iter()
        .filter(|r| r["resourceType"] == "Patient");
    assert!(patients
        .into_iter()
        .all(|p| p["birthDate"].as_str().is_none_or(|b| b.len() == 4)));
    for (input, out) in [(dir.join("bundle.json"), "c-bundle"), (dir.join("ndjson"), "c-ndjson")] {
        let o = imnm(&["cohort", "--input", s(&input), "--out", out], tmp.path());
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let mut r = csv::Reader::from_path(tmp.path().join(out).join("cohort.csv")).unwrap();
        let col = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "onset_age_years")
            .unwrap();
        let mut got: Vec<String> = r.records().map(|rec| rec.unwrap()[col].to_string()).collect();
        got.sort();
        assert_eq!(got, expected, "{out}");
    }
}

/// Verify's findings are issues of the one finding model (issue 22): each has a code, the
/// check as its rule, and the file (and line) as its location; they make an OperationOutcome.
#[test]
fn verify_findings_carry_a_code_and_the_check() {
    use imnm_fhir::report::{IssueCode, Severity};
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::export::export_demo(tmp.path(), 22, "A");
    let table = dir.join("table1.md");
    let mut text = std::fs::read_to_string(&table).unwrap();
    text.push_str("write to jo@example.org\n");
    std::fs::write(&table, text).unwrap();
    std::fs::write(dir.join("extra.txt"), "x").unwrap();
    let report = export::verify(&dir, None).unwrap();
    let got: Vec<(IssueCode, &str, String)> = report
        .findings
        .iter()
        .map(|f| (f.code, f.rule.as_deref().unwrap(), f.location.to_string()))
        .collect();
    let lines = std::fs::read_to_string(&table).unwrap().lines().count();
    for want in [
        (IssueCode::HashMismatch, "manifest", "table1.md".to_string()),
        (IssueCode::UnlistedFile, "manifest", "extra.txt".to_string()),
        (IssueCode::EmailAddress, "scan", format!("table1.md:{lines}")),
    ] {
        assert!(
            got.contains(&(want.0, want.1, want.2.clone())),
            "{want:?} not in {got:?}"
        );
    }
    assert!(report.findings.iter().all(|f| f.severity == Severity::Error));
    let oo = imnm_fhir::fhir::outcome::operation_outcome(&report.findings, "verified");
    assert_eq!(oo["issue"].as_array().unwrap().len(), report.findings.len());
    assert!(oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["details"]["coding"][0]["code"] == "email-address" && i["code"] == "security"));
}
