//! The fast way into fhirbolt for the types the mapping reads: straight into
//! the concrete resource type, skipping the generic element tree that the
//! `Resource` enum builds first (fhirbolt's part takes about a quarter of the
//! time; with the quoting walk below, under half; BENCHMARKS.md).
//!
//! fhirbolt's direct JSON path wants a decimal element as a JSON string (it
//! refuses every JSON number there, see fhirbolt-notes; a choice such as
//! `valueDecimal` it reads as a number), so numbers at decimal positions are
//! quoted first. Which positions are decimal is asked of
//! fhirbolt's own type tables ([`ElementPath`]), with the same sequence of
//! steps its element tree takes, so a number is quoted exactly where the
//! `Resource` path would read it as a decimal; a number anywhere else stays a
//! number (an integer is read as one, a number where a string belongs is
//! refused as before).
//!
//! This is only a shortcut: `None` (anything unusual: no leading
//! `resourceType`, an escaped or dotted key, an exponent at a decimal,
//! contained resources, a type not listed, or fhirbolt refusing the text)
//! sends the caller to the `Resource` path, whose answers, errors
//! and notes stay the only ones reported. Tests compare the two on every
//! resource the project generates and on random variations.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use fhirbolt_shared::path::ElementPath;
use fhirbolt_shared::FhirReleases;

use super::model::{resources, Resource};

/// Nesting the quoting walk follows; deeper text takes the `Resource` path.
const MAX_DEPTH: usize = 64;

/// Paths whose answer each thread remembers (forgotten all at once past this).
const MAX_KNOWN_PATHS: usize = 4096;

/// `text` parsed strictly into its concrete type, when the shortcut applies
/// and fhirbolt accepts it; `None` otherwise.
pub fn parse(text: &str) -> Option<Resource> {
    let rest = text.strip_prefix("{\"resourceType\":\"")?;
    let resource_type = &rest[..rest.find('"')?];
    let quoted = quote_decimals(text)?;
    let config = || {
        Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        })
    };
    macro_rules! direct {
        ($($name:ident),*) => {
            match resource_type {
                $(stringify!($name) => fhirbolt::json::from_str::<resources::$name>(&quoted, config())
                    .ok()
                    .map(|r| Resource::$name(Box::new(r))),)*
                _ => None,
            }
        };
    }
    direct!(
        Patient,
        Condition,
        Observation,
        DiagnosticReport,
        DocumentReference,
        Medication,
        MedicationStatement,
        MedicationRequest,
        MedicationAdministration,
        MedicationDispense
    )
}

/// `text` with every number at a decimal position turned into a string (the
/// text itself when there is none); `None` when the walk cannot tell.
pub fn quote_decimals(text: &str) -> Option<Cow<'_, str>> {
    let mut walk = Walk {
        s: text,
        b: text.as_bytes(),
        i: 0,
        frames: Vec::new(),
        decimals: Vec::new(),
    };
    walk.value(0)?;
    walk.ws();
    if walk.i != walk.b.len() {
        return None;
    }
    if walk.decimals.is_empty() {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 2 * walk.decimals.len());
    let mut at = 0;
    for (start, end) in walk.decimals {
        out.push_str(&text[at..start]);
        out.push('"');
        out.push_str(&text[start..end]);
        out.push('"');
        at = end;
    }
    out.push_str(&text[at..]);
    Some(Cow::Owned(out))
}

/// One step of the path to a value, as fhirbolt's element tree pushes it.
#[derive(Clone, Copy)]
enum Frame<'a> {
    /// A member's key, without a leading `_` (fhirbolt merges `_x` into `x`).
    Key(&'a str),
    /// A resource's type (the root, or a contained resource).
    Type(&'a str),
}

struct Walk<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    frames: Vec<Frame<'a>>,
    /// Byte ranges of numbers to quote.
    decimals: Vec<(usize, usize)>,
}

impl<'a> Walk<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(|_| ()),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        let mut typed = false;
        let mut first = true;
        loop {
            self.ws();
            let key = self.key()?;
            self.ws();
            (self.b.get(self.i) == Some(&b':')).then_some(())?;
            self.i += 1;
            self.ws();
            if key == "contained" {
                // fhirbolt reads contained resources through the `Resource` enum, which leaves
                // its reader set for the element tree: every member after them fails.
                return None;
            }
            if key == "resourceType" && self.at_resource() {
                // fhirbolt takes the type from wherever the key sits; the walk only follows it first.
                first.then_some(())?;
                let start = self.i;
                let end = self.string()?;
                self.frames.push(Frame::Type(self.s.get(start + 1..end)?));
                typed = true;
            } else {
                self.frames.push(Frame::Key(key.strip_prefix('_').unwrap_or(key)));
                self.value(depth + 1)?;
                self.frames.pop();
            }
            first = false;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if typed {
            self.frames.pop();
        }
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key without escapes or dots; `None` otherwise (an escaped key could spell
    /// anything; a dot would make two paths one in the remembered answers).
    fn key(&mut self) -> Option<&'a str> {
        let start = self.i;
        (self.b.get(start) == Some(&b'"')).then_some(())?;
        let end = start + 1 + memchr::memchr2(b'"', b'\\', &self.b[start + 1..])?;
        (self.b[end] == b'"').then_some(())?;
        self.i = end + 1;
        // Quotes are ASCII: the slice falls on character boundaries.
        let key = self.s.get(start + 1..end)?;
        (!key.contains('.')).then_some(key)
    }

    /// Skips a string at `i`; the index of its closing quote.
    fn string(&mut self) -> Option<usize> {
        (self.b.get(self.i) == Some(&b'"')).then_some(())?;
        let mut j = self.i + 1;
        loop {
            j += memchr::memchr2(b'"', b'\\', self.b.get(j..)?)?;
            if self.b[j] == b'\\' {
                j += 2;
            } else {
                self.i = j + 1;
                return Some(j);
            }
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then_some(())?;
        self.i += word.len();
        Some(())
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        self.i = super::skim::number(self.b, start)?;
        if self.quoted_here() {
            // serde_json rewrites an exponent (`1E3` becomes `1e+3`) on the `Resource` path.
            self.b[start..self.i]
                .iter()
                .all(|c| !matches!(c, b'e' | b'E'))
                .then_some(())?;
            self.decimals.push((start, self.i));
        }
        Some(())
    }

    /// Whether a number here is quoted: a decimal that is not a choice
    /// (`valueDecimal` is read as a JSON number). Remembered per path, as
    /// replaying the path costs more than the rest of the walk.
    fn quoted_here(&self) -> bool {
        thread_local! {
            static KNOWN: RefCell<(String, HashMap<String, bool>)> = RefCell::default();
        }
        KNOWN.with_borrow_mut(|(key, known)| {
            key.clear();
            for frame in &self.frames {
                let (Frame::Key(k) | Frame::Type(k)) = frame;
                key.push_str(k);
                key.push('.');
            }
            if let Some(&q) = known.get(key.as_str()) {
                return q;
            }
            let mut path = self.path();
            // fhirbolt keeps a number as an element whose `value` it then types by its parent.
            path.push("value");
            let choice = matches!(self.frames.last(), Some(Frame::Key(k)) if k.ends_with("Decimal"));
            let q = path.parent_element_is_decimal() && !choice;
            if known.len() >= MAX_KNOWN_PATHS {
                known.clear();
            }
            known.insert(key.clone(), q);
            q
        })
    }

    /// Whether an object here is a resource (fhirbolt reads its `resourceType`).
    fn at_resource(&self) -> bool {
        let path = self.path();
        path.is_empty() || path.current_element_is_resource()
    }

    /// fhirbolt's path to the current place, replayed (only asked at numbers
    /// and `resourceType` keys, which are few).
    fn path(&self) -> ElementPath {
        let mut path = ElementPath::new(FhirReleases::R4);
        for frame in &self.frames {
            match frame {
                Frame::Key(k) | Frame::Type(k) => path.push(k),
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_decimals_only() {
        let mr = r#"{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationCodeableConcept":{"text":"x"},"dosageInstruction":[{"sequence":1,"timing":{"repeat":{"frequency":2,"period":1.5,"periodUnit":"d"}},"doseAndRate":[{"doseQuantity":{"value":10,"unit":"mg"}}]}],"identifier":[{"value":123}]}"#;
        let q = quote_decimals(mr).unwrap();
        assert!(q.contains(r#""sequence":1,"#), "{q}");
        assert!(q.contains(r#""frequency":2,"period":"1.5""#), "{q}");
        assert!(q.contains(r#""doseQuantity":{"value":"10""#), "{q}");
        // Identifier.value is a string: a number there stays a number (and is refused).
        assert!(q.contains(r#""identifier":[{"value":123}]"#), "{q}");
        assert!(parse(mr).is_none());
    }

    #[test]
    fn extensions_are_typed_like_fhirbolt_does_and_contained_resources_left_alone() {
        let text = r#"{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationCodeableConcept":{"text":"x"},"_status":{"extension":[{"url":"u","valueDecimal":0.5},{"url":"v","valueInteger":3}]}}"#;
        let q = quote_decimals(text).unwrap();
        assert!(q.contains(r#""valueDecimal":0.5}"#), "{q}");
        assert!(q.contains(r#""valueInteger":3"#), "{q}");
        assert!(parse(text).is_some());
        let contained = text.replace(
            r#""id":"m","#,
            r#""id":"m","contained":[{"resourceType":"Medication","id":"d"}],"#,
        );
        assert!(resource_path(&contained).is_some());
        assert!(parse(&contained).is_none());
    }

    #[test]
    fn unusual_text_is_left_to_the_resource_path() {
        let dotted = r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity.value":1}"#;
        assert!(quote_decimals(dotted).is_none());
        for text in [
            r#"{"id":"p","resourceType":"Patient"}"#,
            r#"{"resourceType":"Patient","i\u0064":"p"}"#,
            r#"{"resourceType":"Encounter","id":"e","status":"planned","class":{"code":"x"}}"#,
            r#"{"resourceType":"Patient","id":"p""#,
            r#"{"resourceType":"Patient","id":"p"} x"#,
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    fn resource_path(text: &str) -> Option<Resource> {
        let config = Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        });
        fhirbolt::json::from_str::<Resource>(text, config).ok()
    }

    /// The shortcut gives what the `Resource` path gives, or nothing.
    fn agrees(text: &str) -> Result<bool, String> {
        match (parse(text), resource_path(text)) {
            (Some(d), Some(r)) if d == r => Ok(true),
            (Some(_), _) => Err(format!("the shortcut differs from the Resource path on {text}")),
            (None, _) => Ok(false),
        }
    }

    /// Every resource of the mapped types the project generates: the demo
    /// sites, the benchmark generator (three vendor styles, with its bad
    /// lines) and the example cohort. The shortcut must agree, and must apply
    /// wherever the `Resource` path accepts the text (or it saves nothing).
    #[test]
    fn agrees_with_the_resource_path_on_every_generated_resource() {
        let mut texts: Vec<String> = crate::demo::generate::demo_resources()
            .iter()
            .map(|v| v.to_string())
            .collect();
        let spec = crate::bench_data::Spec {
            faults: true,
            ..crate::bench_data::Spec::new(60_000)
        };
        crate::bench_data::for_each(&spec, |_, json| {
            if !json.contains("\"resourceType\":\"Observation\"") || json.contains("2157-6") || json.contains("93493-5")
            {
                texts.push(json.to_string());
            }
        });
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-cohort/ndjson");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            texts.extend(text.lines().map(str::to_string));
        }
        let (mut mapped, mut direct) = (0, 0);
        for text in &texts {
            let took = agrees(text).unwrap();
            let ty = text.split('"').nth(3).unwrap_or_default();
            if crate::fhir::MAPPED_TYPES.contains(&ty)
                && !text.contains("\"contained\"")
                && resource_path(text).is_some()
            {
                mapped += 1;
                direct += usize::from(took);
                assert!(took, "the shortcut passed over {text}");
            }
        }
        assert!(mapped > 1000 && direct == mapped, "{direct} of {mapped}");
    }

    use proptest::prelude::*;

    /// Values of any JSON kind, valid and not (numbers as FHIR never writes them too).
    fn scalar() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "1",
            "-0",
            "2.50",
            "0.0001",
            "1E3",
            "1e-2",
            "01",
            "1.",
            "-",
            "123456789012345678901234567890",
            "3000000000",
            "-7",
            r#""5""#,
            r#""2.5""#,
            r#""x""#,
            "true",
            r#""true""#,
            "[1]",
            r#"{"value":1}"#,
        ])
    }

    /// Places a scalar can sit in the mapped types: decimals, integers,
    /// strings, booleans, extensions, primitive extensions, contained resources.
    fn place() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            r#""valueQuantity":{"value":V,"unit":"U/L"}"#,
            r#""identifier":[{"system":"s","value":V}]"#,
            r#""valueInteger":V"#,
            r#""valueDecimal":V"#,
            r#""referenceRange":[{"low":{"value":V},"high":{"value":1}}]"#,
            r#""component":[{"code":{"text":"c"},"valueQuantity":{"value":V}}]"#,
            r#""extension":[{"url":"u","valueDecimal":V}]"#,
            r#""extension":[{"url":"u","valueInteger":V},{"url":"w","valueString":V}]"#,
            r#""_status":{"extension":[{"url":"u","valueDecimal":V}]}"#,
            r#""contained":[{"resourceType":"Medication","id":"m","amount":{"numerator":{"value":V}}}]"#,
            r#""contained":[{"id":"m","resourceType":"Medication","amount":{"numerator":{"value":V}}}]"#,
            r#""dosageInstruction":[{"sequence":V,"timing":{"repeat":{"frequency":V,"period":V}}}]"#,
            r#""multipleBirthInteger":V"#,
            r#""deceasedBoolean":V"#,
            r#""id":V"#,
            r#""valueSampledData":{"origin":{"value":V},"period":V,"dimensions":V,"data":"1 2"}"#,
            r#""note":[{"text":V}]"#,
            r#""fooBar":V"#,
            r#""_status":{"foo":V}"#,
            r#""valueQuantity":{"value":1,"fooBar":V}"#,
            r#""code":{"text":"t","coding":[{"code":"c","fooBar":V}]}"#,
            r#""name":[{"given":["A","B"],"_given":[{"extension":[{"url":"u","valueDecimal":V}]},{"id":"g"}]}]"#,
            r#""_birthDate":{"extension":[{"url":"u","valueQuantity":{"value":V}}]}"#,
            r#""valueString":"a\"b\u00e9","valueInteger":V"#,
            r#""effectivePeriod":{"start":"2024-01-02","end":V}"#,
            r#""meta":{"versionId":V,"lastUpdated":"2025-01-01T00:00:00Z"}"#,
            r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#,
            r#""valueRatio":{"numerator":{"value":V},"denominator":{"value":V}}"#,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        /// On any mix of places and values, the shortcut agrees or stands aside.
        #[test]
        fn never_differs_from_the_resource_path(
            ty in prop::sample::select(vec!["Observation", "MedicationRequest", "Patient", "Condition", "DiagnosticReport"]),
            parts in prop::collection::vec((place(), scalar()), 0..4),
            spaced in any::<bool>(),
        ) {
            let head = match ty {
                "Observation" => r#""status":"final","code":{"text":"t"}"#,
                "MedicationRequest" => r#""status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationCodeableConcept":{"text":"m"}"#,
                "Condition" => r#""subject":{"reference":"Patient/p"}"#,
                "DiagnosticReport" => r#""status":"final","code":{"text":"t"},"conclusionCode":[{"text":"c"}]"#,
                _ => r#""gender":"female""#,
            };
            let mut text = format!(r#"{{"resourceType":"{ty}",{head}"#);
            for (place, value) in parts {
                text.push(',');
                text.push_str(&place.replace('V', value));
            }
            text.push('}');
            if spaced {
                text = text.replace(',', ", ").replace(':', " : ").replacen(" : ", ":", 1);
            }
            agrees(&text).map_err(TestCaseError::fail)?;
        }
    }
}
