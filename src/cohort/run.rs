//! A cohort run: builds the cohort from [`Collected`] data and writes every
//! output (the fixed ones, then the chosen table formats).
//!
//! This sits on top of the rest of `cohort` and reads what the `pipeline`
//! collected; it reads no input itself.

use crate::collect::{Collected, ReadStats};
use crate::mapping::MappingSet;
use crate::report::Issues;

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
) -> crate::run_error::Result<RunOutcome> {
    build_and_write_as(collected, mappings, out, Formats::default())
}

/// As [`build_and_write`], in the given table formats.
pub fn build_and_write_as(
    collected: Collected,
    mappings: &MappingSet,
    out: &std::path::Path,
    formats: Formats,
) -> crate::run_error::Result<RunOutcome> {
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
