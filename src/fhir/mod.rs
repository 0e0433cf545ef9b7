//! FHIR R4 at the edges: reading inputs, peeking at resources, parsing with
//! fhirbolt, references and OperationOutcome.
//!
//! This module owns every contact with FHIR JSON. It hands typed fhirbolt
//! resources to `mapping::extract` and must not decide what a resource means
//! for the registry (that is `mapping/`), nor write outputs (that is `cohort/`).
//! It imports no higher module: which codes matter comes in through
//! [`peek::Relevant`] and the code list of `prefilter::Prefilter::new`,
//! which `mapping` provides.
//!
//! Inside, lowest first: [`item`] (what readers deliver), [`reference`](mod@reference), `compact`,
//! `skim`, [`outcome`] → `bundle` (the Bundle reader), `fast`, `direct`, [`peek`]
//! → [`source`] (plans and reads inputs), [`parse`], `prefilter`.

pub(crate) mod bundle;
mod compact;
pub(crate) mod direct;
pub(crate) mod fast;
pub mod item;
pub mod outcome;
pub mod parse;
pub mod peek;
pub(crate) mod prefilter;
pub mod reference;
pub(crate) mod skim;
pub mod source;

/// The fhirbolt R4 model used throughout.
pub use fhirbolt::model::r4 as model;

/// Resource types the mapping reads; every other type is skipped after the peek.
pub const MAPPED_TYPES: &[&str] = &[
    "Patient",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "DocumentReference",
    "Medication",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
];

pub(crate) use compact::already_compact;
pub use compact::compact_json;
