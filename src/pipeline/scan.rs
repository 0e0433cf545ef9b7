//! The per-resource step of reading, free of shared state: peek, parse and
//! extract one resource into [`Event`]s appended to a [`Batch`].
//!
//! It only reads the mappings and the set of deleted resources, so batches can
//! be filled on several threads and applied to the
//! [`Collector`](super::Collector) in input order: the result is the same as
//! reading on one thread. It must not touch the collector's state.

use std::collections::{BTreeMap, HashSet};

use crate::collect::Kept;
use crate::domain::SourceRef;
use crate::fhir::fast::view::Observation as ObservationView;
use crate::fhir::parse::Parsed;
use crate::fhir::peek::{classify, relevance, PeekError, Relevance};
use crate::fhir::prefilter::Prefilter;
use crate::fhir::reference::{self, Ref};
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
        /// Its raw JSON (or where it lies in its file), kept only when it gave something.
        text: Option<Kept>,
        /// Its `resource_key`, for the duplicate check.
        key: u128,
        /// Its `subject_key`, when it names a subject (the reference moved
        /// out of `out.subject`, which is then `None`).
        subject: Option<String>,
        /// Which version of the resource it is, when its `meta` says.
        version: Option<Version>,
    },
}

/// Which version of a resource a copy is (its `meta`), to tell the newest of
/// several copies of one resource in an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// `meta.lastUpdated`, in milliseconds since 1970 (UTC).
    pub updated: Option<i64>,
    /// `meta.versionId`, when a number.
    pub number: Option<u64>,
}

impl Version {
    /// The version `meta` gives: `None` when it gives neither an instant nor a number.
    fn of(meta: Option<&crate::fhir::model::types::Meta>) -> Option<Version> {
        let meta = meta?;
        let updated = meta.last_updated.as_ref().and_then(|t| t.value.as_deref());
        let number = meta.version_id.as_ref().and_then(|v| v.value.as_deref());
        Version::of_text(updated, number)
    }

    /// The version `meta.lastUpdated` and `meta.versionId` give, as written.
    fn of_text(updated: Option<&str>, number: Option<&str>) -> Option<Version> {
        let version = Version {
            updated: updated.and_then(crate::domain::date::instant_millis),
            number: number.and_then(|v| v.trim().parse().ok()),
        };
        (version.updated.is_some() || version.number.is_some()).then_some(version)
    }

    /// Whether this copy is surely newer than `other`: a later `lastUpdated`,
    /// else (the same or one missing) a higher `versionId`. Equal or not
    /// comparable: false.
    pub fn newer_than(&self, other: &Version) -> bool {
        match (self.updated, other.updated) {
            (Some(a), Some(b)) if a != b => a > b,
            _ => matches!((self.number, other.number), (Some(a), Some(b)) if a > b),
        }
    }
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
    /// How the prefilter has done on this stretch's Observations.
    odds: Odds,
}

impl Batch {
    /// An empty batch whose events go into `events` (emptied, its room kept).
    pub(crate) fn reusing(mut events: Vec<Event>) -> Self {
        events.clear();
        Self {
            events,
            ..Self::default()
        }
    }
}

/// How often the prefilter skipped the Observations it looked at in a stretch
/// of input. The prefilter's look costs about a fifth of the borrowed parse
/// that decides the same (`relevance` of the parse's peek): where most
/// Observations are relevant (a registry's own patients) it only adds that
/// fifth, so past the first [`Odds::FIRST`] it looks at each only while it
/// skipped at least one in four of its last looks (counts halved every
/// `2 × FIRST` looks), and at one in [`Odds::SAMPLE`] otherwise (to notice
/// the mix changing). Which way a resource goes never changes what it gives.
#[derive(Debug, Default)]
struct Odds {
    seen: u32,
    /// Looks and skips since the last halving.
    looked: u32,
    skipped: u32,
    /// All looks and skips (for tests).
    #[cfg(test)]
    looks: u32,
    #[cfg(test)]
    skips: u32,
}

impl Odds {
    const FIRST: u32 = 32;
    const SAMPLE: u32 = 16;

    /// Whether the prefilter looks at the next Observation.
    fn look(&mut self) -> bool {
        self.seen = self.seen.wrapping_add(1);
        self.looked < Self::FIRST || self.skipped.saturating_mul(4) >= self.looked || self.seen % Self::SAMPLE == 0
    }

    /// What the prefilter did with an Observation it looked at.
    fn looked(&mut self, skipped: bool) {
        if self.looked >= 2 * Self::FIRST {
            self.looked /= 2;
            self.skipped /= 2;
        }
        self.looked += 1;
        self.skipped += u32::from(skipped);
        #[cfg(test)]
        {
            self.looks += 1;
            self.skips += u32::from(skipped);
        }
    }
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
    scan_item_at(scanner, item, None, batch);
}

/// As [`scan_item`]; `at`: where the resource's text lies, unchanged, in
/// its file (a regular file, read again there when the text is written out).
pub fn scan_item_at(scanner: Scanner<'_>, item: Item<'_>, at: Option<u64>, batch: &mut Batch) {
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
        } => {
            let read = Read {
                location: &location,
                text,
                full_url,
                at,
                read_fast: false,
            };
            scan_resource(scanner, read, batch);
        }
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

/// A resource as read: where, its text, its entry's fullUrl, where its text
/// lies in its file, whether the fast parse read it in full (then its text is
/// known compact unless spaced: [`crate::fhir::fast::read_compact`]).
#[derive(Clone, Copy)]
struct Read<'r> {
    location: &'r Location,
    text: &'r str,
    full_url: Option<&'r str>,
    at: Option<u64>,
    read_fast: bool,
}

fn scan_resource(scanner: Scanner<'_>, read: Read<'_>, batch: &mut Batch) {
    let Read { location, text, .. } = read;
    let Scanner {
        mappings,
        deleted,
        prefilter,
    } = scanner;
    if deleted.is_empty() {
        let observation = prefilter.is_on() && text.starts_with("{\"resourceType\":\"Observation\"");
        if !observation || batch.odds.look() {
            let skip = prefilter.skip(text);
            if observation {
                batch.odds.looked(skip.is_some());
            }
            if let Some(resource_type) = skip {
                return batch.count(resource_type);
            }
        }
        // Past the prefilter (or where it is not looking, see `Odds`) an
        // Observation is most likely one a rule uses:
        // one borrowed parse serves the peek and the typed resource both.
        if prefilter.is_on() {
            if let Some(obs) = crate::fhir::fast::observation(text) {
                batch.count("Observation");
                if relevance(&obs.peek(), mappings) == Relevance::Skip {
                    return;
                }
                return match obs.view() {
                    Some(view) => {
                        batch.parsed += 1;
                        let read = Read {
                            read_fast: true,
                            ..read
                        };
                        extract_view(mappings, read, view, batch);
                    }
                    None => parse_and_extract(mappings, read, batch),
                };
            }
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
        Relevance::Parse => parse_and_extract(mappings, read, batch),
    }
}

fn parse_and_extract(mappings: &MappingSet, read: Read<'_>, batch: &mut Batch) {
    batch.parsed += 1;
    let parsed = match crate::fhir::parse::resource(read.text) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("not a valid FHIR R4 resource: {e}");
            return batch.issue(Severity::Error, IssueCode::ParseError, read.location.to_string(), msg);
        }
    };
    extract_parsed(mappings, read, parsed, batch);
}

/// Extracts a parsed resource into `batch` (its issues, its text when it gave something).
fn extract_parsed(mappings: &MappingSet, read: Read<'_>, parsed: Parsed, batch: &mut Batch) {
    let unnamed = extract::type_and_id(&parsed.resource).1.is_none();
    let out = extract::extract(&parsed.resource, mappings, &fallback_name(read, unnamed));
    if let Some(note) = parsed.lenient_note {
        let msg = format!("parsed leniently, unknown or invalid elements dropped: {note}");
        batch.issue(
            Severity::Warning,
            IssueCode::ParsedLeniently,
            out.source.to_string(),
            msg,
        );
    }
    let version = Version::of(parsed.resource.meta());
    push_extracted(read, out, version, unnamed, batch);
}

/// As [`extract_parsed`], for an Observation the rules read through its
/// borrowed view (the scan's fast path: nothing converted).
fn extract_view(mappings: &MappingSet, read: Read<'_>, view: ObservationView<'_>, batch: &mut Batch) {
    let unnamed = view.id().is_none();
    let out = extract::extract_observation(view, mappings, &fallback_name(read, unnamed));
    let (updated, number) = view.version();
    push_extracted(read, out, Version::of_text(updated, number), unnamed, batch);
}

/// The name of a resource without an id: its place in the input (empty when it has one).
fn fallback_name(read: Read<'_>, unnamed: bool) -> String {
    match unnamed {
        true => read.location.text(),
        false => String::new(),
    }
}

/// Hands what one resource gave to `batch`: the missing-id issue, then the
/// event (its text kept when it gave something).
fn push_extracted(read: Read<'_>, mut out: Extracted, version: Option<Version>, unnamed: bool, batch: &mut Batch) {
    if unnamed {
        let msg = format!(
            "{} without an id; named by its place in the input",
            out.source.resource_type
        );
        batch.issue(Severity::Warning, IssueCode::MissingId, read.location.to_string(), msg);
    }
    let used = out.patient.is_some()
        || !out.facts.is_empty()
        || !out.diagnoses.is_empty()
        || !out.pending.is_empty()
        || out.medication.as_ref().is_some_and(|m| !m.is_empty());
    batch.events.push(Event::Parsed {
        full_url: read.full_url.map(str::to_string),
        key: resource_key(&out.source),
        subject: out.subject.take().map(subject_key),
        version,
        out: Box::new(out),
        text: used.then(|| kept(read)),
    });
}

/// A used resource's text as the collector keeps it: where it lies in its
/// file when the reader said so, else a copy; known compact when the fast
/// parse read it and no space sits between tokens, else when checked so here
/// (on the reading threads: `sources.ndjson`'s writing, after the read, then
/// copies it as it is instead of checking it there, on fewer threads).
fn kept(read: Read<'_>) -> Kept {
    let Read { location, text, at, .. } = read;
    let compact = (read.read_fast && crate::fhir::fast::read_compact(text)) || crate::fhir::already_compact(text);
    match (at, u32::try_from(text.len())) {
        (Some(offset), Ok(len)) => Kept::At {
            file: location.file.clone(),
            offset,
            len,
            compact,
        },
        _ => Kept::Text {
            text: text.to_string(),
            compact,
        },
    }
}

/// The `id` of a resource's JSON text.
pub fn peek_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_str::<IdOnly>(text).ok()?.id
}

/// A 128-bit digest of `Type/id` (XXH3-128): a collision between two
/// resources of one run has a chance of about n² / 2¹²⁹.
pub(crate) fn resource_key(source: &SourceRef) -> u128 {
    digest(&source.resource_type, &source.id)
}

/// [`resource_key`] of `resource_type/id`, from its two parts (joined by
/// `/` on the stack when short: a type's name has no `/`).
pub(crate) fn digest(resource_type: &str, id: &str) -> u128 {
    let (t, i) = (resource_type.as_bytes(), id.as_bytes());
    let len = t.len() + 1 + i.len();
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let joined: &mut [u8] = match stack.get_mut(..len) {
        Some(s) => s,
        None => {
            heap.resize(len, 0);
            &mut heap
        }
    };
    let (head, id_part) = joined.split_at_mut(t.len() + 1);
    head[..t.len()].copy_from_slice(t);
    head[t.len()] = b'/';
    id_part.copy_from_slice(i);
    twox_hash::XxHash3_128::oneshot(joined)
}

/// The key of a subject reference: `Patient/id` for a Patient however written, else the reference trimmed.
pub(super) fn subject_key(reference: String) -> String {
    // Most subjects are written `Patient/id` already, which is their key (kept, not copied).
    let written_so = (reference.strip_prefix("Patient/"))
        .is_some_and(|id| !id.is_empty() && !id.contains(['/', '?']) && id.trim_end() == id);
    if written_so {
        return reference;
    }
    match reference::parse(&reference) {
        Ref::Typed { resource_type, id } if resource_type == "Patient" => format!("Patient/{id}"),
        _ => reference.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test: a failure should stop it loudly")]

    use super::*;
    use crate::fhir::source::Pos;

    /// Everything a scan gave, as text (events, counts).
    fn scanned(scanner: Scanner<'_>, text: &str) -> String {
        let location = Location {
            file: "t.ndjson".into(),
            pos: Pos::Line(7),
        };
        let mut batch = Batch::default();
        let item = Item::Resource {
            location,
            text,
            full_url: None,
        };
        scan_item(scanner, item, &mut batch);
        format!("{:?} {:?} {}", batch.events, batch.seen, batch.parsed)
    }

    /// A key is its `Type/id` hashed, whether joined on the stack or (past
    /// 128 bytes) on the heap: equal for equal parts, apart for any change.
    #[test]
    fn a_resource_key_is_type_slash_id_however_long() {
        for len in [0, 1, 100, 115, 116, 117, 300] {
            let id = "x".repeat(len);
            let key = digest("Observation", &id);
            let joined = format!("Observation/{id}");
            assert_eq!(key, twox_hash::XxHash3_128::oneshot(joined.as_bytes()), "{len}");
            assert_eq!(key, digest("Observation", &id), "{len}");
            assert_ne!(key, digest("Condition", &id), "{len}");
            assert_ne!(key, digest("Observation", &format!("{id}y")), "{len}");
        }
    }

    proptest::proptest! {
        /// The key of a reference written `Patient/id` is the one its full parse gives.
        #[test]
        fn a_subject_key_is_the_parsed_one(parts in proptest::collection::vec(proptest::sample::select(vec!["Patient/", "Patient", "/", "?", " ", "x", "_history", "#", "Group/", "\t", "é"]), 0..6)) {
            let reference = parts.concat();
            let parsed = match reference::parse(&reference) {
                Ref::Typed { resource_type, id } if resource_type == "Patient" => format!("Patient/{id}"),
                _ => reference.trim().to_string(),
            };
            proptest::prop_assert_eq!(subject_key(reference.clone()), parsed);
        }
    }

    /// One batch read with the prefilter on gives the events and counts of the
    /// prefilter off, on a stretch where it first skips nothing (a registry's
    /// results, where it stops looking) and then nearly everything (a hospital's
    /// vital signs), and back.
    #[test]
    fn the_prefilter_looking_less_where_it_skips_little_changes_nothing() {
        scanners(prefilter_looking_less);
    }

    fn prefilter_looking_less(on: Scanner<'_>, off: Scanner<'_>) {
        let mut texts = Vec::new();
        let registry = crate::bench_data::Spec::registry(3_000, 100);
        let hospital = crate::bench_data::Spec {
            faults: true,
            ..crate::bench_data::Spec::new(3_000)
        };
        for spec in [&registry, &hospital, &registry] {
            crate::bench_data::for_each(spec, |_, j| texts.push(j.to_string()));
        }
        let read = |scanner: Scanner<'_>| {
            let mut batch = Batch::default();
            for (i, text) in texts.iter().enumerate() {
                let location = Location {
                    file: "t.ndjson".into(),
                    pos: Pos::Line(i as u64 + 1),
                };
                let item = Item::Resource {
                    location,
                    text,
                    full_url: None,
                };
                scan_item(scanner, item, &mut batch);
            }
            let events = format!("{:?} {:?} {}", batch.events, batch.seen, batch.parsed);
            (events, batch.odds)
        };
        let ((fused, odds), (classic, _)) = (read(on), read(off));
        assert_eq!(fused, classic);
        let observations = texts
            .iter()
            .filter(|t| t.contains("\"resourceType\":\"Observation\""))
            .count() as u32;
        assert!(
            odds.looks < observations / 2,
            "it stopped looking: {odds:?} of {observations}"
        );
        assert!(odds.skips > 1_000, "and looked again where it skips: {odds:?}");
    }

    /// The one borrowed parse of an Observation past the prefilter gives what
    /// the peek and then the full parse give (the prefilter off takes that way).
    /// Calls `f` with the built-in mappings' scanners, the prefilter on and off.
    fn scanners(f: impl FnOnce(Scanner<'_>, Scanner<'_>)) {
        let m = MappingSet::builtin().unwrap();
        let deleted = HashSet::new();
        let (on, off) = (Prefilter::new(m.observation_codes()), Prefilter::off());
        assert!(on.is_on() && !off.is_on());
        let on = Scanner {
            mappings: &m,
            deleted: &deleted,
            prefilter: &on,
        };
        f(on, Scanner { prefilter: &off, ..on });
    }

    #[test]
    fn the_fused_observation_path_gives_the_events_of_the_peek_and_the_parse() {
        scanners(fused_path_gives_the_classic_events);
    }

    fn fused_path_gives_the_classic_events(fused: Scanner<'_>, classic: Scanner<'_>) {
        let mut texts = Vec::new();
        crate::bench_data::for_each(&crate::bench_data::Spec::registry(2_000, 50), |_, j| {
            texts.push(j.to_string());
        });
        let ck = r#"{"resourceType":"Observation","id":"ck","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2020-01-01","valueQuantity":{"value":9000,"unit":"U/L"}}"#;
        texts.extend([
            ck.to_string(),
            // No id, no subject, a bad date, a loose code match the peek then skips,
            // a shape the shortcut refuses (an unknown element), a panel.
            ck.replace(r#""id":"ck","#, ""),
            ck.replace(r#""subject":{"reference":"Patient/p"},"#, ""),
            ck.replace("2020-01-01", "2020-13-45"),
            ck.replace("2157-6", "2157.6"),
            ck.replace(r#""status":"final","#, r#""status":"final","fooBar":1,"#),
            ck.replace(r#""status":"final","#, r#""status":"cancelled","#),
            r#"{"resourceType":"Observation","id":"p","status":"final","code":{"text":"panel"},"subject":{"reference":"Patient/p"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]},"valueQuantity":{"value":12}}]}"#.to_string(),
        ]);
        let (mut fused_parses, mut known_compact) = (0, 0);
        for text in &texts {
            // Both paths know a text compact alike (the fused one mostly from its parse).
            let events = scanned(fused, text);
            assert_eq!(events, scanned(classic, text), "{text}");
            fused_parses += usize::from(crate::fhir::fast::observation(text).is_some());
            known_compact += usize::from(events.contains("compact: true"));
        }
        assert!(fused_parses > 500, "the fused path was taken: {fused_parses}");
        assert!(known_compact > 500, "texts known compact: {known_compact}");
    }
}
