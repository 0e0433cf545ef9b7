//! `imnm validate` on files: Bundles, single resources and NDJSON (plain or
//! gzip), read with the streaming readers of `fhir::source`. References are
//! resolved within one file (Bundle fullUrls and `Type/id`).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::validate::{Finding, Rule, Targets, ValidationReport};
use super::ProfileSet;
use crate::fhir::source::{self, Format, Item};
use crate::report::Severity;

/// Validates every resource of the input files (folders are walked as for `cohort`).
pub fn validate_files(inputs: &[PathBuf], set: &ProfileSet) -> std::io::Result<ValidationReport> {
    let plan = source::plan(inputs)?;
    let mut report = ValidationReport::default();
    for path in plan.files.iter().chain(&plan.deleted).chain(&plan.errors) {
        let name: Arc<str> = path.display().to_string().into();
        let mut items: Vec<(String, Value, Option<String>)> = Vec::new();
        let mut take = |item: Item<'_>| match item {
            Item::Resource {
                location,
                text,
                full_url,
            } => match serde_json::from_str(text) {
                Ok(v) => items.push((location.to_string(), v, full_url.map(str::to_string))),
                Err(e) => unreadable(&mut report, location.to_string(), format!("not JSON: {e}")),
            },
            Item::Unreadable { location, message, .. } => unreadable(&mut report, location.to_string(), message),
        };
        match source::format_of(path) {
            Some(Format::Json { gzip }) => source::read_json(name, source::open(path, gzip, |_| {})?, &mut take),
            Some(Format::Ndjson { gzip }) => source::read_ndjson(name, source::open(path, gzip, |_| {})?, &mut take)?,
            None => continue,
        }
        validate_items(set, &items, &mut report);
    }
    Ok(report)
}

/// Validates the resources of one Bundle held in memory (`label` names it in locations).
pub fn validate_bundle(set: &ProfileSet, bundle: &Value, label: &str) -> ValidationReport {
    let items: Vec<(String, Value, Option<String>)> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| {
            let url = e["fullUrl"].as_str().map(str::to_string);
            (format!("{label}#entry[{i}]"), e["resource"].clone(), url)
        })
        .collect();
    let mut report = ValidationReport::default();
    validate_items(set, &items, &mut report);
    report
}

fn validate_items(set: &ProfileSet, items: &[(String, Value, Option<String>)], report: &mut ValidationReport) {
    let mut targets = Targets::default();
    for (_, v, url) in items {
        targets.add(set, v, url.as_deref());
    }
    for (location, v, _) in items {
        set.validate(v, &targets, location, report);
    }
}

fn unreadable(report: &mut ValidationReport, location: String, message: String) {
    report.push(Finding {
        severity: Severity::Error,
        resource: "(unreadable)".into(),
        location,
        expression: "(input)".into(),
        rule: Rule::Structure,
        message,
    });
}
