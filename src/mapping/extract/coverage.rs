//! The fact-or-issue property (issue 24, "nothing vanishes"): every resource
//! of a mapped type whose code a rule matches (what the peek keeps) gives a
//! fact, a diagnosis, a pending medication reference, or an issue — never
//! neither. Checked over the demo, the benchmark generator (several seeds,
//! with its bad lines), and random damage to the demo's resources.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fhir::peek::{classify, Relevance};
use crate::mapping::MappingSet;

/// `Err` with the resource's text when a resource the rules match gives nothing and says nothing.
fn gives_fact_or_issue(text: &str, m: &MappingSet) -> Result<(), String> {
    let Ok((resource_type, Relevance::Parse)) = classify(text, m) else {
        return Ok(());
    };
    if matches!(resource_type.as_ref(), "Patient" | "Medication") || contained_medication_unmatched(text, m) {
        return Ok(());
    }
    let parsed = match crate::fhir::parse::resource(text) {
        Ok(p) => p,
        Err(_) => return Ok(()), // a parse-error issue
    };
    let out = super::extract(&parsed.resource, m, "test");
    let gave = !out.facts.is_empty() || !out.diagnoses.is_empty() || !out.pending.is_empty();
    if gave || !out.issues.is_empty() || parsed.lenient_note.is_some() {
        Ok(())
    } else {
        Err(format!("neither a fact nor an issue: {text}"))
    }
}

/// A medicine named by a `#contained` Medication whose code no rule matches:
/// the peek keeps every `medicationReference` (it cannot look), but no rule matched.
fn contained_medication_unmatched(text: &str, m: &MappingSet) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let Some(id) = v["medicationReference"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
    else {
        return false;
    };
    v["contained"].as_array().into_iter().flatten().any(|c| {
        c["resourceType"] == "Medication"
            && c["id"] == id
            && !matches!(classify(&c.to_string(), m), Ok((_, Relevance::Parse)))
    })
}

fn demo() -> Vec<Value> {
    crate::demo::generate::demo_resources()
}

#[test]
fn the_demo_and_the_generator_never_lose_a_matched_resource_silently() {
    let m = MappingSet::builtin().unwrap();
    for r in demo() {
        gives_fact_or_issue(&r.to_string(), &m).unwrap();
    }
    for seed in 1..=3 {
        let spec = crate::bench_data::Spec {
            seed,
            faults: true,
            ..crate::bench_data::Spec::new(3_000)
        };
        crate::bench_data::for_each(&spec, |_, json| gives_fact_or_issue(json, &m).unwrap());
    }
}

/// Damage a hospital feed does to a resource: a status rules exclude, a
/// value gone or of another type, no subject, the result moved into a panel.
fn damage() -> impl Strategy<Value = usize> {
    0usize..8
}

fn damaged(mut r: Value, how: usize) -> Value {
    let Some(o) = r.as_object_mut() else { return r };
    let value_keys: Vec<String> = o.keys().filter(|k| k.starts_with("value")).cloned().collect();
    match how {
        0 => {
            o.insert("status".into(), json!("entered-in-error"));
        }
        1 => {
            for k in value_keys {
                o.remove(&k);
            }
        }
        2 => {
            for k in value_keys {
                o.remove(&k);
            }
            o.insert("valueRange".into(), json!({"low": {"value": 1}}));
        }
        3 => {
            for k in value_keys {
                o.remove(&k);
            }
            o.insert("valueString".into(), json!("see comment"));
        }
        4 => {
            o.remove("subject");
            o.remove("patient");
        }
        5 => {
            if let (Some(code), Some(key)) = (o.remove("code"), value_keys.first()) {
                let mut c = json!({"code": code});
                c[key] = o.remove(key).unwrap_or(Value::Null);
                o.insert("code".into(), json!({"text": "Panel"}));
                o.insert("component".into(), json!([c]));
            }
        }
        6 => {
            o.insert("status".into(), json!("cancelled"));
            o.insert("verificationStatus".into(), json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}));
        }
        _ => {
            o.insert("interpretation".into(), json!([{"text": "see report"}]));
            for k in value_keys {
                o.remove(&k);
            }
        }
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any resource of the demo, damaged any way, gives a fact or an issue.
    #[test]
    fn damaged_demo_resources_give_a_fact_or_an_issue(pick in any::<prop::sample::Index>(), how in damage()) {
        let m = MappingSet::builtin().unwrap();
        let all = demo();
        let r = damaged(all[pick.index(all.len())].clone(), how);
        gives_fact_or_issue(&r.to_string(), &m).map_err(TestCaseError::fail)?;
    }
}

/// Every resource of a corpus file: the file's own and, in a Bundle, its entries' (nested Bundles too).
fn resources_of(v: Value, out: &mut Vec<Value>) {
    if v["resourceType"] == "Bundle" {
        if let Some(entries) = v["entry"].as_array() {
            for e in entries {
                resources_of(e["resource"].clone(), out);
            }
        }
    }
    if v.is_object() {
        out.push(v);
    }
}

/// The corpus `.ci/corpus-install` fetches into target/corpus (HL7 R4 examples, Synthea children),
/// or `None` (with a printed reason) when it is absent and IMNM_CORPUS is not set.
fn corpus_resources() -> Option<Vec<Value>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/corpus");
    let mut out = Vec::new();
    for part in ["r4-examples/package", "synthea/fhir"] {
        let Ok(dir) = std::fs::read_dir(root.join(part)) else {
            assert!(
                std::env::var("IMNM_CORPUS").is_err(),
                "IMNM_CORPUS=1 but target/corpus/{part} is missing: run .ci/corpus-install"
            );
            eprintln!("SKIPPED corpus property: no target/corpus/{part} (run .ci/corpus-install)");
            return None;
        };
        for path in dir.filter_map(Result::ok).map(|e| e.path()) {
            if let Ok(v) = serde_json::from_slice(&std::fs::read(&path).unwrap_or_default()) {
                resources_of(v, &mut out);
            }
        }
    }
    Some(out)
}

/// Over the corpus as is, each matched resource damaged every way, and the
/// demo's resources with `urn:uuid` subjects (as Synthea's Bundles write them).
#[test]
fn the_corpus_never_loses_a_matched_resource_silently() {
    let Some(corpus) = corpus_resources() else { return };
    let m = MappingSet::builtin().unwrap();
    let mut matched = 0;
    for r in &corpus {
        let text = r.to_string();
        gives_fact_or_issue(&text, &m).unwrap();
        if matches!(classify(&text, &m), Ok((_, Relevance::Parse))) {
            matched += 1;
            for how in 0..8 {
                gives_fact_or_issue(&damaged(r.clone(), how).to_string(), &m).unwrap();
            }
        }
    }
    for r in demo() {
        let text = r
            .to_string()
            .replace("\"Patient/", "\"urn:uuid:00002416-0000-4000-8000-");
        gives_fact_or_issue(&text, &m).unwrap();
    }
    eprintln!("corpus: {} resources, {matched} matched by a rule", corpus.len());
    assert!(matched > 0, "the corpus has resources the rules match");
}
