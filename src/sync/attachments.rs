//! After a crawl or bulk run: report and note attachments given only by a
//! `url` to a Binary (Epic's `Binary/eXYZ…`), fetched so text rules can read
//! them. A url is fetched only when it is the server's own (relative, or
//! under the base URL): the client then sends its token to the base origin
//! only; any other url is counted and left (the cohort reports it as an
//! `unread-attachment`). The Binary's base64 `data` (and its `contentType`
//! when the attachment has none) is written into the stored resource, so
//! `sources.ndjson` keeps the text a value came from. Only text/plain and
//! text/html (or untyped) attachments are fetched. Logs hold counts only.

use std::collections::HashMap;

use serde_json::Value;

use super::{lock, Ctx, Progress, SyncError};

/// What attachment hydration did.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    /// Binaries fetched into attachments.
    pub fetched: u64,
    /// Attachment urls off the server's base URL: not fetched.
    pub elsewhere: u64,
}

/// One resource with attachments to fill: its JSON and, per attachment, its
/// JSON pointer and the Binary id.
struct Pending {
    json: Value,
    slots: Vec<(String, String)>,
}

/// Fetches the Binaries that stored reports' and notes' attachments name by url.
pub(super) async fn run(ctx: &Ctx) -> Result<Attachments, SyncError> {
    let base = ctx.client.base_url().trim_end_matches('/').to_string();
    let (pending, elsewhere) = pending(ctx, &base)?;
    let mut ids: Vec<String> = pending
        .iter()
        .flat_map(|p| p.slots.iter().map(|s| s.1.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    if elsewhere > 0 {
        tracing::warn!(elsewhere, "attachment urls off the server's base URL; not fetched");
    }
    if ids.is_empty() {
        return Ok(Attachments { fetched: 0, elsewhere });
    }
    let binaries = fetch(ctx, ids).await?;
    let mut fetched = 0;
    let mut page = Vec::new();
    for mut p in pending {
        for (pointer, id) in &p.slots {
            let (Some(b), Some(a)) = (binaries.get(id), p.json.pointer_mut(pointer)) else {
                continue;
            };
            a["data"] = b["data"].clone();
            if a["contentType"].is_null() {
                a["contentType"] = b["contentType"].clone();
            }
            fetched += 1;
        }
        page.push(p.json);
    }
    lock(&ctx.store).write_page(&ctx.site, &page)?;
    Ok(Attachments { fetched, elsewhere })
}

/// Stored reports and notes with url-only text attachments, and how many urls
/// are off `base`. Only the site's reports and notes are read, not its whole store.
fn pending(ctx: &Ctx, base: &str) -> Result<(Vec<Pending>, u64), SyncError> {
    let store = lock(&ctx.store);
    let mut out = Vec::new();
    let mut elsewhere = 0;
    for (rtype, key) in [("DiagnosticReport", "presentedForm"), ("DocumentReference", "content")] {
        store.for_each_of(&ctx.site, rtype, |row| {
            slots_of(&row.json, key, base, &mut out, &mut elsewhere)
        })?;
    }
    Ok((out, elsewhere))
}

/// Notes `json`'s url-only text attachments under `key` in `out` (or counts them as elsewhere).
fn slots_of(json: &str, key: &str, base: &str, out: &mut Vec<Pending>, elsewhere: &mut u64) {
    if !json.contains("\"url\"") {
        return;
    }
    let Ok(json) = serde_json::from_str::<Value>(json) else {
        return;
    };
    let mut slots = Vec::new();
    for (i, item) in json[key].as_array().into_iter().flatten().enumerate() {
        let (a, pointer) = match key {
            "content" => (&item["attachment"], format!("/content/{i}/attachment")),
            _ => (item, format!("/presentedForm/{i}")),
        };
        let Some(url) = a["url"].as_str().filter(|_| a["data"].is_null() && is_text(a)) else {
            continue;
        };
        match binary_id(url, base) {
            Some(id) => slots.push((pointer, id)),
            None => *elsewhere += 1,
        }
    }
    if !slots.is_empty() {
        out.push(Pending { json, slots });
    }
}

/// A text attachment (text/plain, text/html) or one that says nothing of its type.
fn is_text(a: &Value) -> bool {
    let ct = a["contentType"].as_str().unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    matches!(mime, "" | "text/plain" | "text/html")
}

/// The Binary id of `url` when it is the server's: `Binary/ID`, or `BASE/Binary/ID`.
fn binary_id(url: &str, base: &str) -> Option<String> {
    let rest = match url.strip_prefix(base) {
        Some(r) => r.strip_prefix('/')?,
        None if url.contains("://") || url.starts_with("//") => return None,
        None => url.trim_start_matches('/'),
    };
    let id = rest.strip_prefix("Binary/")?;
    let ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    ok.then(|| id.to_string())
}

/// Reads each Binary, as many at once as the client allows.
async fn fetch(ctx: &Ctx, ids: Vec<String>) -> Result<HashMap<String, Value>, SyncError> {
    ctx.progress(Progress::Phase {
        name: "attachments",
        total: Some(ids.len() as u64),
    });
    let mut out = HashMap::new();
    super::hydrate::read_each(ctx, "Binary", ids, |id, read| {
        if let Some(b) = read.filter(|b| b["resourceType"] == "Binary" && b["data"].is_string()) {
            out.insert(id, b);
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_binary_urls_are_fetched() {
        let base = "https://ehr.example.org/fhir";
        assert_eq!(binary_id("Binary/e1", base).as_deref(), Some("e1"));
        assert_eq!(
            binary_id("https://ehr.example.org/fhir/Binary/e2", base).as_deref(),
            Some("e2")
        );
        assert_eq!(binary_id("https://evil.example.org/fhir/Binary/e3", base), None);
        assert_eq!(binary_id("https://ehr.example.org/fhirx/Binary/e4", base), None);
        assert_eq!(binary_id("//evil.example.org/Binary/e5", base), None);
        assert_eq!(binary_id("Binary/../Patient/x", base), None);
        assert_eq!(binary_id("DocumentReference/x", base), None);
    }
}
