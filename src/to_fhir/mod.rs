//! Case report rows (the columns of `cohort.csv`) → a FHIR R4 transaction
//! Bundle of IMNM-profiled resources, with conditional creates on business
//! identifiers. The reverse rules are the mappings: each value is written as
//! the first code of the value set the forward rule reads (`mappings/`), so a
//! row read back by `imnm cohort` gives the same cells.
//!
//! This module owns reading the case CSV (`csv_rows.rs`) and building the
//! Bundle (`bundle.rs`); it does no network I/O and writes no files.

mod bundle;
mod csv_rows;

pub use bundle::{build_bundle, BundleError, DEFAULT_SITE_SYSTEM};
pub use csv_rows::read_cases;
