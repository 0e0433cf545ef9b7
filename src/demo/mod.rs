//! The built-in demo dataset: 10 synthetic children whose summary equals the
//! seed case series, written in three EHR styles, plus distractors. See
//! `examples/demo-cohort/README.md`. No real patients.

pub mod generate;

/// The demo dataset as one FHIR collection Bundle (the committed
/// `examples/demo-cohort/bundle.json`), built into the binary so `imnm demo`
/// needs no files.
pub const BUNDLE_JSON: &str = include_str!("../../examples/demo-cohort/bundle.json");
