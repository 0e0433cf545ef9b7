//! The R4 search parameters the mock knows, per resource type: which exist
//! and which elements a token parameter searches. Vendors narrow this
//! (`vendor`), searches use it (`search`).

/// Whether a search parameter exists for a type here.
pub fn applies(param: &str, rtype: &str) -> bool {
    match param {
        "patient" | "subject" => !matches!(
            rtype,
            "Patient" | "Medication" | "Organization" | "Practitioner" | "Group" | "Location"
        ),
        "code" | "category" => !token_fields(param, rtype).is_empty(),
        _ => false,
    }
}

/// The elements a token parameter (`code`, `category`) searches on a type.
pub fn token_fields(param: &str, rtype: &str) -> &'static [&'static str] {
    match (param, rtype) {
        ("code", "Observation" | "Condition" | "Procedure" | "Medication" | "DiagnosticReport") => &["code"],
        ("code", "MedicationRequest" | "MedicationStatement" | "MedicationAdministration" | "MedicationDispense") => {
            &["medicationCodeableConcept"]
        }
        (
            "category",
            "Observation"
            | "Condition"
            | "MedicationRequest"
            | "MedicationStatement"
            | "DiagnosticReport"
            | "DocumentReference",
        ) => &["category"],
        _ => &[],
    }
}
