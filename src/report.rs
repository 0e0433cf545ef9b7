//! Data issues: everything the run skipped or could not map, as data.
//!
//! An [`Issue`] names where (file:line, Bundle entry or `Type/id`), the FHIR
//! path and what went wrong, never a value that could identify a patient.
//! Issues are findings, not errors: the run goes on and writes them to
//! `issues.ndjson`; `fhir::outcome` turns them into an OperationOutcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spill::List;

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data was lost: a resource or value could not be read.
    Error,
    /// A value was not mapped, or was read in a degraded way.
    Warning,
    /// Worth knowing; nothing was lost.
    Information,
}

/// What kind of issue it is (stable names, used in `issues.ndjson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    /// A line or file that is not JSON.
    MalformedJson,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// JSON that is not a FHIR resource (no resourceType).
    NotAResource,
    /// fhirbolt could not parse the resource, even leniently.
    ParseError,
    /// Parsed only in lenient mode: unknown elements were dropped.
    ParsedLeniently,
    /// A code that the mapping does not know where one was expected.
    UnknownCode,
    /// A unit that does not convert to the rule's canonical unit.
    UnitNotConvertible,
    /// A quantitative antibody result with no cutoff for its assay.
    NoCutoff,
    /// A date that is not a valid FHIR date.
    BadDate,
    /// A reference to a resource that is not in the input.
    DanglingReference,
    /// A resource without the patient it is about.
    MissingSubject,
    /// A value the rule needs is missing.
    MissingValue,
    /// A resource without an id.
    MissingId,
    /// A file that could not be read.
    UnreadableFile,
    /// The same resource (type and id) more than once in the input.
    Duplicate,
    /// A resource listed as deleted at the source; left out.
    Deleted,
    /// An error reported by the server in a Bulk Data error file.
    ExportError,
    /// A SMART Fetch work folder superseded by a later export; not read.
    Superseded,
}

/// One issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// What kind it is.
    pub code: IssueCode,
    /// Where: `file:line`, `file#entry[i]` or `Type/id`.
    pub location: String,
    /// The FHIR path (e.g. `Observation.valueQuantity.unit`), when it is about one element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_path: Option<String>,
    /// What went wrong, in words (no patient data).
    pub message: String,
}

impl Issue {
    /// A new issue.
    pub fn new(severity: Severity, code: IssueCode, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            location: location.into(),
            fhir_path: None,
            message: message.into(),
        }
    }

    /// A temporary file for `what` could not be written (`then`: what the run does instead).
    pub fn temporary_file(what: &str, e: &std::io::Error, then: &str) -> Self {
        let msg = format!("cannot write a temporary file for {what} ({e}); {then}");
        Self::new(
            Severity::Information,
            IssueCode::UnreadableFile,
            "(temporary file)",
            msg,
        )
    }

    /// The same issue, about one FHIR element.
    pub fn at(mut self, fhir_path: impl Into<String>) -> Self {
        self.fhir_path = Some(fhir_path.into());
        self
    }
}

/// How many issues are held in memory; later ones go to a temporary file.
pub const IN_MEMORY: usize = 10_000;

/// When the temporary file cannot be written: how many issues are held in
/// memory at most; the rest are only counted.
pub const MAX_KEPT: usize = 100_000;

/// An issue as stored in the temporary file (every field written: the file
/// format is not self-describing).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    severity: Severity,
    code: IssueCode,
    location: String,
    fhir_path: Option<String>,
    message: String,
}

/// All issues of a run, with counts per code, in the order found: the first
/// [`IN_MEMORY`] in memory, the rest in an anonymous temporary file (so none
/// is lost, however many). If that file cannot be written, up to
/// [`MAX_KEPT`] stay in memory and the rest are only counted ([`Issues::dropped`]).
#[derive(Debug)]
pub struct Issues {
    kept: List<Issue, Record>,
    counts: BTreeMap<(Severity, IssueCode), u64>,
    dropped: u64,
}

impl Default for Issues {
    fn default() -> Self {
        Self {
            kept: List::new(IN_MEMORY),
            counts: BTreeMap::new(),
            dropped: 0,
        }
    }
}

impl Issues {
    /// Records an issue.
    pub fn push(&mut self, issue: Issue) {
        *self.counts.entry((issue.severity, issue.code)).or_default() += 1;
        self.store(issue);
    }

    /// Keeps `issue` (already counted).
    fn store(&mut self, issue: Issue) {
        if self.kept.failed() && self.kept.held() >= MAX_KEPT {
            self.dropped += 1;
            return;
        }
        let Err((issue, e)) = self.kept.push(issue) else {
            return;
        };
        let note = Issue::temporary_file("issues", &e, &format!("later issues past {MAX_KEPT} are only counted"));
        *self.counts.entry((note.severity, note.code)).or_default() += 1;
        // In memory from now on (the list failed): these pushes succeed.
        let _note = self.kept.push(note);
        let _issue = self.kept.push(issue);
    }

    /// Moves every issue of `other` into `self`. Errors are reading `other`'s temporary file back.
    pub fn extend(&mut self, mut other: Issues) -> std::io::Result<()> {
        for (key, n) in std::mem::take(&mut other.counts) {
            *self.counts.entry(key).or_default() += n;
        }
        self.dropped += other.dropped;
        other.try_for_each(|issue| {
            self.store(issue.clone());
            Ok::<_, std::io::Error>(())
        })
    }

    /// Calls `f` with every issue kept, in the order found; stops at the first
    /// error (reading the temporary file back, or one `f` returns).
    pub fn try_for_each<E: From<std::io::Error>>(&mut self, f: impl FnMut(&Issue) -> Result<(), E>) -> Result<(), E> {
        self.kept.flush()?;
        self.kept.try_for_each(f)
    }

    /// Every issue kept, in the order found (in memory: for tests and small runs).
    ///
    /// # Errors
    ///
    /// Reading the temporary file back.
    pub fn all(&mut self) -> std::io::Result<Vec<Issue>> {
        let mut v = Vec::new();
        self.try_for_each(|i| {
            v.push(i.clone());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(v)
    }

    /// Counts per severity and code (including issues not kept).
    pub fn counts(&self) -> &BTreeMap<(Severity, IssueCode), u64> {
        &self.counts
    }

    /// Total number of issues.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Number of issues that were counted but not kept (only after the temporary file failed).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when there are no issues.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl From<Issue> for Record {
    fn from(i: Issue) -> Self {
        Record {
            severity: i.severity,
            code: i.code,
            location: i.location,
            fhir_path: i.fhir_path,
            message: i.message,
        }
    }
}

impl From<Record> for Issue {
    fn from(r: Record) -> Self {
        Issue {
            severity: r.severity,
            code: r.code,
            location: r.location,
            fhir_path: r.fhir_path,
            message: r.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(i: usize) -> Issue {
        let code = if i % 2 == 0 {
            IssueCode::MalformedJson
        } else {
            IssueCode::BadDate
        };
        let issue = Issue::new(Severity::Error, code, format!("f.ndjson:{i}"), "m");
        if i % 3 == 0 {
            issue.at("Observation.code")
        } else {
            issue
        }
    }

    #[test]
    fn a_failing_temporary_file_is_noted_in_place_and_nothing_kept_is_lost() {
        let mut a = Issues {
            kept: List::failing_after(3, 2),
            ..Issues::default()
        };
        (0..8).for_each(|i| a.push(issue(i)));
        let all = a.all().unwrap();
        assert_eq!((a.total(), all.len(), a.dropped()), (9, 9, 0));
        assert_eq!(all[..5], (0..5).map(issue).collect::<Vec<_>>()[..]);
        assert_eq!(
            all[5].code,
            IssueCode::UnreadableFile,
            "the note comes where the file failed"
        );
        assert_eq!(all[6..], (5..8).map(issue).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn issues_past_memory_come_back_in_order_and_extend_keeps_them() {
        let n = IN_MEMORY + 300;
        let mut a = Issues::default();
        (0..n).for_each(|i| a.push(issue(i)));
        assert_eq!((a.total(), a.dropped()), (n as u64, 0));
        assert_eq!(a.all().unwrap(), (0..n).map(issue).collect::<Vec<_>>());
        let mut b = Issues::default();
        (n..n + 5).for_each(|i| b.push(issue(i)));
        b.extend(a).unwrap();
        let all = b.all().unwrap();
        assert_eq!(all.len(), n + 5);
        assert_eq!(all[..5], (n..n + 5).map(issue).collect::<Vec<_>>()[..]);
        assert_eq!(all[5..], (0..n).map(issue).collect::<Vec<_>>()[..]);
        let bad_dates = b.counts()[&(Severity::Error, IssueCode::BadDate)];
        assert_eq!(
            bad_dates,
            all.iter().filter(|i| i.code == IssueCode::BadDate).count() as u64
        );
    }
}
