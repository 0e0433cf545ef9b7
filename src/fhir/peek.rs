//! The narrow, borrowed first look at a resource: enough to decide whether any
//! mapping rule can use it, without building the full model.
//!
//! The peek reads the codes and words of a resource; which of them matter is
//! asked of a [`Relevant`] (the mappings implement it, in
//! `mapping::relevance`). This module knows no value set.

use std::borrow::Cow;

use serde::Deserialize;

/// Which resources a code or a word is looked for on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `Observation.code`.
    Observation,
    /// `Condition.code`.
    Condition,
    /// Medication codes (inline or `Medication.code`).
    Medication,
    /// `DiagnosticReport.code` and `DiagnosticReport.conclusionCode`.
    Report,
    /// `DiagnosticReport.code` of a report whose text rules read.
    Text,
}

/// Which codes and words make a resource worth parsing in full.
pub trait Relevant {
    /// True when the coding `system|code` matters on resources of `role`.
    fn code_matters(&self, system: &str, code: &str, role: Role) -> bool;
    /// True when the text (a CodeableConcept's `text` or a coding's
    /// `display`) matters on resources of `role`.
    fn text_matters(&self, text: &str, role: Role) -> bool;
    /// True when every resource of `resource_type` may matter, whatever its
    /// codes (a DocumentReference when text rules read notes: the peek does
    /// not read a note's type).
    fn reads_every(&self, resource_type: &str) -> bool {
        let _ = resource_type;
        false
    }
}

/// The few elements the relevance decision needs.
#[derive(Debug, Deserialize)]
pub struct Peek<'a> {
    /// `resourceType`.
    #[serde(rename = "resourceType", borrow)]
    pub resource_type: Cow<'a, str>,
    /// `id`.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// `code` (Observation, Condition, Medication).
    #[serde(borrow, default)]
    pub code: Option<PeekConcept<'a>>,
    /// `medicationCodeableConcept` (Medication* resources).
    #[serde(rename = "medicationCodeableConcept", borrow, default)]
    pub medication: Option<PeekConcept<'a>>,
    /// Whether `medicationReference` is present.
    #[serde(rename = "medicationReference", default)]
    pub medication_reference: Option<serde::de::IgnoredAny>,
    /// `conclusionCode` (DiagnosticReport).
    #[serde(rename = "conclusionCode", borrow, default)]
    pub conclusion_code: Option<Vec<PeekConcept<'a>>>,
    /// `component` (an Observation panel's results): only their codes.
    #[serde(borrow, default)]
    pub component: Option<Vec<PeekComponent<'a>>>,
    /// `contained` resources, peeked the same way (a DiagnosticReport's contained results).
    #[serde(borrow, default)]
    pub contained: Option<Vec<Peek<'a>>>,
}

/// An Observation component, borrowed: its code only.
#[derive(Debug, Deserialize)]
pub struct PeekComponent<'a> {
    /// `component.code`.
    #[serde(borrow, default)]
    pub code: Option<PeekConcept<'a>>,
}

/// A CodeableConcept, borrowed.
#[derive(Debug, Deserialize)]
pub struct PeekConcept<'a> {
    /// `coding`.
    #[serde(borrow, default)]
    pub coding: Vec<PeekCoding<'a>>,
    /// `text`.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// A Coding, borrowed.
#[derive(Debug, Deserialize)]
pub struct PeekCoding<'a> {
    /// `system`.
    #[serde(borrow, default)]
    pub system: Option<Cow<'a, str>>,
    /// `code`.
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
    /// `display`.
    #[serde(borrow, default)]
    pub display: Option<Cow<'a, str>>,
}

/// The smallest shape: used when the narrow struct does not fit (odd types).
#[derive(Debug, Deserialize)]
struct MinimalPeek<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Cow<'a, str>,
}

/// What the peek decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relevance {
    /// A rule may use it: parse it in full.
    Parse,
    /// A Medication no rule matches: remember only that it exists.
    KnownMedication,
    /// Nothing uses it.
    Skip,
}

/// Why a text is not a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekError {
    /// Not JSON.
    Malformed(String),
    /// JSON without `resourceType`.
    NotAResource,
}

/// Peeks at `text` and decides what to do with it. Returns the resource type too.
pub fn classify<'a>(text: &'a str, mappings: &impl Relevant) -> Result<(Cow<'a, str>, Relevance), PeekError> {
    match serde_json::from_str::<Peek<'a>>(text) {
        Ok(p) => {
            let relevance = relevance(&p, mappings);
            Ok((p.resource_type, relevance))
        }
        Err(_) => match serde_json::from_str::<MinimalPeek<'a>>(text) {
            // The narrow struct did not fit (e.g. `code` is not an object): let the full parse report it.
            Ok(m) if crate::fhir::MAPPED_TYPES.contains(&m.resource_type.as_ref()) => {
                Ok((m.resource_type, Relevance::Parse))
            }
            Ok(m) => Ok((m.resource_type, Relevance::Skip)),
            Err(e) if e.is_data() => Err(PeekError::NotAResource),
            Err(e) => Err(PeekError::Malformed(format!(
                "line {} column {}: {}",
                e.line(),
                e.column(),
                classify_error(&e)
            ))),
        },
    }
}

fn classify_error(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Io => "read error",
    }
}

fn concept_has_role(c: &PeekConcept<'_>, mappings: &impl Relevant, role: Role) -> bool {
    let coded = c.coding.iter().any(|cd| match (&cd.system, &cd.code) {
        (Some(s), Some(k)) => mappings.code_matters(s, k, role),
        _ => false,
    });
    coded || concept_texts(c).any(|t| mappings.text_matters(t, role))
}

fn concept_texts<'b>(c: &'b PeekConcept<'_>) -> impl Iterator<Item = &'b str> {
    c.text
        .iter()
        .map(|t| t.as_ref())
        .chain(c.coding.iter().filter_map(|cd| cd.display.as_deref()))
}

/// What the peek `p` decides (see [`classify`]).
pub(crate) fn relevance(p: &Peek<'_>, mappings: &impl Relevant) -> Relevance {
    let code_has = |role| p.code.as_ref().is_some_and(|c| concept_has_role(c, mappings, role));
    let relevant = match p.resource_type.as_ref() {
        "Patient" => true,
        "Condition" => code_has(Role::Condition),
        // A panel is read when its own code or a component's matters (a blood
        // pressure panel, whose codes no rule uses, is still skipped).
        "Observation" => {
            code_has(Role::Observation)
                || p.component.iter().flatten().any(|c| {
                    c.code
                        .as_ref()
                        .is_some_and(|c| concept_has_role(c, mappings, Role::Observation))
                })
        }
        // A report is read when its code or a conclusion code matters; the
        // Observations its `result` references are read on their own.
        "DiagnosticReport" => {
            code_has(Role::Report)
                || code_has(Role::Text)
                || mappings.reads_every("DiagnosticReport")
                || p.conclusion_code
                    .iter()
                    .flatten()
                    .any(|c| concept_has_role(c, mappings, Role::Report))
                || p.contained
                    .iter()
                    .flatten()
                    .any(|c| c.resource_type == "Observation" && relevance(c, mappings) == Relevance::Parse)
        }
        "Medication" => {
            return if code_has(Role::Medication) {
                Relevance::Parse
            } else {
                Relevance::KnownMedication
            };
        }
        "MedicationStatement" | "MedicationRequest" | "MedicationAdministration" | "MedicationDispense" => {
            p.medication_reference.is_some()
                || p.medication
                    .as_ref()
                    .is_some_and(|c| concept_has_role(c, mappings, Role::Medication))
        }
        "DocumentReference" => mappings.reads_every("DocumentReference"),
        _ => false,
    };
    if relevant {
        Relevance::Parse
    } else {
        Relevance::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingSet;

    fn set() -> MappingSet {
        MappingSet::builtin().unwrap()
    }

    #[test]
    fn keeps_what_rules_use_and_skips_the_rest() {
        let m = set();
        let ck = r#"{"resourceType":"Observation","id":"o1","code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]},"valueQuantity":{"value":2080}}"#;
        let hr = r#"{"resourceType":"Observation","id":"o2","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}}"#;
        let enc = r#"{"resourceType":"Encounter","id":"e1"}"#;
        let mr = r#"{"resourceType":"MedicationRequest","id":"m1","medicationReference":{"reference":"Medication/x"}}"#;
        assert_eq!(classify(ck, &m).unwrap().1, Relevance::Parse);
        assert_eq!(classify(hr, &m).unwrap().1, Relevance::Skip);
        assert_eq!(classify(enc, &m).unwrap().1, Relevance::Skip);
        assert_eq!(classify(mr, &m).unwrap().1, Relevance::Parse);
        let panel = r#"{"resourceType":"Observation","id":"p","code":{"text":"Myositis panel"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}},{"code":{"coding":[{"system":"http://loinc.org","code":"93493-5"}]}}]}"#;
        assert_eq!(classify(panel, &m).unwrap().1, Relevance::Parse);
        let bp = r#"{"resourceType":"Observation","id":"b","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]}}]}"#;
        assert_eq!(classify(bp, &m).unwrap().1, Relevance::Skip);
    }

    #[test]
    fn tells_malformed_from_not_a_resource() {
        let m = set();
        assert!(matches!(
            classify("{\"resourceType\":", &m),
            Err(PeekError::Malformed(_))
        ));
        assert_eq!(classify("{\"a\":1}", &m).unwrap_err(), PeekError::NotAResource);
        let odd = r#"{"resourceType":"Observation","code":"2157-6"}"#;
        assert_eq!(classify(odd, &m).unwrap().1, Relevance::Parse);
    }
}
