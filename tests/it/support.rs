//! Test helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imnm_fhir::cohort::Cohort;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::report::Issue;
use serde_json::{json, Value};

/// The built-in mappings.
pub fn mappings() -> MappingSet {
    MappingSet::builtin().expect("built-in mappings load")
}

/// The built-in data dictionary.
pub fn dictionary() -> imnm_fhir::domain::Dictionary {
    mappings().dictionary
}

/// Cell `column` of `row` as written in cohort.csv (the built-in dictionary).
pub fn cell(row: &imnm_fhir::domain::CaseRow, column: &str) -> String {
    let d = dictionary();
    row.cell(&d, column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .text(&row.patient_id)
}

/// An empty row for `id` (the built-in dictionary).
pub fn empty_row(id: &str) -> imnm_fhir::domain::CaseRow {
    let mut row = imnm_fhir::domain::CaseRow::empty(id, &dictionary());
    row.site = imnm_fhir::collect::LOCAL_SITE.into();
    row
}

/// A female patient `id` born 2010-01-15.
pub fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "birthDate": "2010-01-15"})
}

/// An IMNM Condition (SNOMED 715863001) for `patient`, onset 2015-03-01.
pub fn imnm_condition(id: &str, patient: &str) -> Value {
    json!({
        "resourceType": "Condition", "id": id,
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "715863001"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "onsetDateTime": "2015-03-01"
    })
}

/// A collection Bundle of `resources`, as text.
pub fn bundle(resources: &[Value]) -> String {
    let entries: Vec<Value> = resources.iter().map(|r| json!({"resource": r})).collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

/// Runs the pipeline (without writing files) over `resources`.
pub fn run(resources: &[Value]) -> (Cohort, Vec<Issue>) {
    run_text(&bundle(resources))
}

/// Runs the pipeline over one JSON document.
pub fn run_text(text: &str) -> (Cohort, Vec<Issue>) {
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_json_text("test.json", text, &m);
    let mut issues = collected.issues;
    let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).expect("patients readable");
    (cohort, issues.all().expect("issues readable"))
}

/// Runs the pipeline (without writing files) over input paths.
pub fn run_paths(paths: &[PathBuf]) -> (Cohort, Vec<Issue>) {
    run_paths_with(paths, imnm_fhir::pipeline::ReadOptions::default())
}

/// As [`run_paths`], read with `opts` (threads, block size).
pub fn run_paths_with(paths: &[PathBuf], opts: imnm_fhir::pipeline::ReadOptions) -> (Cohort, Vec<Issue>) {
    let m = mappings();
    let collected = imnm_fhir::pipeline::collect_with(paths, &m, opts, |_| {}).expect("inputs readable");
    let mut issues = collected.issues;
    let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).expect("patients readable");
    (cohort, issues.all().expect("issues readable"))
}

/// Patient p1 with an IMNM diagnosis plus `extra`; returns p1's cohort row cells by column name.
pub fn case_cell(extra: Vec<Value>, column: &str) -> String {
    let mut resources = vec![patient("p1"), imnm_condition("c1", "p1")];
    resources.extend(extra);
    let (cohort, _) = run(&resources);
    assert_eq!(cohort.rows.len(), 1, "p1 should be a case");
    cell(&cohort.rows.all().unwrap()[0], column)
}

/// An Observation for p1 with `code` (system, code) and extra fields merged in.
pub fn observation(id: &str, system: &str, code: &str, extra: Value) -> Value {
    let mut o = json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2015-03-02"
    });
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `imnm` binary.
pub fn imnm(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("imnm runs")
}

/// Reads an NDJSON file into values.
pub fn read_ndjson(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Every file of `dir` (not its folders): (name, bytes), by name.
pub fn dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Copies a folder tree (e.g. `mappings/`, to edit a copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
