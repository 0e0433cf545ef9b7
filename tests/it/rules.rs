//! One test per rule and resource style.

use serde_json::json;

use crate::support::{case_cell, imnm_condition, observation, patient, run};

const LOINC: &str = "http://loinc.org";
const SCT: &str = "http://snomed.info/sct";
const LOCAL: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-case";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

fn ck(id: &str, quantity: serde_json::Value) -> serde_json::Value {
    observation(id, LOINC, "2157-6", json!({"valueQuantity": quantity}))
}

#[test]
fn ck_in_ukat_per_l_converts_by_60() {
    let cell = case_cell(
        vec![ck(
            "o1",
            json!({"value": 64.5, "unit": "µkat/L", "system": "http://unitsofmeasure.org", "code": "ukat/L"}),
        )],
        "ck_peak_u_per_l",
    );
    assert_eq!(cell, "3870");
}

#[test]
fn ck_unit_text_without_ucum_code_is_accepted() {
    let obs = vec![
        ck("o1", json!({"value": 4107, "unit": "IU/L"})),
        ck("o2", json!({"value": 900, "unit": "U/L"})),
    ];
    assert_eq!(case_cell(obs.clone(), "ck_peak_u_per_l"), "4107");
    assert_eq!(case_cell(obs, "ck_count"), "2");
}

#[test]
fn ck_peak_date_is_the_peak_results_date() {
    let mut high = ck("o1", json!({"value": 5000, "unit": "U/L"}));
    high["effectiveDateTime"] = json!("2016-04-05T10:00:00+08:00");
    let low = ck("o2", json!({"value": 100, "unit": "U/L"}));
    assert_eq!(case_cell(vec![high, low], "ck_peak_date"), "2016-04-05");
}

#[test]
fn excluded_observation_statuses_do_not_count() {
    let mut eie = ck("o1", json!({"value": 50000, "unit": "U/L"}));
    eie["status"] = json!("entered-in-error");
    let mut cancelled = ck("o2", json!({"value": 40000, "unit": "U/L"}));
    cancelled["status"] = json!("cancelled");
    let ok = ck("o3", json!({"value": 2080, "unit": "U/L"}));
    assert_eq!(
        case_cell(vec![eie.clone(), cancelled.clone(), ok.clone()], "ck_peak_u_per_l"),
        "2080"
    );
    assert_eq!(case_cell(vec![eie, cancelled, ok], "ck_count"), "1");
}

#[test]
fn a_site_local_lab_code_from_the_mappings_counts_as_ck() {
    let obs = observation(
        "o1",
        "https://lab.site-b.example.org/codes",
        "CK-TOT",
        json!({"valueQuantity": {"value": 52, "unit": "ukat/L"}}),
    );
    assert_eq!(case_cell(vec![obs], "ck_peak_u_per_l"), "3120");
}

#[test]
fn antibody_as_coded_value() {
    let pos = observation(
        "a1",
        LOINC,
        "33921-8",
        json!({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004"}]}}),
    );
    assert_eq!(case_cell(vec![pos], "anti_srp"), "positive");
    let neg = observation(
        "a1",
        LOINC,
        "33921-8",
        json!({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009"}]}}),
    );
    assert_eq!(case_cell(vec![neg], "anti_srp"), "negative");
}

#[test]
fn antibody_as_string_value() {
    let pos = observation("a1", LOINC, "33921-8", json!({"valueString": "POSITIVE"}));
    assert_eq!(case_cell(vec![pos], "anti_srp"), "positive");
    let eq = observation("a1", LOINC, "33921-8", json!({"valueString": "Equivocal"}));
    assert_eq!(case_cell(vec![eq], "anti_srp"), "indeterminate");
    for negative in ["Not detected", "NON-REACTIVE", "Negative (<20 units)", "none detected"] {
        let o = observation("a1", LOINC, "33921-8", json!({"valueString": negative}));
        assert_eq!(case_cell(vec![o], "anti_srp"), "negative", "{negative}");
    }
}

#[test]
fn antibody_from_interpretation_only() {
    let interp = |code: &str| json!({"interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code}]}]});
    assert_eq!(
        case_cell(vec![observation("a1", LOINC, "33921-8", interp("NEG"))], "anti_srp"),
        "negative"
    );
    assert_eq!(
        case_cell(vec![observation("a1", LOINC, "33921-8", interp("POS"))], "anti_srp"),
        "positive"
    );
}

#[test]
fn antibody_quantity_uses_the_assay_cutoff() {
    let q = |v: f64, comparator: Option<&str>| {
        let mut vq = json!({"value": v, "unit": "Units"});
        if let Some(c) = comparator {
            vq["comparator"] = json!(c);
        }
        observation("a1", LOINC, "93493-5", json!({"valueQuantity": vq}))
    };
    assert_eq!(case_cell(vec![q(156.0, None)], "anti_hmgcr"), "positive");
    assert_eq!(case_cell(vec![q(20.0, None)], "anti_hmgcr"), "positive");
    assert_eq!(case_cell(vec![q(19.9, None)], "anti_hmgcr"), "negative");
    assert_eq!(case_cell(vec![q(20.0, Some("<"))], "anti_hmgcr"), "negative");
    let cu = observation(
        "a1",
        "https://lab.site-b.example.org/codes",
        "HMGCR-AB",
        json!({"valueQuantity": {"value": 4.1, "unit": "CU"}}),
    );
    assert_eq!(case_cell(vec![cu], "anti_hmgcr"), "negative");
}

#[test]
fn ever_positive_wins_and_untested_is_not_tested() {
    let neg = observation("a1", LOINC, "33921-8", json!({"valueString": "Negative"}));
    let pos = observation("a2", LOINC, "33921-8", json!({"valueString": "Positive"}));
    assert_eq!(case_cell(vec![neg, pos], "anti_srp"), "positive");
    assert_eq!(case_cell(vec![], "anti_hmgcr"), "not_tested");
}

#[test]
fn onset_age_from_onset_age_element() {
    let mut c = imnm_condition("c1", "p1");
    let obj = c.as_object_mut().unwrap();
    obj.remove("onsetDateTime");
    obj.insert(
        "onsetAge".into(),
        json!({"value": 5, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}),
    );
    let (cohort, _) = run(&[patient("p1"), c]);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "onset_age_years"),
        "5"
    );
    assert_eq!(crate::support::cell(&cohort.rows.all().unwrap()[0], "onset_date"), "");
    let prov = cohort.provenance.all().unwrap();
    let prov = prov.iter().find(|p| p.column == "onset_age_years").unwrap();
    assert_eq!(prov.detail, "Condition.onsetAge");
}

#[test]
fn onset_age_from_onset_date_minus_birth_date() {
    // Born 2010-01-15, onset 2015-03-01: 5 completed years.
    assert_eq!(case_cell(vec![], "onset_age_years"), "5");
    assert_eq!(case_cell(vec![], "onset_date"), "2015-03-01");
}

#[test]
fn onset_age_from_onset_period_and_recorded_date() {
    let mut c = imnm_condition("c1", "p1");
    c.as_object_mut().unwrap().remove("onsetDateTime");
    c["onsetPeriod"] = json!({"start": "2014-01-14"});
    let (cohort, _) = run(&[patient("p1"), c.clone()]);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "onset_age_years"),
        "3"
    );
    c.as_object_mut().unwrap().remove("onsetPeriod");
    c["recordedDate"] = json!("2022-06-30");
    let (cohort, _) = run(&[patient("p1"), c]);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "onset_age_years"),
        "12"
    );
    let prov = cohort.provenance.all().unwrap();
    let prov = prov.iter().find(|p| p.column == "onset_age_years").unwrap();
    assert!(prov.detail.contains("recordedDate"), "{}", prov.detail);
}

#[test]
fn refuted_entered_in_error_and_differential_diagnoses_are_not_cases() {
    let status = |code: &str| {
        let mut c = imnm_condition("c1", "p1");
        c["verificationStatus"]["coding"][0]["code"] = json!(code);
        c
    };
    for code in ["refuted", "entered-in-error"] {
        let (cohort, _) = run(&[patient("p1"), status(code)]);
        assert!(cohort.rows.is_empty(), "{code} must not make a case");
    }
    let mut dm = imnm_condition("c1", "p1");
    dm["code"] = json!({"coding": [{"system": SCT, "code": "396230008"}]});
    assert!(run(&[patient("p1"), dm]).0.rows.is_empty());
}

#[test]
fn icd_codes_and_parent_codes_with_wording_select_cases() {
    let mut icd = imnm_condition("c1", "p1");
    icd["code"] = json!({"coding": [{"system": "urn:oid:2.16.840.1.113883.6.90", "code": "G7249"}]});
    assert_eq!(
        crate::support::cell(&run(&[patient("p1"), icd]).0.rows.all().unwrap()[0], "diagnosis_code"),
        "http://hl7.org/fhir/sid/icd-10-cm|G7249"
    );
    let mut who = imnm_condition("c1", "p1");
    who["code"] = json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "G72.4"}]});
    assert_eq!(run(&[patient("p1"), who]).0.rows.len(), 1);
    let mut parent = imnm_condition("c1", "p1");
    parent["code"] =
        json!({"coding": [{"system": SCT, "code": "702380008"}], "text": "Immune-mediated necrotizing myopathy"});
    assert_eq!(run(&[patient("p1"), parent.clone()]).0.rows.len(), 1);
    let mut text_only = imnm_condition("c1", "p1");
    text_only["code"] = json!({"coding": [{"system": "http://example.org/local-dx", "code": "X123"}], "text": "Necrotizing autoimmune myopathy"});
    let (cohort, _) = run(&[patient("p1"), text_only]);
    assert!(
        cohort.rows.is_empty(),
        "wording without an IMNM or parent code is not a case"
    );
    assert!(
        cohort.candidates[0].reason.contains("text names IMNM"),
        "{}",
        cohort.candidates[0].reason
    );
    parent["code"]["text"] = json!("Idiopathic inflammatory myopathy");
    let (cohort, _) = run(&[patient("p1"), parent]);
    assert!(cohort.rows.is_empty());
    assert_eq!(cohort.candidates.len(), 1);
    assert!(cohort.candidates[0].reason.contains("without IMNM wording"));
}

#[test]
fn suggestive_labs_without_diagnosis_make_a_candidate_not_a_case() {
    let obs = vec![
        patient("p2"),
        json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": LOINC, "code": "2157-6"}]},
               "subject": {"reference": "Patient/p2"}, "valueQuantity": {"value": 1500, "unit": "U/L"}}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final", "code": {"coding": [{"system": LOINC, "code": "93493-5"}]},
               "subject": {"reference": "Patient/p2"}, "valueQuantity": {"value": 45, "unit": "Units"}}),
    ];
    let (cohort, _) = run(&obs);
    assert!(cohort.rows.is_empty());
    assert_eq!(cohort.candidates.len(), 1);
    assert_eq!(
        cohort.candidates[0].reason,
        "ck_peak_u_per_l 1500 > 1000 and anti_hmgcr positive"
    );
}

#[test]
fn findings_and_mri() {
    let finding = |id: &str, code: &str, v: bool| observation(id, LOCAL, code, json!({"valueBoolean": v}));
    assert_eq!(case_cell(vec![finding("f1", "gottron", false)], "rash"), "no");
    assert_eq!(
        case_cell(
            vec![finding("f1", "gottron", false), finding("f2", "heliotrope", true)],
            "rash"
        ),
        "yes"
    );
    assert_eq!(case_cell(vec![], "rash"), "unknown");
    let hpo = observation(
        "f1",
        "http://purl.obolibrary.org/obo/hp",
        "HP:0003701",
        json!({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "373066001"}]}}),
    );
    assert_eq!(case_cell(vec![hpo], "proximal_weakness"), "yes");
    let mri = vec![finding("m1", "mri-edema", true), finding("m2", "mri-fatty", true)];
    assert_eq!(case_cell(mri, "mri_thigh"), "edema_and_fatty");
    assert_eq!(
        case_cell(
            vec![finding("m1", "mri-edema", false), finding("m2", "mri-fatty", false)],
            "mri_thigh"
        ),
        "normal"
    );
    let gottron_problem = json!({"resourceType": "Condition", "id": "c9", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.4"}]}, "subject": {"reference": "Patient/p1"}});
    assert_eq!(case_cell(vec![gottron_problem], "rash"), "yes");
}

#[test]
fn outcome_observation_then_clinical_status() {
    let outcome = |code: &str| {
        observation(
            "x1",
            LOCAL,
            "imnm-outcome",
            json!({"valueCodeableConcept": {"coding": [{"system": SCT, "code": code}]}}),
        )
    };
    assert_eq!(case_cell(vec![outcome("103337004")], "outcome"), "partial_remission");
    assert_eq!(case_cell(vec![outcome("359746009")], "outcome"), "no_remission");
    let mut c = imnm_condition("c1", "p1");
    c["clinicalStatus"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "remission"}]});
    assert_eq!(
        crate::support::cell(&run(&[patient("p1"), c]).0.rows.all().unwrap()[0], "outcome"),
        "complete_remission"
    );
    assert_eq!(case_cell(vec![], "outcome"), "unknown");
}

fn med(resource_type: &str, id: &str, status: &str, medication: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"resourceType": resource_type, "id": id, "status": status});
    r["subject"] = json!({"reference": "Patient/p1"});
    if resource_type == "MedicationRequest" {
        r["intent"] = json!("order");
    }
    if resource_type == "MedicationAdministration" {
        r["effectiveDateTime"] = json!("2015-04-01");
    }
    for (k, v) in medication.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn rx(code: &str) -> serde_json::Value {
    json!({"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]}})
}

#[test]
fn each_medication_resource_type_gives_exposure() {
    assert_eq!(
        case_cell(
            vec![med("MedicationStatement", "m1", "active", rx("8640"))],
            "glucocorticoid"
        ),
        "yes"
    );
    assert_eq!(
        case_cell(
            vec![med("MedicationRequest", "m1", "active", rx("105586"))],
            "methotrexate"
        ),
        "yes"
    );
    assert_eq!(
        case_cell(
            vec![med("MedicationAdministration", "m1", "completed", rx("121191"))],
            "rituximab"
        ),
        "yes"
    );
    assert_eq!(
        case_cell(vec![med("MedicationDispense", "m1", "completed", rx("5666"))], "ivig"),
        "yes"
    );
    assert_eq!(case_cell(vec![], "ivig"), "no");
}

#[test]
fn medication_reference_contained_atc_and_text() {
    let medication = json!({"resourceType": "Medication", "id": "med-mtx", "code": {"coding": [{"system": RXNORM, "code": "105586", "display": "methotrexate 2.5 MG Oral Tablet"}]}});
    let by_ref = med(
        "MedicationRequest",
        "m1",
        "active",
        json!({"medicationReference": {"reference": "Medication/med-mtx"}}),
    );
    assert_eq!(
        case_cell(vec![by_ref.clone(), medication.clone()], "methotrexate"),
        "yes"
    );
    let mut contained = med(
        "MedicationAdministration",
        "m2",
        "completed",
        json!({"medicationReference": {"reference": "#c1"}}),
    );
    contained["contained"] =
        json!([{"resourceType": "Medication", "id": "c1", "code": {"coding": [{"system": RXNORM, "code": "6902"}]}}]);
    assert_eq!(case_cell(vec![contained], "glucocorticoid"), "yes");
    let atc = med(
        "MedicationStatement",
        "m3",
        "active",
        json!({"medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L04AX03"}]}}),
    );
    assert_eq!(case_cell(vec![atc], "methotrexate"), "yes");
    let text = med(
        "MedicationStatement",
        "m4",
        "active",
        json!({"medicationCodeableConcept": {"text": "Privigen 10% IV infusion"}}),
    );
    assert_eq!(case_cell(vec![text], "ivig"), "yes");
    let scd_text = med(
        "MedicationStatement",
        "m5",
        "active",
        json!({"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "999999", "display": "predniSONE 20 MG Oral Tablet"}]}}),
    );
    assert_eq!(case_cell(vec![scd_text], "glucocorticoid"), "yes");
}

#[test]
fn excluded_medication_statuses_do_not_count() {
    for (t, status) in [
        ("MedicationStatement", "entered-in-error"),
        ("MedicationStatement", "not-taken"),
        ("MedicationRequest", "cancelled"),
        ("MedicationRequest", "entered-in-error"),
        ("MedicationAdministration", "not-done"),
        ("MedicationDispense", "cancelled"),
    ] {
        assert_eq!(
            case_cell(vec![med(t, "m1", status, rx("121191"))], "rituximab"),
            "no",
            "{t} {status}"
        );
    }
}

/// CK as an interface engine sends it: a number as text, with or without
/// thousands commas and a unit; the unit from the reference range otherwise;
/// a bounded result counted at its bound with a warning; words reported.
#[test]
fn ck_numbers_sent_as_text_are_read() {
    let text = |id: &str, v: &str, extra: serde_json::Value| {
        let mut o = crate::support::observation(id, "http://loinc.org", "2157-6", json!({"valueString": v}));
        o["effectiveDateTime"] = json!("2016-04-05");
        if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        o
    };
    let range =
        json!({"referenceRange": [{"low": {"value": 20, "unit": "U/L"}, "high": {"value": 200, "unit": "U/L"}}]});
    let cases = [
        (vec![text("o1", "3988", range.clone())], "3988"),
        (vec![text("o1", "3,988 U/L", json!({}))], "3988"),
        (
            vec![text("o1", "3988.5 IU/L", json!({})), text("o2", "1200", range.clone())],
            "3988.5",
        ),
    ];
    for (obs, want) in cases {
        assert_eq!(case_cell(obs, "ck_peak_u_per_l"), want);
    }
    // A bound counts at the bound, with a warning naming the comparator rule.
    let mut resources = vec![
        crate::support::patient("p1"),
        crate::support::imnm_condition("c1", "p1"),
    ];
    resources.push(text("o1", ">13000", range.clone()));
    resources.push(text("o2", "no result", range.clone()));
    resources.push(text("o3", "4000", json!({})));
    let (cohort, issues) = crate::support::run(&resources);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_peak_u_per_l"),
        "13000"
    );
    assert_eq!(crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_count"), "1");
    let code = |i: &imnm_fhir::report::Issue| serde_json::to_value(i.code).unwrap();
    let bound = issues
        .iter()
        .find(|i| code(i) == "comparator")
        .expect("a comparator warning");
    assert_eq!(bound.location.to_string(), "Observation/o1");
    let words = issues
        .iter()
        .find(|i| i.location == "Observation/o2")
        .expect("words reported");
    assert_eq!(words.fhir_path.as_deref(), Some("Observation.valueString"));
    let no_unit = issues
        .iter()
        .find(|i| i.location == "Observation/o3")
        .expect("no unit reported");
    assert_eq!(code(no_unit), "unit-not-convertible");
}

/// An antibody quantity in a unit no cutoff knows (CU) is read from its
/// interpretation flag (abnormal/high positive, normal/low negative); an
/// unknown flag is reported, never silently dropped; lab strings read.
#[test]
fn antibody_flags_and_lab_strings() {
    let v3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
    let flagged = |flag: &str| {
        json!({"valueQuantity": {"value": 87, "unit": "CU"},
            "interpretation": [{"coding": [{"system": v3, "code": flag}]}]})
    };
    for (flag, want) in [
        ("A", "positive"),
        ("HH", "positive"),
        ("N", "negative"),
        ("L", "negative"),
    ] {
        let got = case_cell(vec![observation("a1", LOINC, "33921-8", flagged(flag))], "anti_srp");
        assert_eq!(got, want, "{flag}");
    }
    let mut resources = vec![patient("p1"), imnm_condition("c1", "p1")];
    resources.push(observation("a1", LOINC, "33921-8", flagged("XYZ")));
    let (cohort, issues) = run(&resources);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "anti_srp"),
        "not_tested"
    );
    let issue = issues
        .iter()
        .find(|i| i.location == "Observation/a1")
        .expect("an issue, not silence");
    assert_eq!(issue.fhir_path.as_deref(), Some("Observation.interpretation"));
    for (text, want) in [
        ("DETECTED", "positive"),
        ("Not detected", "negative"),
        ("POSITIVE (>200 CU)", "positive"),
        ("Weakly positive", "positive"),
        ("pos", "positive"),
    ] {
        let got = case_cell(
            vec![observation("a1", LOINC, "33921-8", json!({"valueString": text}))],
            "anti_srp",
        );
        assert_eq!(got, want, "{text}");
    }
}
