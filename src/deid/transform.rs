//! Applying the rules to one resource: allow-list, pseudonyms, date shift,
//! free-text reduction, age pooling, ZIP3; counting every rule that fired.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::dates::{shift, shifted_year, Shifted};
use super::rules::{Allowed, DeidRules, Profile};
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
    /// The resource.
    pub resource: Value,
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

struct Ctx<'f> {
    resource_type: String,
    offset: Option<i64>,
    fired: &'f mut RulesFired,
}

impl Ctx<'_> {
    fn removed(&mut self, key: &str) {
        let named = NAMED_REMOVALS.iter().find(|r| r.strip_prefix("removed:") == Some(key));
        self.fired.fire(named.copied().unwrap_or("removed:other"));
    }
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
    pub fn patient_of(&self, resource: &Value) -> Option<String> {
        if resource["resourceType"] == "Patient" {
            return resource["id"].as_str().map(str::to_string);
        }
        ["subject", "patient"]
            .iter()
            .find_map(|k| match self.target(resource[*k]["reference"].as_str()?) {
                Some((resource_type, id)) if resource_type == "Patient" => Some(id),
                _ => None,
            })
    }

    /// De-identifies one resource, or says why it is dropped.
    pub fn apply(&self, resource: &Value, fired: &mut RulesFired) -> Result<Deidentified, Dropped> {
        let resource_type = resource["resourceType"].as_str().unwrap_or("").to_string();
        let id = resource["id"].as_str().unwrap_or("");
        let pseudonym = self.key.pseudonym(&resource_type, id);
        let dropped = |rule: &'static str, fired: &mut RulesFired| {
            fired.fire(rule);
            Dropped {
                resource_type: resource_type.clone(),
                pseudonym: pseudonym.clone(),
                rule: rule.to_string(),
            }
        };
        if !self.rules.knows(&resource_type) {
            return Err(dropped("dropped:type-not-allowed", fired));
        }
        if has_modifier_extension(resource) {
            return Err(dropped("dropped:modifier-extension", fired));
        }
        let Some(obj) = resource.as_object() else {
            return Err(dropped("dropped:not-an-object", fired));
        };
        let offset = self
            .patient_of(resource)
            .map(|p| self.key.offset_days(&p, self.rules.max_offset_days));
        let mut ctx = Ctx {
            resource_type: resource_type.clone(),
            offset,
            fired,
        };
        let mut out = self.walk(&mut ctx, obj, "", false);
        out.insert("id".into(), Value::String(pseudonym.clone()));
        ctx.fired.fire("id-pseudonymized");
        if resource_type == "Condition" {
            pool_onset_age(&mut out, ctx.fired);
        }
        Ok(Deidentified {
            resource_type,
            pseudonym,
            resource: Value::Object(out),
        })
    }

    fn walk(&self, ctx: &mut Ctx<'_>, obj: &Map<String, Value>, path: &str, whole: bool) -> Map<String, Value> {
        let parent = parent_kind(obj, path);
        let mut out = Map::new();
        for (k, v) in obj {
            if path.is_empty() && k == "resourceType" {
                out.insert(k.clone(), v.clone());
                continue;
            }
            let child = if path.is_empty() {
                k.clone()
            } else {
                let mut c = String::with_capacity(path.len() + 1 + k.len());
                c.push_str(path);
                c.push('.');
                c.push_str(k);
                c
            };
            let child_whole = whole || {
                match self.rules.allowed(&ctx.resource_type, &child, self.profile) {
                    Allowed::Whole => true,
                    Allowed::Partly => false,
                    Allowed::No => {
                        ctx.removed(k);
                        continue;
                    }
                }
            };
            match self.element(ctx, k, v, &child, child_whole, parent) {
                Some(Value::Object(o)) if o.is_empty() => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {}
            }
        }
        out
    }

    fn element(
        &self,
        ctx: &mut Ctx<'_>,
        k: &str,
        v: &Value,
        path: &str,
        whole: bool,
        parent: Parent<'_>,
    ) -> Option<Value> {
        match (k, parent) {
            ("extension", _) => return self.extensions(ctx, v),
            ("text", Parent::Concept) | ("valueString", _) => return self.text(ctx, v),
            ("text", _) if v.is_object() => {
                ctx.removed("text");
                return None;
            }
            ("display", Parent::Coding(code)) => return self.display(ctx, v, code),
            ("display", Parent::Reference) | ("identifier", Parent::Reference) => {
                ctx.fired.fire("removed:reference-display");
                return None;
            }
            ("reference", Parent::Reference) => return self.reference(ctx, v),
            ("contained", _) => return self.contained(ctx, v),
            ("postalCode", _) => return self.zip(ctx, v),
            ("birthDate", _) => return self.birth_date(ctx, v),
            _ => {}
        }
        if self.rules.date_elements.contains(k) {
            if let Some(s) = v.as_str() {
                return self.date(ctx, s);
            }
        }
        match v {
            Value::Object(o) => Some(Value::Object(self.walk(ctx, o, path, whole))),
            Value::Array(items) => {
                // An item whose every element was removed leaves no `{}` behind.
                let kept: Vec<Value> = items
                    .iter()
                    .filter_map(|item| match item {
                        Value::Object(o) => Some(self.walk(ctx, o, path, whole))
                            .filter(|w| !w.is_empty())
                            .map(Value::Object),
                        other => Some(other.clone()),
                    })
                    .collect();
                Some(Value::Array(kept))
            }
            other => Some(other.clone()),
        }
    }

    fn extensions(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        let items = v.as_array()?;
        let kept: Vec<Value> = items
            .iter()
            .filter(|e| {
                let keep = e["url"].as_str().is_some_and(|u| self.rules.extensions.contains(u));
                if !keep {
                    ctx.removed("extension");
                }
                keep
            })
            .cloned()
            .collect();
        (!kept.is_empty()).then_some(Value::Array(kept))
    }

    fn text(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        match v.as_str().and_then(|t| wording(self.mappings, t)) {
            Some(w) => {
                ctx.fired.fire("text-reduced-to-wording");
                Some(Value::String(w))
            }
            None => {
                ctx.fired.fire("removed:free-text");
                None
            }
        }
    }

    fn display(&self, ctx: &mut Ctx<'_>, v: &Value, code: Option<(&str, &str)>) -> Option<Value> {
        let known = code.is_some_and(|(s, c)| !self.mappings.valuesets_of(s, c).is_empty());
        if known {
            Some(v.clone())
        } else {
            ctx.fired.fire("removed:coding-display");
            None
        }
    }

    fn reference(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        let text = v.as_str()?;
        let parsed = reference::parse(text);
        if matches!(parsed, Ref::Contained(_)) {
            return Some(v.clone());
        }
        let Some((resource_type, id)) = self.target(text) else {
            ctx.fired.fire("removed:unresolvable-reference");
            return None;
        };
        let rule = if matches!(parsed, Ref::Opaque(_)) {
            "reference-resolved"
        } else {
            "reference-pseudonymized"
        };
        ctx.fired.fire(rule);
        let p = self.key.pseudonym(&resource_type, &id);
        Some(Value::String(format!("{resource_type}/{p}")))
    }

    fn contained(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        let mut kept = Vec::new();
        for item in v.as_array()? {
            let t = item["resourceType"].as_str().unwrap_or("");
            let Some(obj) = item
                .as_object()
                .filter(|_| self.rules.knows(t) && !has_modifier_extension(item))
            else {
                ctx.fired.fire("dropped:contained");
                continue;
            };
            let mut inner = Ctx {
                resource_type: t.to_string(),
                offset: ctx.offset,
                fired: ctx.fired,
            };
            kept.push(Value::Object(self.walk(&mut inner, obj, "", false)));
        }
        (!kept.is_empty()).then_some(Value::Array(kept))
    }

    fn zip(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        let digits: String = v.as_str()?.chars().filter(char::is_ascii_digit).take(3).collect();
        if digits.len() < 3 {
            ctx.removed("address");
            return None;
        }
        if self.rules.restricted_zip3.contains(&digits) {
            ctx.fired.fire("zip3-restricted-to-000");
            return Some(Value::String("000".into()));
        }
        ctx.fired.fire("zip-to-3-digits");
        Some(Value::String(digits))
    }

    fn birth_date(&self, ctx: &mut Ctx<'_>, v: &Value) -> Option<Value> {
        let (s, offset) = (v.as_str()?, ctx.offset?);
        match self.profile {
            Profile::SafeHarbor => {
                ctx.fired.fire("birthdate-to-shifted-year");
                shifted_year(s, offset).map(Value::String)
            }
            Profile::Limited => self.date(ctx, s),
        }
    }

    fn date(&self, ctx: &mut Ctx<'_>, s: &str) -> Option<Value> {
        let Some(offset) = ctx.offset else {
            ctx.fired.fire("removed:date-without-patient");
            return None;
        };
        match shift(s, offset) {
            Shifted::Full(d, time_dropped) => {
                ctx.fired.fire("date-shifted");
                if time_dropped {
                    ctx.fired.fire("time-dropped");
                }
                Some(Value::String(d))
            }
            Shifted::Partial(d) => {
                ctx.fired.fire("partial-date-shifted");
                Some(Value::String(d))
            }
            Shifted::Invalid => {
                ctx.fired.fire("removed:invalid-date");
                None
            }
        }
    }
}

fn parent_kind<'o>(obj: &'o Map<String, Value>, path: &str) -> Parent<'o> {
    if obj.get("coding").is_some_and(Value::is_array) {
        Parent::Concept
    } else if path == "coding" || path.ends_with(".coding") {
        let code = obj["system"].as_str().zip(obj["code"].as_str());
        Parent::Coding(code)
    } else if obj.contains_key("reference") {
        Parent::Reference
    } else {
        Parent::Other
    }
}

fn has_modifier_extension(v: &Value) -> bool {
    match v {
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| k == "modifierExtension" || has_modifier_extension(v)),
        Value::Array(items) => items.iter().any(has_modifier_extension),
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
