//! Reads a case CSV with the columns of `cohort.csv`. Every problem becomes a
//! [`CsvIssue`] naming the row and column (never the value); a bad cell is
//! left out of its row, a ragged or unreadable row is skipped, the rest reads.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use crate::domain::{CaseRow, FhirDate, COLUMNS};

/// One problem in the case CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvIssue {
    /// 1-based CSV line (the header is line 1).
    pub row: u64,
    /// The column, when the problem is in one cell.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CsvIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "row {}, column {c}: {}", self.row, self.message),
            None => write!(f, "row {}: {}", self.row, self.message),
        }
    }
}

/// Reads every row; rows with a patient_id come back even when some cells were refused.
pub fn read_cases(input: impl Read) -> (Vec<(u64, CaseRow)>, Vec<CsvIssue>) {
    let mut issues = Vec::new();
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = match rdr.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect(),
        Err(e) => {
            let message = format!("cannot read the header: {}", scrub(&e));
            return (
                Vec::new(),
                vec![CsvIssue {
                    row: 1,
                    column: None,
                    message,
                }],
            );
        }
    };
    for h in header.iter().filter(|h| !COLUMNS.contains(&h.as_str())) {
        let message = "unknown column (not in the cohort.csv data dictionary); ignored".to_string();
        issues.push(CsvIssue {
            row: 1,
            column: Some(h.clone()),
            message,
        });
    }
    if !header.iter().any(|h| h == "patient_id") {
        let message = "no patient_id column; nothing converted".to_string();
        issues.push(CsvIssue {
            row: 1,
            column: None,
            message,
        });
        return (Vec::new(), issues);
    }
    let mut rows: Vec<(u64, CaseRow)> = Vec::new();
    for (i, record) in rdr.byte_records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                issues.push(CsvIssue {
                    row: line,
                    column: None,
                    message: scrub(&e),
                });
                continue;
            }
        };
        let row = record.position().map_or(line, |p| p.line());
        if record.len() != header.len() {
            let message = format!(
                "{} cells where the header has {}; row skipped",
                record.len(),
                header.len()
            );
            issues.push(CsvIssue {
                row,
                column: None,
                message,
            });
            continue;
        }
        let mut case = CaseRow::empty("");
        for (column, cell) in header.iter().zip(record.iter()) {
            if !COLUMNS.contains(&column.as_str()) {
                continue;
            }
            let refused = |message: String| CsvIssue {
                row,
                column: Some(column.clone()),
                message,
            };
            match std::str::from_utf8(cell) {
                Ok(text) => {
                    if let Err(message) = set_cell(&mut case, column, text.trim()) {
                        issues.push(refused(message));
                    }
                }
                Err(_) => issues.push(refused("not UTF-8 text; cell left out".into())),
            }
        }
        if case.patient_id.is_empty() {
            let message = "no usable patient_id; row skipped".to_string();
            issues.push(CsvIssue {
                row,
                column: Some("patient_id".into()),
                message,
            });
            continue;
        }
        if let Some((first, _)) = rows.iter().find(|(_, r)| r.patient_id == case.patient_id) {
            let message = format!("the same patient_id as row {first}; row skipped");
            issues.push(CsvIssue {
                row,
                column: Some("patient_id".into()),
                message,
            });
            continue;
        }
        for (column, message) in consistency(&case) {
            issues.push(CsvIssue {
                row,
                column: Some(column.into()),
                message: message.into(),
            });
        }
        rows.push((row, case));
    }
    (rows, issues)
}

fn scrub(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(_) => "the file cannot be read".into(),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        _ => "not valid CSV".into(),
    }
}

fn level<T: FromStr<Err = crate::domain::values::UnknownLevel>>(text: &str, empty: T) -> Result<T, String> {
    if text.is_empty() {
        return Ok(empty);
    }
    text.parse()
        .map_err(|e: crate::domain::values::UnknownLevel| format!("{e}; cell left out"))
}

fn date(text: &str) -> Result<Option<FhirDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('T') {
        return Err("a date (YYYY, YYYY-MM or YYYY-MM-DD) without a time; cell left out".into());
    }
    FhirDate::parse(text)
        .map(Some)
        .map_err(|e| format!("{e}; cell left out"))
}

fn number<T: FromStr>(text: &str, what: &str) -> Result<Option<T>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| format!("not {what}; cell left out"))
}

fn yes_no(text: &str) -> Result<bool, String> {
    match text {
        "yes" => Ok(true),
        "no" | "" => Ok(false),
        _ => Err("expected one of yes|no; cell left out".into()),
    }
}

fn set_cell(c: &mut CaseRow, column: &str, text: &str) -> Result<(), String> {
    use crate::domain::{AntibodyStatus as A, MriThigh as M, Outcome as O, Sex as S, YesNoUnknown as Y};
    match column {
        "patient_id" => {
            let ok = !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err("not a FHIR id ([A-Za-z0-9-.], 1 to 64 characters)".into());
            }
            c.patient_id = text.to_string();
        }
        "sex" => c.sex = level(text, S::Unknown)?,
        "birth_date" => c.birth_date = date(text)?,
        "onset_date" => c.onset_date = date(text)?,
        "onset_age_years" => c.onset_age_years = number(text, "a whole number of years")?,
        "diagnosis_code" => {
            if !text.is_empty()
                && !text
                    .split_once('|')
                    .is_some_and(|(s, k)| !s.is_empty() && !k.is_empty())
            {
                return Err("expected system|code; cell left out".into());
            }
            c.diagnosis_code = text.to_string();
        }
        "ck_peak_u_per_l" => {
            let v: Option<f64> = number(text, "a number")?;
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err("not a non-negative number; cell left out".into());
            }
            c.ck_peak_u_per_l = v;
        }
        "ck_peak_date" => c.ck_peak_date = date(text)?,
        "ck_count" => c.ck_count = number(text, "a whole number")?.unwrap_or(0),
        "anti_hmgcr" => c.anti_hmgcr = level(text, A::NotTested)?,
        "anti_srp" => c.anti_srp = level(text, A::NotTested)?,
        "proximal_weakness" => c.proximal_weakness = level(text, Y::Unknown)?,
        "rash" => c.rash = level(text, Y::Unknown)?,
        "emg_myopathic" => c.emg_myopathic = level(text, Y::Unknown)?,
        "biopsy_necrosis" => c.biopsy_necrosis = level(text, Y::Unknown)?,
        "mri_thigh" => c.mri_thigh = level(text, M::Unknown)?,
        "glucocorticoid" => c.glucocorticoid = yes_no(text)?,
        "methotrexate" => c.methotrexate = yes_no(text)?,
        "rituximab" => c.rituximab = yes_no(text)?,
        "ivig" => c.ivig = yes_no(text)?,
        "outcome" => c.outcome = level(text, O::Unknown)?,
        _ => {}
    }
    Ok(())
}

/// Cells that contradict each other (the CK peak and its count).
fn consistency(c: &CaseRow) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if c.ck_peak_u_per_l.is_some() && c.ck_count == 0 {
        out.push((
            "ck_count",
            "a CK peak needs ck_count of at least 1; the peak is written as 1 result",
        ));
    }
    if c.ck_peak_u_per_l.is_none() && c.ck_count > 0 {
        out.push(("ck_peak_u_per_l", "ck_count without a CK peak; no CK result written"));
    }
    if c.ck_peak_u_per_l.is_none() && c.ck_peak_date.is_some() {
        out.push(("ck_peak_date", "a CK peak date without a CK peak; no CK result written"));
    }
    out
}
