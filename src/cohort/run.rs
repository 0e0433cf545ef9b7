//! A cohort run: builds the cohort from [`Collected`] data and writes every
//! output (the fixed ones, then the chosen table formats).
//!
//! This sits on top of the rest of `cohort` and reads what the `pipeline`
//! collected; it reads no input itself.

use std::collections::{BTreeMap, BTreeSet};

use crate::cohort::link::{Linkage, Member};
use crate::collect::{Collected, PatientData, ReadStats};
use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Issues, Severity};

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
    build_and_write_linked(sites, mappings, out, formats, &[])
}

/// As [`build_and_write_sites`], with patients of different sites that share
/// an identifier of one of `link_systems` (canonical URIs) made one case
/// ([`crate::cohort::link`]): its row (site `a+b`, patient id `p1+p2`) comes
/// after the sites' rows. No systems: nothing is linked.
pub fn build_and_write_linked(
    sites: Vec<Collected>,
    mappings: &MappingSet,
    out: &std::path::Path,
    formats: Formats,
    link_systems: &[String],
) -> crate::run_error::Result<RunOutcome> {
    let spill = |source| crate::run_error::RunError::Spill { source };
    let systems: Vec<String> = link_systems.iter().map(|s| mappings.canonical_system(s)).collect();
    let mut issues = Issues::default();
    let groups = link_groups(&sites, &systems, &mut issues).map_err(spill)?;
    let budget = sites.iter().map(|c| c.patients.budget()).min().unwrap_or(usize::MAX);
    let mut cohort = crate::cohort::Cohort {
        dictionary: mappings.dictionary.clone(),
        rows: crate::cohort::rows::Rows::with_budget(budget),
        ..crate::cohort::Cohort::default()
    };
    let mut stats = ReadStats::default();
    let mut parts = Vec::with_capacity(sites.len());
    let mut site_issues = Vec::with_capacity(sites.len());
    for collected in sites {
        let Collected {
            site,
            patients,
            mut sources,
            issues,
            stats: site_stats,
            ..
        } = collected;
        sources.flush().map_err(spill)?;
        stats.add(&site_stats);
        site_issues.push(issues);
        parts.push(SiteData {
            site,
            patients,
            sources,
        });
    }
    build_sites(&mut cohort, &mut issues, site_issues, (&parts, groups), mappings)?;
    write_all(out, &cohort, &mut issues, &mut parts, (mappings, formats))?;
    Ok(RunOutcome { cohort, issues, stats })
}

/// Builds each site's rows into `cohort`, then the linked `groups`' cases.
fn build_sites(
    cohort: &mut crate::cohort::Cohort,
    issues: &mut Issues,
    site_issues: Vec<Issues>,
    (parts, groups): (&[SiteData], Vec<Vec<Member>>),
    mappings: &MappingSet,
) -> crate::run_error::Result<()> {
    let spill = |source| crate::run_error::RunError::Spill { source };
    let mut aside = Vec::with_capacity(parts.len());
    for (index, (part, mut site_issues)) in parts.iter().zip(site_issues).enumerate() {
        let linked = members_at(&groups, index);
        let (built, held) =
            crate::cohort::build::build_site_except(&part.site, &part.patients, mappings, &mut site_issues, &linked)?;
        cohort.absorb(built, issues).map_err(spill)?;
        issues.extend_site(site_issues, &part.site).map_err(spill)?;
        aside.push(held);
    }
    add_linked(cohort, groups, parts, aside, mappings, issues)?;
    cohort.site_order = parts.iter().map(|p| p.site.clone()).collect();
    tracing::debug!(
        cases = cohort.rows.len(),
        provenance = cohort.provenance.len(),
        sites = parts.len(),
        "cohort built"
    );
    Ok(())
}

/// Every output of a built cohort.
fn write_all(
    out: &std::path::Path,
    cohort: &crate::cohort::Cohort,
    issues: &mut Issues,
    parts: &mut [SiteData],
    (mappings, formats): (&MappingSet, Formats),
) -> crate::run_error::Result<()> {
    crate::cohort::write::write_outputs(out, cohort, issues, parts, formats.csv)?;
    tracing::debug!("outputs written");
    if formats.parquet {
        let facts: Vec<(&str, &crate::collect::Patients)> =
            parts.iter().map(|p| (p.site.as_str(), &p.patients)).collect();
        crate::cohort::parquet::write_all(out, cohort, &facts, mappings)?;
    }
    if formats.relevant {
        crate::cohort::write::write_relevant(out, parts)?;
    }
    Ok(())
}

/// The groups of linked patients (one pass over each site's patients; none
/// without systems); a `link-conflict` warning for each group left out.
fn link_groups(sites: &[Collected], systems: &[String], issues: &mut Issues) -> std::io::Result<Vec<Vec<Member>>> {
    let mut linkage = Linkage::new(systems);
    if !linkage.is_on() {
        return Ok(Vec::new());
    }
    for (index, collected) in sites.iter().enumerate() {
        collected.patients.try_for_each(|id, data| {
            if let Some(record) = &data.record {
                let case = crate::cohort::build::is_case(data);
                linkage.add(index, id, &record.identifiers, case);
            }
            Ok::<_, std::io::Error>(())
        })?;
    }
    let linked = linkage.groups();
    for group in &linked.conflicts {
        let names: Vec<String> = group
            .iter()
            .map(|(s, id)| format!("{}:Patient/{id}", sites[*s].site))
            .collect();
        let mut joined: Vec<&str> = group.iter().map(|(s, _)| sites[*s].site.as_str()).collect();
        joined.dedup();
        let msg = format!(
            "patients {} share linking identifiers, but two of them are of one site: not linked, each stays with its site",
            names.join(", ")
        );
        let mut issue = Issue::new(Severity::Warning, IssueCode::LinkConflict, names[0].clone(), msg);
        issue.site = Some(joined.join("+"));
        issues.push(issue);
    }
    tracing::debug!(
        groups = linked.groups.len(),
        conflicts = linked.conflicts.len(),
        "patients linked across sites"
    );
    Ok(linked.groups)
}

/// The ids of site `index`'s patients that belong to a group.
fn members_at(groups: &[Vec<Member>], index: usize) -> BTreeSet<String> {
    let members = groups.iter().flatten();
    members.filter(|(s, _)| *s == index).map(|(_, id)| id.clone()).collect()
}

/// Adds each group's case (its members' data taken from `aside`, per site);
/// its issues name the joined site (`a+b`).
fn add_linked(
    cohort: &mut crate::cohort::Cohort,
    groups: Vec<Vec<Member>>,
    parts: &[SiteData],
    mut aside: Vec<BTreeMap<String, PatientData>>,
    mappings: &MappingSet,
    issues: &mut Issues,
) -> crate::run_error::Result<()> {
    let spill = |source| crate::run_error::RunError::Spill { source };
    for group in groups {
        let members: Vec<(String, String, PatientData)> = group
            .into_iter()
            .map(|(site, id)| {
                let data = aside[site].remove(&id).unwrap_or_default();
                (parts[site].site.clone(), id, data)
            })
            .collect();
        let joined: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        let joined = joined.join("+");
        let mut part = crate::cohort::Cohort::default();
        let mut group_issues = Issues::default();
        crate::cohort::build::add_linked(&mut part, members, mappings, &mut group_issues);
        part.provenance.flush().map_err(spill)?;
        part.rows.flush().map_err(spill)?;
        cohort.absorb(part, issues).map_err(spill)?;
        issues.extend_site(group_issues, &joined).map_err(spill)?;
    }
    Ok(())
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
