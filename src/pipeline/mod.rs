//! The cohort pipeline: inputs → peek → parse → extract → collect → cohort.
//!
//! [`Collector`] accepts resources one at a time and keeps only what rules
//! use (facts, demographics, the raw JSON of resources that gave a fact).
//! Past [`ReadOptions::spill_after`] it moves the raw JSON ([`texts`]), the
//! patients' facts ([`patients`]) and the duplicate check's keys (`keys`) to
//! temporary files, so memory stays flat however large the input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::{DiagnosisFact, Fact, SourceRef};
use crate::fhir::prefilter::Prefilter;
use crate::fhir::reference::{self, Ref};
use crate::fhir::source::{self, Format, Item, Location};
use crate::mapping::extract::{self, Ctx, Extracted, MedicationMatch, PatientRecord, PendingExposure};

mod keys;
pub mod parallel;
pub mod patients;
pub mod scan;
pub mod texts;

use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Issues, Severity};
use crate::spill;
use keys::KeySet;
pub use parallel::ReadOptions;
pub use patients::Patients;
use scan::{Batch, Event};
pub use texts::Texts;

/// What the cohort layer needs of one patient.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatientData {
    /// Demographics, when the Patient resource was in the input.
    pub record: Option<PatientRecord>,
    /// Rule facts.
    pub facts: Vec<Fact>,
    /// Myositis diagnoses.
    pub diagnoses: Vec<DiagnosisFact>,
}

/// Counts of what was read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStats {
    /// Files read.
    pub files: u64,
    /// Resources seen, per type.
    pub seen: BTreeMap<String, u64>,
    /// Resources parsed in full (a rule could use them).
    pub parsed: u64,
}

/// Everything collected from the inputs.
#[derive(Debug)]
pub struct Collected {
    /// Per patient id (partly on disk after a large input).
    pub patients: Patients,
    /// Raw JSON of every resource that gave a fact, by `Type/id`.
    pub sources: Texts,
    /// Data issues.
    pub issues: Issues,
    /// Counts.
    pub stats: ReadStats,
    /// Bundle entry fullUrls (e.g. `urn:uuid:…`) of parsed resources, to what they name.
    pub aliases: BTreeMap<String, SourceRef>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    subject: String,
    source: SourceRef,
    exposure: PendingExposure,
}

/// Accepts resources one at a time.
pub struct Collector<'m> {
    mappings: &'m MappingSet,
    by_subject: HashMap<String, PatientData>,
    medications: HashMap<String, Vec<MedicationMatch>>,
    aliases: BTreeMap<String, SourceRef>,
    pending: Vec<Pending>,
    sources: Texts,
    issues: Issues,
    stats: ReadStats,
    /// [`resource_key`] of every resource absorbed (past a limit on disk, see [`keys`]).
    seen_ids: KeySet,
    deleted: HashSet<String>,
    batch: Batch,
    prefilter: Prefilter,
    /// Spill state of `by_subject` and `pending`.
    spill: Spill,
}

/// How much of the per-patient state is held, and what went to disk.
#[derive(Default)]
struct Spill {
    /// About how many bytes `by_subject` holds.
    held: usize,
    /// About how many bytes `pending` holds.
    pending_held: usize,
    /// Past this, patients go to a run and pending exposures to the log.
    after: usize,
    runs: Vec<spill::Log>,
    pending_log: spill::Log,
    /// A temporary file could not be written: everything stays in memory.
    failed: bool,
}

impl<'m> Collector<'m> {
    /// A new collector over `mappings`.
    pub fn new(mappings: &'m MappingSet) -> Self {
        Self {
            mappings,
            by_subject: HashMap::new(),
            medications: HashMap::new(),
            aliases: BTreeMap::new(),
            pending: Vec::new(),
            sources: Texts::default(),
            issues: Issues::default(),
            stats: ReadStats::default(),
            seen_ids: KeySet::default(),
            deleted: HashSet::new(),
            batch: Batch::default(),
            prefilter: Prefilter::new(mappings),
            spill: Spill {
                after: usize::MAX,
                ..Spill::default()
            },
        }
    }

    /// Records an issue found outside resource reading (e.g. an unreadable file).
    pub fn issue(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// Accepts one item of a `deleted/` file: a resource, or a Bundle whose
    /// entries name resources (request.url or resource), that left the source.
    pub fn accept_deleted(&mut self, item: Item<'_>) {
        let Item::Resource { text, location, .. } = item else {
            return self.accept(item);
        };
        match serde_json::from_str::<SideRecord>(text) {
            Ok(r) if r.resource_type == "Bundle" => {
                for e in r.entry {
                    let from_url = e.request.and_then(|q| q.url).map(|u| reference::parse(&u));
                    if let Some(Ref::Typed { resource_type, id }) = from_url {
                        self.deleted.insert(format!("{resource_type}/{id}"));
                    }
                    if let Some(res) = e.resource {
                        self.deleted
                            .insert(format!("{}/{}", res.resource_type, res.id.unwrap_or_default()));
                    }
                }
            }
            Ok(r) => {
                self.deleted
                    .insert(format!("{}/{}", r.resource_type, r.id.unwrap_or_default()));
            }
            Err(_) => self.issues.push(Issue::new(
                Severity::Error,
                IssueCode::MalformedJson,
                location.to_string(),
                "unreadable line in a deleted/ file",
            )),
        }
    }

    /// Accepts one item of a Bulk Data `error/` file: each OperationOutcome
    /// issue is reported (severity and code only: diagnostics may name patients).
    pub fn accept_error(&mut self, item: Item<'_>) {
        let Item::Resource { text, location, .. } = item else {
            return self.accept(item);
        };
        let outcome: Option<SideOutcome> = serde_json::from_str(text).ok();
        let Some(outcome) = outcome.filter(|o| o.resource_type == "OperationOutcome") else {
            let msg = "an error/ file holds something other than an OperationOutcome";
            return self.issues.push(Issue::new(
                Severity::Warning,
                IssueCode::ExportError,
                location.to_string(),
                msg,
            ));
        };
        for i in outcome.issue {
            let msg = format!(
                "the server reported an export error: severity {}, code {}",
                i.severity, i.code
            );
            self.issues.push(Issue::new(
                Severity::Warning,
                IssueCode::ExportError,
                location.to_string(),
                msg,
            ));
        }
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
    /// memory; the rest goes to temporary files (see [`texts`], [`patients`]).
    pub fn spill_after(mut self, bytes: usize) -> Self {
        self.sources = Texts::new(bytes);
        self.spill.after = bytes;
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
    pub fn apply(&mut self, mut batch: Batch) {
        self.batch.add_counts(&batch);
        self.apply_events(&mut batch);
    }

    fn apply_events(&mut self, batch: &mut Batch) {
        for event in batch.events.drain(..) {
            match event {
                Event::Issue(issue) => self.issues.push(issue),
                Event::KnownMedication(id) => {
                    self.medications.entry(id).or_default();
                }
                Event::Parsed { full_url, out, text } => {
                    if let Some(url) = full_url {
                        self.aliases.insert(url, out.source.clone());
                    }
                    self.absorb(*out, text);
                }
            }
        }
    }

    fn absorb(&mut self, out: Extracted, text: Option<String>) {
        let new = self.seen_ids.insert(resource_key(&out.source));
        for trouble in self.seen_ids.take_troubles() {
            self.issues.push(keys_issue(trouble));
        }
        if !new {
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
        if let Some(text) = text {
            if let Some(e) = self.sources.insert(out.source.clone(), text) {
                self.spill_issue("resource texts", &e);
            }
        }
        if let Some(matches) = out.medication {
            self.medications.insert(out.source.id.clone(), matches);
            return;
        }
        let Some(subject) = out.subject.map(|s| subject_key(&s)) else {
            return;
        };
        for exposure in out.pending {
            self.push_pending(Pending {
                subject: subject.clone(),
                source: out.source.clone(),
                exposure,
            });
        }
        let add = PatientData {
            record: out.patient,
            facts: out.facts,
            diagnoses: out.diagnoses,
        };
        self.add_to(subject, add);
    }

    fn spill_issue(&mut self, what: &str, e: &std::io::Error) {
        self.issues
            .push(Issue::temporary_file(what, e, "keeping them in memory"));
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
    fn spill_patients(&mut self) {
        let mut run: BTreeMap<String, PatientData> = BTreeMap::new();
        let mut keep = HashMap::new();
        for (subject, data) in self.by_subject.drain() {
            match subject.strip_prefix("Patient/") {
                Some(id) => run.insert(id.to_string(), data),
                None => keep.insert(subject, data),
            };
        }
        self.by_subject = keep;
        self.spill.held = self.by_subject.iter().map(|(k, d)| k.len() + d.approx_bytes()).sum();
        if self.spill.held > self.spill.after / 2 {
            self.spill.after = self.spill.after.saturating_mul(2); // opaque subjects: spill less often
        }
        match patients::write_run(run.iter()) {
            Ok(file) => {
                self.spill.runs.push(file);
                self.compact_runs();
            }
            Err(e) => {
                self.spill.failed = true;
                self.spill_issue("patients' facts", &e);
                for (id, data) in run {
                    self.spill.held += id.len() + data.approx_bytes();
                    self.by_subject.insert(format!("Patient/{id}"), data);
                }
            }
        }
    }

    /// Folds the runs into one once there are [`patients::MAX_RUNS`] (few open files).
    fn compact_runs(&mut self) {
        if self.spill.runs.len() < patients::MAX_RUNS {
            return;
        }
        match patients::compact(&self.spill.runs) {
            Ok(one) => self.spill.runs = vec![one],
            Err(e) => {
                self.spill.failed = true; // the runs stay as they are
                self.spill_issue("patients' facts", &e);
            }
        }
    }

    fn push_pending(&mut self, p: Pending) {
        self.spill.pending_held += 160 + p.subject.len() + p.source.id.len() + p.exposure.medication_id.len();
        self.pending.push(p);
        self.spill_pending();
    }

    /// Moves `pending` to the log once it holds more than its share of the spill limit.
    fn spill_pending(&mut self) {
        if self.spill.pending_held > self.spill.after / 4 {
            self.pending_to_log();
        }
    }

    /// Moves `pending` to the log (unless a temporary file failed before).
    fn pending_to_log(&mut self) {
        if self.spill.failed {
            return;
        }
        for p in std::mem::take(&mut self.pending) {
            if self.spill.failed {
                self.pending.push(p);
            } else if let Err(e) = self.spill.pending_log.push(&p) {
                self.spill.failed = true;
                self.spill_issue("medication references", &e);
                self.pending.push(p);
            }
        }
        self.spill.pending_held = 0;
    }

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
        Collected {
            patients: Patients::new(std::mem::take(&mut self.spill.runs), patients),
            sources: self.sources,
            issues: self.issues,
            stats: self.stats,
            aliases: self.aliases,
        }
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
        let Some(matches) = self.medications.get(&id).cloned() else {
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
        let add = PatientData {
            facts: ctx.out.facts,
            ..PatientData::default()
        };
        self.add_to(p.subject, add);
    }
}

#[derive(serde::Deserialize)]
struct SideRecord {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    entry: Vec<SideEntry>,
}

#[derive(serde::Deserialize)]
struct SideEntry {
    #[serde(default)]
    request: Option<SideRequest>,
    #[serde(default)]
    resource: Option<SideRecordLite>,
}

#[derive(serde::Deserialize)]
struct SideRequest {
    #[serde(default)]
    url: Option<String>,
}

#[derive(serde::Deserialize)]
struct SideRecordLite {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(serde::Deserialize)]
struct SideOutcome {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    issue: Vec<SideIssue>,
}

#[derive(serde::Deserialize)]
struct SideIssue {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    code: String,
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

/// A 128-bit digest of `Type/id` (two SipHash-1-3 halves): a collision
/// between two resources of one run has a chance of about n² / 2¹²⁹.
fn resource_key(source: &SourceRef) -> u128 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        (salt, &source.resource_type, &source.id).hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

fn subject_key(reference: &str) -> String {
    match reference::parse(reference) {
        Ref::Typed { resource_type, id } if resource_type == "Patient" => format!("Patient/{id}"),
        _ => reference.trim().to_string(),
    }
}

/// Where the cohort pipeline reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bundles, NDJSON files or folders of them.
    Files(Vec<PathBuf>),
    /// A sync store (from `imnm sync`).
    Store(PathBuf),
}

/// Reads `input` into a [`Collected`] (files on all available cores).
pub fn collect_input(input: &Input, mappings: &MappingSet) -> crate::Result<Collected> {
    match input {
        Input::Files(paths) => collect(paths, mappings, |_| {}),
        Input::Store(path) => collect_store_at(path, mappings),
    }
}

/// Opens the sync store at `path` and reads it as [`collect_store`] does. A
/// missing file is an input error (opening would create an empty store).
pub fn collect_store_at(path: &std::path::Path, mappings: &MappingSet) -> crate::Result<Collected> {
    if !path.is_file() {
        return Err(crate::Error::Input {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store file there"),
        });
    }
    let err = |source| crate::Error::Store {
        path: path.to_path_buf(),
        source,
    };
    let store = crate::store::Store::open(path).map_err(err)?;
    collect_store(&store, &path.display().to_string(), mappings).map_err(err)
}

/// Reads every input into a [`Collected`] on all available cores, calling
/// `progress` with raw bytes read.
pub fn collect(
    inputs: &[PathBuf],
    mappings: &MappingSet,
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> crate::Result<Collected> {
    collect_with(inputs, mappings, ReadOptions::default(), progress)
}

/// As [`collect`], with the number of threads and the block size given. Any
/// number of threads gives the same result.
pub fn collect_with(
    inputs: &[PathBuf],
    mappings: &MappingSet,
    opts: ReadOptions,
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> crate::Result<Collected> {
    let plan = source::plan(inputs).map_err(|e| crate::Error::Input {
        path: inputs_label(inputs),
        source: e,
    })?;
    let mut collector = Collector::new(mappings).spill_after(opts.spill_after);
    if !opts.prefilter {
        collector = collector.without_prefilter();
    }
    for ignored in &plan.ignored {
        let msg = if ignored.file_name().is_some_and(|n| n == "log.ndjson") {
            "a Bulk Data export log, not resources; skipped"
        } else {
            "not .json, .ndjson or .ndjson.gz; skipped"
        };
        let location = ignored.display().to_string();
        collector.issue(Issue::new(
            Severity::Information,
            IssueCode::UnreadableFile,
            location,
            msg,
        ));
    }
    for folder in &plan.superseded {
        let msg =
            "a SMART Fetch work folder that no top-level link points into (superseded by a later export); not read";
        let location = folder.display().to_string();
        collector.issue(Issue::new(Severity::Information, IssueCode::Superseded, location, msg));
    }
    for path in &plan.deleted {
        read_side_file(path, &mut collector, Side::Deleted);
    }
    for path in &plan.errors {
        read_side_file(path, &mut collector, Side::Error);
    }
    if opts.threads <= 1 {
        for path in &plan.files {
            read_file(path, &mut collector, progress.clone());
        }
    } else {
        parallel::read_files(&plan.files, &mut collector, opts, progress);
    }
    let mut collected = collector.finish();
    collected.stats.files = plan.files.len() as u64;
    tracing::info!(
        files = collected.stats.files,
        parsed = collected.stats.parsed,
        spilled_runs = collected.patients.runs(),
        issues = collected.issues.total(),
        "inputs read"
    );
    Ok(collected)
}

fn inputs_label(inputs: &[PathBuf]) -> PathBuf {
    inputs.first().cloned().unwrap_or_default()
}

/// Which kind of side file.
#[derive(Clone, Copy)]
enum Side {
    Deleted,
    Error,
}

fn read_side_file(path: &std::path::Path, collector: &mut Collector<'_>, side: Side) {
    let name: Arc<str> = path.display().to_string().into();
    let gzip = matches!(
        source::format_of(path),
        Some(Format::Json { gzip: true } | Format::Ndjson { gzip: true })
    );
    let reader = match source::open(path, gzip, |_| {}) {
        Ok(r) => r,
        Err(e) => {
            let issue = Issue::new(
                Severity::Error,
                IssueCode::UnreadableFile,
                name.to_string(),
                format!("cannot open: {e}"),
            );
            return collector.issue(issue);
        }
    };
    let mut accept = |item: Item<'_>| match side {
        Side::Deleted => collector.accept_deleted(item),
        Side::Error => collector.accept_error(item),
    };
    if let Err(e) = source::read_ndjson(name.clone(), reader, &mut accept) {
        let issue = Issue::new(
            Severity::Error,
            IssueCode::UnreadableFile,
            name.to_string(),
            format!("read failed part-way: {e}"),
        );
        collector.issue(issue);
    }
}

/// Reads one file into the collector; an unreadable file is an issue.
pub fn read_file(path: &std::path::Path, collector: &mut Collector<'_>, progress: impl Fn(u64) + 'static) {
    if let Some(issue) = read_file_items(path, progress, &mut |item| collector.accept(item)) {
        collector.issue(issue);
    }
}

/// Streams the items of one file into `f`; returns the issue that stopped it
/// (cannot open, read failed part-way), which comes after every item delivered.
fn read_file_items(
    path: &std::path::Path,
    progress: impl Fn(u64) + 'static,
    f: &mut dyn FnMut(Item<'_>),
) -> Option<Issue> {
    let name: Arc<str> = path.display().to_string().into();
    tracing::info!(file = %name, "reading");
    let format = source::format_of(path).unwrap_or(Format::Json { gzip: false });
    let gzip = matches!(format, Format::Json { gzip: true } | Format::Ndjson { gzip: true });
    let unreadable = |msg: String| Issue::new(Severity::Error, IssueCode::UnreadableFile, name.to_string(), msg);
    let reader = match source::open(path, gzip, progress) {
        Ok(r) => r,
        Err(e) => return Some(unreadable(format!("cannot open: {e}"))),
    };
    let result = match format {
        Format::Ndjson { .. } => source::read_ndjson(name.clone(), reader, f),
        Format::Json { .. } => {
            source::read_json(name.clone(), reader, f);
            Ok(())
        }
    };
    result.err().map(|e| unreadable(format!("read failed part-way: {e}")))
}

/// The result of a cohort run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The cohort.
    pub cohort: crate::cohort::Cohort,
    /// Every data issue.
    pub issues: Issues,
    /// What was read.
    pub stats: ReadStats,
}

/// Which optional outputs a run writes besides the fixed ones (Table 1, provenance, issues, sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// `cohort.csv`, `candidates.csv`.
    pub csv: bool,
    /// `cohort.parquet`, `candidates.parquet`, `facts.parquet`.
    pub parquet: bool,
    /// `relevant.ndjson`: the raw JSON of every resource a rule used (for
    /// shard runs whose outputs are read again by one final run).
    pub relevant: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Self {
            csv: true,
            parquet: false,
            relevant: false,
        }
    }
}

/// Builds the cohort from collected data and writes every output into `out`.
pub fn build_and_write(
    collected: Collected,
    mappings: &MappingSet,
    out: &std::path::Path,
) -> crate::Result<RunOutcome> {
    build_and_write_as(collected, mappings, out, Formats::default())
}

/// As [`build_and_write`], in the given table formats.
pub fn build_and_write_as(
    collected: Collected,
    mappings: &MappingSet,
    out: &std::path::Path,
    formats: Formats,
) -> crate::Result<RunOutcome> {
    let Collected {
        patients,
        mut sources,
        mut issues,
        stats,
        ..
    } = collected;
    let cohort = crate::cohort::build::build(&patients, mappings, &mut issues)?;
    tracing::debug!(
        cases = cohort.rows.len(),
        provenance = cohort.provenance.len(),
        "cohort built"
    );
    crate::cohort::write::write_outputs(out, &cohort, &mut issues, &mut sources, formats.csv)?;
    tracing::debug!("outputs written");
    if formats.parquet {
        crate::cohort::parquet::write_all(out, &cohort, &patients, mappings)?;
    }
    if formats.relevant {
        crate::cohort::write::write_relevant(out, &mut sources)?;
    }
    Ok(RunOutcome { cohort, issues, stats })
}

/// Reads one JSON document held in memory (e.g. the built-in demo Bundle).
pub fn collect_json_text(name: &str, text: &str, mappings: &MappingSet) -> Collected {
    let mut collector = Collector::new(mappings);
    source::read_json(name.into(), text.as_bytes(), &mut |item| collector.accept(item));
    let mut collected = collector.finish();
    collected.stats.files = 1;
    collected
}

/// Reads every resource held in a sync store (see [`crate::store`]). Issue
/// locations are `LABEL#entry[N]`, N the row's position (ordered by type, id).
pub fn collect_store(
    store: &crate::store::Store,
    label: &str,
    mappings: &MappingSet,
) -> Result<Collected, crate::store::StoreError> {
    let mut collector = Collector::new(mappings);
    let file: Arc<str> = label.into();
    let mut index = 0usize;
    store.for_each(|row| {
        collector.accept(Item::Resource {
            location: Location {
                file: file.clone(),
                pos: source::Pos::Entry(index),
            },
            text: &row.json,
            full_url: None,
        });
        index += 1;
    })?;
    let mut collected = collector.finish();
    collected.stats.files = 1;
    Ok(collected)
}
