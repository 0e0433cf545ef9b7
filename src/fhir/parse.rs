//! Full parse with fhirbolt, always in strict mode. When a strict parse fails
//! on an unknown element, that element is removed and the resource parsed
//! strictly again, one element at a time (at most `MAX_REPAIRS`), and the
//! result carries a note naming what was dropped. fhirbolt's lax and
//! compatibility modes are never used: they drop unknown elements silently
//! and loop forever on some shapes.
//!
//! This module owns turning one resource's JSON text into a typed resource and
//! saying why it could not ([`ParseError`]: where the JSON breaks, that it is no
//! resource, an unknown type, or fhirbolt's refusal). Reading serde's message
//! text (to find unknown elements) stays inside this module; callers use the
//! error's variants and fields. Messages never hold quoted values ([`scrub`]).

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use super::model::Resource;

/// A parsed resource and, when it only parsed leniently, why strict failed.
#[derive(Debug)]
pub struct Parsed {
    /// The typed resource.
    pub resource: Resource,
    /// Set when strict parsing failed: what lax mode passed over.
    pub lenient_note: Option<String>,
}

/// Why a resource's JSON text did not parse. Each `Display` is the parser's
/// message with quoted values removed ([`scrub`]), as issues report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("{message}")]
    Syntax {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
        /// The JSON parser's message, scrubbed.
        message: String,
    },
    /// JSON, but not an object with a string `resourceType`.
    #[error("{message}")]
    NotAResource {
        /// fhirbolt's message, scrubbed.
        message: String,
    },
    /// A `resourceType` that is not an R4 resource type.
    #[error("{message}")]
    UnknownType {
        /// The `resourceType` given.
        resource_type: String,
        /// fhirbolt's message, scrubbed.
        message: String,
    },
    /// fhirbolt refused the resource (a wrong type or value, a missing required
    /// element, or more unknown elements than are dropped).
    #[error("{message}")]
    Refused {
        /// fhirbolt's message, scrubbed (fhirbolt reads a parsed tree, so it
        /// gives no line or column).
        message: String,
    },
    /// fhirbolt panicked on the resource.
    #[error("the FHIR parser failed on this resource")]
    Panicked,
}

impl ParseError {
    fn syntax(e: &serde_json::Error) -> Self {
        ParseError::Syntax {
            line: e.line(),
            column: e.column(),
            message: scrub(&e.to_string()),
        }
    }

    /// fhirbolt's refusal of `value` (the resource as last tried).
    fn refused(value: &serde_json::Value, e: &fhirbolt::serde::json::Error) -> Self {
        let message = scrub(&e.to_string());
        match value.get("resourceType").and_then(serde_json::Value::as_str) {
            None => ParseError::NotAResource { message },
            Some(t) if e.to_string().ends_with("expected valid resourceType") => ParseError::UnknownType {
                resource_type: t.to_string(),
                message,
            },
            Some(_) => ParseError::Refused { message },
        }
    }
}

/// Parses one resource's JSON text: through the borrowed structs of
/// `super::fast` where they apply, else straight into its concrete type where
/// `super::direct` can, else through fhirbolt's `Resource` enum (all three
/// give the same resource; the last gives the only errors and notes reported).
///
/// FHIR JSON forbids empty arrays, empty objects and nulls, and fhirbolt 0.4
/// panics on some of them; they are removed first (with a note). A panic inside
/// fhirbolt on anything else is caught and reported as [`ParseError::Panicked`].
pub fn resource(text: &str) -> Result<Parsed, ParseError> {
    let cleaned = if super::fast::has_any(text.as_bytes(), &["[]", "{}", "null"]) {
        remove_empties(text)
    } else {
        None
    };
    let (text, cleaned_note) = match &cleaned {
        Some(c) => (
            c.as_str(),
            Some("empty arrays, empty objects or nulls removed (not allowed in FHIR JSON)"),
        ),
        None => (text, None),
    };
    let with_note = |mut p: Parsed| {
        if let Some(n) = cleaned_note {
            p.lenient_note = Some(match p.lenient_note.take() {
                Some(other) => format!("{n}; {other}"),
                None => n.to_string(),
            });
        }
        p
    };
    guarded(|| parse_modes(text))
        .unwrap_or(Err(ParseError::Panicked))
        .map(with_note)
}

/// [`resource`] with the error as its message text: kept for callers that
/// report the message only (the profile validator's base-R4 check).
pub fn parse(text: &str) -> Result<Parsed, String> {
    resource(text).map_err(|e| e.to_string())
}

fn parse_modes(text: &str) -> Result<Parsed, ParseError> {
    if let Some(resource) = super::fast::parse(text).or_else(|| super::direct::parse(text)) {
        return Ok(Parsed {
            resource,
            lenient_note: None,
        });
    }
    let strict = |t: &str| {
        fhirbolt::json::from_str::<Resource>(
            t,
            Some(DeserializationConfig {
                mode: DeserializationMode::Strict,
            }),
        )
    };
    let mut err = match strict(text) {
        Ok(resource) => {
            return Ok(Parsed {
                resource,
                lenient_note: None,
            })
        }
        Err(e) => e,
    };
    // fhirbolt's lax and compatibility modes loop forever on an unknown
    // array-valued element inside a datatype, so unknown elements are removed
    // here instead, one at a time, each removal checked by a strict parse.
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError::syntax(&e))?;
    let mut dropped = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let message = err.to_string();
        let Some((field, expected)) = unknown_field(&message) else {
            break;
        };
        let Some(next) = remove_unknown(&mut value, &field, &expected, &message, &strict) else {
            break;
        };
        dropped.push(field);
        match next {
            Ok(resource) => {
                let note = format!("unknown element(s) dropped: {}", dropped.join(", "));
                return Ok(Parsed {
                    resource,
                    lenient_note: Some(note),
                });
            }
            Err(e) => err = e,
        }
    }
    Err(ParseError::refused(&value, &err))
}

/// How many unknown elements one resource may have before it is refused.
const MAX_REPAIRS: usize = 16;

/// `(field, expected fields)` from serde's "unknown field `x`, expected one of `a`, `b`".
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.split("unknown field `").nth(1)?;
    let field = rest.split('`').next()?.to_string();
    let expected = rest.split_once("expected").map(|(_, e)| e).unwrap_or("");
    let names = expected.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((field, names))
}

/// Removes `field` from the first object (depth first) where it is the only
/// key outside `expected` and removing it changes the strict parse result.
/// Returns that result, or `None` when no removal helped.
fn remove_unknown(
    value: &mut serde_json::Value,
    field: &str,
    expected: &[String],
    err: &str,
    strict: &dyn Fn(&str) -> Result<Resource, fhirbolt::serde::json::Error>,
) -> Option<Result<Resource, fhirbolt::serde::json::Error>> {
    let mut paths = Vec::new();
    candidates(value, field, expected, &mut Vec::new(), &mut paths);
    for path in paths {
        let obj = path.iter().try_fold(&mut *value, |v, step| match step {
            Step::Key(k) => v.get_mut(k.as_str()),
            Step::Index(i) => v.get_mut(*i),
        })?;
        let removed = obj.as_object_mut()?.remove(field)?;
        match strict(&value.to_string()) {
            Ok(r) => return Some(Ok(r)),
            Err(e) if e.to_string() != err => return Some(Err(e)),
            Err(_) => {
                // Same error: this was not the offending element; put it back.
                let obj = path.iter().try_fold(&mut *value, |v, step| match step {
                    Step::Key(k) => v.get_mut(k.as_str()),
                    Step::Index(i) => v.get_mut(*i),
                })?;
                obj.as_object_mut()?.insert(field.to_string(), removed);
            }
        }
    }
    None
}

enum Step {
    Key(String),
    Index(usize),
}

fn candidates(v: &serde_json::Value, field: &str, expected: &[String], at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        serde_json::Value::Object(map) => {
            let fits = map.contains_key(field)
                && map.keys().all(|k| {
                    k == field || k == "resourceType" || expected.iter().any(|e| e == k.trim_start_matches('_'))
                });
            if fits {
                out.push(
                    at.iter()
                        .map(|s| match s {
                            Step::Key(k) => Step::Key(k.clone()),
                            Step::Index(i) => Step::Index(*i),
                        })
                        .collect(),
                );
            }
            for (k, child) in map {
                at.push(Step::Key(k.clone()));
                candidates(child, field, expected, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Step::Index(i));
                candidates(child, field, expected, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Re-serializes `text` without empty arrays, empty objects and nulls; `None`
/// when there were none (or the text is not JSON).
fn remove_empties(text: &str) -> Option<String> {
    fn strip(v: &mut serde_json::Value) -> bool {
        let mut changed = false;
        match v {
            serde_json::Value::Object(map) => {
                for child in map.values_mut() {
                    changed |= strip(child);
                }
                let before = map.len();
                map.retain(|_, c| !is_empty(c));
                changed |= map.len() != before;
            }
            serde_json::Value::Array(items) => {
                for child in items.iter_mut() {
                    changed |= strip(child);
                }
                let before = items.len();
                items.retain(|c| !is_empty(c));
                changed |= items.len() != before;
            }
            _ => {}
        }
        changed
    }
    fn is_empty(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    strip(&mut value).then(|| value.to_string())
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `None` without printing the panic message
/// (the caller reports it as a data issue instead).
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    QUIET.with(|q| q.set(false));
    result
}

/// Removes quoted values from a parser message, keeping element names
/// (which serde puts in backticks): values may identify a patient.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for ch in message.chars() {
        match ch {
            '"' if !in_quote => {
                in_quote = true;
                out.push_str("\"…");
            }
            '"' => {
                in_quote = false;
                out.push('"');
            }
            _ if in_quote => {}
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_then_lax_with_a_note() {
        let ok = parse(r#"{"resourceType":"Patient","id":"p","gender":"female"}"#).unwrap();
        assert!(ok.lenient_note.is_none());
        let odd = parse(r#"{"resourceType":"Patient","id":"p","fooBar":1}"#).unwrap();
        assert!(odd.lenient_note.unwrap().contains("fooBar"));
        // A datatype where a primitive belongs: fhirbolt's lax mode would loop forever here.
        let nested = r#"{"resourceType":"Observation","id":"a1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"93493-5"}]},"subject":{"reference":{"coding":[{"system":"x"}]}}}"#;
        let p = parse(nested).unwrap();
        assert_eq!(p.lenient_note.as_deref(), Some("unknown element(s) dropped: coding"));
        match p.resource {
            Resource::Observation(o) => assert_eq!(o.code.coding.len(), 1),
            _ => panic!("not an Observation"),
        }
        let numbers = parse(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":2080.50}}"#,
        );
        assert!(numbers.unwrap().lenient_note.is_none());
    }

    #[test]
    fn empty_arrays_are_removed_not_fatal() {
        let p =
            parse(r#"{"resourceType":"Patient","id":"p","name":[],"gender":"male","address":[{}],"birthDate":null}"#)
                .unwrap();
        assert!(p.lenient_note.unwrap().contains("empty arrays"));
    }

    #[test]
    fn errors_say_what_kind_of_failure_it_was() {
        match resource(r#"{"resourceType":"Patient","id":"p""#) {
            Err(ParseError::Syntax { line: 1, column, .. }) => assert!(column > 0),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resource(r#"{"id":"p"}"#),
            Err(ParseError::NotAResource { .. })
        ));
        assert!(matches!(resource("[1]"), Err(ParseError::NotAResource { .. })));
        match resource(r#"{"resourceType":"Nonsense","id":"p"}"#) {
            Err(ParseError::UnknownType { resource_type, .. }) => assert_eq!(resource_type, "Nonsense"),
            other => panic!("{other:?}"),
        }
        let refused = resource(r#"{"resourceType":"Patient","id":"p","gender":3}"#).unwrap_err();
        assert!(matches!(refused, ParseError::Refused { .. }), "{refused:?}");
        assert_eq!(
            parse(r#"{"id":"p"}"#).unwrap_err(),
            resource(r#"{"id":"p"}"#).unwrap_err().to_string()
        );
    }

    #[test]
    fn scrub_hides_values_but_keeps_names() {
        assert_eq!(
            scrub("invalid type: string \"Smith\", expected `birthDate`"),
            "invalid type: string \"…\", expected `birthDate`"
        );
    }
}
