//! Condition → IMNM diagnosis (case selection), differential diagnoses, and
//! findings coded as problems (e.g. Gottron's papules as L94.4).

use super::{coding_in, concept_matches, first_code, texts, Ctx, Prim};
use crate::domain::{DiagnosisFact, DiagnosisKind, Fact, FactValue, Onset, OnsetElement};
use crate::fhir::model::resources::{Condition, ConditionOnset};
use crate::fhir::model::types::CodeableConcept;
use crate::mapping::RuleKind;
use crate::report::{IssueCode, Severity};

/// The extension stating the onset age in completed years.
pub const ONSET_AGE_URL: &str = "https://imnm-fhir.org/fhir/StructureDefinition/onset-age-years";

const VER_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";

/// Reads a Condition.
pub fn read(c: &Condition, ctx: &mut Ctx<'_>) {
    ctx.subject(Some(&c.subject), "Condition.subject");
    let Some(code) = c.code.as_deref() else { return };
    let verification = c
        .verification_status
        .as_deref()
        .and_then(|v| status_code(v, VER_SYSTEM));
    if let Some(v) = &verification {
        if ctx.excluded("Condition_verification", Some(v), || {
            "Condition.verificationStatus".into()
        }) {
            return;
        }
    }
    read_findings(c, code, ctx);
    let Some((kind, coded)) = diagnosis_kind(code, ctx) else {
        return;
    };
    let onset = onset(c, ctx);
    let recorded = ctx.date(c.recorded_date.v(), "Condition.recordedDate");
    let clinical = c
        .clinical_status
        .as_deref()
        .and_then(|s| status_code(s, "http://terminology.hl7.org/CodeSystem/condition-clinical"));
    let remission = matches!(clinical.as_deref(), Some("remission") | Some("resolved"));
    let source = ctx.out.source.clone();
    let age_years = super::extension_integer(&c.extension, ONSET_AGE_URL).and_then(|v| u32::try_from(v).ok());
    ctx.out.diagnoses.push(DiagnosisFact {
        kind,
        code: coded,
        age_years,
        onset,
        recorded,
        remission,
        source,
        text: None,
    });
}

fn diagnosis_kind(code: &CodeableConcept, ctx: &Ctx<'_>) -> Option<(DiagnosisKind, String)> {
    let d = &ctx.m.diagnosis;
    if let Some(c) = coding_in(ctx.m, d.valueset, code) {
        return Some((DiagnosisKind::Qualifying, c));
    }
    if let Some(c) = coding_in(ctx.m, d.parent, code) {
        let named = texts(code).any(|t| ctx.m.valuesets[d.text].matches_text(t));
        return Some((
            if named {
                DiagnosisKind::ParentWithText
            } else {
                DiagnosisKind::ParentOnly
            },
            c,
        ));
    }
    if let Some(c) = coding_in(ctx.m, d.differential, code) {
        return Some((DiagnosisKind::Differential, c));
    }
    let named = texts(code).any(|t| ctx.m.valuesets[d.text].matches_text(t));
    named.then(|| (DiagnosisKind::TextOnly, super::first_code(code)))
}

fn onset(c: &Condition, ctx: &mut Ctx<'_>) -> Option<Onset> {
    match c.onset.as_ref()? {
        ConditionOnset::DateTime(dt) => ctx
            .date(dt.v(), "Condition.onsetDateTime")
            .map(|d| Onset::Date(d, OnsetElement::DateTime)),
        ConditionOnset::Period(p) => ctx
            .date(p.start.v(), "Condition.onsetPeriod.start")
            .map(|d| Onset::Date(d, OnsetElement::PeriodStart)),
        ConditionOnset::Age(age) => {
            let value = super::decimal(&age.value);
            let factor = match age.code.v().or(age.unit.v()).map(str::trim) {
                Some("a") | Some("yr") | Some("year") | Some("years") | Some("y") => Some(1.0),
                Some("mo") | Some("month") | Some("months") => Some(1.0 / 12.0),
                Some("wk") | Some("week") | Some("weeks") => Some(7.0 / 365.25),
                Some("d") | Some("day") | Some("days") => Some(1.0 / 365.25),
                None => Some(1.0),
                Some(_) => None,
            };
            match (value, factor) {
                (Some(v), Some(f)) if v >= 0.0 => Some(Onset::Age(v * f)),
                (None, _) => {
                    ctx.issue(
                        Severity::Warning,
                        IssueCode::MissingValue,
                        "Condition.onsetAge.value",
                        "onsetAge without a numeric value",
                    );
                    None
                }
                _ => {
                    ctx.issue(
                        Severity::Warning,
                        IssueCode::UnitNotConvertible,
                        "Condition.onsetAge.code",
                        "onsetAge unit is not a/mo/wk/d",
                    );
                    None
                }
            }
        }
        ConditionOnset::Range(_) | ConditionOnset::String(_) | ConditionOnset::Invalid => None,
    }
}

fn read_findings(c: &Condition, code: &CodeableConcept, ctx: &mut Ctx<'_>) {
    let date = match c.onset.as_ref() {
        Some(ConditionOnset::DateTime(dt)) => dt.v().and_then(|s| crate::domain::FhirDate::parse(s).ok()),
        _ => None,
    };
    for (i, rule) in ctx.m.rules.iter().enumerate() {
        if let RuleKind::Finding { valueset } = rule.kind {
            if concept_matches(ctx.m, valueset, code) {
                let source = ctx.out.source.clone();
                let detail = format!("Condition.code {}", first_code(code));
                ctx.out.facts.push(Fact {
                    rule: i,
                    value: FactValue::Present(true),
                    date,
                    source,
                    code: first_code(code),
                    detail,
                    via: None,
                    evidence: Default::default(),
                    text: None,
                    via_text: None,
                });
            }
        }
    }
}

/// The code of a status CodeableConcept: a coding of `system` (or with no
/// system), else the text.
pub fn status_code(cc: &CodeableConcept, system: &str) -> Option<String> {
    cc.coding
        .iter()
        .find(|c| c.system.v().is_none_or(|s| s == system))
        .and_then(|c| c.code.v())
        .or(cc.text.v())
        .map(|s| s.trim().to_ascii_lowercase())
}
