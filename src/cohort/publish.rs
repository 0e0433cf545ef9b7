//! The cohort outputs as tables in the registry's database (issue 26 item 3):
//! after a cohort build from a store, `cohort.csv`, `candidates.csv`,
//! `completeness.csv`, `table1.json`, `provenance.ndjson` and `issues.ndjson`
//! become the tables of [`TABLES`] (pooled and per site, as the files are: each
//! has a `site` column), so researchers query them with the SQL tools they
//! know. Every column is text as in the file (an empty CSV cell or a JSON null
//! is NULL; a JSON number its text, an array or object its JSON): cast in SQL
//! (`n::int`). Reads the files just written; owns nothing else.

use std::path::Path;

use serde_json::Value;

use crate::run_error::{Result, RunError};
use crate::store::Table;

/// (table name, output file) pairs, in publishing order.
pub const TABLES: &[(&str, &str)] = &[
    ("cases", "cohort.csv"),
    ("candidates", "candidates.csv"),
    ("completeness", "completeness.csv"),
    ("table1", "table1.json"),
    ("provenance", "provenance.ndjson"),
    ("issues", "issues.ndjson"),
];

/// The columns a JSON output's table always has, in this order (an empty
/// file still gives its table); keys beyond these follow, alphabetically.
fn json_columns(file: &str) -> &'static [&'static str] {
    match file {
        "table1.json" => &[
            "site", "variable", "level", "n", "percent", "median", "q1", "q3", "min", "max", "missing",
        ],
        "provenance.ndjson" => &["site", "patient_id", "column", "value", "rule", "sources", "detail"],
        _ => &["site", "severity", "code", "location", "fhir_path", "rule", "message"],
    }
}

/// The tables of the outputs in `dir`; a file not written (e.g. the CSVs of a
/// Parquet-only run) gives no table.
pub fn tables_of(dir: &Path) -> Result<Vec<Table>> {
    let mut out = Vec::new();
    for (name, file) in TABLES {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let bad = |e: std::io::Error| RunError::Input {
            path: path.clone(),
            source: e,
        };
        let (columns, rows) = if file.ends_with(".csv") {
            csv_table(&path).map_err(bad)?
        } else {
            let text = std::fs::read_to_string(&path).map_err(bad)?;
            json_table(&text, json_columns(file)).map_err(bad)?
        };
        out.push(Table {
            name: (*name).to_string(),
            columns,
            rows,
        });
    }
    Ok(out)
}

type Cells = (Vec<String>, Vec<Vec<Option<String>>>);

fn csv_table(path: &Path) -> std::io::Result<Cells> {
    let mut reader = csv::Reader::from_path(path).map_err(std::io::Error::other)?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(std::io::Error::other)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(std::io::Error::other)?;
        rows.push(record.iter().map(|c| (!c.is_empty()).then(|| c.to_string())).collect());
    }
    Ok((columns, rows))
}

/// A JSON array of objects, or NDJSON objects: the `base` columns, then any other key.
fn json_table(text: &str, base: &[&str]) -> std::io::Result<Cells> {
    let objects: Vec<serde_json::Map<String, Value>> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items.into_iter().filter_map(into_object).collect(),
        _ => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).map_err(std::io::Error::other))
            .collect::<std::io::Result<Vec<Value>>>()?
            .into_iter()
            .filter_map(into_object)
            .collect(),
    };
    let mut columns: Vec<String> = base.iter().map(|c| c.to_string()).collect();
    for o in &objects {
        for k in o.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let rows = objects
        .iter()
        .map(|o| columns.iter().map(|c| o.get(c).and_then(cell)).collect())
        .collect();
    Ok((columns, rows))
}

fn into_object(v: Value) -> Option<serde_json::Map<String, Value>> {
    match v {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

fn cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
