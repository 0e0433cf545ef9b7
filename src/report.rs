//! Data issues: everything the run skipped or could not map, as data.
//!
//! An [`Issue`] names where (file:line, Bundle entry or `Type/id`), the FHIR
//! path and what went wrong, never a value that could identify a patient.
//! Issues are findings, not errors: the run goes on and writes them to
//! `issues.ndjson`; `fhir::outcome` turns them into an OperationOutcome.

use std::collections::BTreeMap;

use serde::Serialize;

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

    /// The same issue, about one FHIR element.
    pub fn at(mut self, fhir_path: impl Into<String>) -> Self {
        self.fhir_path = Some(fhir_path.into());
        self
    }
}

/// How many issues are kept in memory; the rest are only counted.
pub const MAX_KEPT: usize = 100_000;

/// All issues of a run, with counts per code.
#[derive(Debug, Default, Clone)]
pub struct Issues {
    kept: Vec<Issue>,
    counts: BTreeMap<(Severity, IssueCode), u64>,
    dropped: u64,
}

impl Issues {
    /// Records an issue.
    pub fn push(&mut self, issue: Issue) {
        *self.counts.entry((issue.severity, issue.code)).or_default() += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(issue);
        } else {
            self.dropped += 1;
        }
    }

    /// Moves every issue of `other` into `self`.
    pub fn extend(&mut self, other: Issues) {
        for (key, n) in other.counts {
            *self.counts.entry(key).or_default() += n;
        }
        let room = MAX_KEPT.saturating_sub(self.kept.len());
        let extra = other.kept.len().saturating_sub(room) as u64;
        self.kept.extend(other.kept.into_iter().take(room));
        self.dropped += other.dropped + extra;
    }

    /// The issues kept, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Issue> {
        self.kept.iter()
    }

    /// Counts per severity and code (including issues not kept).
    pub fn counts(&self) -> &BTreeMap<(Severity, IssueCode), u64> {
        &self.counts
    }

    /// Total number of issues.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Number of issues past [`MAX_KEPT`] that were counted but not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when there are no issues.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
