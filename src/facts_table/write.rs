//! Writing one site's (or shard's) facts table: `facts-{site}-{shard}.parquet`
//! and its issues, `issues-{site}-{shard}.ndjson`.

use std::path::{Path, PathBuf};

use super::rows::{open_rows, patient_rows, FactRow, Keying};
use crate::cohort::parquet::{Kind, Writer, FACT_ROWS_PER_GROUP};
use crate::collect::Collected;
use crate::mapping::MappingSet;
use crate::run_error::{Result, Streaming};

/// The columns of the facts table, in order (docs/facts.md).
pub const COLUMNS: [(&str, Kind); 18] = [
    ("site", Kind::Text),
    ("patient", Kind::Text),
    ("role", Kind::Text),
    ("column_name", Kind::Text),
    ("kind", Kind::Text),
    ("rule", Kind::Text),
    ("value_num", Kind::Double),
    ("value_int", Kind::Int),
    ("value_code", Kind::Text),
    ("value_text", Kind::Text),
    ("value_date", Kind::Text),
    ("unit", Kind::Text),
    ("comparator", Kind::Text),
    ("fact_date", Kind::Text),
    ("source", Kind::Text),
    ("dictionary_version", Kind::Int),
    ("shard", Kind::Text),
    ("evidence", Kind::Int),
];

/// What [`write()`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsWritten {
    /// The Parquet file.
    pub path: PathBuf,
    /// Its rows.
    pub rows: u64,
    /// Patients read.
    pub patients: u64,
}

/// The file name of the facts of `site`'s shard `shard`: `facts-{site}-{shard}.parquet`.
pub fn file_name(site: &str, shard: &str) -> String {
    format!("facts-{site}-{shard}.parquet")
}

/// Writes `collected`'s facts (every patient's, then the open references)
/// into `dir` as [`file_name`]`(site, shard)`, streamed in row groups, and
/// its issues as `issues-{site}-{shard}.ndjson`.
///
/// # Errors
///
/// A file cannot be written, or spilled patients cannot be read back.
pub fn write(
    dir: &Path,
    shard: &str,
    collected: &mut Collected,
    m: &MappingSet,
    keying: &Keying<'_>,
) -> Result<FactsWritten> {
    let site = collected.site.clone();
    let path = dir.join(file_name(&site, shard));
    let version = m.versions.get("dictionary.toml").copied().unwrap_or(0).to_string();
    let metadata = [
        (super::SCHEMA_KEY, super::SCHEMA_VERSION.to_string()),
        ("imnm.facts.dictionary_version", version.clone()),
        ("imnm.facts.site", site.clone()),
    ];
    let mut writer = Writer::create_with(&path, &COLUMNS, &metadata)?;
    let mut group: Vec<Vec<String>> = Vec::with_capacity(1024);
    let (mut rows, mut patients) = (0u64, 0u64);
    let mut push = |row: FactRow, group: &mut Vec<Vec<String>>, writer: &mut Writer<'_>| {
        group.push(cells(&site, &version, shard, row));
        rows += 1;
        if group.len() >= FACT_ROWS_PER_GROUP {
            writer.write_group(group)?;
            group.clear();
        }
        Ok::<_, crate::run_error::RunError>(())
    };
    collected.patients.try_for_each(|id, data| {
        patients += 1;
        for row in patient_rows(id, data, m, keying) {
            push(row, &mut group, &mut writer).map_err(Streaming::Out)?;
        }
        Ok::<_, Streaming>(())
    })?;
    for row in open_rows(&collected.open, m, keying) {
        push(row, &mut group, &mut writer)?;
    }
    writer.write_group(&group)?;
    writer.close()?;
    let issues = format!("issues-{site}-{shard}.ndjson");
    crate::cohort::write::write_issues_as(dir, &issues, &mut collected.issues)?;
    Ok(FactsWritten { path, rows, patients })
}

/// A row's cells in [`COLUMNS`] order ("" is NULL).
fn cells(site: &str, version: &str, shard: &str, r: FactRow) -> Vec<String> {
    let s = |x: Option<String>| x.unwrap_or_default();
    vec![
        site.to_string(),
        s(r.patient),
        r.role.to_string(),
        s(r.column),
        r.kind.to_string(),
        s(r.rule),
        s(r.value_num.map(|x| format!("{x:?}"))),
        s(r.value_int.map(|x| x.to_string())),
        s(r.value_code),
        s(r.value_text),
        s(r.value_date),
        s(r.unit),
        s(r.comparator),
        s(r.date),
        r.source,
        version.to_string(),
        shard.to_string(),
        s(r.evidence.map(|x| x.to_string())),
    ]
}
