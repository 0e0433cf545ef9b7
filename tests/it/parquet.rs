//! Parquet outputs: read back with the parquet crate's reader, they hold the same rows as the CSV files.

use std::path::Path;

use imnm_fhir::domain::case::format_number;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::support::{imnm, root};

fn parquet_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let header = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(_, f)| match f {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    Field::Long(n) => n.to_string(),
                    Field::Double(x) => format_number(*x),
                    other => panic!("unexpected Parquet field {other:?}"),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// `imnm cohort --format FORMAT` on the demo bundle (it must succeed); the temp dir and the out dir.
fn demo_cohort(format: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = root().join("examples/demo-cohort/bundle.json");
    let args = [
        "cohort",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        format,
    ];
    let run = imnm(&args, tmp.path());
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    (tmp, out)
}

#[test]
fn parquet_tables_hold_the_csv_rows() {
    let (_tmp, out) = demo_cohort("both");
    for table in ["cohort", "candidates"] {
        let csv = csv_rows(&out.join(format!("{table}.csv")));
        let parquet = parquet_rows(&out.join(format!("{table}.parquet")));
        assert!(!csv.1.is_empty(), "{table}.csv has rows");
        assert_eq!(parquet, csv, "{table}");
    }
    let (header, facts) = parquet_rows(&out.join("facts.parquet"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let ck: Vec<_> = facts.iter().filter(|r| r[col("column")] == "ck_peak_u_per_l").collect();
    assert!(!ck.is_empty());
    assert!(ck
        .iter()
        .all(|r| r[col("unit")] == "U/L" && r[col("value_number")].parse::<f64>().is_ok()));
    assert!(
        ck.iter().any(|r| r[col("value_number")] == "13524"),
        "the seed's CK peak is a fact"
    );
}

#[test]
fn format_parquet_writes_no_csv_tables() {
    let (_tmp, out) = demo_cohort("parquet");
    assert!(out.join("cohort.parquet").exists() && out.join("facts.parquet").exists());
    assert!(!out.join("cohort.csv").exists());
}
