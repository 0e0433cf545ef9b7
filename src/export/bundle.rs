//! `imnm export`: the cohort pipeline, then a de-identified study bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::manifest::{Manifest, FORMAT};
use super::sink::Sink;
use super::{write_rows, ExportError};
use crate::collect::texts::Place;
use crate::deid::transform::Dropped;
use crate::deid::{Applied, DeidRules, Deidentifier, Profile, RulesFired, Scratch, SiteKey};
use crate::domain::{CaseRow, SourceRef};
use crate::mapping::MappingSet;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Input files or folders, or a sync store (as `imnm cohort --input` / `--store`).
    pub input: crate::pipeline::Input,
    /// The bundle folder (must be absent or empty).
    pub out: PathBuf,
    /// Safe-harbor (default) or limited.
    pub profile: Profile,
    /// Small-cell threshold. Default is 5.
    pub min_cell: u64,
    /// Site name written to the manifest.
    pub site: String,
    /// Threads reading the input and de-identifying (default: the available
    /// cores). Any number writes the same bundle.
    pub threads: Option<usize>,
}

/// What an export wrote, and what reading its input found.
#[derive(Debug)]
pub struct ExportSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// The data issues of reading the input and building the cohort (as
    /// `imnm cohort`'s `issues.ndjson`): never in the bundle, whose files are
    /// shared (they name files, lines and resource ids).
    pub issues: crate::report::Issues,
}

/// Runs the cohort pipeline on `opts.inputs` and writes a study bundle into `opts.out`.
///
/// The resources go through a stretch at a time (read back from the run's
/// temporary files, de-identified on `opts.threads` threads, written to the
/// bundle's own temporary file): memory holds their keys, not their text.
/// The cohort is recomputed from them as `bundle.json` is written (`recount`).
pub fn export(opts: &ExportOptions, key: &SiteKey, mappings: &MappingSet) -> Result<ExportSummary, ExportError> {
    let rules = DeidRules::builtin()?;
    check_empty(&opts.out)?;
    let threads = opts.threads.unwrap_or_else(super::default_threads).max(1);
    let mut collected = match &opts.input {
        crate::pipeline::Input::Files(paths) => {
            let read = crate::pipeline::ReadOptions {
                threads,
                ..Default::default()
            };
            crate::pipeline::collect_with(paths, mappings, read, |_| {})?
        }
        store => crate::pipeline::collect_input(store, mappings)?,
    };
    let mut issues = collected.issues;
    let cohort = crate::cohort::build::build(&collected.patients, mappings, &mut issues)?;
    let spill = |source| crate::run_error::RunError::Spill { source };
    let derived = super::derived::text_findings(&cohort, mappings).map_err(spill)?;
    // The read's memory budget (2 MiB unless told) bounds each sort of keys.
    let budget = collected.patients.budget() / crate::cohort::write::KEY_BYTES;
    let selection =
        super::select::select(&cohort, &mut collected.sources, &collected.aliases, &derived, budget).map_err(spill)?;
    let ages = onset_ages(&cohort).map_err(spill)?;
    let deid = Deidentifier::new(&rules, key, opts.profile, mappings).with_links(&selection.links);
    let work = Work {
        deid: &deid,
        ages: &ages,
        sources: &collected.sources,
    };
    let mut written = Written::default();
    selection
        .try_for_each_stretch(STRETCH, |stretch| {
            let jobs: Vec<(&SourceRef, Text<'_>)> =
                stretch.iter().map(|(src, place)| (src, Text::Stored(*place))).collect();
            work.run(&jobs, threads, &mut written)
        })
        .map_err(spill)?;
    let made: Vec<(&SourceRef, Text<'_>)> = derived.iter().map(|(src, raw)| (src, Text::Made(raw))).collect();
    work.run(&made, threads, &mut written).map_err(spill)?;
    let Written { sink, dropped, fired } = written;
    let mut recount = super::recount::Recount::new(mappings, &opts.out.join("bundle.json"), threads);
    let mut hashes = super::hashed::Hashes::default();
    let counts = sink.finish(&opts.out, &mut hashes, |texts| recount.feed(texts))?;
    let rows = recount.rows()?;
    let cases = write_rows(
        &opts.out,
        &[(&opts.site, &rows)],
        &mappings.dictionary,
        opts.min_cell,
        &mut hashes,
    )?;
    let manifest = Manifest {
        format: FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        site: opts.site.clone(),
        profile: opts.profile.name().into(),
        min_cell: opts.min_cell,
        key_id: key.key_id().into(),
        mapping_versions: mappings.versions.clone(),
        deid_rules_version: rules.version,
        date_shift_max_days: rules.max_offset_days,
        cases,
        resource_counts: counts,
        rules_fired: fired.0,
        dropped,
        files: BTreeMap::new(),
    };
    let manifest = manifest.seal_and_write(&opts.out, hashes)?;
    Ok(ExportSummary { manifest, issues })
}

/// Where a selected resource's source text is.
enum Text<'a> {
    /// In the run's texts.
    Stored(Place),
    /// Made by the export (a finding read from text, see `derived`).
    Made(&'a str),
}

/// The de-identification of the selected resources.
struct Work<'a> {
    deid: &'a Deidentifier<'a>,
    ages: &'a BTreeMap<SourceRef, u32>,
    sources: &'a crate::collect::Texts,
}

/// What the de-identification made of the selected resources.
#[derive(Default)]
struct Written {
    sink: Sink,
    dropped: Vec<Dropped>,
    fired: RulesFired,
}

/// Resources de-identified at a time (split among the threads), so memory
/// holds a stretch of them, never all.
const STRETCH: usize = 2048;

impl Work<'_> {
    /// De-identifies `jobs` on `threads` threads, a stretch at a time, into
    /// `written`'s sink in job order: any number of threads writes the same.
    fn run(&self, jobs: &[(&SourceRef, Text<'_>)], threads: usize, written: &mut Written) -> std::io::Result<()> {
        for stretch in jobs.chunks(STRETCH) {
            let (outcomes, scratches) =
                super::par::map_in_order(stretch, threads, |_, (src, text), scratch| self.one(src, text, scratch));
            scratches.into_iter().for_each(|s| written.fired.add(s.fired));
            for outcome in outcomes {
                match outcome? {
                    Applied::Kept(d) => written.sink.push(&d.resource_type, &d.pseudonym, &d.json)?,
                    Applied::Dropped(d) => written.dropped.push(d),
                    Applied::Unparseable => {}
                }
            }
        }
        Ok(())
    }

    /// De-identifies one source resource (reading its text back can fail).
    fn one(&self, src: &SourceRef, text: &Text<'_>, scratch: &mut Scratch) -> std::io::Result<Applied> {
        let raw = match text {
            Text::Stored(place) => self.sources.read(*place)?,
            Text::Made(raw) => std::borrow::Cow::Borrowed(*raw),
        };
        Ok(self.deid.apply_text(&raw, self.ages.get(src).copied(), scratch))
    }
}

fn check_empty(out: &Path) -> Result<(), ExportError> {
    let non_empty = std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if non_empty {
        return Err(ExportError::Refused {
            dir: out.to_path_buf(),
            reason: "the output folder is not empty; a study bundle needs its own folder".into(),
        });
    }
    std::fs::create_dir_all(out).map_err(super::out_err(out))
}

/// Onset age per qualifying Condition (the source of the case's diagnosis_code).
/// Reading provenance back from the temporary file can fail.
fn onset_ages(cohort: &crate::cohort::Cohort) -> std::io::Result<BTreeMap<SourceRef, u32>> {
    use crate::domain::{Cell, ColumnKind};
    let d = &cohort.dictionary;
    let mut ages: BTreeMap<String, u32> = BTreeMap::new();
    cohort.rows.try_for_each(|r| {
        if let Some(Cell::Age(Some(a))) = r.first(d, ColumnKind::OnsetAge) {
            ages.insert(r.patient_id.clone(), *a);
        }
        Ok::<_, std::io::Error>(())
    })?;
    let diagnosis = d.first(ColumnKind::DiagnosisCode).map(|i| d.columns[i].name.as_str());
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    cohort.provenance.try_for_each(|p| {
        let is_diagnosis = Some(p.column) == diagnosis;
        let Some(&age) = ages.get(p.patient_id).filter(|_| is_diagnosis) else {
            return Ok::<_, std::io::Error>(());
        };
        // The first diagnosis_code record of a case, as before.
        if seen.insert(p.patient_id.to_string()) {
            for id in p.sources.iter().filter_map(|s| s.strip_prefix("Condition/")) {
                out.insert(SourceRef::new("Condition", id), age);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Re-runs the cohort pipeline on a de-identified `bundle.json`: the rows (onset
/// ages come from the onset-age extension, which the mapping reads, since
/// birthDate may be a year).
pub fn rerun(bundle_text: &str, mappings: &MappingSet) -> Result<Vec<CaseRow>, ExportError> {
    all_rows(rows_of(
        crate::pipeline::collect_json_text("bundle.json", bundle_text, mappings),
        mappings,
    )?)
}

/// As [`rerun`], reading the `bundle.json` file at `path` as `imnm cohort`
/// reads any input: streamed, never whole in memory.
pub fn rerun_file(path: &Path, mappings: &MappingSet) -> Result<Vec<CaseRow>, ExportError> {
    all_rows(rows_of(
        crate::pipeline::collect(&[path.to_path_buf()], mappings, |_| {})?,
        mappings,
    )?)
}

/// The rows of a cohort, in memory.
fn all_rows(rows: crate::cohort::rows::Rows) -> Result<Vec<CaseRow>, ExportError> {
    rows.all()
        .map_err(|source| ExportError::Pipeline(crate::run_error::RunError::Spill { source }))
}

/// The rows of the cohort of `collected` (past its memory budget, on disk).
pub(super) fn rows_of(
    collected: crate::collect::Collected,
    mappings: &MappingSet,
) -> Result<crate::cohort::rows::Rows, ExportError> {
    let mut issues = collected.issues;
    Ok(crate::cohort::build::build(&collected.patients, mappings, &mut issues)?.rows)
}
