//! Antibody results → positive / negative / indeterminate.
//!
//! The order of evidence, strongest first; the first that decides wins:
//! 1. the value itself: a number (`valueQuantity`, a number or titre sent as
//!    `valueString`, a `valueRatio` 1:N) against the per-assay cutoff of
//!    `mappings/cutoffs.toml` for the result's code, unit and (when the assay
//!    names one) `Observation.method`; a coded answer (`valueCodeableConcept`
//!    in the answer value sets) or `valueBoolean`;
//! 2. for a number no cutoff covers: the result's own `referenceRange`
//!    (`high`, in the result's unit, or a text such as "<20" or "0-19"):
//!    within it negative, above it positive;
//! 3. the interpretation flags (v3 POS, NEG, IND, DET, ND, A, AA, H, HH, N, L);
//! 4. a qualitative `valueString` ("DETECTED", "Not detected", "Weakly positive").
//!
//! When nothing decides, an issue says why (`no-cutoff` for a number,
//! `unknown-code` otherwise), never silence.

use super::numeric;
use super::observation::{answer_of, quantity_units, Reading, Value};
use super::{codings, decimal_text, first_code, Ctx};
use crate::domain::{AntibodyStatus, FactValue};
use crate::mapping::codes::{assay_unit, TITRE};
use crate::mapping::{Assay, MappingSet};
use crate::report::{IssueCode, Severity};

/// An antibody result's number as read.
struct Number {
    value: f64,
    comparator: Option<String>,
    /// The unit key (`codes::assay_unit`; empty when none was given).
    unit: String,
    /// The element and raw value, for provenance.
    raw: String,
}

/// Reads an antibody result (see the module docs for the order of evidence).
pub(super) fn read(r: &Reading<'_>, valueset: usize, ctx: &mut Ctx<'_>) -> Option<(FactValue, String)> {
    let m = ctx.m;
    let number = number(r);
    let found = number
        .as_ref()
        .and_then(|n| cutoff(r, n, valueset, m))
        .or_else(|| answer(r, m))
        .or_else(|| number.as_ref().and_then(|n| reference_range(r, n)))
        .or_else(|| interpretation(r, m))
        .or_else(|| words(r, m));
    if found.is_none() {
        unmapped(r, number.as_ref(), ctx);
    }
    found.map(|(s, d)| (FactValue::Antibody(s), d))
}

fn status(k: u8) -> AntibodyStatus {
    match k {
        0 => AntibodyStatus::Positive,
        1 => AntibodyStatus::Negative,
        _ => AntibodyStatus::Indeterminate,
    }
}

fn answer_sets(m: &MappingSet) -> [(usize, u8); 3] {
    let a = m.answers;
    [(a.positive, 0u8), (a.negative, 1), (a.indeterminate, 2)]
}

/// The result's number: a quantity, a number or titre as text, a ratio 1:N.
fn number(r: &Reading<'_>) -> Option<Number> {
    match r.result.value? {
        Value::Quantity(q) => {
            let (ucum, text) = quantity_units(q);
            let unit = ucum.or(text).unwrap_or("");
            let comparator = q.comparator().map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
            let raw = format!(
                "valueQuantity {}{} {unit}",
                comparator.as_deref().unwrap_or(""),
                q.value().unwrap_or("")
            );
            Some(Number {
                value: decimal_text(q.value())?,
                comparator,
                unit: assay_unit(unit),
                raw,
            })
        }
        Value::String(s) => {
            let text = s?;
            let raw = format!("valueString {text:?}");
            if let Some((value, comparator)) = numeric::titre(text) {
                let comparator = comparator.map(str::to_string);
                let unit = TITRE.to_string();
                return Some(Number {
                    value,
                    comparator,
                    unit,
                    raw,
                });
            }
            let n = numeric::parse(text)?;
            let unit = n
                .unit
                .or_else(|| range_unit(r))
                .map_or(String::new(), |u| assay_unit(&u));
            Some(Number {
                value: n.value,
                comparator: n.comparator.map(str::to_string),
                unit,
                raw,
            })
        }
        Value::Ratio(numerator, denominator) => {
            let one = numerator.and_then(|q| decimal_text(q.value()));
            let n = denominator.and_then(|q| decimal_text(q.value()))?;
            (one == Some(1.0) && n >= 1.0).then(|| Number {
                value: n,
                comparator: None,
                unit: TITRE.to_string(),
                raw: format!("valueRatio 1:{n}"),
            })
        }
        _ => None,
    }
}

/// The unit of the reference range's limits, when the value has none.
fn range_unit(r: &Reading<'_>) -> Option<String> {
    r.result.reference_range.iter().find_map(|rr| {
        let q = rr.high().or(rr.low())?;
        let (ucum, text) = quantity_units(q);
        ucum.or(text).map(str::to_string)
    })
}

/// The assay of `mappings/cutoffs.toml` for the result's code, unit and method.
fn assay<'m>(r: &Reading<'_>, unit: &str, valueset: usize, m: &'m MappingSet) -> Option<&'m Assay> {
    // A local code counts as the codes its ConceptMaps map it to.
    let keys = |cc| {
        codings(cc)
            .filter_map(|(s, c)| Some((s?, c?)))
            .flat_map(|(s, c)| {
                let own = m.systems.lookup(s).map(|i| (i, m.systems.normalize_code(i, c)));
                let mapped = m.concept_maps.get(&m.systems, s, c).iter();
                own.into_iter()
                    .chain(mapped.map(|t| (t.target_system, t.target_code.clone())))
            })
            .collect::<Vec<_>>()
    };
    let code_keys = keys(r.result.code);
    let method_keys = r.method.map(keys).unwrap_or_default();
    m.assays.iter().find(|a| {
        a.valueset == valueset
            && a.codes.iter().any(|k| code_keys.contains(k))
            && (a.units.is_empty() || a.units.iter().any(|u| u == unit))
            && a.method.as_ref().is_none_or(|k| method_keys.contains(k))
    })
}

fn cutoff(r: &Reading<'_>, n: &Number, valueset: usize, m: &MappingSet) -> Option<(AntibodyStatus, String)> {
    let assay = assay(r, &n.unit, valueset, m)?;
    let (value, below, from) = (n.value, assay.negative_below, assay.positive_from);
    let status = match n.comparator.as_deref() {
        Some("<" | "<=") if value <= below => AntibodyStatus::Negative,
        Some(">" | ">=") if value >= from => AntibodyStatus::Positive,
        _ if value < below => AntibodyStatus::Negative,
        _ if value >= from => AntibodyStatus::Positive,
        _ => AntibodyStatus::Indeterminate,
    };
    Some((status, format!("{} by cutoff {}", n.raw, assay.id)))
}

/// A coded answer or a boolean.
fn answer(r: &Reading<'_>, m: &MappingSet) -> Option<(AntibodyStatus, String)> {
    match r.result.value? {
        Value::Concept(cc) => answer_of(m, &answer_sets(m), Some(cc), None)
            .map(|k| (status(k), format!("valueCodeableConcept {}", first_code(cc)))),
        Value::Boolean(Some(v)) => Some((
            if v {
                AntibodyStatus::Positive
            } else {
                AntibodyStatus::Negative
            },
            format!("valueBoolean {v}"),
        )),
        _ => None,
    }
}

/// The number against the result's own reference range: within it negative, above it positive.
fn reference_range(r: &Reading<'_>, n: &Number) -> Option<(AntibodyStatus, String)> {
    r.result.reference_range.iter().enumerate().find_map(|(k, rr)| {
        let same_unit = |u: Option<&str>| u.is_none_or(|u| n.unit.is_empty() || assay_unit(u) == n.unit);
        let high = rr.high().and_then(|h| {
            let (ucum, text) = quantity_units(h);
            let limit = decimal_text(h.value())?;
            same_unit(ucum.or(text)).then(|| (limit, true, format!("referenceRange[{k}].high {limit}")))
        });
        let (limit, inclusive, how) = high.or_else(|| {
            let text = rr.text()?;
            let (limit, inclusive, unit) = numeric::range_high(text)?;
            same_unit(unit.as_deref()).then(|| (limit, inclusive, format!("referenceRange[{k}].text {text:?}")))
        })?;
        let normal = |v: f64| v < limit || (inclusive && v == limit);
        let status = match n.comparator.as_deref() {
            Some("<" | "<=") if n.value <= limit => AntibodyStatus::Negative,
            Some(">") if n.value >= limit => AntibodyStatus::Positive,
            Some(">=") if !normal(n.value) => AntibodyStatus::Positive,
            Some(_) => return None,
            None if normal(n.value) => AntibodyStatus::Negative,
            None => AntibodyStatus::Positive,
        };
        Some((status, format!("{} by {how}", n.raw)))
    })
}

fn interpretation(r: &Reading<'_>, m: &MappingSet) -> Option<(AntibodyStatus, String)> {
    let sets = answer_sets(m);
    r.result
        .interpretation
        .iter()
        .find_map(|i| answer_of(m, &sets, Some(i), None))
        .map(|k| (status(k), "interpretation".to_string()))
}

/// A qualitative `valueString`.
fn words(r: &Reading<'_>, m: &MappingSet) -> Option<(AntibodyStatus, String)> {
    let Some(Value::String(s)) = r.result.value else {
        return None;
    };
    answer_of(m, &answer_sets(m), None, s).map(|k| (status(k), format!("valueString {:?}", s.unwrap_or(""))))
}

/// The issue of a result nothing decided.
fn unmapped(r: &Reading<'_>, number: Option<&Number>, ctx: &mut Ctx<'_>) {
    let (code, path, msg) = match number {
        Some(_) if !r.result.interpretation.is_empty() => (
            IssueCode::NoCutoff,
            r.path("interpretation"),
            "antibody number without a cutoff for its assay and unit or a usable referenceRange, \
             and its interpretation flag is not a known positive/negative/indeterminate code; not mapped"
                .to_string(),
        ),
        Some(n) => (
            IssueCode::NoCutoff,
            r.path("value[x]"),
            format!(
                "no cutoff in mappings/cutoffs.toml for this assay code and unit {:?}, and no usable \
                 referenceRange or interpretation; not mapped",
                n.unit
            ),
        ),
        None => (
            IssueCode::UnknownCode,
            r.path("value[x]"),
            "antibody result is not a known positive/negative/indeterminate value; not mapped".to_string(),
        ),
    };
    ctx.issue(Severity::Warning, code, path, msg);
}
