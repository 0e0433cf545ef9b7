//! The site facts table: one Parquet row per value a rule read, for a centre
//! to turn into the cohort and Table 1 with SQL (`imnm facts`, `imnm sql`).
//!
//! A site (or one shard of a site's export) writes its facts with
//! [`write()`]; [`sql`] generates, from the data dictionary, the SQL that
//! builds cohort rows and Table 1 from any number of such files. What one
//! shard cannot resolve alone (a MedicationRequest naming a Medication in
//! another file, a Patient's birth date against a Condition's onset) is
//! written as facts of its own ([`Role`]) and joined in SQL, so a shard
//! needs no other shard. The layout is [`SCHEMA_VERSION`], documented in
//! docs/facts.md and stored in each file's key-value metadata.
//!
//! This module owns the facts table's rows, layout and SQL. It reads what
//! the `pipeline` collected and the mappings; it never reads FHIR or builds
//! cohort rows itself (the cohort's rules are `cohort::build`'s, and the SQL
//! must give the same cells, which tests/it/engines.rs checks).

pub mod rows;
pub mod sql;
mod write;

pub use rows::{FactRow, Role};
pub use write::{file_name, write, FactsWritten};

/// The facts table's layout version (Parquet key-value metadata
/// `imnm.facts.schema_version`; docs/facts.md lists the changes).
pub const SCHEMA_VERSION: u32 = 3;

/// The key-value metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_KEY: &str = "imnm.facts.schema_version";
