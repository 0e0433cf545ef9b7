//! Phase 1 of loading mappings: the serde shape of the TOML files.
//!
//! Every struct refuses unknown keys, so a typo in a mapping file is an error
//! that names the key, not a rule that silently does nothing. Phase 2
//! (`load.rs`) resolves names and checks the meaning.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One mapping file. Which sections may appear depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// The file's version; bump it with a "Version history" line.
    pub version: u32,
    /// `systems`, `valuesets`, `units`, `cutoffs`, `dictionary`, `rules` or `text`.
    pub kind: String,
    #[serde(default)]
    pub system: Vec<RawSystem>,
    #[serde(default)]
    pub valueset: Vec<RawValueSet>,
    #[serde(default)]
    pub quantity: Vec<RawQuantity>,
    #[serde(default)]
    pub assay: Vec<RawAssay>,
    pub status: Option<BTreeMap<String, Vec<String>>>,
    pub diagnosis: Option<RawDiagnosis>,
    pub candidates: Option<RawCandidates>,
    pub answers: Option<RawAnswers>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
    #[serde(default)]
    pub column: Vec<RawColumn>,
    pub table1: Option<RawTable1>,
    /// `text` files: negation and uncertainty cues.
    pub cues: Option<RawCues>,
    /// `text` files: report and note kinds.
    #[serde(default)]
    pub source: Vec<RawTextSource>,
    /// `text` files: phrases per finding rule.
    #[serde(default)]
    pub text_rule: Vec<RawTextRule>,
}

/// Negation and uncertainty cues of a `text` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCues {
    pub window: usize,
    pub negation: Vec<String>,
    #[serde(default)]
    pub post_negation: Vec<String>,
    #[serde(default)]
    pub uncertainty: Vec<String>,
    #[serde(default)]
    pub post_uncertainty: Vec<String>,
    #[serde(default)]
    pub pseudo: Vec<String>,
    #[serde(default)]
    pub terminate: Vec<String>,
}

/// A kind of report or note text rules read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTextSource {
    pub id: String,
    pub resource: String,
    pub valueset: Option<String>,
}

/// The phrases that feed one finding or MRI rule from text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTextRule {
    pub id: String,
    pub rule: String,
    pub from: Vec<String>,
    #[serde(default)]
    pub present: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub negated_only: Vec<String>,
    #[serde(default)]
    pub edema: Vec<String>,
    #[serde(default)]
    pub fatty: Vec<String>,
    #[serde(default)]
    pub normal: Vec<String>,
}

/// One column of the data dictionary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: String,
    pub kind: String,
    pub label: Option<String>,
    #[serde(default)]
    pub levels: Vec<String>,
    pub unit: Option<String>,
    pub of: Option<String>,
    pub fhir: Option<RawFhir>,
}

/// How `to-fhir` writes a column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFhir {
    pub resource: String,
    pub profile: String,
    pub category: Option<String>,
}

/// Table 1 layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable1 {
    pub order: Vec<String>,
}

/// A code system and the other names EHRs send for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    pub uri: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub normalize: Option<String>,
    #[allow(
        dead_code,
        reason = "required in the file (every system names its source); not read by code"
    )]
    pub source: String,
}

/// A value set: codes and, for text fallback, wording.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValueSet {
    pub id: String,
    pub description: String,
    #[serde(default)]
    pub code: Vec<RawCode>,
    #[serde(default)]
    pub text: Vec<String>,
    #[serde(default)]
    pub text_exclude: Vec<String>,
}

/// One code of a value set, with where it comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCode {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
    pub source: Option<String>,
    pub confidence: Option<String>,
}

/// A canonical quantity and the units that convert to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantity {
    pub id: String,
    pub canonical: String,
    #[serde(default)]
    pub unit: Vec<RawUnit>,
}

/// One unit: its UCUM code, the texts labs write for it, and the factor to the canonical unit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub ucum: Option<String>,
    #[serde(default)]
    pub text: Vec<String>,
    pub factor: f64,
    pub source: String,
}

/// A quantitative antibody assay with its cutoffs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssay {
    pub id: String,
    pub valueset: String,
    pub codes: Vec<RawCodeRef>,
    #[serde(default)]
    pub units: Vec<String>,
    pub method: Option<RawCodeRef>,
    pub negative_below: f64,
    pub positive_from: f64,
    #[allow(
        dead_code,
        reason = "required in the file (every cutoff names its source); not read by code"
    )]
    pub source: String,
}

/// A `system` + `code` pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodeRef {
    pub system: String,
    pub code: String,
}

/// Case selection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiagnosis {
    pub id: String,
    pub valueset: String,
    pub parent_valueset: String,
    pub text_valueset: String,
    pub differential_valueset: String,
}

/// Answer value sets for qualitative values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswers {
    pub positive: String,
    pub negative: String,
    pub indeterminate: String,
    pub yes: String,
    pub no: String,
}

/// Candidate selection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCandidates {
    pub lab_peak: String,
    pub above: f64,
}

/// One rule: how one cohort column is filled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub column: String,
    pub kind: String,
    pub valueset: Option<String>,
    pub quantity: Option<String>,
    pub edema_valueset: Option<String>,
    pub fatty_valueset: Option<String>,
    pub complete_valueset: Option<String>,
    pub partial_valueset: Option<String>,
    pub none_valueset: Option<String>,
}
