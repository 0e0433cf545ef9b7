//! Writing the cohort outputs into a folder.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::completeness::completeness;
use super::table1::to_markdown;
use super::{Candidate, Cohort, SiteData};
use crate::collect::texts::{Place, Stored};
use crate::domain::CaseRow;
use crate::report::Issues;
use crate::run_error::Streaming;
use crate::run_error::{Result, RunError};

/// The files a cohort run writes, relative to the output folder.
pub const FILES: &[&str] = &[
    "cohort.csv",
    "candidates.csv",
    "table1.md",
    "table1.json",
    "provenance.ndjson",
    "completeness.csv",
    "issues.ndjson",
    "sources.ndjson",
];

fn out_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Output {
        path: path.to_path_buf(),
        source,
    }
}

fn create(dir: &Path, name: &str) -> Result<(PathBuf, BufWriter<File>)> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(out_err(&path))?;
    // Large writes: `sources.ndjson` can be as large as the input.
    Ok((path, BufWriter::with_capacity(1 << 20, file)))
}

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> RunError + '_ {
    move |e| RunError::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// Writes every output file into `dir` (created if needed). Each site's
/// `sources` hold the raw JSON of resources that gave a fact; only those
/// behind a cohort or candidate row are written. `cohort.csv` and
/// `candidates.csv` only when `csv` (the Parquet copies are written by
/// [`super::parquet`]). When the sites were read on several threads,
/// `sources.ndjson` is written on a thread of its own beside the others; the
/// first failure in file order is the one returned.
pub(crate) fn write_outputs(
    dir: &Path,
    cohort: &Cohort,
    issues: &mut Issues,
    sites: &[SiteData],
    csv: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(out_err(dir))?;
    // `sources.ndjson`, the largest, is written beside the others (in turn on one thread).
    let sources = || timed("sources.ndjson", || write_sources(dir, cohort, sites));
    let (sources, others) = side_by_side(several_threads(sites), sources, || {
        write_the_rest(dir, cohort, issues, csv)
    });
    others.and(sources)
}

/// True when the sites were read on more than one thread: the outputs are then written on several too.
fn several_threads(sites: &[SiteData]) -> bool {
    sites.iter().any(|p| p.sources.threads() > 1)
}

/// Runs `apart` on a thread of its own while `here` runs on this one when
/// `several`, else `here` and then `apart`: their results, in that order.
fn side_by_side<A: Send, B>(several: bool, apart: impl FnOnce() -> A + Send, here: impl FnOnce() -> B) -> (A, B) {
    if !several {
        let b = here();
        return (apart(), b);
    }
    std::thread::scope(|s| {
        let running = s.spawn(apart);
        let b = here();
        let a = running.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    })
}

/// Every output but `sources.ndjson`.
fn write_the_rest(dir: &Path, cohort: &Cohort, issues: &mut Issues, csv: bool) -> Result<()> {
    if csv {
        timed("cohort.csv", || write_cohort(dir, cohort))?;
        write_candidates(dir, cohort)?;
    }
    timed("table1", || {
        let t1 = cohort.table1();
        write_text(dir, "table1.md", &to_markdown(&t1, &cohort.dictionary))?;
        let json = serde_json::to_string_pretty(&t1).unwrap_or_default();
        write_text(dir, "table1.json", &json)
    })?;
    timed("provenance.ndjson", || write_provenance(dir, cohort))?;
    write_csv(dir, "completeness.csv", &completeness(cohort))?;
    timed("issues.ndjson", || write_issues(dir, issues))
}

/// Runs `step` of writing the outputs, then logs (at debug level) how long it took.
fn timed<T>(name: &str, step: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let done = step();
    tracing::debug!(step = name, ms = start.elapsed().as_millis() as u64, "output step done");
    done
}

fn write_cohort(dir: &Path, cohort: &Cohort) -> Result<()> {
    let path = dir.join("cohort.csv");
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    w.write_record(CaseRow::header(&cohort.dictionary))
        .map_err(csv_err(&path))?;
    let written = cohort.rows.try_for_each(|row| {
        w.write_record(row.cells())
            .map_err(|e| Streaming::Out(csv_err(&path)(e)))
    });
    written?;
    w.flush().map_err(out_err(&path))
}

fn write_candidates(dir: &Path, cohort: &Cohort) -> Result<()> {
    let path = dir.join("candidates.csv");
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    w.write_record(Candidate::header(&cohort.dictionary))
        .map_err(csv_err(&path))?;
    for c in &cohort.candidates {
        w.write_record(c.cells()).map_err(csv_err(&path))?;
    }
    w.flush().map_err(out_err(&path))
}

fn write_csv<T: Serialize>(dir: &Path, name: &str, rows: &[T]) -> Result<()> {
    let path = dir.join(name);
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    for r in rows {
        w.serialize(r).map_err(csv_err(&path))?;
    }
    if rows.is_empty() {
        // Header only, so the file still says what it would hold.
        drop(w);
        let header = "site,variable,source,cases_with_value,cases,percent\n";
        return std::fs::write(&path, header).map_err(out_err(&path));
    }
    w.flush().map_err(out_err(&path))
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(out_err(&path))
}

/// `provenance.ndjson`: one line per filled cell, in cohort order.
fn write_provenance(dir: &Path, cohort: &Cohort) -> Result<()> {
    write_lines(dir, "provenance.ndjson", |lines| {
        cohort.provenance.try_for_each(|p| lines.put(p))
    })
}

/// `issues.ndjson`: every issue kept, in the order found.
fn write_issues(dir: &Path, issues: &mut Issues) -> Result<()> {
    write_issues_as(dir, "issues.ndjson", issues)
}

/// Every issue kept, one JSON line each, into `dir/name`.
pub(crate) fn write_issues_as(dir: &Path, name: &str, issues: &mut Issues) -> Result<()> {
    write_lines(dir, name, |lines| issues.try_for_each(|issue| lines.put(issue)))
}

/// A JSON-lines file being written by [`write_lines`].
struct Lines {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Lines {
    /// Writes `item` as one more line.
    fn put(&mut self, item: &impl Serialize) -> std::result::Result<(), Streaming> {
        let written = serde_json::to_writer(&mut self.w, item)
            .map_err(std::io::Error::from)
            .and_then(|()| self.w.write_all(b"\n"));
        written.map_err(|e| Streaming::Out(out_err(&self.path)(e)))
    }
}

/// Writes `name`, one JSON line per record `each` hands to [`Lines::put`]
/// (records that may come back from a temporary file: a failure there is
/// told apart).
fn write_lines(
    dir: &Path,
    name: &str,
    each: impl FnOnce(&mut Lines) -> std::result::Result<(), Streaming>,
) -> Result<()> {
    let (path, w) = create(dir, name)?;
    let mut lines = Lines { path, w };
    each(&mut lines)?;
    let Lines { path, mut w } = lines;
    w.flush().map_err(out_err(&path))
}

/// `sources.ndjson`: one line per resource behind a cell or candidate,
/// `{"site": …, "resource": …}`, site by site (a linked case's sources,
/// `SITE:Type/id`, each at its own site), each site's in the order they were
/// read. The build marked each site's texts the cells and candidates name
/// ([`super::marks::TextMarks`], one bit per text, by its number); a pass over
/// the site's places renders those marked, so texts that lie one after
/// another in a file are read together. With several threads the file is
/// written on one of its own while the next texts are read and rendered.
fn write_sources(dir: &Path, cohort: &Cohort, sites: &[SiteData]) -> Result<()> {
    let (path, mut w) = create(dir, "sources.ndjson")?;
    let out = |e: std::io::Error| Streaming::Out(out_err(&path)(e));
    Ok(write_behind(&mut w, several_threads(sites), &out, |write| {
        for part in sites {
            render_chosen(part, &cohort.texts, write)?;
        }
        Ok(())
    })?)
}

/// Renders `part`'s texts marked in `marks` (by number, in the order of
/// `Texts::try_for_each_place`) as lines of `sources.ndjson` naming the
/// site, on the read's threads, handing them to `write` in that order. One
/// line per resource: re-serialised compactly (pretty Bundle entries span
/// lines) unless the reader proved the text compact already.
fn render_chosen(
    part: &SiteData,
    marks: &super::marks::TextMarks,
    write: &mut dyn FnMut(Vec<u8>) -> std::result::Result<(), Streaming>,
) -> std::result::Result<(), Streaming> {
    let site = serde_json::Value::String(part.site.clone()).to_string();
    let render = |_: &(), raw: Stored<'_>, line: &mut Vec<u8>| {
        let resource = match raw.compact {
            true => std::borrow::Cow::Borrowed(raw.text),
            false => crate::fhir::compact_json(raw.text),
        };
        let pieces: [&[u8]; 5] = [
            b"{\"site\":",
            site.as_bytes(),
            b",\"resource\":",
            resource.as_bytes(),
            b"}\n",
        ];
        pieces.iter().for_each(|piece| line.extend_from_slice(piece));
    };
    let marked = marks.of(&part.site);
    let places = |put: &mut dyn FnMut((), Place) -> std::result::Result<(), Streaming>| {
        let mut n = 0u64;
        part.sources.try_for_each_place(|_, place| {
            let taken = marked.contains(n);
            n += 1;
            match taken {
                true => put((), place),
                false => Ok(()),
            }
        })
    };
    part.sources.try_render_each(places, render, write)
}

/// Calls `fill` with a way to write chunks of bytes to `w` in order, then
/// flushes `w`; `apart`: the chunks are written on a thread of their own
/// while `fill` goes on (the file's writes off the reading threads' way).
fn write_behind(
    w: &mut BufWriter<File>,
    apart: bool,
    out: &dyn Fn(std::io::Error) -> Streaming,
    fill: impl FnOnce(&mut dyn FnMut(Vec<u8>) -> std::result::Result<(), Streaming>) -> std::result::Result<(), Streaming>,
) -> std::result::Result<(), Streaming> {
    if !apart {
        fill(&mut |bytes| write_chunk(w, &bytes).map_err(out))?;
        return w.flush().map_err(out);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let writer = s.spawn(move || -> std::io::Result<()> {
            for bytes in rx {
                write_chunk(w, &bytes)?;
            }
            w.flush()
        });
        let stopped = || out(std::io::Error::other("the thread writing the file stopped"));
        let filled = fill(&mut |bytes| tx.send(bytes).map_err(|_| stopped()));
        drop(tx);
        // The writer's own failure first: it is why a chunk could not be handed over.
        writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(out)?;
        filled
    })
}

/// Writes `bytes` to `w`'s file past its buffer when they are about as large
/// as it (a stretch of rendered texts): copying them into it first cost a
/// pass over every byte of `sources.ndjson`.
fn write_chunk(w: &mut BufWriter<File>, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.len() < w.capacity() / 2 {
        return w.write_all(bytes);
    }
    w.flush()?;
    w.get_mut().write_all(bytes)
}

/// About how many bytes a key being sorted takes in memory: a budget of
/// bytes holds `budget / KEY_BYTES` keys in each sort.
pub(crate) const KEY_BYTES: usize = 128;

/// Writes `relevant.ndjson` (with several sites, `relevant.<site>.ndjson` per
/// site): every resource a rule used, one compact line each, in the order the
/// input gave them (the same for any number of threads). Read again by `imnm
/// cohort` (`--input SITE=relevant.SITE.ndjson`), it gives the same cohort.
pub fn write_relevant(dir: &Path, sites: &mut [SiteData]) -> Result<()> {
    let several = sites.len() > 1;
    for part in sites.iter_mut() {
        let name = match several {
            true => format!("relevant.{}.ndjson", part.site),
            false => "relevant.ndjson".to_string(),
        };
        let (path, mut w) = create(dir, &name)?;
        let out = |e: std::io::Error| Streaming::Out(out_err(&path)(e));
        let written = part
            .sources
            .try_for_each(|_, raw| writeln!(w, "{}", crate::fhir::compact_json(raw)).map_err(out));
        written.and_then(|()| w.flush().map_err(out))?;
    }
    Ok(())
}
