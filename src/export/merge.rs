//! `imnm merge`: pools several sites' study bundles into one cohort and Table 1.
//!
//! Each bundle must verify (hashes, counts, no identifier-shaped content),
//! all must share the de-identification rule and mapping versions (and the
//! mappings loaded, `--mappings`, must be those versions), and no
//! site key may appear twice (the same site's data would be counted twice).
//! Rows are recomputed from each bundle's `bundle.json`, never read from its
//! `cohort.csv`, so a merged table only ever reflects verified resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{hash_files_with, Manifest};
use super::{write_rows, ExportError};
use crate::cohort::rows::Rows;
use crate::mapping::MappingSet;

/// One pooled site in the merged manifest.
#[derive(Debug, Clone, Serialize)]
pub struct MergedSite {
    /// Site name (from its manifest).
    pub site: String,
    /// Its key fingerprint.
    pub key_id: String,
    /// Its cases.
    pub cases: u64,
    /// SHA-256 of its `manifest.json`.
    pub manifest_sha256: String,
}

/// `manifest.json` of a merged folder.
#[derive(Debug, Clone, Serialize)]
pub struct MergedManifest {
    /// Always `imnm-merged-cohort`.
    pub format: String,
    /// `imnm` version that merged.
    pub tool_version: String,
    /// The sites pooled.
    pub sites: Vec<MergedSite>,
    /// Shared mapping versions.
    pub mapping_versions: BTreeMap<String, u32>,
    /// Shared de-identification rule version.
    pub deid_rules_version: u32,
    /// Small-cell threshold of the pooled Table 1.
    pub min_cell: u64,
    /// Pooled cases.
    pub cases: u64,
    /// SHA-256 of every other file.
    pub files: BTreeMap<String, String>,
}

/// Merges the bundles in `dirs` into `out`.
pub fn merge(
    dirs: &[PathBuf],
    out: &Path,
    min_cell: u64,
    mappings: &MappingSet,
) -> Result<MergedManifest, ExportError> {
    let mut sites: Vec<(Manifest, Rows, String)> = Vec::new();
    let threads = super::default_threads();
    for dir in dirs {
        // The cohort is recomputed from bundle.json in the pass that verifies it.
        let mut recount = super::recount::Recount::new(mappings, &dir.join("bundle.json"), threads);
        let mut stretch: Vec<String> = Vec::new();
        let report = super::verify::verify_with(dir, None, |text| {
            stretch.push(text.to_string());
            if stretch.len() == super::recount::STRETCH {
                recount.feed(&stretch);
                stretch.clear();
            }
        })?;
        recount.feed(&stretch);
        if let Some(f) = report.findings.first() {
            return Err(refused(
                dir,
                format!("it does not verify ({} finding(s), first: {f})", report.findings.len()),
            ));
        }
        let manifest = Manifest::read(dir)?;
        if manifest.mapping_versions != mappings.versions {
            return Err(refused(
                dir,
                "it was made with other mapping versions than the ones loaded (give its mapping folder with --mappings)"
                    .into(),
            ));
        }
        if let Some((first, _, _)) = sites.first() {
            if first.deid_rules_version != manifest.deid_rules_version {
                return Err(refused(
                    dir,
                    "its de-identification rule version differs from the first bundle's".into(),
                ));
            }
            if first.mapping_versions != manifest.mapping_versions {
                return Err(refused(
                    dir,
                    "its mapping versions differ from the first bundle's".into(),
                ));
            }
        }
        if sites.iter().any(|(m, _, _)| m.key_id == manifest.key_id) {
            return Err(refused(
                dir,
                "its site key is the same as another bundle's (the same site twice?)".into(),
            ));
        }
        let bytes = std::fs::read(dir.join("manifest.json")).map_err(super::read_err(dir))?;
        sites.push((manifest, recount.rows()?, crate::deid::key::sha256_hex(&bytes)));
    }
    std::fs::create_dir_all(out).map_err(super::out_err(out))?;
    let parts: Vec<(&str, &Rows)> = sites.iter().map(|(m, rows, _)| (m.site.as_str(), rows)).collect();
    let mut hashes = super::hashed::Hashes::default();
    let cases = write_rows(out, &parts, &mappings.dictionary, min_cell, &mut hashes)?;
    let first = sites.first().map(|(m, _, _)| m.clone());
    let mut manifest = MergedManifest {
        format: "imnm-merged-cohort".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        sites: sites
            .iter()
            .map(|(m, rows, sha)| MergedSite {
                site: m.site.clone(),
                key_id: m.key_id.clone(),
                cases: rows.len() as u64,
                manifest_sha256: sha.clone(),
            })
            .collect(),
        mapping_versions: first.as_ref().map(|m| m.mapping_versions.clone()).unwrap_or_default(),
        deid_rules_version: first.as_ref().map(|m| m.deid_rules_version).unwrap_or_default(),
        min_cell,
        cases,
        files: BTreeMap::new(),
    };
    manifest.files = hash_files_with(out, hashes)?;
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| ExportError::Output {
        path: out.join("manifest.json"),
        source: e.into(),
    })?;
    let path = out.join("manifest.json");
    std::fs::write(&path, text + "\n").map_err(super::out_err(&path))?;
    Ok(manifest)
}

fn refused(dir: &Path, reason: String) -> ExportError {
    ExportError::Refused {
        dir: dir.to_path_buf(),
        reason,
    }
}
