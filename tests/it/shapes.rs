//! Real hospital data shapes (issue 24): panels with results in `component`,
//! results reached through `hasMember` and `DiagnosticReport.result`, each
//! with the cohort values they must give and nothing counted twice.

use serde_json::{json, Value};

use imnm_fhir::domain::case::format_number;
use imnm_fhir::report::IssueCode;

use crate::support::{cell, imnm, imnm_condition, observation, patient, read_ndjson, run};

const LOINC: &str = "http://loinc.org";
const INTERP: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// A component of `code` with `value` (`valueX` key and value) merged in.
fn component(code: &str, value: Value) -> Value {
    let mut c = json!({"code": {"coding": [{"system": LOINC, "code": code}]}});
    for (k, v) in value.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A panel Observation for p1 whose own code no rule uses, with `components`.
fn panel(id: &str, components: Vec<Value>) -> Value {
    let mut p = observation(id, LOINC, "LP-myositis-panel", json!({}));
    p["code"]["text"] = json!("Myositis antibody panel");
    p["effectiveDateTime"] = json!("2016-02-03");
    p["component"] = json!(components);
    p
}

fn ck(id: &str, value: f64) -> Value {
    observation(
        id,
        LOINC,
        "2157-6",
        json!({"valueQuantity": {"value": value, "unit": "U/L"}}),
    )
}

fn case(
    extra: Vec<Value>,
) -> (
    imnm_fhir::domain::CaseRow,
    Vec<imnm_fhir::report::Issue>,
    imnm_fhir::cohort::Cohort,
) {
    let mut resources = vec![patient("p1"), imnm_condition("c1", "p1")];
    resources.extend(extra);
    let (cohort, issues) = run(&resources);
    assert_eq!(cohort.rows.len(), 1, "p1 should be a case");
    (cohort.rows.all().unwrap()[0].clone(), issues, cohort)
}

fn sources_of(cohort: &imnm_fhir::cohort::Cohort, column: &str) -> Vec<String> {
    let prov = cohort.provenance.all().unwrap();
    prov.into_iter()
        .filter(|p| p.column == column)
        .flat_map(|p| p.sources)
        .collect()
}

#[test]
fn an_antibody_panel_gives_its_antibody_columns() {
    let interp = |code: &str| json!([{"coding": [{"system": INTERP, "code": code}]}]);
    let p = panel(
        "panel1",
        vec![
            component("8867-4", json!({"valueQuantity": {"value": 70, "unit": "/min"}})),
            component("93493-5", json!({"valueString": "POSITIVE (>200 CU)"})),
            component(
                "33921-8",
                json!({"valueQuantity": {"value": 3, "unit": "U"}, "interpretation": interp("N")}),
            ),
        ],
    );
    let (row, issues, cohort) = case(vec![p]);
    assert_eq!(cell(&row, "anti_hmgcr"), "positive");
    assert_eq!(cell(&row, "anti_srp"), "negative");
    assert_eq!(sources_of(&cohort, "anti_hmgcr"), ["Observation/panel1#component[1]"]);
    assert_eq!(sources_of(&cohort, "anti_srp"), ["Observation/panel1#component[2]"]);
    let errors: Vec<_> = issues
        .iter()
        .filter(|i| i.severity <= imnm_fhir::report::Severity::Warning)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_ck_inside_a_panel_counts_for_the_peak_with_the_panels_date() {
    let values = [2080.0, 7400.0];
    let chem = panel(
        "chem1",
        vec![
            component("2345-7", json!({"valueQuantity": {"value": 5.1, "unit": "mmol/L"}})),
            component("2157-6", json!({"valueQuantity": {"value": values[1], "unit": "U/L"}})),
        ],
    );
    let (row, _, cohort) = case(vec![ck("ck1", values[0]), chem]);
    let peak = values.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(cell(&row, "ck_peak_u_per_l"), peak.to_string());
    assert_eq!(cell(&row, "ck_peak_date"), "2016-02-03");
    assert_eq!(cell(&row, "ck_count"), values.len().to_string());
    assert_eq!(
        sources_of(&cohort, "ck_peak_u_per_l"),
        ["Observation/chem1#component[1]"]
    );
}

#[test]
fn a_components_problem_names_the_component() {
    let chem = panel(
        "chem2",
        vec![component(
            "2157-6",
            json!({"valueQuantity": {"value": 30, "unit": "mmol/L"}}),
        )],
    );
    let (row, issues, _) = case(vec![chem]);
    assert_eq!(cell(&row, "ck_count"), "0");
    let unit = issues
        .iter()
        .find(|i| i.code == imnm_fhir::report::IssueCode::UnitNotConvertible)
        .expect("the unit is reported");
    assert_eq!(unit.location.input, "Observation/chem2");
    assert_eq!(
        unit.fhir_path.as_deref(),
        Some("Observation.component[0].valueQuantity.unit")
    );
}

#[test]
fn results_reached_by_has_member_and_report_result_count_once() {
    let values = [2080.0, 5600.0];
    let members: Vec<Value> = ["ck1", "ck2"]
        .iter()
        .map(|id| json!({"reference": format!("Observation/{id}")}))
        .collect();
    let mut grouper = observation("grp1", LOINC, "24331-1", json!({}));
    grouper["hasMember"] = json!(members);
    let report = json!({
        "resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "24331-1"}]},
        "subject": {"reference": "Patient/p1"},
        "result": members,
    });
    let standalone = vec![ck("ck1", values[0]), ck("ck2", values[1])];
    let (alone, _, _) = case(standalone.clone());
    let mut all = standalone.clone();
    all.extend([grouper, report]);
    // The results again, as a server answering `_include` would send them.
    all.extend(standalone);
    let (row, _, _) = case(all);
    for column in ["ck_count", "ck_peak_u_per_l"] {
        assert_eq!(cell(&row, column), cell(&alone, column), "{column}");
    }
    assert_eq!(cell(&row, "ck_count"), values.len().to_string());
}

/// `imnm cohort` over `resources` written as one NDJSON file in `dir`; its output folder.
fn ndjson_cohort(dir: &std::path::Path, resources: &[Value]) -> std::path::PathBuf {
    let lines: Vec<String> = resources.iter().map(Value::to_string).collect();
    let input = dir.join("in.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join("out");
    let o = imnm(
        &[
            "cohort",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// NDJSON goes through the byte-level prefilter: a panel holding a rule's
/// code gets through it, and its resource goes to sources.ndjson.
#[test]
fn the_prefilter_lets_panels_through_and_sources_hold_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    let chem = panel(
        "chem3",
        vec![component(
            "2157-6",
            json!({"valueQuantity": {"value": 4100, "unit": "U/L"}}),
        )],
    );
    let bp = json!({
        "resourceType": "Observation", "id": "bp1", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "component": [component("8480-6", json!({"valueQuantity": {"value": 120, "unit": "mm[Hg]"}}))],
    });
    let out = ndjson_cohort(dir.path(), &[patient("p1"), imnm_condition("c1", "p1"), bp, chem]);
    let csv = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    assert!(csv.contains(",4100,"), "{csv}");
    let sources = read_ndjson(&out.join("sources.ndjson"));
    let ids: Vec<&str> = sources.iter().filter_map(|s| s["resource"]["id"].as_str()).collect();
    assert!(ids.contains(&"chem3"), "{ids:?}");
    assert!(!ids.contains(&"bp1"), "{ids:?}");
}

/// `sources.ndjson` holds the resources behind the cells, found by the numbers
/// their facts carry: a MedicationRequest and the Medication it names (read
/// after it), in read order, and not a Medication no cell names.
#[test]
fn sources_hold_a_request_and_the_medication_it_names_in_read_order() {
    let dir = tempfile::tempdir().unwrap();
    let rx = "http://www.nlm.nih.gov/research/umls/rxnorm";
    let med = |id: &str, code: &str| json!({"resourceType": "Medication", "id": id, "code": {"coding": [{"system": rx, "code": code}]}});
    let request = json!({
        "resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": "2021-03-01",
        "medicationReference": {"reference": "Medication/med-mtx"},
    });
    let resources = [
        med("med-ivig-unused", "5666"),
        patient("p1"),
        request,
        imnm_condition("c1", "p1"),
        med("med-mtx", "105586"),
    ];
    let out = ndjson_cohort(dir.path(), &resources);
    let csv = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    let prov = std::fs::read_to_string(out.join("provenance.ndjson")).unwrap();
    assert!(prov.contains("Medication/med-mtx"), "{csv}\n{prov}");
    let sources = read_ndjson(&out.join("sources.ndjson"));
    let ids: Vec<String> = sources
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["resource"]["resourceType"].as_str().unwrap(),
                s["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    let want = [
        "Patient/p1",
        "MedicationRequest/mr1",
        "Condition/c1",
        "Medication/med-mtx",
    ];
    assert_eq!(ids, want, "{prov}");
}

const LOCAL: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-case";
const SCT: &str = "http://snomed.info/sct";

/// A DiagnosticReport for p1 with `code` and `conclusion_codes` (system, code).
fn report(id: &str, code: (&str, &str), conclusion_codes: &[(&str, &str)]) -> Value {
    let concepts: Vec<Value> = conclusion_codes
        .iter()
        .map(|(s, c)| json!({"coding": [{"system": s, "code": c}]}))
        .collect();
    let mut r = json!({
        "resourceType": "DiagnosticReport", "id": id, "status": "final",
        "code": {"coding": [{"system": code.0, "code": code.1}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2016-03-01",
    });
    if !concepts.is_empty() {
        r["conclusionCode"] = json!(concepts);
    }
    r
}

#[test]
fn findings_only_in_report_conclusion_codes_fill_their_columns() {
    let (empty, _, _) = case(vec![]);
    let reports = vec![
        report("emg1", (SCT, "42803009"), &[(LOCAL, "emg-myopathic")]),
        report("bx1", (LOINC, "11526-1"), &[(LOCAL, "bx-necrosis")]),
        report("mri1", (LOINC, "18748-4"), &[(LOCAL, "mri-edema")]),
    ];
    let (row, issues, cohort) = case(reports);
    for (column, before, after) in [
        ("emg_myopathic", "unknown", "yes"),
        ("biopsy_necrosis", "unknown", "yes"),
        ("mri_thigh", "unknown", "edema"),
    ] {
        assert_eq!(cell(&empty, column), before, "{column}");
        assert_eq!(cell(&row, column), after, "{column}");
    }
    assert_eq!(sources_of(&cohort, "emg_myopathic"), ["DiagnosticReport/emg1"]);
    assert!(
        issues.iter().all(|i| i.severity > imnm_fhir::report::Severity::Warning),
        "{issues:?}"
    );
}

#[test]
fn a_report_per_finding_reads_its_yes_no_conclusion_and_reports_a_missing_one() {
    let no = report("bx2", (LOCAL, "bx-necrosis"), &[(SCT, "373067005")]);
    let yes = report("emg2", (LOCAL, "emg-myopathic"), &[(SCT, "373066001")]);
    let mut silent = report("mri2", (LOCAL, "mri-fatty"), &[]);
    silent["conclusion"] = json!("see the images");
    let (row, issues, _) = case(vec![no, yes, silent]);
    assert_eq!(cell(&row, "biopsy_necrosis"), "no");
    assert_eq!(cell(&row, "emg_myopathic"), "yes");
    assert_eq!(cell(&row, "mri_thigh"), "unknown");
    let missing = issues
        .iter()
        .find(|i| i.location.input == "DiagnosticReport/mri2")
        .expect("the report without a conclusion is reported");
    assert_eq!(missing.code, imnm_fhir::report::IssueCode::MissingValue);
    assert_eq!(missing.fhir_path.as_deref(), Some("DiagnosticReport.conclusionCode"));
}

#[test]
fn a_report_without_a_subject_is_an_error_only_when_it_would_have_given_a_value() {
    let mut coded = report("emg3", (SCT, "42803009"), &[(LOCAL, "emg-myopathic")]);
    coded.as_object_mut().unwrap().remove("subject");
    // A pathology report (a kind the text rules read) about something else, as in the HL7 examples.
    let mut other = report("path1", (LOINC, "11526-1"), &[]);
    other.as_object_mut().unwrap().remove("subject");
    other["conclusion"] = json!("Benign fibrous gingival mass.");
    let mut pdf = other.clone();
    pdf["id"] = json!("path2");
    pdf["presentedForm"] = json!([{"contentType": "application/pdf", "data": "JVBERi0xLjcK"}]);
    let (_, issues, _) = case(vec![coded, other, pdf]);
    let missing: Vec<String> = issues
        .iter()
        .filter(|i| i.code == IssueCode::MissingSubject)
        .map(|i| i.location.input.to_string())
        .collect();
    assert_eq!(missing, ["DiagnosticReport/emg3"]);
    let unread = issues.iter().find(|i| i.code == IssueCode::UnreadAttachment);
    assert_eq!(
        unread.map(|i| i.location.input.to_string()).as_deref(),
        Some("DiagnosticReport/path2")
    );
}

#[test]
fn excluded_report_statuses_do_not_count() {
    let mut eie = report("emg3", (SCT, "42803009"), &[(LOCAL, "emg-myopathic")]);
    eie["status"] = json!("entered-in-error");
    let (row, _, _) = case(vec![eie]);
    assert_eq!(cell(&row, "emg_myopathic"), "unknown");
}

/// Sync from an EHR with DiagnosticReports (Epic's profile: Observation searches
/// need `category`, so a result filed without one is found only through the
/// report or the panel naming it): the reports are fetched, the results are
/// read by reference, and the cohort from the store has them.
#[tokio::test]
async fn sync_fetches_reports_and_hydrates_their_results() {
    use imnm_fhir::mock::{FaultPlan, Vendor};
    let uncategorised_ck = ck("ck9", 9100.0);
    let mut emg = report("emg9", (SCT, "42803009"), &[(LOCAL, "emg-myopathic")]);
    emg["result"] = json!([{"reference": "Observation/ck9"}]);
    let member_ck = ck("ck8", 4400.0);
    let mut grouper = observation("grp8", LOINC, "24331-1", json!({}));
    grouper["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]);
    grouper["hasMember"] = json!([{"reference": "Observation/ck8"}]);
    let data = vec![
        patient("p1"),
        imnm_condition("c1", "p1"),
        uncategorised_ck,
        emg,
        member_ck,
        grouper,
    ];
    let ehr = crate::sync::mock_with(data, Vendor::Epic, FaultPlan::none()).await;
    let store = crate::sync::new_store();
    let report = imnm_fhir::sync::crawl(
        &crate::sync::client(&ehr),
        store.clone(),
        &crate::support::mappings(),
        &crate::sync::options(),
    )
    .await
    .unwrap();
    assert_eq!(report.received.get("DiagnosticReport"), Some(&1), "{report:?}");
    assert_eq!(report.results_fetched, 2);
    let journal = ehr.journal();
    assert!(journal.iter().any(|e| e.path == "/DiagnosticReport"));
    assert!(journal.iter().any(|e| e.path == "/Observation/ck9"));
    let m = crate::support::mappings();
    let collected = imnm_fhir::pipeline::collect_store(&store.lock().unwrap(), "store", &m).unwrap();
    let mut issues = collected.issues;
    let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).unwrap();
    assert_eq!(cohort.rows.len(), 1);
    assert_eq!(cell(&cohort.rows.all().unwrap()[0], "emg_myopathic"), "yes");
    assert_eq!(cell(&cohort.rows.all().unwrap()[0], "ck_peak_u_per_l"), "9100");
    assert_eq!(cell(&cohort.rows.all().unwrap()[0], "ck_count"), "2");
}

/// A study bundle of a site that sends panels and reports: the de-identified
/// resources still give the same cells when read again.
#[test]
fn a_study_bundle_keeps_panels_and_reports() {
    use imnm_fhir::export::{self, ExportOptions};
    let tmp = tempfile::tempdir().unwrap();
    let p = panel(
        "panel2",
        vec![component("93493-5", json!({"valueString": "POSITIVE (>200 CU)"}))],
    );
    let chem = panel(
        "chem9",
        vec![component(
            "2157-6",
            json!({"valueQuantity": {"value": 6100, "unit": "U/L"}}),
        )],
    );
    let emg = report("emg7", (SCT, "42803009"), &[(LOCAL, "emg-myopathic")]);
    let resources = vec![patient("p1"), imnm_condition("c1", "p1"), p, chem, emg];
    let input = tmp.path().join("in.json");
    std::fs::write(&input, crate::support::bundle(&resources)).unwrap();
    let (source, _) = run(&resources);
    let out = tmp.path().join("bundle");
    let opts = ExportOptions {
        input: imnm_fhir::pipeline::Input::Files(vec![input.clone()]),
        out: out.clone(),
        profile: Default::default(),
        min_cell: 1,
        site: "A".into(),
        threads: None,
    };
    let key = imnm_fhir::deid::key::SiteKey::from_bytes(&[7; 32]);
    export::export(&opts, &key, &crate::support::mappings()).unwrap();
    let verify = imnm(
        &[
            "export",
            "--verify",
            out.to_str().unwrap(),
            "--source",
            input.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let (again, issues) = crate::support::run_paths(&[out.join("ndjson")]);
    assert_eq!(again.rows.len(), 1, "{issues:?}");
    for column in ["anti_hmgcr", "ck_peak_u_per_l", "emg_myopathic"] {
        assert_eq!(
            cell(&again.rows.all().unwrap()[0], column),
            cell(&source.rows.all().unwrap()[0], column),
            "{column}"
        );
    }
}

/// A lab report whose CK result is `contained` (`result: [{reference: "#ck-in"}]`),
/// the contained Observation without subject or date (the report's are used).
fn report_with_contained_ck(value: f64) -> Value {
    let mut inner = ck("ck-in", value);
    for f in ["subject", "effectiveDateTime"] {
        inner.as_object_mut().unwrap().remove(f);
    }
    json!({
        "resourceType": "DiagnosticReport", "id": "dr-lab", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "24323-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2016-04-05",
        "contained": [inner],
        "result": [{"reference": "#ck-in"}, {"reference": "Observation/ck-out"}, {"reference": "#gone"}],
    })
}

#[test]
fn a_reports_contained_results_are_read_once_naming_the_report() {
    let (inside, outside) = (7300.0, 3000.0);
    let report = report_with_contained_ck(inside);
    // The report twice (as an `_include` answer may send it) and the referenced result on its own.
    let (row, issues, cohort) = case(vec![report.clone(), ck("ck-out", outside), report.clone()]);
    assert_eq!(cell(&row, "ck_count"), "2", "each result once");
    assert_eq!(cell(&row, "ck_peak_u_per_l"), format_number(inside.max(outside)));
    assert_eq!(
        cell(&row, "ck_peak_date"),
        report["effectiveDateTime"].as_str().unwrap()
    );
    assert_eq!(
        sources_of(&cohort, "ck_peak_u_per_l"),
        ["DiagnosticReport/dr-lab#ck-in"]
    );
    let gone: Vec<_> = issues
        .iter()
        .filter(|i| i.code == IssueCode::DanglingReference)
        .collect();
    assert_eq!(gone.len(), 1, "{issues:#?}");
    assert_eq!(gone[0].fhir_path.as_deref(), Some("DiagnosticReport.result[2]"));
    // NDJSON goes through the prefilter and the peek: a report whose own code no rule uses gets through.
    let dir = tempfile::tempdir().unwrap();
    let out = ndjson_cohort(dir.path(), &[patient("p1"), imnm_condition("c1", "p1"), report]);
    let csv = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    assert!(csv.contains(&format!(",{},", format_number(inside))), "{csv}");
}
