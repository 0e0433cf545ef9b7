//! Study bundles: writing them (`imnm export`), checking them (`--verify`)
//! and pooling several sites' bundles (`imnm merge`).
//!
//! This module owns which resources go into a bundle (the cases' Patients and
//! the resources behind their cohort cells; a finding read from report or
//! note text goes as a coded Observation, `derived`), the folder layout, the manifest
//! and its hashes. It must not change resources itself (that is `deid/`),
//! decide cohort rules (that is `cohort/`) or read mapping files.
//!
//! A bundle folder holds `bundle.json`, `ndjson/{Type}.ndjson`, `cohort.csv`,
//! `table1.md`, `table1.json` and `manifest.json`; the tables are recomputed
//! from the de-identified resources, never copied from the source.

pub mod bundle;
pub mod datecheck;
mod derived;
mod hashed;
pub mod manifest;
pub mod merge;
mod par;
mod recount;
pub mod scan;
mod select;
mod sink;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::deid::json::Json;

pub use bundle::{export, rerun, rerun_file, ExportOptions, ExportSummary};
pub use manifest::Manifest;
pub use merge::merge;
pub use verify::{verify, VerifyReport};

/// Why an export, verify or merge cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The key or rules are unusable.
    #[error(transparent)]
    Deid(#[from] crate::deid::DeidError),
    /// Reading the input or building the cohort failed.
    #[error(transparent)]
    Pipeline(#[from] crate::run_error::RunError),
    /// A file of a bundle cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An output cannot be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `manifest.json` is missing or not a study bundle manifest.
    #[error("{path}: not a study bundle manifest: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bundle does not verify or conflicts with the others (merge).
    #[error("refusing {dir}: {reason}")]
    Refused {
        /// The bundle folder.
        dir: PathBuf,
        /// Why (file names and kinds only).
        reason: String,
    },
}

fn out_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Output {
        path: path.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to `dir/name`, creating parent folders; its SHA-256 goes into `hashes`.
fn write_file(dir: &Path, name: &str, text: &str, hashes: &mut hashed::Hashes) -> Result<(), ExportError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(out_err(parent))?;
    }
    std::fs::write(&path, text).map_err(out_err(&path))?;
    hashes.insert(dir, &path, crate::deid::key::sha256_hex(text.as_bytes()));
    Ok(())
}

/// Calls `f` with each line of the file at `path` (1-based number, text
/// without its line break, bytes that are not UTF-8 replaced), reading in
/// blocks: a bundle's files are never whole in memory.
fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str)) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match simdutf8::basic::from_utf8(line) {
            Ok(text) => f(n, text),
            Err(_) => f(n, &String::from_utf8_lossy(line)),
        }
    }
}

/// Calls `f` with each entry's resource of the Bundle file at `path` (its
/// text as read and its JSON), one at a time as `imnm cohort` reads Bundles.
/// False when the file is not a readable Bundle (a piece that is not JSON, or
/// a single resource).
fn for_each_entry(path: &Path, mut f: impl FnMut(&str, &Json<'_>)) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut readable = true;
    let name: std::sync::Arc<str> = path.to_string_lossy().into();
    crate::fhir::source::read_json(name, std::io::BufReader::new(file), &mut |item| match item {
        crate::fhir::item::Item::Resource { location, text, .. } => {
            let whole = location.pos == crate::fhir::item::Pos::Whole;
            match Json::parse(text) {
                Ok(v) if !whole => f(text, &v),
                _ => readable = false,
            }
        }
        crate::fhir::item::Item::Unreadable { .. } => readable = false,
        crate::fhir::item::Item::NoResource { .. } => {}
    });
    readable
}

/// The threads an export or merge uses unless told: the available cores.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Writes `cohort.csv` (the site first, as `imnm cohort` writes it) and the
/// suppressed Table 1 of the rows of `parts`, each part's rows named with its
/// site, streamed (rows may be on disk), their hashes into `hashes`; returns
/// the number of rows.
fn write_rows(
    dir: &Path,
    parts: &[(&str, &crate::cohort::rows::Rows)],
    dictionary: &crate::domain::Dictionary,
    min_cell: u64,
    hashes: &mut hashed::Hashes,
) -> Result<u64, ExportError> {
    use crate::cohort::suppress::{suppress, to_markdown};
    let path = dir.join("cohort.csv");
    let file = std::fs::File::create(&path).map_err(out_err(&path))?;
    let mut w = csv::Writer::from_writer(hashed::Hashed::new(std::io::BufWriter::new(file)));
    let csv_err = |e: csv::Error| crate::run_error::RunError::Output {
        path: path.clone(),
        source: std::io::Error::other(e),
    };
    let header = w.write_record(crate::domain::CaseRow::header(dictionary));
    header.map_err(|e| ExportError::Pipeline(csv_err(e)))?;
    let mut tally = crate::cohort::tally::Tally::default();
    for (site, rows) in parts {
        let written = rows.try_for_each(|row| {
            let mut row = row.clone();
            row.site = (*site).to_string();
            tally.add(&row);
            w.write_record(row.cells())
                .map_err(|e| crate::run_error::Streaming::Out(csv_err(e)))
        });
        written.map_err(|e| ExportError::Pipeline(e.into()))?;
    }
    let mut inner = w.into_inner().map_err(|e| out_err(&path)(e.into_error()))?;
    std::io::Write::flush(&mut inner).map_err(out_err(&path))?;
    hashes.insert(dir, &path, inner.finish());
    let t = crate::cohort::table1::of_tally(&tally, &tally.sites(), dictionary);
    let t = suppress(&t, min_cell);
    write_file(dir, "table1.md", &to_markdown(&t, min_cell), hashes)?;
    let json = serde_json::to_string_pretty(&t).map_err(|e| ExportError::Output {
        path: dir.join("table1.json"),
        source: e.into(),
    })?;
    write_file(dir, "table1.json", &(json + "\n"), hashes)?;
    Ok(tally.all().total)
}
