//! After a crawl or bulk run: what stored resources reference and the run did
//! not bring. Every `Medication/ID` a medication resource names, by `_id`
//! searches (50 ids each); every Observation a DiagnosticReport's `result` or
//! a panel Observation's `hasMember` names, by reads (a server may file results under categories or patients
//! its searches do not reach, and Epic refuses an Observation search without
//! `category`, even by `_id`). A result the server no longer has (404, 410) is
//! counted in the log, not an error. Logs hold counts, never ids.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio::task::JoinSet;

use super::{lock, Capabilities, Ctx, Progress, SyncError, MEDICATION_TYPES};
use crate::fhir::reference::{self, Ref};

/// What hydration fetched.
#[derive(Debug, Default)]
pub(super) struct Hydrated {
    /// Medications fetched.
    pub medications: u64,
    /// DiagnosticReport results fetched.
    pub results: u64,
}

/// Fetches the Medications and report results that stored resources reference and the store lacks.
pub(super) async fn run(ctx: &Ctx, caps: &Capabilities) -> Result<Hydrated, SyncError> {
    let (medications, results) = missing(ctx, caps)?;
    Ok(Hydrated {
        medications: fetch_medications(ctx, caps, &medications).await?,
        results: read_results(ctx, results).await?,
    })
}

/// The ids of the Medications and Observations referenced and not held (of the types the server declares).
fn missing(ctx: &Ctx, caps: &Capabilities) -> Result<(Vec<String>, Vec<String>), SyncError> {
    let store = lock(&ctx.store);
    let (mut medications, mut results) = (BTreeSet::new(), BTreeSet::new());
    store.for_each_in(&ctx.site, |row| {
        let medication = MEDICATION_TYPES.contains(&row.rtype.as_str());
        // A panel's members: only Observations that name some (most hold none).
        let panel = row.rtype == "Observation" && row.json.contains("\"hasMember\"");
        if !medication && !panel && row.rtype != "DiagnosticReport" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&row.json) else {
            return;
        };
        if medication {
            medications.extend(typed(&v["medicationReference"], "Medication"));
        } else {
            let key = if panel { "hasMember" } else { "result" };
            let refs = v[key].as_array().into_iter().flatten();
            results.extend(refs.filter_map(|r| typed(r, "Observation")));
        }
    })?;
    let not_held = |ids: BTreeSet<String>, rtype: &str| -> Result<Vec<String>, SyncError> {
        if !caps.supports(rtype) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for id in ids {
            if !store.contains(&ctx.site, rtype, &id)? {
                out.push(id);
            }
        }
        Ok(out)
    };
    Ok((not_held(medications, "Medication")?, not_held(results, "Observation")?))
}

/// The id of a Reference to a `rtype`.
fn typed(reference: &Value, rtype: &str) -> Option<String> {
    match reference::parse(reference["reference"].as_str()?) {
        Ref::Typed { resource_type, id } if resource_type == rtype => Some(id),
        _ => None,
    }
}

async fn fetch_medications(ctx: &Ctx, caps: &Capabilities, missing: &[String]) -> Result<u64, SyncError> {
    if !caps.supports("Medication") {
        return Ok(0);
    }
    let mut fetched = 0;
    ctx.progress(Progress::Phase {
        name: "medications",
        total: Some(missing.len() as u64),
    });
    for chunk in missing.chunks(50) {
        fetched += ctx.crawl("Medication", vec![("_id", chunk.join(","))]).await?.len() as u64;
        for _ in chunk {
            ctx.progress(Progress::Step);
        }
    }
    Ok(fetched)
}

/// Reads each missing result, as many at once as the client allows, storing each as it arrives.
async fn read_results(ctx: &Ctx, missing: Vec<String>) -> Result<u64, SyncError> {
    if missing.is_empty() {
        return Ok(0);
    }
    ctx.progress(Progress::Phase {
        name: "results",
        total: Some(missing.len() as u64),
    });
    let (mut fetched, mut gone) = (0u64, 0u64);
    read_each(ctx, "Observation", missing, |_, read| {
        match read {
            Some(resource) if resource["resourceType"] == "Observation" => {
                ctx.write(std::slice::from_ref(&resource))?;
                fetched += 1;
            }
            _ => gone += 1,
        }
        Ok(())
    })
    .await?;
    if gone > 0 {
        tracing::warn!(gone, "report results the server no longer has");
    }
    Ok(fetched)
}

/// Reads `rtype/ID` for each id, as many at once as the client allows,
/// handing each answer (`None`: gone) to `f` as it arrives, one progress step each.
pub(super) async fn read_each(
    ctx: &Ctx,
    rtype: &'static str,
    ids: Vec<String>,
    mut f: impl FnMut(String, Option<Value>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let mut ids = ids.into_iter();
    let mut reads = JoinSet::new();
    loop {
        while reads.len() < ctx.client.concurrency().max(1) {
            let Some(id) = ids.next() else { break };
            let client = ctx.client.clone();
            reads.spawn(async move { (client.read(rtype, &id).await, id) });
        }
        let Some(done) = reads.join_next().await else { break };
        let (read, id) = done.map_err(|source| SyncError::Task { task: "crawl", source })?;
        f(id, read?)?;
        ctx.progress(Progress::Step);
    }
    Ok(())
}
