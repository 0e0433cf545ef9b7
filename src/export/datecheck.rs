//! Verify's date check. Without the site key nobody can tell which source
//! date an exported date came from, so what is checked is what the date-shift
//! rules make true of every bundle:
//!
//! 1. A full date (`YYYY-MM-DD`, also inside a longer string) appears in the
//!    resources only as the value of an element the rules shift
//!    (`[dates].elements` of `deid/rules.toml`); anywhere else it was not shifted.
//! 2. Shifted elements hold a date only: the shift drops the time of day.
//! 3. Under `safe-harbor`, `Patient.birthDate` is a year.
//! 4. Every full date in `cohort.csv` is one of the resources' dates (the
//!    table is recomputed from them); the Table 1 files hold no full date.
//! 5. With `--source` (the original input, still no key): every full date of
//!    a shifted element lies within the manifest's `date_shift_max_days` of a
//!    full date of the same element name in the source: the shifted range.
//!
//! Findings name the file, the line (NDJSON) or `Type/pseudonym` and element,
//! never the date found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::manifest::Manifest;
use super::verify::VerifyReport;
use crate::domain::FhirDate;
use crate::report::IssueCode;

/// The check's name (the findings' rule).
const CHECK: &str = "dates";

/// The full dates of a source, by element name, as day numbers.
#[derive(Debug, Default, Clone)]
pub struct SourceDates(BTreeMap<String, BTreeSet<i64>>);

impl SourceDates {
    /// Adds the full dates of `v` (any element, any depth).
    pub fn add_resource(&mut self, v: &Value) {
        walk(v, "", &mut |key, text| {
            if let Some(day) = full_day(text) {
                self.0.entry(key.to_string()).or_default().insert(day);
            }
        });
    }

    fn near(&self, key: &str, day: i64, max: i64) -> bool {
        self.0
            .get(key)
            .is_some_and(|s| s.range(day - max..=day + max).next().is_some())
    }
}

/// Calls `f(element name, string)` for every string in `v`.
fn walk(v: &Value, key: &str, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(key, s),
        Value::Array(items) => items.iter().for_each(|i| walk(i, key, f)),
        Value::Object(o) => o.iter().for_each(|(k, v)| walk(v, k, f)),
        _ => {}
    }
}

/// The day number of a string that is a full date or dateTime.
fn full_day(s: &str) -> Option<i64> {
    FhirDate::parse(s).ok().filter(FhirDate::is_full)?.day_number()
}

/// The full dates (`YYYY-MM-DD` not inside a longer run of digits) in `text`.
pub fn dates_in(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let shape = |w: &[u8]| {
        w.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 10 <= b.len() {
        let w = &b[i..i + 10];
        let free_before = i == 0 || !b[i - 1].is_ascii_digit();
        let free_after = b.get(i + 10).is_none_or(|c| !c.is_ascii_digit());
        if free_before && free_after && shape(w) && full_day(&text[i..i + 10]).is_some() {
            out.push(&text[i..i + 10]);
            i += 10;
        } else {
            i += 1;
        }
    }
    out
}

/// What the check needs to know.
pub struct DateRules<'a> {
    /// Element names the rules shift.
    pub elements: &'a BTreeSet<String>,
    /// The source's dates, with `--source`.
    pub source: Option<&'a SourceDates>,
}

impl DateRules<'_> {
    /// Checks one resource; `at` names it (file and line, or `Type/id`).
    fn resource(&self, m: &Manifest, r: &Value, file: &str, line: Option<usize>, report: &mut VerifyReport) {
        let name = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or("?"),
            r["id"].as_str().unwrap_or("?")
        );
        let max = i64::from(m.date_shift_max_days);
        let mut found: Vec<(IssueCode, String)> = Vec::new();
        walk(r, "", &mut |key, text| {
            if !self.elements.contains(key) {
                if !dates_in(text).is_empty() {
                    found.push((
                        IssueCode::UnshiftedDate,
                        format!("{name} {key}: full date outside the date-shifted elements"),
                    ));
                }
                return;
            }
            if text.contains('T') {
                found.push((
                    IssueCode::DateWithTime,
                    format!("{name} {key}: date with a time of day (the shift keeps the date only)"),
                ));
            }
            if key == "birthDate" && m.profile == "safe-harbor" && text.len() != 4 {
                found.push((
                    IssueCode::BirthDateTooPrecise,
                    format!("{name} birthDate: more than a year under safe-harbor"),
                ));
            }
            let (Some(src), Some(day)) = (self.source, full_day(text)) else {
                return;
            };
            if !src.near(key, day, max) {
                found.push((
                    IssueCode::DateOutsideShift,
                    format!("{name} {key}: full date outside the shifted range (no source {key} within {max} days)"),
                ));
            }
        });
        for (code, message) in found {
            report.add(CHECK, file, line, code, message);
        }
    }
}

/// The date check of one bundle: its `bundle.json` entries one at a time
/// ([`Check::entry`], in the pass that also counts them), then the rest of its
/// files ([`Check::rest`]).
pub(super) struct Check<'r> {
    rules: &'r DateRules<'r>,
    /// The full dates of shifted elements in the entries (what `cohort.csv` may hold).
    known: BTreeSet<String>,
}

impl<'r> Check<'r> {
    /// A check with `rules`.
    pub(super) fn new(rules: &'r DateRules<'r>) -> Self {
        Self {
            rules,
            known: BTreeSet::new(),
        }
    }

    /// Checks one resource of `bundle.json`.
    pub(super) fn entry(&mut self, m: &Manifest, r: &Value, report: &mut VerifyReport) {
        self.rules.resource(m, r, "bundle.json", None, report);
        let (elements, known) = (self.rules.elements, &mut self.known);
        walk(r, "", &mut |key, text| {
            if elements.contains(key) && full_day(text).is_some() {
                known.insert(text.get(..10).unwrap_or(text).to_string());
            }
        });
    }

    /// Checks the NDJSON files, `cohort.csv` and the Table 1 files.
    pub(super) fn rest(self, dir: &Path, m: &Manifest, report: &mut VerifyReport) {
        let (rules, known) = (self.rules, self.known);
        // Missing or unreadable files were reported by the hash and count checks.
        for t in m.resource_counts.keys() {
            let file = format!("ndjson/{t}.ndjson");
            let _ = super::for_each_line(&dir.join(&file), |i, line| {
                if let Ok(r) = serde_json::from_str::<Value>(line) {
                    rules.resource(m, &r, &file, Some(i), report);
                }
            });
        }
        let _ = super::for_each_line(&dir.join("cohort.csv"), |i, line| {
            if dates_in(line).iter().any(|d| !known.contains(*d)) {
                report.add(
                    CHECK,
                    "cohort.csv",
                    Some(i),
                    IssueCode::DateNotInBundle,
                    "full date that no resource of the bundle holds",
                );
            }
        });
        for file in ["table1.md", "table1.json"] {
            let _ = super::for_each_line(&dir.join(file), |i, line| {
                if !dates_in(line).is_empty() {
                    report.add(
                        CHECK,
                        file,
                        Some(i),
                        IssueCode::DateInSummary,
                        "full date in a summary table",
                    );
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_full_dates_not_ids_codes_or_partial_dates() {
        assert_eq!(
            dates_in("onset 2016-11-10, ck 2017-01-02T10:00:00Z"),
            ["2016-11-10", "2017-01-02"]
        );
        assert!(dates_in("2157-6 1234-56-78 2016-11 2016 12016-11-10").is_empty());
        assert!(dates_in("urn:uuid:11111111-2222-4333-8444-555555555555").is_empty());
        assert!(dates_in("2016-02-30").is_empty(), "not a real day");
    }
}
