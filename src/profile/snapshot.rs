//! Snapshot generation: a profile's differential laid over the R4 base.
//!
//! The snapshot holds every element of the base resource (or datatype), in base
//! order, with the differential's constraints merged in. A differential path
//! below a datatype (`Observation.value[x].unit`) expands that datatype's
//! elements under its parent first, so the validator finds them. Paths keep
//! the base's `[x]` names; ids equal paths (no slicing).

use serde_json::{json, Map, Value};

use super::base::{BaseElement, BaseTable};
use super::ProfileError;

const BASE_SD: &str = "http://hl7.org/fhir/StructureDefinition/";

/// The snapshot elements of StructureDefinition `sd` (file `file`).
pub fn snapshot(file: &str, sd: &Value, base: &BaseTable) -> Result<Vec<Value>, ProfileError> {
    let err = |message: String| ProfileError::Snapshot {
        file: file.to_string(),
        message,
    };
    let type_name = sd["type"].as_str().ok_or_else(|| err("no type".into()))?;
    let elements = base
        .elements(type_name)
        .ok_or_else(|| err(format!("type {type_name} is not in the base table")))?;
    let mut snap = vec![json!({"id": type_name, "path": type_name, "min": 0, "max": "*",
        "base": {"path": type_name, "min": 0, "max": "*"}})];
    snap.extend(elements.iter().map(|e| from_base(e, &e.path)));
    let diff = sd["differential"]["element"]
        .as_array()
        .ok_or_else(|| err("no differential.element".into()))?;
    for d in diff {
        let path = d["path"]
            .as_str()
            .ok_or_else(|| err("a differential element without path".into()))?;
        let at = match position(&snap, path) {
            Some(i) => i,
            None => expand_parent(&mut snap, path, base).map_err(err)?,
        };
        merge(&mut snap[at], d);
    }
    Ok(snap)
}

fn position(snap: &[Value], path: &str) -> Option<usize> {
    snap.iter().position(|e| e["path"] == path)
}

fn from_base(e: &BaseElement, path: &str) -> Value {
    let types: Vec<Value> = e
        .types
        .iter()
        .map(|code| {
            let mut t = json!({ "code": code });
            if code == "Reference" && !e.targets.is_empty() {
                t["targetProfile"] = e.targets.iter().map(|t| format!("{BASE_SD}{t}")).collect();
            }
            t
        })
        .collect();
    let mut v = json!({"id": path, "path": path, "min": e.min, "max": e.max,
        "base": {"path": e.path, "min": e.min, "max": e.max}});
    if !types.is_empty() {
        v["type"] = Value::Array(types);
    }
    if let Some(r) = &e.content_reference {
        v["contentReference"] = json!(format!("#{r}"));
    }
    if let Some(vs) = &e.value_set {
        v["binding"] = json!({"strength": "required", "valueSet": vs});
    }
    v
}

/// Expands the datatype of `path`'s parent under it; returns `path`'s index.
fn expand_parent(snap: &mut Vec<Value>, path: &str, base: &BaseTable) -> Result<usize, String> {
    let (parent, _) = path
        .rsplit_once('.')
        .ok_or_else(|| format!("{path} is not in the base"))?;
    let at = position(snap, parent).ok_or_else(|| format!("{path}: parent {parent} is not in the base"))?;
    let types = snap[at]["type"].as_array().cloned().unwrap_or_default();
    let [t] = types.as_slice() else {
        return Err(format!(
            "{path}: constrain {parent} to one type before constraining inside it"
        ));
    };
    let code = t["code"].as_str().unwrap_or_default();
    let children = base
        .elements(code)
        .ok_or_else(|| format!("{path}: datatype {code} is not in the base table"))?;
    let end = snap[at + 1..]
        .iter()
        .position(|e| !e["path"].as_str().unwrap_or("").starts_with(&format!("{parent}.")))
        .map_or(snap.len(), |i| at + 1 + i);
    let expanded: Vec<Value> = children
        .iter()
        .map(|c| from_base(c, &format!("{parent}{}", &c.path[code.len()..])))
        .collect();
    snap.splice(end..end, expanded);
    position(snap, path).ok_or_else(|| format!("{path} is not an element of {code}"))
}

fn merge(target: &mut Value, diff: &Value) {
    let (Some(t), Some(d)) = (target.as_object_mut(), diff.as_object()) else {
        return;
    };
    let constrained: Map<String, Value> = d
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "id" | "path"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.extend(constrained);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(diff: Value) -> Value {
        json!({"type": "Observation", "differential": {"element": diff}})
    }

    #[test]
    fn a_path_inside_a_datatype_expands_it_under_its_parent() {
        let base = BaseTable::builtin().unwrap();
        let diff = json!([{"path": "Observation.value[x]", "type": [{"code": "Quantity"}]},
            {"path": "Observation.value[x].unit", "min": 1}]);
        let snap = snapshot("t.json", &sd(diff), &base).unwrap();
        let at = |p: &str| snap.iter().position(|e| e["path"] == p).unwrap();
        assert_eq!(
            at("Observation.value[x].unit"),
            at("Observation.value[x]") + 5,
            "after id, extension, value, comparator"
        );
        assert_eq!(snap[at("Observation.value[x].unit")]["min"], 1);
        assert_eq!(snap[at("Observation.value[x].unit")]["base"]["path"], "Quantity.unit");
    }

    #[test]
    fn constraining_inside_a_choice_of_several_types_is_refused() {
        let base = BaseTable::builtin().unwrap();
        let diff = json!([{"path": "Observation.value[x].unit", "min": 1}]);
        let err = snapshot("t.json", &sd(diff), &base).unwrap_err().to_string();
        assert!(err.contains("constrain Observation.value[x] to one type"), "{err}");
    }
}
