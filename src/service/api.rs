//! The HTTP API and its edge: routes, bearer tokens and roles, problem
//! documents (RFC 7807) for every error, and the audit of patient-level reads.
//! Reader-role callers see Table 1 and completeness with small cells hidden.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::snapshot::{members, Snapshot};
use super::state::{lock, App};
use crate::registry::Role;

/// Who is calling: a token's name and role, or `open` (no tokens configured).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Whether counts must be shown with small cells hidden.
    pub(crate) fn suppressed(&self) -> bool {
        self.role == Role::Reader
    }

    /// Whether the caller may start a sync.
    pub(crate) fn operator(&self) -> bool {
        self.role == Role::Operator
    }
}

/// The service's routes.
pub(crate) fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/", get(super::page::index))
        .route("/cases/{site}/{patient_id}", get(super::page::case))
        .route("/sites/{id}/sync", post(super::page::sync_now))
        .route("/sources/{site}/{rtype}/{id}", get(source))
        .route("/api/sites", get(sites))
        .route("/api/sites/{id}/sync", post(sync_site))
        .route("/api/sites/{id}/runs", get(site_runs))
        .route("/api/cohort", get(cohort))
        .route("/api/table1", get(table1))
        .route("/api/completeness", get(completeness))
        .route("/api/issues", get(issues))
        .route("/api/cases/{site}/{patient_id}", get(case))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/login", get(super::login::form).post(super::login::sign_in))
        .route("/logout", get(super::login::sign_out))
        .merge(guarded)
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not Found", "no such route").into_response() })
        .with_state(app)
}

/// An RFC 7807 problem document (`application/problem+json`).
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

/// A problem with `status`; `detail` says what is wrong (no identifiers, no URL queries).
pub(crate) fn problem(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        status,
        title,
        detail: detail.into(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A metric family: name, type, help, and its value of a site's counters.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&super::state::Counters) -> f64,
);

/// Finds the caller from the `Authorization: Bearer` header (open without
/// tokens); 401 without a known token, 403 for a reader's POST.
async fn authorize(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let tokens = &app.config.serve.tokens;
    let caller = if tokens.is_empty() {
        Caller {
            name: "open".into(),
            role: Role::Operator,
        }
    } else {
        let hash = super::login::token(request.headers()).map(super::hash_token);
        match tokens.iter().find(|t| Some(&t.sha256) == hash.as_ref()) {
            Some(t) => Caller {
                name: t.name.clone(),
                role: t.role,
            },
            None if super::login::wants_html(request.headers()) => {
                return axum::response::Redirect::to("/login").into_response();
            }
            None => {
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "a valid bearer token is needed",
                )
                .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    };
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    if writes && super::login::cross_site(request.headers()) {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a request from another site may not start anything",
        )
        .into_response();
    }
    if writes && !caller.operator() {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this token's role (reader) may only read",
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn sites(State(app): State<App>) -> Json<Value> {
    Json(json!({ "sites": app.site_runs() }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    limit: Option<u64>,
}

/// A site's run history, newest first (`?limit=`, default 20, at most
/// [`RUNS_KEPT`](crate::store::RUNS_KEPT)): 404 for a site not in the config.
async fn site_runs(State(app): State<App>, Path(id): Path<String>, Query(q): Query<RunsQuery>) -> Response {
    if !app.wake.contains_key(&id) {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no such site in the registry config",
        )
        .into_response();
    }
    let limit = q.limit.unwrap_or(20).min(crate::store::RUNS_KEPT);
    match lock(&app.store).runs(&id, limit) {
        Ok(runs) => Json(json!({ "site": id, "runs": runs })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the run history failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "the store could not be read",
            )
            .into_response()
        }
    }
}

/// Starts a sync of a site now: 202, 409 when it runs, 404 for an unknown site.
pub(crate) fn start_sync(app: &App, id: &str) -> Result<(), Problem> {
    let Some(wake) = app.wake.get(id) else {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no such site in the registry config",
        ));
    };
    let running = lock(&app.runs).get(id).is_some_and(|r| r.status == "running");
    if running {
        return Err(problem(
            StatusCode::CONFLICT,
            "Conflict",
            "a sync of this site is running",
        ));
    }
    app.update_run(id, |r| r.status = "running");
    wake.notify_one();
    Ok(())
}

async fn sync_site(State(app): State<App>, Path(id): Path<String>) -> Response {
    match start_sync(&app, &id) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"site": id, "status": "running"}))).into_response(),
        Err(r) => r.into_response(),
    }
}

/// The snapshot, or 503 while the first build runs.
pub(crate) fn built(app: &App) -> Result<std::sync::Arc<Snapshot>, Problem> {
    app.snapshot().ok_or_else(|| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "the cohort is being built; try again shortly",
        )
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct SiteQuery {
    site: Option<String>,
    severity: Option<String>,
}

/// A site asked for must be one of the config.
fn known_site(app: &App, site: Option<&str>) -> Result<(), Problem> {
    match site {
        Some(s) if app.config.site(s).is_none() => Err(problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no such site in the registry config",
        )),
        _ => Ok(()),
    }
}

async fn cohort(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SiteQuery>,
    headers: HeaderMap,
) -> Response {
    let result = (|| -> Result<Response, Problem> {
        known_site(&app, q.site.as_deref())?;
        let snap = built(&app)?;
        let rows: Vec<_> = snap
            .rows
            .iter()
            .filter(|r| q.site.as_deref().is_none_or(|s| crate::cohort::at_site(r, s)))
            .collect();
        app.audit
            .record(&caller.name, "/api/cohort", q.site.as_deref(), rows.len());
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        if accept.contains("application/vnd.apache.parquet") {
            return file(
                &app,
                "cohort.parquet",
                "application/vnd.apache.parquet",
                q.site.is_none(),
            );
        }
        let header = crate::domain::CaseRow::header(&snap.dictionary);
        if accept.contains("text/csv") {
            if q.site.is_none() {
                return file(&app, "cohort.csv", "text/csv; charset=utf-8", true);
            }
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(&header);
            for r in &rows {
                let _ = w.write_record(r.cells());
            }
            let bytes = w.into_inner().unwrap_or_default();
            return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response());
        }
        let objects: Vec<Value> = rows.iter().map(|r| row_object(&header, r)).collect();
        Ok(Json(json!({"columns": header, "rows": objects})).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A row as `{column: cell}`.
pub(crate) fn row_object(header: &[&str], row: &crate::domain::CaseRow) -> Value {
    let cells = row.cells();
    let map: serde_json::Map<String, Value> = header
        .iter()
        .zip(cells)
        .map(|(h, c)| (h.to_string(), Value::String(c)))
        .collect();
    Value::Object(map)
}

/// An output file's bytes (`whole`: the file is what was asked for; else 406, it is not per site).
fn file(app: &App, name: &str, content_type: &'static str, whole: bool) -> Result<Response, Problem> {
    if !whole {
        return Err(problem(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable",
            "the Parquet file is the pooled cohort; ask without ?site= or as JSON or CSV",
        ));
    }
    let bytes = std::fs::read(app.out.join(name)).map_err(|_| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            format!("{name} is not written yet"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn table1(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    match built(&app) {
        Err(r) => r.into_response(),
        Ok(snap) if caller.suppressed() => {
            let rows = crate::cohort::suppress::suppress(&snap.table1, super::MIN_CELL);
            Json(json!({"min_cell": super::MIN_CELL, "rows": rows})).into_response()
        }
        Ok(snap) => Json(json!({"rows": snap.table1})).into_response(),
    }
}

async fn completeness(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    let snap = match built(&app) {
        Err(r) => return r.into_response(),
        Ok(s) => s,
    };
    let rows: Vec<Value> = snap
        .completeness
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if caller.suppressed() && crate::cohort::suppress::is_small(r.cases_with_value, super::MIN_CELL) {
                v["cases_with_value"] = Value::Null;
                v["percent"] = Value::Null;
                v["suppressed"] = Value::Bool(true);
            }
            v
        })
        .collect();
    Json(json!({"rows": rows})).into_response()
}

async fn issues(State(app): State<App>, Query(q): Query<SiteQuery>) -> Response {
    if let Err(r) = known_site(&app, q.site.as_deref()) {
        return r.into_response();
    }
    let snap = match built(&app) {
        Err(r) => return r.into_response(),
        Ok(s) => s,
    };
    let picked: Vec<&crate::report::Issue> = snap
        .issues
        .iter()
        .filter(|i| q.site.as_deref().is_none_or(|s| super::issue_at(i, s)))
        .filter(|i| q.severity.as_deref().is_none_or(|s| i.severity.as_str() == s))
        .collect();
    Json(json!({"issues": picked})).into_response()
}

/// The case `patient_id` of `site`: its row, provenance, lab series and source resources.
pub(crate) fn case_doc(app: &App, snap: &Snapshot, site: &str, patient_id: &str) -> Option<Value> {
    let row = snap
        .rows
        .iter()
        .find(|r| r.site == site && r.patient_id == patient_id)?;
    let header = crate::domain::CaseRow::header(&snap.dictionary);
    let provenance: Vec<&crate::cohort::Provenance> = snap
        .provenance
        .iter()
        .filter(|p| p.site == site && p.patient_id == patient_id)
        .collect();
    let mut series: BTreeMap<String, Vec<&super::snapshot::Point>> = BTreeMap::new();
    for key in members(row) {
        for p in snap.series.get(&key).into_iter().flatten() {
            series.entry(p.column.clone()).or_default().push(p);
        }
    }
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &provenance {
        for s in &p.sources {
            wanted.insert(match crate::cohort::link::split_source(s) {
                (Some(at), resource) => (at.to_string(), resource.to_string()),
                (None, resource) => (site.to_string(), resource.to_string()),
            });
        }
    }
    for member in members(row) {
        for p in snap.series.get(&member).into_iter().flatten() {
            wanted.insert((member.0.clone(), p.source.clone()));
        }
    }
    let sources = read_sources(app, &wanted);
    Some(json!({
        "site": site,
        "patient_id": patient_id,
        "row": row_object(&header, row),
        "provenance": provenance,
        "series": series,
        "sources": sources,
    }))
}

/// The stored JSON of each `(site, Type/id)`.
fn read_sources(app: &App, wanted: &BTreeSet<(String, String)>) -> Vec<Value> {
    let store = lock(&app.store);
    wanted
        .iter()
        .filter_map(|(site, reference)| {
            let (rtype, id) = reference.split_once('/')?;
            let text = store.get(site, rtype, id).ok().flatten()?;
            let resource: Value = serde_json::from_str(&text).ok()?;
            Some(json!({"site": site, "reference": reference, "resource": resource}))
        })
        .collect()
}

async fn case(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((site, patient_id)): Path<(String, String)>,
) -> Response {
    let snap = match built(&app) {
        Err(r) => return r.into_response(),
        Ok(s) => s,
    };
    let doc = case_doc(&app, &snap, &site, &patient_id);
    let known = app.config.site(&site).map(|_| site.as_str());
    let route = "/api/cases/{site}/{patient_id}";
    app.audit.record(
        &caller.name,
        route,
        known.or(Some("unknown")),
        usize::from(doc.is_some()),
    );
    match doc {
        Some(doc) => Json(doc).into_response(),
        None => problem(StatusCode::NOT_FOUND, "Not Found", "no such case").into_response(),
    }
}

/// A source resource's stored JSON (what a cell on the case page links to).
async fn source(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((site, rtype, id)): Path<(String, String, String)>,
) -> Response {
    let known = app.config.site(&site).map(|_| site.as_str());
    app.audit.record(
        &caller.name,
        "/sources/{site}/{rtype}/{id}",
        known.or(Some("unknown")),
        1,
    );
    let text = lock(&app.store).get(&site, &rtype, &id).ok().flatten();
    match text {
        Some(text) => ([(header::CONTENT_TYPE, "application/fhir+json")], text).into_response(),
        None => problem(StatusCode::NOT_FOUND, "Not Found", "no such resource in the store").into_response(),
    }
}

/// Prometheus text: per site, syncs, failures, resources written, time spent.
async fn metrics(State(app): State<App>) -> Response {
    let counters = lock(&app.counters).clone();
    let mut out = String::new();
    let families: [Family; 6] = [
        ("imnm_syncs_total", "counter", "Syncs finished (ok or failed).", |c| {
            c.syncs as f64
        }),
        ("imnm_sync_failures_total", "counter", "Syncs that failed.", |c| {
            c.failures as f64
        }),
        (
            "imnm_resources_new_total",
            "counter",
            "Resources new in the store.",
            |c| c.resources_new as f64,
        ),
        (
            "imnm_resources_updated_total",
            "counter",
            "Resources updated in the store.",
            |c| c.resources_updated as f64,
        ),
        (
            "imnm_sync_duration_seconds_total",
            "counter",
            "Time spent syncing.",
            |c| c.duration_seconds,
        ),
        (
            "imnm_last_success_timestamp_seconds",
            "gauge",
            "End of the last successful sync.",
            |c| c.last_success_unix.unwrap_or(0) as f64,
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for site in &app.config.sites {
            let v = counters.get(&site.id).map(&value).unwrap_or(0.0);
            out.push_str(&format!("{name}{{site=\"{}\"}} {v}\n", site.id));
        }
    }
    let cases = app.snapshot().map_or(0, |s| s.rows.len());
    out.push_str(&format!("# HELP imnm_cohort_cases Cases in the last built cohort.\n# TYPE imnm_cohort_cases gauge\nimnm_cohort_cases {cases}\n"));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
