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
//!   Observation in which every `"code"` key is followed by `:"` (or `:{`, a
//!   CodeableConcept whose codings' codes come next) and none of
//!   those values is a code of an Observation value set, compared after
//!   trimming, upper-casing and dropping dots (so ICD spellings match too),
//!   and no Observation value set matches by text.
//!
//! What it gives up: a skipped line is checked for UTF-8 and its framing
//! (`{…}`), not for full JSON syntax, so a damaged line in the middle of an
//! irrelevant resource is not reported. This module decides nothing else.

use std::collections::HashSet;

use memchr::memmem::Finder;

use crate::mapping::{role, MappingSet};

const HEAD: &str = "{\"resourceType\":\"";

/// The codes of the Observation value sets, normalized.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `None`: never skip.
    codes: Option<HashSet<String>>,
    key: Finder<'static>,
}

impl Prefilter {
    /// The prefilter for `mappings`. When an Observation value set matches by
    /// text, it never skips Observations.
    #[must_use]
    pub fn new(mappings: &MappingSet) -> Self {
        Self {
            codes: observation_codes(mappings),
            key: Finder::new(b"\"code\"").into_owned(),
        }
    }

    /// A prefilter that never skips (every line gets the full peek).
    #[must_use]
    pub fn off() -> Self {
        Self {
            codes: None,
            key: Finder::new(b"\"code\"").into_owned(),
        }
    }

    /// The resource type when `text` is surely a resource no rule uses; `None` when unsure.
    #[must_use]
    pub fn skip<'a>(&self, text: &'a str) -> Option<&'a str> {
        let codes = self.codes.as_ref()?;
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
            "Observation" => self.no_relevant_code(text, codes),
            t => !crate::fhir::MAPPED_TYPES.contains(&t),
        };
        skip.then_some(resource_type)
    }

    /// True when every `"code"` key holds an object or a string, and no string is a needle.
    fn no_relevant_code(&self, text: &str, codes: &HashSet<String>) -> bool {
        let bytes = text.as_bytes();
        let mut buf = [0u8; 64];
        for at in self.key.find_iter(bytes) {
            let after = &text[at + 6..];
            if after.starts_with(":{") {
                continue; // a CodeableConcept: its codings' `"code"` keys come next
            }
            let Some(value) = after.strip_prefix(":\"") else {
                return false;
            };
            let Some(len) = memchr::memchr(b'"', value.as_bytes()) else {
                return false;
            };
            let Some(key) = normalize(&value[..len], &mut buf) else {
                return false;
            };
            if codes.contains(key) {
                return false;
            }
        }
        true
    }
}

/// Trimmed, upper-cased, without dots (ICD spellings); `None` when longer than `buf`.
fn normalize<'b>(code: &str, buf: &'b mut [u8; 64]) -> Option<&'b str> {
    let mut n = 0;
    for b in code.trim().bytes().filter(|b| *b != b'.') {
        *buf.get_mut(n)? = b.to_ascii_uppercase();
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).ok()
}

/// Every code of an Observation value set, normalized; `None` when one of those
/// value sets matches by text (a skip would then need the text too).
fn observation_codes(m: &MappingSet) -> Option<HashSet<String>> {
    let mut codes = HashSet::new();
    let mut buf = [0u8; 64];
    for (vs, r) in m.valuesets.iter().zip(&m.roles) {
        if r & role::OBSERVATION == 0 {
            continue;
        }
        if !vs.text.is_empty() {
            return None;
        }
        for (_, code) in &vs.codes {
            codes.insert(normalize(code, &mut buf)?.to_string());
        }
    }
    Some(codes)
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
