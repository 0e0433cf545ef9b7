//! The byte-level look before the peek: most lines of a Bulk Data export are
//! Observations no rule uses (vital signs, common labs). When a line's bytes
//! alone show that it is one of them, it is counted and skipped without being
//! deserialized.
//!
//! A line is skipped only when all of these hold; otherwise the full peek
//! ([`super::peek::classify`]) decides, so a relevant resource is never dropped
//! and a damaged line is always reported:
//! - it starts with `{"resourceType":"`;
//! - it is ASCII without control bytes or backslashes (no escape can hide a
//!   code or a word);
//! - it is one well-formed JSON object ([`super::skim`] checks its syntax in
//!   the same pass);
//! - its type is not read by any rule (e.g. Encounter), or it is an
//!   Observation whose `code` has the shape the peek reads and none of whose
//!   codings' codes, nor any of its `component`s' codes (a panel's results),
//!   is a code of an Observation value set, compared after
//!   trimming, upper-casing and dropping dots (so ICD spellings match too),
//!   and no Observation value set matches by text.
//!
//! This module decides nothing else, and knows no mapping: which codes
//! matter comes in as a plain list (`MappingSet::observation_codes` builds it).

use super::skim::{self, Codes, Shape};

const HEAD: &str = "{\"resourceType\":\"";

/// The codes of the Observation value sets, normalized.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `None`: never skip.
    codes: Option<Codes>,
}

impl Prefilter {
    /// The prefilter for the codes of the Observation value sets
    /// (`observation_codes`); `None` when one of those value sets matches by
    /// text: then it never skips Observations.
    #[must_use]
    pub fn new(observation_codes: Option<Vec<&str>>) -> Self {
        Self {
            codes: observation_codes.and_then(normalized),
        }
    }

    /// A prefilter that never skips (every line gets the full peek).
    #[must_use]
    pub fn off() -> Self {
        Self { codes: None }
    }

    /// True unless the prefilter never skips ([`Prefilter::off`], or a value
    /// set matches by text): then most Observations that reach the peek are ones a rule uses.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.codes.is_some()
    }

    /// The resource type when `text` is surely a resource no rule uses; `None` when unsure.
    #[must_use]
    pub fn skip<'a>(&self, text: &'a str) -> Option<&'a str> {
        let codes = self.codes.as_ref()?;
        let rest = text.strip_prefix(HEAD)?;
        if !skim::precondition(text.as_bytes()) {
            return None;
        }
        let end = memchr::memchr(b'"', rest.as_bytes())?;
        let resource_type = &rest[..end];
        if resource_type.is_empty() || !resource_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let shape = match resource_type {
            "Observation" => Shape::Observation,
            t if crate::fhir::MAPPED_TYPES.contains(&t) => return None,
            _ => Shape::Any,
        };
        skim::skim(text.as_bytes(), shape, codes).then_some(resource_type)
    }
}

/// Every code, normalized; `None` when one cannot be (then nothing is skipped).
fn normalized(codes: Vec<&str>) -> Option<Codes> {
    let mut buf = [0u8; 64];
    let codes = codes
        .into_iter()
        .map(|code| skim::normalize(code.as_bytes(), &mut buf).map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    Some(Codes::new(codes))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fhir::peek::{classify, Relevance};
    use crate::mapping::MappingSet;

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
        let p = Prefilter::new(m.observation_codes());
        let hr = obs("http://loinc.org", "8867-4", "Heart rate");
        assert_eq!(p.skip(&hr), Some("Observation"));
        assert_eq!(p.skip(r#"{"resourceType":"Encounter","id":"e"}"#), Some("Encounter"));
        assert_eq!(p.skip(&obs("http://loinc.org", "2157-6", "CK")), None);
        // A panel holding a CK among its components is not skipped.
        let panel = hr.replace(
            r#","subject""#,
            r#","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]}}],"subject""#,
        );
        assert_eq!(p.skip(&panel), None);
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
            component in prop::option::of(code_piece()),
        ) {
            let m = set();
            let p = Prefilter::new(m.observation_codes());
            let component = component.map_or(String::new(), |(s, c)| {
                format!(r#","component":[{{"code":{{"text":"x"}}}},{{"code":{{"coding":[{{"system":"{s}","code":"{c}"}}]}},"valueString":"1"}}]"#)
            });
            let line = format!(
                r#"{{"resourceType":"{ty}","id":"x","code":{{"coding":[{{"system":"{system}","code":"{code}","display":"{display}"}}],"text":"{text}"}},"subject":{{"reference":"Patient/p"}}{component}}}"#
            );
            if let Some(t) = p.skip(&line) {
                let (peeked, relevance) = classify(&line, &m).expect("a skipped line is a resource");
                prop_assert_eq!(peeked.as_ref(), t);
                prop_assert_eq!(relevance, Relevance::Skip, "{}", line);
            }
        }
    }
}
