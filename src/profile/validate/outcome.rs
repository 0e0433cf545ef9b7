//! A validation run's findings ([`Issue`]s with a validation [`IssueCode`]),
//! what was checked, its OperationOutcome (through the one builder,
//! [`crate::fhir::outcome::operation_outcome`]) and its readable summary.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::report::{Issue, Severity};

/// Every finding of a validation run, and what was checked.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    /// The findings, in input order. Each has a validation code (the kind of
    /// constraint: `cardinality`, `binding`, …), a location naming the
    /// resource (`Type/id`) and where it is in the input (`file#entry[2]`,
    /// `file:3`), the FHIRPath of the element, and the profile checked as its rule.
    pub findings: Vec<Issue>,
    /// Resources checked per profile id (`R4 base` when none applied).
    pub checked: BTreeMap<String, usize>,
}

impl ValidationReport {
    /// Adds a finding.
    pub fn push(&mut self, f: Issue) {
        self.findings.push(f);
    }

    /// Counts one resource checked against `profile`.
    pub fn count(&mut self, profile: &str) {
        *self.checked.entry(profile.to_string()).or_default() += 1;
    }

    /// Number of findings of severity error.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }

    /// The report as a FHIR OperationOutcome ("N resource(s) valid" when nothing was found).
    pub fn operation_outcome(&self) -> Value {
        let n: usize = self.checked.values().sum();
        crate::fhir::outcome::operation_outcome(&self.findings, &format!("{n} resource(s) valid"))
    }

    /// A readable summary: one line per finding
    /// (`severity Type/id expression [code] message (input location)`), then the counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!(
                "{} {} {} [{}] {} ({})\n",
                f.severity.as_str(),
                f.location.resource.as_deref().unwrap_or("(resource)"),
                f.fhir_path.as_deref().unwrap_or("(resource)"),
                f.code,
                f.message,
                f.location.input
            ));
        }
        let n: usize = self.checked.values().sum();
        let by: Vec<String> = self.checked.iter().map(|(p, c)| format!("{p} {c}")).collect();
        let warnings = self.findings.iter().filter(|f| f.severity == Severity::Warning).count();
        out.push_str(&format!(
            "{n} resource(s) checked ({}); {} error(s), {warnings} warning(s)\n",
            by.join(", "),
            self.errors()
        ));
        out
    }
}
