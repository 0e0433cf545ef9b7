//! Observation: the borrowed struct and its conversion (see the module above).
//! Not taken here: `text`, `contained`, `modifierExtension`, `note`,
//! `value[x]` other than Quantity, CodeableConcept, string, boolean, integer
//! and Ratio, `effectiveTiming`, a reference range's `age`, `specimen`,
//! `device`, element `id`s and extensions below the resource.

use std::borrow::Cow;

use serde::Deserialize;

use super::{
    concepts, extensions, identifiers, one_of, opt, prim, quantity, references, Concept, Extension, Identifier, Meta,
    Period, Quantity, Ratio, Reference, Str,
};
use crate::fhir::model::resources::{
    Observation, ObservationComponent, ObservationComponentValue, ObservationEffective, ObservationReferenceRange,
    ObservationValue,
};
use crate::fhir::model::types;
use crate::fhir::peek::{Peek, PeekComponent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Obs<'a> {
    #[serde(borrow)]
    resource_type: Str<'a>,
    id: Option<Str<'a>>,
    meta: Option<Meta<'a>>,
    implicit_rules: Option<Str<'a>>,
    language: Option<Str<'a>>,
    #[serde(default)]
    extension: Vec<Extension<'a>>,
    #[serde(default)]
    identifier: Vec<Identifier<'a>>,
    #[serde(default)]
    based_on: Vec<Reference<'a>>,
    #[serde(default)]
    part_of: Vec<Reference<'a>>,
    status: Str<'a>,
    #[serde(default)]
    category: Vec<Concept<'a>>,
    code: Concept<'a>,
    subject: Option<Reference<'a>>,
    #[serde(default)]
    focus: Vec<Reference<'a>>,
    encounter: Option<Reference<'a>>,
    effective_date_time: Option<Str<'a>>,
    effective_period: Option<Period<'a>>,
    effective_instant: Option<Str<'a>>,
    issued: Option<Str<'a>>,
    #[serde(default)]
    performer: Vec<Reference<'a>>,
    value_quantity: Option<Quantity<'a>>,
    value_codeable_concept: Option<Concept<'a>>,
    value_string: Option<Str<'a>>,
    value_boolean: Option<bool>,
    value_integer: Option<i32>,
    value_ratio: Option<Ratio<'a>>,
    data_absent_reason: Option<Concept<'a>>,
    #[serde(default)]
    interpretation: Vec<Concept<'a>>,
    body_site: Option<Concept<'a>>,
    method: Option<Concept<'a>>,
    #[serde(default)]
    reference_range: Vec<Range<'a>>,
    #[serde(default)]
    has_member: Vec<Reference<'a>>,
    #[serde(default)]
    derived_from: Vec<Reference<'a>>,
    #[serde(default)]
    component: Vec<Component<'a>>,
}

/// `Observation.component`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Component<'a> {
    #[serde(borrow, default)]
    extension: Vec<Extension<'a>>,
    code: Concept<'a>,
    value_quantity: Option<Quantity<'a>>,
    value_codeable_concept: Option<Concept<'a>>,
    value_string: Option<Str<'a>>,
    value_boolean: Option<bool>,
    value_integer: Option<i32>,
    value_ratio: Option<Ratio<'a>>,
    data_absent_reason: Option<Concept<'a>>,
    #[serde(default)]
    interpretation: Vec<Concept<'a>>,
    #[serde(default)]
    reference_range: Vec<Range<'a>>,
}

/// `Observation.referenceRange` (without `age`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Range<'a> {
    #[serde(borrow)]
    low: Option<Quantity<'a>>,
    high: Option<Quantity<'a>>,
    #[serde(rename = "type")]
    kind: Option<Concept<'a>>,
    #[serde(default)]
    applies_to: Vec<Concept<'a>>,
    text: Option<Str<'a>>,
}

impl Range<'_> {
    fn typed(&self) -> Option<ObservationReferenceRange> {
        Some(ObservationReferenceRange {
            low: quantity(self.low.as_ref())?,
            high: quantity(self.high.as_ref())?,
            r#type: self.kind.as_ref().map(Concept::boxed),
            applies_to: concepts(&self.applies_to),
            text: opt!(String, self.text),
            ..Default::default()
        })
    }
}

fn ranges(list: &[Range<'_>]) -> Option<Vec<ObservationReferenceRange>> {
    list.iter().map(Range::typed).collect()
}

/// A result's value, the same six choices for an Observation and a component.
enum Value {
    Quantity(Box<types::Quantity>),
    Concept(Box<types::CodeableConcept>),
    String(types::String),
    Boolean(types::Boolean),
    Integer(types::Integer),
    Ratio(Box<types::Ratio>),
}

/// The value given among the six (`Some(None)` when none, `None` when two or
/// one the shortcut does not take).
fn value(
    q: Option<&Quantity<'_>>,
    cc: Option<&Concept<'_>>,
    s: Option<Str<'_>>,
    b: Option<bool>,
    i: Option<i32>,
    r: Option<&Ratio<'_>>,
) -> Option<Option<Value>> {
    one_of(&[
        q.is_some(),
        cc.is_some(),
        s.is_some(),
        b.is_some(),
        i.is_some(),
        r.is_some(),
    ])?;
    Some(if let Some(q) = q {
        Some(Value::Quantity(q.boxed()?))
    } else if let Some(cc) = cc {
        Some(Value::Concept(cc.boxed()))
    } else if let Some(s) = s {
        Some(Value::String(prim!(String, s)))
    } else if let Some(b) = b {
        Some(Value::Boolean(types::Boolean {
            value: Some(b),
            ..Default::default()
        }))
    } else if let Some(i) = i {
        Some(Value::Integer(types::Integer {
            value: Some(i),
            ..Default::default()
        }))
    } else if let Some(r) = r {
        Some(Value::Ratio(r.boxed()?))
    } else {
        None
    })
}

impl Value {
    fn own(self) -> ObservationValue {
        match self {
            Value::Quantity(q) => ObservationValue::Quantity(q),
            Value::Concept(c) => ObservationValue::CodeableConcept(c),
            Value::String(s) => ObservationValue::String(s),
            Value::Boolean(b) => ObservationValue::Boolean(b),
            Value::Integer(i) => ObservationValue::Integer(i),
            Value::Ratio(r) => ObservationValue::Ratio(r),
        }
    }

    fn component(self) -> ObservationComponentValue {
        match self {
            Value::Quantity(q) => ObservationComponentValue::Quantity(q),
            Value::Concept(c) => ObservationComponentValue::CodeableConcept(c),
            Value::String(s) => ObservationComponentValue::String(s),
            Value::Boolean(b) => ObservationComponentValue::Boolean(b),
            Value::Integer(i) => ObservationComponentValue::Integer(i),
            Value::Ratio(r) => ObservationComponentValue::Ratio(r),
        }
    }
}

impl Component<'_> {
    /// What the rules read of a component (its `dataAbsentReason` left out:
    /// [`Obs::typed`] adds it).
    fn for_rules(&self) -> Option<ObservationComponent> {
        let value = value(
            self.value_quantity.as_ref(),
            self.value_codeable_concept.as_ref(),
            self.value_string,
            self.value_boolean,
            self.value_integer,
            self.value_ratio.as_ref(),
        )?;
        Some(ObservationComponent {
            extension: extensions(&self.extension)?,
            code: self.code.boxed(),
            value: value.map(Value::component),
            interpretation: concepts(&self.interpretation),
            reference_range: ranges(&self.reference_range)?,
            ..Default::default()
        })
    }
}

impl<'a> Obs<'a> {
    /// What the peek reads: the type, the id, the code and the components' codes.
    pub(super) fn peek(&self) -> Peek<'a> {
        let component = (!self.component.is_empty()).then(|| {
            (self.component.iter())
                .map(|c| PeekComponent {
                    code: Some(c.code.peek()),
                })
                .collect()
        });
        Peek {
            resource_type: Cow::Borrowed(self.resource_type),
            id: self.id.map(Cow::Borrowed),
            code: Some(self.code.peek()),
            medication: None,
            medication_reference: None,
            conclusion_code: None,
            component,
            contained: None,
        }
    }

    fn effective(&self) -> Option<Option<ObservationEffective>> {
        let (d, p, i) = (
            self.effective_date_time,
            self.effective_period.as_ref(),
            self.effective_instant,
        );
        one_of(&[d.is_some(), p.is_some(), i.is_some()])?;
        Some(match (d, p, i) {
            (Some(d), _, _) => Some(ObservationEffective::DateTime(prim!(DateTime, d))),
            (_, Some(p), _) => Some(ObservationEffective::Period(p.boxed())),
            (_, _, Some(i)) => Some(ObservationEffective::Instant(prim!(Instant, i))),
            _ => None,
        })
    }

    /// The typed resource in full: [`Self::for_rules`] and every element
    /// the rules do not read.
    pub(super) fn typed(&self) -> Option<Observation> {
        let mut o = self.for_rules()?;
        o.implicit_rules = opt!(Uri, self.implicit_rules);
        o.language = opt!(Code, self.language);
        o.identifier = identifiers(&self.identifier);
        o.based_on = references(&self.based_on);
        o.part_of = references(&self.part_of);
        o.category = concepts(&self.category);
        o.focus = references(&self.focus);
        o.encounter = self.encounter.as_ref().map(Reference::boxed);
        o.performer = references(&self.performer);
        o.data_absent_reason = self.data_absent_reason.as_ref().map(Concept::boxed);
        o.body_site = self.body_site.as_ref().map(Concept::boxed);
        o.has_member = references(&self.has_member);
        o.derived_from = references(&self.derived_from);
        for (typed, c) in o.component.iter_mut().zip(&self.component) {
            typed.data_absent_reason = c.data_absent_reason.as_ref().map(Concept::boxed);
        }
        Some(o)
    }

    /// The typed resource with only what the Observation rules read
    /// (`mapping::extract::observation`: status, subject, effective[x],
    /// issued, code, value[x], interpretation, method, referenceRange,
    /// extensions, components' code, value[x], interpretation,
    /// referenceRange, extensions) and what the scan reads (id, meta); the
    /// rest left empty. `None` exactly where [`Self::typed`] says `None`
    /// (what is left out converts without fail).
    pub(super) fn for_rules(&self) -> Option<Observation> {
        let value = value(
            self.value_quantity.as_ref(),
            self.value_codeable_concept.as_ref(),
            self.value_string,
            self.value_boolean,
            self.value_integer,
            self.value_ratio.as_ref(),
        )?;
        let component: Option<Vec<_>> = self.component.iter().map(Component::for_rules).collect();
        Some(Observation {
            id: opt!(Id, self.id),
            meta: self.meta.as_ref().map(Meta::boxed),
            extension: extensions(&self.extension)?,
            status: prim!(Code, self.status),
            code: self.code.boxed(),
            subject: self.subject.as_ref().map(Reference::boxed),
            effective: self.effective()?,
            issued: opt!(Instant, self.issued),
            value: value.map(Value::own),
            interpretation: concepts(&self.interpretation),
            method: self.method.as_ref().map(Concept::boxed),
            reference_range: ranges(&self.reference_range)?,
            component: component?,
            ..Default::default()
        })
    }
}

/// `text` as an Observation, when the shortcut applies.
pub(super) fn parse(text: &str) -> Option<Observation> {
    read(text)?.typed()
}

/// `text` in the borrowed struct, when it fits.
pub(super) fn read(text: &str) -> Option<Obs<'_>> {
    let obs: Obs<'_> = serde_json::from_str(text).ok()?;
    (obs.resource_type == "Observation").then_some(obs)
}
