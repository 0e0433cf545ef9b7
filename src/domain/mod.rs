//! The pure IMNM case model.
//!
//! This module owns the registry's vocabulary: the data dictionary's column
//! kinds and checked form ([`dictionary`]), its value types ([`values`]),
//! FHIR-style partial dates ([`date`]), the facts a mapping rule extracts from
//! one resource ([`facts`]) and the cohort row ([`case`]).
//!
//! It must not touch JSON, HTTP, files or FHIR models: everything here is plain
//! Rust data so that the mapping, cohort and export layers can share it and test
//! it without I/O. Facts derive serde's traits (no format chosen here) so the
//! pipeline can move a large run's patients to disk (`collect::patients`).

pub mod case;
pub mod date;
pub mod dictionary;
pub mod facts;
pub mod values;

pub use case::{CaseRow, Cell, SITE_COLUMN};
pub use date::FhirDate;
pub use dictionary::{Column, ColumnKind, Dictionary, FhirTarget};
pub use facts::{DiagnosisFact, DiagnosisKind, Evidence, Fact, FactValue, Onset, OnsetElement, SourceRef, TextNumber};
pub use values::{AntibodyStatus, MriThigh, Outcome, Sex, YesNoUnknown};
