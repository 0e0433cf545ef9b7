//! The mock's in-memory FHIR data: every resource by type and id, with its
//! version and lastUpdated. Loads datasets through [`crate::fhir::source`] (the
//! same readers as `imnm cohort`) and applies writes. It knows nothing of HTTP,
//! vendors or faults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

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
}

/// All resources, by type then id (ids sort as strings: that is the paging order).
#[derive(Debug, Clone, Default)]
pub struct Store {
    types: BTreeMap<String, BTreeMap<String, Stored>>,
    /// The logical clock: the latest lastUpdated given out.
    pub now: Instant,
    next_id: u64,
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
            store.types.entry(rtype).or_default().insert(id, stored);
        }
        Ok(store)
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
        self.types
            .entry(rtype.to_string())
            .or_default()
            .insert(id.to_string(), stored.clone());
        (stored, previous.is_none())
    }
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
    Stored {
        value: r,
        version,
        updated,
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
}
