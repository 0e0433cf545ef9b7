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
    pub(super) resource_type: Str<'a>,
    pub(super) id: Option<Str<'a>>,
    pub(super) meta: Option<Meta<'a>>,
    pub(super) implicit_rules: Option<Str<'a>>,
    pub(super) language: Option<Str<'a>>,
    #[serde(default)]
    pub(super) extension: Vec<Extension<'a>>,
    #[serde(default)]
    pub(super) identifier: Vec<Identifier<'a>>,
    #[serde(default)]
    pub(super) based_on: Vec<Reference<'a>>,
    #[serde(default)]
    pub(super) part_of: Vec<Reference<'a>>,
    pub(super) status: Str<'a>,
    #[serde(default)]
    pub(super) category: Vec<Concept<'a>>,
    pub(super) code: Concept<'a>,
    pub(super) subject: Option<Reference<'a>>,
    #[serde(default)]
    pub(super) focus: Vec<Reference<'a>>,
    pub(super) encounter: Option<Reference<'a>>,
    pub(super) effective_date_time: Option<Str<'a>>,
    pub(super) effective_period: Option<Period<'a>>,
    pub(super) effective_instant: Option<Str<'a>>,
    pub(super) issued: Option<Str<'a>>,
    #[serde(default)]
    pub(super) performer: Vec<Reference<'a>>,
    pub(super) value_quantity: Option<Quantity<'a>>,
    pub(super) value_codeable_concept: Option<Concept<'a>>,
    pub(super) value_string: Option<Str<'a>>,
    pub(super) value_boolean: Option<bool>,
    pub(super) value_integer: Option<i32>,
    pub(super) value_ratio: Option<Ratio<'a>>,
    pub(super) data_absent_reason: Option<Concept<'a>>,
    #[serde(default)]
    pub(super) interpretation: Vec<Concept<'a>>,
    pub(super) body_site: Option<Concept<'a>>,
    pub(super) method: Option<Concept<'a>>,
    #[serde(default)]
    pub(super) reference_range: Vec<Range<'a>>,
    #[serde(default)]
    pub(super) has_member: Vec<Reference<'a>>,
    #[serde(default)]
    pub(super) derived_from: Vec<Reference<'a>>,
    #[serde(default)]
    pub(super) component: Vec<Component<'a>>,
}

/// `Observation.component`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Component<'a> {
    #[serde(borrow, default)]
    pub(super) extension: Vec<Extension<'a>>,
    pub(super) code: Concept<'a>,
    pub(super) value_quantity: Option<Quantity<'a>>,
    pub(super) value_codeable_concept: Option<Concept<'a>>,
    pub(super) value_string: Option<Str<'a>>,
    pub(super) value_boolean: Option<bool>,
    pub(super) value_integer: Option<i32>,
    pub(super) value_ratio: Option<Ratio<'a>>,
    pub(super) data_absent_reason: Option<Concept<'a>>,
    #[serde(default)]
    pub(super) interpretation: Vec<Concept<'a>>,
    #[serde(default)]
    pub(super) reference_range: Vec<Range<'a>>,
}

/// `Observation.referenceRange` (without `age`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Range<'a> {
    #[serde(borrow)]
    pub(super) low: Option<Quantity<'a>>,
    pub(super) high: Option<Quantity<'a>>,
    #[serde(rename = "type")]
    pub(super) kind: Option<Concept<'a>>,
    #[serde(default)]
    pub(super) applies_to: Vec<Concept<'a>>,
    pub(super) text: Option<Str<'a>>,
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

/// The six choices of `value[x]` the struct takes, as an Observation or a
/// component gives them.
#[derive(Clone, Copy)]
pub(super) struct Values<'s, 'a> {
    pub(super) quantity: Option<&'s Quantity<'a>>,
    pub(super) concept: Option<&'s Concept<'a>>,
    pub(super) string: Option<Str<'a>>,
    pub(super) boolean: Option<bool>,
    pub(super) integer: Option<i32>,
    pub(super) ratio: Option<&'s Ratio<'a>>,
}

/// The six of `$s` (an [`Obs`] or a [`Component`]).
macro_rules! values {
    ($s:expr) => {
        Values {
            quantity: $s.value_quantity.as_ref(),
            concept: $s.value_codeable_concept.as_ref(),
            string: $s.value_string,
            boolean: $s.value_boolean,
            integer: $s.value_integer,
            ratio: $s.value_ratio.as_ref(),
        }
    };
}

impl Values<'_, '_> {
    /// At most one given.
    fn one(&self) -> bool {
        let given = [
            self.quantity.is_some(),
            self.concept.is_some(),
            self.string.is_some(),
            self.boolean.is_some(),
            self.integer.is_some(),
            self.ratio.is_some(),
        ];
        one_of(&given).is_some()
    }

    /// True when [`Self::typed`] answers (and so [`Obs::typed`] takes the value).
    fn taken(&self) -> bool {
        self.one() && self.quantity.is_none_or(Quantity::taken) && self.ratio.is_none_or(Ratio::taken)
    }

    /// The value given (`Some(None)` when none, `None` when two or one the
    /// shortcut does not take).
    fn typed(&self) -> Option<Option<Value>> {
        if !self.one() {
            return None;
        }
        Some(if let Some(q) = self.quantity {
            Some(Value::Quantity(q.boxed()?))
        } else if let Some(cc) = self.concept {
            Some(Value::Concept(cc.boxed()))
        } else if let Some(s) = self.string {
            Some(Value::String(prim!(String, s)))
        } else if let Some(b) = self.boolean {
            Some(Value::Boolean(types::Boolean {
                value: Some(b),
                ..Default::default()
            }))
        } else if let Some(i) = self.integer {
            Some(Value::Integer(types::Integer {
                value: Some(i),
                ..Default::default()
            }))
        } else if let Some(r) = self.ratio {
            Some(Value::Ratio(r.boxed()?))
        } else {
            None
        })
    }
}

/// True when [`ranges`] answers.
fn ranges_taken(list: &[Range<'_>]) -> bool {
    (list.iter()).all(|r| r.low.as_ref().is_none_or(Quantity::taken) && r.high.as_ref().is_none_or(Quantity::taken))
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

impl<'a> Component<'a> {
    /// Its `value[x]` choices.
    pub(super) fn values(&self) -> Values<'_, 'a> {
        values!(self)
    }

    /// True when [`Self::typed`] answers.
    fn taken(&self) -> bool {
        let value = self.values().taken();
        value && self.extension.iter().all(Extension::taken) && ranges_taken(&self.reference_range)
    }

    /// The typed component.
    fn typed(&self) -> Option<ObservationComponent> {
        let value = self.values().typed()?;
        Some(ObservationComponent {
            extension: extensions(&self.extension)?,
            code: self.code.boxed(),
            value: value.map(Value::component),
            interpretation: concepts(&self.interpretation),
            reference_range: ranges(&self.reference_range)?,
            data_absent_reason: self.data_absent_reason.as_ref().map(Concept::boxed),
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

    /// Its `value[x]` choices.
    pub(super) fn values(&self) -> Values<'_, 'a> {
        values!(self)
    }

    /// True exactly where [`Self::typed`] answers, without converting
    /// anything: every value a conversion could refuse is one it takes.
    pub(super) fn taken(&self) -> bool {
        let value = self.values().taken();
        let effective = [
            self.effective_date_time.is_some(),
            self.effective_period.is_some(),
            self.effective_instant.is_some(),
        ];
        value
            && one_of(&effective).is_some()
            && self.extension.iter().all(Extension::taken)
            && ranges_taken(&self.reference_range)
            && self.component.iter().all(Component::taken)
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

    /// The typed resource, every element of it.
    pub(super) fn typed(&self) -> Option<Observation> {
        let value = self.values().typed()?;
        let component: Option<Vec<_>> = self.component.iter().map(Component::typed).collect();
        Some(Observation {
            id: opt!(Id, self.id),
            meta: self.meta.as_ref().map(Meta::boxed),
            implicit_rules: opt!(Uri, self.implicit_rules),
            language: opt!(Code, self.language),
            extension: extensions(&self.extension)?,
            identifier: identifiers(&self.identifier),
            based_on: references(&self.based_on),
            part_of: references(&self.part_of),
            status: prim!(Code, self.status),
            category: concepts(&self.category),
            code: self.code.boxed(),
            subject: self.subject.as_ref().map(Reference::boxed),
            focus: references(&self.focus),
            encounter: self.encounter.as_ref().map(Reference::boxed),
            effective: self.effective()?,
            issued: opt!(Instant, self.issued),
            performer: references(&self.performer),
            value: value.map(Value::own),
            data_absent_reason: self.data_absent_reason.as_ref().map(Concept::boxed),
            interpretation: concepts(&self.interpretation),
            body_site: self.body_site.as_ref().map(Concept::boxed),
            method: self.method.as_ref().map(Concept::boxed),
            reference_range: ranges(&self.reference_range)?,
            has_member: references(&self.has_member),
            derived_from: references(&self.derived_from),
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
