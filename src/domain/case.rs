//! One row of `cohort.csv`: a value per column of the [`Dictionary`], typed by
//! the column's [`ColumnKind`].

use super::date::FhirDate;
use super::dictionary::{ColumnKind, Dictionary};
use super::values::{AntibodyStatus, MriThigh, Outcome, Sex, UnknownLevel, YesNoUnknown};

/// One cell, typed by its column's kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Cell {
    /// The patient id (written from [`CaseRow::patient_id`]).
    PatientId,
    /// Administrative sex.
    Sex(Sex),
    /// A date (birth, onset, lab peak), possibly partial.
    Date(Option<FhirDate>),
    /// A whole number of years.
    Age(Option<u32>),
    /// A coding, `system|code` (empty: none).
    Code(String),
    /// A number in the column's unit.
    Number(Option<f64>),
    /// A count of results.
    Count(u32),
    /// An antibody result.
    Antibody(AntibodyStatus),
    /// A clinical finding.
    Finding(YesNoUnknown),
    /// A two-part categorical finding (thigh MRI).
    Mri(MriThigh),
    /// A treatment given.
    Exposure(bool),
    /// An outcome.
    Outcome(Outcome),
}

impl Cell {
    /// The empty cell of a column of `kind` (unknown, not tested, no, none).
    pub fn empty(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::PatientId => Cell::PatientId,
            ColumnKind::Sex => Cell::Sex(Sex::Unknown),
            ColumnKind::BirthDate | ColumnKind::OnsetDate | ColumnKind::LabPeakDate => Cell::Date(None),
            ColumnKind::OnsetAge => Cell::Age(None),
            ColumnKind::DiagnosisCode => Cell::Code(String::new()),
            ColumnKind::LabPeak => Cell::Number(None),
            ColumnKind::LabCount => Cell::Count(0),
            ColumnKind::Antibody => Cell::Antibody(AntibodyStatus::NotTested),
            ColumnKind::Finding => Cell::Finding(YesNoUnknown::Unknown),
            ColumnKind::Mri => Cell::Mri(MriThigh::Unknown),
            ColumnKind::Exposure => Cell::Exposure(false),
            ColumnKind::Outcome => Cell::Outcome(Outcome::Unknown),
        }
    }

    /// The cell as written in `cohort.csv` (`patient_id` for [`Cell::PatientId`]).
    pub fn text(&self, patient_id: &str) -> String {
        let date = |d: &Option<FhirDate>| d.map(|d| d.to_string()).unwrap_or_default();
        match self {
            Cell::PatientId => patient_id.to_string(),
            Cell::Sex(s) => s.to_string(),
            Cell::Date(d) => date(d),
            Cell::Age(a) => a.map(|a| a.to_string()).unwrap_or_default(),
            Cell::Code(c) => c.clone(),
            Cell::Number(x) => x.map(format_number).unwrap_or_default(),
            Cell::Count(n) => n.to_string(),
            Cell::Antibody(a) => a.to_string(),
            Cell::Finding(f) => f.to_string(),
            Cell::Mri(m) => m.to_string(),
            Cell::Exposure(b) => if *b { "yes" } else { "no" }.to_string(),
            Cell::Outcome(o) => o.to_string(),
        }
    }

    /// The level of a categorical cell (as in `cohort.csv`).
    pub fn level(&self) -> Option<&'static str> {
        match self {
            Cell::Sex(s) => Some(s.as_str()),
            Cell::Antibody(a) => Some(a.as_str()),
            Cell::Finding(f) => Some(f.as_str()),
            Cell::Mri(m) => Some(m.as_str()),
            Cell::Exposure(b) => Some(if *b { "yes" } else { "no" }),
            Cell::Outcome(o) => Some(o.as_str()),
            Cell::PatientId | Cell::Date(_) | Cell::Age(_) | Cell::Code(_) | Cell::Number(_) | Cell::Count(_) => None,
        }
    }

    /// The number of a continuous cell (onset age, lab peak).
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Age(a) => a.map(f64::from),
            Cell::Number(x) => *x,
            _ => None,
        }
    }

    /// True when the cell holds a value (completeness): a finding recorded
    /// absent counts, a treatment only when given, a count when above zero.
    pub fn has_value(&self) -> bool {
        match self {
            Cell::PatientId => true,
            Cell::Sex(s) => *s != Sex::Unknown,
            Cell::Date(d) => d.is_some(),
            Cell::Age(a) => a.is_some(),
            Cell::Code(c) => !c.is_empty(),
            Cell::Number(x) => x.is_some(),
            Cell::Count(n) => *n > 0,
            Cell::Antibody(a) => *a != AntibodyStatus::NotTested,
            Cell::Finding(f) => *f != YesNoUnknown::Unknown,
            Cell::Mri(m) => *m != MriThigh::Unknown,
            Cell::Exposure(b) => *b,
            Cell::Outcome(o) => *o != Outcome::Unknown,
        }
    }

    /// Reads a `cohort.csv` cell of a column of `kind` (an empty text is the
    /// empty cell). The error says what was expected (never the value).
    pub fn parse(kind: ColumnKind, text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self::empty(kind));
        }
        let level = |e: UnknownLevel| format!("{e}; cell left out");
        Ok(match kind {
            ColumnKind::PatientId => Cell::PatientId,
            ColumnKind::Sex => Cell::Sex(text.parse().map_err(level)?),
            ColumnKind::BirthDate | ColumnKind::OnsetDate | ColumnKind::LabPeakDate => Cell::Date(Some(date(text)?)),
            ColumnKind::OnsetAge => Cell::Age(Some(number(text, "a whole number of years")?)),
            ColumnKind::DiagnosisCode => {
                if !text
                    .split_once('|')
                    .is_some_and(|(s, k)| !s.is_empty() && !k.is_empty())
                {
                    return Err("expected system|code; cell left out".into());
                }
                Cell::Code(text.to_string())
            }
            ColumnKind::LabPeak => {
                let v: f64 = number(text, "a number")?;
                if !v.is_finite() || v < 0.0 {
                    return Err("not a non-negative number; cell left out".into());
                }
                Cell::Number(Some(v))
            }
            ColumnKind::LabCount => Cell::Count(number(text, "a whole number")?),
            ColumnKind::Antibody => Cell::Antibody(text.parse().map_err(level)?),
            ColumnKind::Finding => Cell::Finding(text.parse().map_err(level)?),
            ColumnKind::Mri => Cell::Mri(text.parse().map_err(level)?),
            ColumnKind::Exposure => match text {
                "yes" => Cell::Exposure(true),
                "no" => Cell::Exposure(false),
                _ => return Err("expected one of yes|no; cell left out".into()),
            },
            ColumnKind::Outcome => Cell::Outcome(text.parse().map_err(level)?),
        })
    }
}

fn date(text: &str) -> Result<FhirDate, String> {
    if text.contains('T') {
        return Err("a date (YYYY, YYYY-MM or YYYY-MM-DD) without a time; cell left out".into());
    }
    FhirDate::parse(text).map_err(|e| format!("{e}; cell left out"))
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not {what}; cell left out"))
}

/// The name of the leading `site` column of `cohort.csv` and `candidates.csv`
/// (rows are keyed by site and patient id; the site is not a dictionary column).
pub const SITE_COLUMN: &str = "site";

/// One IMNM case: its site, patient id and one cell per dictionary column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseRow {
    /// The registry site the case's data came from (`local` for files given without one).
    pub site: String,
    /// Patient resource id.
    pub patient_id: String,
    /// One cell per dictionary column, in dictionary order.
    pub values: Vec<Cell>,
}

impl CaseRow {
    /// A row with every value unknown, for `patient_id`.
    pub fn empty(patient_id: impl Into<String>, dictionary: &Dictionary) -> Self {
        Self {
            site: String::new(),
            patient_id: patient_id.into(),
            values: dictionary.columns.iter().map(|c| Cell::empty(c.kind)).collect(),
        }
    }

    /// The row's cells as written in `cohort.csv`: the site, then the
    /// dictionary's columns in order ([`CaseRow::header`]).
    pub fn cells(&self) -> Vec<String> {
        let mut cells = Vec::with_capacity(self.values.len() + 1);
        cells.push(self.site.clone());
        cells.extend(self.values.iter().map(|c| c.text(&self.patient_id)));
        cells
    }

    /// The `cohort.csv` header: `site`, then the dictionary's column names.
    pub fn header(dictionary: &Dictionary) -> Vec<&str> {
        let mut h = vec![SITE_COLUMN];
        h.extend(dictionary.names());
        h
    }

    /// The cell of column `i` (an empty patient-id cell past the end).
    pub fn get(&self, i: usize) -> &Cell {
        self.values.get(i).unwrap_or(&Cell::PatientId)
    }

    /// Sets the cell of column `i` (ignored past the end).
    pub fn set(&mut self, i: usize, cell: Cell) {
        if let Some(c) = self.values.get_mut(i) {
            *c = cell;
        }
    }

    /// The cell of column `name`, if the dictionary has it.
    pub fn cell(&self, dictionary: &Dictionary, name: &str) -> Option<&Cell> {
        dictionary.index(name).map(|i| self.get(i))
    }

    /// The cell of the first column of `kind`, if the dictionary has one.
    pub fn first(&self, dictionary: &Dictionary, kind: ColumnKind) -> Option<&Cell> {
        dictionary.first(kind).map(|i| self.get(i))
    }
}

/// Formats a number without a trailing `.0`, rounded to 3 decimals.
pub fn format_number(x: f64) -> String {
    let rounded = (x * 1000.0).round() / 1000.0;
    let s = format!("{rounded:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(format_number(3870.0), "3870");
        assert_eq!(format_number(64.5 * 60.0), "3870");
        assert_eq!(format_number(3988.5), "3988.5");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
    }

    #[test]
    fn every_kind_reads_back_what_it_writes() {
        let cells = [
            (ColumnKind::Sex, "female"),
            (ColumnKind::BirthDate, "2010-03"),
            (ColumnKind::OnsetAge, "7"),
            (ColumnKind::DiagnosisCode, "http://snomed.info/sct|715863001"),
            (ColumnKind::LabPeak, "3988.5"),
            (ColumnKind::LabCount, "4"),
            (ColumnKind::Antibody, "not_tested"),
            (ColumnKind::Finding, "no"),
            (ColumnKind::Mri, "edema_and_fatty"),
            (ColumnKind::Exposure, "yes"),
            (ColumnKind::Outcome, "partial_remission"),
        ];
        for (kind, text) in cells {
            assert_eq!(Cell::parse(kind, text).unwrap().text("p"), text, "{kind}");
        }
        assert!(Cell::parse(ColumnKind::Exposure, "maybe").is_err());
        assert!(Cell::parse(ColumnKind::LabPeak, "-1").is_err());
    }
}
