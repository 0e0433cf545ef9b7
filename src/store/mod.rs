//! The sync store: an embedded SQLite database holding each resource's raw
//! JSON keyed by (type, id) with its `meta.versionId` and `meta.lastUpdated`,
//! plus per-server sync state (watermark, pages done, bulk status URL).
//!
//! This module owns the database file and its schema. It knows nothing of
//! HTTP ([`crate::client`]), of what to fetch ([`crate::sync`]) or of the
//! cohort rules; it must not touch them.
//!
//! Writes are idempotent and transactional per page: [`Store::write_page`]
//! applies a whole page (and the server's page counter) in one transaction, so
//! an interrupted run leaves either the page or nothing. A resource replaces
//! the stored one unless it is provably older (a smaller numeric `versionId`,
//! or else an earlier `lastUpdated`); the same data changes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (opening, schema, a statement).
    #[error("store database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A resource to write has no `resourceType` or `id` (its position in the page only).
    #[error("resource #{index} of a page has no resourceType or id")]
    NotAResource {
        /// 0-based position in the page.
        index: usize,
    },
}

/// What one page write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// New (type, id).
    pub inserted: u64,
    /// Replaced by a newer version.
    pub updated: u64,
    /// Same data, or older than what is held.
    pub unchanged: u64,
}

impl WriteStats {
    fn add(&mut self, other: WriteStats) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `resourceType`.
    pub rtype: String,
    /// `id`.
    pub id: String,
    /// `meta.versionId`, when given.
    pub version_id: Option<String>,
    /// `meta.lastUpdated`, when given.
    pub last_updated: Option<String>,
    /// The resource's JSON (compact).
    pub json: String,
}

/// Sync state of one server (by base URL).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// The `lastUpdated` (crawl) or transaction time (bulk) the last successful run covers.
    pub watermark: Option<String>,
    /// Pages written for this server, over all runs.
    pub pages_done: u64,
    /// A Bulk Data status URL still being polled.
    pub status_url: Option<String>,
    /// `running`, `done` or `failed`.
    pub status: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resource (
    rtype TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id TEXT,
    last_updated TEXT,
    json TEXT NOT NULL,
    PRIMARY KEY (rtype, id)
);
CREATE TABLE IF NOT EXISTS sync_state (
    base_url TEXT PRIMARY KEY,
    watermark TEXT,
    pages_done INTEGER NOT NULL DEFAULT 0,
    status_url TEXT,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS cohort (
    base_url TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (base_url, patient_id)
);
CREATE TABLE IF NOT EXISTS server_outcome (
    base_url TEXT NOT NULL,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (base_url, seq)
);
";

/// The store. Open one with [`Store::open`] (a file) or [`Store::in_memory`].
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Writes one page of resources and counts the page for `base_url`, in one transaction.
    pub fn write_page(&mut self, base_url: &str, resources: &[Value]) -> Result<WriteStats, StoreError> {
        let tx = self.conn.transaction()?;
        let mut stats = WriteStats::default();
        for (index, r) in resources.iter().enumerate() {
            stats.add(upsert(&tx, index, r)?);
        }
        tx.prepare_cached(
            "INSERT INTO sync_state (base_url, pages_done) VALUES (?1, 1)
             ON CONFLICT(base_url) DO UPDATE SET pages_done = pages_done + 1",
        )?
        .execute(params![base_url])?;
        tx.commit()?;
        Ok(stats)
    }

    /// The JSON of one resource.
    pub fn get(&self, rtype: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT json FROM resource WHERE rtype = ?1 AND id = ?2",
                params![rtype, id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether a resource is held.
    pub fn contains(&self, rtype: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.get(rtype, id)?.is_some())
    }

    /// Every row, ordered by type then id.
    pub fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        self.for_each(|row| out.push(row))?;
        Ok(out)
    }

    /// Calls `f` with every row, ordered by type then id, one at a time.
    pub fn for_each(&self, mut f: impl FnMut(Row)) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rtype, id, version_id, last_updated, json FROM resource ORDER BY rtype, id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(Row {
                rtype: r.get(0)?,
                id: r.get(1)?,
                version_id: r.get(2)?,
                last_updated: r.get(3)?,
                json: r.get(4)?,
            });
        }
        Ok(())
    }

    /// Resources held per type.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rtype, COUNT(*) FROM resource GROUP BY rtype ORDER BY rtype")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (t, n) = row?;
            out.insert(t, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// The sync state of `base_url`, if it was ever synced.
    pub fn sync_state(&self, base_url: &str) -> Result<Option<SyncState>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT watermark, pages_done, status_url, status FROM sync_state WHERE base_url = ?1",
                params![base_url],
                |r| {
                    Ok(SyncState {
                        watermark: r.get(0)?,
                        pages_done: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        status_url: r.get(2)?,
                        status: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records the start of a run for `base_url` (status `running`).
    pub fn begin_run(&mut self, base_url: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_state (base_url, status) VALUES (?1, 'running')
             ON CONFLICT(base_url) DO UPDATE SET status = 'running'",
            params![base_url],
        )?;
        Ok(())
    }

    /// Records the end of a run: `done` with its watermark, or `failed` (watermark kept).
    pub fn finish_run(&mut self, base_url: &str, watermark: Option<&str>, ok: bool) -> Result<(), StoreError> {
        let status = if ok { "done" } else { "failed" };
        self.conn.execute(
            "INSERT INTO sync_state (base_url, watermark, status) VALUES (?1, ?2, ?3)
             ON CONFLICT(base_url) DO UPDATE SET status = ?3,
                watermark = CASE WHEN ?3 = 'done' THEN COALESCE(?2, watermark) ELSE watermark END",
            params![base_url, watermark, status],
        )?;
        Ok(())
    }
}

impl Store {
    /// Saves (or, with `None`, clears) the Bulk Data status URL being polled for `base_url`.
    pub fn set_status_url(&mut self, base_url: &str, status_url: Option<&str>) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_state (base_url, status_url) VALUES (?1, ?2)
             ON CONFLICT(base_url) DO UPDATE SET status_url = ?2",
            params![base_url, status_url],
        )?;
        Ok(())
    }

    /// Remembers Patient ids as the cohort of `base_url` (incremental syncs re-check them).
    pub fn add_cohort<'a>(&mut self, base_url: &str, ids: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.execute(
                "INSERT OR IGNORE INTO cohort (base_url, patient_id) VALUES (?1, ?2)",
                params![base_url, id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The Patient ids remembered as the cohort of `base_url`.
    pub fn cohort(&self, base_url: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT patient_id FROM cohort WHERE base_url = ?1 ORDER BY patient_id")?;
        let ids = stmt.query_map(params![base_url], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Replaces the OperationOutcomes a server reported (bulk `error` files) for `base_url`.
    pub fn replace_outcomes(&mut self, base_url: &str, outcomes: &[Value]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM server_outcome WHERE base_url = ?1", params![base_url])?;
        for (seq, o) in outcomes.iter().enumerate() {
            tx.execute(
                "INSERT INTO server_outcome (base_url, seq, json) VALUES (?1, ?2, ?3)",
                params![base_url, seq as i64, o.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The OperationOutcomes a server reported for `base_url`, as JSON text.
    pub fn outcomes(&self, base_url: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM server_outcome WHERE base_url = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![base_url], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Inserts or replaces one resource inside `tx`.
fn upsert(tx: &rusqlite::Transaction<'_>, index: usize, r: &Value) -> Result<WriteStats, StoreError> {
    let text = |p: &str| r.pointer(p).and_then(Value::as_str).map(str::to_string);
    let (Some(rtype), Some(id)) = (text("/resourceType"), text("/id")) else {
        return Err(StoreError::NotAResource { index });
    };
    let version_id = text("/meta/versionId");
    let last_updated = text("/meta/lastUpdated");
    let json = r.to_string();
    // Cached statements: preparing them for every resource was a quarter of a sync's CPU time.
    let held: Option<(Option<String>, Option<String>, String)> = tx
        .prepare_cached("SELECT version_id, last_updated, json FROM resource WHERE rtype = ?1 AND id = ?2")?
        .query_row(params![rtype, id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let stats = match held {
        None => WriteStats {
            inserted: 1,
            ..WriteStats::default()
        },
        Some((_, _, held_json)) if held_json == json => WriteStats {
            unchanged: 1,
            ..WriteStats::default()
        },
        Some((held_v, held_lu, _))
            if is_older(
                (version_id.as_deref(), last_updated.as_deref()),
                (held_v.as_deref(), held_lu.as_deref()),
            ) =>
        {
            WriteStats {
                unchanged: 1,
                ..WriteStats::default()
            }
        }
        Some(_) => WriteStats {
            updated: 1,
            ..WriteStats::default()
        },
    };
    if stats.unchanged == 0 {
        tx.prepare_cached(
            "INSERT INTO resource (rtype, id, version_id, last_updated, json) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(rtype, id) DO UPDATE SET version_id = ?3, last_updated = ?4, json = ?5",
        )?
        .execute(params![rtype, id, version_id, last_updated, json])?;
    }
    Ok(stats)
}

/// Whether `incoming` (versionId, lastUpdated) is provably older than `held`:
/// numeric versionIds compare first, then lastUpdated instants (RFC 3339 text in
/// the same zone compares as text). Unknown order means not older: the server's
/// current answer wins.
fn is_older(incoming: (Option<&str>, Option<&str>), held: (Option<&str>, Option<&str>)) -> bool {
    let num = |v: Option<&str>| v.and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(a), Some(b)) = (num(incoming.0), num(held.0)) {
        if a != b {
            return a < b;
        }
    }
    match (incoming.1, held.1) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(id: &str, version: &str, updated: &str, value: i64) -> Value {
        json!({"resourceType": "Observation", "id": id,
               "meta": {"versionId": version, "lastUpdated": updated}, "valueInteger": value})
    }

    #[test]
    fn same_data_twice_changes_nothing() {
        let mut s = Store::in_memory().unwrap();
        let page = [
            obs("a", "1", "2024-01-01T00:00:00Z", 1),
            obs("b", "1", "2024-01-01T00:00:00Z", 2),
        ];
        let first = s.write_page("http://x", &page).unwrap();
        assert_eq!(first.inserted, 2);
        let rows = s.rows().unwrap();
        let again = s.write_page("http://x", &page).unwrap();
        assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
        assert_eq!(s.rows().unwrap(), rows);
        assert_eq!(s.sync_state("http://x").unwrap().unwrap().pages_done, 2);
    }

    #[test]
    fn newer_version_wins_and_older_is_ignored() {
        let mut s = Store::in_memory().unwrap();
        s.write_page("b", &[obs("a", "2", "2024-01-02T00:00:00Z", 2)]).unwrap();
        let older = s.write_page("b", &[obs("a", "1", "2024-01-01T00:00:00Z", 1)]).unwrap();
        assert_eq!(older.unchanged, 1);
        assert!(s
            .get("Observation", "a")
            .unwrap()
            .unwrap()
            .contains("\"valueInteger\":2"));
        // Numeric versions: "10" is newer than "9".
        s.write_page("b", &[obs("a", "10", "2024-01-03T00:00:00Z", 10)])
            .unwrap();
        let nine = s.write_page("b", &[obs("a", "9", "2024-01-04T00:00:00Z", 9)]).unwrap();
        assert_eq!(nine.unchanged, 1);
        let row = &s.rows().unwrap()[0];
        assert_eq!(row.version_id.as_deref(), Some("10"));
        // No meta at all: the server's current answer wins.
        let bare = json!({"resourceType": "Patient", "id": "p", "gender": "male"});
        s.write_page("b", &[bare]).unwrap();
        let changed = s
            .write_page(
                "b",
                &[json!({"resourceType": "Patient", "id": "p", "gender": "female"})],
            )
            .unwrap();
        assert_eq!(changed.updated, 1);
    }

    #[test]
    fn a_bad_resource_rolls_back_the_whole_page() {
        let mut s = Store::in_memory().unwrap();
        let page = [obs("a", "1", "2024-01-01T00:00:00Z", 1), json!({"id": "x"})];
        assert!(matches!(
            s.write_page("b", &page),
            Err(StoreError::NotAResource { index: 1 })
        ));
        assert!(s.rows().unwrap().is_empty());
        assert!(s.sync_state("b").unwrap().is_none());
    }

    #[test]
    fn sync_state_keeps_the_last_good_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        s.begin_run("b").unwrap();
        s.finish_run("b", Some("2024-01-01T00:00:00Z"), true).unwrap();
        s.begin_run("b").unwrap();
        s.finish_run("b", Some("2024-02-01T00:00:00Z"), false).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        let st = s.sync_state("b").unwrap().unwrap();
        assert_eq!(st.watermark.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(st.status, "failed");
        assert_eq!(s.counts().unwrap().len(), 0);
    }

    #[test]
    fn status_url_cohort_and_outcomes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        s.set_status_url("b", Some("http://b/_bulk/status/1")).unwrap();
        s.add_cohort("b", ["p2", "p1", "p1"]).unwrap();
        s.replace_outcomes("b", &[json!({"resourceType": "OperationOutcome"})])
            .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let st = s.sync_state("b").unwrap().unwrap();
        assert_eq!(st.status_url.as_deref(), Some("http://b/_bulk/status/1"));
        assert_eq!(s.cohort("b").unwrap(), ["p1", "p2"]);
        assert!(s.cohort("other").unwrap().is_empty());
        assert_eq!(s.outcomes("b").unwrap().len(), 1);
        s.set_status_url("b", None).unwrap();
        s.replace_outcomes("b", &[]).unwrap();
        assert_eq!(s.sync_state("b").unwrap().unwrap().status_url, None);
        assert!(s.outcomes("b").unwrap().is_empty());
    }
}
