//! De-identification of FHIR resources for study bundles.
//!
//! This module owns the transformations that make a resource shareable:
//! keyed pseudonyms for ids and references ([`key`]), the per-patient date
//! shift (`dates`), the allow-list of elements per resource type read from
//! `deid/rules.toml` ([`rules`]) and applying all of them to one resource
//! while counting which rule fired ([`transform`]).
//!
//! It works on plain JSON (a tree borrowing from the resource's text,
//! `json`) because it must see elements the fhirbolt model would reject or
//! normalize. It must not decide which resources belong
//! to a bundle, write files or compute tables: that is `export/`. Messages
//! and errors never carry identifiers, names, dates or the key.

pub(crate) mod dates;
pub(crate) mod json;
pub mod key;
pub mod rules;
pub mod scratch;
pub mod transform;

use std::path::PathBuf;

pub use key::SiteKey;
pub use rules::{DeidRules, Profile};
pub use scratch::Scratch;
pub use transform::{Applied, Deidentified, Deidentifier, RulesFired};

/// The de-identification rules built into the binary.
pub const BUILTIN_RULES: &str = include_str!("../../deid/rules.toml");

/// Why de-identification cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// The key file cannot be read.
    #[error("cannot read key file {path}: {source}")]
    KeyRead {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is readable by group or others.
    #[error("key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold 64 hex digits.
    #[error("key file {path} does not hold a 256-bit key as 64 hex digits (make one with `imnm keygen`)")]
    KeyFormat {
        /// The key file.
        path: PathBuf,
    },
    /// The key file already exists (keygen never overwrites).
    #[error("{path} already exists; keygen never overwrites a key")]
    KeyExists {
        /// The key file.
        path: PathBuf,
    },
    /// The key cannot be written.
    #[error("cannot write key file {path}: {source}")]
    KeyWrite {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No randomness from the operating system (a new key cannot be made).
    #[error("no random bytes from the operating system: {source}")]
    Random {
        /// getrandom's error.
        source: getrandom::Error,
    },
    /// The rule file is not valid TOML or does not fit the rules' shape.
    #[error("de-identification rules: {source}")]
    RulesSyntax {
        /// The TOML parser's error (with line and column).
        source: toml::de::Error,
    },
    /// `dates.max_offset_days` is 0.
    #[error("de-identification rules: dates.max_offset_days must be at least 1")]
    NoDateShift,
    /// A restricted ZIP prefix that is not 3 characters.
    #[error("de-identification rules: zip.restricted_zip3: {value:?} is not 3 digits")]
    Zip3 {
        /// The value given.
        value: String,
    },
    /// A resource type's `keep` list without `id`.
    #[error("de-identification rules: resources.{resource_type}.keep must hold \"id\"")]
    KeepWithoutId {
        /// The resource type.
        resource_type: String,
    },
}
