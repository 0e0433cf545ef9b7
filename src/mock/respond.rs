//! The wiremock `Respond` implementations: one for the FHIR base, one for the
//! Cerner-style storage origin. Each request is routed to a handler, gated by
//! auth, given its fault, journaled, and turned into a `ResponseTemplate`.
//! Handlers (`auth`, `bulk`, `write`, `search`) get a [`Call`] and return a
//! [`Reply`] (both in `call`); only this file and `call` touch wiremock types.
//! Nothing in `mock` imports this file but `mod.rs`.

use std::sync::{Arc, Mutex, MutexGuard};

use wiremock::{Request, Respond, ResponseTemplate};

use super::call::{Call, Reply};
use super::faults::{Fault, FaultState};
use super::journal::JournalEntry;
use super::search::{self, Page, PageToken};
use super::store::Store;
use super::vendor::served_types;
use super::{auth, bulk, write, Config};

/// Everything that changes while the mock runs.
#[derive(Default)]
pub struct State {
    /// The data.
    pub store: Store,
    /// Requests answered.
    pub journal: Vec<JournalEntry>,
    /// Fault bookkeeping.
    pub faults: FaultState,
    /// Access tokens and assertion ids.
    pub auth: auth::AuthState,
    /// Bulk export jobs.
    pub jobs: bulk::Jobs,
}

/// The configuration plus the state, shared by both servers.
pub struct Shared {
    /// Fixed at start.
    pub cfg: Config,
    /// Behind one lock: requests are handled one at a time.
    pub state: Mutex<State>,
}

impl Shared {
    /// The state, even if a handler panicked while holding it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Answers requests to the FHIR base.
pub struct EhrResponder(pub Arc<Shared>);

/// Answers requests to the storage origin (bulk files after a 307).
pub struct StorageResponder(pub Arc<Shared>);

impl Respond for EhrResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let call = call(req);
        let mut state = shared.lock();
        let (reply, fault) = handle(&shared.cfg, &mut state, &call);
        finish(&shared.cfg, &mut state, "ehr", &call, reply, fault)
    }
}

impl Respond for StorageResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let call = call(req);
        let mut state = shared.lock();
        let reply = match call.segments.as_slice() {
            ["files", job, name] if call.method == "GET" => bulk::file(&shared.cfg, &state.jobs, job, name, true),
            _ => Reply::outcome(404, "not-found", "no such file"),
        };
        finish(&shared.cfg, &mut state, "storage", &call, reply, None)
    }
}

fn call(req: &Request) -> Call<'_> {
    let mut params: Vec<(String, String)> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let form = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        params.extend(form_urlencoded::parse(&req.body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    Call {
        method: req.method.as_str(),
        segments: req.url.path().split('/').filter(|s| !s.is_empty()).collect(),
        params,
        req,
    }
}

/// Routes one request to the FHIR base: open endpoints, then auth, faults and the API.
fn handle(cfg: &Config, state: &mut State, call: &Call<'_>) -> (Reply, Option<Fault>) {
    match (call.method, call.segments.as_slice()) {
        ("GET", ["metadata"]) => {
            let token = cfg.auth.is_smart().then(|| cfg.token_url());
            let types = served_types(cfg, &state.store);
            let mut body =
                cfg.vendor
                    .capability_statement(&cfg.base, types.iter().map(String::as_str), token.as_deref());
            if let Some(name) = &cfg.software {
                body["software"] = serde_json::json!({ "name": name });
            }
            return (Reply::json(200, &body), None);
        }
        ("GET", [".well-known", "smart-configuration"]) => return (auth::smart_configuration(cfg), None),
        ("POST", ["auth", "token"]) => return (auth::token(cfg, &mut state.auth, call), None),
        _ => {}
    }
    if let Err((reply, fault)) = auth::check(cfg, &mut state.auth, call) {
        return (reply, fault);
    }
    let paging = matches!(call.segments.as_slice(), ["_page"]);
    let key = format!("{} {}", call.method, call.req.url);
    let fault = state.faults.decide(&cfg.faults, &key, paging);
    if let Some(reply) = fault.and_then(|f| early_fault(cfg, f)) {
        return (reply, fault);
    }
    let repeat = fault == Some(Fault::RepeatLast);
    (route(cfg, state, call, repeat), fault)
}

fn early_fault(cfg: &Config, fault: Fault) -> Option<Reply> {
    let retry = cfg.retry_after.as_secs().to_string();
    Some(match fault {
        Fault::TooManyRequests => {
            Reply::outcome(429, "throttled", "too many requests (injected fault)").header("retry-after", retry)
        }
        Fault::ServerError => Reply::outcome(500, "exception", "internal error (injected fault)"),
        Fault::Unavailable => {
            Reply::outcome(503, "transient", "service unavailable (injected fault)").header("retry-after", retry)
        }
        _ => return None,
    })
}

fn route(cfg: &Config, state: &mut State, call: &Call<'_>, repeat: bool) -> Reply {
    let is_type = |t: &str| t.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    match (call.method, call.segments.as_slice()) {
        ("GET", ["_page"]) => page(cfg, &state.store, call, repeat),
        ("GET" | "POST", [op]) if *op == "$export" => {
            bulk::kick_off(cfg, &state.store, &mut state.jobs, call, bulk::Level::System)
        }
        ("GET" | "POST", ["Patient", op]) if *op == "$export" => {
            bulk::kick_off(cfg, &state.store, &mut state.jobs, call, bulk::Level::Patient)
        }
        ("GET" | "POST", ["Group", id, op]) if *op == "$export" => bulk::kick_off(
            cfg,
            &state.store,
            &mut state.jobs,
            call,
            bulk::Level::Group(id.to_string()),
        ),
        ("GET", ["_bulk", "status", job]) => bulk::status(cfg, &mut state.jobs, job),
        ("DELETE", ["_bulk", "status", job]) => bulk::cancel(&mut state.jobs, job),
        ("GET", ["_bulk", "files", job, name]) => bulk::file(cfg, &state.jobs, job, name, false),
        ("POST", []) => write::bundle(cfg, &mut state.store, call),
        (_, [t, ..]) if is_type(t) && !cfg.vendor.serves(t) => Reply::outcome(
            cfg.vendor.fatal_status(404),
            "not-supported",
            "this server does not support this resource type",
        ),
        ("GET", [t]) if is_type(t) => search(cfg, &state.store, t, call.params.clone()),
        ("POST", [t, "_search"]) if is_type(t) => search(cfg, &state.store, t, call.params.clone()),
        ("GET", [t, id]) if is_type(t) => read(&state.store, t, id),
        ("POST", [t]) if is_type(t) => write::create(cfg, &mut state.store, t, call),
        ("PUT", [t, id]) if is_type(t) => write::update(cfg, &mut state.store, t, id, call),
        ("DELETE", [t, id]) if is_type(t) => match state.store.delete(t, id) {
            true => Reply::empty(204),
            false => Reply::outcome(404, "not-found", "resource not found"),
        },
        _ => Reply::outcome(404, "not-found", "no such endpoint"),
    }
}

fn read(store: &Store, rtype: &str, id: &str) -> Reply {
    match store.get(rtype, id) {
        Some(s) => Reply::json_bytes(200, s.raw.get().as_bytes().to_vec())
            .header("etag", format!("W/\"{}\"", s.version))
            .header("last-modified", super::clock::format(s.updated)),
        None if store.is_deleted(rtype, id) => Reply::outcome(410, "deleted", "resource deleted"),
        None => Reply::outcome(404, "not-found", "resource not found"),
    }
}

fn search(cfg: &Config, store: &Store, rtype: &str, params: Vec<(String, String)>) -> Reply {
    let token = PageToken {
        t: rtype.to_string(),
        q: params,
        o: 0,
    };
    searchset(cfg, store, token, false)
}

fn page(cfg: &Config, store: &Store, call: &Call<'_>, repeat: bool) -> Reply {
    match call.param("token").and_then(PageToken::decode) {
        Some(token) => searchset(cfg, store, token, repeat),
        None => Reply::outcome(400, "invalid", "unknown or expired paging token"),
    }
}

fn searchset(cfg: &Config, store: &Store, token: PageToken, repeat: bool) -> Reply {
    let missing = cfg
        .required
        .iter()
        .find(|(t, p)| *t == token.t && !token.q.iter().any(|(n, _)| n == p));
    let parsed = match missing {
        Some((_, p)) => Err(search::Refusal::Missing(p)),
        None => search::parse(cfg.vendor, &token.t, &token.q),
    };
    match parsed {
        Ok(criteria) => {
            let page = Page {
                base: &cfg.base,
                token,
                repeat_previous: repeat,
            };
            Reply::json_bytes(200, page.bundle(store, &criteria))
        }
        Err(refusal) => {
            let status = match refusal {
                search::Refusal::Invalid { .. } => cfg.vendor.fatal_status(400),
                _ => 400,
            };
            Reply::outcome(status, "invalid", &refusal.message())
        }
    }
}

/// Applies latency and body faults, journals the request, and builds the template.
fn finish(
    cfg: &Config,
    state: &mut State,
    server: &str,
    call: &Call<'_>,
    reply: Reply,
    fault: Option<Fault>,
) -> ResponseTemplate {
    let entry = JournalEntry {
        seq: state.journal.len() as u64 + 1,
        server: server.to_string(),
        method: call.method.to_string(),
        path: call.req.url.path().to_string(),
        params: call.params.iter().map(|(k, _)| k.clone()).collect(),
        status: reply.status,
        fault: fault.map(|f| f.name().to_string()),
        authorization: call.req.headers.contains_key("authorization"),
    };
    state.journal.push(entry);
    let mut body = reply.body;
    let full_len = body.len();
    if matches!(fault, Some(Fault::Truncate | Fault::Drop)) {
        body.truncate(full_len / 2);
    }
    let mut t = ResponseTemplate::new(reply.status);
    for (name, value) in reply.headers {
        t = t.append_header(name, value.as_str());
    }
    if fault == Some(Fault::Drop) {
        t = t.insert_header("content-length", full_len.to_string().as_str());
    }
    if !reply.mime.is_empty() {
        t = t.set_body_raw(body, reply.mime);
    }
    if !cfg.delay.is_zero() {
        t = t.set_delay(cfg.delay);
    }
    t
}
