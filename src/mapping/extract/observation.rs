//! Observation → CK peak, antibodies, clinical findings, MRI, outcome.

use super::{codings, concept_matches, decimal, first_code, texts, Ctx, Prim};
use crate::domain::facts::MriPart;
use crate::domain::{AntibodyStatus, Fact, FactValue, FhirDate, Outcome};
use crate::fhir::model::resources::{Observation, ObservationEffective, ObservationValue};
use crate::fhir::model::types::{CodeableConcept, Quantity};
use crate::mapping::{MappingSet, RuleKind};
use crate::report::{IssueCode, Severity};

/// The extension of a case report's CK peak: how many results it summarises.
pub const RESULT_COUNT_URL: &str = "https://imnm-fhir.org/fhir/StructureDefinition/ck-result-count";

const UCUM: &str = "http://unitsofmeasure.org";

/// Reads an Observation: every rule whose value set holds its code gets a fact.
pub fn read(o: &Observation, ctx: &mut Ctx<'_>) {
    if ctx
        .m
        .statuses
        .excludes("Observation", o.status.v().unwrap_or("").trim())
    {
        return;
    }
    ctx.subject(o.subject.as_deref(), "Observation.subject");
    if ctx.out.subject.is_none() {
        return;
    }
    let date = effective(o, ctx);
    let m = ctx.m;
    for (i, rule) in m.rules.iter().enumerate() {
        let value = match rule.kind {
            RuleKind::LabPeak { valueset, quantity } if concept_matches(m, valueset, &o.code) => lab(o, quantity, ctx),
            RuleKind::Antibody { valueset } if concept_matches(m, valueset, &o.code) => antibody(o, valueset, ctx),
            RuleKind::Finding { valueset } if concept_matches(m, valueset, &o.code) => {
                yes_no(o, ctx).map(|(v, d)| (FactValue::Present(v), d))
            }
            RuleKind::Mri { edema, fatty } => {
                let part = if concept_matches(m, edema, &o.code) {
                    MriPart::Edema
                } else if concept_matches(m, fatty, &o.code) {
                    MriPart::Fatty
                } else {
                    continue;
                };
                yes_no(o, ctx).map(|(v, d)| (FactValue::Mri(part, v), d))
            }
            RuleKind::Outcome {
                valueset,
                complete,
                partial,
                none,
            } if concept_matches(m, valueset, &o.code) => outcome(o, [complete, partial, none], ctx),
            _ => continue,
        };
        if let Some((value, detail)) = value {
            let source = ctx.out.source.clone();
            ctx.out.facts.push(Fact {
                rule: i,
                value,
                date,
                source,
                code: first_code(&o.code),
                detail,
                via: None,
            });
        }
    }
}

fn effective(o: &Observation, ctx: &mut Ctx<'_>) -> Option<FhirDate> {
    match &o.effective {
        Some(ObservationEffective::DateTime(d)) => ctx.date(d.v(), "Observation.effectiveDateTime"),
        Some(ObservationEffective::Period(p)) => ctx.date(p.start.v(), "Observation.effectivePeriod.start"),
        Some(ObservationEffective::Instant(i)) => ctx.date(i.v(), "Observation.effectiveInstant"),
        _ => ctx.date(o.issued.v(), "Observation.issued"),
    }
}

fn quantity_units(q: &Quantity) -> (Option<&str>, Option<&str>) {
    let ucum = match q.system.v() {
        Some(s) if s.trim() == UCUM || s.trim() == "urn:oid:2.16.840.1.113883.6.8" => q.code.v(),
        None => q.code.v(),
        _ => None,
    };
    (ucum, q.unit.v())
}

/// A lab result's number as read: from `valueQuantity`, or from a number
/// sent as text (`valueString`, its unit from the text or else from the
/// reference range).
struct LabValue<'o> {
    value: f64,
    comparator: Option<String>,
    ucum: Option<&'o str>,
    unit_text: Option<String>,
    /// The element read and its raw value, for provenance.
    raw: String,
    /// The FHIR path an unusable unit is reported at.
    unit_path: &'static str,
}

fn lab_value<'o>(o: &'o Observation, ctx: &mut Ctx<'_>) -> Option<LabValue<'o>> {
    match &o.value {
        Some(ObservationValue::Quantity(q)) => {
            let Some(value) = decimal(&q.value) else {
                let msg = "valueQuantity without a numeric value; not counted";
                ctx.issue(
                    Severity::Warning,
                    IssueCode::MissingValue,
                    "Observation.valueQuantity.value",
                    msg,
                );
                return None;
            };
            let (ucum, text) = quantity_units(q);
            let comparator = q.comparator.v().map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
            let raw = format!("{}{}", comparator.as_deref().unwrap_or(""), q.value.v().unwrap_or(""));
            Some(LabValue {
                value,
                comparator,
                ucum,
                unit_text: text.map(str::to_string),
                raw,
                unit_path: "Observation.valueQuantity.unit",
            })
        }
        Some(ObservationValue::String(s)) => {
            let text = s.v().unwrap_or("");
            let Some(n) = super::numeric::parse(text) else {
                let msg = "valueString is not one number (with an optional comparator and unit); not counted";
                ctx.issue(
                    Severity::Warning,
                    IssueCode::MissingValue,
                    "Observation.valueString",
                    msg,
                );
                return None;
            };
            let range_unit = o.reference_range.iter().find_map(|r| {
                let q = r.low.as_deref().or(r.high.as_deref())?;
                let (ucum, text) = quantity_units(q);
                ucum.or(text).map(str::to_string)
            });
            let raw = format!("valueString {text:?}");
            Some(LabValue {
                value: n.value,
                comparator: n.comparator.map(str::to_string),
                ucum: None,
                unit_text: n.unit.or(range_unit),
                raw,
                unit_path: "Observation.valueString",
            })
        }
        _ => {
            let msg = "lab result without a valueQuantity or a number as text; not counted";
            ctx.issue(Severity::Warning, IssueCode::MissingValue, "Observation.value[x]", msg);
            None
        }
    }
}

fn lab(o: &Observation, quantity: usize, ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let v = lab_value(o, ctx)?;
    let def = &ctx.m.quantities[quantity];
    let Some(factor) = def.factor(v.ucum, v.unit_text.as_deref()) else {
        let unit = v.ucum.or(v.unit_text.as_deref()).unwrap_or("(none)");
        let msg = format!(
            "unit {unit:?} does not convert to {}; result not counted",
            def.canonical
        );
        ctx.issue(Severity::Warning, IssueCode::UnitNotConvertible, v.unit_path, msg);
        return None;
    };
    let unit = v.ucum.or(v.unit_text.as_deref()).unwrap_or("");
    let detail = format!("{} {unit} (x{factor})", v.raw);
    if let Some(c) = &v.comparator {
        // Documented rule: a bounded result counts at its bound, never silently as exact.
        let msg = format!("result {c} a bound: counted at its bound (the peak may be higher or lower)");
        ctx.issue(Severity::Warning, IssueCode::Comparator, "Observation.value[x]", msg);
    }
    match super::extension_integer(&o.extension, RESULT_COUNT_URL).and_then(|n| u32::try_from(n).ok()) {
        Some(count) if count > 1 => Some((
            FactValue::Summary {
                peak: v.value * factor,
                count,
            },
            detail,
        )),
        _ => Some((FactValue::Quantity(v.value * factor), detail)),
    }
}

/// Which answer set a coding or text is in.
fn answer_of(m: &MappingSet, sets: &[(usize, u8)], cc: Option<&CodeableConcept>, text: Option<&str>) -> Option<u8> {
    let by_code = cc.and_then(|cc| {
        codings(cc).find_map(|(s, c)| sets.iter().find(|(vs, _)| m.in_valueset(*vs, s, c)).map(|x| x.1))
    });
    let words = cc.into_iter().flat_map(texts).chain(text);
    by_code.or_else(|| {
        let words: Vec<&str> = words.collect();
        // The most specific wording wins: "not detected" is negative although it contains "detected".
        sets.iter()
            .filter_map(|(vs, k)| {
                words
                    .iter()
                    .filter_map(|w| m.valuesets[*vs].text_match_len(w))
                    .max()
                    .map(|len| (len, *k))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, k)| k)
    })
}

fn antibody(o: &Observation, valueset: usize, ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let a = ctx.m.answers;
    let sets = [(a.positive, 0u8), (a.negative, 1), (a.indeterminate, 2)];
    let status = |k: u8| {
        [
            AntibodyStatus::Positive,
            AntibodyStatus::Negative,
            AntibodyStatus::Indeterminate,
        ][k as usize]
    };
    let interpretation = || {
        o.interpretation
            .iter()
            .find_map(|i| answer_of(ctx.m, &sets, Some(i), None))
    };
    let found = match &o.value {
        Some(ObservationValue::CodeableConcept(cc)) => answer_of(ctx.m, &sets, Some(cc), None)
            .map(|k| (status(k), format!("valueCodeableConcept {}", first_code(cc)))),
        Some(ObservationValue::String(s)) => {
            answer_of(ctx.m, &sets, None, s.v()).map(|k| (status(k), format!("valueString {:?}", s.v().unwrap_or(""))))
        }
        Some(ObservationValue::Boolean(b)) => b.value.map(|v| {
            (
                if v {
                    AntibodyStatus::Positive
                } else {
                    AntibodyStatus::Negative
                },
                format!("valueBoolean {v}"),
            )
        }),
        Some(ObservationValue::Quantity(q)) => {
            let found = cutoff(o, q, valueset, ctx)
                .or_else(|| interpretation().map(|k| (FactValue::Antibody(status(k)), "interpretation".into())));
            if found.is_none() && !o.interpretation.is_empty() {
                let msg = "antibody quantity without a cutoff for its assay and unit, and its interpretation \
                           flag is not a known positive/negative/indeterminate code; not mapped";
                ctx.issue(
                    Severity::Warning,
                    IssueCode::NoCutoff,
                    "Observation.interpretation",
                    msg,
                );
            }
            return found;
        }
        _ => None,
    };
    let found = found.or_else(|| interpretation().map(|k| (status(k), "interpretation".to_string())));
    if found.is_none() {
        ctx.issue(
            Severity::Warning,
            IssueCode::UnknownCode,
            "Observation.value[x]",
            "antibody result is not a known positive/negative/indeterminate value; not mapped",
        );
    }
    found.map(|(s, d)| (FactValue::Antibody(s), d))
}

fn cutoff(o: &Observation, q: &Quantity, valueset: usize, ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let value = decimal(&q.value)?;
    let (ucum, text) = quantity_units(q);
    let unit = crate::mapping::codes::normalize_unit_text(ucum.or(text).unwrap_or(""));
    let m = ctx.m;
    let code_keys: Vec<(usize, String)> = codings(&o.code)
        .filter_map(|(s, c)| Some((m.systems.lookup(s?)?, c?)))
        .map(|(s, c)| (s, m.systems.normalize_code(s, c)))
        .collect();
    let assay = m.assays.iter().find(|a| {
        a.valueset == valueset
            && a.codes.iter().any(|k| code_keys.contains(k))
            && (a.units.is_empty() || a.units.contains(&unit))
    });
    let Some(assay) = assay else {
        if o.interpretation.is_empty() {
            ctx.issue(
                Severity::Warning,
                IssueCode::NoCutoff,
                "Observation.valueQuantity",
                format!("no cutoff in mappings/cutoffs for this assay code and unit {unit:?}; not mapped"),
            );
        }
        return None;
    };
    let status = match q.comparator.v().map(str::trim) {
        Some("<") | Some("<=") if value <= assay.negative_below => AntibodyStatus::Negative,
        Some(">") | Some(">=") if value >= assay.positive_from => AntibodyStatus::Positive,
        _ if value < assay.negative_below => AntibodyStatus::Negative,
        _ if value >= assay.positive_from => AntibodyStatus::Positive,
        _ => AntibodyStatus::Indeterminate,
    };
    let raw = format!(
        "{}{} {}",
        q.comparator.v().unwrap_or(""),
        q.value.v().unwrap_or(""),
        ucum.or(text).unwrap_or("")
    );
    Some((
        FactValue::Antibody(status),
        format!("valueQuantity {raw} by cutoff {}", assay.id),
    ))
}

fn yes_no(o: &Observation, ctx: &mut Ctx<'_>) -> Option<(bool, String)> {
    let a = ctx.m.answers;
    let sets = [(a.yes, 1u8), (a.no, 0u8)];
    let found = match &o.value {
        Some(ObservationValue::Boolean(b)) => b.value.map(|v| (v, format!("valueBoolean {v}"))),
        Some(ObservationValue::CodeableConcept(cc)) => answer_of(ctx.m, &sets, Some(cc), None)
            .map(|k| (k == 1, format!("valueCodeableConcept {}", first_code(cc)))),
        Some(ObservationValue::String(s)) => {
            answer_of(ctx.m, &sets, None, s.v()).map(|k| (k == 1, "valueString".to_string()))
        }
        Some(ObservationValue::Integer(i)) => i
            .value
            .filter(|v| *v == 0 || *v == 1)
            .map(|v| (v == 1, format!("valueInteger {v}"))),
        None => {
            ctx.issue(
                Severity::Warning,
                IssueCode::MissingValue,
                "Observation.value[x]",
                "finding without a value; not mapped",
            );
            return None;
        }
        _ => None,
    };
    if found.is_none() {
        ctx.issue(
            Severity::Warning,
            IssueCode::UnknownCode,
            "Observation.value[x]",
            "finding value is not a known yes/no value; not mapped",
        );
    }
    found
}

fn outcome(o: &Observation, sets: [usize; 3], ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let levels = [
        Outcome::CompleteRemission,
        Outcome::PartialRemission,
        Outcome::NoRemission,
    ];
    let Some(ObservationValue::CodeableConcept(cc)) = &o.value else {
        ctx.issue(
            Severity::Warning,
            IssueCode::MissingValue,
            "Observation.valueCodeableConcept",
            "outcome without a coded value; not mapped",
        );
        return None;
    };
    let found = sets.iter().zip(levels).find(|(vs, _)| concept_matches(ctx.m, **vs, cc));
    match found {
        Some((_, level)) => Some((
            FactValue::Outcome(level),
            format!("valueCodeableConcept {}", first_code(cc)),
        )),
        None => {
            ctx.issue(
                Severity::Warning,
                IssueCode::UnknownCode,
                "Observation.valueCodeableConcept",
                "outcome code is not in outcome-complete/partial/none; not mapped",
            );
            None
        }
    }
}
