//! Posting a transaction Bundle to a FHIR server, optionally in slices of at
//! most `batch_size` entries (some servers cap transactions: Medplum allows 8
//! entries when one is conditional). Slices go in order; the locations the
//! server returns for one slice replace the `urn:uuid:` references of later
//! slices, so a Bundle whose entries come before the entries that refer to
//! them (as `to-fhir` writes them) can be cut anywhere. A failed slice stops
//! the push: the slices before it are committed (conditional creates make a
//! re-run harmless). This module does HTTP through `client` only.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::client::{ClientError, FhirClient};

/// What the server said about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    /// The entry's index in the pushed Bundle.
    pub index: usize,
    /// Its resource type.
    pub resource_type: String,
    /// `response.status` (`201 Created`, `200 OK`, …).
    pub status: String,
    /// `response.location`, when given.
    pub location: Option<String>,
    /// The text of `response.outcome`, when given.
    pub outcome: Option<String>,
}

/// A push that stopped.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The file is not a transaction Bundle.
    #[error("not a transaction Bundle: resourceType Bundle with type transaction expected")]
    NotTransaction {
        /// The `resourceType` found, if it is a string.
        resource_type: Option<String>,
        /// The Bundle's `type` found, if it is a string.
        bundle_type: Option<String>,
    },
    /// The server refused a slice (earlier slices are committed).
    #[error("slice {slice} of {slices} (entries {first}..={last}) failed after {done} entries were committed")]
    Slice {
        /// 1-based slice number.
        slice: usize,
        /// Number of slices.
        slices: usize,
        /// Its first entry index.
        first: usize,
        /// Its last entry index.
        last: usize,
        /// Entries committed before it.
        done: usize,
        /// The client error (the `source()` of this one, so not repeated in its message).
        source: ClientError,
    },
}

/// Pushes `bundle` (a transaction) in slices of `batch_size` entries (0: one transaction).
pub async fn push(client: &FhirClient, bundle: &Value, batch_size: usize) -> Result<Vec<EntryOutcome>, PushError> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err(PushError::NotTransaction {
            resource_type: bundle["resourceType"].as_str().map(str::to_string),
            bundle_type: bundle["type"].as_str().map(str::to_string),
        });
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let size = if batch_size == 0 {
        entries.len().max(1)
    } else {
        batch_size
    };
    let slices = entries.len().div_ceil(size);
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, chunk) in entries.chunks(size).enumerate() {
        let mut chunk = chunk.to_vec();
        for e in &mut chunk {
            rewrite_references(&mut e["resource"], &resolved);
        }
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        let first = n * size;
        let response = client.transaction(&tx).await.map_err(|source| PushError::Slice {
            slice: n + 1,
            slices,
            first,
            last: first + chunk.len() - 1,
            done: out.len(),
            source,
        })?;
        let answers = response["entry"].as_array().cloned().unwrap_or_default();
        for (i, e) in chunk.iter().enumerate() {
            let r = &answers.get(i).cloned().unwrap_or(Value::Null)["response"];
            let location = r["location"].as_str().map(str::to_string);
            if let (Some(url), Some(loc)) = (e["fullUrl"].as_str(), &location) {
                resolved.insert(url.to_string(), type_and_id(loc));
            }
            out.push(EntryOutcome {
                index: first + i,
                resource_type: e["resource"]["resourceType"].as_str().unwrap_or("?").to_string(),
                status: r["status"].as_str().unwrap_or("(no response)").to_string(),
                location,
                outcome: outcome_text(&r["outcome"]),
            });
        }
    }
    Ok(out)
}

/// `Type/id` of a location (`https://…/Patient/123/_history/1` → `Patient/123`).
fn type_and_id(location: &str) -> String {
    match crate::fhir::reference::parse(location) {
        crate::fhir::reference::Ref::Typed { resource_type, id } => format!("{resource_type}/{id}"),
        _ => location.to_string(),
    }
}

fn rewrite_references(v: &mut Value, resolved: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match (k.as_str(), x.as_str().and_then(|s| resolved.get(s))) {
                    ("reference", Some(to)) => *x = json!(to),
                    _ => rewrite_references(x, resolved),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_references(x, resolved)),
        _ => {}
    }
}

fn outcome_text(outcome: &Value) -> Option<String> {
    let texts: Vec<&str> = outcome["issue"]
        .as_array()?
        .iter()
        .filter_map(|i| i["details"]["text"].as_str().or(i["diagnostics"].as_str()))
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}
