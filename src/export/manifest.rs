//! `manifest.json`: what made a study bundle and the SHA-256 of every other file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::deid::transform::Dropped;

/// The value of `format` in every study bundle manifest.
pub const FORMAT: &str = "imnm-study-bundle";

/// A study bundle's manifest. Never holds the key, ids or patient data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// `imnm` version that wrote it.
    pub tool_version: String,
    /// Site name given with `--site` (merged bundles: the sites, `+`-joined).
    pub site: String,
    /// `safe-harbor` or `limited`.
    pub profile: String,
    /// Small-cell threshold of the tables.
    pub min_cell: u64,
    /// Fingerprint of the site key (first 16 hex of SHA-256("imnm-key-id" + key)).
    pub key_id: String,
    /// Version of each mapping file.
    pub mapping_versions: BTreeMap<String, u32>,
    /// Version of `deid/rules.toml`.
    pub deid_rules_version: u32,
    /// Largest date offset in days.
    pub date_shift_max_days: u32,
    /// Cases in `cohort.csv`.
    pub cases: u64,
    /// Resources in the bundle, per type.
    pub resource_counts: BTreeMap<String, u64>,
    /// How often each de-identification rule fired.
    pub rules_fired: BTreeMap<String, u64>,
    /// Resources left out (type, pseudonym, rule).
    pub dropped: Vec<Dropped>,
    /// SHA-256 (hex) of every other file, by path relative to the folder.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self, ExportError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(super::read_err(&path))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| ExportError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(ExportError::Manifest {
                path,
                reason: format!("format is not {FORMAT}"),
            });
        }
        Ok(m)
    }

    /// Lists every file in `dir` (except the manifest) with its SHA-256 in
    /// `files` (from `hashes`, taken as the files were written; a file not in
    /// it is read) and writes `manifest.json`.
    pub(super) fn seal_and_write(mut self, dir: &Path, hashes: super::hashed::Hashes) -> Result<Self, ExportError> {
        self.files = hash_files_with(dir, hashes)?;
        let text = serde_json::to_string_pretty(&self).map_err(|e| ExportError::Output {
            path: dir.join("manifest.json"),
            source: e.into(),
        })?;
        let path = dir.join("manifest.json");
        std::fs::write(&path, text + "\n").map_err(super::out_err(&path))?;
        Ok(self)
    }
}

/// SHA-256 (hex) of every file below `dir` except `manifest.json`, by relative path.
pub fn hash_files(dir: &Path) -> Result<BTreeMap<String, String>, ExportError> {
    hash_files_with(dir, super::hashed::Hashes::default())
}

/// As [`hash_files`], taking the hashes in `known` instead of reading those files.
pub(super) fn hash_files_with(
    dir: &Path,
    mut known: super::hashed::Hashes,
) -> Result<BTreeMap<String, String>, ExportError> {
    let mut out = BTreeMap::new();
    for rel in list_files(dir)?.into_iter().filter(|f| f != "manifest.json") {
        let hash = match known.take(&rel) {
            Some(hash) => hash,
            None => {
                let path = dir.join(&rel);
                crate::deid::key::sha256_file(&path).map_err(super::read_err(&path))?
            }
        };
        out.insert(rel, hash);
    }
    Ok(out)
}

/// Every file below `dir`, as `/`-separated relative paths, sorted.
pub fn list_files(dir: &Path) -> Result<Vec<String>, ExportError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(super::read_err(&d))? {
            let path = entry.map_err(super::read_err(&d))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}
