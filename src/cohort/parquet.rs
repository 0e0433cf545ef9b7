//! Parquet copies of the cohort tables, for DuckDB, Spark and pandas.
//!
//! `cohort.parquet` and `candidates.parquet` hold the same rows and columns as
//! the CSV files (numbers typed: DOUBLE / INT64; an empty cell is NULL);
//! `facts.parquet` holds one row per fact a rule read, for every patient read
//! (not only cases): patient, cohort column, resource, code, value (text and,
//! for quantities, the number in the canonical unit with that unit), date,
//! detail. Written with the parquet crate's low-level column writer (no
//! Arrow), Snappy-compressed, one row group per file.
//!
//! This module owns the Parquet layout only; rows come from the cohort and the
//! collected facts, never from FHIR JSON.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::Cohort;
use crate::domain::{FactValue, COLUMNS};
use crate::mapping::{MappingSet, RuleKind};
use crate::pipeline::Patients;
use crate::{Error, Result};

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// 64-bit float.
    Double,
    /// 64-bit integer.
    Int,
}

/// A table of text cells ("" = NULL) and the type each column is written as.
#[derive(Debug, Clone)]
pub struct Table {
    /// Column names and types.
    pub columns: Vec<(&'static str, Kind)>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// The cohort's column types: numbers typed, the rest text (dates may be partial: `YYYY`, `YYYY-MM`).
fn cohort_kind(column: &str) -> Kind {
    match column {
        "onset_age_years" | "ck_count" => Kind::Int,
        "ck_peak_u_per_l" => Kind::Double,
        _ => Kind::Text,
    }
}

/// `cohort.csv` as a table.
#[must_use]
pub fn cohort_table(cohort: &Cohort) -> Table {
    Table {
        columns: COLUMNS.iter().map(|c| (*c, cohort_kind(c))).collect(),
        rows: cohort.rows.iter().map(crate::domain::CaseRow::cells).collect(),
    }
}

/// `candidates.csv` as a table.
#[must_use]
pub fn candidates_table(cohort: &Cohort) -> Table {
    let columns = vec![
        ("patient_id", Kind::Text),
        ("reason", Kind::Text),
        ("diagnosis_codes", Kind::Text),
        ("ck_peak_u_per_l", Kind::Double),
        ("anti_hmgcr", Kind::Text),
        ("anti_srp", Kind::Text),
    ];
    let rows = cohort
        .candidates
        .iter()
        .map(|c| {
            vec![
                c.patient_id.clone(),
                c.reason.clone(),
                c.diagnosis_codes.clone(),
                c.ck_peak_u_per_l.clone(),
                c.anti_hmgcr.clone(),
                c.anti_srp.clone(),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// One row per fact of every patient, in patient then reading order (the
/// table is built in memory: its size follows the facts, not the input).
pub fn facts_table(patients: &Patients, mappings: &MappingSet) -> crate::Result<Table> {
    let columns = vec![
        ("patient_id", Kind::Text),
        ("column", Kind::Text),
        ("resource", Kind::Text),
        ("code", Kind::Text),
        ("value", Kind::Text),
        ("value_number", Kind::Double),
        ("unit", Kind::Text),
        ("date", Kind::Text),
        ("detail", Kind::Text),
    ];
    let mut rows = Vec::new();
    let read = patients.try_for_each(|patient, data| {
        for f in &data.facts {
            let rule = &mappings.rules[f.rule];
            let unit = match rule.kind {
                RuleKind::LabPeak { quantity, .. } => mappings.quantities[quantity].canonical.clone(),
                _ => String::new(),
            };
            let (value, number) = fact_value(&f.value);
            rows.push(vec![
                patient.to_string(),
                rule.column.to_string(),
                f.source.to_string(),
                f.code.clone(),
                value,
                number,
                unit,
                f.date.map(|d| d.to_string()).unwrap_or_default(),
                f.detail.clone(),
            ]);
        }
        Ok::<_, std::io::Error>(())
    });
    read.map_err(|source| crate::Error::Spill { source })?;
    Ok(Table { columns, rows })
}

fn fact_value(v: &FactValue) -> (String, String) {
    match v {
        // A case report's CK summary: the peak is the value (its result count is in `detail`).
        FactValue::Quantity(x) | FactValue::Summary { peak: x, .. } => {
            let s = crate::domain::case::format_number(*x);
            (s.clone(), s)
        }
        FactValue::Antibody(a) => (a.as_str().to_string(), String::new()),
        FactValue::Present(p) | FactValue::Mri(_, p) => ((if *p { "yes" } else { "no" }).to_string(), String::new()),
        FactValue::Exposure => ("yes".to_string(), String::new()),
        FactValue::Outcome(o) => (o.as_str().to_string(), String::new()),
    }
}

/// Writes `table` to `path` as Parquet.
///
/// # Errors
///
/// The file cannot be written, or a number column holds a cell that is not a number.
pub fn write_table(path: &Path, table: &Table) -> Result<()> {
    let err = |e: String| Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let fields = table
        .columns
        .iter()
        .map(|(name, kind)| field(name, *kind).map(Arc::new))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let file = File::create(path).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut writer =
        SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(|e| err(e.to_string()))?;
    let mut group = writer.next_row_group().map_err(|e| err(e.to_string()))?;
    let mut index = 0;
    while let Some(mut col) = group.next_column().map_err(|e| err(e.to_string()))? {
        let (name, kind) = table.columns[index];
        let cells: Vec<&str> = table.rows.iter().map(|r| r[index].as_str()).collect();
        let levels: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
        let present = cells.iter().filter(|c| !c.is_empty());
        let bad = |c: &str| err(format!("column {name}: {c:?} is not a number"));
        let written = match kind {
            Kind::Text => {
                let values: Vec<ByteArray> = present.map(|c| ByteArray::from(*c)).collect();
                col.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None)
            }
            Kind::Double => {
                let values = present
                    .map(|c| c.parse::<f64>().map_err(|_| bad(c)))
                    .collect::<Result<Vec<_>>>()?;
                col.typed::<DoubleType>().write_batch(&values, Some(&levels), None)
            }
            Kind::Int => {
                let values = present
                    .map(|c| c.parse::<i64>().map_err(|_| bad(c)))
                    .collect::<Result<Vec<_>>>()?;
                col.typed::<Int64Type>().write_batch(&values, Some(&levels), None)
            }
        };
        written.map_err(|e| err(e.to_string()))?;
        col.close().map_err(|e| err(e.to_string()))?;
        index += 1;
    }
    group.close().map_err(|e| err(e.to_string()))?;
    writer.close().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn field(name: &str, kind: Kind) -> parquet::errors::Result<Type> {
    let (physical, converted) = match kind {
        Kind::Text => (Physical::BYTE_ARRAY, ConvertedType::UTF8),
        Kind::Double => (Physical::DOUBLE, ConvertedType::NONE),
        Kind::Int => (Physical::INT64, ConvertedType::NONE),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_converted_type(converted)
        .build()
}

/// Writes `cohort.parquet`, `candidates.parquet` and `facts.parquet` into `dir`.
///
/// # Errors
///
/// A file cannot be written.
pub fn write_all(dir: &Path, cohort: &Cohort, patients: &Patients, mappings: &MappingSet) -> Result<()> {
    write_table(&dir.join("cohort.parquet"), &cohort_table(cohort))?;
    write_table(&dir.join("candidates.parquet"), &candidates_table(cohort))?;
    write_table(&dir.join("facts.parquet"), &facts_table(patients, mappings)?)
}
