//! The fastest way into the typed model for the common shapes of the hot
//! resource types (an Observation as labs and vendors send it): a borrowed
//! serde struct per type that reads the JSON text in one pass, refuses every
//! element it does not know (`deny_unknown_fields` at every level), and is
//! then turned into fhirbolt's type, element by element.
//!
//! It is only a shortcut, as `super::direct` is: `None` (an element or
//! shape not listed here, an escaped string, a number with an exponent, an
//! empty string, a `null`, two values of one choice, a primitive's `_x`
//! extension, …) sends the caller on to `direct` and then the `Resource`
//! path, whose answers, errors and notes stay the only ones reported. Where
//! it answers, [`parse`]'s answer equals fhirbolt's own in full (every
//! element, not only those the mapping reads), so what reads the typed
//! resource cannot tell the two apart; tests compare them on every resource
//! the project generates and on random variations. The scan converts
//! nothing: the rules read the borrowed struct itself through [`view`]
//! ([`ObservationText::view`], which answers exactly where [`parse`] does;
//! what the rules make of it is the same, which the same tests check). What
//! it must not do: accept text fhirbolt refuses, or read a value differently.
//!
//! Inside: the shared element types and their conversions here;
//! [`observation`] for the resource; [`view`] for what the rules read of it.

mod observation;
pub(crate) mod view;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::model::{types, Resource};
use super::peek::{Peek, PeekCoding, PeekConcept};

/// `text` as its typed resource, when the shortcut applies; `None` otherwise.
pub fn parse(text: &str) -> Option<Resource> {
    if !plain(text) {
        return None;
    }
    let rest = text.strip_prefix("{\"resourceType\":\"")?;
    match &rest[..rest.find('"')?] {
        "Observation" => observation::parse(text).map(|o| Resource::Observation(Box::new(o))),
        _ => None,
    }
}

/// An Observation's text read by the shortcut's borrowed struct, before its
/// conversion: what the peek reads of it, and the typed resource.
pub(crate) struct ObservationText<'a>(observation::Obs<'a>);

/// `text` read by the shortcut's Observation struct, when it applies (as
/// [`parse`] would: `None` sends the caller on to the peek and the full parse).
pub(crate) fn observation(text: &str) -> Option<ObservationText<'_>> {
    if !plain(text) || !text.starts_with("{\"resourceType\":\"Observation\"") {
        return None;
    }
    observation::read(text).map(ObservationText)
}

impl<'a> ObservationText<'a> {
    /// What `peek::classify` reads of the same text (the struct refuses what
    /// the peek reads and it does not: `contained`, a medication).
    pub(crate) fn peek(&self) -> Peek<'a> {
        self.0.peek()
    }

    /// What the Observation rules read of it, borrowed (`mapping::extract`
    /// reads the same from it as from [`parse`]'s answer); `None` exactly
    /// where [`parse`] says `None`.
    pub(crate) fn view(&self) -> Option<view::Observation<'_>> {
        view::Observation::fast(&self.0)
    }
}

/// True when `text`, which [`observation`] read and whose `view` answered,
/// is already as `serde_json` writes it on one line (what
/// `compact::already_compact` would say, for less): the read proved all of it
/// but the whitespace. No escape (`plain`) and no raw control character
/// (`serde_json` refuses one in a string); no key twice in one object (every
/// object here is a derived struct, which refuses a field given twice); no
/// `$serde_json` key (unknown fields refused); no exponent (integers are read
/// as integers, a quantity's value is checked by `decimal`). Whitespace between
/// tokens is looked for here.
pub(crate) fn read_compact(text: &str) -> bool {
    super::compact::no_space_between_tokens(text)
}

/// True when `text` has nothing the shortcut leaves to fhirbolt anyway: an
/// empty string (which FHIR forbids), `null`, an empty array or object (the
/// caller removes these first), an escaped character.
fn plain(text: &str) -> bool {
    // Built once: building a searcher per call cost a third of the search.
    static NOT_PLAIN: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 4]> =
        std::sync::LazyLock::new(|| ["\"\"", "null", "[]", "{}"].map(memchr::memmem::Finder::new));
    let b = text.as_bytes();
    memchr::memchr(b'\\', b).is_none() && !NOT_PLAIN.iter().any(|f| f.find(b).is_some())
}

/// True when `text` holds one of `needles` (`memmem`'s search looks for two
/// bytes at once: `str::contains` stops at every `"` of `""`).
pub(crate) fn has_any(text: &[u8], needles: &[&str]) -> bool {
    needles
        .iter()
        .any(|n| memchr::memmem::find(text, n.as_bytes()).is_some())
}

/// A borrowed string (an escaped one fails the parse: the shortcut stands aside).
type Str<'a> = &'a str;

/// A FHIR primitive of fhirbolt type `$t` holding `$v`.
macro_rules! prim {
    ($t:ident, $v:expr) => {
        types::$t {
            value: Some($v.to_string()),
            ..Default::default()
        }
    };
}
pub(crate) use prim;

/// An optional primitive of fhirbolt type `$t`.
macro_rules! opt {
    ($t:ident, $v:expr) => {
        $v.map(|v| $crate::fhir::fast::prim!($t, v))
    };
}
pub(crate) use opt;

/// `Coding`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Coding<'a> {
    #[serde(borrow)]
    system: Option<Str<'a>>,
    version: Option<Str<'a>>,
    code: Option<Str<'a>>,
    display: Option<Str<'a>>,
    user_selected: Option<bool>,
}

impl<'a> Coding<'a> {
    fn peek(&self) -> PeekCoding<'a> {
        PeekCoding {
            system: self.system.map(Cow::Borrowed),
            code: self.code.map(Cow::Borrowed),
            display: self.display.map(Cow::Borrowed),
        }
    }

    fn typed(&self) -> types::Coding {
        types::Coding {
            system: opt!(Uri, self.system),
            version: opt!(String, self.version),
            code: opt!(Code, self.code),
            display: opt!(String, self.display),
            user_selected: self.user_selected.map(|b| types::Boolean {
                value: Some(b),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `CodeableConcept`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Concept<'a> {
    #[serde(borrow, default)]
    coding: Vec<Coding<'a>>,
    text: Option<Str<'a>>,
}

impl<'a> Concept<'a> {
    fn peek(&self) -> PeekConcept<'a> {
        PeekConcept {
            coding: self.coding.iter().map(Coding::peek).collect(),
            text: self.text.map(Cow::Borrowed),
        }
    }

    fn typed(&self) -> types::CodeableConcept {
        types::CodeableConcept {
            coding: self.coding.iter().map(Coding::typed).collect(),
            text: opt!(String, self.text),
            ..Default::default()
        }
    }

    fn boxed(&self) -> Box<types::CodeableConcept> {
        Box::new(self.typed())
    }
}

fn concepts(list: &[Concept<'_>]) -> Vec<types::CodeableConcept> {
    list.iter().map(Concept::typed).collect()
}

/// `Reference` (without `identifier`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reference<'a> {
    #[serde(borrow)]
    reference: Option<Str<'a>>,
    #[serde(rename = "type")]
    kind: Option<Str<'a>>,
    display: Option<Str<'a>>,
}

impl Reference<'_> {
    fn typed(&self) -> types::Reference {
        types::Reference {
            reference: opt!(String, self.reference),
            r#type: opt!(Uri, self.kind),
            display: opt!(String, self.display),
            ..Default::default()
        }
    }

    fn boxed(&self) -> Box<types::Reference> {
        Box::new(self.typed())
    }
}

fn references(list: &[Reference<'_>]) -> Vec<types::Reference> {
    list.iter().map(Reference::typed).collect()
}

/// `Identifier` (without `period` and `assigner`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identifier<'a> {
    #[serde(borrow, rename = "use")]
    usage: Option<Str<'a>>,
    #[serde(rename = "type")]
    kind: Option<Concept<'a>>,
    system: Option<Str<'a>>,
    value: Option<Str<'a>>,
}

impl Identifier<'_> {
    fn typed(&self) -> types::Identifier {
        types::Identifier {
            r#use: opt!(Code, self.usage),
            r#type: self.kind.as_ref().map(Concept::boxed),
            system: opt!(Uri, self.system),
            value: opt!(String, self.value),
            ..Default::default()
        }
    }
}

fn identifiers(list: &[Identifier<'_>]) -> Vec<types::Identifier> {
    list.iter().map(Identifier::typed).collect()
}

/// `Meta`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Meta<'a> {
    #[serde(borrow)]
    version_id: Option<Str<'a>>,
    last_updated: Option<Str<'a>>,
    source: Option<Str<'a>>,
    #[serde(default)]
    profile: Vec<Str<'a>>,
    #[serde(default)]
    security: Vec<Coding<'a>>,
    #[serde(default)]
    tag: Vec<Coding<'a>>,
}

impl Meta<'_> {
    fn boxed(&self) -> Box<types::Meta> {
        Box::new(types::Meta {
            version_id: opt!(Id, self.version_id),
            last_updated: opt!(Instant, self.last_updated),
            source: opt!(Uri, self.source),
            profile: self.profile.iter().map(|p| prim!(Canonical, p)).collect(),
            security: self.security.iter().map(Coding::typed).collect(),
            tag: self.tag.iter().map(Coding::typed).collect(),
            ..Default::default()
        })
    }
}

/// `Quantity` (also as SimpleQuantity).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quantity<'a> {
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    comparator: Option<Str<'a>>,
    unit: Option<Str<'a>>,
    system: Option<Str<'a>>,
    code: Option<Str<'a>>,
}

impl Quantity<'_> {
    /// `None` when the value is not a plain JSON number.
    fn boxed(&self) -> Option<Box<types::Quantity>> {
        let value = match self.value {
            Some(raw) => Some(decimal(raw)?),
            None => None,
        };
        Some(Box::new(types::Quantity {
            value,
            comparator: opt!(Code, self.comparator),
            unit: opt!(String, self.unit),
            system: opt!(Uri, self.system),
            code: opt!(Code, self.code),
            ..Default::default()
        }))
    }
}

impl Quantity<'_> {
    /// True when [`Self::boxed`] answers.
    fn taken(&self) -> bool {
        self.value.is_none_or(|raw| plain_number(raw.get()))
    }
}

/// An optional quantity; `Err(())` when it is there but not plain.
fn quantity(q: Option<&Quantity<'_>>) -> Option<Option<Box<types::Quantity>>> {
    match q {
        Some(q) => q.boxed().map(Some),
        None => Some(None),
    }
}

/// A decimal as fhirbolt keeps it (its text), when `raw` is a JSON number
/// without an exponent (fhirbolt's two paths agree on those).
fn decimal(raw: &RawValue) -> Option<types::Decimal> {
    let t = raw.get();
    plain_number(t).then(|| prim!(Decimal, t))
}

/// True when `t`, a JSON number, has no exponent (see [`decimal`]).
fn plain_number(t: &str) -> bool {
    t.bytes().next().is_some_and(|b| b == b'-' || b.is_ascii_digit())
        && t.bytes().all(|b| b == b'-' || b == b'.' || b.is_ascii_digit())
}

/// `Period`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Period<'a> {
    #[serde(borrow)]
    start: Option<Str<'a>>,
    end: Option<Str<'a>>,
}

impl Period<'_> {
    fn boxed(&self) -> Box<types::Period> {
        Box::new(types::Period {
            start: opt!(DateTime, self.start),
            end: opt!(DateTime, self.end),
            ..Default::default()
        })
    }
}

/// `Ratio`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ratio<'a> {
    #[serde(borrow)]
    numerator: Option<Quantity<'a>>,
    #[serde(borrow)]
    denominator: Option<Quantity<'a>>,
}

impl Ratio<'_> {
    fn boxed(&self) -> Option<Box<types::Ratio>> {
        Some(Box::new(types::Ratio {
            numerator: quantity(self.numerator.as_ref())?,
            denominator: quantity(self.denominator.as_ref())?,
            ..Default::default()
        }))
    }
}

impl Ratio<'_> {
    /// True when [`Self::boxed`] answers.
    fn taken(&self) -> bool {
        [&self.numerator, &self.denominator]
            .iter()
            .all(|q| q.as_ref().is_none_or(Quantity::taken))
    }
}

/// An `Extension` with an integer value (the only kind the shortcut takes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Extension<'a> {
    #[serde(borrow)]
    url: Str<'a>,
    value_integer: Option<i32>,
    value_positive_int: Option<u32>,
    value_unsigned_int: Option<u32>,
}

impl Extension<'_> {
    fn typed(&self) -> Option<types::Extension> {
        use types::ExtensionValue as V;
        let value = match (self.value_integer, self.value_positive_int, self.value_unsigned_int) {
            (None, None, None) => None,
            (Some(i), None, None) => Some(V::Integer(types::Integer {
                value: Some(i),
                ..Default::default()
            })),
            (None, Some(i), None) => Some(V::PositiveInt(types::PositiveInt {
                value: Some(i),
                ..Default::default()
            })),
            (None, None, Some(i)) => Some(V::UnsignedInt(types::UnsignedInt {
                value: Some(i),
                ..Default::default()
            })),
            _ => return None,
        };
        Some(types::Extension {
            url: self.url.to_string(),
            value,
            ..Default::default()
        })
    }
}

impl Extension<'_> {
    /// True when [`Self::typed`] answers: at most one value.
    fn taken(&self) -> bool {
        one_of(&[
            self.value_integer.is_some(),
            self.value_positive_int.is_some(),
            self.value_unsigned_int.is_some(),
        ])
        .is_some()
    }

    /// The integer value, of whichever kind.
    fn integer(&self) -> Option<i64> {
        (self.value_integer.map(i64::from))
            .or(self.value_positive_int.map(i64::from))
            .or(self.value_unsigned_int.map(i64::from))
    }
}

fn extensions(list: &[Extension<'_>]) -> Option<Vec<types::Extension>> {
    list.iter().map(Extension::typed).collect()
}

/// At most one of a choice's values given: `Some(())`, else `None`.
fn one_of(given: &[bool]) -> Option<()> {
    (given.iter().filter(|g| **g).count() <= 1).then_some(())
}

#[cfg(test)]
mod tests;
