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
use crate::deid::json::Json;
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

/// [`walk`] over a resource read into the borrowed tree.
fn walk_json(v: &Json<'_>, key: &str, f: &mut impl FnMut(&str, &str)) {
    match v {
        Json::String(s) => f(key, s),
        Json::Array(items) => items.iter().for_each(|i| walk_json(i, key, f)),
        Json::Object(o) => o.iter().for_each(|(k, v)| walk_json(v, k, f)),
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
    fn resource(&self, m: &Manifest, r: &Json<'_>, file: &str, line: Option<usize>, report: &mut VerifyReport) {
        let text = |key: &str| r.get(key).and_then(Json::as_str).unwrap_or("?");
        let name = format!("{}/{}", text("resourceType"), text("id"));
        let max = i64::from(m.date_shift_max_days);
        let mut found: Vec<(IssueCode, String)> = Vec::new();
        walk_json(r, "", &mut |key, text| {
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

    /// Checks NDJSON line `i` of `file` (not JSON: nothing to check here).
    fn line(&self, m: &Manifest, file: &str, i: usize, line: &[u8], report: &mut VerifyReport) {
        let text = String::from_utf8_lossy(line);
        if let Ok(r) = Json::parse(&text) {
            self.resource(m, &r, file, Some(i), report);
        }
    }
}

/// The lines of a bundle's NDJSON files, file after file, one at a time
/// (missing or unreadable files, reported by the hash and count checks, end early).
struct Lines {
    files: std::vec::IntoIter<String>,
    /// The file being read: its name, reader and lines read.
    current: Option<(String, std::io::BufReader<std::fs::File>, usize)>,
    dir: std::path::PathBuf,
    buf: Vec<u8>,
}

impl Lines {
    fn new(dir: &Path, files: Vec<String>) -> Self {
        Self {
            files: files.into_iter(),
            current: None,
            dir: dir.to_path_buf(),
            buf: Vec::new(),
        }
    }

    /// Calls `f` with the next line (file, 1-based number, bytes without the
    /// line break); false when there is none.
    fn next(&mut self, f: impl FnOnce(&str, usize, &[u8])) -> bool {
        use std::io::BufRead;
        loop {
            if self.current.is_none() {
                let Some(file) = self.files.next() else { return false };
                if let Ok(opened) = std::fs::File::open(self.dir.join(&file)) {
                    self.current = Some((file, std::io::BufReader::with_capacity(1 << 16, opened), 0));
                }
                continue;
            }
            let Some((file, reader, n)) = self.current.as_mut() else {
                return false;
            };
            self.buf.clear();
            if !matches!(reader.read_until(b'\n', &mut self.buf), Ok(read) if read > 0) {
                self.current = None;
                continue;
            }
            *n += 1;
            let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            f(file, *n, line.strip_suffix(b"\r").unwrap_or(line));
            return true;
        }
    }
}

/// The date check of one bundle: its `bundle.json` entries one at a time
/// ([`Check::entry`], in the pass that also counts them), then the rest of its
/// files ([`Check::rest`]). The NDJSON files are read alongside the entries:
/// a line that is its entry's text byte for byte is checked on the entry's
/// tree (the same findings, at the line), so a resource is read once.
pub(super) struct Check<'r> {
    rules: &'r DateRules<'r>,
    /// The full dates of shifted elements in the entries (what `cohort.csv` may hold).
    known: BTreeSet<String>,
    /// The NDJSON files' lines, in the order of the entries of a sound bundle.
    lines: Lines,
    /// The NDJSON files' findings (reported after the entries').
    ndjson: VerifyReport,
}

impl<'r> Check<'r> {
    /// A check with `rules` of the bundle in `dir` with manifest `m`.
    pub(super) fn new(rules: &'r DateRules<'r>, dir: &Path, m: &Manifest) -> Self {
        let files = m.resource_counts.keys().map(|t| format!("ndjson/{t}.ndjson"));
        Self {
            rules,
            known: BTreeSet::new(),
            lines: Lines::new(dir, files.collect()),
            ndjson: VerifyReport::default(),
        }
    }

    /// Checks one resource of `bundle.json` (`text`, read into `r`).
    pub(super) fn entry(&mut self, m: &Manifest, text: &str, r: &Json<'_>, report: &mut VerifyReport) {
        self.rules.resource(m, r, "bundle.json", None, report);
        let (elements, known) = (self.rules.elements, &mut self.known);
        walk_json(r, "", &mut |key, text| {
            if elements.contains(key) && full_day(text).is_some() {
                known.insert(text.get(..10).unwrap_or(text).to_string());
            }
        });
        let (rules, ndjson) = (self.rules, &mut self.ndjson);
        self.lines.next(|file, i, line| {
            if line == text.as_bytes() {
                rules.resource(m, r, file, Some(i), ndjson);
            } else {
                rules.line(m, file, i, line, ndjson);
            }
        });
    }

    /// Checks the NDJSON lines no entry matched, `cohort.csv` and the Table 1 files.
    pub(super) fn rest(mut self, dir: &Path, m: &Manifest, report: &mut VerifyReport) {
        let (rules, ndjson) = (self.rules, &mut self.ndjson);
        while self.lines.next(|file, i, line| rules.line(m, file, i, line, ndjson)) {}
        report.findings.append(&mut self.ndjson.findings);
        let known = self.known;
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
