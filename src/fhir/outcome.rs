//! Issues → FHIR OperationOutcome.

use serde_json::{json, Value};

use crate::report::{Issue, Severity};

/// The OperationOutcome for a list of issues (an `information` "all OK" issue when empty).
pub fn operation_outcome<'a>(issues: impl IntoIterator<Item = &'a Issue>) -> Value {
    let mut list: Vec<Value> = issues.into_iter().map(outcome_issue).collect();
    if list.is_empty() {
        list.push(json!({"severity": "information", "code": "informational", "diagnostics": "no issues"}));
    }
    json!({"resourceType": "OperationOutcome", "issue": list})
}

fn outcome_issue(issue: &Issue) -> Value {
    let severity = match issue.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Information => "information",
    };
    let mut v = json!({
        "severity": severity,
        "code": "processing",
        "details": {"coding": [{"system": "https://imnm-fhir.org/fhir/CodeSystem/imnm-issue", "code": serde_json::to_value(issue.code).unwrap_or(Value::Null)}], "text": issue.message},
        "diagnostics": issue.location,
    });
    if let Some(path) = &issue.fhir_path {
        v["expression"] = json!([path]);
    }
    v
}
