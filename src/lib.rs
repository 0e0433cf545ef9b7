//! # imnm-fhir
//!
//! Moves immune-mediated necrotizing myopathy (IMNM) case data between hospital
//! EHRs and research registries over FHIR R4: reads what EHRs send (Bundles,
//! NDJSON, Bulk Data folders), selects IMNM cases, and writes the registry's
//! normalized cohort (`cohort.csv`), a case-series Table 1, provenance,
//! completeness and every data issue found.
//!
//! Data flows one way: [`fhir::source`] → [`fhir::peek`] → [`fhir::parse`] →
//! [`mapping::extract`] → [`cohort`]. [`domain`] is the pure case model in the
//! middle; [`pipeline`] wires the steps.
//!
//! Sync from a FHIR server: [`client`] (HTTP, retries, paging) → [`sync`]
//! (what to fetch) → [`store`] (SQLite), which [`pipeline::collect_store`] reads.

pub mod bench_data;
pub mod client;
pub mod cohort;
pub mod deid;
pub mod demo;
pub mod domain;
pub mod error;
pub mod export;
pub mod fhir;
pub mod mapping;
pub mod mock;
pub mod pipeline;
pub mod profile;
pub mod push;
pub mod registry;
pub mod report;
mod spill;
pub mod store;
pub mod sync;
pub mod to_fhir;

pub use error::{Error, Result};
