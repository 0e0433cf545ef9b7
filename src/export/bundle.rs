//! `imnm export`: the cohort pipeline, then a de-identified study bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::manifest::{Manifest, FORMAT};
use super::{cohort_csv, write_file, write_table1, ExportError};
use crate::deid::transform::{onset_age_extension, Dropped, Links};
use crate::deid::{DeidRules, Deidentified, Deidentifier, Profile, RulesFired, SiteKey};
use crate::domain::{CaseRow, SourceRef};
use crate::fhir::reference::{self, Ref};
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
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The manifest written.
    pub manifest: Manifest,
}

/// Runs the cohort pipeline on `opts.inputs` and writes a study bundle into `opts.out`.
pub fn export(opts: &ExportOptions, key: &SiteKey, mappings: &MappingSet) -> Result<ExportSummary, ExportError> {
    let rules = DeidRules::builtin()?;
    check_empty(&opts.out)?;
    let mut collected = crate::pipeline::collect_input(&opts.input, mappings)?;
    let mut issues = collected.issues;
    let cohort = crate::cohort::build::build(&collected.patients, mappings, &mut issues)?;
    let spill = |source| crate::run_error::RunError::Spill { source };
    let mut selected = select(&cohort, &mut collected.sources, &collected.aliases).map_err(spill)?;
    selected.extend(super::derived::text_findings(&cohort, mappings).map_err(spill)?);
    let links = links_into(&collected.aliases, &selected);
    let ages = onset_ages(&cohort).map_err(|source| crate::run_error::RunError::Spill { source })?;
    let deid = Deidentifier::new(&rules, key, opts.profile, mappings).with_links(&links);
    let mut fired = RulesFired::default();
    let (mut kept, mut dropped): (Vec<Deidentified>, Vec<Dropped>) = (Vec::new(), Vec::new());
    for (src, raw) in &selected {
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            fired.fire("dropped:unparseable");
            continue;
        };
        match deid.apply(&value, &mut fired) {
            Ok(mut d) => {
                if let (Some(age), Some(obj)) = (ages.get(src), d.resource.as_object_mut()) {
                    obj.insert("extension".into(), json!([onset_age_extension(*age, &mut fired)]));
                }
                kept.push(d);
            }
            Err(d) => dropped.push(d),
        }
    }
    kept.sort_by(|a, b| (&a.resource_type, &a.pseudonym).cmp(&(&b.resource_type, &b.pseudonym)));
    let counts = write_resources(&opts.out, &kept)?;
    let bundle_text = std::fs::read_to_string(opts.out.join("bundle.json")).map_err(super::read_err(&opts.out))?;
    let mut rows = rerun(&bundle_text, mappings)?;
    for r in &mut rows {
        r.site.clone_from(&opts.site);
    }
    write_file(&opts.out, "cohort.csv", &cohort_csv(&rows, &mappings.dictionary))?;
    write_table1(&opts.out, &rows, &mappings.dictionary, opts.min_cell)?;
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
        cases: rows.len() as u64,
        resource_counts: counts,
        rules_fired: fired.0,
        dropped,
        files: BTreeMap::new(),
    };
    let manifest = manifest.seal_and_write(&opts.out)?;
    Ok(ExportSummary { manifest })
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

/// The cases' Patients, the resources behind their cohort cells, and the
/// Medications those reference.
/// Reading a text back from the temporary file can fail.
fn select(
    cohort: &crate::cohort::Cohort,
    sources: &mut crate::collect::Texts,
    aliases: &Links,
) -> std::io::Result<BTreeMap<SourceRef, String>> {
    let mut wanted: BTreeSet<String> = cohort
        .rows
        .iter()
        .map(|r| format!("Patient/{}", r.patient_id))
        .collect();
    wanted.extend(cohort.provenance.sources()?);
    let mut out = sources.select(|s| wanted.contains(&s.to_string()))?;
    let meds: BTreeSet<SourceRef> = out.values().filter_map(|raw| medication_of(raw, aliases)).collect();
    if !meds.is_empty() {
        out.extend(sources.select(|s| meds.contains(s))?);
    }
    Ok(out)
}

fn medication_of(raw: &str, aliases: &Links) -> Option<SourceRef> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let target = match reference::parse(v["medicationReference"]["reference"].as_str()?) {
        Ref::Typed { resource_type, id } => SourceRef::new(resource_type, id),
        Ref::Opaque(url) => aliases.get(&url)?.clone(),
        Ref::Contained(_) => return None,
    };
    (target.resource_type == "Medication").then_some(target)
}

/// The fullUrls of the resources going into the bundle: references to them
/// are resolved, references to anything else are removed.
fn links_into(aliases: &Links, selected: &BTreeMap<SourceRef, String>) -> Links {
    aliases
        .iter()
        .filter(|(_, target)| selected.contains_key(target))
        .map(|(url, target)| (url.clone(), target.clone()))
        .collect()
}

/// Onset age per qualifying Condition (the source of the case's diagnosis_code).
/// Reading provenance back from the temporary file can fail.
fn onset_ages(cohort: &crate::cohort::Cohort) -> std::io::Result<BTreeMap<SourceRef, u32>> {
    use crate::domain::{Cell, ColumnKind};
    let d = &cohort.dictionary;
    let ages: BTreeMap<&str, u32> = cohort
        .rows
        .iter()
        .filter_map(|r| match r.first(d, ColumnKind::OnsetAge) {
            Some(Cell::Age(Some(a))) => Some((r.patient_id.as_str(), *a)),
            _ => None,
        })
        .collect();
    let diagnosis = d.first(ColumnKind::DiagnosisCode).map(|i| d.columns[i].name.as_str());
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    cohort.provenance.try_for_each(|p| {
        let is_diagnosis = Some(p.column.as_str()) == diagnosis;
        let Some(&age) = ages.get(p.patient_id.as_str()).filter(|_| is_diagnosis) else {
            return Ok::<_, std::io::Error>(());
        };
        // The first diagnosis_code record of a case, as before.
        if seen.insert(p.patient_id.clone()) {
            for id in p.sources.iter().filter_map(|s| s.strip_prefix("Condition/")) {
                out.insert(SourceRef::new("Condition", id), age);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn write_resources(dir: &Path, kept: &[Deidentified]) -> Result<BTreeMap<String, u64>, ExportError> {
    let entries: Vec<Value> = kept.iter().map(|d| json!({"resource": d.resource})).collect();
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| ExportError::Output {
        path: dir.join("bundle.json"),
        source: e.into(),
    })?;
    write_file(dir, "bundle.json", &(text + "\n"))?;
    let mut per_type: BTreeMap<String, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for d in kept {
        let lines = per_type.entry(d.resource_type.clone()).or_default();
        lines.push_str(&d.resource.to_string());
        lines.push('\n');
        *counts.entry(d.resource_type.clone()).or_default() += 1;
    }
    for (t, lines) in &per_type {
        write_file(dir, &format!("ndjson/{t}.ndjson"), lines)?;
    }
    Ok(counts)
}

/// Re-runs the cohort pipeline on a de-identified `bundle.json`: the rows (onset
/// ages come from the onset-age extension, which the mapping reads, since
/// birthDate may be a year).
pub fn rerun(bundle_text: &str, mappings: &MappingSet) -> Result<Vec<CaseRow>, ExportError> {
    let collected = crate::pipeline::collect_json_text("bundle.json", bundle_text, mappings);
    let mut issues = collected.issues;
    Ok(crate::cohort::build::build(&collected.patients, mappings, &mut issues)?.rows)
}
