//! The byte-level look before the peek: most lines of a Bulk Data export are
//! Observations no rule uses (vital signs, common labs). When a line's bytes
//! alone show that it is one of them, it is counted and skipped without being
//! deserialized.
//!
//! A line is skipped only when all of these hold; otherwise the full peek
//! ([`super::peek::classify`]) decides, so a relevant resource is never dropped:
//! - it starts with `{"resourceType":"` and ends with `}`;
//! - it is ASCII and holds no backslash (no escape can hide a code or a word);
//! - its type is not read by any rule (e.g. Encounter), or it is an
//!   Observation whose line contains none of the *needles* (ASCII case
//!   ignored): every code of an Observation value set, every name of a code
//!   system compared loosely (ICD: dots and case), and every word of an
//!   Observation value set's text matching.
//!
//! What it gives up: a skipped line is checked for UTF-8 and its framing
//! (`{…}`), not for full JSON syntax, so a damaged line in the middle of an
//! irrelevant resource is not reported. This module decides nothing else.

use aho_corasick::AhoCorasick;

use crate::mapping::{role, MappingSet};

const HEAD: &str = "{\"resourceType\":\"";

/// Needles of the relevant Observation codes, systems and words.
#[derive(Debug, Clone)]
pub struct Prefilter {
    needles: Option<AhoCorasick>,
}

impl Prefilter {
    /// The prefilter for `mappings`. If the needles cannot be built it never skips.
    #[must_use]
    pub fn new(mappings: &MappingSet) -> Self {
        let needles = observation_needles(mappings);
        let needles = AhoCorasick::builder().ascii_case_insensitive(true).build(&needles).ok();
        Self { needles }
    }

    /// A prefilter that never skips (every line gets the full peek).
    #[must_use]
    pub fn off() -> Self {
        Self { needles: None }
    }

    /// The resource type when `text` is surely a resource no rule uses; `None` when unsure.
    #[must_use]
    pub fn skip<'a>(&self, text: &'a str) -> Option<&'a str> {
        let needles = self.needles.as_ref()?;
        let rest = text.strip_prefix(HEAD)?;
        if !text.ends_with('}') || !text.is_ascii() || memchr::memchr(b'\\', text.as_bytes()).is_some() {
            return None;
        }
        let end = memchr::memchr(b'"', rest.as_bytes())?;
        let resource_type = &rest[..end];
        if resource_type.is_empty() || !resource_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let skip = match resource_type {
            "Observation" => !needles.is_match(text),
            t => !crate::fhir::MAPPED_TYPES.contains(&t),
        };
        skip.then_some(resource_type)
    }
}

/// Codes (as written, trimmed) of Observation value sets in exactly compared
/// systems; every name of loosely compared systems; Observation text words.
fn observation_needles(m: &MappingSet) -> Vec<String> {
    let mut needles = Vec::new();
    for (vs, r) in m.valuesets.iter().zip(&m.roles) {
        if r & role::OBSERVATION == 0 {
            continue;
        }
        for (system, code) in &vs.codes {
            match m.systems.lookup(system) {
                Some(i) if m.systems.is_exact(i) => needles.push(code.trim().to_string()),
                Some(i) => needles.extend(m.systems.names_of(i).map(str::to_string)),
                // Unknown system: compared exactly (interned as such).
                None => needles.push(code.trim().to_string()),
            }
        }
        needles.extend(vs.text.iter().map(|w| w.trim().to_string()));
    }
    needles.retain(|n| !n.is_empty());
    needles.sort();
    needles.dedup();
    needles
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fhir::peek::{classify, Relevance};

    fn set() -> MappingSet {
        MappingSet::builtin().unwrap()
    }

    fn obs(system: &str, code: &str, text: &str) -> String {
        format!(
            r#"{{"resourceType":"Observation","id":"o1","status":"final","code":{{"coding":[{{"system":"{system}","code":"{code}"}}],"text":"{text}"}},"subject":{{"reference":"Patient/p"}},"valueQuantity":{{"value":2080,"unit":"U/L"}}}}"#
        )
    }

    #[test]
    fn skips_vital_signs_and_other_types_keeps_ck() {
        let m = set();
        let p = Prefilter::new(&m);
        let hr = obs("http://loinc.org", "8867-4", "Heart rate");
        assert_eq!(p.skip(&hr), Some("Observation"));
        assert_eq!(p.skip(r#"{"resourceType":"Encounter","id":"e"}"#), Some("Encounter"));
        assert_eq!(p.skip(&obs("http://loinc.org", "2157-6", "CK")), None);
        assert_eq!(p.skip(r#"{"resourceType":"Patient","id":"p"}"#), None);
        // Escapes, another key order, whitespace, a cut line: the full peek decides.
        assert_eq!(p.skip(&obs("http://loinc.org", "\\u0032157-6", "CK")), None);
        assert_eq!(p.skip(r#"{"id":"e","resourceType":"Encounter"}"#), None);
        assert_eq!(p.skip(r#"{ "resourceType":"Encounter"}"#), None);
        assert_eq!(p.skip(r#"{"resourceType":"Observation","id":"o1","code":{"#), None);
        assert_eq!(Prefilter::off().skip(&hr), None);
    }

    /// Pieces a line is built from: relevant and irrelevant codes, spellings that
    /// compare equal after normalization, escapes and odd whitespace.
    fn code_piece() -> impl Strategy<Value = (String, String)> {
        let systems = prop::sample::select(vec![
            "http://loinc.org",
            "http://hl7.org/fhir/sid/icd-10-cm",
            "urn:oid:2.16.840.1.113883.6.90",
            " http://loinc.org ",
            "https://imnm-fhir.org/fhir/CodeSystem/imnm-case",
            "http://purl.obolibrary.org/obo/hp",
            "http://snomed.info/sct",
        ]);
        let codes = prop::sample::select(vec![
            "2157-6",
            " 2157-6",
            "8867-4",
            "93493-5",
            "33921-8",
            "L94.4",
            "l944",
            "L944",
            "M60.9",
            "gottron",
            "HP:0003701",
            "\\u0032157-6",
            "29463-7",
            "bx-necrosis",
            "103338009",
            "1554",
        ]);
        (systems, codes).prop_map(|(s, c)| (s.to_string(), c.to_string()))
    }

    fn text_piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "Heart rate",
            "CK total",
            "Proximal muscle weakness",
            "PROXIMAL WEAKNESS",
            "Gottron\\u0027s papules",
            "weakness",
            "Creatine kinase",
            "Myopathic EMG pattern",
            "remission",
            "Ödem",
            "",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        /// Whatever the line, a skip agrees with the full peek: same type, nothing a rule uses.
        #[test]
        fn never_skips_what_the_peek_would_keep(
            (system, code) in code_piece(),
            text in text_piece(),
            display in text_piece(),
            ty in prop::sample::select(vec!["Observation", "Condition", "Encounter", "Medication", "Patient"]),
        ) {
            let m = set();
            let p = Prefilter::new(&m);
            let line = format!(
                r#"{{"resourceType":"{ty}","id":"x","code":{{"coding":[{{"system":"{system}","code":"{code}","display":"{display}"}}],"text":"{text}"}},"subject":{{"reference":"Patient/p"}}}}"#
            );
            if let Some(t) = p.skip(&line) {
                let (peeked, relevance) = classify(&line, &m).expect("a skipped line is a resource");
                prop_assert_eq!(peeked.as_ref(), t);
                prop_assert_eq!(relevance, Relevance::Skip, "{}", line);
            }
        }
    }
}
