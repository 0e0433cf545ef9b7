//! Findings from report and note text (issue 28): the demo cohort with every
//! coded finding removed and written instead as EMG, biopsy and MRI report
//! conclusions, base64 text/plain and HTML presented forms, clinic-note
//! DocumentReferences and Binary URLs, gives the demo's finding columns,
//! column by column, as a Bundle, as NDJSON and through `imnm sync`. The
//! expected values come from the coded demo, not from this file.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{cell, mappings, run, run_paths};
use imnm_fhir::domain::ColumnKind;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::report::{Issue, IssueCode};

const SCT: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";

/// How a text is written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Form {
    /// `DiagnosticReport.conclusion` (a note: text/plain data).
    Conclusion,
    /// Base64 text/plain `data`.
    Plain,
    /// Base64 text/html `data`.
    Html,
    /// A `url` to a Binary (served by the mock EHR).
    Url,
}

/// The finding and MRI columns of the dictionary, with their rule ids.
fn finding_columns(m: &MappingSet) -> Vec<(String, String)> {
    m.rules
        .iter()
        .filter(|r| matches!(r.kind.column_kind(), ColumnKind::Finding | ColumnKind::Mri))
        .map(|r| (m.column_name(r).to_string(), r.id.clone()))
        .collect()
}

/// True when a resource's code or conclusion codes are in a finding or MRI value set.
fn coded_finding(m: &MappingSet, r: &Value) -> bool {
    let sets: Vec<usize> = m
        .rules
        .iter()
        .flat_map(|r| match r.kind {
            imnm_fhir::mapping::RuleKind::Finding { valueset } => vec![valueset],
            imnm_fhir::mapping::RuleKind::Mri { edema, fatty } => vec![edema, fatty],
            _ => vec![],
        })
        .collect();
    let concepts = std::iter::once(&r["code"])
        .chain(r["conclusionCode"].as_array().into_iter().flatten())
        .chain(r["component"].as_array().into_iter().flatten().map(|c| &c["code"]));
    concepts
        .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
        .any(|c| {
            let (s, k) = (c["system"].as_str().unwrap_or(""), c["code"].as_str().unwrap_or(""));
            m.valuesets_of(s, k).iter().any(|vs| sets.contains(vs))
        })
}

/// The sentence a value of a rule's column is written as (`None`: unknown).
fn sentence(rule: &str, value: &str, i: usize) -> Option<&'static str> {
    let pick = |v: &[&'static str]| Some(v[i % v.len()]);
    match (rule, value) {
        ("proximal-weakness", "yes") => pick(&[
            "Symmetric proximal muscle weakness.",
            "Hip flexors 3/5 bilaterally with a positive Gowers sign.",
            "Weakness of the proximal limb muscles, worse climbing stairs.",
        ]),
        ("proximal-weakness", "no") => pick(&["She denies weakness.", "No proximal weakness."]),
        ("rash", "yes") => pick(&[
            "Gottron's papules over the knuckles.",
            "Heliotrope rash of both eyelids.",
        ]),
        ("rash", "no") => pick(&["No rash.", "Skin: negative for Gottron papules or heliotrope."]),
        ("emg-myopathic", "yes") => pick(&[
            "Myopathic motor unit potentials with early recruitment.",
            "Short duration, small amplitude polyphasic potentials, consistent with a myopathy.",
        ]),
        ("emg-myopathic", "no") => pick(&["Normal EMG study."]),
        ("biopsy-necrosis", "yes") => pick(&[
            "Scattered necrotic and regenerating myofibers.",
            "Myofiber necrosis with myophagocytosis.",
        ]),
        ("biopsy-necrosis", "no") => pick(&["No evidence of necrosis."]),
        ("mri-thigh", "edema") => pick(&["STIR hyperintensity of both quadriceps without fatty infiltration."]),
        ("mri-thigh", "fatty") => pick(&["Fatty replacement of the thigh muscles; no edema."]),
        ("mri-thigh", "edema_and_fatty") => pick(&["Muscle edema and fatty infiltration of the thighs."]),
        ("mri-thigh", "normal") => pick(&["Normal MRI of both thighs."]),
        _ => None,
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The attachment of `text` in `form` (and the Binary a url form points at).
fn attachment(id: &str, text: &str, form: Form) -> (Value, Option<Value>) {
    match form {
        Form::Conclusion | Form::Plain => (
            json!({"contentType": "text/plain; charset=utf-8", "data": b64(text)}),
            None,
        ),
        Form::Html => {
            let html = format!(
                "<html><body><h2>Assessment</h2><p>{}</p></body></html>",
                text.replace('\'', "&#39;")
            );
            (json!({"contentType": "text/html", "data": b64(&html)}), None)
        }
        Form::Url => {
            let binary = json!({"resourceType": "Binary", "id": format!("{id}-b"), "contentType": "text/plain", "data": b64(text)});
            (
                json!({"contentType": "text/plain", "url": format!("Binary/{id}-b")}),
                Some(binary),
            )
        }
    }
}

/// A DiagnosticReport of kind `code` for `patient` whose text is `text`, in `form`.
pub(crate) fn report(id: &str, patient: &str, code: (&str, &str), text: &str, form: Form) -> Vec<Value> {
    let mut r = json!({
        "resourceType": "DiagnosticReport", "id": id, "status": "final",
        "code": {"coding": [{"system": code.0, "code": code.1}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2016-03-01"
    });
    if let Form::Conclusion = form {
        r["conclusion"] = json!(text);
        return vec![r];
    }
    let (a, binary) = attachment(id, text, form);
    r["presentedForm"] = json!([a]);
    std::iter::once(r).chain(binary).collect()
}

/// A progress note for `patient` whose text is `text`, in `form`.
pub(crate) fn note(id: &str, patient: &str, text: &str, form: Form) -> Vec<Value> {
    let (a, binary) = attachment(id, text, form);
    let n = json!({
        "resourceType": "DocumentReference", "id": id, "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "date": "2016-02-01T10:00:00Z",
        "content": [{"attachment": a}]
    });
    std::iter::once(n).chain(binary).collect()
}

/// The demo's finding columns per patient: `patient id → [(column, value)]`.
pub(crate) type Expected = BTreeMap<String, Vec<(String, String)>>;

/// The demo with its coded findings replaced by text (forms from `forms`,
/// rotating per patient), and the demo's finding cells.
pub(crate) fn text_only_demo(forms: &[Form]) -> (Vec<Value>, Expected) {
    let m = mappings();
    let demo = imnm_fhir::demo::generate::demo_resources();
    let (coded, _) = run(&demo);
    let columns = finding_columns(&m);
    let mut expected = Expected::new();
    let mut out: Vec<Value> = demo.into_iter().filter(|r| !coded_finding(&m, r)).collect();
    for (i, row) in coded.rows.all().unwrap().iter().enumerate() {
        let p = row.patient_id.as_str();
        let form = forms[i % forms.len()];
        let mut clinic = Vec::new();
        for (column, rule) in &columns {
            let value = cell(row, column);
            expected
                .entry(p.to_string())
                .or_default()
                .push((column.clone(), value.clone()));
            let Some(text) = sentence(rule, &value, i) else {
                continue;
            };
            let kind = match rule.as_str() {
                "emg-myopathic" => (SCT, "42803009"),
                "biopsy-necrosis" => (LOINC, "11529-5"),
                "mri-thigh" => (LOINC, "18748-4"),
                _ => {
                    clinic.push(text);
                    continue;
                }
            };
            out.extend(report(&format!("{p}-{rule}"), p, kind, text, form));
        }
        let body = format!(
            "Follow-up visit. {} CK reviewed. No change in medication.",
            clinic.join(" ")
        );
        out.extend(note(&format!("{p}-note"), p, &body, form));
    }
    (out, expected)
}

/// Every expected cell of `expected` equals the cohort's.
pub(crate) fn assert_findings(cohort: &imnm_fhir::cohort::Cohort, expected: &Expected) {
    assert_eq!(cohort.rows.len(), expected.len());
    let mut checked = 0;
    for row in &cohort.rows.all().unwrap() {
        for (column, value) in &expected[&row.patient_id] {
            assert_eq!(&cell(row, column), value, "{} {column}", row.patient_id);
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
}

fn no_text_in_issues(issues: &[Issue], resources: &[Value]) {
    let words: Vec<String> = resources
        .iter()
        .filter_map(|r| r["conclusion"].as_str())
        .map(str::to_string)
        .collect();
    for i in issues {
        for w in &words {
            assert!(!i.message.contains(w.as_str()), "{i:?}");
        }
    }
}

#[test]
fn findings_only_in_text_give_the_coded_cohort_as_a_bundle() {
    let (resources, expected) = text_only_demo(&[Form::Conclusion, Form::Plain, Form::Html]);
    let (cohort, issues) = run(&resources);
    assert_findings(&cohort, &expected);
    no_text_in_issues(&issues, &resources);
    let columns: Vec<String> = finding_columns(&mappings()).into_iter().map(|(c, _)| c).collect();
    let prov = cohort.provenance.all().unwrap();
    let from_text = prov.iter().filter(|p| columns.contains(&p.column));
    let mut n = 0;
    for p in from_text {
        n += 1;
        assert!(
            p.sources
                .iter()
                .all(|s| s.starts_with("DiagnosticReport/") || s.starts_with("DocumentReference/")),
            "{p:?}"
        );
    }
    assert!(n >= 40, "{n}");
    let (coded, _) = run(&imnm_fhir::demo::generate::demo_resources());
    let (rows, coded) = (cohort.rows.all().unwrap(), coded.rows.all().unwrap());
    let differ = rows.iter().zip(&coded).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "every other column is the demo's too");
}

#[test]
fn findings_only_in_text_give_the_coded_cohort_as_ndjson() {
    let (resources, expected) = text_only_demo(&[Form::Html, Form::Conclusion, Form::Plain]);
    let tmp = tempfile::tempdir().unwrap();
    let mut by_type: BTreeMap<String, String> = BTreeMap::new();
    for r in &resources {
        let t = r["resourceType"].as_str().unwrap().to_string();
        let lines = by_type.entry(t).or_default();
        lines.push_str(&r.to_string());
        lines.push('\n');
    }
    let mut paths = Vec::new();
    for (t, lines) in by_type {
        let p = tmp.path().join(format!("{t}.ndjson"));
        std::fs::write(&p, lines).unwrap();
        paths.push(p);
    }
    let (cohort, _) = run_paths(&paths);
    assert_findings(&cohort, &expected);
}

/// The provenance of a text value names the element, the span, the rule and the phrase.
#[test]
fn provenance_names_the_sentence_span_rule_and_phrase() {
    let (resources, _) = text_only_demo(&[Form::Html]);
    let (cohort, _) = run(&resources);
    let prov = cohort.provenance.all().unwrap();
    // The demo's site C writes its EMG as a conclusion: the HTML form is the generated case's.
    let emg = prov
        .iter()
        .find(|p| p.column == "emg_myopathic" && p.detail.contains("presentedForm"))
        .unwrap();
    assert!(
        emg.sources.iter().all(|s| s.starts_with("DiagnosticReport/")),
        "{emg:?}"
    );
    assert!(
        emg.detail
            .contains("DiagnosticReport.presentedForm[0] (text/html) chars ")
            && emg.detail.contains("text rule emg-myopathic-text, phrase"),
        "{}",
        emg.detail
    );
    let rash = prov.iter().find(|p| p.column == "rash").unwrap();
    assert!(
        rash.detail
            .starts_with("DocumentReference.content[0].attachment (text/html) chars "),
        "{}",
        rash.detail
    );
}

fn one_case(extra: Vec<Value>) -> (imnm_fhir::domain::CaseRow, Vec<Issue>) {
    let mut all = vec![
        crate::support::patient("p1"),
        crate::support::imnm_condition("c1", "p1"),
    ];
    all.extend(extra);
    let (cohort, issues) = run(&all);
    (cohort.rows.all().unwrap().into_iter().next().unwrap(), issues)
}

/// Order of evidence: a coded finding wins over text; an EMG report wins over a clinic note.
#[test]
fn coded_wins_over_text_and_a_report_over_a_note() {
    let coded_no = crate::support::observation(
        "o1",
        "https://imnm-fhir.org/fhir/CodeSystem/imnm-case",
        "rash",
        json!({"valueBoolean": false}),
    );
    let (row, _) = one_case(
        std::iter::once(coded_no)
            .chain(note("n1", "p1", "Heliotrope rash.", Form::Plain))
            .collect(),
    );
    assert_eq!(cell(&row, "rash"), "no");
    let mut both = report("e1", "p1", (SCT, "42803009"), "Normal EMG study.", Form::Conclusion);
    both.extend(note("n1", "p1", "EMG showed a myopathic pattern.", Form::Plain));
    let (row, _) = one_case(both);
    assert_eq!(cell(&row, "emg_myopathic"), "no");
    let (row, _) = one_case(note("n1", "p1", "EMG showed a myopathic pattern.", Form::Plain));
    assert_eq!(cell(&row, "emg_myopathic"), "yes");
}

/// Two reports of one kind that disagree: yes wins, with an issue; an
/// uncertain mention sets nothing and gives an issue; a PDF and an unfetched
/// url are reported, not guessed.
#[test]
fn conflicts_uncertainty_and_other_content_are_issues() {
    let mut r = report("e1", "p1", (SCT, "42803009"), "Normal EMG study.", Form::Conclusion);
    r.extend(report("e2", "p1", (SCT, "42803009"), "Myopathic changes.", Form::Plain));
    r.extend(note("n1", "p1", "Possible heliotrope discoloration.", Form::Plain));
    let mut pdf = note("n2", "p1", "x", Form::Plain).remove(0);
    pdf["content"][0]["attachment"] = json!({"contentType": "application/pdf", "data": b64("%PDF-1.4")});
    r.push(pdf);
    r.push(note("n3", "p1", "No rash.", Form::Url).remove(0));
    let (row, issues) = one_case(r);
    assert_eq!(cell(&row, "emg_myopathic"), "yes");
    assert_eq!(cell(&row, "rash"), "unknown");
    let has = |code: IssueCode, at: &str| issues.iter().any(|i| i.code == code && i.location.input.contains(at));
    assert!(has(IssueCode::ConflictingText, "Patient/p1"), "{issues:#?}");
    assert!(has(IssueCode::UncertainText, "DocumentReference/n1"), "{issues:#?}");
    assert!(has(IssueCode::UnreadAttachment, "DocumentReference/n2"), "{issues:#?}");
    assert!(has(IssueCode::UnreadAttachment, "DocumentReference/n3"), "{issues:#?}");
    assert!(!issues.iter().any(|i| i.message.contains("heliotrope discoloration")));
}

/// `cohort.csv` of `dir` as `patient_id → column → value`.
fn cohort_csv(dir: &std::path::Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(dir.join("cohort.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let id = header.iter().position(|h| h == "patient_id").unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let cells = header.iter().cloned().zip(rec.iter().map(str::to_string)).collect();
            (rec[id].to_string(), cells)
        })
        .collect()
}

/// `imnm sync` from an Epic-style mock whose notes and reports hold their
/// text as Binary urls (and base64 and HTML and conclusions), then `imnm
/// cohort --store`: the demo's findings, column by column; the Binaries on
/// the server's base URL are fetched into the stored notes (so
/// `sources.ndjson` keeps the text), a url elsewhere is counted and never asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imnm_sync_fetches_binary_urls_and_gives_the_findings() {
    use imnm_fhir::mock::{FaultPlan, Vendor};
    let (mut data, expected) = text_only_demo(&[Form::Url, Form::Html, Form::Conclusion, Form::Plain]);
    let first = expected.keys().next().unwrap().clone();
    let mut away = note("away", &first, "Heliotrope rash.", Form::Url).remove(0);
    away["content"][0]["attachment"]["url"] = json!("https://elsewhere.example.org/fhir/Binary/x1");
    data.push(away);
    let ehr = crate::sync::mock_with(data, Vendor::Epic, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let (base, cwd) = (ehr.base_url(), dir.path().to_path_buf());
    let (s, c) = tokio::task::spawn_blocking(move || {
        let s = crate::support::imnm(&["sync", "--base-url", &base, "--store", "s.db"], &cwd);
        let c = crate::support::imnm(&["cohort", "--store", "s.db", "--out", "out"], &cwd);
        (s, c)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&s.stderr);
    assert!(s.status.success(), "{stderr}");
    assert!(
        c.status.success() || c.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    let binaries = expected.len().div_ceil(4) * 4; // every fourth patient's reports and note
    assert!(
        stderr.contains("attachment(s) fetched from Binary urls; 1 url(s) off"),
        "{stderr}"
    );
    let journal = ehr.journal();
    let reads = journal.iter().filter(|e| e.path.starts_with("/Binary/")).count();
    assert!(reads >= 3 && reads <= binaries, "{reads}");
    assert!(journal.iter().any(|e| e.path == "/DocumentReference"));
    let got = cohort_csv(&dir.path().join("out"));
    for (patient, cells) in &expected {
        for (column, value) in cells {
            assert_eq!(&got[patient][column], value, "{patient} {column}");
        }
    }
    let sources = std::fs::read_to_string(dir.path().join("out/sources.ndjson")).unwrap();
    let hydrated = sources
        .lines()
        .filter(|l| l.contains("\"DocumentReference\"") && l.contains("\"url\":\"Binary/") && l.contains("\"data\""))
        .count();
    assert!(
        hydrated >= 1,
        "a note read from a Binary url keeps its text in sources.ndjson"
    );
}

/// A study bundle of the text-only cohort holds no sentence of any note or
/// report (the de-identification rules keep no conclusion, presentedForm or
/// DocumentReference), whatever the words' encoding.
#[test]
fn no_note_sentence_reaches_a_study_bundle() {
    let (resources, expected) = text_only_demo(&[Form::Conclusion, Form::Plain, Form::Html]);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.json");
    std::fs::write(&input, crate::support::bundle(&resources)).unwrap();
    let out = tmp.path().join("study");
    let opts = imnm_fhir::export::ExportOptions {
        input: imnm_fhir::pipeline::Input::Files(vec![input]),
        out: out.clone(),
        profile: Default::default(),
        min_cell: 5,
        site: "T".into(),
        threads: None,
    };
    let key = imnm_fhir::deid::SiteKey::from_bytes(&[7; 32]);
    imnm_fhir::export::export(&opts, &key, &mappings()).expect("export runs");
    let mut sentences: Vec<String> = Vec::new();
    for rule in [
        "proximal-weakness",
        "rash",
        "emg-myopathic",
        "biopsy-necrosis",
        "mri-thigh",
    ] {
        for value in ["yes", "no", "edema", "fatty", "edema_and_fatty", "normal"] {
            for i in 0..3 {
                sentences.extend(sentence(rule, value, i).map(|s| s.trim_end_matches('.').to_string()));
            }
        }
    }
    sentences.push("Follow-up visit".into());
    let mut encoded: Vec<String> = sentences.iter().map(|s| b64(s)).collect();
    encoded.retain(|e| e.len() > 12);
    // The findings still reach the bundle's cohort, as coded Observations (ids differ: compare per column).
    let rows =
        imnm_fhir::export::rerun(&std::fs::read_to_string(out.join("bundle.json")).unwrap(), &mappings()).unwrap();
    let per_column = |cells: Vec<(String, String)>| {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (c, v) in cells {
            by.entry(c).or_default().push(v);
        }
        by.values_mut().for_each(|v| v.sort());
        by
    };
    let want = per_column(expected.values().flatten().cloned().collect());
    let columns: Vec<String> = want.keys().cloned().collect();
    let got = per_column(
        rows.iter()
            .flat_map(|r| columns.iter().map(|c| (c.clone(), cell(r, c))))
            .collect(),
    );
    assert_eq!(got, want);
    let files = imnm_fhir::export::manifest::list_files(&out).unwrap();
    assert!(files.iter().any(|f| f.ends_with("bundle.json")), "{files:?}");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(out.join(&f)).unwrap()).to_lowercase();
        for s in &sentences {
            assert!(!text.contains(&s.to_lowercase()), "{f} holds {s:?}");
        }
        for e in &encoded {
            assert!(!text.contains(&e[..12].to_lowercase()), "{f} holds base64 text");
        }
        assert!(!text.contains("documentreference/"), "{f} names a note");
    }
}
