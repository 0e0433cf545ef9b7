//! `imnm export --verify DIR`: re-checks a study bundle's hashes and counts,
//! scans every file for identifier-shaped content and checks its dates
//! against the date-shift rules ([`super::datecheck`]). Its findings are
//! [`Issue`]s of the one finding model ([`crate::report`]): a code, the file
//! and line, the check as the rule, and a message that never holds the content found.

use std::collections::BTreeMap;
use std::path::Path;

use super::manifest::{list_files, Manifest};
use super::scan::{scan_line, SourceTerms};
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
    verify_with(dir, terms, |_| {})
}

/// As [`verify`], handing each `bundle.json` entry's resource text to `entry`
/// in order (merge's recount), in the one pass that counts and date-checks them.
pub(super) fn verify_with(
    dir: &Path,
    terms: Option<&SourceTerms>,
    mut entry: impl FnMut(&str),
) -> Result<VerifyReport, ExportError> {
    let manifest = Manifest::read(dir)?;
    let mut report = VerifyReport::default();
    let present = list_files(dir)?;
    for (name, expected) in &manifest.files {
        match crate::deid::key::sha256_file(&dir.join(name)) {
            Ok(hash) if hash == *expected => {}
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
    let rules = crate::deid::DeidRules::builtin()?;
    let dates = super::datecheck::DateRules {
        elements: &rules.date_elements,
        source: terms.map(|t| &t.dates),
    };
    let mut date_check = super::datecheck::Check::new(&dates, dir, &manifest);
    // The entries' date findings come after the count findings.
    let mut entry_dates = VerifyReport::default();
    let mut in_bundle: BTreeMap<String, u64> = BTreeMap::new();
    let readable = super::for_each_entry(&dir.join("bundle.json"), |text, r| {
        if let Some(t) = r.get("resourceType").and_then(crate::deid::json::Json::as_str) {
            *in_bundle.entry(t.to_string()).or_default() += 1;
        }
        date_check.entry(&manifest, text, r, &mut entry_dates);
        entry(text);
    });
    check_counts(dir, &manifest, readable.then_some(&in_bundle), &mut report);
    report.findings.append(&mut entry_dates.findings);
    // An unreadable Bundle was reported by the count check, missing or
    // unreadable files by the hash and count checks.
    date_check.rest(dir, &manifest, &mut report);
    for name in &present {
        report.files += 1;
        let mut found = Vec::new();
        // An unreadable file was reported by the hash check.
        let _ = super::for_each_line(&dir.join(name), |n, line| scan_line(n, line, terms, &mut found));
        for (line, code, kind) in found {
            report.add("scan", name, Some(line), code, kind);
        }
    }
    Ok(report)
}

/// Checks the counts of `bundle.json` (`None`: not a readable Bundle) and of
/// the NDJSON files against the manifest.
fn check_counts(dir: &Path, manifest: &Manifest, in_bundle: Option<&BTreeMap<String, u64>>, report: &mut VerifyReport) {
    let Some(in_bundle) = in_bundle else {
        return report.add(
            "counts",
            "bundle.json",
            None,
            IssueCode::UnreadableFile,
            "not a readable JSON Bundle",
        );
    };
    if *in_bundle != manifest.resource_counts {
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
        let mut lines = 0u64;
        let _ = super::for_each_line(&dir.join(&name), |_, l| lines += u64::from(!l.trim().is_empty()));
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
