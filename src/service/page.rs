//! The registry page at `/` and the case pages, rendered on the server (no
//! CDN, no build step, no script): Table 1 pooled with a column per site,
//! completeness per variable and site, each site's sync status, the case
//! list, the issues with filters, and per case its cells, provenance, source
//! links and lab chart. Every text from data is HTML-escaped.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use super::api::{built, case_doc, Caller};
use super::snapshot::Snapshot;
use super::state::{lock, App};
use crate::cohort::table1::Table1Row;
use crate::domain::case::format_number;

/// Issues listed on the page at most (the API has them all).
const ISSUES_SHOWN: usize = 200;

/// `text` safe inside HTML text and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment (site, patient id) percent-encoded for a link.
fn seg(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}\
th{background:#f2f2f2}.ok{color:#1a7f37}.failed{color:#c0392b}.running{color:#b7791f}.never{color:#777}\
.err{font-size:12px;color:#555;max-width:40em}form{display:inline}";

pub(crate) fn document(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    ))
}

/// The page's filters (`?site=&severity=` of the issues list).
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    site: Option<String>,
    severity: Option<String>,
}

/// `GET /`.
pub(crate) async fn index(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut body = String::from("<h1>IMNM registry</h1>");
    sites_section(&app, &caller, &mut body);
    match app.snapshot() {
        None => body.push_str("<p>The cohort is being built; reload in a moment.</p>"),
        Some(snap) => {
            let _ = write!(body, "<p>Cohort built {} from the store.</p>", esc(&snap.built));
            table1_section(&snap, &caller, &mut body);
            completeness_section(&snap, &caller, &mut body);
            cases_section(&app, &snap, &caller, &mut body);
            issues_section(&app, &snap, &q, &mut body);
        }
    }
    document("IMNM registry", &body).into_response()
}

fn sites_section(app: &App, caller: &Caller, body: &mut String) {
    body.push_str("<h2>Sites</h2><table id=\"sites\"><tr><th>site</th><th>status</th><th>last start</th><th>last end</th><th>new</th><th>updated</th><th>watermark</th><th>next run</th><th>last error</th><th></th></tr>");
    for r in app.site_runs() {
        let button = if caller.operator() {
            format!(
                "<form method=\"post\" action=\"/sites/{}/sync\"><button>sync now</button></form>",
                seg(&r.id)
            )
        } else {
            String::new()
        };
        let opt = |s: &Option<String>| esc(s.as_deref().unwrap_or(""));
        let _ = write!(
            body,
            "<tr><td title=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td><td>{button}</td></tr>",
            esc(&r.name),
            esc(&r.id),
            r.status,
            r.status,
            opt(&r.last_start),
            opt(&r.last_end),
            r.new,
            r.updated,
            opt(&r.watermark),
            opt(&r.next_run),
            opt(&r.last_error)
        );
    }
    body.push_str("</table>");
    runs_section(app, body);
}

/// Runs shown per site under "Recent runs".
const RUNS_SHOWN: u64 = 5;

/// Each site's latest runs from the store's run history (kept across restarts).
fn runs_section(app: &App, body: &mut String) {
    body.push_str("<h3>Recent runs</h3><table id=\"runs\"><tr><th>site</th><th>started</th><th>ended</th><th>status</th><th>seconds</th><th>new</th><th>updated</th><th>error</th></tr>");
    for site in &app.config.sites {
        let runs = lock(&app.store).runs(&site.id, RUNS_SHOWN);
        let runs = runs.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the run history failed");
            Vec::new()
        });
        for r in runs {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                esc(&site.id),
                esc(&r.started),
                esc(&r.ended),
                esc(&r.status),
                esc(&r.status),
                r.seconds,
                r.new,
                r.updated,
                esc(r.error.as_deref().unwrap_or(""))
            );
        }
    }
    body.push_str("</table>");
}

/// A Table 1 cell: `n (p%)`, or `median [q1–q3]`, or the suppression mark.
fn t1_cell(row: &Table1Row, hidden: bool) -> String {
    if hidden {
        return format!("&lt;{}", super::MIN_CELL);
    }
    if let Some(m) = row.median {
        let q = |v: Option<f64>| v.map(format_number).unwrap_or_default();
        return format!("{} [{}–{}]", format_number(m), q(row.q1), q(row.q3));
    }
    match (row.n, row.percent) {
        (Some(n), Some(p)) if row.variable != "n" => format!("{n} ({}%)", format_number(p)),
        (Some(n), _) => n.to_string(),
        _ => String::new(),
    }
}

fn table1_section(snap: &Snapshot, caller: &Caller, body: &mut String) {
    let rows: Vec<(Table1Row, bool)> = if caller.suppressed() {
        let s = crate::cohort::suppress::suppress(&snap.table1, super::MIN_CELL);
        s.into_iter().map(|r| (r.row, r.suppressed)).collect()
    } else {
        snap.table1.iter().map(|r| (r.clone(), false)).collect()
    };
    let all = crate::cohort::table1::ALL_SITES;
    body.push_str("<h2>Table 1</h2><table id=\"table1\"><tr><th>variable</th><th>all sites</th>");
    for s in &snap.sites {
        let _ = write!(body, "<th>{}</th>", esc(s));
    }
    body.push_str("</tr>");
    for (row, hidden) in rows.iter().filter(|(r, _)| r.site == all) {
        let label = snap
            .dictionary
            .columns
            .iter()
            .find(|c| c.name == row.variable)
            .map_or(row.variable.as_str(), |c| c.label.as_str());
        let level = row.level.as_deref().map(|l| format!(": {l}")).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}{}</td><td>{}</td>",
            esc(label),
            esc(&level),
            t1_cell(row, *hidden)
        );
        for s in &snap.sites {
            let at = rows
                .iter()
                .find(|(r, _)| &r.site == s && r.variable == row.variable && r.level == row.level);
            let cell = at.map(|(r, h)| t1_cell(r, *h)).unwrap_or_default();
            let _ = write!(body, "<td>{cell}</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
}

fn completeness_section(snap: &Snapshot, caller: &Caller, body: &mut String) {
    let sites: Vec<&str> = std::iter::once("all")
        .chain(snap.sites.iter().map(String::as_str))
        .collect();
    body.push_str("<h2>Completeness</h2><table id=\"completeness\"><tr><th>variable</th>");
    for s in &sites {
        let _ = write!(body, "<th>{}</th>", esc(s));
    }
    body.push_str("</tr>");
    let rows = || snap.completeness.iter().filter(|r| r.source == "all");
    let variables: Vec<&str> = rows()
        .filter(|r| r.site == "all")
        .map(|r| r.variable.as_str())
        .collect();
    let single = snap.sites.len() <= 1;
    for v in variables {
        let _ = write!(body, "<tr><td>{}</td>", esc(v));
        for s in &sites {
            let found = rows().find(|r| r.variable == v && (r.site == *s || (single && r.site == "all")));
            let cell = match found {
                Some(r)
                    if caller.suppressed()
                        && crate::cohort::suppress::is_small(r.cases_with_value, super::MIN_CELL) =>
                {
                    format!("<td>&lt;{}</td>", super::MIN_CELL)
                }
                Some(r) => {
                    let hue = (r.percent * 1.2).round();
                    format!(
                        "<td style=\"background:hsl({hue},70%,85%)\">{}% ({}/{})</td>",
                        format_number(r.percent),
                        r.cases_with_value,
                        r.cases
                    )
                }
                None => "<td></td>".into(),
            };
            body.push_str(&cell);
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
}

fn cases_section(app: &App, snap: &Snapshot, caller: &Caller, body: &mut String) {
    let header = crate::domain::CaseRow::header(&snap.dictionary);
    let shown = header.len().min(8);
    let n = snap.rows.len() as u64;
    let count = if caller.suppressed() && crate::cohort::suppress::is_small(n, super::MIN_CELL) {
        format!("&lt;{}", super::MIN_CELL)
    } else {
        n.to_string()
    };
    let _ = write!(body, "<h2>Cases ({count})</h2><table id=\"cases\"><tr>");
    for h in &header[..shown] {
        let _ = write!(body, "<th>{}</th>", esc(h));
    }
    body.push_str("</tr>");
    for row in &snap.rows {
        let cells = row.cells();
        let link = format!("/cases/{}/{}", seg(&row.site), seg(&row.patient_id));
        body.push_str("<tr>");
        for (i, c) in cells.iter().take(shown).enumerate() {
            if header.get(i) == Some(&"patient_id") {
                let _ = write!(body, "<td><a href=\"{link}\">{}</a></td>", esc(c));
            } else {
                let _ = write!(body, "<td>{}</td>", esc(c));
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    app.audit.record(&caller.name, "/", None, snap.rows.len());
}

fn issues_section(app: &App, snap: &Snapshot, q: &PageQuery, body: &mut String) {
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    let severity = q.severity.as_deref().filter(|s| !s.is_empty());
    let picked: Vec<&crate::report::Issue> = snap
        .issues
        .iter()
        .filter(|i| site.is_none_or(|s| super::issue_at(i, s)))
        .filter(|i| severity.is_none_or(|s| i.severity.as_str() == s))
        .collect();
    let _ = write!(body, "<h2>Issues ({})</h2><form method=\"get\" action=\"/\"><select name=\"site\"><option value=\"\">all sites</option>", picked.len());
    for s in &app.config.sites {
        let sel = if site == Some(s.id.as_str()) { " selected" } else { "" };
        let _ = write!(body, "<option{sel}>{}</option>", esc(&s.id));
    }
    body.push_str("</select><select name=\"severity\"><option value=\"\">any severity</option>");
    for s in ["error", "warning", "information"] {
        let sel = if severity == Some(s) { " selected" } else { "" };
        let _ = write!(body, "<option{sel}>{s}</option>");
    }
    body.push_str("</select><button>filter</button></form><table id=\"issues\"><tr><th>site</th><th>severity</th><th>code</th><th>location</th><th>message</th></tr>");
    for i in picked.iter().take(ISSUES_SHOWN) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(i.site.as_deref().unwrap_or("")),
            i.severity.as_str(),
            i.code.as_str(),
            esc(&i.location.to_string()),
            esc(&i.message)
        );
    }
    body.push_str("</table>");
}

/// `GET /cases/{site}/{patient_id}`.
pub(crate) async fn case(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((site, patient_id)): Path<(String, String)>,
) -> Response {
    let snap = match built(&app) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(doc) = case_doc(&app, &snap, &site, &patient_id) else {
        return (StatusCode::NOT_FOUND, document("Not found", "<p>No such case.</p>")).into_response();
    };
    let known = app.config.site(&site).map(|_| site.as_str());
    app.audit
        .record(&caller.name, "/cases/{site}/{patient_id}", known.or(Some("unknown")), 1);
    let mut body = format!(
        "<p><a href=\"/\">registry</a></p><h1>Case {} at {}</h1><p><a href=\"/api/cases/{}/{}\">JSON</a></p>",
        esc(&patient_id),
        esc(&site),
        seg(&site),
        seg(&patient_id)
    );
    charts(&doc, &snap.dictionary, &mut body);
    cells(&doc, &site, &mut body);
    document(&format!("Case {patient_id}"), &body).into_response()
}

/// One chart per lab with results.
fn charts(doc: &serde_json::Value, dictionary: &crate::domain::Dictionary, body: &mut String) {
    let Some(series) = doc["series"].as_object() else {
        return;
    };
    let sources = doc["sources"].as_array().cloned().unwrap_or_default();
    for (column, points) in series {
        let points: Vec<super::snapshot::Point> = serde_json::from_value(points.clone()).unwrap_or_default();
        let refs: Vec<&str> = points.iter().map(|p| p.source.as_str()).collect();
        let range = super::chart::reference_range(&sources, &refs);
        let borrowed: Vec<&super::snapshot::Point> = points.iter().collect();
        let label = dictionary
            .columns
            .iter()
            .find(|c| &c.name == column)
            .map_or(column.as_str(), |c| c.label.as_str());
        if let Some(svg) = super::chart::svg(label, &borrowed, range) {
            let _ = write!(body, "<h2>{} over time</h2>{svg}", esc(label));
        }
    }
}

/// The row's cells, each linking to its provenance and source resources.
fn cells(doc: &serde_json::Value, site: &str, body: &mut String) {
    let empty = serde_json::Map::new();
    let row = doc["row"].as_object().unwrap_or(&empty);
    let provenance = doc["provenance"].as_array().cloned().unwrap_or_default();
    body.push_str("<h2>Cells</h2><table id=\"cells\"><tr><th>column</th><th>value</th><th>rule</th><th>how</th><th>sources</th></tr>");
    for (column, value) in row {
        let prov = provenance.iter().find(|p| p["column"] == column.as_str());
        let text = |k: &str| esc(prov.and_then(|p| p[k].as_str()).unwrap_or(""));
        let mut links = String::new();
        for s in prov.and_then(|p| p["sources"].as_array()).into_iter().flatten() {
            let Some(s) = s.as_str() else { continue };
            let (at, reference) = match crate::cohort::link::split_source(s) {
                (Some(at), r) => (at, r),
                (None, r) => (site, r),
            };
            let _ = write!(
                links,
                "<a href=\"/sources/{}/{}\">{}</a> ",
                seg(at),
                reference.split('/').map(seg).collect::<Vec<_>>().join("/"),
                esc(s)
            );
        }
        let _ = write!(
            body,
            "<tr id=\"prov-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{links}</td></tr>",
            esc(column),
            esc(column),
            esc(value.as_str().unwrap_or("")),
            text("rule"),
            text("detail")
        );
    }
    body.push_str("</table>");
}

/// `POST /sites/{id}/sync` (the page's "sync now"): starts the sync, back to the page.
pub(crate) async fn sync_now(State(app): State<App>, Path(id): Path<String>) -> Response {
    match super::api::start_sync(&app, &id) {
        Ok(()) | Err(_) if app.config.site(&id).is_some() => Redirect::to("/").into_response(),
        _ => (StatusCode::NOT_FOUND, document("Not found", "<p>No such site.</p>")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_data_is_escaped_and_ids_are_encoded_in_links() {
        assert_eq!(
            esc("<b onclick='x'>&\"</b>"),
            "&lt;b onclick=&#39;x&#39;&gt;&amp;&quot;&lt;/b&gt;"
        );
        assert_eq!(seg("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}
