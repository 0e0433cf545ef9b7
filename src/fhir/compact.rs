//! A resource's JSON on one line, as `serde_json` writes it, without
//! re-serialising what is already written that way: most inputs (NDJSON
//! lines, a store's rows) are, and reading them into a `serde_json::Value`
//! and back costs more than everything else `imnm cohort` does with a
//! resource (BENCHMARKS.md, issue 29).
//!
//! [`already_compact`] proves from the bytes alone that the round trip would
//! give the text back: no whitespace outside strings, no escapes and no
//! control characters, no exponent (numbers otherwise keep their text:
//! serde_json's `arbitrary_precision`, turned on by fhirbolt), no key twice in
//! one object (the `Value` would keep one). Anything else takes the round trip.
//! A reader that has already parsed a text with `serde_json` (the fast
//! Observation parse) asks only `no_space_between_tokens`.

use std::borrow::Cow;

/// `raw` on one line: the text itself when `already_compact`, else
/// re-serialised compactly (pretty Bundle entries span lines); text that is
/// not JSON has its line breaks turned into spaces.
pub fn compact_json(raw: &str) -> Cow<'_, str> {
    if already_compact(raw) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => v.to_string(),
        Err(_) => raw.replace(['\n', '\r'], " "),
    })
}

/// True when reading `raw` into a `serde_json::Value` and writing it out
/// again would give `raw` itself (or `raw` is no JSON and has no line break).
pub fn already_compact(raw: &str) -> bool {
    let b = raw.as_bytes();
    // No escape and no control character anywhere (whitespace outside strings is
    // looked for below), and no `$serde_json` key (`arbitrary_precision` reads an
    // object with one as a number): one fold over the bytes for the three rare
    // ones (no early exit: the compiler turns it into vector compares), the exact
    // checks only when one is there.
    let rare = b
        .iter()
        .fold(false, |any, &c| any | (c < b' ') | (c == b'\\') | (c == b'$'));
    if rare && (b.iter().any(|&c| c < b' ' || c == b'\\') || raw.contains("$serde_json")) {
        return false;
    }
    // The keys of the open objects' members so far, and where each object's start
    // (sized for a resource's usual nesting, so that they seldom grow).
    let (mut keys, mut starts): (Vec<&[u8]>, Vec<usize>) = (Vec::with_capacity(64), Vec::with_capacity(16));
    // Open containers, innermost last: true for an object.
    let mut objects: Vec<bool> = Vec::with_capacity(16);
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                let Some(len) = memchr::memchr(b'"', &b[start..]) else {
                    return false;
                };
                if expect_key {
                    let key = &b[start..start + len];
                    let Some(&from) = starts.last() else { return false };
                    // Length and first byte first: most keys differ there, and a
                    // full compare is a call.
                    let same = |k: &&[u8]| k.len() == key.len() && k.first() == key.first() && *k == key;
                    if keys[from..].iter().any(same) {
                        return false;
                    }
                    keys.push(key);
                    expect_key = false;
                }
                i = start + len + 1;
                continue;
            }
            b'{' => {
                objects.push(true);
                starts.push(keys.len());
                expect_key = true;
            }
            b'[' => objects.push(false),
            b'}' => {
                objects.pop();
                keys.truncate(starts.pop().unwrap_or(0));
            }
            b']' => {
                objects.pop();
            }
            b',' => expect_key = objects.last() == Some(&true),
            // serde_json writes an exponent its own way (`1E3` as `1e+3`).
            b'e' | b'E' if i > 0 && b[i - 1].is_ascii_digit() => return false,
            b' ' => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

/// For a text `serde_json` has read as one JSON value and that has no
/// backslash: true when no whitespace lies between its tokens (so only what
/// else [`already_compact`] looks for, escapes, exponents and keys twice, is
/// left to know). A tab or line break can only lie between tokens there
/// (`serde_json` refuses one raw in a string). A space between tokens follows
/// `{`, `[`, `,` or `:`, or comes before `}`, `]`, `,` or `:`, or begins or ends
/// the text: JSON puts one of those between any two tokens. A space in a
/// string next to one of them (`"kinase, total"`) answers false: the caller
/// then takes the full look.
pub(crate) fn no_space_between_tokens(text: &str) -> bool {
    let b = text.as_bytes();
    if memchr::memchr3(b'\t', b'\n', b'\r', b).is_some() {
        return false;
    }
    memchr::memchr_iter(b' ', b).all(|i| {
        let before = i.checked_sub(1).and_then(|j| b.get(j));
        let after = b.get(i + 1);
        !matches!(before, None | Some(b'{' | b'[' | b',' | b':'))
            && !matches!(after, None | Some(b'}' | b']' | b',' | b':'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test: a failure should stop it loudly")]

    use proptest::prelude::*;

    use super::{already_compact, compact_json, no_space_between_tokens};

    fn round_trip(raw: &str) -> String {
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v) => v.to_string(),
            Err(_) => raw.replace(['\n', '\r'], " "),
        }
    }

    /// The claim: wherever the bytes say "already compact", the round trip agrees.
    fn holds(raw: &str) -> Result<(), String> {
        if already_compact(raw) && round_trip(raw) != raw {
            return Err(format!("not compact after all: {raw:?} → {:?}", round_trip(raw)));
        }
        (compact_json(raw) == round_trip(raw))
            .then_some(())
            .ok_or_else(|| format!("differs: {raw:?}"))
    }

    #[test]
    fn generated_lines_are_already_compact_and_other_shapes_take_the_round_trip() {
        let mut n = 0;
        crate::bench_data::for_each(&crate::bench_data::Spec::registry(3_000, 50), |_, j| {
            assert!(already_compact(j), "{j}");
            holds(j).unwrap();
            n += 1;
        });
        assert!(n > 2_000);
        for raw in [
            r#"{"a":1, "b":2}"#,
            "{\"a\":1,\n\"b\":2}",
            r#"{"a":"x\"y"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            " {\"a\":1}",
            "{\"a\":\"x\ty\"}",
            r#"{"$serde_json::private::Number":"1"}"#,
            r#"{"d":1E3}"#,
            r#"{"d":1e-2}"#,
            r#"{"a":["a","a"],"b":1,"b":2}"#,
        ] {
            assert!(!already_compact(raw), "{raw}");
            holds(raw).unwrap();
        }
        for raw in [
            r#"{"a":{"b":1},"b":[{"b":2},{"b":3}],"c":-0,"e":2.50,"f":[],"g":{}}"#,
            r#"[1,"a",{"a":null}]"#,
            r#"{"a":["x","x"],"b":{"x":1,"y":[{"x":2}]},"x":"a:b"}"#,
            r#"{"a":"é ü","b":true}"#,
            r#"{"a":1"#,
        ] {
            assert!(already_compact(raw), "{raw}");
            holds(raw).unwrap();
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            "\"a\"",
            "\"b\"",
            "\"a b\"",
            "\"\\n\"",
            "\"\\u0041\"",
            "\"\\/\"",
            "1",
            "-0",
            "1.50",
            "1e2",
            "1E+2",
            "true",
            "null",
            "\"é\"",
            "\"\t\"",
        ])
    }

    /// `raw` without the whitespace outside its strings (it has no escapes).
    fn squeezed(raw: &str) -> String {
        let mut in_string = false;
        raw.chars()
            .filter(|&c| {
                in_string ^= c == '"';
                in_string || c == '"' || !c.is_ascii_whitespace()
            })
            .collect()
    }

    #[test]
    fn spaces_in_strings_pass_and_spaces_between_tokens_do_not() {
        for raw in [
            r#"{"a":"Creatine kinase [Enzymatic activity/volume] in Serum or Plasma","b":[1,2]}"#,
            r#"{"a":"x y","b":{"c":"x] [y} {z"}}"#,
        ] {
            assert!(no_space_between_tokens(raw), "{raw}");
        }
        for raw in [
            r#"{"a": 1}"#,
            r#"{"a" :1}"#,
            r#"{"a":1 }"#,
            r#"{"a":[1 ,2]}"#,
            r#"{ "a":1}"#,
            r#"{"a":[ 1]}"#,
            r#"{"a":1} "#,
            "{\"a\":1}\n",
            "{\"a\":\t1}",
            r#"{"a":"kinase, total"}"#,
        ] {
            assert!(!no_space_between_tokens(raw), "{raw}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Wherever JSON without escapes passes, nothing lies between its tokens.
        #[test]
        fn no_space_between_tokens_is_never_wrong(parts in prop::collection::vec(piece(), 0..24)) {
            let raw = parts.concat();
            let json = !raw.contains('\\') && serde_json::from_str::<serde_json::Value>(&raw).is_ok();
            if json && no_space_between_tokens(&raw) {
                prop_assert_eq!(squeezed(&raw), raw);
            }
        }

        /// Compact JSON with whitespace put anywhere (in strings too, next to
        /// brackets, commas and colons there).
        #[test]
        fn whitespace_put_anywhere_is_seen_between_tokens(
            members in prop::collection::vec(("[a-c]{1,2}", "[a-z ,:\\[\\]{}]{0,6}", 0u8..4), 1..6),
            at in prop::collection::vec((0usize..200, prop::sample::select(vec![" ", "  ", "\n", "\t"])), 1..3),
        ) {
            let mut object = serde_json::Map::new();
            for (k, v, shape) in members {
                let value = match shape {
                    0 => serde_json::json!(v),
                    1 => serde_json::json!([v, 1, {"x": v}]),
                    2 => serde_json::json!({"y": v, "z": [true, -1.5]}),
                    _ => serde_json::json!(12),
                };
                object.insert(k, value);
            }
            let mut raw = serde_json::Value::Object(object).to_string();
            prop_assert!(no_space_between_tokens(&raw) || raw.contains(' '), "{}", raw);
            for (i, ws) in at {
                let i = (0..=i.min(raw.len())).rev().find(|&i| raw.is_char_boundary(i)).unwrap_or(0);
                raw.insert_str(i, ws);
            }
            if serde_json::from_str::<serde_json::Value>(&raw).is_ok() && no_space_between_tokens(&raw) {
                prop_assert_eq!(squeezed(&raw), raw);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Random token soups (mostly not JSON) and JSON objects built from them.
        #[test]
        fn never_claims_compact_wrongly(parts in prop::collection::vec(piece(), 0..24), members in prop::collection::vec((0usize..3, piece()), 0..6)) {
            holds(&parts.concat()).map_err(TestCaseError::fail)?;
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{v}", ["\"a\"", "\"b\"", "\"c\""][*k]))
                .collect();
            holds(&format!("{{{}}}", body.join(","))).map_err(TestCaseError::fail)?;
            holds(&format!("[{{{}}},{{{}}}]", body.join(","), body.join(","))).map_err(TestCaseError::fail)?;
        }
    }
}
