//! Reads a case CSV with the columns of `cohort.csv`. Every problem becomes a
//! finding (`report::Issue`) naming the row and column (never the value); a bad cell is
//! left out of its row, a ragged or unreadable row is skipped, the rest reads.

use std::io::Read;

use crate::domain::{CaseRow, Cell, ColumnKind, Dictionary, SITE_COLUMN};
use crate::report::{Issue, IssueCode, Severity};

/// One problem in the case CSV, as a finding: location `row N` or `row N,
/// column C` (the header is row 1), never the value. A cell problem is a
/// warning (`bad-cell`: the cell is left out), a row problem an error
/// (`bad-row`: the row is skipped, or nothing is converted).
fn csv_issue(row: u64, column: Option<&str>, message: impl Into<String>) -> Issue {
    match column {
        Some(c) => Issue::new(
            Severity::Warning,
            IssueCode::BadCell,
            format!("row {row}, column {c}"),
            message,
        ),
        None => Issue::new(Severity::Error, IssueCode::BadRow, format!("row {row}"), message),
    }
}

/// Reads every row, each cell by its column's kind in `dictionary`; rows with
/// a patient_id come back even when some cells were refused.
pub fn read_cases(input: impl Read, dictionary: &Dictionary) -> (Vec<(u64, CaseRow)>, Vec<Issue>) {
    let mut issues = Vec::new();
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = match rdr.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect(),
        Err(e) => {
            let message = format!("cannot read the header: {}", scrub(&e));
            return (Vec::new(), vec![csv_issue(1, None, message)]);
        }
    };
    let columns: Vec<Option<usize>> = header.iter().map(|h| dictionary.index(h)).collect();
    for h in header
        .iter()
        .filter(|h| dictionary.index(h).is_none() && *h != SITE_COLUMN)
    {
        let message = "unknown column (not in the cohort.csv data dictionary); ignored".to_string();
        issues.push(csv_issue(1, Some(h), message));
    }
    let id_column = dictionary.first(ColumnKind::PatientId);
    if !columns.iter().any(|c| c.is_some() && *c == id_column) {
        let message = "no patient_id column; nothing converted".to_string();
        issues.push(csv_issue(1, None, message));
        return (Vec::new(), issues);
    }
    let mut rows: Vec<(u64, CaseRow)> = Vec::new();
    for (i, record) in rdr.byte_records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                issues.push(csv_issue(line, None, scrub(&e)));
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
            issues.push(csv_issue(row, None, message));
            continue;
        }
        let mut case = CaseRow::empty("", dictionary);
        for ((column, index), cell) in header.iter().zip(&columns).zip(record.iter()) {
            if column == SITE_COLUMN {
                case.site = String::from_utf8_lossy(cell).trim().to_string();
                continue;
            }
            let Some(index) = *index else { continue };
            let refused = |message: String| csv_issue(row, Some(column), message);
            match std::str::from_utf8(cell) {
                Ok(text) => {
                    if let Err(message) = set_cell(&mut case, dictionary, index, text.trim()) {
                        issues.push(refused(message));
                    }
                }
                Err(_) => issues.push(refused("not UTF-8 text; cell left out".into())),
            }
        }
        let id_name = id_column.map_or("patient_id", |i| dictionary.columns[i].name.as_str());
        if case.patient_id.is_empty() {
            let message = "no usable patient_id; row skipped".to_string();
            issues.push(csv_issue(row, Some(id_name), message));
            continue;
        }
        let same = |r: &CaseRow| r.patient_id == case.patient_id && r.site == case.site;
        if let Some((first, _)) = rows.iter().find(|(_, r)| same(r)) {
            let message = format!("the same patient_id as row {first}; row skipped");
            issues.push(csv_issue(row, Some(id_name), message));
            continue;
        }
        for (column, message) in consistency(&case, dictionary) {
            issues.push(csv_issue(row, Some(column), message));
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

/// Sets cell `index` of `c` from its text; the patient id must be a FHIR id.
fn set_cell(c: &mut CaseRow, dictionary: &Dictionary, index: usize, text: &str) -> Result<(), String> {
    let kind = dictionary.columns[index].kind;
    if kind == ColumnKind::PatientId {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err("not a FHIR id ([A-Za-z0-9-.], 1 to 64 characters)".into());
        }
        c.patient_id = text.to_string();
        return Ok(());
    }
    c.set(index, Cell::parse(kind, text)?);
    Ok(())
}

/// Cells that contradict each other (a lab peak and its count or date).
fn consistency<'d>(c: &CaseRow, dictionary: &'d Dictionary) -> Vec<(&'d str, String)> {
    let mut out = Vec::new();
    for peak in dictionary.of_kind(ColumnKind::LabPeak) {
        let name = dictionary.columns[peak].name.as_str();
        let has_peak = c.get(peak).number().is_some();
        let count = dictionary.companion(peak, ColumnKind::LabCount);
        let count_cell = count.map(|i| (i, c.get(i)));
        if let Some((i, Cell::Count(n))) = count_cell {
            let count_name = dictionary.columns[i].name.as_str();
            if has_peak && *n == 0 {
                let m = format!("a {name} needs {count_name} of at least 1; the peak is written as 1 result");
                out.push((count_name, m));
            }
            if !has_peak && *n > 0 {
                out.push((name, format!("{count_name} without a {name}; no result written")));
            }
        }
        let date = dictionary.companion(peak, ColumnKind::LabPeakDate);
        if let Some(i) = date.filter(|i| !has_peak && c.get(*i).has_value()) {
            let date_name = dictionary.columns[i].name.as_str();
            out.push((date_name, format!("a {date_name} without a {name}; no result written")));
        }
    }
    out
}
