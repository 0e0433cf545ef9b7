//! Applying the rules to one resource: allow-list, pseudonyms, date shift,
//! free-text reduction, age pooling, ZIP3; counting every rule that fired.
//!
//! A resource is read from its text into a borrowed tree (`deid::json`)
//! and its de-identified JSON is written straight out while walking it: no
//! tree of the result is built. The bytes are those `serde_json::Value`
//! gives (an ordered map): members in their source order, the new `id` in
//! the place of the old one (else last), removed members and members left
//! empty (`{}`, `[]`) leaving nothing behind.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::dates::{shift, shifted_year, Shifted};
use super::json::{write_str, Json};
use super::rules::{Allowed, DeidRules, Profile};
use super::scratch::Scratch;
use super::SiteKey;
use crate::domain::SourceRef;
use crate::fhir::reference::{self, Ref};
use crate::mapping::MappingSet;

/// Bundle fullUrls (`urn:uuid:…`) of the resources a bundle holds, to what they name.
pub type Links = BTreeMap<String, SourceRef>;

static NO_LINKS: Links = BTreeMap::new();

/// Extension on the qualifying Condition carrying the onset age in completed
/// years (pooled at 90), so the age survives birthDate reduction.
pub use crate::mapping::extract::ONSET_AGE_URL;

/// Ages at or above this are written as this (Safe Harbor: over 89 pooled).
pub const AGE_POOL: u32 = 90;

/// How often each rule fired, by rule name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RulesFired(pub BTreeMap<String, u64>);

impl RulesFired {
    /// Counts one firing of `rule`.
    pub fn fire(&mut self, rule: &str) {
        match self.0.get_mut(rule) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(rule.to_string(), 1);
            }
        }
    }

    /// Adds the counts of `other` (firings counted elsewhere, e.g. on another thread).
    pub fn add(&mut self, other: RulesFired) {
        for (rule, n) in other.0 {
            *self.0.entry(rule).or_default() += n;
        }
    }
}

/// A de-identified resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Deidentified {
    /// Its type.
    pub resource_type: String,
    /// Its new id.
    pub pseudonym: String,
    /// The resource's compact JSON (one line).
    pub json: String,
}

/// What de-identifying one resource's text gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Kept, de-identified.
    Kept(Deidentified),
    /// Left out, and why.
    Dropped(Dropped),
    /// Not JSON (counted as `dropped:unparseable`).
    Unparseable,
}

/// A resource left out of the bundle, named by type and pseudonym only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dropped {
    /// Its type.
    pub resource_type: String,
    /// Its pseudonym.
    pub pseudonym: String,
    /// The rule that dropped it.
    pub rule: String,
}

/// The rules of the elements whose removal is counted by name (`removed:` and
/// the element name); others count as `removed:other`.
const NAMED_REMOVALS: &[&str] = &[
    "removed:identifier",
    "removed:name",
    "removed:telecom",
    "removed:address",
    "removed:text",
    "removed:note",
    "removed:extension",
    "removed:meta",
    "removed:contact",
    "removed:photo",
    "removed:generalPractitioner",
    "removed:managingOrganization",
    "removed:performer",
    "removed:encounter",
    "removed:dosage",
    "removed:dosageInstruction",
    "removed:requester",
    "removed:recorder",
    "removed:asserter",
    "removed:reasonCode",
    "removed:reasonReference",
    "removed:maritalStatus",
    "removed:communication",
    "removed:link",
    "removed:multipleBirthBoolean",
    "removed:multipleBirthInteger",
    "removed:deceasedDateTime",
    "removed:issued",
    "removed:referenceRange",
    "removed:specimen",
    "removed:device",
    "removed:bodySite",
    "removed:method",
    "removed:component",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent<'a> {
    Concept,
    Coding(Option<(&'a str, &'a str)>),
    Reference,
    Other,
}

struct Ctx<'s> {
    resource_type: &'s str,
    offset: Option<i64>,
    scratch: &'s mut Scratch,
}

impl Ctx<'_> {
    fn fire(&mut self, rule: &str) {
        self.scratch.fired.fire(rule);
    }

    fn removed(&mut self, key: &str) {
        let named = NAMED_REMOVALS.iter().find(|r| r.strip_prefix("removed:") == Some(key));
        self.fire(named.copied().unwrap_or("removed:other"));
    }
}

/// What the resource's own top level gets besides its walked members.
struct Root<'r> {
    /// Its new id, in the place of the old one (else last).
    pseudonym: &'r str,
    /// The onset-age extension, in the place of a kept `extension` (else last).
    extension: Option<Value>,
    /// A Condition: its `onsetAge` is pooled.
    condition: bool,
}

/// Applies the rules with one key, profile and mapping set.
pub struct Deidentifier<'a> {
    rules: &'a DeidRules,
    key: &'a SiteKey,
    profile: Profile,
    mappings: &'a MappingSet,
    links: &'a Links,
}

impl<'a> Deidentifier<'a> {
    /// A de-identifier.
    pub fn new(rules: &'a DeidRules, key: &'a SiteKey, profile: Profile, mappings: &'a MappingSet) -> Self {
        Self {
            rules,
            key,
            profile,
            mappings,
            links: &NO_LINKS,
        }
    }

    /// Resolves `urn:uuid:` (and other fullUrl) references through `links`:
    /// only the resources going into the bundle should be listed, so a
    /// reference to anything else is removed (`removed:unresolvable-reference`).
    pub fn with_links(mut self, links: &'a Links) -> Self {
        self.links = links;
        self
    }

    /// The `Type/id` a reference names: typed, or a fullUrl listed in the links.
    fn target(&self, r: &str) -> Option<(String, String)> {
        match reference::parse(r) {
            Ref::Typed { resource_type, id } => Some((resource_type, id)),
            Ref::Opaque(url) => self.links.get(&url).map(|t| (t.resource_type.clone(), t.id.clone())),
            Ref::Contained(_) => None,
        }
    }

    /// The patient a resource belongs to (its own id for a Patient).
    fn patient_of(&self, resource: &Json<'_>) -> Option<String> {
        if resource.get("resourceType").and_then(Json::as_str) == Some("Patient") {
            return resource.get("id").and_then(Json::as_str).map(str::to_string);
        }
        ["subject", "patient"].iter().find_map(|k| {
            let r = resource.get(k)?.get("reference")?.as_str()?;
            match self.target(r) {
                Some((resource_type, id)) if resource_type == "Patient" => Some(id),
                _ => None,
            }
        })
    }

    /// De-identifies the resource whose JSON text is `raw`, or says why it is
    /// left out. `onset_age` (completed years) adds the onset-age extension
    /// ([`onset_age_extension`]) in the place of any kept `extension`.
    /// `scratch` counts the rules fired and remembers pseudonyms between calls.
    pub fn apply_text(&self, raw: &str, onset_age: Option<u32>, scratch: &mut Scratch) -> Applied {
        let Ok(resource) = Json::parse(raw) else {
            scratch.fired.fire("dropped:unparseable");
            return Applied::Unparseable;
        };
        match self.apply(&resource, onset_age, scratch) {
            Ok(d) => Applied::Kept(d),
            Err(d) => Applied::Dropped(d),
        }
    }

    fn apply(
        &self,
        resource: &Json<'_>,
        onset_age: Option<u32>,
        scratch: &mut Scratch,
    ) -> Result<Deidentified, Dropped> {
        let resource_type = resource.get("resourceType").and_then(Json::as_str).unwrap_or("");
        let id = resource.get("id").and_then(Json::as_str).unwrap_or("");
        let pseudonym = self.key.pseudonym(resource_type, id);
        let dropped = |rule: &'static str, scratch: &mut Scratch| {
            scratch.fired.fire(rule);
            Dropped {
                resource_type: resource_type.to_string(),
                pseudonym: pseudonym.clone(),
                rule: rule.to_string(),
            }
        };
        if !self.rules.knows(resource_type) {
            return Err(dropped("dropped:type-not-allowed", scratch));
        }
        if has_modifier_extension(resource) {
            return Err(dropped("dropped:modifier-extension", scratch));
        }
        let Json::Object(members) = resource else {
            return Err(dropped("dropped:not-an-object", scratch));
        };
        let max = self.rules.max_offset_days;
        let offset = self
            .patient_of(resource)
            .map(|p| scratch.offset_days(self.key, &p, max));
        let extension = onset_age.map(|age| Value::Array(vec![onset_age_extension(age, &mut scratch.fired)]));
        let mut root = Root {
            pseudonym: &pseudonym,
            extension,
            condition: resource_type == "Condition",
        };
        let mut ctx = Ctx {
            resource_type,
            offset,
            scratch,
        };
        let mut out = Vec::with_capacity(256);
        self.walk(&mut ctx, members, &mut String::new(), false, Some(&mut root), &mut out);
        ctx.fire("id-pseudonymized");
        Ok(Deidentified {
            resource_type: resource_type.to_string(),
            pseudonym: pseudonym.clone(),
            // The walk writes JSON of UTF-8 strings only.
            json: String::from_utf8(out).unwrap_or_default(),
        })
    }

    /// Writes the kept members of `obj` (at dotted `path`, kept whole when
    /// `whole`) as a JSON object to `out`; false when none is kept (`{}`).
    /// `root`: the resource's own top level.
    fn walk(
        &self,
        ctx: &mut Ctx<'_>,
        obj: &[(std::borrow::Cow<'_, str>, Json<'_>)],
        path: &mut String,
        whole: bool,
        mut root: Option<&mut Root<'_>>,
        out: &mut Vec<u8>,
    ) -> bool {
        let parent = parent_kind(obj, path);
        let top = path.is_empty();
        let (mut kept, mut id_done, mut extension_done) = (0usize, false, false);
        out.push(b'{');
        for (k, v) in obj {
            let mark = out.len();
            if kept > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            let at = out.len();
            if top && k == "resourceType" {
                v.write(out);
                kept += 1;
                continue;
            }
            let len = path.len();
            if !top {
                path.push('.');
            }
            path.push_str(k);
            let child_whole = whole || {
                match self.rules.allowed(ctx.resource_type, path, self.profile) {
                    Allowed::Whole => true,
                    Allowed::Partly => false,
                    Allowed::No => {
                        ctx.removed(k);
                        path.truncate(len);
                        out.truncate(mark);
                        continue;
                    }
                }
            };
            let written = self.element(ctx, k, v, path, child_whole, parent, out);
            path.truncate(len);
            if !written {
                out.truncate(mark);
                continue;
            }
            kept += 1;
            if let Some(root) = root.as_deref_mut() {
                match k.as_ref() {
                    "id" => {
                        out.truncate(at);
                        write_str(out, root.pseudonym);
                        id_done = true;
                    }
                    "extension" if root.extension.is_some() => {
                        out.truncate(at);
                        write_value(out, root.extension.as_ref());
                        extension_done = true;
                    }
                    "onsetAge" if root.condition => pool_written_onset_age(out, at, &mut ctx.scratch.fired),
                    _ => {}
                }
            }
        }
        if let Some(root) = root {
            if !id_done {
                kept += member(out, kept, "id", |out| write_str(out, root.pseudonym));
            }
            if !extension_done && root.extension.is_some() {
                kept += member(out, kept, "extension", |out| write_value(out, root.extension.as_ref()));
            }
        }
        out.push(b'}');
        kept > 0
    }

    /// Writes the kept form of member `k` (value `v`, at dotted `path`) to
    /// `out`; false (with `out` possibly holding a part of it) when nothing
    /// or an empty object or array is kept.
    #[allow(
        clippy::too_many_arguments,
        reason = "the walk's state, passed down as the Value walk passed it"
    )]
    fn element(
        &self,
        ctx: &mut Ctx<'_>,
        k: &str,
        v: &Json<'_>,
        path: &mut String,
        whole: bool,
        parent: Parent<'_>,
        out: &mut Vec<u8>,
    ) -> bool {
        match (k, parent) {
            ("extension", _) => return self.extensions(ctx, v, out),
            ("text", Parent::Concept) | ("valueString", _) => return self.text(ctx, v, out),
            ("text", _) if matches!(v, Json::Object(_)) => {
                ctx.removed("text");
                return false;
            }
            ("display", Parent::Coding(code)) => return self.display(ctx, v, code, out),
            ("display", Parent::Reference) | ("identifier", Parent::Reference) => {
                ctx.fire("removed:reference-display");
                return false;
            }
            ("reference", Parent::Reference) => return self.reference(ctx, v, out),
            ("contained", _) => return self.contained(ctx, v, out),
            ("postalCode", _) => return self.zip(ctx, v, out),
            ("birthDate", _) => return self.birth_date(ctx, v, out),
            _ => {}
        }
        if self.rules.date_elements.contains(k) {
            if let Some(s) = v.as_str() {
                return self.date(ctx, s, out);
            }
        }
        match v {
            Json::Object(o) => self.walk(ctx, o, path, whole, None, out),
            // An item whose every element was removed leaves no `{}` behind.
            Json::Array(items) => write_items(items, out, |item, out| match item {
                Json::Object(o) => self.walk(ctx, o, path, whole, None, out),
                other => {
                    other.write(out);
                    true
                }
            }),
            other => {
                other.write(out);
                true
            }
        }
    }

    fn extensions(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let Json::Array(items) = v else { return false };
        write_items(items, out, |e, out| {
            let keep = e
                .get("url")
                .and_then(Json::as_str)
                .is_some_and(|u| self.rules.extensions.contains(u));
            if keep {
                e.write(out);
            } else {
                ctx.removed("extension");
            }
            keep
        })
    }

    fn text(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let mappings = self.mappings;
        let w = v
            .as_str()
            .and_then(|t| ctx.scratch.wording(t, |t| wording(mappings, t)));
        match w {
            Some(w) => {
                ctx.fire("text-reduced-to-wording");
                write_str(out, &w);
                true
            }
            None => {
                ctx.fire("removed:free-text");
                false
            }
        }
    }

    fn display(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, code: Option<(&str, &str)>, out: &mut Vec<u8>) -> bool {
        let known = code.is_some_and(|(s, c)| !self.mappings.valuesets_of(s, c).is_empty());
        if known {
            v.write(out);
        } else {
            ctx.fire("removed:coding-display");
        }
        known
    }

    fn reference(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let Some(text) = v.as_str() else { return false };
        let parsed = reference::parse(text);
        if matches!(parsed, Ref::Contained(_)) {
            v.write(out);
            return true;
        }
        let Some((resource_type, id)) = self.target(text) else {
            ctx.fire("removed:unresolvable-reference");
            return false;
        };
        let rule = if matches!(parsed, Ref::Opaque(_)) {
            "reference-resolved"
        } else {
            "reference-pseudonymized"
        };
        ctx.fire(rule);
        let p = ctx.scratch.pseudonym(self.key, &resource_type, &id);
        write_str(out, &format!("{resource_type}/{p}"));
        true
    }

    fn contained(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let Json::Array(items) = v else { return false };
        write_items(items, out, |item, out| {
            let t = item.get("resourceType").and_then(Json::as_str).unwrap_or("");
            let obj = match item {
                Json::Object(o) if self.rules.knows(t) && !has_modifier_extension(item) => o,
                _ => {
                    ctx.fire("dropped:contained");
                    return false;
                }
            };
            let mut inner = Ctx {
                resource_type: t,
                offset: ctx.offset,
                scratch: &mut *ctx.scratch,
            };
            // Never empty: its resourceType is kept.
            self.walk(&mut inner, obj, &mut String::new(), false, None, out);
            true
        })
    }

    fn zip(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let Some(text) = v.as_str() else { return false };
        let digits: String = text.chars().filter(char::is_ascii_digit).take(3).collect();
        if digits.len() < 3 {
            ctx.removed("address");
            return false;
        }
        if self.rules.restricted_zip3.contains(&digits) {
            ctx.fire("zip3-restricted-to-000");
            write_str(out, "000");
        } else {
            ctx.fire("zip-to-3-digits");
            write_str(out, &digits);
        }
        true
    }

    fn birth_date(&self, ctx: &mut Ctx<'_>, v: &Json<'_>, out: &mut Vec<u8>) -> bool {
        let (Some(s), Some(offset)) = (v.as_str(), ctx.offset) else {
            return false;
        };
        match self.profile {
            Profile::SafeHarbor => {
                ctx.fire("birthdate-to-shifted-year");
                shifted_year(s, offset).is_some_and(|y| {
                    write_str(out, &y);
                    true
                })
            }
            Profile::Limited => self.date(ctx, s, out),
        }
    }

    fn date(&self, ctx: &mut Ctx<'_>, s: &str, out: &mut Vec<u8>) -> bool {
        let Some(offset) = ctx.offset else {
            ctx.fire("removed:date-without-patient");
            return false;
        };
        match shift(s, offset) {
            Shifted::Full(d, time_dropped) => {
                ctx.fire("date-shifted");
                if time_dropped {
                    ctx.fire("time-dropped");
                }
                write_str(out, &d);
                true
            }
            Shifted::Partial(d) => {
                ctx.fire("partial-date-shifted");
                write_str(out, &d);
                true
            }
            Shifted::Invalid => {
                ctx.fire("removed:invalid-date");
                false
            }
        }
    }
}

/// Appends member `key` (written by `value`) to an object holding `kept`
/// members so far; returns 1, the member added.
fn member(out: &mut Vec<u8>, kept: usize, key: &str, value: impl FnOnce(&mut Vec<u8>)) -> usize {
    if kept > 0 {
        out.push(b',');
    }
    write_str(out, key);
    out.push(b':');
    value(out);
    1
}

/// Appends `v` as compact JSON (`null` for none).
fn write_value(out: &mut Vec<u8>, v: Option<&Value>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(out, &v.unwrap_or(&Value::Null));
}

/// Pools the Condition's `onsetAge` written to `out` from `at` on: read back
/// as the `Value` it would have been, pooled, written again.
fn pool_written_onset_age(out: &mut Vec<u8>, at: usize, fired: &mut RulesFired) {
    let Some(Ok(age)) = out.get(at..).map(serde_json::from_slice::<Value>) else {
        return;
    };
    let mut one = Map::new();
    one.insert("onsetAge".into(), age);
    pool_onset_age(&mut one, fired);
    out.truncate(at);
    write_value(out, one.get("onsetAge"));
}

fn parent_kind<'o>(obj: &'o [(std::borrow::Cow<'_, str>, Json<'o>)], path: &str) -> Parent<'o> {
    let get = |key: &str| obj.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    if matches!(get("coding"), Some(Json::Array(_))) {
        Parent::Concept
    } else if path == "coding" || path.ends_with(".coding") {
        let code = get("system")
            .and_then(Json::as_str)
            .zip(get("code").and_then(Json::as_str));
        Parent::Coding(code)
    } else if get("reference").is_some() {
        Parent::Reference
    } else {
        Parent::Other
    }
}

fn has_modifier_extension(v: &Json<'_>) -> bool {
    match v {
        Json::Object(o) => o
            .iter()
            .any(|(k, v)| k == "modifierExtension" || has_modifier_extension(v)),
        Json::Array(items) => items.iter().any(has_modifier_extension),
        _ => false,
    }
}

/// The value-set wording a free text matches (`; `-joined when several), or
/// `None` when it matches none: only our own code tables' words leave.
pub fn wording(mappings: &MappingSet, text: &str) -> Option<String> {
    let lower = text.trim().to_lowercase();
    let mut words: Vec<&str> = Vec::new();
    for vs in mappings.valuesets.iter().filter(|vs| vs.matches_text(text)) {
        let hit = vs.text.iter().find(|w| {
            if w.len() <= 3 {
                lower == **w
            } else {
                lower.contains(w.as_str())
            }
        });
        if let Some(w) = hit {
            if !words.contains(&w.as_str()) {
                words.push(w);
            }
        }
    }
    (!words.is_empty()).then(|| words.join("; "))
}

fn pool_onset_age(out: &mut Map<String, Value>, fired: &mut RulesFired) {
    let Some(age) = out.get_mut("onsetAge").and_then(Value::as_object_mut) else {
        return;
    };
    let factor = match age.get("code").and_then(Value::as_str) {
        Some("a") | None => 1.0,
        Some("mo") => 1.0 / 12.0,
        Some("wk") => 7.0 / 365.25,
        Some("d") => 1.0 / 365.25,
        Some(_) => return,
    };
    let years = age.get("value").and_then(Value::as_f64).map(|v| v * factor);
    if years.is_some_and(|y| y >= f64::from(AGE_POOL)) {
        age.insert("value".into(), Value::from(AGE_POOL));
        age.insert("unit".into(), Value::String("a".into()));
        age.insert("code".into(), Value::String("a".into()));
        fired.fire("age-over-89-pooled");
    }
}

/// The onset-age extension for `years` (pooled at [`AGE_POOL`]).
pub fn onset_age_extension(years: u32, fired: &mut RulesFired) -> Value {
    if years >= AGE_POOL {
        fired.fire("age-over-89-pooled");
    }
    serde_json::json!({"url": ONSET_AGE_URL, "valueInteger": years.min(AGE_POOL)})
}

/// Writes `items` as a JSON array, each through `item`, which says whether
/// it wrote one to keep (what it wrote otherwise is taken back, separator
/// included); true when any was kept.
fn write_items(items: &[Json<'_>], out: &mut Vec<u8>, mut item: impl FnMut(&Json<'_>, &mut Vec<u8>) -> bool) -> bool {
    out.push(b'[');
    let mut kept = 0usize;
    for one in items {
        let mark = out.len();
        if kept > 0 {
            out.push(b',');
        }
        if item(one, out) {
            kept += 1;
        } else {
            out.truncate(mark);
        }
    }
    out.push(b']');
    kept > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(raw: &str, onset_age: Option<u32>) -> (String, RulesFired) {
        let (rules, key) = (DeidRules::builtin().unwrap(), SiteKey::from_bytes(&[7; 32]));
        let mappings = MappingSet::builtin().unwrap();
        let deid = Deidentifier::new(&rules, &key, Profile::SafeHarbor, &mappings);
        let mut scratch = Scratch::default();
        match deid.apply_text(raw, onset_age, &mut scratch) {
            Applied::Kept(d) => (d.json, scratch.fired),
            other => panic!("not kept: {other:?}"),
        }
    }

    #[test]
    fn the_new_id_takes_the_old_place_else_the_last_and_the_onset_age_extension_goes_last() {
        let key = SiteKey::from_bytes(&[7; 32]);
        let (c, p) = (key.pseudonym("Condition", "c1"), key.pseudonym("Patient", "p1"));
        let raw = r#"{"resourceType":"Condition","extension":[{"url":"x","valueString":"y"}],"id":"c1",
            "onsetAge":{"value":95,"unit":"years","system":"http://unitsofmeasure.org","code":"a"},
            "note":[{"text":"free"}],"subject":{"reference":"Patient/p1","display":"Name"},"code":{}}"#;
        let (json, fired) = applied(raw, Some(95));
        let ext = r#"[{"url":"https://imnm-fhir.org/fhir/StructureDefinition/onset-age-years","valueInteger":90}]"#;
        let expected = format!(
            r#"{{"resourceType":"Condition","id":"{c}","onsetAge":{{"value":90,"unit":"a","system":"http://unitsofmeasure.org","code":"a"}},"subject":{{"reference":"Patient/{p}"}},"extension":{ext}}}"#
        );
        assert_eq!(json, expected);
        assert_eq!(fired.0["age-over-89-pooled"], 2, "the element and the extension");
        assert_eq!(fired.0["removed:extension"], 1);
        let (json, _) = applied(r#"{"resourceType":"Patient","gender":"female","id":{}}"#, None);
        let p0 = key.pseudonym("Patient", "");
        assert_eq!(
            json,
            format!(r#"{{"resourceType":"Patient","gender":"female","id":"{p0}"}}"#)
        );
    }

    #[test]
    fn numbers_strings_and_repeated_keys_come_out_as_serde_json_value_writes_them() {
        let raw = r#"{"resourceType":"Observation","id":"o","status":"fin\u0061l","status":"final",
            "valueQuantity":{"value":1.50e0,"unit":"\"U\"/L"},"interpretation":[{},{"coding":[{"code":"H"}]}]}"#;
        let (json, _) = applied(raw, None);
        let pseudonym = SiteKey::from_bytes(&[7; 32]).pseudonym("Observation", "o");
        let value: Value = serde_json::from_str(raw).unwrap();
        let mut expected = value.clone();
        expected["id"] = Value::String(pseudonym);
        expected["interpretation"] = serde_json::json!([{"coding":[{"code":"H"}]}]);
        assert_eq!(json, expected.to_string());
    }
}
