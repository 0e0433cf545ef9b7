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
    build_and_write_sites(vec![collected], mappings, out, formats)
}

/// Builds each site's cohort from its collected data, pools them (rows keyed
/// by site and patient id, in the order of `sites`) and writes every output
/// into `out`: one cohort.csv, Table 1 pooled and per site, provenance,
/// issues and sources naming the site.
pub fn build_and_write_sites(
    sites: Vec<Collected>,
    mappings: &MappingSet,
    out: &std::path::Path,
    formats: Formats,
) -> crate::run_error::Result<RunOutcome> {
    let spill = |source| crate::run_error::RunError::Spill { source };
    let mut cohort = crate::cohort::Cohort {
        dictionary: mappings.dictionary.clone(),
        ..crate::cohort::Cohort::default()
    };
    let mut issues = Issues::default();
    let mut stats = ReadStats::default();
    let mut parts = Vec::with_capacity(sites.len());
    for collected in sites {
        let Collected {
            site,
            patients,
            sources,
            issues: mut site_issues,
            stats: site_stats,
            ..
        } = collected;
        let part = crate::cohort::build::build_site(&site, &patients, mappings, &mut site_issues)?;
        cohort.absorb(part, &mut issues).map_err(spill)?;
        issues.extend_site(site_issues, &site).map_err(spill)?;
        stats.add(&site_stats);
        parts.push(SiteData {
            site,
            patients,
            sources,
        });
    }
    tracing::debug!(
        cases = cohort.rows.len(),
        provenance = cohort.provenance.len(),
        sites = parts.len(),
        "cohort built"
    );
    crate::cohort::write::write_outputs(out, &cohort, &mut issues, &mut parts, formats.csv)?;
    tracing::debug!("outputs written");
    if formats.parquet {
        let facts: Vec<(&str, &crate::collect::Patients)> =
            parts.iter().map(|p| (p.site.as_str(), &p.patients)).collect();
        crate::cohort::parquet::write_all(out, &cohort, &facts, mappings)?;
    }
    if formats.relevant {
        crate::cohort::write::write_relevant(out, &mut parts)?;
    }
    Ok(RunOutcome { cohort, issues, stats })
}

/// What a site's outputs are written from besides its rows: its patients'
/// facts and the raw JSON of its resources.
#[derive(Debug)]
pub struct SiteData {
    /// The site.
    pub site: String,
    /// Its patients' facts.
    pub patients: crate::collect::Patients,
    /// Its resources' JSON.
    pub sources: crate::collect::Texts,
}
