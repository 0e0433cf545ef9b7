//! Writing the cohort outputs into a folder.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::completeness::completeness;
use super::table1::to_markdown;
use super::{Candidate, Cohort, SiteData};
use crate::collect::texts::Place;
use crate::domain::CaseRow;
use crate::domain::SourceRef;
use crate::report::Issues;
use crate::run_error::Streaming;
use crate::run_error::{Result, RunError};
use crate::sorted::{Sorted, Sorter};

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
/// [`super::parquet`]).
pub fn write_outputs(
    dir: &Path,
    cohort: &Cohort,
    issues: &mut Issues,
    sites: &mut [SiteData],
    csv: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(out_err(dir))?;
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
    timed("issues.ndjson", || write_issues(dir, issues))?;
    timed("sources.ndjson", || write_sources(dir, cohort, sites))
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
    write_lines(dir, "provenance.ndjson", |line| cohort.provenance.try_for_each(line))
}

/// `issues.ndjson`: every issue kept, in the order found.
fn write_issues(dir: &Path, issues: &mut Issues) -> Result<()> {
    write_issues_as(dir, "issues.ndjson", issues)
}

/// Every issue kept, one JSON line each, into `dir/name`.
pub(crate) fn write_issues_as(dir: &Path, name: &str, issues: &mut Issues) -> Result<()> {
    write_lines(dir, name, |line| issues.try_for_each(line))
}

/// One more line for [`write_lines`].
type Line<'a, T> = dyn FnMut(&T) -> std::result::Result<(), Streaming> + 'a;

/// Writes `name`, one JSON line per record `each` hands out (records that may
/// come back from a temporary file: a failure there is told apart).
fn write_lines<T: Serialize>(
    dir: &Path,
    name: &str,
    each: impl FnOnce(&mut Line<'_, T>) -> std::result::Result<(), Streaming>,
) -> Result<()> {
    let (path, mut w) = create(dir, name)?;
    let out = |e: std::io::Error| Streaming::Out(out_err(&path)(e));
    let written = each(&mut |item: &T| {
        serde_json::to_writer(&mut w, item).map_err(|e| out(e.into()))?;
        w.write_all(b"\n").map_err(out)
    });
    Ok(written.and_then(|()| w.flush().map_err(out))?)
}

/// `sources.ndjson`: one line per resource behind a cell or candidate,
/// `{"site": …, "resource": …}`, site by site (a linked case's sources,
/// `SITE:Type/id`, each at its own site), each site's in key order. The keys
/// wanted and the places of each site's texts are sorted on disk past the
/// memory budget and joined, so memory holds no key per resource.
fn write_sources(dir: &Path, cohort: &Cohort, sites: &mut [SiteData]) -> Result<()> {
    let spill = |source| RunError::Spill { source };
    let budget = sites.iter().map(|p| p.patients.budget()).min().unwrap_or(usize::MAX);
    let budget = budget / KEY_BYTES;
    let wanted = timed("sources.ndjson selection", || wanted_sources(cohort, sites, budget)).map_err(spill)?;
    let mut wanted = wanted.iter().map_err(spill)?;
    let mut next = wanted.next().map_err(spill)?;
    let (path, mut w) = create(dir, "sources.ndjson")?;
    let out = |e: std::io::Error| Streaming::Out(out_err(&path)(e));
    for (index, part) in sites.iter_mut().enumerate() {
        let site = serde_json::Value::String(part.site.clone()).to_string();
        let mut places: Sorter<(SourceRef, u64, (u8, u64, u64))> = Sorter::new(budget);
        let mut seq = 0u64;
        part.sources
            .try_for_each_place(|key, place| {
                seq += 1; // a key stored twice keeps its order
                places.push((key.clone(), seq, place_rec(place)))
            })
            .map_err(spill)?;
        let places = places.finish();
        tracing::debug!(site = %part.site, "sources.ndjson places sorted");
        let mut all = places.iter().map_err(spill)?;
        // One line per resource: re-serialize compactly (pretty Bundle entries span lines),
        // rendered on the read's threads a round at a time, written in key order.
        let render = |_: &SourceRef, raw: &str, line: &mut Vec<u8>| {
            let resource = crate::fhir::compact_json(raw);
            let pieces: [&[u8]; 5] = [
                b"{\"site\":",
                site.as_bytes(),
                b",\"resource\":",
                resource.as_bytes(),
                b"}\n",
            ];
            pieces.iter().for_each(|piece| line.extend_from_slice(piece));
        };
        let mut round: Vec<(SourceRef, Place)> = Vec::new();
        let mut write_round = |round: &mut Vec<(SourceRef, Place)>| {
            let written = part
                .sources
                .try_render_places(round, render, |bytes| w.write_all(bytes).map_err(out));
            round.clear();
            written
        };
        while let Some((key, _, place)) = all.next().map_err(spill)? {
            while next.as_ref().is_some_and(|(i, k)| (*i, k) < (index, &key)) {
                next = wanted.next().map_err(spill)?;
            }
            if next.as_ref().is_some_and(|(i, k)| *i == index && *k == key) {
                round.push((key, place_of(place)));
                if round.len() >= part.sources.render_round() {
                    write_round(&mut round)?;
                }
            }
        }
        write_round(&mut round)?;
    }
    Ok(w.flush().map_err(out)?)
}

/// About how many bytes a key being sorted takes in memory: a budget of
/// bytes holds `budget / KEY_BYTES` keys in each sort.
pub(crate) const KEY_BYTES: usize = 128;

/// The resources behind the cells and candidates, as `(site index, key)`, sorted (repeats kept).
fn wanted_sources(cohort: &Cohort, sites: &[SiteData], budget: usize) -> std::io::Result<Sorted<(usize, SourceRef)>> {
    let index = |site: &str| sites.iter().position(|p| p.site == site);
    let mut wanted: Sorter<(usize, SourceRef)> = Sorter::new(budget);
    // A `Type/id` splits at its first `/`: a resource type never holds one.
    let mut want = |site: &str, resource: &str| match (index(site), resource.split_once('/')) {
        (Some(i), Some((t, id))) => wanted.push((i, SourceRef::new(t, id))),
        _ => Ok(()),
    };
    cohort.provenance.try_for_each(|p| {
        for s in &p.sources {
            match super::link::split_source(super::resource_of(s)) {
                (Some(site), resource) => want(site, resource)?,
                (None, resource) => want(&p.site, resource)?,
            }
        }
        Ok::<_, std::io::Error>(())
    })?;
    for c in &cohort.candidates {
        want(&c.site, &format!("Patient/{}", c.patient_id))?;
    }
    Ok(wanted.finish())
}

/// A text's place as a sortable record: memory `(0, index, 0)`, disk `(1,
/// offset, size)`, an input file `(2, offset, file << 32 | len)`.
pub(crate) fn place_rec(place: Place) -> (u8, u64, u64) {
    match place {
        Place::Memory(i) => (0, i as u64, 0),
        Place::Disk(at, size) => (1, at, size),
        Place::Input { file, offset, len } => (2, offset, u64::from(file) << 32 | u64::from(len)),
    }
}

/// The place of a record of [`place_rec`].
pub(crate) fn place_of((kind, a, b): (u8, u64, u64)) -> Place {
    match kind {
        0 => Place::Memory(usize::try_from(a).unwrap_or(usize::MAX)),
        1 => Place::Disk(a, b),
        _ => Place::Input {
            file: (b >> 32) as u32,
            offset: a,
            len: b as u32,
        },
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_come_back_from_their_sort_records() {
        let places = [
            Place::Memory(7),
            Place::Disk(1 << 40, 99),
            Place::Input {
                file: u32::MAX,
                offset: 1 << 45,
                len: u32::MAX,
            },
        ];
        for place in places {
            assert_eq!(format!("{:?}", place_of(place_rec(place))), format!("{place:?}"));
        }
    }
}
