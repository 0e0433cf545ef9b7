//! `imnm export --verify DIR`: re-checks a study bundle's hashes and counts,
//! scans every file for identifier-shaped content and checks its dates
//! against the date-shift rules ([`super::datecheck`]). Its findings are
//! [`Issue`]s of the one finding model ([`crate::report`]): a code, the file
//! and line, the check as the rule, and a message that never holds the content found.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::manifest::{list_files, Manifest};
use super::scan::{scan_text, SourceTerms};
use super::ExportError;
use crate::report::{Issue, IssueCode, Location, Severity};

/// The result of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files checked.
    pub files: usize,
    /// Everything wrong, each an error [`Issue`] located at the file (and its
    /// line when in the text) with the check that found it as its rule
    /// (`manifest`, `counts`, `dates`, `scan`); displayed `file:line: message`.
    /// Never the content found.
    pub findings: Vec<Issue>,
}

impl VerifyReport {
    /// True when nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    pub(super) fn add(
        &mut self,
        check: &str,
        file: &str,
        line: Option<usize>,
        code: IssueCode,
        message: impl Into<String>,
    ) {
        let issue = Issue::new(Severity::Error, code, Location::line(file, line), message).by(check);
        self.findings.push(issue);
    }
}

/// Verifies the bundle in `dir`; `terms` (from the original input) adds the
/// source identifier, name and birth-date scan.
pub fn verify(dir: &Path, terms: Option<&SourceTerms>) -> Result<VerifyReport, ExportError> {
    let manifest = Manifest::read(dir)?;
    let mut report = VerifyReport::default();
    let present = list_files(dir)?;
    for (name, expected) in &manifest.files {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) if crate::deid::key::sha256_hex(&bytes) == *expected => {}
            Ok(_) => report.add(
                "manifest",
                name,
                None,
                IssueCode::HashMismatch,
                "SHA-256 differs from the manifest (file altered)",
            ),
            Err(_) => report.add(
                "manifest",
                name,
                None,
                IssueCode::MissingFile,
                "listed in the manifest but missing",
            ),
        }
    }
    for name in &present {
        if name != "manifest.json" && !manifest.files.contains_key(name) {
            report.add(
                "manifest",
                name,
                None,
                IssueCode::UnlistedFile,
                "file not listed in the manifest",
            );
        }
    }
    check_counts(dir, &manifest, &mut report);
    let rules = crate::deid::DeidRules::builtin()?;
    let dates = super::datecheck::DateRules {
        elements: &rules.date_elements,
        source: terms.map(|t| &t.dates),
    };
    super::datecheck::check(dir, &manifest, &dates, &mut report);
    for name in &present {
        report.files += 1;
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (line, code, kind) in scan_text(&text, terms) {
            report.add("scan", name, Some(line), code, kind);
        }
    }
    Ok(report)
}

fn check_counts(dir: &Path, manifest: &Manifest, report: &mut VerifyReport) {
    let mut in_bundle: BTreeMap<String, u64> = BTreeMap::new();
    let bundle = std::fs::read_to_string(dir.join("bundle.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let Some(bundle) = bundle else {
        return report.add(
            "counts",
            "bundle.json",
            None,
            IssueCode::UnreadableFile,
            "not a readable JSON Bundle",
        );
    };
    for e in bundle["entry"].as_array().into_iter().flatten() {
        if let Some(t) = e["resource"]["resourceType"].as_str() {
            *in_bundle.entry(t.to_string()).or_default() += 1;
        }
    }
    if in_bundle != manifest.resource_counts {
        report.add(
            "counts",
            "bundle.json",
            None,
            IssueCode::CountMismatch,
            "resource counts differ from the manifest",
        );
    }
    for (t, n) in &manifest.resource_counts {
        let name = format!("ndjson/{t}.ndjson");
        let lines = std::fs::read_to_string(dir.join(&name))
            .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count() as u64)
            .unwrap_or(0);
        if lines != *n {
            report.add(
                "counts",
                &name,
                None,
                IssueCode::CountMismatch,
                "resource count differs from the manifest",
            );
        }
    }
}
