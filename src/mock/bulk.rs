//! Bulk Data `$export` (system, Patient and Group level): kick-off, status
//! polls, the manifest, file downloads and cancellation. A job snapshots its
//! NDJSON files at kick-off; polls count down before the manifest appears.
//! With `_since`, the manifest's `deleted` file lists the resources of the
//! wanted types and scope deleted after that time, one transaction Bundle of
//! one DELETE entry (`request.url` = `Type/id`) per line, as the Bulk Data IG
//! describes.
//! Reads the store; never writes it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::call::{Call, Reply};
use super::clock;
use super::faults::mix;
use super::search::{self, Criteria};
use super::store::{Store, Stored};
use super::Config;

/// The NDJSON media type of bulk files.
pub const NDJSON: &str = "application/fhir+ndjson";

/// The `_outputFormat` values accepted.
const NDJSON_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Which resources an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// `/$export`: everything.
    System,
    /// `/Patient/$export`: every patient's compartment.
    Patient,
    /// `/Group/{id}/$export`: the group members' compartments.
    Group(String),
}

/// Export jobs by id.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: BTreeMap<String, Job>,
    created: u64,
}

#[derive(Debug)]
struct Job {
    polls_left: u32,
    polls_total: u32,
    manifest: Value,
    files: BTreeMap<String, Vec<u8>>,
}

/// What a kick-off asked for.
struct Request {
    types: Option<Vec<String>>,
    since: Option<clock::Instant>,
    filters: BTreeMap<String, Vec<Criteria>>,
}

/// Starts an export job (202 + Content-Location), or refuses it.
pub fn kick_off(cfg: &Config, store: &Store, jobs: &mut Jobs, call: &Call<'_>, level: Level) -> Reply {
    let bad = |msg: &str| Reply::outcome(cfg.vendor.fatal_status(400), "invalid", msg);
    if !call.header("prefer").is_some_and(|p| p.contains("respond-async")) {
        return Reply::outcome(400, "invalid", "bulk export needs the header 'Prefer: respond-async'");
    }
    let params = kick_off_params(call);
    let request = match parse_request(cfg, &params) {
        Ok(r) => r,
        Err(msg) => return bad(msg),
    };
    let patients = match &level {
        Level::System => None,
        Level::Patient => Some(store.all("Patient").map(|s| id_of(s).to_string()).collect()),
        Level::Group(id) => match store.get("Group", id) {
            Some(group) => Some(members(&group.value)),
            None => return Reply::outcome(404, "not-found", "no such Group"),
        },
    };
    jobs.created += 1;
    let job_id = format!("{:016x}", mix(cfg.faults.seed, "bulk-job", jobs.created));
    let job = build_job(cfg, store, &job_id, &request, patients.as_ref(), call.req.url.as_ref());
    jobs.jobs.insert(job_id.clone(), job);
    Reply::outcome(202, "informational", "export started")
        .header("content-location", format!("{}/_bulk/status/{job_id}", cfg.base))
}

/// Parameters from the query, or from a `Parameters` body on POST.
fn kick_off_params(call: &Call<'_>) -> Vec<(String, String)> {
    let mut params = call.params.clone();
    if let Ok(body) = serde_json::from_slice::<Value>(&call.req.body) {
        for p in body.get("parameter").and_then(Value::as_array).into_iter().flatten() {
            let name = p.get("name").and_then(Value::as_str);
            let value = ["valueString", "valueInstant", "valueCode", "valueDateTime"]
                .iter()
                .find_map(|k| p.get(*k).and_then(Value::as_str));
            if let (Some(n), Some(v)) = (name, value) {
                params.push((n.to_string(), v.to_string()));
            }
        }
    }
    params
}

fn parse_request(cfg: &Config, params: &[(String, String)]) -> Result<Request, &'static str> {
    let mut request = Request {
        types: None,
        since: None,
        filters: BTreeMap::new(),
    };
    for (name, value) in params {
        match name.as_str() {
            "_type" => request
                .types
                .get_or_insert_with(Vec::new)
                .extend(value.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty())),
            "_since" => request.since = Some(clock::parse_range(value).ok_or("_since is not a FHIR instant")?.0),
            "_outputFormat" if !NDJSON_FORMATS.contains(&value.as_str()) => {
                return Err("_outputFormat must be application/fhir+ndjson");
            }
            "_typeFilter" => {
                for filter in value.split(',') {
                    let (rtype, query) = filter.split_once('?').ok_or("_typeFilter must be Type?query")?;
                    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                    let criteria = search::parse(cfg.vendor, rtype, &q)
                        .map_err(|_| "_typeFilter has a query this server cannot run")?;
                    request.filters.entry(rtype.to_string()).or_default().push(criteria);
                }
            }
            _ => {}
        }
    }
    Ok(request)
}

fn id_of(s: &Stored) -> &str {
    s.value.get("id").and_then(Value::as_str).unwrap_or_default()
}

fn members(group: &Value) -> BTreeSet<String> {
    group
        .get("member")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.pointer("/entity/reference").and_then(Value::as_str))
        .filter_map(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
        .collect()
}

fn patient_of(r: &Value) -> Option<&str> {
    let reference = ["subject", "patient"]
        .iter()
        .find_map(|f| r.pointer(&format!("/{f}/reference")).and_then(Value::as_str))?;
    reference.rsplit_once("Patient/").map(|(_, id)| id)
}

fn build_job(
    cfg: &Config,
    store: &Store,
    job_id: &str,
    request: &Request,
    patients: Option<&BTreeSet<String>>,
    request_url: &str,
) -> Job {
    let mut files = BTreeMap::new();
    let mut output = Vec::new();
    let mut errors = Vec::new();
    let served = super::vendor::served_types(cfg, store);
    let wanted: Vec<String> = request.types.clone().unwrap_or_else(|| served.clone());
    let mut medications = BTreeSet::new();
    let mut deleted = Vec::new();
    for rtype in &wanted {
        if !cfg.vendor.serves(rtype) {
            errors.push(
                json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported",
                "diagnostics": format!("this server does not export {rtype}")}]}),
            );
            continue;
        }
        let filters = request.filters.get(rtype);
        let keep = |s: &&Stored| {
            let in_scope = match patients {
                None => true,
                Some(set) if rtype == "Patient" => set.contains(id_of(s)),
                Some(set) => patient_of(&s.value).is_some_and(|p| set.contains(p)) || rtype == "Medication",
            };
            in_scope
                && request.since.is_none_or(|t| s.updated > t)
                && filters.is_none_or(|fs| fs.iter().any(|c| c.matches(s)))
        };
        let chosen: Vec<&Stored> = store.all(rtype).filter(keep).collect();
        if let Some(since) = request.since {
            let in_scope = |id: &str, d: &super::store::Deleted| match patients {
                None => true,
                Some(set) if rtype == "Patient" => set.contains(id),
                Some(set) => d.patients.iter().any(|p| set.contains(p)),
            };
            deleted.extend(
                store
                    .deleted(rtype)
                    .filter(|(id, d)| d.at > since && in_scope(id, d))
                    .map(|(id, d)| deletion(rtype, id, d.at)),
            );
        }
        if patients.is_some() {
            for s in &chosen {
                if let Some(m) = s
                    .value
                    .pointer("/medicationReference/reference")
                    .and_then(Value::as_str)
                {
                    medications.insert(m.trim_start_matches("Medication/").to_string());
                }
            }
        }
        let lines: Vec<&Value> = chosen.iter().map(|s| &s.value).collect();
        add_file(cfg, job_id, rtype, &lines, &mut files, &mut output);
    }
    if patients.is_some() {
        // Medications are outside the patient compartment: keep only those referenced.
        if let Some(pos) = output.iter().position(|o| o["type"] == "Medication") {
            let o = output.remove(pos);
            if let Some(name) = o["url"].as_str().and_then(|u| u.rsplit('/').next()) {
                files.remove(name);
            }
            let referenced: Vec<&Value> = store
                .all("Medication")
                .filter(|s| medications.contains(id_of(s)))
                .map(|s| &s.value)
                .collect();
            add_file(cfg, job_id, "Medication", &referenced, &mut files, &mut output);
        }
    }
    let error_refs: Vec<&Value> = errors.iter().collect();
    let mut error_out = Vec::new();
    add_file(cfg, job_id, "OperationOutcome", &error_refs, &mut files, &mut error_out);
    let deleted_refs: Vec<&Value> = deleted.iter().collect();
    let mut deleted_out = Vec::new();
    add_file(cfg, job_id, "Bundle", &deleted_refs, &mut files, &mut deleted_out);
    let polls = cfg.bulk_polls;
    Job {
        polls_left: polls,
        polls_total: polls,
        manifest: json!({
            "transactionTime": clock::format(store.now),
            "request": request_url,
            "requiresAccessToken": cfg.auth.is_smart() && !cfg.vendor.redirects_downloads(),
            "output": output,
            "error": error_out,
            "deleted": deleted_out,
        }),
        files,
    }
}

/// One line of a `deleted` file: a transaction Bundle deleting `rtype/id`.
fn deletion(rtype: &str, id: &str, at: clock::Instant) -> Value {
    json!({
        "resourceType": "Bundle", "type": "transaction",
        "meta": {"lastUpdated": clock::format(at)},
        "entry": [{"request": {"method": "DELETE", "url": format!("{rtype}/{id}")}}],
    })
}

fn add_file(
    cfg: &Config,
    job_id: &str,
    rtype: &str,
    resources: &[&Value],
    files: &mut BTreeMap<String, Vec<u8>>,
    output: &mut Vec<Value>,
) {
    if resources.is_empty() {
        return;
    }
    let name = if cfg.vendor.random_file_names() {
        format!(
            "{:016x}{:08x}",
            mix(cfg.faults.seed, &format!("{job_id}/{rtype}"), 0),
            files.len()
        )
    } else {
        format!("{rtype}.ndjson")
    };
    let mut body = Vec::new();
    for r in resources {
        body.extend_from_slice(r.to_string().as_bytes());
        body.push(b'\n');
    }
    output.push(
        json!({"type": rtype, "url": format!("{}/_bulk/files/{job_id}/{name}", cfg.base), "count": resources.len()}),
    );
    files.insert(name, body);
}

/// A status poll: 202 with X-Progress and Retry-After while "running", then the manifest.
pub fn status(cfg: &Config, jobs: &mut Jobs, job_id: &str) -> Reply {
    let Some(job) = jobs.jobs.get_mut(job_id) else {
        return Reply::outcome(
            404,
            "not-found",
            "no such export job (finished, cancelled or never started)",
        );
    };
    if job.polls_left > 0 {
        job.polls_left -= 1;
        let done = job.polls_total - job.polls_left;
        return Reply::empty(202)
            .header("x-progress", format!("in progress ({done}/{})", job.polls_total + 1))
            .header("retry-after", cfg.retry_after.as_secs().to_string());
    }
    Reply {
        mime: "application/json",
        ..Reply::json(200, &job.manifest)
    }
}

/// DELETE on the status URL: the job and its files are gone.
pub fn cancel(jobs: &mut Jobs, job_id: &str) -> Reply {
    match jobs.jobs.remove(job_id) {
        Some(_) => Reply::outcome(202, "informational", "export cancelled"),
        None => Reply::outcome(404, "not-found", "no such export job"),
    }
}

/// A file download: the NDJSON, or (Cerner, at the base) a 307 to the storage origin.
pub fn file(cfg: &Config, jobs: &Jobs, job_id: &str, name: &str, from_storage: bool) -> Reply {
    let Some(body) = jobs.jobs.get(job_id).and_then(|j| j.files.get(name)) else {
        return Reply::outcome(404, "not-found", "no such file");
    };
    if let (false, true, Some(storage)) = (from_storage, cfg.vendor.redirects_downloads(), &cfg.storage) {
        return Reply::empty(307).header("location", format!("{storage}/files/{job_id}/{name}"));
    }
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.clone(),
        mime: NDJSON,
    }
}
