//! Findings read from report and note text, carried into a study bundle as
//! coded Observations. The de-identification rules keep no free text (no
//! `conclusion`, `presentedForm` or DocumentReference), so a cell that came
//! only from text would otherwise be lost when the bundle's tables are
//! recomputed: each becomes an Observation of the finding's value set's first
//! code with `valueBoolean` (an MRI cell: one per part), for the case's
//! Patient, which then goes through de-identification like every resource.
//! Nothing of the text goes with it.

use std::collections::BTreeMap;

use serde_json::json;

use crate::cohort::{resource_of, Cohort};
use crate::domain::SourceRef;
use crate::mapping::{MappingSet, RuleKind};

/// The resource types text findings come from.
const TEXT_TYPES: &[&str] = &["DiagnosticReport/", "DocumentReference/"];

/// Observations for every finding or MRI cell whose sources are all reports
/// or notes read as text, keyed as `Observation/text-…`.
pub(super) fn text_findings(cohort: &Cohort, m: &MappingSet) -> std::io::Result<BTreeMap<SourceRef, String>> {
    let mut out = BTreeMap::new();
    cohort.provenance.try_for_each(|p| {
        let from_text = !p.sources.is_empty()
            && p.sources
                .iter()
                .all(|s| TEXT_TYPES.iter().any(|t| resource_of(s).starts_with(t)));
        if !from_text || p.patient_id.contains('+') {
            return Ok::<_, std::io::Error>(());
        }
        let Some(column) = m.dictionary.index(p.column) else { return Ok(()) };
        let Some((_, rule)) = m.rule_for(column) else { return Ok(()) };
        for (part, vs, present) in parts(&rule.kind, p.value) {
            let Some((system, code)) = m.valuesets.get(vs).and_then(|v| v.codes.first()) else { continue };
            let id = format!("text-{}-{}{part}", p.patient_id, rule.id);
            let category = m.dictionary.columns[column].fhir.as_ref().and_then(|f| f.category.clone());
            let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": {"reference": format!("Patient/{}", p.patient_id)},
                "valueBoolean": present});
            if let Some(c) = category {
                o["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": c}]}]);
            }
            out.insert(SourceRef::new("Observation", id), o.to_string());
        }
        Ok(())
    })?;
    Ok(out)
}

/// `(id suffix, value set, present)` for each Observation a cell's value makes.
fn parts(kind: &RuleKind, value: &str) -> Vec<(&'static str, usize, bool)> {
    match kind {
        RuleKind::Finding { valueset } => match value {
            "yes" => vec![("", *valueset, true)],
            "no" => vec![("", *valueset, false)],
            _ => vec![],
        },
        RuleKind::Mri { edema, fatty } => {
            let (e, f) = match value {
                "edema" => (true, false),
                "fatty" => (false, true),
                "edema_and_fatty" => (true, true),
                "normal" => (false, false),
                _ => return vec![],
            };
            vec![("-edema", *edema, e), ("-fatty", *fatty, f)]
        }
        _ => vec![],
    }
}
