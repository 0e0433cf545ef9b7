//! Bad input never panics and never vanishes silently.

use imnm_fhir::report::{Issue, IssueCode};
use proptest::prelude::*;
use serde_json::json;

use crate::support::{imnm_condition, mappings, observation, patient, run};

fn find(issues: &[Issue], code: IssueCode) -> Vec<&Issue> {
    issues.iter().filter(|i| i.code == code).collect()
}

fn run_ndjson(lines: &[String]) -> (imnm_fhir::cohort::Cohort, Vec<Issue>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Mixed.ndjson");
    std::fs::write(&path, lines.join("\n")).unwrap();
    crate::support::run_paths(&[path])
}

#[test]
fn malformed_json_line_is_reported_by_file_and_line_and_the_rest_maps() {
    let lines = vec![
        patient("p1").to_string(),
        "{\"resourceType\": \"Observation\", \"id\": ".to_string(),
        imnm_condition("c1", "p1").to_string(),
    ];
    let (cohort, issues) = run_ndjson(&lines);
    let bad = find(&issues, IssueCode::MalformedJson);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].location.input.ends_with("Mixed.ndjson:2"), "{}", bad[0].location);
    assert_eq!(cohort.rows.len(), 1);
}

#[test]
fn unknown_antibody_code_is_reported_with_resource_and_path() {
    let weird = observation(
        "a1",
        "http://loinc.org",
        "33921-8",
        json!({"valueCodeableConcept": {"coding": [{"system": "http://example.org", "code": "XYZ"}]}}),
    );
    let (cohort, issues) = run(&[patient("p1"), imnm_condition("c1", "p1"), weird]);
    let unknown = find(&issues, IssueCode::UnknownCode);
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].location, "Observation/a1");
    assert_eq!(unknown[0].fhir_path.as_deref(), Some("Observation.value[x]"));
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "anti_srp"),
        "not_tested"
    );
}

#[test]
fn unconvertible_unit_is_reported_and_other_results_count() {
    let bad = observation(
        "o1",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 12, "unit": "mg/dL"}}),
    );
    let good = observation(
        "o2",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 2080, "unit": "U/L"}}),
    );
    let (cohort, issues) = run(&[patient("p1"), imnm_condition("c1", "p1"), bad, good]);
    let unit = find(&issues, IssueCode::UnitNotConvertible);
    assert_eq!(unit.len(), 1);
    assert_eq!(unit[0].location, "Observation/o1");
    assert_eq!(unit[0].fhir_path.as_deref(), Some("Observation.valueQuantity.unit"));
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_peak_u_per_l"),
        "2080"
    );
}

#[test]
fn missing_birth_date_is_reported_and_the_case_stays() {
    let p = json!({"resourceType": "Patient", "id": "p1", "gender": "male"});
    let (cohort, issues) = run(&[p, imnm_condition("c1", "p1")]);
    let missing = find(&issues, IssueCode::MissingValue);
    assert!(missing
        .iter()
        .any(|i| i.location == "Patient/p1" && i.fhir_path.as_deref() == Some("Patient.birthDate")));
    assert_eq!(cohort.rows.len(), 1);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "onset_age_years"),
        ""
    );
    assert_eq!(crate::support::cell(&cohort.rows.all().unwrap()[0], "sex"), "male");
}

#[test]
fn medication_request_to_a_missing_medication_is_a_dangling_reference() {
    let mr = json!({"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/nowhere"}});
    let ok = json!({"resourceType": "MedicationRequest", "id": "mr2", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6851"}]}});
    let (cohort, issues) = run(&[patient("p1"), imnm_condition("c1", "p1"), mr, ok]);
    let dangling = find(&issues, IssueCode::DanglingReference);
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0].location, "MedicationRequest/mr1");
    assert_eq!(
        dangling[0].fhir_path.as_deref(),
        Some("MedicationRequest.medicationReference")
    );
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "methotrexate"),
        "yes"
    );
}

#[test]
fn bad_dates_and_unknown_elements_are_reported() {
    let mut p = patient("p1");
    p["birthDate"] = json!("2012-13-45");
    p["fooBar"] = json!(1);
    let (cohort, issues) = run(&[p, imnm_condition("c1", "p1")]);
    assert_eq!(
        find(&issues, IssueCode::BadDate)[0].fhir_path.as_deref(),
        Some("Patient.birthDate")
    );
    assert!(find(&issues, IssueCode::ParsedLeniently)[0].message.contains("fooBar"));
    assert_eq!(cohort.rows.len(), 1);
}

#[test]
fn messages_carry_no_patient_values() {
    let mut p = patient("p1");
    p["name"] = json!([{"family": "Zzyzx-Secret"}]);
    p["unknownThing"] = json!("Zzyzx-Secret");
    p["birthDate"] = json!(12);
    let (_, issues) = run(&[p, imnm_condition("c1", "p1")]);
    assert!(!issues.is_empty());
    for i in issues.iter() {
        assert!(!i.message.contains("Zzyzx"), "{}", i.message);
    }
}

fn mutate(value: &mut serde_json::Value, seed: u64, replacement: serde_json::Value) {
    if seed < 7 {
        *value = replacement;
        return;
    }
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = keys[(seed % keys.len() as u64) as usize].clone();
            if let Some(child) = map.get_mut(&k) {
                mutate(child, seed / 7, replacement);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            let i = (seed % items.len() as u64) as usize;
            mutate(&mut items[i], seed / 7, replacement);
        }
        other => *other = replacement,
    }
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9 |:/.#-]{0,12}".prop_map(serde_json::Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"coding": [{"system": 1, "code": null}]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let m = mappings();
        let mut c = imnm_fhir::pipeline::Collector::new(&m);
        imnm_fhir::fhir::source::read_ndjson("x.ndjson".into(), &bytes[..], &mut |i| c.accept(i)).unwrap();
        imnm_fhir::fhir::source::read_json("x.json".into(), &bytes[..], &mut |i| c.accept(i));
        let collected = c.finish();
        let mut issues = collected.issues;
        imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).expect("in memory");
    }

    #[test]
    fn mutated_resources_never_panic(which in 0usize..6, seed in any::<u64>(), replacement in any_json()) {
        let mut resources = vec![
            patient("p1"),
            imnm_condition("c1", "p1"),
            observation("o1", "http://loinc.org", "2157-6", json!({"valueQuantity": {"value": 52, "unit": "ukat/L", "system": "http://unitsofmeasure.org", "code": "ukat/L"}})),
            observation("a1", "http://loinc.org", "93493-5", json!({"valueQuantity": {"value": 45, "unit": "Units"}, "interpretation": [{"coding": [{"code": "POS"}]}]})),
            json!({"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/m1"}}),
            json!({"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6851"}]}}),
        ];
        mutate(&mut resources[which], seed, replacement);
        let _ = run(&resources);
    }
}

/// Past the issues held in memory, the rest go to a temporary file and come
/// back: `issues.ndjson` holds every one, in input order, and the exit code
/// and summary count them all.
#[test]
fn every_issue_is_written_past_the_in_memory_limit() {
    let n = imnm_fhir::report::IN_MEMORY + 25;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Observation.ndjson");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("{{\"resourceType\":\"Observation\",\"id\":\"o{i}\",\n"));
    }
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let args = [
        "cohort",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--fail-on-issues",
    ];
    let run = crate::support::imnm(&args, dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let issues = crate::support::read_ndjson(&out.join("issues.ndjson"));
    assert_eq!(issues.len(), n);
    for (i, issue) in issues.iter().enumerate() {
        assert_eq!(issue["code"], "malformed-json");
        let location = issue["location"].as_str().unwrap();
        assert!(location.ends_with(&format!(":{}", i + 1)), "issue {i} at {location}");
    }
    let summary = String::from_utf8_lossy(&run.stderr);
    assert!(summary.contains(&format!("issues: {n} ")), "{summary}");
}

/// A batch or transaction Bundle's request-only entries (a DELETE, a GET) are
/// valid FHIR: information, not errors; an entry with nothing is still an error.
#[test]
fn request_entries_without_a_resource_are_information() {
    let text = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/old"}},
            {"fullUrl": "urn:uuid:1", "resource": crate::support::patient("p1"), "request": {"method": "POST", "url": "Patient"}},
            {"response": {"status": "204 No Content"}},
            {"fullUrl": "urn:uuid:2"}
        ]
    })
    .to_string();
    let (_, issues) = crate::support::run_text(&text);
    let of = |code: &str| {
        issues
            .iter()
            .filter(|i| serde_json::to_value(i.code).unwrap() == code)
            .collect::<Vec<_>>()
    };
    let info = of("entry-without-resource");
    assert_eq!(info.len(), 2, "{issues:?}");
    assert!(info
        .iter()
        .all(|i| i.severity == imnm_fhir::report::Severity::Information));
    assert_eq!(info[0].location.to_string(), "test.json#entry[0]");
    let errors = of("malformed-json");
    assert_eq!(errors.len(), 1, "the entry with nothing: {issues:?}");
    assert_eq!(errors[0].location.to_string(), "test.json#entry[3]");
}
