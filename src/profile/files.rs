//! `imnm validate` on files: Bundles, single resources and NDJSON (plain or
//! gzip), read with the streaming readers of `fhir::source`. References are
//! resolved within one file (Bundle fullUrls and `Type/id`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::validate::{Targets, ValidationReport};
use super::ProfileSet;
use crate::fhir::source::{self, Format, Item};
use crate::report::{Issue, IssueCode, Location, Severity};

/// Validates every resource of the input files (folders are walked as for `cohort`).
/// Each file is read twice, streaming: first to learn what its references can
/// point at (type and profile per fullUrl and `Type/id`), then to validate, so
/// memory holds that index, not the resources.
pub fn validate_files(inputs: &[PathBuf], set: &ProfileSet) -> std::io::Result<ValidationReport> {
    let plan = source::plan(inputs)?;
    let mut report = ValidationReport::default();
    for path in plan.files.iter().chain(&plan.deleted).chain(&plan.errors) {
        let mut targets = Targets::default();
        each_resource(path, &mut |_, v, url| targets.add(set, &v, url), &mut |_, _| {})?;
        let cell = std::cell::RefCell::new(&mut report);
        each_resource(
            path,
            &mut |location, v, _| set.validate(&v, &targets, &location, &mut cell.borrow_mut()),
            &mut |location, message| unreadable(&mut cell.borrow_mut(), location, message),
        )?;
    }
    Ok(report)
}

type OnResource<'a> = dyn FnMut(String, Value, Option<&str>) + 'a;

/// Streams the resources of one file (`on_bad` gets what cannot be read).
fn each_resource(
    path: &Path,
    on_resource: &mut OnResource<'_>,
    on_bad: &mut dyn FnMut(String, String),
) -> std::io::Result<()> {
    let name: Arc<str> = path.display().to_string().into();
    let mut take = |item: Item<'_>| match item {
        Item::Resource {
            location,
            text,
            full_url,
        } => match serde_json::from_str(text) {
            Ok(v) => on_resource(location.to_string(), v, full_url),
            Err(e) => on_bad(location.to_string(), format!("not JSON: {e}")),
        },
        Item::Unreadable { location, message, .. } => on_bad(location.to_string(), message),
        // A batch request entry: nothing to validate.
        Item::NoResource { .. } => {}
    };
    match source::format_of(path) {
        Some(Format::Json { gzip }) => source::read_json(name, source::open(path, gzip, |_| {})?, &mut take),
        Some(Format::Ndjson { gzip }) => source::read_ndjson(name, source::open(path, gzip, |_| {})?, &mut take)?,
        None => {}
    }
    Ok(())
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
    // "(unreadable)" and "(input)" keep `imnm validate`'s output as it was.
    let location = Location::new(location).in_resource("(unreadable)");
    report.push(Issue::new(Severity::Error, IssueCode::Structure, location, message).at("(input)"));
}
