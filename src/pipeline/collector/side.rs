//! The side files of a Bulk Data export: `deleted/` (resources that left
//! the source since the last export) and `error/` (the server's
//! OperationOutcomes). Their shapes are read here, only as far as the
//! [`Collector`](super::Collector) needs them: which `Type/id` to drop, which
//! outcome to report.

use std::sync::Arc;

use super::Collector;
use crate::fhir::reference::{self, Ref};
use crate::fhir::source::{self, Format, Item};
use crate::report::{Issue, IssueCode, Severity};

impl Collector<'_> {
    /// Accepts one item of a `deleted/` file: a resource, or a Bundle whose
    /// entries name resources (request.url or resource), that left the source.
    pub fn accept_deleted(&mut self, item: Item<'_>) {
        let Item::Resource { text, location, .. } = item else {
            return self.accept(item);
        };
        match serde_json::from_str::<SideRecord>(text) {
            Ok(r) if r.resource_type == "Bundle" => {
                for e in r.entry {
                    let from_url = e.request.and_then(|q| q.url).map(|u| reference::parse(&u));
                    if let Some(Ref::Typed { resource_type, id }) = from_url {
                        self.deleted.insert(format!("{resource_type}/{id}"));
                    }
                    if let Some(res) = e.resource {
                        self.deleted
                            .insert(format!("{}/{}", res.resource_type, res.id.unwrap_or_default()));
                    }
                }
            }
            Ok(r) => {
                self.deleted
                    .insert(format!("{}/{}", r.resource_type, r.id.unwrap_or_default()));
            }
            Err(_) => self.issues.push(Issue::new(
                Severity::Error,
                IssueCode::MalformedJson,
                location.to_string(),
                "unreadable line in a deleted/ file",
            )),
        }
    }

    /// Accepts one item of a Bulk Data `error/` file: each OperationOutcome
    /// issue is reported (severity and code only: diagnostics may name patients).
    pub fn accept_error(&mut self, item: Item<'_>) {
        let Item::Resource { text, location, .. } = item else {
            return self.accept(item);
        };
        let outcome: Option<SideOutcome> = serde_json::from_str(text).ok();
        let Some(outcome) = outcome.filter(|o| o.resource_type == "OperationOutcome") else {
            let msg = "an error/ file holds something other than an OperationOutcome";
            return self.issues.push(Issue::new(
                Severity::Warning,
                IssueCode::ExportError,
                location.to_string(),
                msg,
            ));
        };
        for i in outcome.issue {
            let msg = format!(
                "the server reported an export error: severity {}, code {}",
                i.severity, i.code
            );
            self.issues.push(Issue::new(
                Severity::Warning,
                IssueCode::ExportError,
                location.to_string(),
                msg,
            ));
        }
    }
}

#[derive(serde::Deserialize)]
struct SideRecord {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    entry: Vec<SideEntry>,
}

#[derive(serde::Deserialize)]
struct SideEntry {
    #[serde(default)]
    request: Option<SideRequest>,
    #[serde(default)]
    resource: Option<SideRecordLite>,
}

#[derive(serde::Deserialize)]
struct SideRequest {
    #[serde(default)]
    url: Option<String>,
}

#[derive(serde::Deserialize)]
struct SideRecordLite {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(serde::Deserialize)]
struct SideOutcome {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    issue: Vec<SideIssue>,
}

#[derive(serde::Deserialize)]
struct SideIssue {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    code: String,
}

/// Which kind of side file.
#[derive(Clone, Copy)]
pub(in crate::pipeline) enum Side {
    Deleted,
    Error,
}

pub(in crate::pipeline) fn read_side_file(path: &std::path::Path, collector: &mut Collector<'_>, side: Side) {
    let name: Arc<str> = path.display().to_string().into();
    let gzip = matches!(
        source::format_of(path),
        Some(Format::Json { gzip: true } | Format::Ndjson { gzip: true })
    );
    let reader = match source::open(path, gzip, |_| {}) {
        Ok(r) => r,
        Err(e) => {
            let issue = Issue::new(
                Severity::Error,
                IssueCode::UnreadableFile,
                name.to_string(),
                format!("cannot open: {e}"),
            );
            return collector.issue(issue);
        }
    };
    let mut accept = |item: Item<'_>| match side {
        Side::Deleted => collector.accept_deleted(item),
        Side::Error => collector.accept_error(item),
    };
    if let Err(e) = source::read_ndjson(name.clone(), reader, &mut accept) {
        let issue = Issue::new(
            Severity::Error,
            IssueCode::UnreadableFile,
            name.to_string(),
            format!("read failed part-way: {e}"),
        );
        collector.issue(issue);
    }
}
