//! How much of the [`Collector`](super::Collector)'s per-patient state is
//! held, and moving it to temporary files (sorted runs of patients, a log of
//! pending exposures) past the limit. The file formats are `spill`'s
//! (crate level), the merge back is `collect::patients`'.

use std::collections::BTreeMap;

use super::{Collector, Pending};
use crate::collect::{patients, PatientData};
use crate::report::Issue;
use crate::spill;

/// How much of the per-patient state is held, and what went to disk.
#[derive(Default)]
pub(super) struct Spill {
    /// About how many bytes `by_subject` holds.
    pub(super) held: usize,
    /// About how many bytes `pending` holds.
    pub(super) pending_held: usize,
    /// Past this, patients go to a run and pending exposures to the log.
    pub(super) after: usize,
    /// The limit given ([`Collector::spill_after`](super::Collector::spill_after)); `after` may grow past it.
    pub(super) budget: usize,
    pub(super) runs: Vec<spill::Log>,
    pub(super) pending_log: spill::Log,
    /// A temporary file could not be written: everything stays in memory.
    pub(super) failed: bool,
}

impl Collector<'_> {
    pub(super) fn spill_issue(&mut self, what: &str, e: &std::io::Error) {
        self.issues
            .push(Issue::temporary_file(what, e, "keeping them in memory"));
    }

    pub(super) fn spill_patients(&mut self) {
        let mut run: BTreeMap<String, PatientData> = BTreeMap::new();
        let mut keep = super::BySubject::default();
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
    pub(super) fn compact_runs(&mut self) {
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

    pub(super) fn push_pending(&mut self, p: Pending) {
        self.spill.pending_held += 160 + p.subject.len() + p.source.id.len() + p.exposure.medication_id.len();
        self.pending.push(p);
        self.spill_pending();
    }

    /// Moves `pending` to the log once it holds more than its share of the spill limit.
    pub(super) fn spill_pending(&mut self) {
        if self.spill.pending_held > self.spill.after / 4 {
            self.pending_to_log();
        }
    }

    /// Moves `pending` to the log (unless a temporary file failed before).
    pub(super) fn pending_to_log(&mut self) {
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
}
