//! Parquet copies of the cohort tables, for DuckDB, Spark and pandas.
//!
//! `cohort.parquet` and `candidates.parquet` hold the same rows and columns as
//! the CSV files (numbers typed: DOUBLE / INT64; an empty cell is NULL);
//! `facts.parquet` holds one row per fact a rule read, for every patient read
//! (not only cases): patient, cohort column, resource, code, value (text and,
//! for quantities, the number in the canonical unit with that unit), date,
//! detail. Written with the parquet crate's low-level column writer (no
//! Arrow), Snappy-compressed: the cohort tables in one row group, the facts
//! streamed in groups of [`FACT_ROWS_PER_GROUP`] rows.
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
use crate::collect::Patients;
use crate::domain::{ColumnKind, FactValue};
use crate::mapping::{MappingSet, RuleKind};
use crate::run_error::Streaming;
use crate::run_error::{Result, RunError};

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
    pub columns: Vec<(String, Kind)>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// The Parquet type of a column of `kind`: numbers typed, the rest text
/// (dates may be partial: `YYYY`, `YYYY-MM`).
fn column_type(kind: ColumnKind) -> Kind {
    match kind {
        ColumnKind::OnsetAge | ColumnKind::LabCount => Kind::Int,
        ColumnKind::LabPeak => Kind::Double,
        ColumnKind::PatientId
        | ColumnKind::Sex
        | ColumnKind::BirthDate
        | ColumnKind::OnsetDate
        | ColumnKind::DiagnosisCode
        | ColumnKind::LabPeakDate
        | ColumnKind::Antibody
        | ColumnKind::Finding
        | ColumnKind::Mri
        | ColumnKind::Exposure
        | ColumnKind::Outcome => Kind::Text,
    }
}

/// `cohort.csv` as a table (one row group: the rows are read into memory).
///
/// # Errors
///
/// Reading the rows back from their temporary file.
pub fn cohort_table(cohort: &Cohort) -> Result<Table> {
    let d = &cohort.dictionary;
    let site = (crate::domain::SITE_COLUMN.to_string(), Kind::Text);
    let columns = d.columns.iter().map(|c| (c.name.clone(), column_type(c.kind)));
    let mut rows = Vec::with_capacity(cohort.rows.len());
    cohort
        .rows
        .try_for_each(|r| {
            rows.push(r.cells());
            Ok::<_, std::io::Error>(())
        })
        .map_err(|source| RunError::Spill { source })?;
    Ok(Table {
        columns: std::iter::once(site).chain(columns).collect(),
        rows,
    })
}

/// `candidates.csv` as a table.
#[must_use]
pub fn candidates_table(cohort: &Cohort) -> Table {
    let d = &cohort.dictionary;
    let mut columns: Vec<(String, Kind)> = [crate::domain::SITE_COLUMN, "patient_id", "reason", "diagnosis_codes"]
        .iter()
        .map(|c| (c.to_string(), Kind::Text))
        .collect();
    let candidate = d.candidate_columns().into_iter().map(|i| &d.columns[i]);
    columns.extend(candidate.map(|c| (c.name.clone(), column_type(c.kind))));
    let rows = cohort.candidates.iter().map(super::Candidate::cells).collect();
    Table { columns, rows }
}

/// Rows per row group of `facts.parquet`: what is held in memory while it is written.
pub const FACT_ROWS_PER_GROUP: usize = 32_768;

/// The columns of `facts.parquet`.
const FACT_COLUMNS: [(&str, Kind); 10] = [
    ("site", Kind::Text),
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

/// Writes `facts.parquet`: one row per fact of every patient, in patient then
/// reading order, streamed in row groups of `group` rows (memory follows the
/// group, not the facts).
fn write_facts(path: &Path, sites: &[(&str, &Patients)], mappings: &MappingSet, group: usize) -> Result<()> {
    let mut writer = Writer::create(path, &FACT_COLUMNS)?;
    let group = group.max(1);
    let mut rows = Vec::with_capacity(group.min(FACT_ROWS_PER_GROUP));
    for (site, patients) in sites {
        let read = patients.try_for_each(|patient, data| {
            for f in &data.facts {
                let mut row = vec![site.to_string()];
                row.extend(fact_row(patient, f, mappings));
                rows.push(row);
                if rows.len() == group {
                    writer.write_group(&rows).map_err(Streaming::Out)?;
                    rows.clear();
                }
            }
            Ok::<_, Streaming>(())
        });
        read?;
    }
    if !rows.is_empty() || writer.groups == 0 {
        writer.write_group(&rows)?;
    }
    writer.close()
}

fn fact_row(patient: &str, f: &crate::domain::Fact, mappings: &MappingSet) -> Vec<String> {
    let Some(rule) = mappings.rules.get(f.rule) else {
        return vec![String::new(); FACT_COLUMNS.len() - 1];
    };
    let unit = match rule.kind {
        RuleKind::LabPeak { quantity, .. } => mappings.quantities[quantity].canonical.clone(),
        _ => String::new(),
    };
    let (value, number) = fact_value(&f.value);
    vec![
        patient.to_string(),
        mappings.column_name(rule).to_string(),
        f.source.to_string(),
        f.code.clone(),
        value,
        number,
        unit,
        f.date.map(|d| d.to_string()).unwrap_or_default(),
        f.detail.clone(),
    ]
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

/// Writes `table` to `path` as Parquet, in one row group.
///
/// # Errors
///
/// The file cannot be written, or a number column holds a cell that is not a number.
pub fn write_table(path: &Path, table: &Table) -> Result<()> {
    let mut writer = Writer::create(path, &table.columns)?;
    writer.write_group(&table.rows)?;
    writer.close()
}

/// A Parquet file being written, a row group at a time.
pub(crate) struct Writer<'a> {
    path: &'a Path,
    columns: Vec<(String, Kind)>,
    inner: SerializedFileWriter<File>,
    groups: usize,
}

impl<'a> Writer<'a> {
    fn create<S: AsRef<str>>(path: &'a Path, columns: &[(S, Kind)]) -> Result<Self> {
        Self::create_with(path, columns, &[])
    }

    /// A new file of `columns` whose footer holds the key-value `metadata`.
    pub(crate) fn create_with<S: AsRef<str>>(
        path: &'a Path,
        columns: &[(S, Kind)],
        metadata: &[(&str, String)],
    ) -> Result<Self> {
        let err = |e: parquet::errors::ParquetError| output_error(path, e.to_string());
        let fields = columns
            .iter()
            .map(|(name, kind)| field(name.as_ref(), *kind).map(Arc::new))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(err)?;
        let kv: Vec<parquet::file::metadata::KeyValue> = metadata
            .iter()
            .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.to_string(), v.clone()))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata((!kv.is_empty()).then_some(kv))
            .build();
        let file = File::create(path).map_err(|e| RunError::Output {
            path: path.to_path_buf(),
            source: e,
        })?;
        let inner = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(err)?;
        Ok(Self {
            path,
            columns: columns.iter().map(|(n, k)| (n.as_ref().to_string(), *k)).collect(),
            inner,
            groups: 0,
        })
    }

    /// Writes `rows` (one cell per column, "" = NULL) as one row group.
    pub(crate) fn write_group(&mut self, rows: &[Vec<String>]) -> Result<()> {
        let path = self.path;
        let err = |e: String| output_error(path, e);
        let mut group = self.inner.next_row_group().map_err(|e| err(e.to_string()))?;
        let mut index = 0;
        while let Some(mut col) = group.next_column().map_err(|e| err(e.to_string()))? {
            let Some((name, kind)) = self.columns.get(index) else {
                return Err(err(format!(
                    "more columns than the {} of the schema",
                    self.columns.len()
                )));
            };
            let cells: Vec<&str> = rows.iter().map(|r| r[index].as_str()).collect();
            let levels: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
            let present = cells.iter().filter(|c| !c.is_empty());
            let bad = |c: &str| err(format!("column {name}: {c:?} is not a number"));
            let written = match *kind {
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
        self.groups += 1;
        Ok(())
    }

    /// Writes the footer.
    pub(crate) fn close(self) -> Result<()> {
        let path = self.path;
        self.inner.close().map_err(|e| output_error(path, e.to_string()))?;
        Ok(())
    }
}

fn output_error(path: &Path, message: String) -> RunError {
    RunError::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(message),
    }
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

/// Writes `cohort.parquet`, `candidates.parquet` and `facts.parquet` (the
/// facts of every site's patients, `sites` in order) into `dir`.
///
/// # Errors
///
/// A file cannot be written.
pub fn write_all(dir: &Path, cohort: &Cohort, sites: &[(&str, &Patients)], mappings: &MappingSet) -> Result<()> {
    write_table(&dir.join("cohort.parquet"), &cohort_table(cohort)?)?;
    write_table(&dir.join("candidates.parquet"), &candidates_table(cohort))?;
    write_facts(&dir.join("facts.parquet"), sites, mappings, FACT_ROWS_PER_GROUP)
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// `(row groups, rows as text)` of a facts file.
    fn read_back(path: &Path) -> (usize, Vec<String>) {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let groups = reader.metadata().num_row_groups();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        (groups, rows)
    }

    #[test]
    fn facts_stream_in_row_groups_with_the_same_rows() {
        let m = MappingSet::builtin().unwrap();
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-cohort/bundle.json")).unwrap();
        let collected = crate::pipeline::collect_json_text("bundle.json", &text, &m);
        let dir = tempfile::tempdir().unwrap();
        let (one, small) = (dir.path().join("one.parquet"), dir.path().join("small.parquet"));
        write_facts(&one, &[("local", &collected.patients)], &m, usize::MAX).unwrap();
        write_facts(&small, &[("local", &collected.patients)], &m, 7).unwrap();
        let (one_groups, rows) = read_back(&one);
        let (groups, small_rows) = read_back(&small);
        assert!(rows.len() > 14, "the demo gives facts: {}", rows.len());
        assert_eq!(one_groups, 1);
        assert_eq!(groups, rows.len().div_ceil(7));
        assert_eq!(small_rows, rows);
    }
}
