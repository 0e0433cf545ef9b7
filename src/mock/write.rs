//! Writes for push tests: `POST /{type}` (with `If-None-Exist`), `PUT /{type}/{id}`,
//! and transaction/batch Bundles at the base (conditional create via
//! `request.ifNoneExist`, `urn:uuid:` references rewritten to the ids given).
//! Transactions are atomic: on any failure the store is put back as it was.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::call::{Call, Reply};
use super::clock;
use super::search;
use super::store::{Store, Stored};
use super::Config;

/// The string at a JSON pointer.
fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// What a write did.
struct Written {
    status: u16,
    stored: Stored,
}

fn body_resource(call: &Call<'_>, rtype: &str) -> Result<Value, Reply> {
    let value: Value =
        serde_json::from_slice(&call.req.body).map_err(|_| Reply::outcome(400, "structure", "the body is not JSON"))?;
    if str_at(&value, "/resourceType") != Some(rtype) {
        return Err(Reply::outcome(
            400,
            "invalid",
            "the body's resourceType does not match the URL",
        ));
    }
    Ok(value)
}

/// `POST /{type}`.
pub fn create(cfg: &Config, store: &mut Store, rtype: &str, call: &Call<'_>) -> Reply {
    let result = body_resource(call, rtype).and_then(|r| {
        let id = store.new_id();
        do_create(cfg, store, rtype, r, call.header("if-none-exist"), id)
    });
    match result {
        Ok(w) => written_reply(cfg, &w),
        Err(reply) => reply,
    }
}

/// `PUT /{type}/{id}`: update, or create with that id.
pub fn update(cfg: &Config, store: &mut Store, rtype: &str, id: &str, call: &Call<'_>) -> Reply {
    match body_resource(call, rtype).and_then(|r| do_update(store, rtype, id, r)) {
        Ok(w) => written_reply(cfg, &w),
        Err(reply) => reply,
    }
}

/// The single existing match of a conditional create, `None` when nothing matches, 412 when several do.
fn existing(cfg: &Config, store: &Store, rtype: &str, query: &str) -> Result<Option<Stored>, Reply> {
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let criteria = search::parse(cfg.vendor, rtype, &params)
        .map_err(|r| Reply::outcome(400, "invalid", &format!("If-None-Exist: {}", r.message())))?;
    let found: Vec<&Stored> = store.all(rtype).filter(|s| criteria.matches(s)).collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        _ => Err(Reply::outcome(
            412,
            "duplicate",
            "If-None-Exist matches more than one resource",
        )),
    }
}

fn do_create(
    cfg: &Config,
    store: &mut Store,
    rtype: &str,
    resource: Value,
    if_none_exist: Option<&str>,
    id: String,
) -> Result<Written, Reply> {
    if let Some(query) = if_none_exist {
        if let Some(stored) = existing(cfg, store, rtype, query)? {
            return Ok(Written { status: 200, stored });
        }
    }
    let (stored, _) = store.put(rtype, &id, resource);
    Ok(Written { status: 201, stored })
}

fn do_update(store: &mut Store, rtype: &str, id: &str, resource: Value) -> Result<Written, Reply> {
    if resource
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|body_id| body_id != id)
    {
        return Err(Reply::outcome(400, "invalid", "the body's id does not match the URL"));
    }
    let (stored, created) = store.put(rtype, id, resource);
    Ok(Written {
        status: if created { 201 } else { 200 },
        stored,
    })
}

fn location(cfg: &Config, s: &Stored) -> String {
    let rtype = str_at(&s.value, "/resourceType").unwrap_or_default();
    let id = s.value.get("id").and_then(Value::as_str).unwrap_or_default();
    format!("{}/{rtype}/{id}/_history/{}", cfg.base, s.version)
}

fn written_reply(cfg: &Config, w: &Written) -> Reply {
    Reply::json(w.status, &w.stored.value)
        .header("location", location(cfg, &w.stored))
        .header("etag", format!("W/\"{}\"", w.stored.version))
        .header("last-modified", clock::format(w.stored.updated))
}

fn status_text(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        412 => "Precondition Failed",
        _ => "",
    };
    format!("{status} {reason}").trim_end().to_string()
}

/// `POST /` with a transaction or batch Bundle.
pub fn bundle(cfg: &Config, store: &mut Store, call: &Call<'_>) -> Reply {
    let Ok(bundle) = serde_json::from_slice::<Value>(&call.req.body) else {
        return Reply::outcome(400, "structure", "the body is not JSON");
    };
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or_default();
    if str_at(&bundle, "/resourceType") != Some("Bundle") || !matches!(kind, "transaction" | "batch") {
        return Reply::outcome(400, "invalid", "POST at the base takes a transaction or batch Bundle");
    }
    let mut entries: Vec<Value> = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let transaction = kind == "transaction";
    let before = transaction.then(|| store.clone());
    if transaction {
        if let Err(reply) = assign_ids(cfg, store, &mut entries) {
            return reply;
        }
    }
    let mut responses = Vec::new();
    for entry in &entries {
        match run_entry(cfg, store, entry) {
            Ok(w) => responses.push(json!({"resource": w.stored.value, "response": {
                "status": status_text(w.status), "location": location(cfg, &w.stored),
                "etag": format!("W/\"{}\"", w.stored.version), "lastModified": clock::format(w.stored.updated)}})),
            Err(reply) if transaction => {
                if let Some(before) = before {
                    *store = before;
                }
                return reply;
            }
            Err(reply) => {
                let outcome: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                responses.push(json!({"response": {"status": status_text(reply.status), "outcome": outcome}}));
            }
        }
    }
    Reply::json(
        200,
        &json!({"resourceType": "Bundle", "type": format!("{kind}-response"), "entry": responses}),
    )
}

/// Gives every `urn:uuid:` entry of a transaction its id (an existing match for a
/// conditional create, else a new one) and rewrites references to them.
fn assign_ids(cfg: &Config, store: &mut Store, entries: &mut [Value]) -> Result<(), Reply> {
    let mut ids: HashMap<String, String> = HashMap::new();
    for entry in entries.iter_mut() {
        let full_url = entry.get("fullUrl").and_then(Value::as_str).map(str::to_string);
        let method = str_at(entry, "/request/method").unwrap_or_default();
        let rtype = str_at(entry, "/resource/resourceType").map(str::to_string);
        let (Some(full_url), "POST", Some(rtype)) = (full_url, method, rtype) else {
            continue;
        };
        let id = match str_at(entry, "/request/ifNoneExist") {
            Some(q) => existing(cfg, store, &rtype, q)?
                .and_then(|s| s.value.get("id").and_then(Value::as_str).map(str::to_string)),
            None => None,
        };
        let id = id.unwrap_or_else(|| store.new_id());
        entry["request"]["assignedId"] = json!(id);
        ids.insert(full_url, format!("{rtype}/{id}"));
    }
    for entry in entries.iter_mut() {
        if let Some(resource) = entry.get_mut("resource") {
            rewrite_references(resource, &ids);
        }
    }
    Ok(())
}

fn rewrite_references(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "reference" {
                    if let Some(target) = child.as_str().and_then(|r| ids.get(r)) {
                        *child = json!(target);
                    }
                } else {
                    rewrite_references(child, ids);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, ids)),
        _ => {}
    }
}

fn run_entry(cfg: &Config, store: &mut Store, entry: &Value) -> Result<Written, Reply> {
    let method = str_at(entry, "/request/method").unwrap_or_default();
    let url = str_at(entry, "/request/url").unwrap_or_default();
    let path: Vec<&str> = url
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let resource = entry.get("resource").cloned();
    match (method, path.as_slice(), resource) {
        ("POST", [rtype], Some(r)) if str_at(&r, "/resourceType") == Some(rtype) => {
            let if_none_exist = str_at(entry, "/request/ifNoneExist");
            let id = match str_at(entry, "/request/assignedId") {
                Some(id) if store.get(rtype, id).is_some() => {
                    let stored = store
                        .get(rtype, id)
                        .cloned()
                        .ok_or_else(|| Reply::outcome(404, "not-found", "gone"))?;
                    return Ok(Written { status: 200, stored });
                }
                Some(id) => id.to_string(),
                None => store.new_id(),
            };
            do_create(cfg, store, rtype, r, if_none_exist, id)
        }
        ("PUT", [rtype, id], Some(r)) if str_at(&r, "/resourceType") == Some(rtype) => do_update(store, rtype, id, r),
        ("GET", [rtype, id], _) => store
            .get(rtype, id)
            .cloned()
            .map(|stored| Written { status: 200, stored })
            .ok_or_else(|| Reply::outcome(404, "not-found", "resource not found")),
        _ => Err(Reply::outcome(
            400,
            "not-supported",
            "entries must be POST Type, PUT Type/id or GET Type/id with a matching resource",
        )),
    }
}
