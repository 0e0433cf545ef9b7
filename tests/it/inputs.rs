//! Input layouts: Bulk Data folders, gzip, SMART Fetch-style numbered folders with
//! top-level symlinks, `error/` and `deleted/` files.

use std::io::Write;

use imnm_fhir::report::IssueCode;
use serde_json::json;

use crate::support::{imnm_condition, observation, patient};

fn write_lines(path: &std::path::Path, lines: &[serde_json::Value]) {
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

fn gz(path: &std::path::Path, lines: &[serde_json::Value]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    for l in lines {
        writeln!(enc, "{l}").unwrap();
    }
    enc.finish().unwrap();
}

#[test]
fn numbered_folders_symlinks_error_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("001.2025-06-26");
    std::fs::create_dir_all(work.join("error")).unwrap();
    std::fs::create_dir_all(work.join("deleted")).unwrap();
    write_lines(&work.join("Patient.ndjson"), &[patient("p1"), patient("p2")]);
    gz(
        &work.join("Condition.000.ndjson.gz"),
        &[imnm_condition("c1", "p1"), imnm_condition("c2", "p2")],
    );
    let ck = observation(
        "o1",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 2080, "unit": "U/L"}}),
    );
    let gone = observation(
        "o2",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 99999, "unit": "U/L"}}),
    );
    write_lines(&work.join("Observation.ndjson"), &[ck, gone]);
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": "Patient p9 failed"}]});
    write_lines(&work.join("error/OperationOutcome.ndjson"), &[outcome]);
    let deleted = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Observation/o2"}},
        {"request": {"method": "DELETE", "url": "Condition/c2"}}]});
    write_lines(&work.join("deleted/deleted.ndjson"), &[deleted]);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(work.join("Patient.ndjson"), dir.path().join("Patient.ndjson")).unwrap();
        std::os::unix::fs::symlink(work.join("Observation.ndjson"), dir.path().join("Observation.ndjson")).unwrap();
    }
    let (cohort, issues) = crate::support::run_paths(&[dir.path().to_path_buf()]);
    // p2's only diagnosis was deleted; o2 too.
    assert_eq!(cohort.rows.len(), 1);
    assert_eq!(crate::support::cell(&cohort.rows[0], "ck_peak_u_per_l"), "2080");
    assert_eq!(crate::support::cell(&cohort.rows[0], "ck_count"), "1");
    assert_eq!(issues.iter().filter(|i| i.code == IssueCode::Deleted).count(), 2);
    let errors: Vec<_> = issues.iter().filter(|i| i.code == IssueCode::ExportError).collect();
    assert_eq!(errors.len(), 1);
    assert!(
        !errors[0].message.contains("p9"),
        "diagnostics must not leak: {}",
        errors[0].message
    );
    // Symlinked files are read once: no duplicate issues.
    assert_eq!(issues.iter().filter(|i| i.code == IssueCode::Duplicate).count(), 0);
}
