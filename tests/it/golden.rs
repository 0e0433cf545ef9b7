//! Golden outputs: the demo's files and those of a generated hospital export,
//! compared byte for byte with `tests/fixtures/expected/`.
//!
//! After a change that is meant to alter an output, regenerate and review the diff:
//!
//! ```sh
//! IMNM_UPDATE_EXPECTED=1 cargo test --test it golden
//! git diff tests/fixtures/expected/
//! ```

use std::path::{Path, PathBuf};

use crate::support::{imnm, root};

/// The outputs compared (issues.ndjson of the demo is compared too: it is empty or stable).
const FILES: &[&str] = &[
    "cohort.csv",
    "candidates.csv",
    "table1.json",
    "table1.md",
    "completeness.csv",
    "provenance.ndjson",
    "issues.ndjson",
];

fn expected_dir(name: &str) -> PathBuf {
    root().join("tests/fixtures/expected").join(name)
}

/// Compares (or, with `IMNM_UPDATE_EXPECTED=1`, rewrites) every golden file of `name`.
fn check(name: &str, out: &Path) {
    let dir = expected_dir(name);
    let update = std::env::var_os("IMNM_UPDATE_EXPECTED").is_some_and(|v| v == "1");
    let mut differ = Vec::new();
    for file in FILES {
        let got = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file} not written: {e}"));
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{} missing ({e}); see golden.rs", path.display()));
        if got != want {
            differ.push(format!(
                "{file}: expected {} bytes, got {} bytes; first differing line: {}",
                want.len(),
                got.len(),
                first_difference(&want, &got)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{name}: outputs differ from tests/fixtures/expected/{name} \
         (IMNM_UPDATE_EXPECTED=1 cargo test --test it golden to accept):\n{}",
        differ.join("\n")
    );
}

fn first_difference(want: &[u8], got: &[u8]) -> String {
    let (w, g) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
    for (i, (a, b)) in w.lines().zip(g.lines()).enumerate() {
        if a != b {
            return format!("{}\n  want: {a}\n  got:  {b}", i + 1);
        }
    }
    format!(
        "{} (one is a prefix of the other)",
        w.lines().count().min(g.lines().count()) + 1
    )
}

#[test]
fn demo_outputs_match_the_golden_files() {
    let out = tempfile::tempdir().unwrap();
    let o = imnm(&["demo", "--out", out.path().to_str().unwrap()], &root());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check("demo", out.path());
}

#[test]
fn generated_export_outputs_match_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("all.ndjson");
    let spec = imnm_fhir::bench_data::Spec {
        faults: true,
        ..imnm_fhir::bench_data::Spec::new(100_000)
    };
    imnm_fhir::bench_data::write_one_ndjson(&spec, &input, None).unwrap();
    // Relative paths: issues name the input file as given.
    let o = imnm(&["cohort", "--input", "all.ndjson", "--out", "out"], tmp.path());
    // The generator's faults are error-level issues: exit 1, every output written.
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    check("generated-100k", &tmp.path().join("out"));
}

#[test]
fn to_fhir_bundle_of_the_demo_cases_matches_the_golden_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = expected_dir("demo").join("cohort.csv");
    let out = tmp.path().join("to-fhir.json");
    let o = imnm(
        &[
            "to-fhir",
            "--cases",
            cases.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read(&out).unwrap();
    let path = expected_dir("to-fhir").join("demo-bundle.json");
    if std::env::var_os("IMNM_UPDATE_EXPECTED").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap();
    assert!(
        got == want,
        "to-fhir output differs from {}: first differing line {}",
        path.display(),
        first_difference(&want, &got)
    );
}
