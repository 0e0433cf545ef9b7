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
    if matches!(resource_type.as_ref(), "Patient" | "Medication") {
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
