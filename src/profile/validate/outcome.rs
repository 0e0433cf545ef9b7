//! Validation findings as data: the report, its OperationOutcome and a summary.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::report::Severity;

/// Which kind of constraint a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// min / max, or an array where one value belongs.
    Cardinality,
    /// A type the element does not allow.
    Type,
    /// A `fixed[x]` value.
    Fixed,
    /// A `pattern[x]` value.
    Pattern,
    /// A required binding.
    Binding,
    /// A Reference to a resource type or profile the element does not allow.
    Reference,
    /// A primitive's lexical form (dates, ids, codes, …).
    Format,
    /// An element the definition does not have.
    UnknownElement,
    /// An unknown profile or extension.
    Profile,
    /// JSON structure (arrays, objects) and the FHIR parser's verdict.
    Structure,
}

impl Rule {
    /// The rule's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Cardinality => "cardinality",
            Rule::Type => "type",
            Rule::Fixed => "fixed",
            Rule::Pattern => "pattern",
            Rule::Binding => "binding",
            Rule::Reference => "reference",
            Rule::Format => "format",
            Rule::UnknownElement => "unknown-element",
            Rule::Profile => "profile",
            Rule::Structure => "structure",
        }
    }

    fn issue_type(self) -> &'static str {
        match self {
            Rule::Cardinality => "required",
            Rule::Binding => "code-invalid",
            Rule::UnknownElement | Rule::Structure | Rule::Type => "structure",
            Rule::Profile => "not-supported",
            Rule::Fixed | Rule::Pattern | Rule::Reference | Rule::Format => "value",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// `Type/id` of the resource.
    pub resource: String,
    /// Where in the input (`file#entry[2]`, `file:3`).
    pub location: String,
    /// FHIRPath of the element (`Observation.valueQuantity.unit`).
    pub expression: String,
    /// The constraint.
    pub rule: Rule,
    /// What is wrong (never a value of the resource).
    pub message: String,
}

/// Every finding of a validation run, and what was checked.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    /// The findings, in input order.
    pub findings: Vec<Finding>,
    /// Resources checked per profile id (`R4 base` when none applied).
    pub checked: BTreeMap<String, usize>,
}

impl ValidationReport {
    /// Adds a finding.
    pub fn push(&mut self, f: Finding) {
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

    /// The report as a FHIR OperationOutcome.
    pub fn operation_outcome(&self) -> Value {
        let mut issues: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "severity": severity(f.severity),
                    "code": f.rule.issue_type(),
                    "details": {
                        "coding": [{"system": "https://imnm-fhir.org/fhir/CodeSystem/imnm-validation-rule", "code": f.rule.as_str()}],
                        "text": f.message,
                    },
                    "diagnostics": format!("{} ({})", f.resource, f.location),
                    "expression": [f.expression],
                })
            })
            .collect();
        if issues.is_empty() {
            let n: usize = self.checked.values().sum();
            issues.push(json!({"severity": "information", "code": "informational", "diagnostics": format!("{n} resource(s) valid")}));
        }
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }

    /// A readable summary: one line per finding, then the counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!(
                "{} {} {} [{}] {} ({})\n",
                severity(f.severity),
                f.resource,
                f.expression,
                f.rule.as_str(),
                f.message,
                f.location
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

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Information => "information",
    }
}
