//! The reading half of a run: inputs (files, folders, a sync store) →
//! peek → parse → extract → [`Collected`] data.
//!
//! [`collect`] plans the inputs (`fhir::source::plan`: which files, which
//! side files, which work folders are superseded), reads `deleted/` and
//! `error/` side files first, then every file on one thread or several
//! (`parallel`); each line or entry is scanned ([`scan`]) and its result
//! applied in order by the [`Collector`]. [`collect_store`] reads a sync
//! store the same way.
//!
//! This module owns reading and the order results are applied in. It must
//! not build cohort rows or write outputs (`cohort` does, from the
//! [`Collected`] data this returns) and never talks HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use crate::collect::Collected;
use crate::fhir::source::{self, Format, Item};
use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Severity};

mod collector;
mod keys;
pub(crate) mod parallel;
pub mod scan;
mod store;

use collector::side::{read_side_file, Side};
pub use collector::{Collector, Later};
pub use parallel::ReadOptions;
pub use store::{
    collect_store, collect_store_at, collect_store_at_with, collect_store_site, collect_store_site_with,
    collect_store_sites,
};

/// Where the cohort pipeline reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bundles, NDJSON files or folders of them.
    Files(Vec<PathBuf>),
    /// A sync store (from `imnm sync`): a SQLite file or a PostgreSQL URL.
    Store(crate::store::StoreLocation),
}

/// Reads `input` into a [`Collected`] (files on all available cores).
pub fn collect_input(input: &Input, mappings: &MappingSet) -> crate::run_error::Result<Collected> {
    match input {
        Input::Files(paths) => collect(paths, mappings, |_| {}),
        Input::Store(at) => store::read_store_at(at, |s| collect_store(s, &at.redacted(), mappings)),
    }
}

/// Reads every input into a [`Collected`] on all available cores, calling
/// `progress` with raw bytes read (each byte once: when some resource comes
/// more than once with versions and the inputs are read a second time to keep
/// the newest copy, that read reports nothing, so a bar sized to the inputs
/// ends full and never past them).
pub fn collect(
    inputs: &[PathBuf],
    mappings: &MappingSet,
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> crate::run_error::Result<Collected> {
    collect_with(inputs, mappings, ReadOptions::default(), progress)
}

/// As [`collect`], with the number of threads and the block size given. Any
/// number of threads gives the same result.
pub fn collect_with(
    inputs: &[PathBuf],
    mappings: &MappingSet,
    opts: ReadOptions,
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> crate::run_error::Result<Collected> {
    let plan = source::plan(inputs).map_err(|e| crate::run_error::RunError::Input {
        path: inputs_label(inputs),
        source: e,
    })?;
    let mut collector = read_plan(&plan, mappings, opts, progress, Later::new());
    let later = collector.later_copies();
    if !later.is_empty() {
        if plan
            .files
            .iter()
            .all(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file()))
        {
            // Some resource came more than once, a later copy saying which version it is:
            // a second read keeps the newest copy of each (the first kept the first copy).
            let resources = later.len();
            tracing::info!(
                resources,
                "resources read more than once; reading again to keep the newest copy of each"
            );
            drop(collector);
            // Each input byte is reported once: the second read does not move the progress.
            collector = read_plan(&plan, mappings, opts, |_| {}, later);
        } else {
            let msg = format!(
                "{} resource(s) appear more than once, later copies giving their version; the input cannot be read twice (not only regular files), so the first copy of each is used",
                later.len()
            );
            let location = inputs_label(inputs).display().to_string();
            collector.issue(Issue::new(Severity::Warning, IssueCode::Duplicate, location, msg));
        }
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

/// Reads `plan` (side files, then resources) into a new collector; of each
/// resource in `settle` the newest copy is kept (see [`Collector::settling`]).
fn read_plan<'m>(
    plan: &source::Plan,
    mappings: &'m MappingSet,
    opts: ReadOptions,
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
    settle: Later,
) -> Collector<'m> {
    let mut collector = Collector::new(mappings)
        .spill_after(opts.spill_after)
        .threads(opts.threads)
        .settling(settle);
    if opts.keep_open {
        collector = collector.keep_open();
    }
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
    // One thread too: the cutter reads plain NDJSON in blocks, whose lines'
    // texts are then kept as places in the file (see `collect::texts`).
    parallel::read_files(&plan.files, &mut collector, opts, progress);
    collector
}

fn inputs_label(inputs: &[PathBuf]) -> PathBuf {
    inputs.first().cloned().unwrap_or_default()
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

/// Reads one JSON document held in memory (e.g. the built-in demo Bundle).
pub fn collect_json_text(name: &str, text: &str, mappings: &MappingSet) -> Collected {
    let mut collector = Collector::new(mappings);
    source::read_json(name.into(), text.as_bytes(), &mut |item| collector.accept(item));
    let mut collected = collector.finish();
    collected.stats.files = 1;
    collected
}
