//! Collected data: what reading the inputs leaves for the outputs, per patient.
//!
//! [`Collected`] is the hand-over between the two halves of a run: the
//! `pipeline` fills it (its `Collector` reads files or a store resource by
//! resource) and `cohort`, `export` read it. It holds each patient's facts
//! ([`Patients`], partly in sorted runs on disk after a large input), the raw
//! JSON of every resource that gave a fact ([`Texts`], partly on disk too),
//! the data issues and counts of what was read.
//!
//! This module owns those shapes and their temporary files (through
//! `spill`). It must not read inputs, decide what a resource means (that is
//! `mapping`'s) or build rows and write outputs (that is `cohort`'s).

use std::collections::BTreeMap;

use crate::domain::{DiagnosisFact, Fact, SourceRef};
use crate::mapping::extract::PatientRecord;
use crate::report::Issues;

pub mod patients;
pub mod texts;

pub use patients::Patients;
pub use texts::Texts;

/// What the cohort layer needs of one patient.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatientData {
    /// Demographics, when the Patient resource was in the input.
    pub record: Option<PatientRecord>,
    /// Rule facts.
    pub facts: Vec<Fact>,
    /// Myositis diagnoses.
    pub diagnoses: Vec<DiagnosisFact>,
}

/// Counts of what was read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStats {
    /// Files read.
    pub files: u64,
    /// Resources seen, per type.
    pub seen: BTreeMap<String, u64>,
    /// Resources parsed in full (a rule could use them).
    pub parsed: u64,
}

/// Everything collected from the inputs.
#[derive(Debug)]
pub struct Collected {
    /// Per patient id (partly on disk after a large input).
    pub patients: Patients,
    /// Raw JSON of every resource that gave a fact, by `Type/id`.
    pub sources: Texts,
    /// Data issues.
    pub issues: Issues,
    /// Counts.
    pub stats: ReadStats,
    /// Bundle entry fullUrls (e.g. `urn:uuid:…`) of parsed resources, to what they name.
    pub aliases: BTreeMap<String, SourceRef>,
}
