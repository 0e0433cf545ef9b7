//! The mock's in-memory FHIR data: every resource by type and id, with its
//! version and lastUpdated. Loads datasets through [`crate::fhir::source`] (the
//! same readers as `imnm cohort`) and applies writes. It knows nothing of HTTP,
//! vendors or faults.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::clock::{self, Instant, DATASET_START};
use super::MockError;
use crate::fhir::source::{self, Format, Item};

/// One stored resource.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The resource JSON, with `meta.versionId` and `meta.lastUpdated` set.
    pub value: Value,
    /// The version number (`meta.versionId`).
    pub version: u64,
    /// When it was last written (`meta.lastUpdated`).
    pub updated: Instant,
    /// `value` serialized once, so a searchset copies text instead of building JSON.
    pub raw: Box<RawValue>,
}

/// All resources, by type then id (ids sort as strings: that is the paging order).
#[derive(Debug, Clone, Default)]
pub struct Store {
    types: BTreeMap<String, BTreeMap<String, Stored>>,
    /// Per type, the ids of each patient's resources (by `subject`/`patient`
    /// reference, as [`patient_ids`] reads them): a patient search looks at
    /// those only, not at every resource of the type.
    by_patient: HashMap<String, HashMap<String, BTreeSet<String>>>,
    /// Deleted resources by (type, id): when, and the patients they named
    /// (a bulk export with `_since` lists them in its `deleted` files).
    deleted: BTreeMap<(String, String), Deleted>,
    /// The logical clock: the latest lastUpdated given out.
    pub now: Instant,
    next_id: u64,
}

/// A deleted resource.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// When it was deleted (on the logical clock).
    pub at: Instant,
    /// The Patient ids its `subject`/`patient` named.
    pub patients: Vec<String>,
}

impl Store {
    /// A store holding `resources`, given versionId "1" and lastUpdated one second apart
    /// from 2024-01-01T00:00:00Z in the order given. A resource without an id gets one.
    pub fn from_resources(resources: Vec<Value>) -> Result<Self, MockError> {
        let mut store = Store {
            now: DATASET_START - 1,
            ..Store::default()
        };
        for (i, r) in resources.into_iter().enumerate() {
            let Some(rtype) = r.get("resourceType").and_then(Value::as_str).map(str::to_string) else {
                return Err(MockError::NotAResource { index: i });
            };
            let id = match r.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => store.new_id(),
            };
            store.now += 1;
            let stored = stamp(r, &id, 1, store.now);
            store.insert(&rtype, &id, stored);
        }
        Ok(store)
    }

    /// Holds `stored` as `rtype/id`, keeping the patient index in step.
    fn insert(&mut self, rtype: &str, id: &str, stored: Stored) {
        self.deleted.remove(&(rtype.to_string(), id.to_string()));
        let index = self.by_patient.entry(rtype.to_string()).or_default();
        let by_type = self.types.entry(rtype.to_string()).or_default();
        if let Some(old) = by_type.get(id) {
            for p in patient_ids(&old.value) {
                if let Some(ids) = index.get_mut(p) {
                    ids.remove(id);
                }
            }
        }
        for p in patient_ids(&stored.value) {
            index.entry(p.to_string()).or_default().insert(id.to_string());
        }
        by_type.insert(id.to_string(), stored);
    }

    /// The resources of a type that name one of `patients`, in id order.
    pub fn of_patients<'s>(&'s self, rtype: &str, patients: &[String]) -> Vec<&'s Stored> {
        let (Some(index), Some(by_type)) = (self.by_patient.get(rtype), self.types.get(rtype)) else {
            return Vec::new();
        };
        let ids: BTreeSet<&String> = patients.iter().filter_map(|p| index.get(p)).flatten().collect();
        ids.into_iter().filter_map(|id| by_type.get(id)).collect()
    }

    /// The resource types held.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// One resource.
    pub fn get(&self, rtype: &str, id: &str) -> Option<&Stored> {
        self.types.get(rtype)?.get(id)
    }

    /// All resources of a type, in id order.
    pub fn all(&self, rtype: &str) -> impl Iterator<Item = &Stored> {
        self.types.get(rtype).into_iter().flat_map(|m| m.values())
    }

    /// Deletes `rtype/id` (the clock moves one second); false when it is not held.
    pub fn delete(&mut self, rtype: &str, id: &str) -> bool {
        let Some(old) = self.types.get_mut(rtype).and_then(|m| m.remove(id)) else {
            return false;
        };
        let patients: Vec<String> = patient_ids(&old.value).map(str::to_string).collect();
        if let Some(index) = self.by_patient.get_mut(rtype) {
            for p in &patients {
                if let Some(ids) = index.get_mut(p) {
                    ids.remove(id);
                }
            }
        }
        self.now += 1;
        let deleted = Deleted { at: self.now, patients };
        self.deleted.insert((rtype.to_string(), id.to_string()), deleted);
        true
    }

    /// Whether `rtype/id` was deleted (and not written again).
    pub fn is_deleted(&self, rtype: &str, id: &str) -> bool {
        self.deleted.contains_key(&(rtype.to_string(), id.to_string()))
    }

    /// The ids of `rtype` deleted, with when and whose, in id order.
    pub fn deleted<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = (&'a str, &'a Deleted)> + 'a {
        self.deleted
            .iter()
            .filter(move |((t, _), _)| t == rtype)
            .map(|((_, id), d)| (id.as_str(), d))
    }

    /// A fresh server-assigned id.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("mock-{:06}", self.next_id)
    }

    /// Writes `resource` as `rtype/id`: version 1 when new, else one more; the
    /// clock moves one second. Returns the stored copy and whether it was created.
    pub fn put(&mut self, rtype: &str, id: &str, resource: Value) -> (Stored, bool) {
        self.now += 1;
        let previous = self.get(rtype, id).map(|s| s.version);
        let stored = stamp(resource, id, previous.map_or(1, |v| v + 1), self.now);
        self.insert(rtype, id, stored.clone());
        (stored, previous.is_none())
    }
}

#[cfg(test)]
impl Store {
    fn raw_matches_value(&self) -> bool {
        self.types
            .values()
            .flat_map(|m| m.values())
            .all(|s| serde_json::from_str::<Value>(s.raw.get()).is_ok_and(|v| v == s.value))
    }
}

/// The Patient ids a resource's `subject` and `patient` references name
/// (`Patient/x`, or an absolute URL ending `/Patient/x`).
pub fn patient_ids(r: &Value) -> impl Iterator<Item = &str> {
    ["subject", "patient"]
        .into_iter()
        .filter_map(|f| r.get(f)?.get("reference")?.as_str())
        .filter_map(|rf| {
            rf.strip_prefix("Patient/")
                .or_else(|| rf.rsplit_once("/Patient/").map(|(_, id)| id))
        })
}

fn stamp(mut r: Value, id: &str, version: u64, updated: Instant) -> Stored {
    if let Some(obj) = r.as_object_mut() {
        obj.insert("id".into(), json!(id));
        let meta = obj.entry("meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["versionId"] = json!(version.to_string());
        meta["lastUpdated"] = json!(clock::format(updated));
    }
    let raw = serde_json::value::to_raw_value(&r).unwrap_or_else(|_| RawValue::NULL.to_owned());
    Stored {
        value: r,
        version,
        updated,
        raw,
    }
}

/// Reads every resource of the given paths (Bundles, NDJSON, folders), in the order
/// `imnm cohort` reads them. Any unreadable piece stops the load.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Value>, MockError> {
    let plan = source::plan(paths).map_err(|e| MockError::Input {
        path: paths.first().cloned().unwrap_or_default(),
        source: e,
    })?;
    let mut out = Vec::new();
    let mut failure: Option<MockError> = None;
    for file in &plan.files {
        let Some(format) = source::format_of(file) else {
            continue;
        };
        let gzip = matches!(format, Format::Json { gzip: true } | Format::Ndjson { gzip: true });
        let reader = source::open(file, gzip, |_| {}).map_err(|e| MockError::Input {
            path: file.clone(),
            source: e,
        })?;
        let name: Arc<str> = file.display().to_string().into();
        let mut on_item = |item: Item<'_>| match item {
            Item::Resource { text, location, .. } => match serde_json::from_str::<Value>(text) {
                Ok(v) => out.push(v),
                Err(e) => {
                    failure.get_or_insert(MockError::Unreadable {
                        location: location.to_string(),
                        message: e.to_string(),
                    });
                }
            },
            Item::Unreadable { location, message, .. } => {
                failure.get_or_insert(MockError::Unreadable {
                    location: location.to_string(),
                    message,
                });
            }
            // A batch request entry: nothing to serve.
            Item::NoResource { .. } => {}
        };
        let read = match format {
            Format::Json { .. } => {
                source::read_json(name, reader, &mut on_item);
                Ok(())
            }
            Format::Ndjson { .. } => source::read_ndjson(name, reader, &mut on_item),
        };
        read.map_err(|e| MockError::Input {
            path: file.clone(),
            source: e,
        })?;
        if let Some(e) = failure.take() {
            return Err(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_versions_and_advances_the_clock() {
        let mut store = Store::from_resources(vec![
            json!({"resourceType": "Patient", "id": "b"}),
            json!({"resourceType": "Patient", "id": "a"}),
        ])
        .unwrap();
        let ids: Vec<_> = store.all("Patient").map(|s| s.value["id"].clone()).collect();
        assert_eq!(ids, vec![json!("a"), json!("b")]);
        assert_eq!(
            store.get("Patient", "b").unwrap().value["meta"]["lastUpdated"],
            "2024-01-01T00:00:00Z"
        );
        let (s, created) = store.put("Patient", "a", json!({"resourceType": "Patient"}));
        assert!(!created);
        assert_eq!(s.value["meta"]["versionId"], "2");
        assert_eq!(s.value["meta"]["lastUpdated"], "2024-01-01T00:00:02Z");
    }

    #[test]
    fn the_patient_index_follows_writes() {
        let obs = |subject: &str| json!({"resourceType": "Observation", "subject": {"reference": subject}});
        let mut store = Store::from_resources(vec![
            json!({"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/p"}}),
            json!({"resourceType": "Observation", "id": "o1", "subject": {"reference": "http://x/fhir/Patient/p"}}),
            json!({"resourceType": "Observation", "id": "o3", "subject": {"reference": "Patient/q"}}),
        ])
        .unwrap();
        let ids = |store: &Store, p: &[&str]| -> Vec<String> {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            store
                .of_patients("Observation", &p)
                .iter()
                .map(|s| s.value["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            ids(&store, &["p"]),
            ["o1", "o2"],
            "in id order, absolute references too"
        );
        store.put("Observation", "o2", obs("Patient/q"));
        assert_eq!(ids(&store, &["p"]), ["o1"]);
        assert_eq!(ids(&store, &["q", "p"]), ["o1", "o2", "o3"]);
        assert!(ids(&store, &["nobody"]).is_empty());
        assert!(store.raw_matches_value(), "the text kept for answers is the resource");
    }
}
