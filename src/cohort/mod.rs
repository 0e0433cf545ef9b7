//! From collected facts to the registry's outputs: one [`CaseRow`] per case
//! with provenance per cell, candidates, Table 1 and completeness.
//!
//! This module owns case selection and aggregation rules (which value wins when
//! a patient has several) and the output files. It must not read FHIR JSON or
//! mapping files: it sees only domain facts from `pipeline`.

pub mod build;
pub mod completeness;
pub mod parquet;
pub mod suppress;
pub mod table1;
pub mod write;

use serde::Serialize;

use crate::domain::CaseRow;

/// Where one cohort cell came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The case.
    pub patient_id: String,
    /// The cohort column.
    pub column: &'static str,
    /// The value written.
    pub value: String,
    /// The rule that produced it.
    pub rule: String,
    /// The resources it came from (`Type/id`).
    pub sources: Vec<String>,
    /// How: the element read, the raw value and unit, the cutoff.
    pub detail: String,
}

/// A patient with IMNM-suggestive data but no qualifying diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The patient.
    pub patient_id: String,
    /// Why it is listed.
    pub reason: String,
    /// Non-qualifying myositis diagnoses (`system|code`), `;`-separated.
    pub diagnosis_codes: String,
    /// CK peak in U/L, if any.
    pub ck_peak_u_per_l: String,
    /// Anti-HMGCR.
    pub anti_hmgcr: String,
    /// Anti-SRP.
    pub anti_srp: String,
}

/// The cohort built from one input.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    /// One row per case, by patient id.
    pub rows: Vec<CaseRow>,
    /// Provenance of every filled cell.
    pub provenance: Vec<Provenance>,
    /// Candidates.
    pub candidates: Vec<Candidate>,
}
