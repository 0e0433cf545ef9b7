//! Study bundles (issue 6): `imnm keygen`, `imnm export`, `--verify`, `imnm merge`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imnm_fhir::cohort::suppress::suppress;
use imnm_fhir::cohort::table1::{table1, Table1Row};
use imnm_fhir::deid::SiteKey;
use imnm_fhir::domain::{CaseRow, FhirDate};
use imnm_fhir::export::{self, scan::SourceTerms, ExportOptions};
use serde_json::Value;

use crate::support::{cell, dictionary, imnm, mappings, root};

pub(crate) fn demo() -> PathBuf {
    root().join("examples/demo-cohort/bundle.json")
}

pub(crate) fn key(byte: u8) -> SiteKey {
    SiteKey::from_bytes(&[byte; 32])
}

pub(crate) fn export_demo(dir: &Path, key_byte: u8, site: &str) -> PathBuf {
    let out = dir.join(format!("bundle-{site}-{key_byte}"));
    let opts = ExportOptions {
        input: imnm_fhir::pipeline::Input::Files(vec![demo()]),
        out: out.clone(),
        profile: Default::default(),
        min_cell: 5,
        site: site.into(),
        threads: None,
    };
    export::export(&opts, &key(key_byte), &mappings()).expect("export runs");
    out
}

fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    export::manifest::list_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

pub(crate) fn source_rows() -> Vec<CaseRow> {
    let text = std::fs::read_to_string(demo()).unwrap();
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_json_text("demo", &text, &m);
    let mut issues = collected.issues;
    imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues)
        .unwrap()
        .rows
        .all()
        .unwrap()
}

pub(crate) fn exported_rows(dir: &Path) -> Vec<CaseRow> {
    let streamed = export::rerun_file(&dir.join("bundle.json"), &mappings()).unwrap();
    let whole = export::rerun(&std::fs::read_to_string(dir.join("bundle.json")).unwrap(), &mappings()).unwrap();
    assert_eq!(streamed, whole, "bundle.json streamed or whole: the same rows");
    streamed
}

/// `cohort.csv` (the rows recounted as `bundle.json` was written) holds the
/// rows read back from the finished `bundle.json`.
fn assert_cohort_csv_is_read_back(dir: &Path, site: &str) {
    let mut rows = export::rerun_file(&dir.join("bundle.json"), &mappings()).unwrap();
    for r in &mut rows {
        r.site = site.into();
    }
    let read_back: Vec<Vec<String>> = rows.iter().map(CaseRow::cells).collect();
    let mut csv = csv::Reader::from_path(dir.join("cohort.csv")).unwrap();
    let written: Vec<Vec<String>> = csv
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert!(!written.is_empty());
    assert_eq!(written, read_back, "cohort.csv is the cohort of bundle.json");
}

#[test]
fn demo_export_leaks_no_source_identifier_and_is_deterministic_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let a = export_demo(tmp.path(), 1, "A");
    assert_cohort_csv_is_read_back(&a, "A");
    let a_again = export_demo(tmp.path(), 1, "A2");
    let b = export_demo(tmp.path(), 2, "B");
    let terms = SourceTerms::from_inputs(&[demo()]).unwrap();
    assert!(
        terms.len() > 40,
        "source identifiers, names, ids and birth dates collected"
    );
    let mut scanned = 0;
    for (name, bytes) in all_files(&a) {
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("DEMO-"), "{name} holds an MRN");
        assert!(!text.to_lowercase().contains("synthetic"), "{name} holds a name");
        let found = export::scan::scan_text(&text, Some(&terms));
        assert!(found.is_empty(), "{name}: {found:?}");
        scanned += text.len();
    }
    assert!(scanned > 10_000);
    // Patient ids differ from the source's.
    let src = source_rows();
    let out = exported_rows(&a);
    assert_eq!(out.len(), 10);
    for r in &out {
        assert!(src.iter().all(|s| s.patient_id != r.patient_id));
    }
    // Same key: byte-identical except the site name (manifest, cohort.csv's site column).
    let (fa, fa2) = (all_files(&a), all_files(&a_again));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fa2.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        if name == "cohort.csv" {
            let text = String::from_utf8(bytes.clone()).unwrap().replace("\nA,", "\nA2,");
            assert_eq!(text.as_bytes(), &fa2[name][..], "{name} differs beyond the site");
        } else if name != "manifest.json" {
            assert_eq!(bytes, &fa2[name], "{name} differs between runs with one key");
        }
    }
    let ma = String::from_utf8(fa["manifest.json"].clone()).unwrap();
    let ma2 = String::from_utf8(fa2["manifest.json"].clone()).unwrap();
    // Their cohort.csv files differ in the site column, so their hashes do.
    let no_csv_hash = |m: &str| {
        m.lines()
            .filter(|l| !l.contains("\"cohort.csv\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        no_csv_hash(&ma.replace("\"site\": \"A\"", "\"site\": \"A2\"")),
        no_csv_hash(&ma2)
    );
    // A different key: different pseudonyms and offsets.
    let out_b = exported_rows(&b);
    for r in &out_b {
        assert!(out.iter().all(|o| o.patient_id != r.patient_id));
    }
    let onsets = |rows: &[CaseRow]| {
        let mut v: Vec<_> = rows.iter().filter_map(|r| date_of(r, "onset_date")).collect();
        v.sort();
        v
    };
    assert_ne!(onsets(&out), onsets(&out_b));
    assert_ne!(onsets(&out), onsets(&src));
}

/// Date cell `column` of `r` (the built-in dictionary).
pub(crate) fn date_of(r: &CaseRow, column: &str) -> Option<FhirDate> {
    match r.cell(&dictionary(), column) {
        Some(imnm_fhir::domain::Cell::Date(d)) => *d,
        _ => None,
    }
}

fn days(a: Option<FhirDate>, b: Option<FhirDate>) -> Option<i64> {
    Some(a?.day_number()? - b?.day_number()?)
}

#[test]
fn intervals_onset_age_and_table1_survive_deidentification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = export_demo(tmp.path(), 7, "A");
    let src = source_rows();
    let out = exported_rows(&dir);
    // Match rows by a fingerprint independent of ids and dates.
    let sig = |r: &CaseRow| (cell(r, "ck_peak_u_per_l"), cell(r, "sex"), cell(r, "outcome"));
    for s in &src {
        let o = out.iter().find(|o| sig(o) == sig(s)).expect("same case after export");
        assert_eq!(
            days(date_of(o, "ck_peak_date"), date_of(o, "onset_date")),
            days(date_of(s, "ck_peak_date"), date_of(s, "onset_date"))
        );
        assert_eq!(cell(o, "onset_age_years"), cell(s, "onset_age_years"));
        if date_of(s, "onset_date").is_some() {
            assert_ne!(date_of(o, "onset_date"), date_of(s, "onset_date"), "dates are shifted");
        }
        let cells = |r: &CaseRow| r.cells()[6..].iter().map(String::clone).collect::<Vec<_>>();
        let (mut co, mut cs) = (cells(o), cells(s));
        co.remove(2); // ck_peak_date is shifted
        cs.remove(2);
        assert_eq!(co, cs);
    }
    assert!(src
        .iter()
        .any(|s| days(date_of(s, "ck_peak_date"), date_of(s, "onset_date")).is_some()));
    assert_eq!(table1(&out, &dictionary()), table1(&src, &dictionary()));
    // The written table equals the source's except suppressed cells.
    let written: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(dir.join("table1.json")).unwrap()).unwrap();
    for (w, s) in written.iter().zip(table1(&src, &dictionary())) {
        if w["suppressed"] == false {
            assert_eq!(w["n"].as_u64(), s.n, "{w}");
            assert_eq!(w["median"].as_f64(), s.median, "{w}");
        } else {
            assert!(w["n"].is_null());
        }
    }
}

fn count(variable: &str, level: &str, n: u64, total: u64) -> Table1Row {
    Table1Row::count(variable, level, n, total, None)
}

#[test]
fn small_cells_are_hidden_with_enough_others_that_totals_do_not_recover_them() {
    let total = 40;
    let mut rows = vec![Table1Row {
        level: None,
        percent: None,
        ..count("n", "", total, total)
    }];
    // One small cell (3) among big ones: the next-smallest (12) goes too.
    rows.extend([
        count("sex", "male", 3, total),
        count("sex", "female", 25, total),
        count("sex", "other", 12, total),
    ]);
    // Two small cells (1, 4): hidden, the rest shown (their sum 5 has several splits).
    rows.extend([
        count("outcome", "a", 1, total),
        count("outcome", "b", 4, total),
        count("outcome", "c", 35, total),
    ]);
    // A small missing count on a finding.
    let mut yes = count("rash", "yes", 30, total);
    let mut no = count("rash", "no", 8, total);
    yes.missing = Some(2);
    no.missing = Some(2);
    rows.extend([yes, no]);
    let t = suppress(&rows, 5);
    let shown = |v: &str| -> (u64, usize) {
        let cells: Vec<_> = t.iter().filter(|r| r.row.variable == v).collect();
        let sum = cells.iter().filter_map(|r| r.row.n).sum::<u64>() + cells[0].row.missing.unwrap_or(0);
        let hidden = cells.iter().filter(|r| r.suppressed).count() + usize::from(cells[0].missing_suppressed);
        (sum, hidden)
    };
    for v in ["sex", "outcome", "rash"] {
        let (sum, hidden) = shown(v);
        assert!(hidden >= 2, "{v}: a lone hidden cell is recoverable from the total");
        assert!(sum < total, "{v}");
    }
    let n_of = |v: &str, l: &str| {
        t.iter()
            .find(|r| r.row.variable == v && r.row.level.as_deref() == Some(l))
            .unwrap()
    };
    assert!(n_of("sex", "male").suppressed && n_of("sex", "other").suppressed);
    assert_eq!(n_of("sex", "female").row.n, Some(25));
    assert_eq!(n_of("outcome", "c").row.n, Some(35));
    assert!(
        n_of("rash", "no").suppressed,
        "the smallest level hides with the missing count"
    );
    assert!(t
        .iter()
        .all(|r| !r.suppressed || (r.row.n.is_none() && r.row.percent.is_none())));
}

#[test]
fn verify_passes_clean_bundles_and_fails_on_one_altered_byte_or_an_injected_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = export_demo(tmp.path(), 3, "A");
    let o = imnm(
        &[
            "export",
            "--verify",
            dir.to_str().unwrap(),
            "--source",
            demo().to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));

    let altered = tmp.path().join("altered");
    copy_dir(&dir, &altered);
    let path = altered.join("cohort.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let o = imnm(&["export", "--verify", altered.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cohort.csv: SHA-256 differs"));

    let injected = tmp.path().join("injected");
    copy_dir(&dir, &injected);
    let path = injected.join("ndjson/Patient.ndjson");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "\"gender\"",
        "\"name\":[{\"family\":\"Demo-B5\"}],\"gender\"",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let o = imnm(
        &[
            "export",
            "--verify",
            injected.to_str().unwrap(),
            "--source",
            demo().to_str().unwrap(),
        ],
        tmp.path(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stdout.contains("ndjson/Patient.ndjson:1: name from the source"),
        "{stdout}"
    );
    assert!(!stdout.contains("Demo-B5"), "the report never prints what it found");

    // bundle.json cut in the middle of an entry (read as a stream, entry by entry).
    let cut = tmp.path().join("cut");
    copy_dir(&dir, &cut);
    let path = cut.join("bundle.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let o = imnm(&["export", "--verify", cut.to_str().unwrap()], tmp.path());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "{stdout}");
    assert!(stdout.contains("bundle.json: SHA-256 differs"), "{stdout}");
    assert!(stdout.contains("bundle.json: not a readable JSON Bundle"), "{stdout}");
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for f in export::manifest::list_files(from).unwrap() {
        let target = to.join(&f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), target).unwrap();
    }
}

fn n(t: &[Value], variable: &str, level: Option<&str>) -> Option<u64> {
    t.iter()
        .find(|r| r["variable"] == variable && r["level"].as_str() == level)
        .and_then(|r| r["n"].as_u64())
}

#[test]
fn merging_two_sites_doubles_every_count_and_a_tampered_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = export_demo(tmp.path(), 4, "A");
    let b = export_demo(tmp.path(), 5, "B");
    let pooled = tmp.path().join("pooled");
    let o = imnm(
        &[
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            pooled.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let merged: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(pooled.join("table1.json")).unwrap()).unwrap();
    let single = table1(&source_rows(), &dictionary());
    let mut checked = 0;
    for s in &single {
        let got = n(&merged, &s.variable, s.level.as_deref());
        match (s.n, got) {
            (Some(k), _) if (1..5).contains(&(k * 2)) => assert_eq!(got, None, "small cells stay hidden"),
            (Some(k), Some(g)) => {
                assert_eq!(g, k * 2, "{} {:?}", s.variable, s.level);
                checked += 1;
            }
            // A secondary suppression (always a zero or the next-smallest cell).
            (Some(_), None) | (None, _) => {}
        }
    }
    assert!(checked > 25, "{checked}");
    let csv = std::fs::read_to_string(pooled.join("cohort.csv")).unwrap();
    assert!(csv.starts_with("site,patient_id,"));
    assert_eq!(csv.lines().filter(|l| l.starts_with("A,")).count(), 10);
    assert_eq!(csv.lines().filter(|l| l.starts_with("B,")).count(), 10);

    let path = b.join("bundle.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"male\"", "\"female\"", 1);
    std::fs::write(&path, text).unwrap();
    let o = imnm(
        &[
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            tmp.path().join("p2").to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not verify"));
}

#[test]
fn keygen_writes_a_private_key_never_overwrites_and_export_refuses_a_readable_key() {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("site.key");
    let o = imnm(&["keygen", "--out", k.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&k).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains(text.trim()),
        "the key is never printed"
    );
    let o = imnm(&["keygen", "--out", k.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(std::fs::read_to_string(&k).unwrap(), text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = tmp.path().join("b");
        let args = [
            "export",
            "--input",
            demo().to_str().unwrap().to_owned().leak(),
            "--out",
            out.to_str().unwrap().to_owned().leak(),
            "--site-key",
            k.to_str().unwrap().to_owned().leak(),
        ];
        let o = imnm(&args, tmp.path());
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("readable by group or others"));
        assert!(!out.join("bundle.json").exists());
    }
}

/// A generated hospital export (bench generator, 100k resources): its study
/// bundle verifies clean — the figures the tool writes itself (Table 1,
/// cohort values) are not taken for identifiers.
#[test]
fn a_generated_export_verifies_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = imnm_fhir::bench_data::Spec::new(100_000);
    imnm_fhir::bench_data::write_bulk_dir(&spec, &tmp.path().join("in"), false).unwrap();
    let key = imnm(&["keygen", "--out", "k.key"], tmp.path());
    assert!(key.status.success());
    let o = imnm(
        &[
            "export",
            "--input",
            "in",
            "--out",
            "bundle",
            "--site-key",
            "k.key",
            "--site",
            "a",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let cases = std::fs::read_to_string(tmp.path().join("bundle/cohort.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!(cases >= 10, "{cases} cases");
    let v = imnm(&["export", "--verify", "bundle"], tmp.path());
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    // Against its source too: thousands of patients' identifiers, names and addresses
    // looked for at once, and no shifted date taken for a source birth date.
    let v = imnm(&["export", "--verify", "bundle", "--source", "in"], tmp.path());
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    assert_cohort_csv_is_read_back(&tmp.path().join("bundle"), "a");
    // Any number of threads writes the same bundle, byte for byte.
    for threads in ["1", "3"] {
        let out = format!("bundle-{threads}");
        let args = [
            "export",
            "--input",
            "in",
            "--out",
            &out,
            "--site-key",
            "k.key",
            "--site",
            "a",
        ];
        let o = imnm(&[&args[..], &["--threads", threads]].concat(), tmp.path());
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            all_files(&tmp.path().join(&out)),
            all_files(&tmp.path().join("bundle")),
            "{threads} thread(s)"
        );
    }
}

/// An input with a line that cannot be read: the bundle is written from the
/// rest, `imnm export` exits 1 and counts the issue, `--issues FILE` writes
/// it out, and nothing of it enters the (shared) bundle.
#[test]
fn export_of_an_input_with_an_unreadable_line_exits_1_and_keeps_its_issues_out_of_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let ndjson = root().join("examples/demo-cohort/ndjson");
    let input = tmp.path().join("in");
    copy_dir(&ndjson, &input);
    let obs = input.join("Observation.ndjson");
    let text = std::fs::read_to_string(&obs).unwrap();
    std::fs::write(&obs, format!("{text}{{\"resourceType\": \"Observation\", \"id\": \n")).unwrap();
    let key = tmp.path().join("site.key");
    assert!(imnm(&["keygen", "--out", key.to_str().unwrap()], tmp.path())
        .status
        .success());
    let export = |out: &str, extra: &[&str]| {
        let mut args = vec!["export", "--input", input.to_str().unwrap(), "--out", out, "--site-key"];
        args.push(key.to_str().unwrap());
        args.extend(extra);
        imnm(&args, tmp.path())
    };
    let o = export("b1", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("malformed-json") && stderr.contains("--issues FILE"),
        "{stderr}"
    );
    let o = export("b2", &["--issues", "issues.ndjson"]);
    assert_eq!(o.status.code(), Some(1));
    let issues = std::fs::read_to_string(tmp.path().join("issues.ndjson")).unwrap();
    assert!(
        issues.contains("malformed-json") && issues.contains("Observation.ndjson:"),
        "{issues}"
    );
    for b in ["b1", "b2"] {
        let files = all_files(&tmp.path().join(b));
        assert!(files.keys().all(|f| !f.contains("issues")), "{files:?}");
        assert!(files
            .values()
            .all(|bytes| !String::from_utf8_lossy(bytes).contains("malformed")));
    }
    assert_eq!(
        all_files(&tmp.path().join("b1"))["cohort.csv"],
        all_files(&tmp.path().join("b2"))["cohort.csv"]
    );
    let verify = imnm(&["export", "--verify", "b2"], tmp.path());
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A CK result given twice (an older copy in the export, a newer one in a file
/// read after it): the study bundle holds the newer copy only, once.
#[test]
fn export_takes_the_newest_copy_of_a_repeated_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&root().join("examples/demo-cohort/ndjson"), &input);
    let obs = input.join("Observation.ndjson");
    let text = std::fs::read_to_string(&obs).unwrap();
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at = lines.iter().position(|o| o.to_string().contains("2157-6")).unwrap();
    lines[at]["meta"] = serde_json::json!({"lastUpdated": "2020-01-01T00:00:00Z"});
    let mut newer = lines[at].clone();
    newer["meta"] = serde_json::json!({"lastUpdated": "2024-06-01T00:00:00Z"});
    newer["valueQuantity"]["value"] = serde_json::json!(98765);
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&obs, text.join("\n") + "\n").unwrap();
    // Read after Observation.ndjson (file names in order): the first copy is the older.
    std::fs::write(input.join("Observation.z-later.ndjson"), format!("{newer}\n")).unwrap();
    let key = tmp.path().join("site.key");
    assert!(imnm(&["keygen", "--out", key.to_str().unwrap()], tmp.path())
        .status
        .success());
    let args = ["export", "--input", input.to_str().unwrap(), "--out", "b", "--site-key"];
    let o = imnm(&[&args[..], &[key.to_str().unwrap()]].concat(), tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let exported = std::fs::read_to_string(tmp.path().join("b/ndjson/Observation.ndjson")).unwrap();
    assert_eq!(exported.matches("98765").count(), 1, "the newer copy, once");
    let ck = |text: &str| text.lines().filter(|l| l.contains("2157-6")).count();
    assert!(ck(&exported) <= ck(&text.join("\n")), "no CK result twice");
}
