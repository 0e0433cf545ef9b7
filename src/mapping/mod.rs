//! Mappings as data: value sets, units, cutoffs and rules from `mappings/*.toml`,
//! and a site's local codes from FHIR ConceptMaps (`*.json`, `load/conceptmap.rs`).
//!
//! This module owns the meaning of the mapping files and the functions that
//! read FHIR resources into domain facts (`extract/`), and which codes and
//! words make a resource worth reading at all (`relevance.rs`, what `fhir`'s
//! peek and prefilter ask). Loading has two phases
//! (`spec.rs`: serde shape; `load.rs`: names and meaning) and reports every
//! problem at once as `file:rule: message`. It must not do I/O beyond reading
//! the mapping files, and it never sees HTTP or the store.

pub(crate) mod codes;
pub(crate) mod extract;
pub mod load;
pub(crate) mod relevance;
pub(crate) mod spec;
pub mod text;

use std::collections::BTreeMap;

use crate::domain::{ColumnKind, Dictionary};
use codes::{normalize_unit_text, CodeIndex, ConceptMaps, SystemTable, Translation, ValueSet};
pub use load::{LoadError, LoadErrors};

/// The mapping files built into the binary (the repository's `mappings/`).
pub const BUILTIN: &[(&str, &str)] = &[
    ("systems.toml", include_str!("../../mappings/systems.toml")),
    ("units.toml", include_str!("../../mappings/units.toml")),
    ("cutoffs.toml", include_str!("../../mappings/cutoffs.toml")),
    ("dictionary.toml", include_str!("../../mappings/dictionary.toml")),
    ("rules.toml", include_str!("../../mappings/rules.toml")),
    ("text.toml", include_str!("../../mappings/text.toml")),
    ("codes/answers.toml", include_str!("../../mappings/codes/answers.toml")),
    (
        "codes/diagnosis.toml",
        include_str!("../../mappings/codes/diagnosis.toml"),
    ),
    (
        "codes/findings.toml",
        include_str!("../../mappings/codes/findings.toml"),
    ),
    ("codes/labs.toml", include_str!("../../mappings/codes/labs.toml")),
    ("codes/reports.toml", include_str!("../../mappings/codes/reports.toml")),
    (
        "codes/medications.toml",
        include_str!("../../mappings/codes/medications.toml"),
    ),
];

/// Which resource types a value set is used on (for the relevance peek).
pub mod role {
    /// Observation.code.
    pub const OBSERVATION: u8 = 1;
    /// Condition.code.
    pub const CONDITION: u8 = 2;
    /// Medication codes (inline or Medication.code).
    pub const MEDICATION: u8 = 4;
    /// DiagnosticReport.code and conclusionCode (findings and MRI).
    pub const REPORT: u8 = 8;
    /// A report or note kind whose text rules read (`text.toml` sources).
    pub const TEXT: u8 = 16;
}

/// One unit that converts to a canonical unit.
#[derive(Debug, Clone)]
pub struct UnitDef {
    /// UCUM code.
    pub ucum: Option<String>,
    /// Normalized unit texts.
    pub text: Vec<String>,
    /// Multiply by this to get the canonical unit.
    pub factor: f64,
}

/// A canonical quantity (e.g. catalytic concentration in U/L).
#[derive(Debug, Clone)]
pub struct QuantityDef {
    /// Its id.
    pub id: String,
    /// The canonical unit.
    pub canonical: String,
    /// Units that convert.
    pub units: Vec<UnitDef>,
}

impl QuantityDef {
    /// The factor to the canonical unit for a UCUM code or, failing that, a unit text.
    pub fn factor(&self, ucum: Option<&str>, text: Option<&str>) -> Option<f64> {
        if let Some(code) = ucum {
            if let Some(u) = self.units.iter().find(|u| u.ucum.as_deref() == Some(code.trim())) {
                return Some(u.factor);
            }
        }
        [ucum, text]
            .into_iter()
            .flatten()
            .find_map(|t| {
                let t = normalize_unit_text(t);
                self.units
                    .iter()
                    .find(|u| u.text.contains(&t) || u.ucum.as_deref().map(normalize_unit_text) == Some(t.clone()))
            })
            .map(|u| u.factor)
    }
}

/// A quantitative antibody assay.
#[derive(Debug, Clone)]
pub struct Assay {
    /// Its id.
    pub id: String,
    /// The antibody value set it reports.
    pub valueset: usize,
    /// (system index, normalized code) of the assay's Observation codes.
    pub codes: Vec<(usize, String)>,
    /// Unit keys (`codes::assay_unit`; empty: any).
    pub units: Vec<String>,
    /// (system index, normalized code) of the `Observation.method` the
    /// cutoffs are for (`None`: any method).
    pub method: Option<(usize, String)>,
    /// Values below are negative.
    pub negative_below: f64,
    /// Values at or above are positive.
    pub positive_from: f64,
}

/// How a rule fills its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Highest quantity of a lab (CK), in a canonical unit.
    LabPeak {
        /// The lab's codes (value set index).
        valueset: usize,
        /// The quantity its values convert to (index).
        quantity: usize,
    },
    /// Antibody result: ever positive, else negative, else indeterminate.
    Antibody {
        /// The antibody test's codes.
        valueset: usize,
    },
    /// Clinical finding yes/no.
    Finding {
        /// The finding's codes.
        valueset: usize,
    },
    /// Thigh MRI from two findings.
    Mri {
        /// Oedema codes.
        edema: usize,
        /// Fatty infiltration codes.
        fatty: usize,
    },
    /// Treatment exposure.
    Exposure {
        /// The drug's codes.
        valueset: usize,
    },
    /// Outcome Observation, else Condition.clinicalStatus remission.
    Outcome {
        /// The outcome Observation's codes.
        valueset: usize,
        /// Complete remission answers.
        complete: usize,
        /// Partial remission answers.
        partial: usize,
        /// No remission answers.
        none: usize,
    },
}

impl RuleKind {
    /// The dictionary kind of the column a rule of this kind fills.
    pub fn column_kind(&self) -> ColumnKind {
        match self {
            RuleKind::LabPeak { .. } => ColumnKind::LabPeak,
            RuleKind::Antibody { .. } => ColumnKind::Antibody,
            RuleKind::Finding { .. } => ColumnKind::Finding,
            RuleKind::Mri { .. } => ColumnKind::Mri,
            RuleKind::Exposure { .. } => ColumnKind::Exposure,
            RuleKind::Outcome { .. } => ColumnKind::Outcome,
        }
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule id (in provenance).
    pub id: String,
    /// The cohort column it fills (an index into [`MappingSet::dictionary`]).
    pub column: usize,
    /// What it does.
    pub kind: RuleKind,
}

/// When a patient without a qualifying diagnosis is a candidate.
#[derive(Debug, Clone, Copy)]
pub struct CandidateRule {
    /// The lab peak column compared (dictionary index).
    pub lab_peak: usize,
    /// A peak above this, with a positive antibody, makes a candidate.
    pub above: f64,
}

/// Case selection value sets.
#[derive(Debug, Clone)]
pub struct DiagnosisRule {
    /// Rule id.
    pub id: String,
    /// IMNM codes.
    pub valueset: usize,
    /// Parent codes (need text).
    pub parent: usize,
    /// IMNM wording.
    pub text: usize,
    /// Differential diagnoses.
    pub differential: usize,
}

/// Value sets that read qualitative answers.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    /// Positive / detected.
    pub positive: usize,
    /// Negative / not detected.
    pub negative: usize,
    /// Indeterminate / equivocal.
    pub indeterminate: usize,
    /// Yes / present.
    pub yes: usize,
    /// No / absent.
    pub no: usize,
}

/// Statuses that exclude a resource.
#[derive(Debug, Clone, Default)]
pub struct ExcludedStatuses {
    by_type: BTreeMap<String, Vec<String>>,
}

impl ExcludedStatuses {
    /// True when `status` of a `resource_type` excludes it.
    pub fn excludes(&self, resource_type: &str, status: &str) -> bool {
        self.by_type
            .get(resource_type)
            .is_some_and(|v| v.iter().any(|s| s == status))
    }
}

/// A loaded, checked set of mappings.
#[derive(Debug, Clone)]
pub struct MappingSet {
    /// Version of each mapping file, by file name.
    pub versions: BTreeMap<String, u32>,
    /// Code systems.
    pub systems: SystemTable,
    /// Value sets, by index.
    pub valuesets: Vec<ValueSet>,
    /// Role bits per value set.
    pub roles: Vec<u8>,
    /// Code index (local codes of the ConceptMaps included).
    pub index: CodeIndex,
    /// Local codes the ConceptMaps translate.
    pub concept_maps: ConceptMaps,
    /// Canonical quantities.
    pub quantities: Vec<QuantityDef>,
    /// Antibody assays.
    pub assays: Vec<Assay>,
    /// Excluded statuses per resource type.
    pub statuses: ExcludedStatuses,
    /// Case selection.
    pub diagnosis: DiagnosisRule,
    /// Answer value sets.
    pub answers: Answers,
    /// Candidate selection.
    pub candidates: CandidateRule,
    /// The data dictionary: the cohort columns.
    pub dictionary: Dictionary,
    /// One rule per dictionary column that rules fill.
    pub rules: Vec<Rule>,
    /// Findings from report and note text (`text.toml`).
    pub text: text::TextRules,
}

impl MappingSet {
    /// The mappings built into the binary.
    pub fn builtin() -> Result<Self, LoadErrors> {
        load::from_sources(BUILTIN.iter().map(|(n, s)| (n.to_string(), s.to_string())))
    }

    /// Loads every `*.toml` (and `*.json` ConceptMap) below `dir`.
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, LoadErrors> {
        load::load_dir(dir)
    }

    /// Loads `dir` (the built-in mappings when `None`) together with the
    /// ConceptMap files `maps` (a registry config's `concept_maps`), in the
    /// same two phases: every problem of every file at once, a map's named by its path.
    pub fn load_with_maps(dir: Option<&std::path::Path>, maps: &[std::path::PathBuf]) -> Result<Self, LoadErrors> {
        let mut sources = match dir {
            Some(d) => load::read_dir(d)?,
            None => BUILTIN.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect(),
        };
        sources.extend(load::read_maps(maps)?);
        load::from_sources(sources)
    }

    /// The value set index of id `id`.
    pub fn valueset(&self, id: &str) -> Option<usize> {
        self.valuesets.iter().position(|v| v.id == id)
    }

    /// Value sets holding a coding.
    pub fn valuesets_of(&self, system: &str, code: &str) -> &[usize] {
        self.index.get(&self.systems, system, code)
    }

    /// True when a coding is in value set `vs`.
    pub fn in_valueset(&self, vs: usize, system: Option<&str>, code: Option<&str>) -> bool {
        match (system, code) {
            (Some(s), Some(c)) => self.valuesets_of(s, c).contains(&vs),
            _ => false,
        }
    }

    /// The ConceptMap translations of a local coding into value set `vs`.
    pub fn translation(&self, vs: usize, system: &str, code: &str) -> Option<&Translation> {
        self.concept_maps
            .get(&self.systems, system, code)
            .iter()
            .find(|t| t.valuesets.contains(&vs))
    }

    /// True when a coding is in a value set used on resources with `role`.
    pub fn has_role(&self, system: &str, code: &str, role: u8) -> bool {
        self.valuesets_of(system, code)
            .iter()
            .any(|&vs| self.roles[vs] & role != 0)
    }

    /// True when some value set of `role` matches `text`.
    pub fn text_has_role(&self, text: &str, role: u8) -> bool {
        let mut sets = self
            .valuesets
            .iter()
            .zip(&self.roles)
            .filter(|(vs, r)| *r & role != 0 && !vs.text.is_empty())
            .peekable();
        if sets.peek().is_none() {
            return false;
        }
        let lowered = text.trim().to_lowercase();
        sets.any(|(vs, _)| vs.text_match_len_lowered(&lowered).is_some())
    }

    /// The rule filling dictionary column `column`.
    pub fn rule_for(&self, column: usize) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| r.column == column)
    }

    /// The name of the column rule `rule` fills.
    pub fn column_name(&self, rule: &Rule) -> &str {
        self.dictionary.columns.get(rule.column).map_or("", |c| c.name.as_str())
    }

    /// A canonical `system|code` string for a coding (system alias resolved).
    pub fn canonical_code(&self, system: &str, code: &str) -> String {
        format!("{}|{}", self.canonical_system(system), code.trim())
    }

    /// A system's canonical URI (an OID or other alias the mappings know
    /// becomes the URI; any other system is kept, trimmed).
    pub fn canonical_system(&self, system: &str) -> String {
        match self.systems.lookup(system) {
            Some(i) => self.systems.uri(i).to_string(),
            None => system.trim().to_string(),
        }
    }
}
