//! Writing the cohort outputs into a folder.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::completeness::completeness;
use super::table1::to_markdown;
use super::{Candidate, Cohort, SiteData};
use crate::domain::CaseRow;
use crate::pipeline::scan::{digest, resource_key};
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
        write_cohort(dir, cohort)?;
        write_candidates(dir, cohort)?;
    }
    let t1 = cohort.table1();
    write_text(dir, "table1.md", &to_markdown(&t1, &cohort.dictionary))?;
    write_text(
        dir,
        "table1.json",
        &serde_json::to_string_pretty(&t1).unwrap_or_default(),
    )?;
    write_provenance(dir, cohort)?;
    write_csv(dir, "completeness.csv", &completeness(cohort))?;
    write_issues(dir, issues)?;
    write_sources(dir, cohort, sites)
}

fn write_cohort(dir: &Path, cohort: &Cohort) -> Result<()> {
    let path = dir.join("cohort.csv");
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    w.write_record(CaseRow::header(&cohort.dictionary))
        .map_err(csv_err(&path))?;
    for row in &cohort.rows {
        w.write_record(row.cells()).map_err(csv_err(&path))?;
    }
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
/// `SITE:Type/id`, each at its own site).
fn write_sources(dir: &Path, cohort: &Cohort, sites: &mut [SiteData]) -> Result<()> {
    // Per site, the digests of the resources wanted (a `Type/id` splits at
    // its first `/`: a resource type never holds one; the digest is the
    // duplicate check's, 16 bytes a resource).
    let mut wanted: HashMap<String, HashSet<u128>> = HashMap::new();
    let mut want = |site: &str, resource: &str| {
        if let Some((resource_type, id)) = resource.split_once('/') {
            let key = digest(resource_type, id);
            match wanted.get_mut(site) {
                Some(set) => {
                    set.insert(key);
                }
                None => {
                    wanted.insert(site.to_string(), HashSet::from([key]));
                }
            }
        }
    };
    cohort
        .provenance
        .try_for_each(|p| {
            for s in &p.sources {
                match super::link::split_source(super::resource_of(s)) {
                    (Some(site), resource) => want(site, resource),
                    (None, resource) => want(&p.site, resource),
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .map_err(|source| RunError::Spill { source })?;
    for c in &cohort.candidates {
        want(&c.site, &format!("Patient/{}", c.patient_id));
    }
    let (path, mut w) = create(dir, "sources.ndjson")?;
    let out = |e: std::io::Error| Streaming::Out(out_err(&path)(e));
    let none = HashSet::new();
    for part in sites.iter_mut() {
        let site = serde_json::Value::String(part.site.clone()).to_string();
        let wanted = wanted.get(&part.site).unwrap_or(&none);
        // One line per resource: re-serialize compactly (pretty Bundle entries span lines).
        // Rendered on the read's threads, written in key order.
        let written = part.sources.try_render_selected(
            |src| wanted.contains(&resource_key(src)),
            |_, raw, line| {
                let resource = crate::fhir::compact_json(raw);
                let pieces: [&[u8]; 5] = [
                    b"{\"site\":",
                    site.as_bytes(),
                    b",\"resource\":",
                    resource.as_bytes(),
                    b"}\n",
                ];
                pieces.iter().for_each(|piece| line.extend_from_slice(piece));
            },
            |bytes| w.write_all(bytes).map_err(out),
        );
        written?;
    }
    Ok(w.flush().map_err(out)?)
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
