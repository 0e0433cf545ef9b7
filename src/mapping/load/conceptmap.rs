//! FHIR R4 ConceptMaps (`*.json` in the mappings folder): a site's local
//! codes mapped to codes the value sets know.
//!
//! Phase 1 ([`parse`]) reads the few fields used (`url`, `group[].source`,
//! `group[].target`, `group[].element[].code`, `element[].target[].code` and
//! `.equivalence`); phase 2 ([`resolve`]) checks each target against the value
//! sets and records the local coding as in the target's value sets. Targets
//! with equivalence `equivalent`, `equal`, `wider` or `subsumes` (the target
//! means at least what the local code means) are used; `narrower`,
//! `specializes`, `inexact` and `relatedto` are counted as skipped (reading the
//! local code as the target could count what it does not mean); `unmatched` and
//! `disjoint` are not mappings. A used target with `dependsOn` is refused (its
//! condition is not read); `unmapped` and `product` are not read. This module
//! reads no file and knows no resource.

use serde::Deserialize;

use super::LoadError;
use crate::mapping::codes::{CodeIndex, ConceptMaps, SystemTable, Translation, ValueSet};

/// Equivalences under which the local code is read as the target.
pub(crate) const USED: &[&str] = &["equivalent", "equal", "wider", "subsumes"];
/// Equivalences that are mappings too loose to read the local code as the target.
const SKIPPED: &[&str] = &["narrower", "specializes", "inexact", "relatedto"];
/// Equivalences that say there is no mapping.
const NONE: &[&str] = &["unmatched", "disjoint"];

/// The fields of a ConceptMap that are read.
#[derive(Debug, Deserialize)]
pub(crate) struct RawConceptMap {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    url: Option<String>,
    #[serde(default)]
    group: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
struct RawGroup {
    source: Option<String>,
    target: Option<String>,
    #[serde(default)]
    element: Vec<RawElement>,
}

#[derive(Debug, Deserialize)]
struct RawElement {
    code: Option<String>,
    #[serde(default)]
    target: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
struct RawTarget {
    code: Option<String>,
    equivalence: Option<String>,
    #[serde(rename = "dependsOn", default)]
    depends_on: Vec<serde_json::Value>,
}

fn error(file: &str, item: Option<String>, message: impl Into<String>) -> LoadError {
    LoadError {
        file: file.to_string(),
        item,
        message: message.into(),
    }
}

/// Phase 1: the JSON of one file, which must be a ConceptMap.
pub(crate) fn parse(file: &str, text: &str) -> Result<RawConceptMap, LoadError> {
    let raw: RawConceptMap =
        serde_json::from_str(text).map_err(|e| error(file, None, format!("not a ConceptMap in JSON: {e}")))?;
    match raw.resource_type.as_deref() {
        Some("ConceptMap") => Ok(raw),
        other => {
            let found = other.map_or("no resourceType".to_string(), |t| format!("resourceType {t:?}"));
            let msg = format!("{found}, not a ConceptMap (every *.json in a mappings folder is a ConceptMap)");
            Err(error(file, None, msg))
        }
    }
}

/// What phase 2 reads and writes.
pub(crate) struct Tables<'a> {
    pub systems: &'a mut SystemTable,
    pub index: &'a mut CodeIndex,
    pub maps: &'a mut ConceptMaps,
    pub valuesets: &'a mut [ValueSet],
    pub errors: &'a mut Vec<LoadError>,
}

/// Phase 2: every map's targets checked against the value sets (all targets
/// first, so one map cannot chain through another), then each local coding
/// recorded in its target's value sets (their code lists too, so the
/// prefilter and a server search know it).
pub(crate) fn resolve(files: &[(String, RawConceptMap)], mut t: Tables<'_>) {
    let mut found = Vec::new();
    for (file, raw) in files {
        let map = raw.url.clone().unwrap_or_else(|| file.clone());
        t.maps.files.push((file.clone(), map.clone()));
        for (g, group) in raw.group.iter().enumerate() {
            let (Some(source), Some(target)) = (group.source.as_deref(), group.target.as_deref()) else {
                t.errors.push(error(
                    file,
                    Some(format!("group[{g}]")),
                    "needs source and target systems",
                ));
                continue;
            };
            let source = t.systems.intern(source);
            for (e, el) in group.element.iter().enumerate() {
                let item = format!("group[{g}].element[{e}]");
                let Some(code) = el.code.as_deref().filter(|c| !c.trim().is_empty()) else {
                    t.errors.push(error(file, Some(item), "an element without a code"));
                    continue;
                };
                for (k, to) in el.target.iter().enumerate() {
                    let item = format!("{item}.target[{k}] ({code})");
                    let Some(tr) = translation(file, &item, &map, target, to, &mut t) else {
                        continue;
                    };
                    found.push((source, code.to_string(), tr));
                }
            }
        }
    }
    for (source, code, tr) in found {
        let local = (t.systems.uri(source).to_string(), code.trim().to_string());
        for &vs in &tr.valuesets {
            t.index.insert(t.systems, source, &code, vs);
            if !t.valuesets[vs].codes.contains(&local) {
                t.valuesets[vs].codes.push(local.clone());
            }
        }
        t.maps.insert(t.systems, source, &code, tr);
    }
}

/// One target, checked; `None` when skipped or wrong (then an error is recorded).
fn translation(
    file: &str,
    item: &str,
    map: &str,
    system: &str,
    to: &RawTarget,
    t: &mut Tables<'_>,
) -> Option<Translation> {
    let eq = to.equivalence.as_deref().unwrap_or("");
    if NONE.contains(&eq) {
        return None;
    }
    if SKIPPED.contains(&eq) {
        t.maps.skipped += 1;
        return None;
    }
    let mut err = |msg: String| {
        t.errors.push(error(file, Some(item.to_string()), msg));
        None
    };
    if !USED.contains(&eq) {
        let found = to
            .equivalence
            .as_ref()
            .map_or("no equivalence (R4 requires one)".to_string(), |e| {
                format!("equivalence {e:?} is not an R4 ConceptMap equivalence")
            });
        return err(format!("{found}; used: {}", USED.join(", ")));
    }
    let Some(code) = to.code.as_deref().filter(|c| !c.trim().is_empty()) else {
        return err("a target without a code".into());
    };
    if !to.depends_on.is_empty() {
        return err("dependsOn is not read (the mapping would apply without its condition); map without it".into());
    }
    let valuesets = t.index.get(t.systems, system, code).to_vec();
    if valuesets.is_empty() {
        return err(format!("target {system}|{code} is in no value set of these mappings"));
    }
    let sys = t.systems.lookup(system)?;
    Some(Translation {
        target_system: sys,
        target_code: t.systems.normalize_code(sys, code),
        target: format!("{}|{}", t.systems.uri(sys), code.trim()),
        map: map.to_string(),
        valuesets,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mapping::{MappingSet, BUILTIN};

    const LAB: &str = "http://hospital-a.example/lab";
    const LOINC: &str = "http://loinc.org";

    fn load(maps: &[serde_json::Value]) -> Result<MappingSet, String> {
        let mut sources: Vec<(String, String)> = BUILTIN.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
        for (i, m) in maps.iter().enumerate() {
            sources.push((format!("map{i}.json"), m.to_string()));
        }
        crate::mapping::load::from_sources(sources).map_err(|e| e.to_string())
    }

    fn map(source: &str, target: &str, elements: serde_json::Value) -> serde_json::Value {
        json!({"resourceType": "ConceptMap", "group": [{"source": source, "target": target, "element": elements}]})
    }

    #[test]
    fn wider_and_subsumes_are_used_looser_ones_skipped_and_maps_do_not_chain() {
        let m = load(&[map(
            LAB,
            LOINC,
            json!([
                {"code": "CK-W", "target": [{"code": "2157-6", "equivalence": "wider"}]},
                {"code": "CK-S", "target": [{"code": "2157-6", "equivalence": "subsumes"}]},
                {"code": "CK-R", "target": [{"code": "2157-6", "equivalence": "relatedto"}]},
                {"code": "CK-I", "target": [{"code": "2157-6", "equivalence": "inexact"}]},
                {"code": "CK-U", "target": [{"equivalence": "unmatched"}]},
            ]),
        )])
        .unwrap();
        let ck = m.valueset("ck").unwrap();
        for (code, read) in [
            ("CK-W", true),
            ("CK-S", true),
            ("CK-R", false),
            ("CK-I", false),
            ("CK-U", false),
        ] {
            assert_eq!(m.in_valueset(ck, Some(LAB), Some(code)), read, "{code}");
        }
        assert_eq!((m.concept_maps.len(), m.concept_maps.skipped), (2, 2));
        assert_eq!(m.translation(ck, LAB, "CK-W").unwrap().map, "map0.json");
        // A map into another map's local code is refused: targets are the value sets' own codes.
        let chained = [
            map(
                LAB,
                LOINC,
                json!([{"code": "CK-A", "target": [{"code": "2157-6", "equivalence": "equal"}]}]),
            ),
            map(
                "http://other.example",
                LAB,
                json!([{"code": "X", "target": [{"code": "CK-A", "equivalence": "equal"}]}]),
            ),
        ];
        let err = load(&chained).unwrap_err();
        assert!(
            err.contains(&format!(
                "map1.json:group[0].element[0].target[0] (X): target {LAB}|CK-A is in no value set"
            )),
            "{err}"
        );
    }
}
