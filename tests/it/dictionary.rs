//! The data dictionary is data: two columns added to a copy of `mappings/` by
//! TOML alone (an exposure, tacrolimus, and a lab peak, aldolase) appear in
//! every output — cohort.csv, candidates.csv, Table 1, provenance,
//! completeness, Parquet, to-fhir + validate and back, export and merge — and a
//! rule whose kind does not fit its column is refused with file and rule.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{copy_dir, imnm, read_ndjson, root};

const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const LOINC: &str = "http://loinc.org";
/// A demo case with aldolase results, one with tacrolimus, and a demo candidate.
const ALDOLASE_CASE: &str = "12724064";
const TACROLIMUS_CASE: &str = "12724065";
const CANDIDATE: &str = "07e006bd-efa8-47cf-8384-2e46b4e2ce88";

fn append(path: &Path, text: &str) {
    let mut t = std::fs::read_to_string(path).unwrap();
    t.push_str(text);
    std::fs::write(path, t).unwrap();
}

/// A copy of the built-in mappings with tacrolimus and aldolase added, as a registry would.
fn extended_mappings(dir: &Path) {
    copy_dir(&root().join("mappings"), dir);
    append(
        &dir.join("codes/medications.toml"),
        &format!(
            "\n[[valueset]]\nid = \"tacrolimus\"\ndescription = \"Tacrolimus.\"\ncode = [\n  \
             {{ system = \"{RXNORM}\", code = \"42316\", display = \"tacrolimus\", source = \"test\", confidence = \"S\" }},\n]\n\
             text = [\"tacrolimus\", \"prograf\"]\n"
        ),
    );
    append(
        &dir.join("codes/labs.toml"),
        &format!(
            "\n[[valueset]]\nid = \"aldolase\"\ndescription = \"Aldolase in serum.\"\ncode = [\n  \
             {{ system = \"{LOINC}\", code = \"1761-6\", display = \"Aldolase\", source = \"lab catalogues (ARUP, Mayo)\", confidence = \"S\" }},\n]\n"
        ),
    );
    append(
        &dir.join("rules.toml"),
        "\n[[rule]]\nid = \"tacrolimus\"\ncolumn = \"tacrolimus\"\nkind = \"exposure\"\nvalueset = \"tacrolimus\"\n\
         \n[[rule]]\nid = \"aldolase-peak\"\ncolumn = \"aldolase_peak_u_per_l\"\nkind = \"lab-peak\"\n\
         valueset = \"aldolase\"\nquantity = \"catalytic-concentration\"\n",
    );
    let dict = std::fs::read_to_string(dir.join("dictionary.toml")).unwrap();
    let columns = "[[column]]\nname = \"tacrolimus\"\nkind = \"exposure\"\nlabel = \"Tacrolimus\"\n\
        levels = [\"yes\", \"no\"]\nfhir = { resource = \"MedicationStatement\", profile = \"imnm-medicationstatement\" }\n\n\
        [[column]]\nname = \"aldolase_peak_u_per_l\"\nkind = \"lab-peak\"\nlabel = \"Peak aldolase, U/L\"\nunit = \"U/L\"\n\
        fhir = { resource = \"Observation\", profile = \"imnm-ck-observation\", category = \"laboratory\" }\n\n\
        [[column]]\nname = \"aldolase_count\"\nkind = \"lab-count\"\nof = \"aldolase_peak_u_per_l\"\n\n[table1]\n";
    let dict = dict.replacen("\n[table1]\n", &format!("\n{columns}"), 1).replace(
        "  \"ivig\",\n",
        "  \"ivig\",\n  \"tacrolimus\",\n  \"aldolase_peak_u_per_l\",\n",
    );
    std::fs::write(dir.join("dictionary.toml"), dict).unwrap();
}

fn extra_resources() -> Vec<Value> {
    let aldolase = |id: &str, patient: &str, value: f64, date: &str| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "1761-6"}]},
            "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": date,
            "valueQuantity": {"value": value, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}})
    };
    vec![
        aldolase("ald-1", ALDOLASE_CASE, 12.5, "2019-05-01"),
        aldolase("ald-2", ALDOLASE_CASE, 20.0, "2019-06-01"),
        aldolase("ald-3", CANDIDATE, 30.0, "2020-01-01"),
        json!({"resourceType": "MedicationStatement", "id": "tac-1", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "42316"}], "text": "tacrolimus"},
            "subject": {"reference": format!("Patient/{TACROLIMUS_CASE}")}}),
    ]
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let mut rows = vec![r.headers().unwrap().iter().map(String::from).collect()];
    rows.extend(r.records().map(|x| x.unwrap().iter().map(String::from).collect()));
    rows
}

/// The cell of `column` in the row of `patient` (`key` is the id column's name).
fn csv_cell(rows: &[Vec<String>], key: &str, patient: &str, column: &str) -> String {
    let at = |name: &str| {
        rows[0]
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let row = rows[1..].iter().find(|r| r[at(key)] == patient).unwrap();
    row[at(column)].clone()
}

fn run(args: &[&str], cwd: &Path) -> String {
    let o = imnm(args, cwd);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn two_columns_added_by_toml_reach_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    extended_mappings(&d.join("m"));
    let extra: Vec<String> = extra_resources().iter().map(Value::to_string).collect();
    std::fs::write(d.join("extra.ndjson"), extra.join("\n") + "\n").unwrap();
    std::fs::copy(root().join("examples/demo-cohort/bundle.json"), d.join("demo.json")).unwrap();
    run(&["mappings", "check", "m"], d);
    let stdout = run(
        &[
            "cohort",
            "--mappings",
            "m",
            "--input",
            "demo.json",
            "--input",
            "extra.ndjson",
            "--out",
            "out",
            "--format",
            "both",
        ],
        d,
    );
    // cohort.csv: the new columns in dictionary order, filled from the new resources.
    let cohort = csv_rows(&d.join("out/cohort.csv"));
    let header = cohort[0].join(",");
    assert!(
        header.ends_with("ivig,outcome,tacrolimus,aldolase_peak_u_per_l,aldolase_count"),
        "{header}"
    );
    assert_eq!(csv_cell(&cohort, "patient_id", TACROLIMUS_CASE, "tacrolimus"), "yes");
    assert_eq!(csv_cell(&cohort, "patient_id", ALDOLASE_CASE, "tacrolimus"), "no");
    assert_eq!(
        csv_cell(&cohort, "patient_id", ALDOLASE_CASE, "aldolase_peak_u_per_l"),
        "20"
    );
    assert_eq!(csv_cell(&cohort, "patient_id", ALDOLASE_CASE, "aldolase_count"), "2");
    // candidates.csv: lab peaks and antibodies, the new peak among them.
    let cand = csv_rows(&d.join("out/candidates.csv"));
    assert_eq!(csv_cell(&cand, "patient_id", CANDIDATE, "aldolase_peak_u_per_l"), "30");
    // Table 1, printed and in both files.
    assert!(stdout.contains("| Tacrolimus: yes | 1 (10%) |"), "{stdout}");
    assert!(
        stdout.contains("| Peak aldolase, U/L, median (range) | 20 (20–20)"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(d.join("out/table1.md")).unwrap();
    assert!(md.contains("| Tacrolimus: yes | 1 (10%) |"), "{md}");
    let t1: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(d.join("out/table1.json")).unwrap()).unwrap();
    let row = t1.iter().find(|r| r["variable"] == "aldolase_peak_u_per_l").unwrap();
    assert_eq!((row["n"].as_u64(), row["missing"].as_u64()), (Some(1), Some(9)));
    // Provenance names the rule and the resources; sources.ndjson holds them.
    let prov = read_ndjson(&d.join("out/provenance.ndjson"));
    let tac = prov.iter().find(|p| p["column"] == "tacrolimus").unwrap();
    assert_eq!(
        (tac["rule"].as_str(), tac["sources"][0].as_str()),
        (Some("tacrolimus"), Some("MedicationStatement/tac-1"))
    );
    let ald = prov.iter().find(|p| p["column"] == "aldolase_peak_u_per_l").unwrap();
    assert_eq!(ald["sources"][0], "Observation/ald-2");
    let sources = std::fs::read_to_string(d.join("out/sources.ndjson")).unwrap();
    assert!(sources.contains("\"tac-1\"") && sources.contains("\"ald-2\""));
    // Completeness.
    let comp = csv_rows(&d.join("out/completeness.csv"));
    assert_eq!(comp[0][..3], ["site", "variable", "source"]);
    let share = |v: &str| comp[1..].iter().find(|r| r[1] == v && r[2] == "all").unwrap()[3].clone();
    assert_eq!(
        (share("tacrolimus"), share("aldolase_peak_u_per_l")),
        ("1".into(), "1".into())
    );
    // Parquet: the columns typed by kind; facts name the new column.
    parquet_has_the_columns(&d.join("out"));
    round_trip_through_fhir(d);
    export_and_merge(d);
}

fn parquet_has_the_columns(out: &Path) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(out.join("cohort.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<String> = schema.columns().iter().map(|c| c.name().to_string()).collect();
    let at = names.iter().position(|n| n == "aldolase_peak_u_per_l").unwrap();
    assert_eq!(schema.column(at).physical_type(), parquet::basic::Type::DOUBLE);
    assert!(names.contains(&"tacrolimus".to_string()));
    let facts = SerializedFileReader::new(std::fs::File::open(out.join("facts.parquet")).unwrap()).unwrap();
    let columns: Vec<String> = facts
        .get_row_iter(None)
        .unwrap()
        .filter_map(|r| match r.unwrap().get_column_iter().nth(2) {
            Some((_, parquet::record::Field::Str(s))) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(columns.iter().filter(|c| *c == "aldolase_peak_u_per_l").count(), 3);
    assert_eq!(columns.iter().filter(|c| *c == "tacrolimus").count(), 1);
}

/// to-fhir (validated against profiles whose ValueSets come from the copy), validate, and back.
fn round_trip_through_fhir(d: &Path) {
    run(
        &[
            "to-fhir",
            "--mappings",
            "m",
            "--cases",
            "out/cohort.csv",
            "--out",
            "case.json",
        ],
        d,
    );
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(d.join("case.json")).unwrap()).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    let tac = entries
        .iter()
        .find(|e| e["resource"]["identifier"][0]["value"] == format!("{TACROLIMUS_CASE}/tacrolimus"));
    assert_eq!(
        tac.unwrap()["resource"]["medicationCodeableConcept"]["coding"][0]["code"],
        "42316"
    );
    run(&["validate", "--mappings", "m", "case.json"], d);
    let builtin = imnm(&["validate", "case.json"], d);
    assert_eq!(
        builtin.status.code(),
        Some(1),
        "the built-in ValueSets do not know aldolase or tacrolimus"
    );
    run(
        &["cohort", "--mappings", "m", "--input", "case.json", "--out", "back"],
        d,
    );
    let before = std::fs::read_to_string(d.join("out/cohort.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(d.join("back/cohort.csv")).unwrap(), before);
}

fn export_and_merge(d: &Path) {
    for (site, key) in [("A", "a.key"), ("B", "b.key")] {
        run(&["keygen", "--out", key], d);
        let out = format!("bundle-{site}");
        run(
            &[
                "export",
                "--mappings",
                "m",
                "--input",
                "demo.json",
                "--input",
                "extra.ndjson",
                "--out",
                &out,
                "--site-key",
                key,
                "--site",
                site,
            ],
            d,
        );
        let rows = csv_rows(&d.join(&out).join("cohort.csv"));
        assert!(rows[0].contains(&"tacrolimus".to_string()) && rows[0].contains(&"aldolase_peak_u_per_l".to_string()));
        assert_eq!(rows[1..].iter().filter(|r| r.iter().any(|c| c == "20")).count(), 1);
    }
    run(
        &["merge", "--mappings", "m", "bundle-A", "bundle-B", "--out", "pooled"],
        d,
    );
    let pooled = csv_rows(&d.join("pooled/cohort.csv"));
    let at = pooled[0].iter().position(|h| h == "tacrolimus").unwrap();
    assert_eq!(pooled[1..].iter().filter(|r| r[at] == "yes").count(), 2, "one per site");
}

#[test]
fn a_rule_whose_kind_does_not_fit_its_column_is_refused_with_file_and_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_dir(&root().join("mappings"), &m);
    let rules = std::fs::read_to_string(m.join("rules.toml")).unwrap();
    let wrong = rules.replace(
        "kind = \"finding\"\nvalueset = \"rash\"",
        "kind = \"exposure\"\nvalueset = \"rash\"",
    );
    assert_ne!(wrong, rules);
    std::fs::write(m.join("rules.toml"), wrong).unwrap();
    for args in [
        vec!["mappings", "check", "m"],
        vec!["cohort", "--mappings", "m", "--input", "x.json", "--out", "out"],
    ] {
        let o = imnm(&args, tmp.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("rules.toml:rash: kind \"exposure\" does not fit column \"rash\""),
            "{err}"
        );
        assert!(
            err.contains("dictionary.toml:rash: no rule fills this finding column"),
            "{err}"
        );
    }
}

#[test]
fn dictionary_problems_are_reported_together() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_dir(&root().join("mappings"), &m);
    let dict = std::fs::read_to_string(m.join("dictionary.toml")).unwrap();
    let broken = dict
        .replacen(
            "levels = [\"yes\", \"no\", \"unknown\"]",
            "levels = [\"yes\", \"no\", \"maybe\"]",
            1,
        )
        .replacen("name = \"ivig\"", "name = \"rituximab\"", 1)
        .replace("  \"outcome\",\n]", "  \"outcome\",\n  \"birth_date\",\n]");
    std::fs::write(m.join("dictionary.toml"), broken + "\n").unwrap();
    std::fs::write(
        m.join("rules.toml"),
        std::fs::read_to_string(m.join("rules.toml")).unwrap()
            + "\n[[rule]]\nid = \"x\"\ncolumn = \"nope\"\nkind = \"finding\"\nvalueset = \"rash\"\n",
    )
    .unwrap();
    let o = imnm(&["mappings", "check", "m"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "dictionary.toml:proximal_weakness: unknown level \"maybe\"",
        "dictionary.toml:proximal_weakness: level \"unknown\" missing from `levels`",
        "dictionary.toml:rituximab: column defined twice",
        "dictionary.toml:table1: \"birth_date\" is a birth-date column, which Table 1 does not show",
        "rules.toml:x: column \"nope\" is not in the data dictionary",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
}
