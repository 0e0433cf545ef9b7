//! The one finding model: every issue a run, a validation or a verify finds, as data.
//!
//! An [`Issue`] says how bad ([`Severity`]), what kind ([`IssueCode`], stable
//! kebab-case names), where ([`Location`]: file:line, `file#entry[i]`,
//! `Type/id`, or a file of a study bundle with its line), the FHIR path and
//! the rule when known, and what went wrong in words: never a value that
//! could identify a patient. Issues are findings, not errors: the run goes on.
//!
//! This module owns the model and [`Issues`], a run's list of them (kept
//! past memory in a temporary file, `spill`). It knows nothing of
//! JSON or FHIR: `cohort` writes a run's issues to `issues.ndjson`,
//! `profile` (`imnm validate`) and `export::verify` (`imnm export --verify`)
//! report theirs, and [`crate::fhir::outcome::operation_outcome`] turns any
//! list of them into an OperationOutcome.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spill::List;

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data was lost: a resource or value could not be read, or is invalid.
    Error,
    /// A value was not mapped, or was read in a degraded way.
    Warning,
    /// Worth knowing; nothing was lost.
    Information,
}

impl Severity {
    /// The severity's name (`error`, `warning`, `information`; FHIR's issue-severity codes).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// What kind of issue it is: a closed list of stable names (kebab-case, as
/// written to `issues.ndjson` and to OperationOutcome `details.coding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    // Reading inputs and mapping them (a cohort run, `issues.ndjson`).
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
    /// A file that could not be read (also: a study bundle's `bundle.json` that is not a JSON Bundle).
    UnreadableFile,
    /// The same resource (type and id) more than once in the input.
    Duplicate,
    /// A resource listed as deleted at the source; left out.
    Deleted,
    /// An error reported by the server in a Bulk Data error file.
    ExportError,
    /// A SMART Fetch work folder superseded by a later export; not read.
    Superseded,
    /// A batch/transaction Bundle entry with a request or response and no resource.
    EntryWithoutResource,
    /// A result given as a bound (`<`, `>`): counted at its bound.
    Comparator,
    /// A resource whose status the rules exclude (`[status]` in rules.toml): not mapped.
    ExcludedStatus,
    /// A finding mentioned in report or note text with an uncertainty cue ("possible rash"): not mapped.
    UncertainText,
    /// Report or note texts of one kind that disagree about a finding (the kind's rule decides).
    ConflictingText,
    /// Patients of several sites share linking identifiers but two are of one site: not linked.
    LinkConflict,
    /// A report or note attachment not read: a content type other than text, only a url, or undecodable data.
    UnreadAttachment,
    /// A case-sheet cell `to-fhir` could not read (left out).
    BadCell,
    /// A case-sheet row `to-fhir` skipped (or a sheet it could not read).
    BadRow,

    // Profile validation (`imnm validate`, `to-fhir`): which kind of constraint.
    /// min / max, or an array where one value belongs.
    Cardinality,
    /// A type the element does not allow.
    Type,
    /// A `fixed[x]` value.
    Fixed,
    /// A `pattern[x]` value.
    Pattern,
    /// A required binding.
    Binding,
    /// A Reference to a resource type or profile the element does not allow.
    Reference,
    /// A primitive's lexical form (dates, ids, codes, …).
    Format,
    /// An element the definition does not have.
    UnknownElement,
    /// An unknown profile or extension.
    Profile,
    /// JSON structure (arrays, objects), an unreadable input, and the FHIR parser's verdict.
    Structure,

    // Study bundle checks (`imnm export --verify`).
    /// A file whose SHA-256 differs from the manifest's (altered).
    HashMismatch,
    /// A file the manifest lists that is not there.
    MissingFile,
    /// A file the manifest does not list.
    UnlistedFile,
    /// Resource counts that differ from the manifest's.
    CountMismatch,
    /// A full date outside the elements the date shift applies to (not shifted).
    UnshiftedDate,
    /// A shifted element holding a time of day (the shift keeps the date only).
    DateWithTime,
    /// A `birthDate` more precise than the de-identification profile allows.
    BirthDateTooPrecise,
    /// A shifted date farther from every source date of its element than the maximum shift.
    DateOutsideShift,
    /// A full date in `cohort.csv` that no resource of the bundle holds.
    DateNotInBundle,
    /// A full date in a summary table.
    DateInSummary,
    /// Something shaped like an e-mail address.
    EmailAddress,
    /// Something shaped like a phone number.
    PhoneNumber,
    /// An identifying string of the source (identifier, Patient id, name, telecom, address, birth date).
    SourceIdentifier,
}

impl IssueCode {
    /// Every code, in declaration order.
    pub const ALL: [IssueCode; 50] = [
        IssueCode::MalformedJson,
        IssueCode::InvalidUtf8,
        IssueCode::NotAResource,
        IssueCode::ParseError,
        IssueCode::ParsedLeniently,
        IssueCode::UnknownCode,
        IssueCode::UnitNotConvertible,
        IssueCode::NoCutoff,
        IssueCode::BadDate,
        IssueCode::DanglingReference,
        IssueCode::MissingSubject,
        IssueCode::MissingValue,
        IssueCode::MissingId,
        IssueCode::UnreadableFile,
        IssueCode::Duplicate,
        IssueCode::Deleted,
        IssueCode::ExportError,
        IssueCode::Superseded,
        IssueCode::EntryWithoutResource,
        IssueCode::Comparator,
        IssueCode::ExcludedStatus,
        IssueCode::UncertainText,
        IssueCode::ConflictingText,
        IssueCode::LinkConflict,
        IssueCode::UnreadAttachment,
        IssueCode::BadCell,
        IssueCode::BadRow,
        IssueCode::Cardinality,
        IssueCode::Type,
        IssueCode::Fixed,
        IssueCode::Pattern,
        IssueCode::Binding,
        IssueCode::Reference,
        IssueCode::Format,
        IssueCode::UnknownElement,
        IssueCode::Profile,
        IssueCode::Structure,
        IssueCode::HashMismatch,
        IssueCode::MissingFile,
        IssueCode::UnlistedFile,
        IssueCode::CountMismatch,
        IssueCode::UnshiftedDate,
        IssueCode::DateWithTime,
        IssueCode::BirthDateTooPrecise,
        IssueCode::DateOutsideShift,
        IssueCode::DateNotInBundle,
        IssueCode::DateInSummary,
        IssueCode::EmailAddress,
        IssueCode::PhoneNumber,
        IssueCode::SourceIdentifier,
    ];

    /// The code's stable name (what serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::MalformedJson => "malformed-json",
            IssueCode::InvalidUtf8 => "invalid-utf8",
            IssueCode::NotAResource => "not-a-resource",
            IssueCode::ParseError => "parse-error",
            IssueCode::ParsedLeniently => "parsed-leniently",
            IssueCode::UnknownCode => "unknown-code",
            IssueCode::UnitNotConvertible => "unit-not-convertible",
            IssueCode::NoCutoff => "no-cutoff",
            IssueCode::BadDate => "bad-date",
            IssueCode::DanglingReference => "dangling-reference",
            IssueCode::MissingSubject => "missing-subject",
            IssueCode::MissingValue => "missing-value",
            IssueCode::MissingId => "missing-id",
            IssueCode::UnreadableFile => "unreadable-file",
            IssueCode::Duplicate => "duplicate",
            IssueCode::Deleted => "deleted",
            IssueCode::ExportError => "export-error",
            IssueCode::Superseded => "superseded",
            IssueCode::EntryWithoutResource => "entry-without-resource",
            IssueCode::Comparator => "comparator",
            IssueCode::ExcludedStatus => "excluded-status",
            IssueCode::UncertainText => "uncertain-text",
            IssueCode::ConflictingText => "conflicting-text",
            IssueCode::LinkConflict => "link-conflict",
            IssueCode::UnreadAttachment => "unread-attachment",
            IssueCode::BadCell => "bad-cell",
            IssueCode::BadRow => "bad-row",
            IssueCode::Cardinality => "cardinality",
            IssueCode::Type => "type",
            IssueCode::Fixed => "fixed",
            IssueCode::Pattern => "pattern",
            IssueCode::Binding => "binding",
            IssueCode::Reference => "reference",
            IssueCode::Format => "format",
            IssueCode::UnknownElement => "unknown-element",
            IssueCode::Profile => "profile",
            IssueCode::Structure => "structure",
            IssueCode::HashMismatch => "hash-mismatch",
            IssueCode::MissingFile => "missing-file",
            IssueCode::UnlistedFile => "unlisted-file",
            IssueCode::CountMismatch => "count-mismatch",
            IssueCode::UnshiftedDate => "unshifted-date",
            IssueCode::DateWithTime => "date-with-time",
            IssueCode::BirthDateTooPrecise => "birth-date-too-precise",
            IssueCode::DateOutsideShift => "date-outside-shift",
            IssueCode::DateNotInBundle => "date-not-in-bundle",
            IssueCode::DateInSummary => "date-in-summary",
            IssueCode::EmailAddress => "email-address",
            IssueCode::PhoneNumber => "phone-number",
            IssueCode::SourceIdentifier => "source-identifier",
        }
    }
}

impl fmt::Display for IssueCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an issue is. Written as one string: `input`, or `resource (input)`
/// when the resource is known besides the place in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Where in the input: `file:line`, `file#entry[i]`, a file of a study
    /// bundle (`file` or `file:line`), or `Type/id` when that is all there is.
    pub input: String,
    /// The resource (`Type/id`) the issue is about, when known besides `input`.
    pub resource: Option<String>,
}

impl Location {
    /// A place in the input (`file:line`, `file#entry[i]`, `Type/id`, …).
    pub fn new(input: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            resource: None,
        }
    }

    /// A line of a file, or the whole file when `line` is `None` (1-based).
    pub fn line(file: &str, line: Option<usize>) -> Self {
        match line {
            Some(l) => Self::new(format!("{file}:{l}")),
            None => Self::new(file),
        }
    }

    /// The same place, about `resource` (`Type/id`).
    pub fn in_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }
}

impl From<String> for Location {
    fn from(input: String) -> Self {
        Self::new(input)
    }
}

impl From<&str> for Location {
    fn from(input: &str) -> Self {
        Self::new(input)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "{r} ({})", self.input),
            None => f.write_str(&self.input),
        }
    }
}

/// A location equals a string when it is that place in the input, with no resource besides.
impl PartialEq<str> for Location {
    fn eq(&self, other: &str) -> bool {
        self.resource.is_none() && self.input == other
    }
}

impl PartialEq<&str> for Location {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One issue (a finding): the one model of a cohort run's data issues,
/// profile validation and study bundle verification.
///
/// Serialized (one line of `issues.ndjson`) with the keys `severity`, `code`,
/// `location`, `fhir_path` and `rule` when present, and `message`.
/// Displayed as `location: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// What kind it is.
    pub code: IssueCode,
    /// The registry site whose data it is about (a cohort run names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Where it is.
    pub location: Location,
    /// The FHIR path (e.g. `Observation.valueQuantity.unit`), when it is about one element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_path: Option<String>,
    /// The rule that found it, when one did: a mapping rule id, the profile
    /// validated against (`imnm-patient`, `R4 base`), or the verify check
    /// (`manifest`, `counts`, `dates`, `scan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What went wrong, in words (no patient data).
    pub message: String,
}

impl Issue {
    /// A new issue.
    pub fn new(severity: Severity, code: IssueCode, location: impl Into<Location>, message: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            site: None,
            location: location.into(),
            fhir_path: None,
            rule: None,
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

    /// The same issue, found by `rule` (see [`Issue::rule`]).
    pub fn by(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
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
    site: Option<String>,
    location: String,
    resource: Option<String>,
    fhir_path: Option<String>,
    rule: Option<String>,
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
    pub fn extend(&mut self, other: Issues) -> std::io::Result<()> {
        self.take_from(other, None)
    }

    /// As [`Issues::extend`], naming `site` on every issue that names none.
    pub fn extend_site(&mut self, other: Issues, site: &str) -> std::io::Result<()> {
        self.take_from(other, Some(site))
    }

    fn take_from(&mut self, mut other: Issues, site: Option<&str>) -> std::io::Result<()> {
        for (key, n) in std::mem::take(&mut other.counts) {
            *self.counts.entry(key).or_default() += n;
        }
        self.dropped += other.dropped;
        other.try_for_each(|issue| {
            let mut issue = issue.clone();
            if let Some(site) = site {
                issue.site.get_or_insert_with(|| site.to_string());
            }
            self.store(issue);
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
            site: i.site,
            location: i.location.input,
            resource: i.location.resource,
            fhir_path: i.fhir_path,
            rule: i.rule,
            message: i.message,
        }
    }
}

impl From<Record> for Issue {
    fn from(r: Record) -> Self {
        Issue {
            severity: r.severity,
            code: r.code,
            site: r.site,
            location: Location {
                input: r.location,
                resource: r.resource,
            },
            fhir_path: r.fhir_path,
            rule: r.rule,
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
        let mut issue = Issue::new(Severity::Error, code, format!("f.ndjson:{i}"), "m");
        if i % 3 == 0 {
            issue = issue.at("Observation.code");
        }
        if i % 5 == 0 {
            issue.location = issue.location.in_resource(format!("Observation/o{i}"));
            issue = issue.by("imnm-ck-observation");
        }
        issue
    }

    #[test]
    fn codes_are_written_by_their_stable_names() {
        for code in IssueCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
        }
        let mut names: Vec<&str> = IssueCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IssueCode::ALL.len());
    }

    #[test]
    fn an_issue_is_one_line_of_issues_ndjson_and_displays_as_location_and_message() {
        let plain = Issue::new(Severity::Warning, IssueCode::BadDate, "f.ndjson:3", "not a date");
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"severity":"warning","code":"bad-date","location":"f.ndjson:3","message":"not a date"}"#
        );
        let full = Issue::new(
            Severity::Error,
            IssueCode::Binding,
            Location::new("b.json#entry[0]").in_resource("Patient/p1"),
            "code not in the value set",
        )
        .at("Patient.gender")
        .by("imnm-patient");
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            r#"{"severity":"error","code":"binding","location":"Patient/p1 (b.json#entry[0])","fhir_path":"Patient.gender","rule":"imnm-patient","message":"code not in the value set"}"#
        );
        assert_eq!(plain.to_string(), "f.ndjson:3: not a date");
        let line = Issue::new(
            Severity::Error,
            IssueCode::PhoneNumber,
            Location::line("cohort.csv", Some(2)),
            "phone number",
        );
        assert_eq!(line.to_string(), "cohort.csv:2: phone number");
        assert_eq!(Location::line("bundle.json", None).to_string(), "bundle.json");
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
