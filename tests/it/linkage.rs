//! The same child at two hospitals (a referral, issue 23): `--link-identifier`
//! makes patients of different sites that share an identifier one case
//! (site `a+b`), pooled from both sites' data; without it nothing is merged.
//! The identifier's value reaches no output.

use serde_json::{json, Value};

use crate::cli::table1;
use crate::support::{imnm, imnm_condition, observation, patient, read_ndjson};

const NHS: &str = "https://nhs.example/nhs-number";
const NHS_NUMBER: &str = "943 476 5919";

/// A patient `id` with the shared NHS number.
fn referred(id: &str, gender: &str) -> Value {
    let mut p = patient(id);
    p["gender"] = json!(gender);
    p["identifier"] = json!([{"system": NHS, "value": NHS_NUMBER}]);
    p
}

/// A CK result of `value` U/L for `patient`.
fn ck(id: &str, patient: &str, value: f64) -> Value {
    let mut o = observation(
        id,
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": value, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}),
    );
    o["subject"] = json!({"reference": format!("Patient/{patient}")});
    o
}

fn write_ndjson(path: &std::path::Path, resources: &[Value]) {
    let lines: Vec<String> = resources.iter().map(Value::to_string).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Site a: the child (pa) with the IMNM diagnosis. Site b: the child again
/// (pb, CK 5000 U/L, no diagnosis) and a case of its own (pc, CK 900).
/// Runs `imnm cohort` with `extra` arguments; gives the output folder.
fn run(tmp: &std::path::Path, extra: &[&str]) -> std::path::PathBuf {
    write_ndjson(
        &tmp.join("a.ndjson"),
        &[
            referred("pa", "female"),
            imnm_condition("c1", "pa"),
            ck("o1", "pa", 300.0),
        ],
    );
    let b = [
        referred("pb", "male"),
        ck("o2", "pb", 5000.0),
        patient("pc"),
        imnm_condition("c2", "pc"),
        ck("o3", "pc", 900.0),
    ];
    write_ndjson(&tmp.join("b.ndjson"), &b);
    let mut args = vec![
        "cohort",
        "--input",
        "a=a.ndjson",
        "--input",
        "b=b.ndjson",
        "--out",
        "out",
    ];
    args.extend(extra);
    let o = imnm(&args, tmp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    tmp.join("out")
}

/// cohort.csv as maps of column to cell.
fn rows(out: &std::path::Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(out.join("cohort.csv")).unwrap();
    r.deserialize().map(Result::unwrap).collect()
}

#[test]
fn a_child_at_two_sites_is_one_case_when_linked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["--link-identifier", NHS]);
    let rows = rows(&out);
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["site"].as_str(), r["patient_id"].as_str()))
        .collect();
    assert_eq!(keys, [("b", "pc"), ("a+b", "pa+pb")]);
    let linked = &rows[1];
    assert_eq!(linked["ck_peak_u_per_l"], "5000", "the peak over both sites");
    assert_eq!(linked["ck_count"], "2");
    assert_eq!(
        linked["diagnosis_code"], "http://snomed.info/sct|715863001",
        "the diagnosis from a"
    );
    assert_eq!(linked["sex"], "female", "demographics from the first site");
    // Provenance: one site `a+b`, sources from both sites, each named with its site.
    let prov = read_ndjson(&out.join("provenance.ndjson"));
    let of_linked: Vec<&Value> = prov.iter().filter(|p| p["patient_id"] == "pa+pb").collect();
    assert!(of_linked.iter().all(|p| p["site"] == "a+b"));
    let sources: Vec<&str> = of_linked
        .iter()
        .flat_map(|p| p["sources"].as_array().unwrap())
        .map(|s| s.as_str().unwrap())
        .collect();
    for s in ["a:Condition/c1", "b:Observation/o2", "a:Patient/pa"] {
        assert!(sources.contains(&s), "{s} in {sources:?}");
    }
    // sources.ndjson: each resource at its own site.
    let written: Vec<(String, String)> = read_ndjson(&out.join("sources.ndjson"))
        .iter()
        .map(|s| {
            (
                s["site"].as_str().unwrap().to_string(),
                format!(
                    "{}/{}",
                    s["resource"]["resourceType"].as_str().unwrap(),
                    s["resource"]["id"].as_str().unwrap()
                ),
            )
        })
        .collect();
    for (site, r) in [
        ("a", "Condition/c1"),
        ("a", "Patient/pa"),
        ("b", "Observation/o2"),
        ("b", "Observation/o1"),
    ] {
        let want = (site.to_string(), r.to_string());
        assert_eq!(
            written.contains(&want),
            r != "Observation/o1",
            "{want:?} in {written:?}"
        );
    }
    assert!(
        written.contains(&("a".into(), "Observation/o1".into())),
        "a's CK counted, at a"
    );
    // Table 1: pooled once, per site at each of its sites.
    let t1 = table1(&out);
    let n = |site: &str| t1.iter().find(|r| r["site"] == site && r["variable"] == "n").unwrap()["n"].clone();
    assert_eq!((n("all"), n("a"), n("b")), (json!(2), json!(1), json!(2)));
    assert!(t1.iter().all(|r| r["site"] != "a+b"));
    let md = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(
        md.starts_with("| Characteristic | All sites (n=2) | a (n=1) | b (n=2) |"),
        "{md}"
    );
    let completeness = std::fs::read_to_string(out.join("completeness.csv")).unwrap();
    assert!(
        !completeness.contains("a+b") && !completeness.contains("a:"),
        "{completeness}"
    );
    assert_no_identifier(&out);
}

/// Site b holds the child twice (pb, and pd with the same NHS number): the
/// group a, b, b is not linked at all, whichever order it is read in, and a
/// `link-conflict` warning names its patients (never the number).
#[test]
fn a_group_with_two_patients_of_one_site_is_not_linked() {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &[]);
    let mut b = read_ndjson(&tmp.path().join("b.ndjson"));
    b.insert(0, referred("pd", "male"));
    write_ndjson(&tmp.path().join("b.ndjson"), &b);
    let args = [
        "cohort",
        "--input",
        "a=a.ndjson",
        "--input",
        "b=b.ndjson",
        "--out",
        "conflict",
        "--link-identifier",
        NHS,
    ];
    let o = imnm(&args, tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("conflict");
    let keys: Vec<(String, String)> = rows(&out)
        .iter()
        .map(|r| (r["site"].clone(), r["patient_id"].clone()))
        .collect();
    assert_eq!(keys, [("a".into(), "pa".into()), ("b".into(), "pc".into())]);
    let issues = read_ndjson(&out.join("issues.ndjson"));
    let conflict: Vec<&Value> = issues.iter().filter(|i| i["code"] == "link-conflict").collect();
    assert_eq!(conflict.len(), 1, "{issues:#?}");
    let msg = conflict[0]["message"].as_str().unwrap();
    assert!(msg.contains("a:Patient/pa, b:Patient/pb, b:Patient/pd"), "{msg}");
    assert_eq!(conflict[0]["site"], "a+b");
    assert_no_identifier(&out);
}

#[test]
fn without_linkage_the_two_patients_stay_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &[]);
    let rows = rows(&out);
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["site"].as_str(), r["patient_id"].as_str()))
        .collect();
    assert_eq!(keys, [("a", "pa"), ("b", "pc")], "pb alone is no case");
    assert_eq!(rows[0]["ck_peak_u_per_l"], "300", "a's own CK only");
    let t1 = table1(&out);
    let n = |site: &str| t1.iter().find(|r| r["site"] == site && r["variable"] == "n").unwrap()["n"].clone();
    assert_eq!((n("all"), n("a"), n("b")), (json!(2), json!(1), json!(1)));
    assert_no_identifier(&out);
}

#[test]
fn cohort_config_reads_the_registry_store() {
    let tmp = tempfile::tempdir().unwrap();
    let o = imnm(&["demo", "--out", "demo"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = format!(
        "store = \"demo/imnm-demo.db\"\n[registry]\nlink_identifiers = [\"{NHS}\"]\n\n\
         [[site]]\nid = \"a\"\nname = \"A\"\nbase_url = \"https://ehr-a.example.org/fhir\"\n"
    );
    std::fs::write(tmp.path().join("registry.toml"), config).unwrap();
    let o = imnm(&["cohort", "--config", "registry.toml", "--out", "out"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The demo's children share no NHS number: the store's 10 cases, none linked.
    let rows = rows(&tmp.path().join("out"));
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| !r["site"].contains('+')));
}

#[test]
fn the_study_bundle_export_drops_the_linking_identifier() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("a.ndjson");
    write_ndjson(
        &input,
        &[
            referred("pa", "female"),
            imnm_condition("c1", "pa"),
            ck("o1", "pa", 300.0),
        ],
    );
    let out = tmp.path().join("bundle");
    let opts = imnm_fhir::export::ExportOptions {
        input: imnm_fhir::pipeline::Input::Files(vec![input]),
        out: out.clone(),
        profile: Default::default(),
        min_cell: 5,
        site: "A".into(),
        threads: None,
    };
    let outcome = imnm_fhir::export::export(&opts, &crate::export::key(7), &crate::support::mappings());
    outcome.expect("export runs");
    let mut dirs = vec![out];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
            assert!(!text.contains(NHS_NUMBER) && !text.contains(NHS), "{}", path.display());
        }
    }
}

/// The shared identifier's value is in no output file; sources.ndjson is a
/// verbatim copy of the source resources, so it holds it only inside a
/// Patient's own `identifier`, as without linkage.
fn assert_no_identifier(out: &std::path::Path) {
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("sources.ndjson") {
            for s in read_ndjson(&path) {
                let mut r = s["resource"].clone();
                if let Some(o) = r.as_object_mut() {
                    o.remove("identifier");
                }
                assert!(!r.to_string().contains(NHS_NUMBER), "{r}");
            }
            continue;
        }
        assert!(
            !text.contains(NHS_NUMBER) && !text.contains("9434765919"),
            "{}",
            path.display()
        );
    }
}
