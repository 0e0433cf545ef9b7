//! What the Observation rules read, borrowed: the same view over fhirbolt's
//! typed Observation ([`Observation::typed`]) and over the scan's borrowed
//! struct ([`super::ObservationText::view`]), so one set of rules
//! (`mapping::extract::observation` and `antibody`) reads both, and the
//! scan's fast path converts and copies nothing.
//!
//! Each view is a small `Copy` handle on one side or the other. What it must
//! not do: read an element differently on the two sides (the fast-parse tests
//! compare the facts, issues and version the rules make of both on every
//! generated resource and on random variations), or view a borrowed struct
//! that [`super::parse`] would refuse (`view` answers exactly where it does).

use super::observation::{Component as FastComponent, Obs, Range as FastRange, Values};
use super::{Concept as FastConcept, Extension as FastExtension, Quantity as FastQuantity};
use crate::fhir::model::resources::{
    Observation as TypedObservation, ObservationComponent, ObservationComponentValue, ObservationEffective,
    ObservationReferenceRange, ObservationValue,
};
use crate::fhir::model::types;

/// The value of a fhirbolt primitive in an `Option`.
macro_rules! val {
    ($p:expr) => {
        $p.as_ref().and_then(|p| p.value.as_deref())
    };
}

/// One side or the other.
#[derive(Clone, Copy)]
enum Of<T: Copy, F: Copy> {
    Typed(T),
    Fast(F),
}

impl<'o, T, F> Of<&'o [T], &'o [F]> {
    /// Each item of the list, in order, viewed by `typed` or `fast`.
    fn each<V>(
        self,
        typed: fn(&'o T) -> V,
        fast: fn(&'o F) -> V,
    ) -> impl Iterator<Item = V> + Clone + use<'o, T, F, V> {
        let (t, f): (&[T], &[F]) = match self {
            Of::Typed(l) => (l, &[]),
            Of::Fast(l) => (&[], l),
        };
        t.iter().map(typed).chain(f.iter().map(fast))
    }

    fn len(self) -> usize {
        match self {
            Of::Typed(l) => l.len(),
            Of::Fast(l) => l.len(),
        }
    }
}

/// A `Coding`: what the rules read of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Coding<'o> {
    /// `system`.
    pub(crate) system: Option<&'o str>,
    /// `code`.
    pub(crate) code: Option<&'o str>,
    /// `display`.
    pub(crate) display: Option<&'o str>,
}

/// A `CodeableConcept`.
#[derive(Clone, Copy)]
pub(crate) struct Concept<'o>(Of<&'o types::CodeableConcept, &'o FastConcept<'o>>);

impl<'o> From<&'o types::CodeableConcept> for Concept<'o> {
    fn from(c: &'o types::CodeableConcept) -> Self {
        Concept(Of::Typed(c))
    }
}

impl<'o> From<&'o Box<types::CodeableConcept>> for Concept<'o> {
    fn from(c: &'o Box<types::CodeableConcept>) -> Self {
        Concept(Of::Typed(c))
    }
}

impl<'o> From<&&'o types::CodeableConcept> for Concept<'o> {
    fn from(c: &&'o types::CodeableConcept) -> Self {
        Concept(Of::Typed(c))
    }
}

impl<'o> Concept<'o> {
    fn fast(c: &'o FastConcept<'o>) -> Self {
        Concept(Of::Fast(c))
    }

    /// Its codings, in order.
    pub(crate) fn codings(self) -> impl Iterator<Item = Coding<'o>> + Clone {
        let list = match self.0 {
            Of::Typed(c) => Of::Typed(&c.coding[..]),
            Of::Fast(c) => Of::Fast(&c.coding[..]),
        };
        list.each(
            |c| Coding {
                system: val!(c.system),
                code: val!(c.code),
                display: val!(c.display),
            },
            |c| Coding {
                system: c.system,
                code: c.code,
                display: c.display,
            },
        )
    }

    /// `text`.
    pub(crate) fn text(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(c) => val!(c.text),
            Of::Fast(c) => c.text,
        }
    }
}

/// A list of `CodeableConcept`s (`interpretation`).
#[derive(Clone, Copy)]
pub(crate) struct Concepts<'o>(Of<&'o [types::CodeableConcept], &'o [FastConcept<'o>]>);

impl<'o> Concepts<'o> {
    /// True when there is none.
    pub(crate) fn is_empty(self) -> bool {
        self.0.len() == 0
    }

    /// Each, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Concept<'o>> {
        self.0.each(Concept::from, Concept::fast)
    }
}

/// A `Quantity`.
#[derive(Clone, Copy)]
pub(crate) struct Quantity<'o>(Of<&'o types::Quantity, &'o FastQuantity<'o>>);

impl<'o> Quantity<'o> {
    /// `value`, as written.
    pub(crate) fn value(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(q) => val!(q.value),
            Of::Fast(q) => q.value.map(|raw| raw.get()),
        }
    }

    /// `comparator`.
    pub(crate) fn comparator(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(q) => val!(q.comparator),
            Of::Fast(q) => q.comparator,
        }
    }

    /// `unit`.
    pub(crate) fn unit(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(q) => val!(q.unit),
            Of::Fast(q) => q.unit,
        }
    }

    /// `system`.
    pub(crate) fn system(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(q) => val!(q.system),
            Of::Fast(q) => q.system,
        }
    }

    /// `code`.
    pub(crate) fn code(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(q) => val!(q.code),
            Of::Fast(q) => q.code,
        }
    }

    fn typed(q: Option<&'o types::Quantity>) -> Option<Self> {
        q.map(|q| Quantity(Of::Typed(q)))
    }

    fn fast(q: Option<&'o FastQuantity<'o>>) -> Option<Self> {
        q.map(|q| Quantity(Of::Fast(q)))
    }
}

/// A `referenceRange`.
#[derive(Clone, Copy)]
pub(crate) struct Range<'o>(Of<&'o ObservationReferenceRange, &'o FastRange<'o>>);

impl<'o> Range<'o> {
    /// `low`.
    pub(crate) fn low(self) -> Option<Quantity<'o>> {
        match self.0 {
            Of::Typed(r) => Quantity::typed(r.low.as_deref()),
            Of::Fast(r) => Quantity::fast(r.low.as_ref()),
        }
    }

    /// `high`.
    pub(crate) fn high(self) -> Option<Quantity<'o>> {
        match self.0 {
            Of::Typed(r) => Quantity::typed(r.high.as_deref()),
            Of::Fast(r) => Quantity::fast(r.high.as_ref()),
        }
    }

    /// `text`.
    pub(crate) fn text(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(r) => val!(r.text),
            Of::Fast(r) => r.text,
        }
    }
}

/// A list of `referenceRange`s.
#[derive(Clone, Copy)]
pub(crate) struct Ranges<'o>(Of<&'o [ObservationReferenceRange], &'o [FastRange<'o>]>);

impl<'o> Ranges<'o> {
    /// Each, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Range<'o>> {
        self.0.each(|r| Range(Of::Typed(r)), |r| Range(Of::Fast(r)))
    }
}

/// A result's `value[x]`.
#[derive(Clone, Copy)]
pub(crate) enum Value<'o> {
    /// `valueQuantity`.
    Quantity(Quantity<'o>),
    /// `valueCodeableConcept`.
    Concept(Concept<'o>),
    /// `valueString`.
    String(Option<&'o str>),
    /// `valueBoolean`.
    Boolean(Option<bool>),
    /// `valueInteger`.
    Integer(Option<i32>),
    /// `valueRatio`: its numerator and denominator.
    Ratio(Option<Quantity<'o>>, Option<Quantity<'o>>),
    /// Another type (Range, SampledData, a time, a period…).
    Other,
}

impl<'o> Value<'o> {
    fn of(v: &'o ObservationValue) -> Self {
        match v {
            ObservationValue::Quantity(q) => Value::Quantity(Quantity(Of::Typed(q))),
            ObservationValue::CodeableConcept(c) => Value::Concept(Concept::from(&**c)),
            ObservationValue::String(s) => Value::String(s.value.as_deref()),
            ObservationValue::Boolean(b) => Value::Boolean(b.value),
            ObservationValue::Integer(i) => Value::Integer(i.value),
            ObservationValue::Ratio(r) => Value::Ratio(
                Quantity::typed(r.numerator.as_deref()),
                Quantity::typed(r.denominator.as_deref()),
            ),
            _ => Value::Other,
        }
    }

    fn of_component(v: &'o ObservationComponentValue) -> Self {
        match v {
            ObservationComponentValue::Quantity(q) => Value::Quantity(Quantity(Of::Typed(q))),
            ObservationComponentValue::CodeableConcept(c) => Value::Concept(Concept::from(&**c)),
            ObservationComponentValue::String(s) => Value::String(s.value.as_deref()),
            ObservationComponentValue::Boolean(b) => Value::Boolean(b.value),
            ObservationComponentValue::Integer(i) => Value::Integer(i.value),
            ObservationComponentValue::Ratio(r) => Value::Ratio(
                Quantity::typed(r.numerator.as_deref()),
                Quantity::typed(r.denominator.as_deref()),
            ),
            _ => Value::Other,
        }
    }

    /// The one value given of the borrowed struct's six (it took at most one).
    fn fast(v: Values<'o, 'o>) -> Option<Self> {
        (v.quantity.map(|q| Value::Quantity(Quantity(Of::Fast(q)))))
            .or(v.concept.map(|c| Value::Concept(Concept::fast(c))))
            .or(v.string.map(|s| Value::String(Some(s))))
            .or(v.boolean.map(|b| Value::Boolean(Some(b))))
            .or(v.integer.map(|i| Value::Integer(Some(i))))
            .or(v.ratio.map(|r| {
                Value::Ratio(
                    Quantity::fast(r.numerator.as_ref()),
                    Quantity::fast(r.denominator.as_ref()),
                )
            }))
    }
}

/// The extensions of an Observation or a component.
#[derive(Clone, Copy)]
pub(crate) struct Extensions<'o>(Of<&'o [types::Extension], &'o [FastExtension<'o>]>);

impl<'o> From<&'o [types::Extension]> for Extensions<'o> {
    fn from(l: &'o [types::Extension]) -> Self {
        Extensions(Of::Typed(l))
    }
}

impl Extensions<'_> {
    /// The integer value (integer, positiveInt or unsignedInt) of the first
    /// extension `url`, when it has one.
    pub(crate) fn integer(self, url: &str) -> Option<i64> {
        use types::ExtensionValue as V;
        match self.0 {
            Of::Typed(l) => l.iter().find(|e| e.url == url).and_then(|e| match &e.value {
                Some(V::Integer(i)) => i.value.map(i64::from),
                Some(V::PositiveInt(i)) => i.value.map(i64::from),
                Some(V::UnsignedInt(i)) => i.value.map(i64::from),
                _ => None,
            }),
            Of::Fast(l) => l.iter().find(|e| e.url == url).and_then(FastExtension::integer),
        }
    }
}

/// One result: an Observation's own value, or one component's.
#[derive(Clone, Copy)]
pub(crate) struct Result<'o> {
    /// `code`.
    pub(crate) code: Concept<'o>,
    /// `value[x]`.
    pub(crate) value: Option<Value<'o>>,
    /// `interpretation`.
    pub(crate) interpretation: Concepts<'o>,
    /// `referenceRange`.
    pub(crate) reference_range: Ranges<'o>,
    /// `extension`.
    pub(crate) extension: Extensions<'o>,
}

impl<'o> Result<'o> {
    fn component(c: &'o ObservationComponent) -> Self {
        Result {
            code: Concept::from(&*c.code),
            value: c.value.as_ref().map(Value::of_component),
            interpretation: Concepts(Of::Typed(&c.interpretation)),
            reference_range: Ranges(Of::Typed(&c.reference_range)),
            extension: Extensions(Of::Typed(&c.extension)),
        }
    }

    fn fast_component(c: &'o FastComponent<'o>) -> Self {
        Result {
            code: Concept::fast(&c.code),
            value: Value::fast(c.values()),
            interpretation: Concepts(Of::Fast(&c.interpretation)),
            reference_range: Ranges(Of::Fast(&c.reference_range)),
            extension: Extensions(Of::Fast(&c.extension)),
        }
    }
}

/// Which `effective[x]` an Observation gives, and its date or start.
#[derive(Clone, Copy)]
pub(crate) enum Effective<'o> {
    /// `effectiveDateTime`.
    DateTime(Option<&'o str>),
    /// `effectivePeriod`: its start.
    Period(Option<&'o str>),
    /// `effectiveInstant`.
    Instant(Option<&'o str>),
    /// None, or another type (`effectiveTiming`).
    Other,
}

/// An Observation: what the rules read of it.
#[derive(Clone, Copy)]
pub(crate) struct Observation<'o>(Of<&'o TypedObservation, &'o Obs<'o>>);

impl<'o> Observation<'o> {
    /// The view of a typed Observation.
    pub(crate) fn typed(o: &'o TypedObservation) -> Self {
        Observation(Of::Typed(o))
    }

    /// The view of the borrowed struct, exactly where its conversion to the
    /// typed resource would answer.
    pub(super) fn fast(o: &'o Obs<'o>) -> Option<Self> {
        o.taken().then_some(Observation(Of::Fast(o)))
    }

    /// `id`.
    pub(crate) fn id(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(o) => val!(o.id),
            Of::Fast(o) => o.id,
        }
    }

    /// `meta.lastUpdated` and `meta.versionId`.
    pub(crate) fn version(self) -> (Option<&'o str>, Option<&'o str>) {
        match self.0 {
            Of::Typed(o) => o
                .meta
                .as_deref()
                .map_or((None, None), |m| (val!(m.last_updated), val!(m.version_id))),
            Of::Fast(o) => o.meta.as_ref().map_or((None, None), |m| (m.last_updated, m.version_id)),
        }
    }

    /// `status`.
    pub(crate) fn status(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(o) => o.status.value.as_deref(),
            Of::Fast(o) => Some(o.status),
        }
    }

    /// `subject.reference`.
    pub(crate) fn subject(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(o) => o.subject.as_deref().and_then(|r| val!(r.reference)),
            Of::Fast(o) => o.subject.as_ref().and_then(|r| r.reference),
        }
    }

    /// `effective[x]`.
    pub(crate) fn effective(self) -> Effective<'o> {
        match self.0 {
            Of::Typed(o) => match &o.effective {
                Some(ObservationEffective::DateTime(d)) => Effective::DateTime(d.value.as_deref()),
                Some(ObservationEffective::Period(p)) => Effective::Period(val!(p.start)),
                Some(ObservationEffective::Instant(i)) => Effective::Instant(i.value.as_deref()),
                _ => Effective::Other,
            },
            Of::Fast(o) => match (o.effective_date_time, &o.effective_period, o.effective_instant) {
                (Some(d), _, _) => Effective::DateTime(Some(d)),
                (_, Some(p), _) => Effective::Period(p.start),
                (_, _, Some(i)) => Effective::Instant(Some(i)),
                _ => Effective::Other,
            },
        }
    }

    /// `issued`.
    pub(crate) fn issued(self) -> Option<&'o str> {
        match self.0 {
            Of::Typed(o) => val!(o.issued),
            Of::Fast(o) => o.issued,
        }
    }

    /// `method`.
    pub(crate) fn method(self) -> Option<Concept<'o>> {
        match self.0 {
            Of::Typed(o) => o.method.as_deref().map(Concept::from),
            Of::Fast(o) => o.method.as_ref().map(Concept::fast),
        }
    }

    /// Its own result.
    pub(crate) fn own(self) -> Result<'o> {
        match self.0 {
            Of::Typed(o) => Result {
                code: Concept::from(&*o.code),
                value: o.value.as_ref().map(Value::of),
                interpretation: Concepts(Of::Typed(&o.interpretation)),
                reference_range: Ranges(Of::Typed(&o.reference_range)),
                extension: Extensions(Of::Typed(&o.extension)),
            },
            Of::Fast(o) => Result {
                code: Concept::fast(&o.code),
                value: Value::fast(o.values()),
                interpretation: Concepts(Of::Fast(&o.interpretation)),
                reference_range: Ranges(Of::Fast(&o.reference_range)),
                extension: Extensions(Of::Fast(&o.extension)),
            },
        }
    }

    /// Each component's result, in order.
    pub(crate) fn components(self) -> impl Iterator<Item = Result<'o>> {
        let list = match self.0 {
            Of::Typed(o) => Of::Typed(&o.component[..]),
            Of::Fast(o) => Of::Fast(&o.component[..]),
        };
        list.each(Result::component, Result::fast_component)
    }
}
