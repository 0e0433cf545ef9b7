//! Regenerates the derived files of `profiles/`: every StructureDefinition's
//! snapshot (from its differential and the base table), the ValueSets (from
//! `profiles/valuesets.toml` and the mapping value sets) and the local
//! CodeSystem (from the mapping codes of its system). `cargo run --example
//! gen_profiles` writes them; a test checks the committed files equal them.

use serde::Deserialize;
use serde_json::{json, Value};

use super::base::BaseTable;
use super::{snapshot, ProfileError, CANONICAL_BASE, LOCAL_SYSTEM, VERSION};
use crate::mapping::spec::{RawCode, RawFile};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValueSets {
    #[allow(dead_code, reason = "read for the file's shape; the version is documentation")]
    version: u32,
    valueset: Vec<RawProfileValueSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfileValueSet {
    id: String,
    title: String,
    description: String,
    #[serde(default)]
    from: Vec<String>,
    /// Rule kinds (`lab-peak`, `antibody`, `finding`, `mri`, `exposure`): the
    /// value sets their rules read, in rule order, after `from`.
    #[serde(default)]
    from_kinds: Vec<String>,
    units: Option<String>,
}

impl RawProfileValueSet {
    /// The mapping value set ids this ValueSet takes: `from`, then those of
    /// the rules of `from_kinds` (so a new dictionary column needs no edit here).
    fn sources(&self, raw: &[(String, RawFile)]) -> Vec<String> {
        let mut ids = self.from.clone();
        let rules = raw.iter().flat_map(|(_, f)| &f.rule);
        for r in rules.filter(|r| self.from_kinds.contains(&r.kind)) {
            let read = [&r.valueset, &r.edema_valueset, &r.fatty_valueset];
            ids.extend(
                read.into_iter()
                    .flatten()
                    .filter(|id| !ids.contains(id))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        ids
    }
}

/// The derived files, `(file name, text)`, from the StructureDefinition files
/// `sds` (name, text), `valuesets.toml` and the mapping files `mappings`.
pub fn generate(
    sds: &[(&str, &str)],
    valuesets_toml: &str,
    mappings: &[(&str, &str)],
    base: &BaseTable,
) -> Result<Vec<(String, String)>, ProfileError> {
    let mut out = Vec::new();
    for (name, text) in sds {
        let mut sd: Value = serde_json::from_str(text).map_err(|e| ProfileError::json(name, e))?;
        let elements = snapshot::snapshot(name, &sd, base)?;
        sd["snapshot"] = json!({ "element": elements });
        out.push((name.to_string(), pretty(&sd)));
    }
    let raw: Vec<(String, RawFile)> = mappings
        .iter()
        .map(|(n, t)| {
            toml::from_str(t)
                .map(|f| (n.to_string(), f))
                .map_err(|source| ProfileError::GenerateToml {
                    file: n.to_string(),
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    let vsets: RawValueSets = toml::from_str(valuesets_toml).map_err(|source| ProfileError::GenerateToml {
        file: "valuesets.toml".into(),
        source,
    })?;
    for vs in &vsets.valueset {
        out.push((format!("ValueSet-{}.json", vs.id), pretty(&value_set(vs, &raw)?)));
    }
    out.push(("CodeSystem-imnm-case.json".into(), pretty(&code_system(&raw))));
    out.push(("CODES.md".into(), codes_md(&vsets.valueset, &raw)));
    Ok(out)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn known_systems(raw: &[(String, RawFile)]) -> Vec<&str> {
    raw.iter()
        .flat_map(|(_, f)| f.system.iter().map(|s| s.uri.as_str()))
        .collect()
}

fn value_set(vs: &RawProfileValueSet, raw: &[(String, RawFile)]) -> Result<Value, ProfileError> {
    let systems = known_systems(raw);
    let mut codes: Vec<(String, String, Option<String>)> = Vec::new();
    for id in &vs.sources(raw) {
        let found = raw
            .iter()
            .flat_map(|(_, f)| &f.valueset)
            .find(|v| &v.id == id)
            .ok_or_else(|| ProfileError::NoMappingValueSet {
                valueset: vs.id.clone(),
                missing: id.clone(),
            })?;
        let kept = found.code.iter().filter(|c| systems.contains(&c.system.as_str()));
        codes.extend(kept.map(|c: &RawCode| (c.system.clone(), c.code.clone(), c.display.clone())));
    }
    if let Some(q) = &vs.units {
        let quantity = raw
            .iter()
            .flat_map(|(_, f)| &f.quantity)
            .find(|x| &x.id == q)
            .ok_or_else(|| ProfileError::NoQuantity {
                valueset: vs.id.clone(),
                missing: q.clone(),
            })?;
        let ucum = quantity.unit.iter().filter_map(|u| u.ucum.clone());
        codes.extend(ucum.map(|c| ("http://unitsofmeasure.org".to_string(), c, None)));
    }
    let mut include: Vec<Value> = Vec::new();
    for (system, code, display) in codes {
        let concept = match display {
            Some(d) => json!({"code": code, "display": d}),
            None => json!({ "code": code }),
        };
        match include.iter_mut().find(|i| i["system"] == system.as_str()) {
            Some(i) => i["concept"]
                .as_array_mut()
                .into_iter()
                .for_each(|a| a.push(concept.clone())),
            None => include.push(json!({"system": system, "concept": [concept]})),
        }
    }
    Ok(json!({
        "resourceType": "ValueSet", "id": vs.id, "url": format!("{CANONICAL_BASE}/ValueSet/{}", vs.id),
        "version": VERSION, "name": vs.id.replace('-', "_"), "title": vs.title, "status": "draft",
        "description": vs.description, "compose": {"include": include},
    }))
}

fn code_system(raw: &[(String, RawFile)]) -> Value {
    let mut concepts: Vec<Value> = Vec::new();
    for (_, f) in raw {
        for c in f.valueset.iter().flat_map(|v| &v.code) {
            if c.system == LOCAL_SYSTEM && !concepts.iter().any(|x| x["code"] == c.code.as_str()) {
                let mut v = json!({"code": c.code, "display": c.display.clone().unwrap_or_default()});
                if let Some(s) = &c.source {
                    v["definition"] = json!(format!("{} (source: {s})", c.display.clone().unwrap_or_default()));
                }
                concepts.push(v);
            }
        }
    }
    json!({
        "resourceType": "CodeSystem", "id": "imnm-case", "url": LOCAL_SYSTEM, "version": VERSION,
        "name": "ImnmCase", "title": "IMNM case report local codes", "status": "draft",
        "description": "Local codes for IMNM concepts no standard terminology has (terminology.md §7).",
        "caseSensitive": true, "content": "complete", "count": concepts.len(), "concept": concepts,
    })
}

/// `profiles/CODES.md`: every code of every profile ValueSet with its source and confidence.
fn codes_md(sets: &[RawProfileValueSet], raw: &[(String, RawFile)]) -> String {
    let systems = known_systems(raw);
    let mut md = String::from(
        "# Codes of the IMNM profiles\n\nGenerated by `cargo run --example gen_profiles` from `valuesets.toml` and \
         `../mappings/`; do not edit. Confidence: V authoritative source, S second-hand, N local code \
         (see `../mappings/README.md`).\n",
    );
    for vs in sets {
        md.push_str(&format!("\n## {} — {}\n\n{}\n\n", vs.id, vs.title, vs.description));
        md.push_str(
            "| system | code | display | source | confidence | mapping value set |\n|---|---|---|---|---|---|\n",
        );
        for id in &vs.sources(raw) {
            let codes = raw
                .iter()
                .flat_map(|(_, f)| &f.valueset)
                .filter(|v| &v.id == id)
                .flat_map(|v| &v.code);
            for c in codes.filter(|c| systems.contains(&c.system.as_str())) {
                let cell = |s: &Option<String>| s.clone().unwrap_or_default().replace('|', "\\|");
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {id} |\n",
                    c.system,
                    c.code,
                    cell(&c.display),
                    cell(&c.source),
                    cell(&c.confidence)
                ));
            }
        }
        if let Some(q) = &vs.units {
            let units = raw
                .iter()
                .flat_map(|(_, f)| &f.quantity)
                .filter(|x| &x.id == q)
                .flat_map(|x| &x.unit);
            for u in units {
                let code = u.ucum.clone().unwrap_or_default();
                md.push_str(&format!(
                    "| http://unitsofmeasure.org | {code} | | {} | | units.toml {q} |\n",
                    u.source
                ));
            }
        }
    }
    md
}
