//! Structural validation of FHIR R4 JSON against the profiles' snapshots.
//!
//! Driven by the snapshot elements only: cardinality, types (choice types
//! included), fixed and pattern values, required bindings, Reference targets,
//! primitive formats and unknown elements. Which profile applies: the first
//! known `meta.profile`, else the first profile of the resource's type whose
//! discriminator (`code` / `medication[x]`) the resource satisfies, else the
//! R4 base alone. Types outside the base table get fhirbolt's strict parse.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::element::ElementDef;
use super::primitive;
use super::{Profile, ProfileSet, CANONICAL_BASE};
use crate::fhir::reference::{parse as parse_ref, Ref};
use crate::report::{Issue, IssueCode, Location, Severity};

mod outcome;
pub use outcome::ValidationReport;

/// What references in a Bundle point at: fullUrl or `Type/id` → (type, profile URL).
#[derive(Debug, Default, Clone)]
pub struct Targets(BTreeMap<String, (String, Option<String>)>);

impl Targets {
    /// Records a resource (`full_url` when the Bundle gave one).
    pub fn add(&mut self, set: &ProfileSet, resource: &Value, full_url: Option<&str>) {
        let Some(t) = resource["resourceType"].as_str() else {
            return;
        };
        let profile = set.select(resource).map(|p| p.url.clone());
        if let Some(id) = resource["id"].as_str() {
            self.0.insert(format!("{t}/{id}"), (t.to_string(), profile.clone()));
        }
        if let Some(u) = full_url {
            self.0.insert(u.to_string(), (t.to_string(), profile));
        }
    }
}

impl ProfileSet {
    /// The profile that applies to `resource` (see the module docs).
    pub fn select(&self, resource: &Value) -> Option<&Profile> {
        let declared = resource["meta"]["profile"].as_array().into_iter().flatten();
        if let Some(p) = declared.filter_map(Value::as_str).find_map(|u| self.profile(u)) {
            return Some(p);
        }
        let t = resource["resourceType"].as_str()?;
        self.profiles
            .iter()
            .filter(|p| p.type_name == t)
            .find(|p| match p.discriminator() {
                None => true,
                Some(d) => {
                    let name = d.name().trim_end_matches("[x]");
                    let value = resource
                        .as_object()
                        .and_then(|o| {
                            o.iter()
                                .find(|(k, _)| *k == d.name() || (d.name().ends_with("[x]") && k.starts_with(name)))
                        })
                        .map(|(_, v)| v);
                    value.is_some_and(|v| self.conforms(d, v))
                }
            })
    }

    fn conforms(&self, e: &ElementDef, v: &Value) -> bool {
        e.fixed.as_ref().is_none_or(|f| f == v)
            && e.pattern.as_ref().is_none_or(|p| contains(v, p))
            && e.required_binding
                .as_ref()
                .is_none_or(|vs| self.in_value_set(vs, v) != Some(false))
    }

    /// Whether a code, Coding or CodeableConcept is in value set `vs` (`None`: value set unknown).
    pub fn in_value_set(&self, vs: &str, v: &Value) -> Option<bool> {
        let codes = self.value_sets.get(vs)?;
        let hit = |system: Option<&str>, code: Option<&str>| {
            let Some(code) = code else { return false };
            codes
                .iter()
                .any(|(s, c)| c == code && (s.is_none() || s.as_deref() == system))
        };
        Some(match v {
            Value::String(code) => codes.iter().any(|(_, c)| c == code),
            Value::Object(o) if o.contains_key("coding") => o["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| hit(c["system"].as_str(), c["code"].as_str())),
            Value::Object(o) if o.contains_key("value") && !o.contains_key("system") => false,
            Value::Object(o) => hit(
                o.get("system").and_then(Value::as_str),
                o.get("code").and_then(Value::as_str),
            ),
            _ => false,
        })
    }

    /// Validates one resource; findings go to `report`.
    pub fn validate(&self, resource: &Value, targets: &Targets, location: &str, report: &mut ValidationReport) {
        let t = resource["resourceType"]
            .as_str()
            .unwrap_or("(no resourceType)")
            .to_string();
        let id = resource["id"].as_str().unwrap_or("(no id)");
        let mut w = Walk {
            set: self,
            targets,
            resource: format!("{t}/{id}"),
            location: location.to_string(),
            profile: None,
            report,
        };
        let Some(obj) = resource.as_object() else {
            return w.finding(
                Severity::Error,
                "(resource)".into(),
                IssueCode::Structure,
                "not a JSON object".into(),
            );
        };
        for p in resource["meta"]["profile"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if p.starts_with(CANONICAL_BASE) && self.profile(p).is_none() {
                w.finding(
                    Severity::Error,
                    format!("{t}.meta.profile"),
                    IssueCode::Profile,
                    format!("unknown IMNM profile {p}"),
                );
            }
        }
        match (self.select(resource), self.base_defs.get(&t)) {
            (Some(p), _) => {
                w.report.count(&p.id);
                w.profile = Some(p.id.clone());
                w.object(obj, &p.elements, &t, &t);
            }
            (None, Some(defs)) => {
                w.report.count("R4 base");
                w.profile = Some("R4 base".into());
                w.object(obj, defs, &t, &t);
            }
            (None, None) => {
                w.report.count("R4 base (parser)");
                w.profile = Some("R4 base (parser)".into());
                if let Err(msg) = crate::fhir::parse::parse(&resource.to_string()).and_then(|p| match p.lenient_note {
                    Some(n) => Err(n),
                    None => Ok(()),
                }) {
                    w.finding(Severity::Error, t.clone(), IssueCode::Structure, msg);
                }
            }
        }
    }
}

struct Walk<'a> {
    set: &'a ProfileSet,
    targets: &'a Targets,
    resource: String,
    location: String,
    /// The profile checked against (the findings' rule), once chosen.
    profile: Option<String>,
    report: &'a mut ValidationReport,
}

fn children<'e>(defs: &'e [ElementDef], prefix: &str) -> Vec<&'e ElementDef> {
    defs.iter()
        .filter(|e| {
            e.path.len() > prefix.len() + 1
                && e.path.starts_with(prefix)
                && e.path.as_bytes()[prefix.len()] == b'.'
                && !e.path[prefix.len() + 1..].contains('.')
        })
        .collect()
}

fn uc_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The element for JSON key `key` and, for a choice, the type it names.
fn resolve<'e>(kids: &[&'e ElementDef], key: &str) -> Option<(&'e ElementDef, Option<String>)> {
    if let Some(e) = kids.iter().find(|e| e.name() == key) {
        return Some((e, None));
    }
    kids.iter().find_map(|e| {
        let stem = e.name().strip_suffix("[x]")?;
        let suffix = key.strip_prefix(stem)?;
        suffix
            .starts_with(|c: char| c.is_ascii_uppercase())
            .then(|| (*e, Some(suffix.to_string())))
    })
}

impl Walk<'_> {
    fn finding(&mut self, severity: Severity, expression: String, code: IssueCode, message: String) {
        let location = Location::new(self.location.clone()).in_resource(self.resource.clone());
        let mut f = Issue::new(severity, code, location, message).at(expression);
        f.rule.clone_from(&self.profile);
        self.report.push(f);
    }

    fn object(&mut self, obj: &Map<String, Value>, defs: &[ElementDef], prefix: &str, loc: &str) {
        let kids = children(defs, prefix);
        for (key, value) in obj {
            if key == "resourceType" && !prefix.contains('.') {
                continue;
            }
            let name = key.strip_prefix('_').unwrap_or(key);
            let Some((e, choice)) = resolve(&kids, name) else {
                self.finding(
                    Severity::Error,
                    format!("{loc}.{key}"),
                    IssueCode::UnknownElement,
                    format!("{key} is not an element of {prefix}"),
                );
                continue;
            };
            if key.starts_with('_') {
                continue;
            }
            self.element(e, choice.as_deref(), value, defs, &format!("{loc}.{key}"));
        }
        for e in kids.iter().filter(|e| e.min > 0) {
            let stem = e.name().trim_end_matches("[x]");
            let present = obj.keys().any(|k| {
                let k = k.strip_prefix('_').unwrap_or(k);
                k == e.name() || (e.name().ends_with("[x]") && k.starts_with(stem) && k.len() > stem.len())
            });
            if !present {
                let msg = format!("{} is required (min {}) in {}", e.name(), e.min, prefix);
                self.finding(Severity::Error, format!("{loc}.{stem}"), IssueCode::Cardinality, msg);
            }
        }
    }

    fn element(&mut self, e: &ElementDef, choice: Option<&str>, value: &Value, defs: &[ElementDef], loc: &str) {
        let type_code = match choice {
            Some(suffix) => match e.types.iter().find(|t| uc_first(&t.code) == suffix) {
                Some(t) => t.code.clone(),
                None => {
                    let allowed: Vec<String> = e.types.iter().map(|t| uc_first(&t.code)).collect();
                    let msg = format!("type {suffix} is not allowed here; allowed: {}", allowed.join(", "));
                    return self.finding(Severity::Error, loc.to_string(), IssueCode::Type, msg);
                }
            },
            None => e
                .types
                .first()
                .map(|t| t.code.clone())
                .unwrap_or_else(|| "BackboneElement".into()),
        };
        let items: Vec<(String, &Value)> = match (value, e.repeats()) {
            (Value::Array(a), true) => a.iter().enumerate().map(|(i, v)| (format!("{loc}[{i}]"), v)).collect(),
            (Value::Array(_), false) => {
                let msg = format!(
                    "{} repeats at most once (max 1): a single value, not an array",
                    e.name()
                );
                return self.finding(Severity::Error, loc.to_string(), IssueCode::Cardinality, msg);
            }
            (v, true) => {
                let msg = format!("{} may repeat: FHIR JSON needs an array", e.name());
                self.finding(Severity::Error, loc.to_string(), IssueCode::Structure, msg);
                vec![(loc.to_string(), v)]
            }
            (v, false) => vec![(loc.to_string(), v)],
        };
        if let Some(max) = e.max.filter(|m| items.len() > *m as usize) {
            let msg = format!("{} has {} values; at most {max} allowed", e.name(), items.len());
            self.finding(Severity::Error, loc.to_string(), IssueCode::Cardinality, msg);
        }
        for (item_loc, v) in items {
            self.value(e, &type_code, v, defs, &item_loc);
        }
    }

    fn value(&mut self, e: &ElementDef, type_code: &str, v: &Value, defs: &[ElementDef], loc: &str) {
        if let Some(f) = e.fixed.as_ref().filter(|f| *f != v) {
            let msg = format!("must equal the fixed value {f}");
            self.finding(Severity::Error, loc.to_string(), IssueCode::Fixed, msg);
        }
        if let Some(p) = e.pattern.as_ref().filter(|p| !contains(v, p)) {
            let msg = format!("must match the pattern {p}");
            self.finding(Severity::Error, loc.to_string(), IssueCode::Pattern, msg);
        }
        let coded = matches!(type_code, "code" | "Coding" | "CodeableConcept");
        if let Some(vs) = e.required_binding.as_ref().filter(|_| coded) {
            if self.set.in_value_set(vs, v) == Some(false) {
                let msg = format!("code not in the required value set {vs}");
                self.finding(Severity::Error, loc.to_string(), IssueCode::Binding, msg);
            }
        }
        if primitive::is_primitive(type_code) {
            let code = if e.path.matches('.').count() == 1 && e.name() == "id" {
                "id"
            } else {
                type_code
            };
            if let Err(msg) = primitive::check(code, v) {
                self.finding(Severity::Error, loc.to_string(), IssueCode::Format, msg);
            }
            return;
        }
        if type_code == "Resource" {
            return;
        }
        let Some(obj) = v.as_object() else {
            let msg = format!("expected a JSON object ({type_code})");
            return self.finding(Severity::Error, loc.to_string(), IssueCode::Type, msg);
        };
        if type_code == "Reference" {
            self.reference(e, obj, loc);
        }
        if type_code == "Extension" {
            if let Some(url) = obj
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| u.starts_with(CANONICAL_BASE))
            {
                match self.set.profile(url) {
                    Some(p) => {
                        let elements = p.elements.clone();
                        return self.object(obj, &elements, "Extension", loc);
                    }
                    None => {
                        let msg = format!("extension {url} is not defined by the IMNM profiles");
                        return self.finding(Severity::Error, loc.to_string(), IssueCode::Profile, msg);
                    }
                }
            }
        }
        if let Some(r) = &e.content_reference {
            return self.object(obj, defs, r, loc);
        }
        if !children(defs, &e.path).is_empty() || matches!(type_code, "BackboneElement" | "Element") {
            return self.object(obj, defs, &e.path, loc);
        }
        match self.set.base_defs.get(type_code) {
            Some(base) => self.object(obj, base, type_code, loc),
            None => {
                let msg = format!("type {type_code} is not in the base table; its content is not checked");
                self.finding(Severity::Information, loc.to_string(), IssueCode::Type, msg);
            }
        }
    }

    fn reference(&mut self, e: &ElementDef, obj: &Map<String, Value>, loc: &str) {
        let profiles: Vec<&String> = e
            .types
            .iter()
            .filter(|t| t.code == "Reference")
            .flat_map(|t| &t.target_profiles)
            .collect();
        let Some(reference) = obj.get("reference").and_then(Value::as_str) else {
            return;
        };
        if profiles.is_empty() {
            return;
        }
        let target = match parse_ref(reference) {
            Ref::Typed { resource_type, id } => {
                let key = format!("{resource_type}/{id}");
                Some(self.targets.0.get(&key).cloned().unwrap_or((resource_type, None)))
            }
            Ref::Opaque(u) => self.targets.0.get(&u).cloned(),
            Ref::Contained(_) => None,
        };
        let Some((t, target_profile)) = target else { return };
        let type_of = |p: &str| match self.set.profile(p) {
            Some(prof) => prof.type_name.clone(),
            None => p.rsplit('/').next().unwrap_or(p).to_string(),
        };
        let allowed: Vec<String> = profiles.iter().map(|p| type_of(p)).collect();
        let names: Vec<String> = profiles
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .collect();
        if !allowed.iter().any(|a| a == &t || a == "Resource") {
            let msg = format!("refers to a {t}; allowed: {}", names.join(", "));
            return self.finding(Severity::Error, format!("{loc}.reference"), IssueCode::Reference, msg);
        }
        let ours: Vec<&&String> = profiles.iter().filter(|p| p.starts_with(CANONICAL_BASE)).collect();
        if let (false, Some(tp)) = (ours.is_empty(), target_profile.as_ref()) {
            if !ours.iter().any(|p| **p == tp) {
                let msg = format!("refers to a {t} that conforms to {tp}; expected {}", names.join(", "));
                self.finding(Severity::Error, format!("{loc}.reference"), IssueCode::Reference, msg);
            }
        }
    }
}

/// True when `value` contains `pattern` (FHIR `pattern[x]` semantics).
pub fn contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p.iter().all(|(k, pv)| v.get(k).is_some_and(|vv| contains(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p.iter().all(|pv| v.iter().any(|vv| contains(vv, pv))),
        (v, p) => v == p,
    }
}
