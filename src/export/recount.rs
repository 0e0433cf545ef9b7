//! The cohort recomputed from a bundle's de-identified resources while
//! `bundle.json` is written: each resource's text goes, in the file's entry
//! order, through the same scan and [`Collector`] as when `imnm cohort` reads
//! the finished file (the entry text is the resource's NDJSON line, byte for
//! byte), so the rows are those of [`super::rerun_file`] without reading the
//! file back (tested: `export::a_generated_export_verifies_clean` and the demo export, through
//! `assert_cohort_csv_is_read_back`).
//!
//! This module owns that feeding only; the rows are `cohort::build`'s.

use std::sync::Arc;

use crate::fhir::item::{Location, Pos};
use crate::fhir::source::Item;
use crate::mapping::MappingSet;
use crate::pipeline::scan::{scan_item, Batch, Scanner};
use crate::pipeline::{Collector, ReadOptions};

use super::ExportError;

/// Entries handed to [`Recount::feed`] at a time.
pub(super) const STRETCH: usize = 1024;

/// A cohort being recomputed from `bundle.json`'s entries.
pub(super) struct Recount<'m> {
    mappings: &'m MappingSet,
    collector: Collector<'m>,
    file: Arc<str>,
    next_entry: usize,
    threads: usize,
}

impl<'m> Recount<'m> {
    /// A recount of the entries of `file` (named in issues only) on `threads` threads.
    pub(super) fn new(mappings: &'m MappingSet, file: &std::path::Path, threads: usize) -> Self {
        let spill_after = ReadOptions::default().spill_after;
        Self {
            mappings,
            collector: Collector::new(mappings).spill_after(spill_after),
            file: file.display().to_string().into(),
            next_entry: 0,
            threads,
        }
    }

    /// Reads the next entries' resource texts, in order.
    pub(super) fn feed(&mut self, texts: &[String]) {
        let scanner = Scanner {
            mappings: self.mappings,
            deleted: self.collector.deleted(),
            prefilter: self.collector.prefilter(),
        };
        let (first, file) = (self.next_entry, &self.file);
        let (_, batches) = super::par::map_in_order(texts, self.threads, |i, text, batch: &mut Batch| {
            let location = Location {
                file: file.clone(),
                pos: Pos::Entry(first + i),
            };
            let item = Item::Resource {
                location,
                text,
                full_url: None,
            };
            scan_item(scanner, item, batch);
        });
        for batch in batches {
            self.collector.apply(batch);
        }
        self.next_entry += texts.len();
    }

    /// The recomputed rows.
    pub(super) fn rows(self) -> Result<crate::cohort::rows::Rows, ExportError> {
        let mut collected = self.collector.finish();
        collected.stats.files = 1;
        super::bundle::rows_of(collected, self.mappings)
    }
}
