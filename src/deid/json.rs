//! A JSON tree borrowing its strings from the text it was read from, and
//! writing it back out compactly.
//!
//! De-identification reads every exported resource once and writes it once:
//! with `serde_json::Value` (an ordered map) that is an allocation per key and
//! per string, a hash table per object and a copy per kept element. This tree
//! keeps members in a vector in text order and strings as slices of the text
//! (owned only when the text escapes something), and it reads and writes
//! exactly as `serde_json::Value` does: the same grammar (whatever `Value`
//! refuses this refuses), a repeated key keeps its first place and its last
//! value, numbers go through the same `serde_json::Number` and strings through
//! `serde_json`'s escaping, so the bytes written are those of
//! `Value::to_string` of the same text.
//!
//! This module owns the tree only; what is kept is `transform`'s.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON value borrowing from its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json::Value` holds it.
    Number(serde_json::Number),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object: members in text order, each key once.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// The key under which serde_json with `arbitrary_precision` hands over a
/// number's text as a one-member map (as `serde_json::Value` reads it).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Members from which on a repeated key is looked up through a hash table.
const LINEAR: usize = 32;

impl<'a> Json<'a> {
    /// Reads `text` (one JSON value, whitespace around it allowed).
    pub(crate) fn parse(text: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the compact JSON of this value to `out` (as `Value::to_string`).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(true) => out.extend_from_slice(b"true"),
            Json::Bool(false) => out.extend_from_slice(b"false"),
            Json::Number(n) => write_serde(out, n),
            Json::String(s) => write_str(out, s),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_serde(out, s);
}

/// Appends the compact JSON of `v`. Writing to a `Vec` cannot fail and these
/// values always serialize, so an error (none) would only leave `out` short.
fn write_serde(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, v);
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        // As `Value`: a float JSON cannot hold (never read from text) is null.
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        // Past LINEAR members, where each key is (a repeated key is rare).
        let mut index: Option<std::collections::HashMap<Cow<'de, str>, usize>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if members.is_empty() && key == NUMBER_TOKEN {
                // A number, as serde_json with `arbitrary_precision` (which a
                // dependency turns on) hands it over: its text, kept as is.
                let text: Cow<'de, str> = map.next_value_seed(KeySeed)?;
                let n = text.parse().map_err(serde::de::Error::custom)?;
                return Ok(Json::Number(n));
            }
            let value: Json<'de> = map.next_value()?;
            let at = match &index {
                Some(index) => index.get(&key).copied(),
                None => members.iter().position(|(k, _)| *k == key),
            };
            match at.and_then(|i| members.get_mut(i)) {
                // As an ordered map: the first place, the last value.
                Some((_, v)) => *v = value,
                None => {
                    if let Some(index) = index.as_mut() {
                        index.insert(key.clone(), members.len());
                    }
                    members.push((key, value));
                    if index.is_none() && members.len() >= LINEAR {
                        let built = members.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
                        index = Some(built.collect());
                    }
                }
            }
        }
        Ok(Json::Object(members))
    }
}

/// A key, borrowed from the text when it escapes nothing.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `serde_json::Value` writes for `text`, or None when it refuses it.
    fn by_value(text: &str) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| v.to_string())
    }

    fn by_tree(text: &str) -> Option<String> {
        let tree = Json::parse(text).ok()?;
        let mut out = Vec::new();
        tree.write(&mut out);
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn reads_and_writes_as_serde_json_value_does() {
        let many: String = (0..40).map(|i| format!("\"k{}\":{i},", i % 35)).collect();
        let texts = [
            r#"{"b":1,"a":[1.50,1e2,-0,0.1,18446744073709551615,-9223372036854775808,3.0e-5],"c":null}"#,
            r#"{"a":1,"b":2,"a":{"x":[]}}"#,
            r#" {"s":"tab\there \"q\" \\ \u00e9 \ud83d\ude00 \u0001","e\u0041":"k"} "#,
            r#"[true,false,{},[],[[1]],"x"]"#,
            r#"{"a":1} x"#,
            r#"{"a":01}"#,
            "{\"a\":\"raw\u{1}control\"}",
            r#"{"n":123456789012345678901234567890}"#,
            &format!("{{{many}\"z\":true}}"),
        ];
        for text in texts {
            assert_eq!(by_tree(text), by_value(text), "{text}");
        }
    }
}
