//! Facts: what one mapping rule read from one resource.
//!
//! The mapping layer turns FHIR resources into facts; the cohort layer turns a
//! patient's facts into one [`CaseRow`](super::CaseRow). A fact always names
//! the resource it came from, so every cohort cell has provenance.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::date::FhirDate;
use super::values::{AntibodyStatus, Outcome};

/// The resource a fact came from (`Type/id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    /// FHIR resource type, e.g. `Observation`.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
}

impl SourceRef {
    /// A reference to `resource_type/id`.
    pub fn new(resource_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            resource_type: resource_type.into(),
            id: id.into(),
        }
    }

    /// `Type/id`, as [`ToString::to_string`] gives it, joined without the
    /// formatting machinery (the cohort names one per provenance source).
    pub fn name(&self) -> String {
        [self.resource_type.as_str(), "/", self.id.as_str()].concat()
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

/// How a Condition relates to IMNM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiagnosisKind {
    /// An IMNM code (value set `imnm-diagnosis`): makes a case.
    Qualifying,
    /// A parent code whose text names IMNM: makes a case.
    ParentWithText,
    /// A parent code without IMNM wording: a candidate at most.
    ParentOnly,
    /// A differential diagnosis (dermatomyositis, polymyositis, IBM): never a case.
    Differential,
    /// No IMNM or parent code, but the text names IMNM: a candidate at most.
    TextOnly,
}

impl DiagnosisKind {
    /// True when this diagnosis makes the patient a case.
    pub fn qualifies(self) -> bool {
        matches!(self, DiagnosisKind::Qualifying | DiagnosisKind::ParentWithText)
    }
}

/// Where a diagnosis's onset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Onset {
    /// `Condition.onsetAge`, in years.
    Age(f64),
    /// A date, with the FHIR element it was read from.
    Date(FhirDate, OnsetElement),
}

/// The Condition element an onset date was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnsetElement {
    /// `onsetDateTime`.
    DateTime,
    /// `onsetPeriod.start`.
    PeriodStart,
}

impl OnsetElement {
    /// The element's FHIR path below `Condition`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DateTime => "onsetDateTime",
            Self::PeriodStart => "onsetPeriod.start",
        }
    }
}

/// One myositis Condition of a patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisFact {
    /// How it relates to IMNM.
    pub kind: DiagnosisKind,
    /// The matching coding, as `system|code`.
    pub code: String,
    /// Onset, when recorded.
    pub onset: Option<Onset>,
    /// `Condition.recordedDate`.
    pub recorded: Option<FhirDate>,
    /// The onset age in completed years the Condition states in the
    /// `onset-age-years` extension (written by `to-fhir` and de-identification).
    pub age_years: Option<u32>,
    /// `Condition.clinicalStatus` is `remission` (or `resolved`).
    pub remission: bool,
    /// The Condition.
    pub source: SourceRef,
    /// Which of its site's kept texts is the Condition's.
    #[serde(default)]
    pub text: TextNumber,
}

/// Which MRI finding a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MriPart {
    /// Muscle oedema.
    Edema,
    /// Fatty infiltration.
    Fatty,
}

/// The value a rule read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FactValue {
    /// A quantity in the rule's canonical unit.
    Quantity(f64),
    /// The peak of `count` results, as a case report states it (a CK
    /// Observation with the `ck-result-count` extension).
    Summary {
        /// The peak, in the rule's canonical unit.
        peak: f64,
        /// How many results it summarises.
        count: u32,
    },
    /// An antibody result.
    Antibody(AntibodyStatus),
    /// A finding present (`true`) or absent.
    Present(bool),
    /// One MRI finding present or absent.
    Mri(MriPart, bool),
    /// A treatment was given.
    Exposure,
    /// An outcome assessment.
    Outcome(Outcome),
}

/// How a fact was read, for the order of evidence (README "Findings from
/// text"): a code wins over text, and text of a kind a text rule lists
/// earlier wins over text of a later kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum Evidence {
    /// A code: an Observation, a Condition, a report's conclusionCode or a
    /// report coded as the finding.
    #[default]
    Coded,
    /// Report or note text of the `n`-th source kind its text rule lists (0 first).
    Text(u8),
}

/// One value read by one rule from one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Index of the rule in the mapping set.
    pub rule: usize,
    /// What was read.
    pub value: FactValue,
    /// When it applies (effective / authored / asserted date), if known.
    pub date: Option<FhirDate>,
    /// The resource it came from.
    pub source: SourceRef,
    /// The code read: the resource's first coding (`system|code`); for a drug, the matching coding or `text`.
    pub code: String,
    /// How it was read: the raw value and unit, the element, the cutoff used.
    pub detail: String,
    /// A second resource the value depends on (the Medication a request names).
    pub via: Option<SourceRef>,
    /// Coded, or which kind of text.
    #[serde(default)]
    pub evidence: Evidence,
    /// Which of its site's kept texts is `source`'s ([`TextNumber`]).
    #[serde(default)]
    pub text: TextNumber,
    /// Which is `via`'s.
    #[serde(default)]
    pub via_text: TextNumber,
}

/// Which of a site's kept resource texts a fact's resource is: its number,
/// from 0, in the order the collector kept them (`collect::Texts`), set by the
/// collector as it keeps the text; `None` until then, or when no text was
/// kept. The cohort marks the texts behind its cells by it, so no key is
/// looked up to choose them.
pub type TextNumber = Option<u64>;

#[cfg(test)]
mod tests {
    use super::SourceRef;

    proptest::proptest! {
        #[test]
        fn a_source_name_is_its_display(t in ".{0,20}", id in ".{0,40}") {
            let s = SourceRef::new(t, id);
            proptest::prop_assert_eq!(s.name(), s.to_string());
        }
    }
}
