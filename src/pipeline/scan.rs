//! The per-resource step of reading, free of shared state: peek, parse and
//! extract one resource into [`Event`]s appended to a [`Batch`].
//!
//! It only reads the mappings and the set of deleted resources, so batches can
//! be filled on several threads and applied to the
//! [`Collector`](super::Collector) in input order: the result is the same as
//! reading on one thread. It must not touch the collector's state.

use std::collections::{BTreeMap, HashSet};

use crate::fhir::peek::{classify, PeekError, Relevance};
use crate::fhir::prefilter::Prefilter;
use crate::fhir::source::{Item, Location};
use crate::mapping::extract::{self, Extracted};
use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Severity};

/// What one piece of input contributes, in input order.
#[derive(Debug)]
pub enum Event {
    /// A data issue.
    Issue(Issue),
    /// A Medication no rule matches: only its existence matters.
    KnownMedication(String),
    /// A resource parsed in full and extracted.
    Parsed {
        /// The Bundle entry's fullUrl.
        full_url: Option<String>,
        /// What the mapping rules made of it.
        out: Box<Extracted>,
        /// Its raw JSON, kept only when it gave something.
        text: Option<String>,
    },
}

/// Events and counts of a stretch of input.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events in input order.
    pub events: Vec<Event>,
    /// Resources seen, per type.
    pub seen: BTreeMap<String, u64>,
    /// Resources parsed in full.
    pub parsed: u64,
}

impl Batch {
    fn count(&mut self, resource_type: &str) {
        match self.seen.get_mut(resource_type) {
            Some(n) => *n += 1,
            None => {
                self.seen.insert(resource_type.to_string(), 1);
            }
        }
    }

    fn issue(&mut self, severity: Severity, code: IssueCode, location: impl Into<String>, msg: impl Into<String>) {
        self.events
            .push(Event::Issue(Issue::new(severity, code, location.into(), msg.into())));
    }

    /// Adds the counts of `other` (events are not moved).
    pub fn add_counts(&mut self, other: &Batch) {
        for (t, n) in &other.seen {
            *self.seen.entry(t.clone()).or_default() += n;
        }
        self.parsed += other.parsed;
    }
}

/// What the scan reads with: shared, read-only.
#[derive(Clone, Copy)]
pub struct Scanner<'a> {
    /// The mappings.
    pub mappings: &'a MappingSet,
    /// Resources deleted at the source (`Type/id`).
    pub deleted: &'a HashSet<String>,
    /// The byte-level look before the peek.
    pub prefilter: &'a Prefilter,
}

/// Reads one item into `batch`.
pub fn scan_item(scanner: Scanner<'_>, item: Item<'_>, batch: &mut Batch) {
    match item {
        Item::Unreadable {
            location,
            invalid_utf8,
            message,
        } => {
            let code = if invalid_utf8 {
                IssueCode::InvalidUtf8
            } else {
                IssueCode::MalformedJson
            };
            batch.issue(Severity::Error, code, location.to_string(), message);
        }
        Item::Resource {
            location,
            text,
            full_url,
        } => scan_resource(scanner, &location, text, full_url, batch),
        Item::NoResource { location } => {
            let msg = "Bundle entry with a request or response and no resource (batch/transaction); nothing to read";
            batch.issue(
                Severity::Information,
                IssueCode::EntryWithoutResource,
                location.to_string(),
                msg,
            );
        }
    }
}

fn scan_resource(scanner: Scanner<'_>, location: &Location, text: &str, full_url: Option<&str>, batch: &mut Batch) {
    let Scanner {
        mappings,
        deleted,
        prefilter,
    } = scanner;
    if deleted.is_empty() {
        if let Some(resource_type) = prefilter.skip(text) {
            return batch.count(resource_type);
        }
    }
    let (resource_type, relevance) = match classify(text, mappings) {
        Ok(x) => x,
        Err(PeekError::Malformed(msg)) => {
            return batch.issue(Severity::Error, IssueCode::MalformedJson, location.to_string(), msg);
        }
        Err(PeekError::NotAResource) => {
            let msg = "JSON without resourceType; not a FHIR resource";
            return batch.issue(Severity::Error, IssueCode::NotAResource, location.to_string(), msg);
        }
    };
    batch.count(&resource_type);
    if !deleted.is_empty() {
        let key = format!("{resource_type}/{}", peek_id(text).unwrap_or_default());
        if deleted.contains(&key) {
            let msg = "deleted at the source (listed in a deleted/ file); left out";
            return batch.issue(Severity::Information, IssueCode::Deleted, key, msg);
        }
    }
    match relevance {
        Relevance::Skip => {}
        Relevance::KnownMedication => {
            if let Some(id) = peek_id(text) {
                batch.events.push(Event::KnownMedication(id));
            }
        }
        Relevance::Parse => parse_and_extract(mappings, location, text, full_url, batch),
    }
}

fn parse_and_extract(
    mappings: &MappingSet,
    location: &Location,
    text: &str,
    full_url: Option<&str>,
    batch: &mut Batch,
) {
    batch.parsed += 1;
    let parsed = match crate::fhir::parse::resource(text) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("not a valid FHIR R4 resource: {e}");
            return batch.issue(Severity::Error, IssueCode::ParseError, location.to_string(), msg);
        }
    };
    let out = extract::extract(&parsed.resource, mappings, &location.to_string());
    if let Some(note) = parsed.lenient_note {
        let msg = format!("parsed leniently, unknown or invalid elements dropped: {note}");
        batch.issue(
            Severity::Warning,
            IssueCode::ParsedLeniently,
            out.source.to_string(),
            msg,
        );
    }
    if extract::type_and_id(&parsed.resource).1.is_none() {
        let msg = format!(
            "{} without an id; named by its place in the input",
            out.source.resource_type
        );
        batch.issue(Severity::Warning, IssueCode::MissingId, location.to_string(), msg);
    }
    let used = out.patient.is_some()
        || !out.facts.is_empty()
        || !out.diagnoses.is_empty()
        || !out.pending.is_empty()
        || out.medication.as_ref().is_some_and(|m| !m.is_empty());
    batch.events.push(Event::Parsed {
        full_url: full_url.map(str::to_string),
        out: Box::new(out),
        text: used.then(|| text.to_string()),
    });
}

/// The `id` of a resource's JSON text.
pub fn peek_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_str::<IdOnly>(text).ok()?.id
}
