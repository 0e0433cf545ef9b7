//! Corpus from elsewhere (issue 24, item 7): data nobody here wrote.
//!
//! * The official HL7 FHIR R4 examples (npm `hl7.fhir.r4.examples` 4.0.1,
//!   5,306 resources and Bundles): `imnm cohort` reads them all without a
//!   panic and without an error-level issue (they are valid FHIR).
//! * Synthea-style children (PyPI `tietai-synthea` 1.5.0, fixed seed): one
//!   US Core transaction Bundle per child, `urn:uuid` references. The demo
//!   generator's 10 IMNM children and 4 distractors are written into 14 of
//!   them the way those Bundles are written (POST entries, `urn:uuid`
//!   fullUrls and references; the child's sex and birth date on Synthea's
//!   Patient); the other children are left alone. The cohort and candidates
//!   equal the demo's own (`imnm cohort` over the demo Bundle), row for row
//!   with Synthea's patient ids; no error-level issue.
//!
//! The fact-or-issue property over the same corpus is a unit test
//! (`mapping::extract::coverage`), as it needs the crate's extractor.
//! Needs `.ci/corpus-install` (target/corpus); skips with a message without
//! it, unless IMNM_CORPUS=1 (CI), which makes a missing corpus a failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::{imnm, read_ndjson, root};

fn corpus(part: &str) -> Option<PathBuf> {
    let p = root().join("target/corpus").join(part);
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var("IMNM_CORPUS").is_err(),
        "IMNM_CORPUS=1 but {} is missing: run .ci/corpus-install",
        p.display()
    );
    eprintln!("SKIPPED corpus test: no {} (run .ci/corpus-install)", p.display());
    None
}

/// Runs `imnm cohort` over `site=input`; its output folder, after checking it
/// neither panicked nor wrote an error-level issue.
fn cohort(input: &Path, out: &Path) -> PathBuf {
    let o = imnm(
        &[
            "cohort",
            "--input",
            &format!("corpus={}", input.display()),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "imnm cohort: {:?} {stderr}", o.status);
    let errors: Vec<Value> = read_ndjson(&out.join("issues.ndjson"))
        .into_iter()
        .filter(|i| i["severity"] == "error" || i["severity"] == "fatal")
        .collect();
    assert!(errors.is_empty(), "error-level issues on valid FHIR: {errors:#?}");
    out.to_path_buf()
}

/// Rows of a CSV file keyed by `patient_id`, every column but `site` and `patient_id`.
fn rows(csv: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let cells = header
                .iter()
                .zip(rec.iter())
                .filter(|(h, _)| !matches!(h.as_str(), "site" | "patient_id"))
                .map(|(h, v)| (h.clone(), v.to_string()))
                .collect();
            (rec[1].to_string(), cells)
        })
        .collect()
}

#[test]
fn corpus_hl7_r4_examples_read_without_a_panic_or_an_error_level_issue() {
    let Some(dir) = corpus("r4-examples/package") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = cohort(&dir, tmp.path());
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .count();
    assert!(files > 5000, "the whole package ({files} files)");
    let issues = read_ndjson(&out.join("issues.ndjson"));
    eprintln!(
        "HL7 R4 examples: {files} files, {} issues (none error-level)",
        issues.len()
    );
}

/// The demo's resources by the patient they belong to (a Patient by its id,
/// others by `subject`/`patient`), plus the Medications they name.
fn demo_by_patient() -> (BTreeMap<String, Vec<Value>>, HashMap<String, Value>) {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut medications = HashMap::new();
    for r in imnm_fhir::demo::generate::demo_resources() {
        let id = r["id"].as_str().unwrap().to_string();
        let owner = match r["resourceType"].as_str().unwrap() {
            "Patient" => Some(id.clone()),
            "Medication" => {
                medications.insert(format!("Medication/{id}"), r);
                continue;
            }
            _ => ["subject", "patient"]
                .iter()
                .find_map(|f| r[*f]["reference"].as_str())
                .and_then(|s| s.strip_prefix("Patient/"))
                .map(str::to_string),
        };
        by.entry(owner.expect("every demo resource has a patient"))
            .or_default()
            .push(r);
    }
    (by, medications)
}

/// Writes one demo patient's resources into a Synthea transaction Bundle as
/// Synthea writes its own: POST entries, `urn:uuid` fullUrls and references.
fn write_into(bundle: &mut Value, demo: &[Value], medications: &HashMap<String, Value>, next: &mut u64) {
    let entries = bundle["entry"].as_array_mut().unwrap();
    let synthea_patient = entries
        .iter_mut()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    let demo_patient = demo.iter().find(|r| r["resourceType"] == "Patient").unwrap();
    let mut map = HashMap::new();
    map.insert(
        format!("Patient/{}", demo_patient["id"].as_str().unwrap()),
        synthea_patient["fullUrl"].as_str().unwrap().to_string(),
    );
    for f in ["gender", "birthDate"] {
        synthea_patient["resource"][f] = demo_patient[f].clone();
    }
    let mut added: Vec<Value> = demo
        .iter()
        .filter(|r| r["resourceType"] != "Patient")
        .cloned()
        .collect();
    let named: Vec<String> = medications
        .keys()
        .filter(|k| added.iter().any(|r| r.to_string().contains(&format!("\"{k}\""))))
        .cloned()
        .collect();
    added.extend(named.iter().map(|k| medications[k].clone()));
    for r in &added {
        *next += 1;
        let key = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
        map.insert(key, format!("urn:uuid:00002416-0000-4000-8000-{:012x}", *next));
    }
    for mut r in added {
        imnm_fhir::demo::rewrite_references(&mut r, &map);
        let key = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
        let ty = r["resourceType"].clone();
        entries.push(json!({"fullUrl": map[&key], "resource": r, "request": {"method": "POST", "url": ty}}));
    }
}

#[test]
fn corpus_synthea_children_with_imnm_data_give_the_demo_cohort_and_candidates() {
    let Some(dir) = corpus("synthea/fhir") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (demo, medications) = demo_by_patient();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() > demo.len(), "more Synthea children than demo patients");
    let input = tmp.path().join("bundles");
    std::fs::create_dir(&input).unwrap();
    let mut next = 0;
    let mut synthea_id = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let mut bundle: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        assert_eq!(bundle["type"], "transaction");
        if let Some((demo_id, resources)) = demo.iter().nth(i) {
            write_into(&mut bundle, resources, &medications, &mut next);
            let p = bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["resource"]["resourceType"] == "Patient");
            synthea_id.insert(
                demo_id.clone(),
                p.unwrap()["resource"]["id"].as_str().unwrap().to_string(),
            );
        }
        std::fs::write(input.join(f.file_name().unwrap()), bundle.to_string()).unwrap();
    }
    let want = cohort(
        &root().join("examples/demo-cohort/bundle.json"),
        &tmp.path().join("demo"),
    );
    let got = cohort(&input, &tmp.path().join("synthea"));
    for table in ["cohort.csv", "candidates.csv"] {
        let expected: BTreeMap<String, Vec<(String, String)>> = rows(&want.join(table))
            .into_iter()
            .map(|(id, cells)| (synthea_id[&id].clone(), cells))
            .collect();
        assert!(!expected.is_empty(), "{table}: the demo has rows");
        assert_eq!(
            rows(&got.join(table)),
            expected,
            "{table}: the demo's rows, Synthea's ids"
        );
    }
}
