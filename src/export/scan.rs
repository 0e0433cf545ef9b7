//! Scanning text for identifier-shaped content: e-mail addresses, phone
//! numbers, and the identifiers, ids, names, telecoms and address lines of a
//! source (all of them looked for at once, one automaton per source).
//! Findings name the kind of thing and the line, never the text found.
//!
//! Source birth dates are not terms here: the date check (`datecheck`) finds a
//! full date anywhere but in a shifted element, and inside shifted elements a
//! source's birth date turns up by chance (a thousand children's birth dates
//! cover a sixth of fifteen years' days), so a match there tells nothing.

use std::path::PathBuf;

use aho_corasick::AhoCorasick;
use serde_json::Value;

use crate::fhir::source::{self, Format, Item};
use crate::report::IssueCode;

/// Identifying strings taken from the original input, lower-cased, with their kind.
#[derive(Debug, Default, Clone)]
pub struct SourceTerms {
    terms: Vec<(String, &'static str)>,
    /// Every term at once, built at the first scan after the last term was added.
    matcher: std::sync::OnceLock<Option<AhoCorasick>>,
    /// The source's full dates (verify's shifted-range check).
    pub dates: super::datecheck::SourceDates,
}

impl SourceTerms {
    /// Collects identifier values, Patient ids, names, telecoms and address
    /// lines from the inputs (and every full date, for the date check).
    pub fn from_inputs(inputs: &[PathBuf]) -> std::io::Result<Self> {
        let plan = source::plan(inputs)?;
        let mut terms = SourceTerms::default();
        for path in &plan.files {
            let format = source::format_of(path).unwrap_or(Format::Json { gzip: false });
            let gzip = matches!(format, Format::Json { gzip: true } | Format::Ndjson { gzip: true });
            let reader = source::open(path, gzip, |_| {})?;
            let name: std::sync::Arc<str> = path.display().to_string().into();
            let mut take = |item: Item<'_>| {
                if let Item::Resource { text, .. } = item {
                    if let Ok(v) = serde_json::from_str::<Value>(text) {
                        terms.add_resource(&v);
                    }
                }
            };
            match format {
                Format::Ndjson { .. } => source::read_ndjson(name, reader, &mut take)?,
                Format::Json { .. } => source::read_json(name, reader, &mut take),
            }
        }
        terms.terms.sort();
        terms.terms.dedup();
        Ok(terms)
    }

    fn add(&mut self, value: &Value, kind: &'static str, min_len: usize) {
        if let Some(s) = value.as_str().map(str::trim).filter(|s| s.chars().count() >= min_len) {
            self.terms.push((s.to_lowercase(), kind));
            self.matcher.take();
        }
    }

    /// The automaton of every term (`None` when there are none or it cannot be built).
    fn matcher(&self) -> Option<&AhoCorasick> {
        self.matcher
            .get_or_init(|| AhoCorasick::new(self.terms.iter().map(|(t, _)| t)).ok())
            .as_ref()
    }

    /// Adds the identifying strings of one resource.
    pub fn add_resource(&mut self, v: &Value) {
        self.dates.add_resource(v);
        for id in v["identifier"].as_array().into_iter().flatten() {
            self.add(&id["value"], "identifier value from the source", 4);
        }
        if v["resourceType"] != "Patient" {
            return;
        }
        self.add(&v["id"], "Patient id from the source", 6);
        for n in v["name"].as_array().into_iter().flatten() {
            self.add(&n["family"], "name from the source", 3);
            self.add(&n["text"], "name from the source", 3);
            for g in n["given"].as_array().into_iter().flatten() {
                self.add(g, "name from the source", 3);
            }
        }
        for t in v["telecom"].as_array().into_iter().flatten() {
            self.add(&t["value"], "telecom from the source", 5);
        }
        for a in v["address"].as_array().into_iter().flatten() {
            for l in a["line"].as_array().into_iter().flatten() {
                self.add(l, "address from the source", 5);
            }
        }
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True when no term was found.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// The identifier-shaped content on each line of `text`: (1-based line number,
/// code, kind in words). Source terms are [`IssueCode::SourceIdentifier`],
/// each kind at most once a line.
pub fn scan_text(text: &str, terms: Option<&SourceTerms>) -> Vec<(usize, IssueCode, &'static str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        scan_line(i + 1, line, terms, &mut out);
    }
    out
}

/// [`scan_text`] for one line (`n`, 1-based), appending to `out`.
pub fn scan_line(n: usize, line: &str, terms: Option<&SourceTerms>, out: &mut Vec<(usize, IssueCode, &'static str)>) {
    if has_email(line) {
        out.push((n, IssueCode::EmailAddress, "e-mail address"));
    }
    if has_phone(line) {
        out.push((n, IssueCode::PhoneNumber, "phone number"));
    }
    if let Some((terms, matcher)) = terms.and_then(|t| Some((t, t.matcher()?))) {
        let lower = line.to_lowercase();
        let before = out.len();
        for m in matcher.find_overlapping_iter(&lower) {
            let Some((_, kind)) = terms.terms.get(m.pattern().as_usize()) else {
                continue;
            };
            let found = (n, IssueCode::SourceIdentifier, *kind);
            if !out.get(before..).is_some_and(|o| o.contains(&found)) {
                out.push(found);
            }
        }
    }
}

fn has_email(line: &str) -> bool {
    let b = line.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    b.iter().enumerate().filter(|(_, c)| **c == b'@').any(|(at, _)| {
        let before = b[..at].iter().rev().take_while(|c| local(**c)).count();
        let after = &b[at + 1..];
        let dom_len = after.iter().take_while(|c| domain(**c)).count();
        let dom = &after[..dom_len];
        before > 0 && dom.contains(&b'.') && dom.last().is_some_and(u8::is_ascii_alphabetic)
    })
}

/// A run of digits, spaces, dashes, dots and parentheses (optionally led by
/// `+`) holding 10–15 digits and at least one separator, not inside a word,
/// and not a date or a decimal number.
fn has_phone(line: &str) -> bool {
    let b = line.as_bytes();
    let part = |c: u8| c.is_ascii_digit() || b" -().+".contains(&c);
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_digit() || b[i] == b'+' || b[i] == b'(') || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let run_len = b[i..].iter().take_while(|c| part(**c)).count();
        // The run ends at its last digit (trailing separators belong to the text).
        let end = i + b[i..i + run_len]
            .iter()
            .rposition(u8::is_ascii_digit)
            .map_or(run_len, |p| p + 1);
        let run = &b[i..end];
        let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
        let seps = run.iter().filter(|c| b" -()".contains(c)).count();
        let glued = end < b.len() && b[end].is_ascii_alphanumeric();
        let dotted_decimal = run.contains(&b'.') && seps == 0;
        let numbers = looks_like_numbers(run);
        if (10..=15).contains(&digits) && seps > 0 && !glued && !dotted_decimal && !numbers && !looks_like_dates(run) {
            return true;
        }
        i = end.max(i + 1);
    }
    false
}

/// Decimal numbers side by side, as Table 1 and the cohort write them
/// ("6550.001 (3200"): every group one number, at least one with a decimal
/// point, no dashes (a phone's groups are whole, or dotted more than once).
fn looks_like_numbers(run: &[u8]) -> bool {
    let text = String::from_utf8_lossy(run);
    let groups: Vec<&str> = text.split([' ', '(', ')']).filter(|s| !s.is_empty()).collect();
    let number = |g: &&str| g.matches('.').count() <= 1 && !g.contains('-') && g.parse::<f64>().is_ok();
    groups.iter().all(number) && groups.iter().any(|g| g.contains('.'))
}

fn looks_like_dates(run: &[u8]) -> bool {
    // "2016-11-10 2017-01-02" style runs: every group of digits is 4-2-2.
    let text = String::from_utf8_lossy(run);
    text.split([' ', '(', ')'])
        .filter(|s| !s.is_empty())
        .all(|s| crate::domain::FhirDate::parse(s.trim_matches('-')).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_emails_and_phones_not_dates_or_hashes() {
        assert!(has_email("contact: jo.smith@example.org,"));
        assert!(!has_email("\"system\": \"urn:oid:1.2@x\""));
        assert!(has_phone("call (555) 123-4567 now"));
        assert!(has_phone("\"value\": \"+1 555 123 4567\""));
        assert!(!has_phone("\"effectiveDateTime\": \"2016-11-10\""));
        assert!(!has_phone("\"value\": 3988.5, \"x\": 0.30000000000000004"));
        // Numbers the tool writes itself (Table 1 figures), not phone numbers.
        assert!(!has_phone(
            "| Peak CK, U/L, median (range) | n 12: 6550.001 (3200.5–13524.25); IQR 3200–6550.001 |"
        ));
        assert!(!has_phone("| Peak CK | 4250.5 (12001–13524) |"));
        assert!(has_phone("555 123 4567"));
        assert!(!has_phone("\"id\": \"4f1a2b3c4d5e6f70123456789abcdef0\""));
        assert!(!has_phone(
            "\"bundle.json\": \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\""
        ));
    }

    #[test]
    fn every_kind_of_source_term_on_a_line_is_found_once_and_birth_dates_are_not_terms() {
        let mut terms = SourceTerms::default();
        terms.add_resource(&serde_json::json!({
            "resourceType": "Patient", "id": "pat-000042", "birthDate": "2010-03-04",
            "identifier": [{"value": "MRN77881"}],
            "name": [{"family": "Okonkwo", "given": ["Ada"]}],
            "address": [{"line": ["12 Elm Street"]}]
        }));
        let line = "{\"note\":\"ada OKONKWO (mrn77881), okonkwo again, born 2010-03-04, of 12 elm street\"}";
        let found: Vec<&str> = scan_text(line, Some(&terms)).into_iter().map(|(_, _, k)| k).collect();
        let mut kinds = found.clone();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(found.len(), kinds.len(), "each kind once a line: {found:?}");
        assert_eq!(
            kinds,
            [
                "address from the source",
                "identifier value from the source",
                "name from the source"
            ]
        );
        // A term added after a scan is looked for at the next one.
        terms.add_resource(&serde_json::json!({"resourceType": "Patient", "id": "pat-000043"}));
        let found = scan_text("x pat-000043 y", Some(&terms));
        assert_eq!(found, [(1, IssueCode::SourceIdentifier, "Patient id from the source")]);
    }
}
