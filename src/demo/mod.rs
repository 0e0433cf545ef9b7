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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_splits_into_three_sites_without_loss() {
        let bundle: Value = serde_json::from_str(BUNDLE_JSON).unwrap();
        let all: Vec<Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
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
