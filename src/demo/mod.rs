//! The built-in demo dataset: 10 synthetic children whose summary equals the
//! seed case series, written in three EHR styles, plus distractors. See
//! `examples/demo-cohort/README.md`. No real patients.
//!
//! **Not API** beyond [`BUNDLE_JSON`]: the generator is public only for the
//! `imnm demo` command, the examples and the tests; it may change in any release.

pub mod generate;

/// The demo dataset as one FHIR collection Bundle (the committed
/// `examples/demo-cohort/bundle.json`), built into the binary so `imnm demo`
/// needs no files.
pub const BUNDLE_JSON: &str = include_str!("../../examples/demo-cohort/bundle.json");

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// The demo resources split by the site that wrote them (`a` Epic style, `b`
/// Cerner style, `c` HAPI style): a Patient by its record-number system
/// (`urn:oid:1.2.3.4.5.site-X.mrn`), every other resource by its patient's
/// site; resources of no patient (site A's shared Medications) go to site `a`.
pub fn sites(resources: &[Value]) -> BTreeMap<char, Vec<Value>> {
    let site_of_patient: HashMap<&str, char> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .filter_map(|p| {
            let system = p["identifier"][0]["system"].as_str()?;
            let site = system.strip_prefix("urn:oid:1.2.3.4.5.site-")?.chars().next()?;
            Some((p["id"].as_str()?, site))
        })
        .collect();
    let mut out: BTreeMap<char, Vec<Value>> = BTreeMap::new();
    for r in resources {
        let patient = if r["resourceType"] == "Patient" {
            r["id"].as_str()
        } else {
            ["subject", "patient"]
                .iter()
                .find_map(|f| r[*f]["reference"].as_str())
                .and_then(|s| s.strip_prefix("Patient/"))
        };
        let site = patient.and_then(|p| site_of_patient.get(p)).copied().unwrap_or('a');
        out.entry(site).or_default().push(r.clone());
    }
    out
}

/// One site's resources with HAPI-style ids: per type `1`, `2`, `3`, … in
/// order, every `reference` to a renumbered resource rewritten. Two sites
/// renumbered this way use the same ids for different children, as real
/// hospitals do (`imnm demo` serves its sites so).
pub fn renumber(resources: &[Value]) -> Vec<Value> {
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for r in resources {
        let (Some(t), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) else {
            continue;
        };
        let n = next.entry(t.to_string()).or_insert(0);
        *n += 1;
        ids.insert(format!("{t}/{id}"), format!("{t}/{n}"));
    }
    resources
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            if let Some(new) = ids
                .get(&key)
                .and_then(|k| k.split_once('/'))
                .map(|(_, id)| id.to_string())
            {
                r["id"] = Value::String(new);
            }
            rewrite_references(&mut r, &ids);
            r
        })
        .collect()
}

/// Rewrites every `reference` of `v` (at any depth) that `ids` maps
/// (`Type/id` → its new reference), leaving the others as written.
pub fn rewrite_references(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if k == "reference" => {
                        if let Some(new) = ids.get(s.as_str()) {
                            *s = new.clone();
                        }
                    }
                    _ => rewrite_references(child, ids),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| rewrite_references(c, ids)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_resources() -> Vec<Value> {
        let bundle: Value = serde_json::from_str(BUNDLE_JSON).unwrap();
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect()
    }

    #[test]
    fn renumbered_sites_share_ids_and_keep_their_references() {
        let all = demo_resources();
        let by_site = sites(&all);
        let (a, b) = (renumber(&by_site[&'a']), renumber(&by_site[&'b']));
        let patient_ids = |rs: &[Value]| -> Vec<String> {
            rs.iter()
                .filter(|r| r["resourceType"] == "Patient")
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(patient_ids(&a).contains(&"1".to_string()) && patient_ids(&b).contains(&"1".to_string()));
        for r in &b {
            if let Some(s) = r["subject"]["reference"].as_str() {
                let id = s.strip_prefix("Patient/").unwrap();
                assert!(
                    patient_ids(&b).iter().any(|p| p == id),
                    "{s} names a Patient of the site"
                );
            }
        }
    }

    #[test]
    fn the_demo_splits_into_three_sites_without_loss() {
        let all = demo_resources();
        let sites = sites(&all);
        assert_eq!(sites.keys().collect::<String>(), "abc");
        assert_eq!(sites.values().map(Vec::len).sum::<usize>(), all.len());
        let patients = |s: char| sites[&s].iter().filter(|r| r["resourceType"] == "Patient").count();
        // Children 1-3 and 10 plus D1 (a), 4-6 plus D3 (b), 7-9 plus D2 and D4 (c).
        assert_eq!((patients('a'), patients('b'), patients('c')), (5, 4, 5));
        assert!(sites[&'a'].iter().any(|r| r["resourceType"] == "Medication"));
        assert!(!sites[&'b']
            .iter()
            .any(|r| r["resourceType"] == "MedicationRequest" && r["medicationReference"].is_object()));
    }
}
