//! # imnm-fhir
//!
//! Moves immune-mediated necrotizing myopathy (IMNM) case data between hospital
//! EHRs and research registries over FHIR R4: reads what EHRs send (Bundles,
//! NDJSON, Bulk Data folders), selects IMNM cases, and writes the registry's
//! normalized cohort (`cohort.csv`), a case-series Table 1, provenance,
//! completeness and every data issue found.
//!
//! Data flows one way: [`fhir::source`] → [`fhir::peek`] → [`fhir::parse`] →
//! `mapping::extract` → [`collect`] (facts per patient, filled by
//! [`pipeline`]) → [`cohort`]. [`domain`] is the pure case model underneath.
//!
//! Sync from a FHIR server: [`sync`] decides what to fetch, fetches it with
//! [`client`] (HTTP, retries, paging) and keeps it in [`store`] (SQLite),
//! which [`pipeline::collect_store`] reads.
//!
//! Imports follow the same direction. Modules sit in layers, lowest first; a
//! module imports only lower layers, or its own layer one way
//! (`tests/it/layers.rs` holds this table and checks every file):
//!
//! | layer | modules |
//! |---|---|
//! | pure | [`domain`], [`report`], `spill`, [`demo`], [`bench_data`] |
//! | raw | [`fhir`], [`store`], [`client`] |
//! | meaning | [`mapping`], [`mock`] |
//! | facts | [`collect`], [`run_error`], [`sync`], [`push`] |
//! | registry | [`registry`] (the registry config) |
//! | reading | [`pipeline`] |
//! | outputs | [`cohort`], [`deid`], [`export`], [`to_fhir`], [`profile`], [`facts_table`] (site facts as Parquet, the cohort as SQL) |
//! | api | [`error`] (the top-level [`Error`], wrapping each layer's), [`exit`] (exit codes) |
//!
//! The `imnm` binary sits on top of them all.

#[doc(hidden)]
pub mod bench_data;
pub mod client;
pub mod cohort;
pub mod collect;
pub mod deid;
pub mod demo;
pub mod domain;
pub mod error;
pub mod exit;
pub mod export;
pub mod facts_table;
pub mod fhir;
pub mod mapping;
pub mod mock;
pub mod pipeline;
pub mod profile;
pub mod push;
pub mod registry;
pub mod report;
pub mod run_error;
pub mod service;
mod sorted;
mod spill;
pub mod store;
pub mod sync;
pub mod to_fhir;

pub use error::{Error, Result};

/// The README's Rust examples, compiled by `cargo test --doc` so they cannot
/// drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
