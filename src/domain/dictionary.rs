//! The registry's data dictionary: the cohort columns, each of one [`ColumnKind`].
//!
//! The dictionary is data (`mappings/dictionary.toml`, loaded and checked by
//! `mapping::load`); this module holds its checked, pure form. Code that fills,
//! prints, summarises or converts a column matches on the column's *kind*,
//! never on its name, so a new column of an existing kind (an exposure, a lab
//! peak, a yes/no finding) needs no code.

use std::fmt;
use std::str::FromStr;

/// What a column holds and how every layer treats it. A closed set: each
/// `match` on it is exhaustive, so a new kind is a compile error wherever it
/// needs a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnKind {
    /// The Patient resource id (the row key; exactly one, the first column).
    PatientId,
    /// `Patient.gender` (at most one).
    Sex,
    /// `Patient.birthDate` (at most one).
    BirthDate,
    /// The qualifying Condition's onset date (at most one).
    OnsetDate,
    /// Onset age in completed years (at most one).
    OnsetAge,
    /// The qualifying diagnosis coding, `system|code` (exactly one).
    DiagnosisCode,
    /// The highest result of a lab, in its quantity's canonical unit.
    LabPeak,
    /// The effective date of a lab peak (`of` names the peak column).
    LabPeakDate,
    /// How many results a lab peak was taken over (`of` names the peak column).
    LabCount,
    /// An antibody: ever positive, else negative, else indeterminate.
    Antibody,
    /// A clinical finding: any yes, else any no, else unknown.
    Finding,
    /// A categorical finding combined from two parts (the thigh MRI: oedema and fat).
    Mri,
    /// A treatment given (yes when a resource says so).
    Exposure,
    /// The latest outcome assessment (at most one).
    Outcome,
}

/// Every kind, with its name in `dictionary.toml`.
const KIND_NAMES: &[(ColumnKind, &str)] = &[
    (ColumnKind::PatientId, "patient-id"),
    (ColumnKind::Sex, "sex"),
    (ColumnKind::BirthDate, "birth-date"),
    (ColumnKind::OnsetDate, "onset-date"),
    (ColumnKind::OnsetAge, "onset-age"),
    (ColumnKind::DiagnosisCode, "diagnosis-code"),
    (ColumnKind::LabPeak, "lab-peak"),
    (ColumnKind::LabPeakDate, "lab-peak-date"),
    (ColumnKind::LabCount, "lab-count"),
    (ColumnKind::Antibody, "antibody"),
    (ColumnKind::Finding, "finding"),
    (ColumnKind::Mri, "mri"),
    (ColumnKind::Exposure, "exposure"),
    (ColumnKind::Outcome, "outcome"),
];

/// How a column is counted in Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Not in Table 1.
    None,
    /// Median, quartiles and range of the cases with a value.
    Continuous,
    /// n (%) per level; `missing` is the level counted as missing (not shown as a row).
    Levels {
        /// The level shown as "missing", if any.
        missing: Option<&'static str>,
    },
    /// Only the count of "yes" (a "no" is the absence of evidence, not a finding).
    YesCount,
}

impl ColumnKind {
    /// The kind's name in `dictionary.toml`.
    pub fn as_str(self) -> &'static str {
        KIND_NAMES.iter().find(|(k, _)| *k == self).map_or("", |(_, n)| n)
    }

    /// Every kind's name, joined by `, ` (for messages).
    pub fn names() -> String {
        KIND_NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
    }

    /// The levels a categorical kind's cells take (in `cohort.csv`), or `None`.
    pub fn levels(self) -> Option<&'static [&'static str]> {
        use super::values::{AntibodyStatus, MriThigh, Outcome, Sex, YesNoUnknown};
        match self {
            Self::Sex => Some(Sex::NAMES),
            Self::Antibody => Some(AntibodyStatus::NAMES),
            Self::Finding => Some(YesNoUnknown::NAMES),
            Self::Mri => Some(MriThigh::NAMES),
            Self::Outcome => Some(Outcome::NAMES),
            Self::Exposure => Some(&["yes", "no"]),
            Self::PatientId
            | Self::BirthDate
            | Self::OnsetDate
            | Self::OnsetAge
            | Self::DiagnosisCode
            | Self::LabPeak
            | Self::LabPeakDate
            | Self::LabCount => None,
        }
    }

    /// How Table 1 counts a column of this kind (`None`: it may not be listed there).
    pub fn summary(self) -> Summary {
        match self {
            Self::Sex | Self::Antibody | Self::Outcome => Summary::Levels { missing: None },
            Self::Finding | Self::Mri => Summary::Levels {
                missing: Some("unknown"),
            },
            Self::OnsetAge | Self::LabPeak => Summary::Continuous,
            Self::Exposure => Summary::YesCount,
            Self::PatientId
            | Self::BirthDate
            | Self::OnsetDate
            | Self::DiagnosisCode
            | Self::LabPeakDate
            | Self::LabCount => Summary::None,
        }
    }

    /// True for the kinds a `[[rule]]` of `rules.toml` fills (the others come
    /// from Patient and the qualifying Condition, or with their lab peak).
    pub fn filled_by_rule(self) -> bool {
        matches!(
            self,
            Self::LabPeak | Self::Antibody | Self::Finding | Self::Mri | Self::Exposure | Self::Outcome
        )
    }

    /// True for the kinds a dictionary may hold at most once.
    pub fn single(self) -> bool {
        matches!(
            self,
            Self::PatientId | Self::Sex | Self::BirthDate | Self::OnsetDate | Self::OnsetAge | Self::DiagnosisCode
        ) || self == Self::Outcome
    }

    /// True for the companions of a lab peak (they name it with `of`).
    pub fn companion(self) -> bool {
        matches!(self, Self::LabPeakDate | Self::LabCount)
    }

    /// The FHIR resource `to-fhir` writes a column of this kind as, when the
    /// column declares one (`None`: written inside another column's resource).
    pub fn resource(self) -> Option<&'static str> {
        match self {
            Self::PatientId => Some("Patient"),
            Self::DiagnosisCode => Some("Condition"),
            Self::LabPeak | Self::Antibody | Self::Finding | Self::Mri | Self::Outcome => Some("Observation"),
            Self::Exposure => Some("MedicationStatement"),
            Self::Sex | Self::BirthDate | Self::OnsetDate | Self::OnsetAge | Self::LabPeakDate | Self::LabCount => None,
        }
    }
}

/// An unknown kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?} (expected one of {list})", list = ColumnKind::names())]
pub struct UnknownKind(pub String);

impl FromStr for ColumnKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KIND_NAMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(k, _)| *k)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `to-fhir` writes a column: the resource, its profile and (for
/// Observations) the observation-category code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirTarget {
    /// FHIR resource type.
    pub resource: String,
    /// Profile id (`StructureDefinition/{profile}` under the registry's canonical base).
    pub profile: String,
    /// `Observation.category` code (observation-category), for Observations.
    pub category: Option<String>,
}

/// One cohort column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name, as in the `cohort.csv` header.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
    /// Table 1 label.
    pub label: String,
    /// The levels in Table 1 order (categorical kinds; the kind's levels, reordered).
    pub levels: Vec<String>,
    /// Unit of a lab peak (the canonical unit of its rule's quantity).
    pub unit: Option<String>,
    /// For a lab peak's date or count: the peak column's index.
    pub of: Option<usize>,
    /// How `to-fhir` writes it.
    pub fhir: Option<FhirTarget>,
}

/// The checked data dictionary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dictionary {
    /// Columns in `cohort.csv` order (the first is the patient id).
    pub columns: Vec<Column>,
    /// Table 1 rows: column indexes in display order.
    pub table1: Vec<usize>,
}

impl Dictionary {
    /// Column names in order (the `cohort.csv` header).
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Indexes of the columns of `kind`, in order.
    pub fn of_kind(&self, kind: ColumnKind) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.kind == kind)
            .map(|(i, _)| i)
    }

    /// The first column of `kind` (the only one for single kinds).
    pub fn first(&self, kind: ColumnKind) -> Option<usize> {
        self.of_kind(kind).next()
    }

    /// The companion of kind `kind` of lab peak column `peak`.
    pub fn companion(&self, peak: usize, kind: ColumnKind) -> Option<usize> {
        self.columns.iter().position(|c| c.kind == kind && c.of == Some(peak))
    }

    /// The candidate columns (`candidates.csv` after patient_id, reason and
    /// diagnosis_codes): every lab peak and antibody, in dictionary order.
    pub fn candidate_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| matches!(self.columns[i].kind, ColumnKind::LabPeak | ColumnKind::Antibody))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_cover_every_kind() {
        for (k, n) in KIND_NAMES {
            assert_eq!(n.parse::<ColumnKind>().unwrap(), *k);
            assert_eq!(k.as_str(), *n);
        }
        assert!("lab_peak".parse::<ColumnKind>().is_err());
    }

    #[test]
    fn categorical_kinds_list_the_value_types_levels() {
        assert_eq!(
            ColumnKind::Antibody.levels().unwrap(),
            &["positive", "negative", "indeterminate", "not_tested"]
        );
        assert_eq!(ColumnKind::Finding.levels().unwrap(), &["yes", "no", "unknown"]);
        assert!(ColumnKind::LabPeak.levels().is_none());
    }
}
