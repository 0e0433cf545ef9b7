//! Case report → FHIR: the profiles are up to date, `to-fhir` round-trips the demo cohort and
//! generated rows cell for cell, every emitted Bundle validates, deliberately broken resources
//! each give exactly the expected finding, and bad CSV is reported by row and column.

use imnm_fhir::domain::{AntibodyStatus, CaseRow, Cell, FhirDate, MriThigh, Outcome, Sex, YesNoUnknown};
use imnm_fhir::profile::{self, files, generate, BaseTable, ProfileSet};
use imnm_fhir::report::IssueCode;
use imnm_fhir::to_fhir::{build_bundle, read_cases, DEFAULT_SITE_SYSTEM};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{dictionary, empty_row, imnm, mappings, root, run_text};

fn profiles() -> ProfileSet {
    ProfileSet::builtin().expect("built-in profiles load")
}

fn csv_text(rows: &[CaseRow]) -> String {
    let mut out = CaseRow::header(&dictionary()).join(",") + "\n";
    for r in rows {
        out.push_str(&r.cells().join(","));
        out.push('\n');
    }
    out
}

/// CSV → Bundle (asserting it validates) → cohort rows.
fn round_trip(rows: &[CaseRow]) -> Vec<CaseRow> {
    let (read, issues) = read_cases(csv_text(rows).as_bytes(), &dictionary());
    assert!(issues.is_empty(), "CSV issues: {issues:?}");
    let cases: Vec<CaseRow> = read.into_iter().map(|(_, r)| r).collect();
    let bundle = build_bundle(&cases, &mappings(), DEFAULT_SITE_SYSTEM).expect("rows become FHIR");
    let report = files::validate_bundle(&profiles(), &bundle, "bundle.json");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let (cohort, _) = run_text(&bundle.to_string());
    cohort.rows.all().unwrap()
}

#[test]
fn committed_profiles_are_what_the_generator_writes() {
    let sds: Vec<(&str, &str)> = profile::BUILTIN
        .iter()
        .filter(|(n, _)| n.starts_with("StructureDefinition-"))
        .copied()
        .collect();
    let base = BaseTable::builtin().unwrap();
    let generated = generate::generate(&sds, profile::VALUESETS_TOML, imnm_fhir::mapping::BUILTIN, &base).unwrap();
    assert_eq!(
        generated.len(),
        profile::BUILTIN.len() + 1,
        "the conformance files and CODES.md"
    );
    for (name, text) in generated {
        let committed = std::fs::read_to_string(root().join("profiles").join(&name)).unwrap_or_default();
        assert!(
            text == committed,
            "profiles/{name} is stale: run `cargo run --example gen_profiles`"
        );
    }
}

#[test]
fn demo_cohort_round_trips_cell_for_cell_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = root().join("examples/demo-cohort/bundle.json");
    let a = imnm(&["cohort", "--input", demo.to_str().unwrap(), "--out", "a"], d);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = imnm(&["to-fhir", "--cases", "a/cohort.csv", "--out", "b.json"], d);
    assert_eq!(b.status.code(), Some(0), "{}", String::from_utf8_lossy(&b.stderr));
    let v = imnm(&["validate", "b.json", "--out", "outcome.json"], d);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stderr));
    let c = imnm(&["cohort", "--input", "b.json", "--out", "c"], d);
    assert!(c.status.success());
    let before = std::fs::read_to_string(d.join("a/cohort.csv")).unwrap();
    let after = std::fs::read_to_string(d.join("c/cohort.csv")).unwrap();
    assert_eq!(before.lines().count(), 11);
    assert_eq!(before, after);
    let issues = std::fs::read_to_string(d.join("c/issues.ndjson")).unwrap();
    assert_eq!(issues.trim(), "", "reading our own Bundle back raises no issue");
}

const DIAGNOSES: &[&str] = &[
    "http://snomed.info/sct|715863001",
    "http://hl7.org/fhir/sid/icd-10-cm|G72.49",
    "http://www.orpha.net|ORPHA:206569",
    "http://snomed.info/sct|702380008",
    "http://hl7.org/fhir/sid/icd-10-cm|M60.89",
];

fn date() -> impl Strategy<Value = Option<FhirDate>> {
    prop_oneof![
        Just(None),
        (1950u16..2025).prop_map(|y| Some(FhirDate {
            year: y,
            month: None,
            day: None
        })),
        (1950u16..2025, 1u8..=12).prop_map(|(y, m)| Some(FhirDate {
            year: y,
            month: Some(m),
            day: None
        })),
        (1950u16..2025, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| FhirDate::ymd(y, m, d)),
    ]
}

fn case_row() -> impl Strategy<Value = CaseRow> {
    let demo = (
        "[a-z0-9][a-z0-9.-]{0,11}",
        prop::sample::select(Sex::ALL.to_vec()),
        date(),
        date(),
        prop::option::of(0u32..100),
        prop::sample::select(DIAGNOSES.to_vec()),
    );
    let ck = prop_oneof![
        Just((None, None, 0u32)),
        (0u32..50_000_000, date(), 1u32..40).prop_map(|(v, d, n)| (Some(f64::from(v) / 1000.0), d, n)),
    ];
    let yn = || prop::sample::select(YesNoUnknown::ALL.to_vec());
    let ab = || prop::sample::select(AntibodyStatus::ALL.to_vec());
    let clinical = (
        ab(),
        ab(),
        yn(),
        yn(),
        yn(),
        yn(),
        prop::sample::select(MriThigh::ALL.to_vec()),
    );
    let treat = (any::<[bool; 4]>(), prop::sample::select(Outcome::ALL.to_vec()));
    (demo, ck, clinical, treat).prop_map(|((id, sex, birth, onset, age, dx), ck, c, (t, outcome))| {
        let mut r = empty_row(&id);
        // The forward mapping derives the age from the dates when the row has none.
        let age = age.or_else(|| birth.zip(onset).and_then(|(b, o)| b.completed_years_until(&o)));
        let (peak, peak_date, count) = ck;
        let (hmgcr, srp, weakness, rash, emg, biopsy, mri) = c;
        let cells = [
            ("sex", Cell::Sex(sex)),
            ("birth_date", Cell::Date(birth)),
            ("onset_date", Cell::Date(onset)),
            ("onset_age_years", Cell::Age(age)),
            ("diagnosis_code", Cell::Code(dx.to_string())),
            ("ck_peak_u_per_l", Cell::Number(peak)),
            ("ck_peak_date", Cell::Date(peak_date)),
            ("ck_count", Cell::Count(count)),
            ("anti_hmgcr", Cell::Antibody(hmgcr)),
            ("anti_srp", Cell::Antibody(srp)),
            ("proximal_weakness", Cell::Finding(weakness)),
            ("rash", Cell::Finding(rash)),
            ("emg_myopathic", Cell::Finding(emg)),
            ("biopsy_necrosis", Cell::Finding(biopsy)),
            ("mri_thigh", Cell::Mri(mri)),
            ("glucocorticoid", Cell::Exposure(t[0])),
            ("methotrexate", Cell::Exposure(t[1])),
            ("rituximab", Cell::Exposure(t[2])),
            ("ivig", Cell::Exposure(t[3])),
            ("outcome", Cell::Outcome(outcome)),
        ];
        put_all(&mut r, cells);
        r
    })
}

/// Sets cells by column name (the built-in dictionary).
fn put_all<const N: usize>(r: &mut CaseRow, cells: [(&str, Cell); N]) {
    let d = dictionary();
    for (name, cell) in cells {
        r.set(d.index(name).unwrap(), cell);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn generated_case_rows_round_trip(rows in prop::collection::vec(case_row(), 1..4)) {
        let mut rows = rows;
        rows.sort_by(|a, b| a.patient_id.cmp(&b.patient_id));
        rows.dedup_by(|a, b| a.patient_id == b.patient_id);
        let back = round_trip(&rows);
        let cells = |rs: &[CaseRow]| rs.iter().map(CaseRow::cells).collect::<Vec<_>>();
        prop_assert_eq!(cells(&back), cells(&rows));
    }
}

/// A valid one-case Bundle and a function to find an entry's resource by type and key.
fn sample_bundle() -> Value {
    let mut r = empty_row("p1");
    let cells = [
        ("sex", Cell::Sex(Sex::Female)),
        ("birth_date", Cell::Date(FhirDate::ymd(2010, 1, 15))),
        ("onset_date", Cell::Date(FhirDate::ymd(2016, 2, 1))),
        ("onset_age_years", Cell::Age(Some(6))),
        ("diagnosis_code", Cell::Code(DIAGNOSES[0].into())),
        ("ck_peak_u_per_l", Cell::Number(Some(3870.0))),
        ("ck_count", Cell::Count(3)),
        ("anti_hmgcr", Cell::Antibody(AntibodyStatus::Positive)),
        ("proximal_weakness", Cell::Finding(YesNoUnknown::Yes)),
        ("outcome", Cell::Outcome(Outcome::PartialRemission)),
    ];
    put_all(&mut r, cells);
    build_bundle(&[r], &mappings(), DEFAULT_SITE_SYSTEM).unwrap()
}

fn resource<'a>(bundle: &'a mut Value, rtype: &str, profile: &str) -> &'a mut Value {
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|e| &mut e["resource"])
        .find(|r| r["resourceType"] == rtype && r["meta"]["profile"][0].as_str().unwrap().ends_with(profile))
        .unwrap()
}

fn only_finding(bundle: &Value) -> (String, String, IssueCode) {
    let report = files::validate_bundle(&profiles(), bundle, "b.json");
    assert_eq!(report.findings.len(), 1, "{}", report.summary());
    let f = &report.findings[0];
    (
        f.location
            .resource
            .as_deref()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string(),
        f.fhir_path.clone().unwrap(),
        f.code,
    )
}

#[test]
fn broken_resources_each_give_exactly_the_expected_finding() {
    let ok = sample_bundle();
    assert_eq!(files::validate_bundle(&profiles(), &ok, "b.json").findings, vec![]);

    let mut b = ok.clone();
    let ck = resource(&mut b, "Observation", "imnm-ck-observation");
    ck["valueQuantity"].as_object_mut().unwrap().remove("unit");
    assert_eq!(
        only_finding(&b),
        (
            "Observation".into(),
            "Observation.valueQuantity.unit".into(),
            IssueCode::Cardinality
        )
    );

    let mut b = ok.clone();
    let finding = resource(&mut b, "Observation", "imnm-finding-observation");
    finding["code"]["coding"][0]["code"] = "HP:0000001".into();
    assert_eq!(
        only_finding(&b),
        ("Observation".into(), "Observation.code".into(), IssueCode::Binding)
    );

    let mut b = ok.clone();
    resource(&mut b, "Patient", "imnm-patient")["birthDate"] = "2010-02-30".into();
    assert_eq!(
        only_finding(&b),
        ("Patient".into(), "Patient.birthDate".into(), IssueCode::Format)
    );

    let mut b = ok.clone();
    let patient_url = b["entry"][0]["fullUrl"].clone();
    resource(&mut b, "Observation", "imnm-outcome-observation")["focus"][0]["reference"] = patient_url;
    assert_eq!(
        only_finding(&b),
        (
            "Observation".into(),
            "Observation.focus[0].reference".into(),
            IssueCode::Reference
        )
    );

    let mut b = ok.clone();
    resource(&mut b, "Condition", "imnm-condition")["severityGrade"] = "high".into();
    assert_eq!(
        only_finding(&b),
        (
            "Condition".into(),
            "Condition.severityGrade".into(),
            IssueCode::UnknownElement
        )
    );

    let mut b = ok.clone();
    resource(&mut b, "Observation", "imnm-antibody-observation")["valueString"] = "positive".into();
    let report = files::validate_bundle(&profiles(), &b, "b.json");
    assert!(report
        .findings
        .iter()
        .any(|f| f.fhir_path.as_deref() == Some("Observation.valueString") && f.code == IssueCode::Type));
}

#[test]
fn validate_cli_writes_an_operation_outcome_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = sample_bundle();
    resource(&mut b, "Patient", "imnm-patient")["birthDate"] = "15/01/2010".into();
    std::fs::write(dir.path().join("b.json"), b.to_string()).unwrap();
    let out = imnm(&["validate", "b.json", "--out", "oo.json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let oo: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("oo.json")).unwrap()).unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"].as_array().unwrap().len(), 1);
    assert_eq!(oo["issue"][0]["expression"][0], "Patient.birthDate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Patient/p1 Patient.birthDate [format]"), "{stderr}");
    assert!(!stderr.contains("15/01/2010"), "no value in messages");
}

#[test]
fn bad_csv_is_reported_by_row_and_column_and_the_rest_converts() {
    let mut text = CaseRow::header(&dictionary()).join(",") + ",favourite_colour\n";
    let good = |id: &str| {
        let mut r = empty_row(id);
        put_all(&mut r, [("diagnosis_code", Cell::Code(DIAGNOSES[0].into()))]);
        r.cells().join(",") + ",blue\n"
    };
    text.push_str(&good("ok1"));
    text.push_str(&good("bad-sex").replacen(",unknown,", ",M,", 1));
    text.push_str(&good("bad-date").replacen("bad-date,unknown,", "bad-date,unknown,2010-13-01", 1));
    text.push_str("ragged,female\n");
    text.push_str(&good("ok1"));
    let mut bytes = text.into_bytes();
    bytes.extend(
        good("latin1")
            .replacen("unknown", "unkn\u{e9}", 1)
            .bytes()
            .map(|b| if b == 0xc3 { 0xe9 } else { b })
            .filter(|b| *b != 0xa9),
    );
    let (rows, issues) = read_cases(bytes.as_slice(), &dictionary());
    let got: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        got,
        vec![
            "row 1, column favourite_colour: unknown column (not in the cohort.csv data dictionary); ignored",
            "row 3, column sex: expected one of male|female|other|unknown; cell left out",
            "row 4, column birth_date: not a FHIR date or dateTime: month must be 01..12; cell left out",
            "row 5: 2 cells where the header has 23; row skipped",
            "row 6, column patient_id: the same patient_id as row 2; row skipped",
            "row 7, column sex: not UTF-8 text; cell left out",
        ],
    );
    let ids: Vec<&str> = rows.iter().map(|(_, r)| r.patient_id.as_str()).collect();
    assert_eq!(ids, vec!["ok1", "bad-sex", "bad-date", "latin1"]);
    assert!(build_bundle(
        &rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        &mappings(),
        DEFAULT_SITE_SYSTEM
    )
    .is_ok());
}

async fn push_counts(ehr: &imnm_fhir::mock::MockEhr, bundle: &Value, batch: usize) -> (usize, usize) {
    let client = imnm_fhir::client::FhirClient::builder(ehr.base_url()).build().unwrap();
    let outcomes = imnm_fhir::push::push(&client, bundle, batch).await.unwrap();
    assert_eq!(outcomes.len(), bundle["entry"].as_array().unwrap().len());
    assert!(outcomes.iter().all(|o| o.location.is_some()), "{outcomes:?}");
    let created = outcomes.iter().filter(|o| o.status.starts_with("201")).count();
    let existing = outcomes.iter().filter(|o| o.status.starts_with("200")).count();
    (created, existing)
}

async fn stored(ehr: &imnm_fhir::mock::MockEhr, rtype: &str) -> Vec<Value> {
    let client = imnm_fhir::client::FhirClient::builder(ehr.base_url()).build().unwrap();
    let mut pages = client.search(rtype, &[("_count", "500".into())]);
    let mut all = Vec::new();
    while let Some(page) = pages.next().await.unwrap() {
        all.extend(page);
    }
    all
}

#[tokio::test]
async fn pushing_the_same_bundle_twice_creates_each_resource_once() {
    let ehr = imnm_fhir::mock::MockEhr::builder()
        .dataset(imnm_fhir::mock::Dataset::Resources(Vec::new()))
        .start()
        .await
        .unwrap();
    let mut two = empty_row("p2");
    put_all(&mut two, [("diagnosis_code", Cell::Code(DIAGNOSES[1].into()))]);
    put_all(&mut two, [("anti_srp", Cell::Antibody(AntibodyStatus::Negative))]);
    let mut bundle = sample_bundle();
    let more = build_bundle(&[two], &mappings(), DEFAULT_SITE_SYSTEM).unwrap();
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.extend(more["entry"].as_array().unwrap().iter().cloned());
    let n = entries.len();
    // In slices of 3 entries, so later slices refer to earlier ones by the server's locations.
    assert_eq!(push_counts(&ehr, &bundle, 3).await, (n, 0));
    assert_eq!(push_counts(&ehr, &bundle, 0).await, (0, n));
    let patients = stored(&ehr, "Patient").await;
    let observations = stored(&ehr, "Observation").await;
    let conditions = stored(&ehr, "Condition").await;
    assert_eq!(patients.len() + observations.len() + conditions.len(), n);
    let p1 = patients.iter().find(|p| p["identifier"][0]["value"] == "p1").unwrap();
    let subject = format!("Patient/{}", p1["id"].as_str().unwrap());
    let of_p1 = observations
        .iter()
        .filter(|o| o["subject"]["reference"] == subject.as_str())
        .count();
    assert_eq!(
        of_p1, 4,
        "CK, anti-HMGCR, weakness and outcome point at the pushed Patient"
    );
    let outcome = observations.iter().find(|o| o["focus"].is_array()).unwrap();
    assert_eq!(
        outcome["focus"][0]["reference"],
        format!(
            "Condition/{}",
            conditions
                .iter()
                .find(|c| c["subject"]["reference"] == subject.as_str())
                .unwrap()["id"]
                .as_str()
                .unwrap()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_cli_reports_each_entry() {
    let ehr = imnm_fhir::mock::MockEhr::builder()
        .dataset(imnm_fhir::mock::Dataset::Resources(Vec::new()))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), sample_bundle().to_string()).unwrap();
    let base = ehr.base_url();
    let out = tokio::task::spawn_blocking(move || {
        let d = dir;
        imnm(&["push", "b.json", "--base-url", &base, "--batch-size", "8"], d.path())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        sample_bundle()["entry"].as_array().unwrap().len(),
        "{stdout}"
    );
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("entry 0 Patient 201 Created ") && first.contains("/Patient/"),
        "{stdout}"
    );
}

#[test]
fn validate_reads_ndjson_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = sample_bundle();
    let patient = resource(&mut b, "Patient", "imnm-patient").clone();
    let mut bad = patient.clone();
    bad["id"] = "p2".into();
    bad["gender"] = "M".into();
    let text = format!("{patient}\n{{not json\n{bad}\n");
    let path = dir.path().join("Patient.ndjson");
    std::fs::write(&path, text).unwrap();
    let report = files::validate_files(&[path], &profiles()).unwrap();
    let got: Vec<(String, String, IssueCode)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.location.input.rsplit('/').next().unwrap().to_string(),
                f.fhir_path.clone().unwrap(),
                f.code,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Patient.ndjson:2".to_string(),
                "(input)".to_string(),
                IssueCode::Structure
            ),
            (
                "Patient.ndjson:3".to_string(),
                "Patient.gender".to_string(),
                IssueCode::Binding
            ),
        ]
    );
    assert_eq!(report.checked.get("imnm-patient"), Some(&2));
}

#[test]
fn profile_problems_are_reported_all_at_once() {
    let mut sources: Vec<(String, String)> = profile::BUILTIN
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    sources.retain(|(n, _)| n != "ValueSet-imnm-ck-unit.json");
    sources.push(("broken.json".into(), "{\"resourceType\": ".into()));
    let err = ProfileSet::from_sources(sources, BaseTable::builtin().unwrap()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.0.len(), 2, "{text}");
    assert!(text.contains("broken.json: not JSON"), "{text}");
    assert!(text.contains("imnm-ck-observation: Observation.value[x].code: value set https://imnm-fhir.org/fhir/ValueSet/imnm-ck-unit is not defined"), "{text}");
}

#[test]
fn to_fhir_cli_leaves_out_a_case_with_a_non_imnm_diagnosis_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut ok = empty_row("ok1");
    put_all(&mut ok, [("diagnosis_code", Cell::Code(DIAGNOSES[0].into()))]);
    let mut other = empty_row("dm1");
    put_all(
        &mut other,
        [("diagnosis_code", Cell::Code("http://snomed.info/sct|396230008".into()))],
    );
    std::fs::write(dir.path().join("cases.csv"), csv_text(&[ok, other])).unwrap();
    let out = imnm(&["to-fhir", "--cases", "cases.csv", "--out", "b.json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cases.csv: row 3, column diagnosis_code: not an IMNM code or parent code"),
        "{stderr}"
    );
    assert_eq!(patients_in(&dir.path().join("b.json")), 1, "the other case is written");
}

fn patients_in(bundle: &std::path::Path) -> usize {
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(bundle).unwrap()).unwrap();
    let entries = bundle["entry"].as_array().unwrap().iter();
    entries.filter(|e| e["resource"]["resourceType"] == "Patient").count()
}

#[test]
fn a_case_that_cannot_become_fhir_is_left_out_by_row_and_the_rest_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let row = |id: &str, dx: &str| {
        let mut r = empty_row(id);
        put_all(&mut r, [("diagnosis_code", Cell::Code(dx.into()))]);
        r.cells().join(",") + "\n"
    };
    let text = CaseRow::header(&dictionary()).join(",")
        + "\n"
        + &row("good", DIAGNOSES[0])
        + &row("no-dx", "")
        + &row("good2", DIAGNOSES[0]);
    std::fs::write(dir.path().join("cases.csv"), text).unwrap();
    let out = imnm(&["to-fhir", "--cases", "cases.csv", "--out", "b.json"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("row 3, column diagnosis_code") && err.contains("case left out"),
        "{err}"
    );
    assert!(!err.contains("no-dx"), "no patient id in messages: {err}");
    assert_eq!(patients_in(&dir.path().join("b.json")), 2);
}

/// `imnm validate`'s OperationOutcome and summary, pinned key for key (issue 22: the one
/// finding model and OperationOutcome builder must not change them).
#[test]
fn validate_outcome_and_summary_keep_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    let patient = resource(&mut sample_bundle(), "Patient", "imnm-patient").clone();
    let mut bad = patient.clone();
    bad["gender"] = "M".into();
    let path = dir.path().join("Patient.ndjson");
    std::fs::write(&path, format!("{patient}\n{{not json\n{bad}\n")).unwrap();
    let name = path.display().to_string();
    let report = files::validate_files(&[path], &profiles()).unwrap();
    let expected = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "structure",
                "details": {
                    "coding": [{"system": "https://imnm-fhir.org/fhir/CodeSystem/imnm-validation-rule", "code": "structure"}],
                    "text": "not JSON: key must be a string at line 1 column 2",
                },
                "diagnostics": format!("(unreadable) ({name}:2)"),
                "expression": ["(input)"],
            },
            {
                "severity": "error",
                "code": "code-invalid",
                "details": {
                    "coding": [{"system": "https://imnm-fhir.org/fhir/CodeSystem/imnm-validation-rule", "code": "binding"}],
                    "text": "code not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender",
                },
                "diagnostics": format!("Patient/p1 ({name}:3)"),
                "expression": ["Patient.gender"],
            },
        ],
    });
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
    assert_eq!(pretty(&report.operation_outcome()), pretty(&expected));
    assert_eq!(
        report.summary(),
        format!(
            "error (unreadable) (input) [structure] not JSON: key must be a string at line 1 column 2 ({name}:2)\n\
             error Patient/p1 Patient.gender [binding] code not in the required value set \
             http://hl7.org/fhir/ValueSet/administrative-gender ({name}:3)\n\
             2 resource(s) checked (imnm-patient 2); 2 error(s), 0 warning(s)\n"
        )
    );
    let clean = files::validate_bundle(&profiles(), &sample_bundle(), "b.json");
    let all_clear = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": format!("{} resource(s) valid", clean.checked.values().sum::<usize>())}],
    });
    assert_eq!(pretty(&clean.operation_outcome()), pretty(&all_clear));
}
