//! Collected data: what reading the inputs leaves for the outputs, per patient.
//!
//! [`Collected`] is the hand-over between the two halves of a run: the
//! `pipeline` fills it (its `Collector` reads files or a store resource by
//! resource) and `cohort`, `export` read it. It holds each patient's facts
//! ([`Patients`], partly in sorted runs on disk after a large input), the raw
//! JSON of every resource that gave a fact ([`Texts`], partly on disk too),
//! the data issues and counts of what was read.
//!
//! This module owns those shapes and their temporary files (through
//! `spill`). It must not read inputs, decide what a resource means (that is
//! `mapping`'s) or build rows and write outputs (that is `cohort`'s).

use std::collections::BTreeMap;

use crate::domain::{DiagnosisFact, Fact, SourceRef};
use crate::mapping::extract::PatientRecord;
use crate::report::Issues;

pub mod patients;
pub mod texts;

pub use patients::Patients;
pub use texts::{Kept, Stored, Texts};

/// The site of data read from files given without one (`--input PATH`):
/// the store's site of data of unknown origin, the same `local`.
pub use crate::store::LOCAL_SITE;

/// Input arguments grouped by site, in order of first appearance: `SITE=PATH`
/// names the site (when `PATH` is not itself an existing path with `=` in
/// it), a plain path is [`LOCAL_SITE`]'s.
pub fn inputs_by_site(args: &[std::path::PathBuf]) -> Vec<(String, Vec<std::path::PathBuf>)> {
    let mut groups: Vec<(String, Vec<std::path::PathBuf>)> = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        let named = match text.split_once('=') {
            Some((site, path)) if crate::store::check_site_id(site).is_ok() && !arg.exists() => {
                Some((site.to_string(), path.into()))
            }
            _ => None,
        };
        let (site, path) = named.unwrap_or_else(|| (LOCAL_SITE.to_string(), arg.clone()));
        match groups.iter_mut().find(|(s, _)| *s == site) {
            Some((_, paths)) => paths.push(path),
            None => groups.push((site, vec![path])),
        }
    }
    groups
}

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

impl ReadStats {
    /// Adds another run's counts (another site's).
    pub fn add(&mut self, other: &ReadStats) {
        self.files += other.files;
        self.parsed += other.parsed;
        for (t, n) in &other.seen {
            *self.seen.entry(t.clone()).or_default() += n;
        }
    }
}

/// Everything collected from the inputs of one site.
#[derive(Debug)]
pub struct Collected {
    /// The registry site the data came from ([`LOCAL_SITE`] unless named).
    pub site: String,
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
    /// What references outside this input (kept only when reading with
    /// `ReadOptions::keep_open`; else empty and reported as issues).
    pub open: OpenReferences,
}

/// References a shard cannot resolve alone, kept for a join elsewhere
/// (`imnm facts` writes them as facts; `imnm sql` joins them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OpenReferences {
    /// Medication requests naming a Medication not in this input.
    pub requests: Vec<OpenRequest>,
    /// Every Medication read: its id and the exposure rules it matches (rule
    /// index, the matching coding or text).
    pub medications: Vec<(String, Vec<(usize, String)>)>,
}

/// A medication request naming a Medication not in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRequest {
    /// The patient id (the subject reference as written when it names no Patient read).
    pub subject: String,
    /// The request.
    pub source: SourceRef,
    /// The Medication's id.
    pub medication_id: String,
    /// When it was given or ordered.
    pub date: Option<crate::domain::FhirDate>,
}
