//! Local codes through FHIR ConceptMaps (issue 24 item 5): a copy of
//! `mappings/` with the example ConceptMap of `examples/conceptmaps/` reads a
//! CK result, a methotrexate statement and an IMNM problem-list entry coded
//! only with hospital A's local codes into the cohort (NDJSON, so through the byte-level prefilter too),
//! provenance names the map; without the map they are not read; a bad map
//! exits 2 naming file and element, in `cohort` and in `mappings check`.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{copy_dir, imnm, imnm_condition, patient, read_ndjson, root};

const MAP: &str = "examples/conceptmaps/hospital-a-local-codes.json";
const MAP_URL: &str = "http://hospital-a.example/fhir/ConceptMap/local-codes";
const CASE: &str = "cm-1";
/// A patient whose IMNM diagnosis is only a local problem-list code.
const LOCAL_CASE: &str = "cm-2";

/// A copy of the built-in mappings with `maps` as `conceptmaps/<name>`.
fn mappings_with(dir: &Path, maps: &[(&str, String)]) {
    copy_dir(&root().join("mappings"), dir);
    std::fs::create_dir_all(dir.join("conceptmaps")).unwrap();
    for (name, text) in maps {
        std::fs::write(dir.join("conceptmaps").join(name), text).unwrap();
    }
}

/// A case whose CK and methotrexate carry only hospital A's local codes.
fn local_resources() -> Vec<Value> {
    vec![
        patient(CASE),
        imnm_condition("cm-c", CASE),
        json!({"resourceType": "Observation", "id": "cm-ck", "status": "final",
            "code": {"coding": [{"system": "http://hospital-a.example/lab", "code": "CK-TOTAL"}]},
            "subject": {"reference": format!("Patient/{CASE}")}, "effectiveDateTime": "2015-02-01",
            "valueQuantity": {"value": 8123, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}),
        json!({"resourceType": "MedicationStatement", "id": "cm-mtx", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": "http://hospital-a.example/pharmacy", "code": "MTX-2.5"}]},
            "subject": {"reference": format!("Patient/{CASE}")}, "effectiveDateTime": "2015-04-01"}),
        patient(LOCAL_CASE),
        json!({"resourceType": "Condition", "id": "cm-c2",
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://hospital-a.example/problems", "code": "MYOSITIS-NEC"}]},
            "subject": {"reference": format!("Patient/{LOCAL_CASE}")}, "onsetDateTime": "2016-01-01"}),
    ]
}

/// The cohort's CK peak and methotrexate of [`CASE`], whether [`LOCAL_CASE`] is a case, and provenance.
fn cohort(d: &Path, mappings: &str) -> (String, String, bool, Vec<Value>) {
    let lines: Vec<String> = local_resources().iter().map(Value::to_string).collect();
    std::fs::write(d.join("local.ndjson"), lines.join("\n") + "\n").unwrap();
    let out = format!("out-{mappings}");
    let o = imnm(
        &[
            "cohort",
            "--mappings",
            mappings,
            "--input",
            "local.ndjson",
            "--out",
            &out,
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = csv::Reader::from_path(d.join(&out).join("cohort.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let at = |n: &str| header.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let row = rows.iter().find(|x| &x[at("patient_id")] == CASE).unwrap();
    let local_case = rows.iter().any(|x| &x[at("patient_id")] == LOCAL_CASE);
    let prov = read_ndjson(&d.join(&out).join("provenance.ndjson"));
    (
        row[at("ck_peak_u_per_l")].to_string(),
        row[at("methotrexate")].to_string(),
        local_case,
        prov,
    )
}

#[test]
fn local_codes_are_read_through_a_conceptmap() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let example = std::fs::read_to_string(root().join(MAP)).unwrap();
    // A looser target (narrower) is not used: it is counted as skipped.
    let narrower = example
        .replace("\"CK-TOTAL\"", "\"CK-ANY\"")
        .replace("\"equivalent\"", "\"narrower\"");
    mappings_with(&d.join("m"), &[("site-a.json", example), ("loose.json", narrower)]);
    copy_dir(&root().join("mappings"), &d.join("plain"));
    let check = imnm(&["mappings", "check", "m"], d);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains("2 ConceptMap(s): 3 local codes read as value set codes, 3 targets skipped by equivalence")
            && stdout.contains(&format!("conceptmaps/site-a.json ({MAP_URL})")),
        "{stdout}"
    );
    let (ck, mtx, local_case, prov) = cohort(d, "m");
    assert_eq!((ck.as_str(), mtx.as_str(), local_case), ("8123", "yes", true));
    for column in ["ck_peak_u_per_l", "methotrexate"] {
        let p = prov
            .iter()
            .find(|p| p["patient_id"] == CASE && p["column"] == column)
            .unwrap();
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&format!("by ConceptMap {MAP_URL}")), "{column}: {p}");
    }
    // The same resources with the built-in value sets alone: not read.
    let (ck, mtx, local_case, _) = cohort(d, "plain");
    assert_eq!((ck.as_str(), mtx.as_str(), local_case), ("", "no", false));
}

#[test]
fn a_bad_conceptmap_exits_2_naming_file_and_element() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let example = std::fs::read_to_string(root().join(MAP)).unwrap();
    let unknown_target = example.replace("\"2157-6\"", "\"9999-9\"");
    mappings_with(
        &d.join("m"),
        &[
            ("unknown-target.json", unknown_target),
            ("not-json.json", "{\"resourceType\": \"ConceptMap\", ".into()),
            ("patient.json", patient("x").to_string()),
            (
                "no-equivalence.json",
                example.replace(", \"equivalence\": \"equivalent\"", ""),
            ),
            (
                "depends-on.json",
                example.replacen(
                    "\"equivalence\": \"equivalent\"",
                    "\"equivalence\": \"equivalent\", \"dependsOn\": [{\"property\": \"specimen\", \"value\": \"serum\"}]",
                    1,
                ),
            ),
        ],
    );
    let expected = [
        "conceptmaps/unknown-target.json:group[0].element[0].target[0] (CK-TOTAL): target http://loinc.org|9999-9 is in no value set of these mappings",
        "conceptmaps/not-json.json: not a ConceptMap in JSON: EOF while parsing",
        "conceptmaps/patient.json: resourceType \"Patient\", not a ConceptMap",
        "conceptmaps/no-equivalence.json:group[2].element[0].target[0] (MTX-2.5): no equivalence (R4 requires one)",
        "conceptmaps/depends-on.json:group[0].element[0].target[0] (CK-TOTAL): dependsOn is not read",
    ];
    let lines: Vec<String> = local_resources().iter().map(Value::to_string).collect();
    std::fs::write(d.join("local.ndjson"), lines.join("\n") + "\n").unwrap();
    for args in [
        &["mappings", "check", "m"][..],
        &["cohort", "--mappings", "m", "--input", "local.ndjson", "--out", "out"][..],
    ] {
        let o = imnm(args, d);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        for e in expected {
            assert!(stderr.contains(e), "{args:?}: {e} in {stderr}");
        }
    }
}

/// An antibody result coded locally gets the cutoff of the assay its target
/// code names (`mappings/cutoffs.toml`, read from the loaded set).
#[test]
fn a_local_antibody_code_uses_its_targets_assay_cutoff() {
    let tmp = tempfile::tempdir().unwrap();
    let cm = json!({"resourceType": "ConceptMap", "url": "http://hospital-a.example/fhir/ConceptMap/ab",
        "group": [{"source": "http://hospital-a.example/lab", "target": "http://loinc.org",
            "element": [{"code": "HMGCR", "target": [{"code": "93493-5", "equivalence": "equivalent"}]}]}]});
    mappings_with(tmp.path(), &[("ab.json", cm.to_string())]);
    let m = imnm_fhir::mapping::MappingSet::load_dir(tmp.path()).unwrap();
    let assay = m.assays.iter().find(|a| a.id == "arup-hmgcr-igg-elisa").unwrap();
    let (low, high) = (assay.negative_below / 2.0, assay.positive_from * 2.0);
    for (value, expected) in [(low, "negative"), (high, "positive")] {
        let obs = crate::support::observation(
            "ab1",
            "http://hospital-a.example/lab",
            "HMGCR",
            json!({"valueQuantity": {"value": value, "unit": "U"}}),
        );
        let text = crate::support::bundle(&[patient("p1"), imnm_condition("c1", "p1"), obs]);
        let collected = imnm_fhir::pipeline::collect_json_text("t.json", &text, &m);
        let mut issues = collected.issues;
        let cohort = imnm_fhir::cohort::build::build(&collected.patients, &m, &mut issues).unwrap();
        assert_eq!(
            crate::support::cell(&cohort.rows.all().unwrap()[0], "anti_hmgcr"),
            expected,
            "{value} U"
        );
    }
}

/// A registry config over a store holding [`local_resources`] at site `hospital-a`, with `registry` lines.
fn registry_with(d: &Path, registry: &str) {
    let mut store = imnm_fhir::store::Store::open(&d.join("registry.db")).unwrap();
    store.write_page("hospital-a", &local_resources()).unwrap();
    let config = format!(
        "store = \"registry.db\"\n[registry]\n{registry}\n\n[[site]]\nid = \"hospital-a\"\nname = \"A\"\n\
         base_url = \"https://ehr-a.example.org/fhir\"\n"
    );
    std::fs::write(d.join("registry.toml"), config).unwrap();
}

/// `[registry] concept_maps` in a registry config: `cohort --config` reads the
/// store's local codes through them (without the key, not), `registry check`
/// counts them, and a bad map exits 2 naming its path and element in both.
#[test]
fn registry_concept_maps_are_loaded_with_the_mappings() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("maps")).unwrap();
    let example = std::fs::read_to_string(root().join(MAP)).unwrap();
    std::fs::write(d.join("maps/hospital-a.json"), &example).unwrap();
    let ck = local_resources().into_iter().find(|r| r["id"] == "cm-ck").unwrap()["valueQuantity"]["value"].to_string();
    let cases = |key: &str| {
        registry_with(d, key);
        let o = imnm(
            &["cohort", "--config", "registry.toml", "--out", "out", "--no-publish"],
            d,
        );
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(d.join("out/cohort.csv")).unwrap()
    };
    let with = cases("concept_maps = [\"maps/hospital-a.json\"]");
    assert!(with.contains(&format!(",{ck},")), "{with}");
    assert!(with.contains(LOCAL_CASE), "{with}");
    let o = imnm(&["registry", "check", "registry.toml"], d);
    assert!(String::from_utf8_lossy(&o.stderr).contains("concept_maps: 1 ConceptMap(s)"));
    let without = cases("");
    assert!(
        !without.contains(&format!(",{ck},")) && !without.contains(LOCAL_CASE),
        "{without}"
    );

    std::fs::write(d.join("maps/bad.json"), example.replace("\"2157-6\"", "\"9999-9\"")).unwrap();
    registry_with(d, "concept_maps = [\"maps/bad.json\", \"maps/missing.json\"]");
    for args in [
        &["registry", "check", "registry.toml"][..],
        &["cohort", "--config", "registry.toml", "--out", "out"][..],
    ] {
        let o = imnm(args, d);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("maps/missing.json: cannot read"), "{args:?}: {stderr}");
    }
    registry_with(d, "concept_maps = [\"maps/bad.json\"]");
    let o = imnm(&["cohort", "--config", "registry.toml", "--out", "out"], d);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "maps/bad.json:group[0].element[0].target[0] (CK-TOTAL): target http://loinc.org|9999-9 is in no value set"
        ),
        "{stderr}"
    );
    registry_with(d, "concept_maps = [\"maps/hospital-a.toml\", 3]");
    let o = imnm(&["registry", "check", "registry.toml"], d);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`concept_maps`: each is a FHIR R4 ConceptMap in JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`concept_maps`: each must be a string, not an integer"),
        "{stderr}"
    );
}
