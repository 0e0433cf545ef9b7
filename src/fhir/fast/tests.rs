#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use proptest::prelude::*;

use super::parse;
use crate::fhir::model::Resource;

fn resource_path(text: &str) -> Option<Resource> {
    let config = Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    });
    fhirbolt::json::from_str::<Resource>(text, config).ok()
}

/// The shortcut gives what fhirbolt gives (both of its paths), or nothing;
/// where it takes a text it calls compact, `serde_json` writes it back the same;
/// the scan's view answers exactly where the shortcut does.
fn agrees(text: &str) -> Result<bool, String> {
    let viewed = super::observation(text).is_some_and(|o| o.view().is_some());
    let Some(fast) = parse(text) else {
        return match viewed {
            true => Err(format!("the view answered and parse did not: {text}")),
            false => Ok(false),
        };
    };
    if super::read_compact(text) {
        let again = serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v.to_string())
            .ok();
        if again.as_deref() != Some(text) || !crate::fhir::compact::already_compact(text) {
            return Err(format!("called compact, and is not: {text}"));
        }
    }
    match resource_path(text) {
        Some(r) if r == fast => {}
        Some(r) => {
            return Err(format!(
                "the shortcut differs from fhirbolt on {text}:\n{fast:?}\n{r:?}"
            ))
        }
        None => return Err(format!("the shortcut took what fhirbolt refuses: {text}")),
    }
    match crate::fhir::direct::parse(text) {
        Some(d) if d != fast => return Err(format!("the shortcut differs from the direct parse on {text}")),
        _ => {}
    }
    rules_read_the_same(text, &fast)?;
    Ok(true)
}

/// What the scan reads (the borrowed struct, through its view) gives the
/// same facts, issues and version as the typed resource.
fn rules_read_the_same(text: &str, full: &Resource) -> Result<(), String> {
    let Some(obs) = super::observation(text) else {
        return Err(format!("parse answered and the borrowed read did not: {text}"));
    };
    let Some(view) = obs.view() else {
        return Err(format!("parse answered and the view did not: {text}"));
    };
    let m = mappings();
    let lean = format!(
        "{:?} {:?}",
        crate::mapping::extract::extract_observation(view, m, "fallback"),
        view.version()
    );
    let typed = match full {
        Resource::Observation(o) => format!(
            "{:?} {:?}",
            crate::mapping::extract::extract(full, m, "fallback"),
            super::view::Observation::typed(o).version()
        ),
        _ => return Err(format!("parse answered with another type: {text}")),
    };
    match lean == typed {
        true => Ok(()),
        false => Err(format!(
            "the rules read the view differently on {text}:\n{lean}\n{typed}"
        )),
    }
}

fn mappings() -> &'static crate::mapping::MappingSet {
    static SET: std::sync::OnceLock<crate::mapping::MappingSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| crate::mapping::MappingSet::builtin().unwrap())
}

/// Every resource the project generates: the demo sites, the benchmark
/// generator (hospital-wide with its bad lines, and registry-shaped) and the
/// example cohort.
fn generated() -> Vec<String> {
    let mut texts: Vec<String> = crate::demo::generate::demo_resources()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let specs = [
        crate::bench_data::Spec {
            faults: true,
            ..crate::bench_data::Spec::new(20_000)
        },
        crate::bench_data::Spec::registry(3_000, 100),
    ];
    for spec in specs {
        crate::bench_data::for_each(&spec, |_, json| texts.push(json.to_string()));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-cohort/ndjson");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        texts.extend(text.lines().map(str::to_string));
    }
    texts
}

/// The shortcut agrees everywhere, and takes every generated Observation
/// fhirbolt accepts (or it saves nothing).
#[test]
fn agrees_with_fhirbolt_on_every_generated_resource() {
    let (mut observations, mut taken, mut compact) = (0, 0, 0);
    for text in &generated() {
        let took = agrees(text).unwrap();
        if text.starts_with(r#"{"resourceType":"Observation""#) && resource_path(text).is_some() {
            observations += 1;
            taken += usize::from(took);
            compact += usize::from(took && super::read_compact(text));
            assert!(took, "the shortcut passed over {text}");
        }
    }
    assert!(
        observations > 1000 && taken == observations,
        "{taken} of {observations}"
    );
    // Known compact from the read (or the writer looks at each again).
    assert!(compact * 10 >= taken * 9, "{compact} of {taken} known compact");
}

#[test]
fn stands_aside_on_what_it_does_not_take() {
    let base = r#"{"resourceType":"Observation","id":"o","status":"final","code":{"text":"t"}"#;
    assert!(parse(&format!("{base}}}")).is_some());
    for extra in [
        r#","note":[{"text":"n"}]"#,
        r#","valueQuantity":{"value":1e3}"#,
        r#","valueQuantity":{"value":1},"valueString":"x""#,
        r#","effectiveDateTime":"2020","effectiveInstant":"2020-01-01T00:00:00Z""#,
        r#","valueString":"a\"b""#,
        r#","valueString":"""#,
        r#","_status":{"id":"s"}"#,
        r#","subject":null"#,
        r#","status":"final""#,
        r#","extension":[{"url":"u","valueString":"x"}]"#,
        r#","extension":[{"url":"u","valueInteger":1,"valueUnsignedInt":1}]"#,
        r#","code":{"text":"t","id":"c"}"#,
        r#","referenceRange":[{"low":{"value":1e3}}]"#,
        r#","valueRatio":{"numerator":{"value":1E2}}"#,
        r#","component":[{"code":{"text":"c"},"valueQuantity":{"value":1},"valueBoolean":true}]"#,
        r#","component":[{"code":{"text":"c"},"referenceRange":[{"high":{"value":2e1}}]}]"#,
        r#","component":[{"code":{"text":"c"},"extension":[{"url":"u","valueInteger":1,"valuePositiveInt":1}]}]"#,
    ] {
        let text = format!("{base}{extra}}}");
        // Neither the shortcut nor the scan's view takes it.
        assert_eq!(agrees(&text), Ok(false), "{text}");
    }
    assert!(parse(r#"{"resourceType":"Observation","status":"final"}"#).is_none());
    assert!(parse(r#"{"status":"final","code":{"text":"t"},"resourceType":"Observation"}"#).is_none());
}

/// Values of any JSON kind, valid and not.
fn scalar() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "1",
        "-0",
        "2.50",
        "0.0001",
        "1E3",
        "1e-2",
        "-",
        "123456789012345678901234567890",
        "3000000000",
        "-7",
        r#""5""#,
        r#""2.5""#,
        r#""x""#,
        r#"" ""#,
        r#""é""#,
        "true",
        r#""true""#,
        "[1]",
        r#"["a"]"#,
        r#"{"value":1}"#,
        r#"{"text":"t"}"#,
        r#"{"reference":"Patient/p"}"#,
        r#"[{"text":"t"}]"#,
        r#"[{"coding":[{"system":"s","code":"c"}]}]"#,
    ])
}

/// Places a scalar can sit in an Observation.
fn place() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        r#""id":V"#,
        r#""meta":{"versionId":V,"lastUpdated":"2025-01-01T00:00:00Z"}"#,
        r#""meta":{"profile":V}"#,
        r#""meta":{"tag":[{"system":"s","code":V}]}"#,
        r#""identifier":[{"system":"s","value":V}]"#,
        r#""identifier":[{"use":V,"type":{"text":"t"}}]"#,
        r#""category":V"#,
        r#""category":[{"coding":[{"system":"s","code":V,"userSelected":true}]}]"#,
        r#""subject":V"#,
        r#""subject":{"reference":V,"display":"d"}"#,
        r#""encounter":{"reference":"Encounter/e","type":V}"#,
        r#""performer":[{"reference":V}]"#,
        r#""basedOn":V"#,
        r#""effectiveDateTime":V"#,
        r#""effectivePeriod":{"start":"2024-01-02","end":V}"#,
        r#""effectiveInstant":V"#,
        r#""issued":V"#,
        r#""valueQuantity":{"value":V,"unit":"U/L"}"#,
        r#""valueQuantity":{"value":1,"comparator":V,"system":"http://unitsofmeasure.org","code":"U/L"}"#,
        r#""valueQuantity":{"value":1,"fooBar":V}"#,
        r#""valueCodeableConcept":V"#,
        r#""valueString":V"#,
        r#""valueBoolean":V"#,
        r#""valueInteger":V"#,
        r#""valueRatio":{"numerator":{"value":V},"denominator":{"value":V}}"#,
        r#""valueRange":{"low":{"value":V}}"#,
        r#""dataAbsentReason":V"#,
        r#""interpretation":V"#,
        r#""method":V"#,
        r#""bodySite":{"text":V}"#,
        r#""referenceRange":[{"low":{"value":V},"high":{"value":1}}]"#,
        r#""referenceRange":[{"text":V,"appliesTo":[{"text":"a"}]}]"#,
        r#""component":[{"code":{"text":"c"},"valueQuantity":{"value":V}}]"#,
        r#""component":[{"code":V,"valueString":"x"}]"#,
        r#""component":[{"code":{"text":"c"},"interpretation":V}]"#,
        r#""extension":[{"url":"u","valueInteger":V}]"#,
        r#""extension":[{"url":"u","valuePositiveInt":V}]"#,
        r#""extension":[{"url":V,"valueUnsignedInt":1}]"#,
        r#""extension":[{"url":"u","valueDecimal":V}]"#,
        r#""hasMember":[{"reference":V}]"#,
        r#""_status":{"extension":[{"url":"u","valueString":V}]}"#,
        r#""fooBar":V"#,
        r#""language":V"#,
        r#""status":V"#,
        r#""code":V"#,
    ])
}

/// A generated registry Observation with one character changed, dropped or
/// doubled at `at` (a fraction of its length).
fn mutated(base: &str, at: f64, how: u8) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    let i = ((chars.len() as f64 * at) as usize).min(chars.len() - 1);
    match how % 4 {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, chars[i]),
        2 => chars[i] = ['"', ',', '1', '.', 'x', '}', ']', ':', ' '][usize::from(how / 4) % 9],
        _ => {
            let j = (i + 7).min(chars.len() - 1);
            chars.swap(i, j);
        }
    }
    chars.into_iter().collect()
}

fn registry_observations() -> &'static [String] {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut texts = Vec::new();
        crate::bench_data::for_each(&crate::bench_data::Spec::registry(2_000, 50), |t, json| {
            if t == "Observation" && texts.len() < 200 {
                texts.push(json.to_string());
            }
        });
        texts
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    /// On any mix of places and values, the shortcut agrees or stands aside.
    #[test]
    fn never_differs_from_fhirbolt(
        parts in prop::collection::vec((place(), scalar()), 0..4),
        spaced in any::<bool>(),
    ) {
        let mut text = r#"{"resourceType":"Observation","status":"final","code":{"text":"t"}"#.to_string();
        for (place, value) in parts {
            text.push(',');
            text.push_str(&place.replace('V', value));
        }
        text.push('}');
        if spaced {
            text = text.replace(',', ", ").replace(':', " : ").replacen(" : ", ":", 1);
        }
        agrees(&text).map_err(TestCaseError::fail)?;
    }

    /// Generated Observations with random damage: the shortcut agrees or stands aside.
    #[test]
    fn never_differs_on_damaged_observations(pick in 0usize..200, at in 0.0f64..1.0, how in any::<u8>(), twice in any::<bool>()) {
        let texts = registry_observations();
        let mut text = mutated(&texts[pick % texts.len()], at, how);
        if twice {
            text = mutated(&text, 1.0 - at, how.wrapping_add(1));
        }
        agrees(&text).map_err(TestCaseError::fail)?;
    }
}
