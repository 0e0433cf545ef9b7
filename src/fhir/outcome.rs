//! Issues → FHIR OperationOutcome: the one builder, for every list of
//! [`Issue`]s (`imnm validate`'s output, a cohort run's issues, a verify).
//!
//! Each issue becomes one `OperationOutcome.issue`: `severity`; `code` (the
//! FHIR issue type) from [`issue_type`]'s table; `details.coding` with the
//! stable [`IssueCode`] name in its CodeSystem ([`code_system`]) and the
//! message as `details.text`; the location as `diagnostics`; the FHIR path,
//! when there is one, as `expression`.

use serde_json::{json, Value};

use crate::report::{Issue, IssueCode};

/// The CodeSystem of the profile validation codes (the constraint a finding is about).
pub const VALIDATION_RULE_SYSTEM: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-validation-rule";

/// The CodeSystem of every other code (data issues, study bundle checks).
pub const ISSUE_SYSTEM: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-issue";

/// The OperationOutcome for a list of issues. When the list is empty it holds
/// one `information` issue whose diagnostics are `all_clear` (e.g. "12 resource(s) valid").
pub fn operation_outcome<'a>(issues: impl IntoIterator<Item = &'a Issue>, all_clear: &str) -> Value {
    let mut list: Vec<Value> = issues.into_iter().map(outcome_issue).collect();
    if list.is_empty() {
        list.push(json!({"severity": "information", "code": "informational", "diagnostics": all_clear}));
    }
    json!({"resourceType": "OperationOutcome", "issue": list})
}

fn outcome_issue(issue: &Issue) -> Value {
    let mut v = json!({
        "severity": issue.severity.as_str(),
        "code": issue_type(issue.code),
        "details": {
            "coding": [{"system": code_system(issue.code), "code": issue.code.as_str()}],
            "text": issue.message,
        },
        "diagnostics": issue.location.to_string(),
    });
    if let Some(path) = &issue.fhir_path {
        v["expression"] = json!([path]);
    }
    v
}

/// The CodeSystem a code belongs to: [`VALIDATION_RULE_SYSTEM`] for the
/// profile validation codes, [`ISSUE_SYSTEM`] for the rest.
pub fn code_system(code: IssueCode) -> &'static str {
    use IssueCode as C;
    match code {
        C::Cardinality
        | C::Type
        | C::Fixed
        | C::Pattern
        | C::Binding
        | C::Reference
        | C::Format
        | C::UnknownElement
        | C::Profile
        | C::Structure => VALIDATION_RULE_SYSTEM,
        _ => ISSUE_SYSTEM,
    }
}

/// The FHIR issue type (`OperationOutcome.issue.code`,
/// <http://hl7.org/fhir/R4/valueset-issue-type.html>) of a code.
pub fn issue_type(code: IssueCode) -> &'static str {
    use IssueCode as C;
    match code {
        C::MalformedJson
        | C::InvalidUtf8
        | C::NotAResource
        | C::ParseError
        | C::ParsedLeniently
        | C::UnknownElement
        | C::Structure
        | C::Type => "structure",
        C::UnknownCode | C::Binding => "code-invalid",
        C::UnitNotConvertible | C::BadDate | C::Fixed | C::Pattern | C::Reference | C::Format => "value",
        C::NoCutoff => "processing",
        C::DanglingReference | C::MissingFile => "not-found",
        C::MissingSubject | C::MissingValue | C::MissingId | C::Cardinality => "required",
        C::UnreadableFile | C::ExportError => "exception",
        C::Duplicate => "duplicate",
        C::Deleted => "deleted",
        C::Superseded | C::EntryWithoutResource | C::ExcludedStatus => "informational",
        C::Comparator | C::BadCell => "value",
        C::BadRow => "structure",
        C::Profile | C::UnreadAttachment => "not-supported",
        C::UncertainText => "informational",
        C::ConflictingText | C::LinkConflict => "business-rule",
        C::HashMismatch
        | C::UnlistedFile
        | C::CountMismatch
        | C::UnshiftedDate
        | C::DateWithTime
        | C::BirthDateTooPrecise
        | C::DateOutsideShift
        | C::DateNotInBundle
        | C::DateInSummary => "business-rule",
        C::EmailAddress | C::PhoneNumber | C::SourceIdentifier => "security",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Location, Severity};

    #[test]
    fn issues_become_outcome_issues_with_their_stable_code_and_location() {
        let issues = [
            Issue::new(
                Severity::Warning,
                IssueCode::UnknownCode,
                "obs.ndjson:4",
                "code not in the value set",
            )
            .at("Observation.code"),
            Issue::new(
                Severity::Error,
                IssueCode::Format,
                Location::new("b.json#entry[0]").in_resource("Patient/p1"),
                "not a FHIR date",
            )
            .at("Patient.birthDate")
            .by("imnm-patient"),
            Issue::new(
                Severity::Error,
                IssueCode::HashMismatch,
                "cohort.csv",
                "SHA-256 differs",
            ),
        ];
        let expected = json!({"resourceType": "OperationOutcome", "issue": [
            {
                "severity": "warning",
                "code": "code-invalid",
                "details": {"coding": [{"system": ISSUE_SYSTEM, "code": "unknown-code"}], "text": "code not in the value set"},
                "diagnostics": "obs.ndjson:4",
                "expression": ["Observation.code"],
            },
            {
                "severity": "error",
                "code": "value",
                "details": {"coding": [{"system": VALIDATION_RULE_SYSTEM, "code": "format"}], "text": "not a FHIR date"},
                "diagnostics": "Patient/p1 (b.json#entry[0])",
                "expression": ["Patient.birthDate"],
            },
            {
                "severity": "error",
                "code": "business-rule",
                "details": {"coding": [{"system": ISSUE_SYSTEM, "code": "hash-mismatch"}], "text": "SHA-256 differs"},
                "diagnostics": "cohort.csv",
            },
        ]});
        let got = operation_outcome(&issues, "unused");
        assert_eq!(got.to_string(), expected.to_string(), "same keys in the same order");
    }

    #[test]
    fn no_issues_is_one_information_issue() {
        assert_eq!(
            operation_outcome(&[], "3 resource(s) valid").to_string(),
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"3 resource(s) valid"}]}"#
        );
    }
}
