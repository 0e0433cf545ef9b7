//! The [`Collector`]: accepts resources one at a time and keeps only what
//! rules use (facts, demographics, the raw JSON of resources that gave a fact)
//! in a [`Collected`]. Past [`ReadOptions::spill_after`](super::ReadOptions::spill_after)
//! it moves the raw JSON, the patients' facts and the duplicate check's keys
//! (`keys`) to temporary files ([`held`] here), so memory stays flat however
//! large the input. `deleted/` and `error/` side files are read by [`side`].
//!
//! This module owns which resource is kept for which patient (first copy
//! wins, or on a second read the newest copy: [`Collector::settling`];
//! deleted resources dropped, Medication references resolved at the end)
//! and the number each kept text gets, stamped on what its resource gave
//! ([`crate::domain::TextNumber`]). What a resource means is `mapping::extract`'s; how the per-line work
//! is split among threads is `parallel`'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::collect::{Collected, Kept, OpenReferences, OpenRequest, PatientData, Patients, ReadStats, Texts};
use crate::domain::{SourceRef, TextNumber};
use crate::fhir::prefilter::Prefilter;
use crate::fhir::source::Item;
use crate::mapping::extract::{self, Ctx, Extracted, MedicationMatch, PendingExposure};
use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Issues, Severity};
use crate::spill;

use super::keys::{self, KeySet};
use super::scan::{self, Batch, Event};

mod held;
pub(super) mod side;

use held::Spill;

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    subject: String,
    source: SourceRef,
    /// The number of `source`'s text (see [`TextNumber`]).
    text: TextNumber,
    exposure: PendingExposure,
}

/// Accepts resources one at a time.
pub struct Collector<'m> {
    pub(super) mappings: &'m MappingSet,
    by_subject: BySubject,
    /// Each Medication read: the exposure rules its codes match, and the number of its text.
    medications: HashMap<String, (Vec<MedicationMatch>, TextNumber)>,
    aliases: BTreeMap<String, SourceRef>,
    pending: Vec<Pending>,
    sources: Texts,
    issues: Issues,
    stats: ReadStats,
    /// [`scan::resource_key`] of every resource absorbed (past a limit on disk, see [`keys`]).
    seen_ids: KeySet,
    deleted: HashSet<String>,
    batch: Batch,
    prefilter: Prefilter,
    /// Spill state of `by_subject` and `pending`.
    spill: Spill,
    /// What references outside the input: kept (see [`Collector::keep_open`]) when `Some`.
    open: Option<OpenReferences>,
    /// Threads the collected texts are written out on (see [`Texts::try_render_places`]).
    threads: usize,
    /// The versions of the later copies of resources read more than once (see [`Collector::later_copies`]).
    later: Later,
    /// Whether `later` stopped growing at [`LATER_MAX`].
    later_full: bool,
    /// A second read's plan: which copy of each resource read more than once is kept.
    settle: HashMap<u128, Settle>,
}

/// Each subject's data, by the reference as written (a fast hash seeded per
/// process: looked up once per resource read).
type BySubject = HashMap<String, PatientData, foldhash::fast::RandomState>;

/// Per resource read more than once: the `meta` versions of its second,
/// third, … copies (`None`: the copy gives none), in input order.
pub type Later = HashMap<u128, Vec<Option<scan::Version>>>;

/// Resources read more than once whose later copies' versions are remembered
/// (about 64 bytes each); past it the first copy is used for the others.
const LATER_MAX: usize = 1 << 20;

/// How a second read settles one resource read more than once.
#[derive(Debug)]
struct Settle {
    /// The versions of its later copies (from the first read).
    later: Vec<Option<scan::Version>>,
    /// The copy kept (0: the first), known once the first copy came.
    keep: Option<usize>,
    /// Copies seen so far.
    seen: usize,
}

/// The copy to keep: the surely newest by [`scan::Version::newer_than`], the
/// earliest of those not surely older (as with no version at all: the first).
fn newest(first: Option<scan::Version>, later: &[Option<scan::Version>]) -> usize {
    let mut best = (0, first);
    for (i, version) in later.iter().enumerate() {
        if let (Some(v), Some(b)) = (version, best.1) {
            if v.newer_than(&b) {
                best = (i + 1, Some(*v));
            }
        }
    }
    best.0
}

impl<'m> Collector<'m> {
    /// A new collector over `mappings`.
    pub fn new(mappings: &'m MappingSet) -> Self {
        Self {
            mappings,
            by_subject: BySubject::default(),
            medications: HashMap::new(),
            aliases: BTreeMap::new(),
            pending: Vec::new(),
            sources: Texts::default(),
            issues: Issues::default(),
            stats: ReadStats::default(),
            seen_ids: KeySet::default(),
            deleted: HashSet::new(),
            batch: Batch::default(),
            prefilter: Prefilter::new(mappings.observation_codes()),
            spill: Spill {
                after: usize::MAX,
                budget: usize::MAX,
                ..Spill::default()
            },
            open: None,
            threads: 1,
            later: Later::new(),
            later_full: false,
            settle: HashMap::new(),
        }
    }

    /// For a second read of the same input: of each resource in `later` (a
    /// first read's [`Collector::later_copies`]), the newest copy is kept,
    /// not the first.
    pub fn settling(mut self, later: Later) -> Self {
        self.settle = later
            .into_iter()
            .map(|(key, later)| {
                let settle = Settle {
                    later,
                    keep: None,
                    seen: 0,
                };
                (key, settle)
            })
            .collect();
        self
    }

    /// The resources read more than once whose later copies say which version
    /// they are (so one may be newer than the first, which was kept): read the
    /// input again [`Collector::settling`] them to keep the newest. Empty when
    /// no copy after the first gives a version.
    pub fn later_copies(&mut self) -> Later {
        let mut later = std::mem::take(&mut self.later);
        later.retain(|_, versions| versions.iter().any(Option::is_some));
        later
    }

    /// Writes the collected texts out on `threads` threads (default 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Keeps a medication reference to a Medication not in the input, and
    /// every Medication read, in [`Collected::open`] instead of reporting the
    /// reference as dangling (a shard whose Medications are in another shard).
    pub fn keep_open(mut self) -> Self {
        self.open = Some(OpenReferences::default());
        self
    }

    /// Records an issue found outside resource reading (e.g. an unreadable file).
    pub fn issue(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// Accepts one item of input.
    pub fn accept(&mut self, item: Item<'_>) {
        let mut batch = std::mem::take(&mut self.batch);
        scan::scan_item(self.scanner(), item, &mut batch);
        self.apply_events(&mut batch);
        self.batch = batch;
    }

    /// The read-only parts of a scan.
    fn scanner(&self) -> scan::Scanner<'_> {
        scan::Scanner {
            mappings: self.mappings,
            deleted: &self.deleted,
            prefilter: &self.prefilter,
        }
    }

    /// The resources deleted at the source (read from `deleted/` files so far).
    pub fn deleted(&self) -> &HashSet<String> {
        &self.deleted
    }

    /// The byte-level prefilter in use.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// Keeps about `bytes` of resource text, and as much patient data, in
    /// memory; the rest goes to temporary files (see [`crate::collect::texts`], [`crate::collect::patients`]).
    pub fn spill_after(mut self, bytes: usize) -> Self {
        self.sources = Texts::new(bytes);
        self.spill.after = bytes;
        self.spill.budget = bytes;
        self.seen_ids = KeySet::with_limit(bytes / KEY_BYTES_SHARE);
        self
    }

    /// Turns the byte-level prefilter off: every resource gets the full peek
    /// (and a JSON syntax check).
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = Prefilter::off();
        self
    }

    /// Applies a batch scanned elsewhere (see [`scan`]), as if its items had been accepted here.
    pub fn apply(&mut self, batch: Batch) {
        self.apply_reusing(batch);
    }

    /// As [`Collector::apply`], handing back the batch's emptied list of
    /// events with its room kept, for a later batch (growing a new list for
    /// every batch cost a copy of its events and fresh pages).
    pub(crate) fn apply_reusing(&mut self, mut batch: Batch) -> Vec<Event> {
        self.batch.add_counts(&batch);
        self.apply_events(&mut batch);
        batch.events
    }

    fn apply_events(&mut self, batch: &mut Batch) {
        for event in batch.events.drain(..) {
            match event {
                Event::Issue(issue) => self.issues.push(issue),
                Event::KnownMedication(id) => {
                    self.medications.entry(id).or_default();
                }
                Event::Parsed {
                    full_url,
                    out,
                    text,
                    key,
                    subject,
                    version,
                } => {
                    // Every copy's fullUrl names the resource, the copy not kept's too.
                    if let Some(url) = full_url {
                        self.aliases.insert(url, out.source.clone());
                    }
                    if self.older_copy(key, version, &out) {
                        continue;
                    }
                    self.absorb(*out, text, key, subject, version);
                }
            }
        }
    }

    /// On a second read ([`Collector::settling`]): true, with an issue, when
    /// this copy of a resource read more than once is not the one kept.
    fn older_copy(&mut self, key: u128, version: Option<scan::Version>, out: &Extracted) -> bool {
        if self.settle.is_empty() {
            return false; // a first read, or nothing to settle: no hashing per resource
        }
        let Some(settle) = self.settle.get_mut(&key) else {
            return false;
        };
        let copy = settle.seen;
        settle.seen += 1;
        let keep = *settle.keep.get_or_insert_with(|| newest(version, &settle.later));
        if copy == keep {
            return false;
        }
        let msg = "the same resource appears more than once; the newest copy (by meta.lastUpdated, then meta.versionId) is used, not this one";
        self.issues.push(Issue::new(
            Severity::Information,
            IssueCode::Duplicate,
            out.source.to_string(),
            msg,
        ));
        true
    }

    /// Remembers the version of a later copy of a resource (for [`Collector::later_copies`]).
    fn remember_later(&mut self, key: u128, version: Option<scan::Version>) {
        if !self.settle.is_empty() {
            return; // a second read: settled already
        }
        if let Some(versions) = self.later.get_mut(&key) {
            return versions.push(version);
        }
        if self.later.len() < LATER_MAX {
            self.later.insert(key, vec![version]);
        } else if !self.later_full {
            self.later_full = true;
            let msg = format!(
                "more than {LATER_MAX} resources appear more than once; for those past it the first copy is used whatever its version"
            );
            self.issues
                .push(Issue::new(Severity::Warning, IssueCode::Duplicate, "(input)", msg));
        }
    }

    /// Keeps what `out` gave, unless a resource of its `key` came before.
    fn absorb(
        &mut self,
        out: Extracted,
        text: Option<Kept>,
        key: u128,
        subject: Option<String>,
        version: Option<scan::Version>,
    ) {
        let new = self.seen_ids.insert(key);
        for trouble in self.seen_ids.take_troubles() {
            self.issues.push(keys_issue(trouble));
        }
        if !new {
            self.remember_later(key, version);
            let msg = "the same resource appears more than once; the first copy is used";
            return self.issues.push(Issue::new(
                Severity::Information,
                IssueCode::Duplicate,
                out.source.to_string(),
                msg,
            ));
        }
        for issue in out.issues {
            self.issues.push(issue);
        }
        // Numbered as `Texts` orders them: the number of texts kept before it.
        let number = text.map(|text| {
            let number = self.sources.len() as u64;
            if let Some(e) = self.sources.insert(&out.source, text) {
                self.spill_issue("resource texts", &e);
            }
            number
        });
        if let Some(matches) = out.medication {
            if let Some(open) = &mut self.open {
                let rules = matches.iter().map(|m| (m.rule, m.detail.clone())).collect();
                open.medications.push((out.source.id.clone(), rules));
            }
            self.medications.insert(out.source.id.clone(), (matches, number));
            return;
        }
        let Some(subject) = subject else {
            return;
        };
        for exposure in out.pending {
            self.push_pending(Pending {
                subject: subject.clone(),
                source: out.source.clone(),
                text: number,
                exposure,
            });
        }
        let mut add = PatientData {
            record: out.patient,
            facts: out.facts,
            diagnoses: out.diagnoses,
        };
        add.number_texts(number);
        self.add_to(subject, add);
    }

    fn add_to(&mut self, subject: String, add: PatientData) {
        use std::collections::hash_map::Entry;
        let strings = add.string_bytes();
        let data = match self.by_subject.entry(subject) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                // The key, and the table's slot at its 7/8 load.
                let slot = std::mem::size_of::<(String, PatientData)>() * 8 / 7;
                self.spill.held += e.key().len().next_multiple_of(16) + slot;
                e.insert(PatientData::default())
            }
        };
        let before = data.vec_bytes();
        data.absorb(add);
        self.spill.held += strings + data.vec_bytes() - before;
        if self.spill.held > self.spill.after && !self.spill.failed {
            self.spill_patients();
        }
    }

    /// Moves every `Patient/…` subject to a new sorted run (other subjects,
    /// resolved only at the end, stay).
    /// Resolves what waited for the whole input (Medication references,
    /// `urn:uuid:` subjects) and returns the collected data.
    pub fn finish(mut self) -> Collected {
        tracing::debug!("input read; resolving medication references");
        self.resolve_pending();
        tracing::debug!(
            subjects = self.by_subject.len(),
            held = self.spill.held,
            runs = self.spill.runs.len(),
            "medication references resolved"
        );
        self.sources.set_threads(self.threads);
        let counts = std::mem::take(&mut self.batch);
        self.stats.seen = counts.seen;
        self.stats.parsed = counts.parsed;
        let mut patients: BTreeMap<String, PatientData> = BTreeMap::new();
        let mut by_subject: Vec<_> = std::mem::take(&mut self.by_subject).into_iter().collect();
        by_subject.sort_by(|a, b| a.0.cmp(&b.0));
        for (subject, data) in by_subject {
            let id = self.patient_id(&subject);
            let Some(id) = id else {
                let n = data.facts.len() + data.diagnoses.len();
                let msg = format!("{n} fact(s) refer to a patient reference that names no Patient; not mapped");
                self.issues.push(Issue::new(
                    Severity::Warning,
                    IssueCode::DanglingReference,
                    "(subject reference)",
                    msg,
                ));
                continue;
            };
            patients.entry(id).or_default().absorb(data);
        }
        let open = self.open_resolved();
        Collected {
            site: crate::collect::LOCAL_SITE.to_string(),
            patients: Patients::new(std::mem::take(&mut self.spill.runs), patients).with_budget(self.spill.budget),
            sources: self.sources,
            issues: self.issues,
            stats: self.stats,
            aliases: self.aliases,
            open,
        }
    }

    /// The open references, their subjects resolved to patient ids.
    fn open_resolved(&mut self) -> OpenReferences {
        let mut open = self.open.take().unwrap_or_default();
        let requests = std::mem::take(&mut open.requests);
        for mut r in requests {
            match self.patient_id(&r.subject) {
                Some(id) => {
                    r.subject = id;
                    open.requests.push(r);
                }
                None => {
                    let msg = "a medication request's subject names no Patient; not mapped";
                    let issue = Issue::new(
                        Severity::Warning,
                        IssueCode::DanglingReference,
                        r.source.to_string(),
                        msg,
                    );
                    self.issues.push(issue);
                }
            }
        }
        open
    }

    fn patient_id(&self, subject: &str) -> Option<String> {
        if let Some(id) = subject.strip_prefix("Patient/") {
            return Some(id.to_string());
        }
        let target = self.aliases.get(subject)?;
        (target.resource_type == "Patient").then(|| target.id.clone())
    }

    fn resolve_pending(&mut self) {
        if self.spill.pending_log.len() > 0 {
            // The rest joins the log, so its memory is free before facts are added.
            self.pending_to_log();
        }
        let mut log = std::mem::take(&mut self.spill.pending_log);
        if let Err(e) = self.resolve_logged(&mut log) {
            let msg = format!(
                "cannot read back the temporary file of medication references ({e}); some treatments may be missing"
            );
            let issue = Issue::new(Severity::Error, IssueCode::UnreadableFile, "(temporary file)", msg);
            self.issues.push(issue);
        }
        for p in std::mem::take(&mut self.pending) {
            self.resolve_one(p);
        }
    }

    /// Resolves the pending references that went to `log`, in the order pushed.
    fn resolve_logged(&mut self, log: &mut spill::Log) -> std::io::Result<()> {
        log.flush()?;
        let mut pending = log.reader::<Pending>()?;
        while let Some(p) = pending.next()? {
            self.resolve_one(p);
        }
        Ok(())
    }

    fn resolve_one(&mut self, p: Pending) {
        let id = match self.aliases.get(&p.exposure.medication_id) {
            Some(t) if t.resource_type == "Medication" => t.id.clone(),
            Some(t) => t.to_string(),
            None => p.exposure.medication_id.clone(),
        };
        let Some((matches, via_text)) = self.medications.get(&id).cloned() else {
            if let Some(open) = &mut self.open {
                open.requests.push(OpenRequest {
                    subject: p.subject,
                    source: p.source,
                    medication_id: id,
                    date: p.exposure.date,
                });
                return;
            }
            let msg = "medicationReference names a Medication that is not in the input; not mapped";
            let issue = Issue::new(
                Severity::Warning,
                IssueCode::DanglingReference,
                p.source.to_string(),
                msg,
            )
            .at(p.exposure.path.clone());
            self.issues.push(issue);
            return;
        };
        let mut ctx = Ctx::new(self.mappings, p.source.clone());
        extract::push_matches(
            &matches,
            p.exposure.date,
            Some(&SourceRef::new("Medication", id)),
            &mut ctx,
        );
        let mut add = PatientData {
            facts: ctx.out.facts,
            ..PatientData::default()
        };
        add.number_texts(p.text);
        for fact in &mut add.facts {
            fact.via_text = via_text;
        }
        self.add_to(p.subject, add);
    }
}

/// The duplicate check holds at most 1/64 of the spill limit in keys (16 bytes
/// each, plus the newest in a hash set): 512 KiB of keys (32,768) for the default 2 MiB.
const KEY_BYTES_SHARE: usize = 64;

/// The issue of a failure of the duplicate check's temporary files.
fn keys_issue(trouble: keys::Trouble) -> Issue {
    match trouble {
        keys::Trouble::Write(e) => Issue::temporary_file("the duplicate check", &e, "keeping its keys in memory"),
        keys::Trouble::Read(e) => {
            let msg = format!(
                "cannot read back the duplicate check's temporary file ({e}); a later copy of a resource read before this point is used too, not reported as a duplicate"
            );
            Issue::new(Severity::Error, IssueCode::UnreadableFile, "(temporary file)", msg)
        }
    }
}
