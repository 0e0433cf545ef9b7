//! Antibody results by unit form (issue 24 item 4): the per-assay cutoffs of
//! `mappings/cutoffs.toml` for CU, U, U/mL, AU/mL, [arb'U]/mL and titres 1:N,
//! an assay keyed by method, the result's own referenceRange when no cutoff
//! applies, the order of evidence, and the loader refusing ambiguous assays.
//! Expected values are derived from the loaded cutoffs, not restated.

use imnm_fhir::mapping::MappingSet;
use serde_json::{json, Value};

use crate::support::{case_cell, cell, copy_dir, imnm, imnm_condition, mappings, observation, patient, root};

const LOINC: &str = "http://loinc.org";
const SITE_B: &str = "https://lab.site-b.example.org/codes";
const UCUM: &str = "http://unitsofmeasure.org";
const V3: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// `(negative_below, positive_from)` of assay `id`.
fn cutoffs_of(m: &MappingSet, id: &str) -> (f64, f64) {
    let a = m.assays.iter().find(|a| a.id == id).expect("assay in cutoffs.toml");
    (a.negative_below, a.positive_from)
}

/// A value surely below the assay's negative cutoff, and one surely positive.
fn below_and_above(m: &MappingSet, id: &str) -> (f64, f64) {
    let (below, from) = cutoffs_of(m, id);
    (below / 2.0, from * 2.0)
}

fn antibody(system: &str, code: &str, extra: Value) -> Value {
    observation("a1", system, code, extra)
}

/// The cell of the antibody `code` is an assay of.
fn status(system: &str, code: &str, extra: Value) -> String {
    let column = match code {
        "53011-3" | "33921-8" => "anti_srp",
        _ => "anti_hmgcr",
    };
    case_cell(vec![antibody(system, code, extra)], column)
}

#[test]
fn each_unit_form_reads_against_its_assay_cutoff() {
    let m = mappings();
    let forms: [(&str, &str, &str, &str); 6] = [
        (SITE_B, "HMGCR-AB", "CU", "mayo-hmgcr-cia"),
        (LOINC, "93493-5", "U", "arup-hmgcr-igg-elisa"),
        (SITE_B, "HMGCR-AB", "U/mL", "mayo-hmgcr-cia"),
        (LOINC, "93493-5", "AU/mL", "arup-hmgcr-igg-elisa"),
        (LOINC, "93493-5", "[arb'U]/mL", "arup-hmgcr-igg-elisa"),
        (SITE_B, "HMGCR-AB", "[arb'U]/mL", "mayo-hmgcr-cia"),
    ];
    for (system, code, unit, assay) in forms {
        let (low, high) = below_and_above(&m, assay);
        let q = |v: f64| json!({"valueQuantity": {"value": v, "unit": unit}});
        assert_eq!(status(system, code, q(low)), "negative", "{code} {unit}");
        assert_eq!(status(system, code, q(high)), "positive", "{code} {unit}");
        // The same as a UCUM code without a unit text, and as a number sent as text.
        let coded = json!({"valueQuantity": {"value": high, "system": UCUM, "code": unit}});
        assert_eq!(status(system, code, coded), "positive", "{code} {unit} (UCUM code)");
        let text = json!({"valueString": format!("{low} {unit}")});
        assert_eq!(status(system, code, text), "negative", "{code} {unit} (text)");
    }
    let (below, _) = cutoffs_of(&m, "mayo-hmgcr-cia");
    let bounded = json!({"valueString": format!("<{below} CU")});
    assert_eq!(status(SITE_B, "HMGCR-AB", bounded), "negative");
}

#[test]
fn titres_read_as_their_denominator() {
    let m = mappings();
    let (below, from) = cutoffs_of(&m, "srp-iif-titre");
    let titre = |n: f64| format!("1:{n}");
    for (extra, want) in [
        (json!({"valueString": titre(from * 8.0)}), "positive"),
        (json!({"valueString": format!("<{}", titre(below))}), "negative"),
        (
            json!({"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": below / 2.0}}}),
            "negative",
        ),
        (json!({"valueQuantity": {"value": from, "unit": "{titer}"}}), "positive"),
    ] {
        assert_eq!(status(LOINC, "53011-3", extra.clone()), want, "{extra}");
    }
}

/// Without a cutoff for the code and unit (HMGCR by LOINC in IU/mL), the
/// result's own reference range decides, before its interpretation flag.
#[test]
fn the_reference_range_decides_where_no_cutoff_applies() {
    let high = 20.0;
    let with_range =
        |v: f64, range: Value| json!({"valueQuantity": {"value": v, "unit": "IU/mL"}, "referenceRange": [range]});
    let limit = json!({"high": {"value": high, "unit": "IU/mL"}});
    let text = json!({"text": format!("<{high}")});
    for (extra, want) in [
        (with_range(high * 2.0, limit.clone()), "positive"),
        (with_range(high, limit.clone()), "negative"),
        (with_range(high / 2.0, text.clone()), "negative"),
        (with_range(high, text), "positive"),
    ] {
        assert_eq!(status(LOINC, "93493-5", extra.clone()), want, "{extra}");
    }
    // The range outranks the flag; a range in another unit is not used.
    let mut flagged = with_range(high * 2.0, limit);
    flagged["interpretation"] = json!([{"coding": [{"system": V3, "code": "N"}]}]);
    assert_eq!(status(LOINC, "93493-5", flagged.clone()), "positive");
    flagged["referenceRange"] = json!([{"high": {"value": high, "unit": "mg/L"}}]);
    assert_eq!(status(LOINC, "93493-5", flagged), "negative");
}

#[test]
fn a_cutoff_outranks_the_reference_range_and_nothing_vanishes() {
    let m = mappings();
    let (_, from) = cutoffs_of(&m, "arup-hmgcr-igg-elisa");
    let extra = json!({"valueQuantity": {"value": from, "unit": "U"},
        "referenceRange": [{"high": {"value": from * 10.0, "unit": "U"}}]});
    assert_eq!(status(LOINC, "93493-5", extra), "positive");
    let bare = antibody(
        LOINC,
        "93493-5",
        json!({"valueQuantity": {"value": 7, "unit": "IU/mL"}}),
    );
    let (cohort, issues) = crate::support::run(&[patient("p1"), imnm_condition("c1", "p1"), bare]);
    assert_eq!(cell(&cohort.rows.all().unwrap()[0], "anti_hmgcr"), "not_tested");
    let issue = issues
        .iter()
        .find(|i| i.location.input == "Observation/a1")
        .expect("an issue, not silence");
    assert_eq!(issue.code, imnm_fhir::report::IssueCode::NoCutoff);
    assert_eq!(issue.fhir_path.as_deref(), Some("Observation.value[x]"));
}

/// A copy of the built-in mappings with `extra` appended to cutoffs.toml.
fn mappings_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("mappings"), dir.path());
    let path = dir.path().join("cutoffs.toml");
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    std::fs::write(path, text).unwrap();
    dir
}

#[test]
fn an_assay_keyed_by_method_applies_to_that_method_only() {
    let dir = mappings_with(
        r#"
[[assay]]
id = "srp-line-blot"
valueset = "anti-srp"
codes = [{ system = "http://loinc.org", code = "33921-8" }]
units = ["U"]
method = { system = "https://lab.example.org/methods", code = "line-blot" }
negative_below = 15.0
positive_from = 15.0
source = "test"
"#,
    );
    let m = MappingSet::load_dir(dir.path()).unwrap();
    let (_, from) = cutoffs_of(&m, "srp-line-blot");
    let read = |method: Option<&str>| {
        let mut o = antibody(LOINC, "33921-8", json!({"valueQuantity": {"value": from, "unit": "U"}}));
        if let Some(code) = method {
            o["method"] = json!({"coding": [{"system": "https://lab.example.org/methods", "code": code}]});
        }
        let text = crate::support::bundle(&[patient("p1"), imnm_condition("c1", "p1"), o]);
        let collected = imnm_fhir::pipeline::collect_json_text("t.json", &text, &m);
        let mut issues = collected.issues;
        let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).unwrap();
        crate::support::cell(&cohort.rows.all().unwrap()[0], "anti_srp")
    };
    assert_eq!(read(Some("line-blot")), "positive");
    assert_eq!(read(Some("elisa")), "not_tested");
    assert_eq!(read(None), "not_tested");
}

#[test]
fn mappings_check_refuses_assays_that_overlap_and_empty_units() {
    let dir = mappings_with(
        r#"
[[assay]]
id = "second-hmgcr"
valueset = "anti-hmgcr"
codes = [{ system = "http://loinc.org", code = "93493-5" }]
units = ["u", " "]
negative_below = 5.0
positive_from = 5.0
source = "test"
"#,
    );
    let out = imnm(&["mappings", "check", dir.path().to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cutoffs.toml:second-hmgcr: applies to a code, unit and method assay \"arup-hmgcr-igg-elisa\""),
        "{err}"
    );
    assert!(err.contains("cutoffs.toml:second-hmgcr: an empty unit"), "{err}");
    let ok = imnm(&["mappings", "check"], &root());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
