//! The latest cohort, built from the store after a successful sync: the
//! output files rebuilt in the out folder (written aside, then moved in file
//! by file, so a reader never sees half a file) and kept in memory for the API
//! and the page, with each case's lab series (dates, values, units).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::state::{now, Inner};
use crate::cohort::completeness::CompletenessRow;
use crate::cohort::table1::Table1Row;
use crate::cohort::{Formats, Provenance};
use crate::collect::Collected;
use crate::domain::{CaseRow, ColumnKind, Dictionary, FactValue};
use crate::mapping::MappingSet;
use crate::report::Issue;

/// One lab result of a case, as the chart draws it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Point {
    /// The lab-peak column the result counts towards.
    pub column: String,
    /// When it was taken (FHIR date), if known.
    pub date: Option<String>,
    /// The value, in the column's unit.
    pub value: f64,
    /// The column's unit.
    pub unit: Option<String>,
    /// The resource it came from (`Type/id`).
    pub source: String,
}

/// A built cohort.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// When it was built.
    pub built: String,
    pub dictionary: Dictionary,
    pub rows: Vec<CaseRow>,
    pub provenance: Vec<Provenance>,
    pub table1: Vec<Table1Row>,
    pub completeness: Vec<CompletenessRow>,
    pub issues: Vec<Issue>,
    /// Per (site, patient id): its lab results, by date.
    pub series: BTreeMap<(String, String), Vec<Point>>,
    /// The sites with data, in config order.
    pub sites: Vec<String>,
}

/// The site/patient pairs of a row (a linked case `a+b`, `p1+p2` has two).
pub(crate) fn members(row: &CaseRow) -> Vec<(String, String)> {
    let sites = row.site.split('+');
    sites
        .zip(row.patient_id.split('+'))
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect()
}

/// Reads the store, rebuilds the outputs in the out folder and replaces the snapshot.
pub(crate) fn rebuild(app: &Inner) -> Result<(), String> {
    let started = std::time::Instant::now();
    // A connection of its own (the syncs keep writing through theirs), read from and published to.
    let mut store = app.store_at.open().map_err(|e| e.to_string())?;
    let mut sites = crate::pipeline::collect_store_sites(&store, "store", &app.mappings).map_err(|e| e.to_string())?;
    let order: Vec<&str> = app.config.sites.iter().map(|s| s.id.as_str()).collect();
    sites.retain(|c| order.contains(&c.site.as_str()));
    sites.sort_by_key(|c| order.iter().position(|s| *s == c.site));
    let series = lab_series(&sites, &app.mappings).map_err(|e| e.to_string())?;
    let building = app.out.join(".building");
    let formats = Formats {
        csv: true,
        parquet: true,
        relevant: false,
    };
    let links = &app.config.link_identifiers;
    let mut outcome = crate::cohort::build_and_write_linked(sites, &app.mappings, &building, formats, links)
        .map_err(|e| e.to_string())?;
    // The registry's database gets the same outputs as tables (issue 26: cohort::publish).
    let tables = crate::cohort::publish::tables_of(&building).map_err(|e| e.to_string())?;
    store
        .replace_tables(&tables)
        .map_err(|e| format!("publishing the cohort tables: {e}"))?;
    drop(store);
    move_into(&building, &app.out).map_err(|e| e.to_string())?;
    let cohort = &outcome.cohort;
    let snapshot = Snapshot {
        built: now(),
        dictionary: cohort.dictionary.clone(),
        rows: cohort.rows.all().map_err(|e| e.to_string())?,
        provenance: cohort.provenance.all().map_err(|e| e.to_string())?,
        table1: cohort.table1(),
        completeness: crate::cohort::completeness::completeness(cohort),
        issues: outcome.issues.all().map_err(|e| e.to_string())?,
        series,
        sites: cohort.sites().into_iter().map(str::to_string).collect(),
    };
    tracing::info!(
        cases = snapshot.rows.len(),
        ms = started.elapsed().as_millis() as u64,
        "cohort outputs rebuilt"
    );
    *app.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(snapshot));
    Ok(())
}

/// Moves every file of `from` into `to` (each by one rename), then removes `from`.
fn move_into(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::rename(entry.path(), to.join(entry.file_name()))?;
    }
    std::fs::remove_dir(from)
}

/// Every case's results of each lab-peak column (by kind), read from the facts, by date.
fn lab_series(sites: &[Collected], mappings: &MappingSet) -> std::io::Result<BTreeMap<(String, String), Vec<Point>>> {
    let columns = &mappings.dictionary.columns;
    let mut out = BTreeMap::new();
    for collected in sites {
        collected.patients.try_for_each(|id, data| {
            let mut points: Vec<Point> = Vec::new();
            for fact in &data.facts {
                let Some(rule) = mappings.rules.get(fact.rule) else {
                    continue;
                };
                let Some(column) = columns.get(rule.column).filter(|c| c.kind == ColumnKind::LabPeak) else {
                    continue;
                };
                let value = match fact.value {
                    FactValue::Quantity(v) => v,
                    FactValue::Summary { peak, .. } => peak,
                    _ => continue,
                };
                points.push(Point {
                    column: column.name.clone(),
                    date: fact.date.as_ref().map(ToString::to_string),
                    value,
                    unit: column.unit.clone(),
                    source: format!("{}/{}", fact.source.resource_type, fact.source.id),
                });
            }
            if !points.is_empty() {
                points.sort_by(|a, b| a.date.cmp(&b.date));
                out.insert((collected.site.clone(), id.to_string()), points);
            }
            Ok::<_, std::io::Error>(())
        })?;
    }
    Ok(out)
}
