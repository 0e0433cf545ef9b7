//! Observation → CK peak, antibodies, clinical findings, MRI, outcome.
//!
//! An Observation gives results of its own value and of each of its
//! `component`s (a panel: an antibody panel, a CK inside a chemistry panel).
//! A component is read as a result of its own ([`Reading`]): its code, value,
//! interpretation and reference range, with the subject, status and effective
//! date of its parent; its facts name it `Observation/id#component[i]` and
//! its issues `Observation.component[i].…`. Results a panel's `hasMember` or
//! a DiagnosticReport's `result` reference are ordinary Observations of the
//! input, read once each on their own (the collector keeps one copy per
//! `Type/id`), never through the reference.

use super::{codings, concept_matches, decimal_text, first_code, texts, ConceptMatch, Ctx};
use crate::domain::facts::MriPart;
use crate::domain::{Fact, FactValue, FhirDate, Outcome, SourceRef};
pub(super) use crate::fhir::fast::view::Value;
use crate::fhir::fast::view::{self, Concept, Effective, Quantity};
use crate::mapping::{MappingSet, RuleKind};
use crate::report::{IssueCode, Severity};

/// The extension of a case report's CK peak: how many results it summarises.
pub const RESULT_COUNT_URL: &str = "https://imnm-fhir.org/fhir/StructureDefinition/ck-result-count";

const UCUM: &str = "http://unitsofmeasure.org";

/// One result (an Observation's own value, or one component's) and where it sits.
pub(super) struct Reading<'o> {
    /// What the result holds.
    pub(super) result: view::Result<'o>,
    /// `Observation.method` (a component's is its parent's).
    pub(super) method: Option<Concept<'o>>,
    /// The component's index, for a component.
    component: Option<usize>,
}

impl<'o> Reading<'o> {
    /// The FHIR path of `element` of this result.
    pub(super) fn path(&self, element: &str) -> String {
        match self.component {
            Some(i) => format!("Observation.component[{i}].{element}"),
            None => format!("Observation.{element}"),
        }
    }

    /// What a fact of this result names: the resource, or `Observation/id#component[i]`.
    fn source(&self, resource: &SourceRef) -> SourceRef {
        match self.component {
            Some(i) => SourceRef::new(
                resource.resource_type.clone(),
                format!("{}#component[{i}]", resource.id),
            ),
            None => resource.clone(),
        }
    }
}

/// Reads an Observation (typed or the scan's borrowed struct, through its
/// view): every rule whose value set holds its code (or a component's) gets a fact.
pub fn read(o: view::Observation<'_>, ctx: &mut Ctx<'_>) {
    if ctx.excluded("Observation", o.status(), || "Observation.status".into()) {
        return;
    }
    ctx.subject_text(o.subject(), "Observation.subject");
    if ctx.out.subject.is_none() {
        return;
    }
    let date = effective(o, ctx);
    let method = o.method();
    let parts = o.components().enumerate().map(|(i, c)| (Some(i), c));
    for (component, result) in std::iter::once((None, o.own())).chain(parts) {
        let reading = Reading {
            result,
            method,
            component,
        };
        read_result(&reading, date, ctx);
    }
}

/// Every rule whose value set holds the result's code gets a fact.
fn read_result(r: &Reading<'_>, date: Option<FhirDate>, ctx: &mut Ctx<'_>) {
    let m = ctx.m;
    let code = ConceptMatch::new(m, r.result.code);
    let matches = |vs| code.matches(m, vs);
    for (i, rule) in m.rules.iter().enumerate() {
        let value = match rule.kind {
            RuleKind::LabPeak { valueset, quantity } if matches(valueset) => lab(r, quantity, ctx),
            RuleKind::Antibody { valueset } if matches(valueset) => super::antibody::read(r, valueset, ctx),
            RuleKind::Finding { valueset } if matches(valueset) => {
                yes_no(r, ctx).map(|(v, d)| (FactValue::Present(v), d))
            }
            RuleKind::Mri { edema, fatty } => {
                let part = if matches(edema) {
                    MriPart::Edema
                } else if matches(fatty) {
                    MriPart::Fatty
                } else {
                    continue;
                };
                yes_no(r, ctx).map(|(v, d)| (FactValue::Mri(part, v), d))
            }
            RuleKind::Outcome {
                valueset,
                complete,
                partial,
                none,
            } if matches(valueset) => outcome(r, [complete, partial, none], ctx),
            _ => continue,
        };
        if let Some((value, mut detail)) = value {
            if let Some(via) = super::via_concept_map(m, r.result.code) {
                detail = format!("{detail} {via}");
            }
            let source = r.source(&ctx.out.source);
            ctx.out.facts.push(Fact {
                rule: i,
                value,
                date,
                source,
                code: first_code(r.result.code),
                detail,
                via: None,
                evidence: Default::default(),
                text: None,
                via_text: None,
            });
        }
    }
}

fn effective(o: view::Observation<'_>, ctx: &mut Ctx<'_>) -> Option<FhirDate> {
    match o.effective() {
        Effective::DateTime(d) => ctx.date(d, "Observation.effectiveDateTime"),
        Effective::Period(start) => ctx.date(start, "Observation.effectivePeriod.start"),
        Effective::Instant(i) => ctx.date(i, "Observation.effectiveInstant"),
        Effective::Other => ctx.date(o.issued(), "Observation.issued"),
    }
}

pub(super) fn quantity_units(q: Quantity<'_>) -> (Option<&str>, Option<&str>) {
    let ucum = match q.system() {
        Some(s) if s.trim() == UCUM || s.trim() == "urn:oid:2.16.840.1.113883.6.8" => q.code(),
        None => q.code(),
        _ => None,
    };
    (ucum, q.unit())
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
    /// The element an unusable unit is reported at (below the result's path).
    unit_path: &'static str,
}

fn lab_value<'o>(r: &Reading<'o>, ctx: &mut Ctx<'_>) -> Option<LabValue<'o>> {
    match r.result.value {
        Some(Value::Quantity(q)) => {
            let Some(value) = decimal_text(q.value()) else {
                let msg = "valueQuantity without a numeric value; not counted";
                ctx.issue(
                    Severity::Warning,
                    IssueCode::MissingValue,
                    r.path("valueQuantity.value"),
                    msg,
                );
                return None;
            };
            let (ucum, text) = quantity_units(q);
            let comparator = q.comparator().map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
            let raw = [comparator.as_deref().unwrap_or(""), q.value().unwrap_or("")].concat();
            Some(LabValue {
                value,
                comparator,
                ucum,
                unit_text: text.map(str::to_string),
                raw,
                unit_path: "valueQuantity.unit",
            })
        }
        Some(Value::String(s)) => {
            let text = s.unwrap_or("");
            let Some(n) = super::numeric::parse(text) else {
                let msg = "valueString is not one number (with an optional comparator and unit); not counted";
                ctx.issue(Severity::Warning, IssueCode::MissingValue, r.path("valueString"), msg);
                return None;
            };
            let range_unit = r.result.reference_range.iter().find_map(|rr| {
                let q = rr.low().or(rr.high())?;
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
                unit_path: "valueString",
            })
        }
        _ => {
            let msg = "lab result without a valueQuantity or a number as text; not counted";
            ctx.issue(Severity::Warning, IssueCode::MissingValue, r.path("value[x]"), msg);
            None
        }
    }
}

fn lab(r: &Reading<'_>, quantity: usize, ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let v = lab_value(r, ctx)?;
    let def = &ctx.m.quantities[quantity];
    let Some(factor) = def.factor(v.ucum, v.unit_text.as_deref()) else {
        let unit = v.ucum.or(v.unit_text.as_deref()).unwrap_or("(none)");
        let msg = format!(
            "unit {unit:?} does not convert to {}; result not counted",
            def.canonical
        );
        ctx.issue(
            Severity::Warning,
            IssueCode::UnitNotConvertible,
            r.path(v.unit_path),
            msg,
        );
        return None;
    };
    let unit = v.ucum.or(v.unit_text.as_deref()).unwrap_or("");
    // Joined by hand, the factor written as `Display` writes it ("1" for the
    // canonical unit): `format!` with a float took most of a lab's reading.
    let factor_text = match factor == 1.0 {
        true => std::borrow::Cow::Borrowed("1"),
        false => std::borrow::Cow::Owned(factor.to_string()),
    };
    let detail = [v.raw.as_str(), " ", unit, " (x", &factor_text, ")"].concat();
    if let Some(c) = &v.comparator {
        // Documented rule: a bounded result counts at its bound, never silently as exact.
        let msg = format!("result {c} a bound: counted at its bound (the peak may be higher or lower)");
        ctx.issue(Severity::Warning, IssueCode::Comparator, r.path("value[x]"), msg);
    }
    match r
        .result
        .extension
        .integer(RESULT_COUNT_URL)
        .and_then(|n| u32::try_from(n).ok())
    {
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
pub(super) fn answer_of(
    m: &MappingSet,
    sets: &[(usize, u8)],
    cc: Option<Concept<'_>>,
    text: Option<&str>,
) -> Option<u8> {
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

fn yes_no(r: &Reading<'_>, ctx: &mut Ctx<'_>) -> Option<(bool, String)> {
    let a = ctx.m.answers;
    let sets = [(a.yes, 1u8), (a.no, 0u8)];
    let found = match r.result.value {
        Some(Value::Boolean(b)) => b.map(|v| (v, format!("valueBoolean {v}"))),
        Some(Value::Concept(cc)) => answer_of(ctx.m, &sets, Some(cc), None)
            .map(|k| (k == 1, format!("valueCodeableConcept {}", first_code(cc)))),
        Some(Value::String(s)) => answer_of(ctx.m, &sets, None, s).map(|k| (k == 1, "valueString".to_string())),
        Some(Value::Integer(i)) => i
            .filter(|v| *v == 0 || *v == 1)
            .map(|v| (v == 1, format!("valueInteger {v}"))),
        None => {
            ctx.issue(
                Severity::Warning,
                IssueCode::MissingValue,
                r.path("value[x]"),
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
            r.path("value[x]"),
            "finding value is not a known yes/no value; not mapped",
        );
    }
    found
}

fn outcome(r: &Reading<'_>, sets: [usize; 3], ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let levels = [
        Outcome::CompleteRemission,
        Outcome::PartialRemission,
        Outcome::NoRemission,
    ];
    let Some(Value::Concept(cc)) = r.result.value else {
        ctx.issue(
            Severity::Warning,
            IssueCode::MissingValue,
            r.path("valueCodeableConcept"),
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
                r.path("valueCodeableConcept"),
                "outcome code is not in outcome-complete/partial/none; not mapped",
            );
            None
        }
    }
}
