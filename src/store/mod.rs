//! The sync store: an embedded SQLite database holding each resource's raw
//! JSON keyed by (site, type, id) with its `meta.versionId` and
//! `meta.lastUpdated`, plus per-site sync state (the base URL, watermark,
//! pages done, bulk status URL), the cohort remembered per site and the
//! OperationOutcomes a site's server reported.
//!
//! A **site** is one hospital's FHIR server, named by a short id
//! ([`site`](mod@site): `[a-z0-9-]`, 1 to 32 characters). Resources of
//! different sites never replace each other, even under the same (type, id):
//! two EHRs number their resources independently (issue 23).
//!
//! This module owns the database file and its schema, versioned by `PRAGMA
//! user_version` ([`SCHEMA_VERSION`]); [`Store::open`] upgrades a store of an
//! earlier release in place, in one transaction (see [`schema`](mod@schema) for
//! how its data is given sites), and refuses a store of a later one. It knows
//! nothing of HTTP ([`crate::client`]), of what to fetch ([`crate::sync`]) or of
//! the cohort rules; it must not touch them.
//!
//! Writes are idempotent and transactional per page: [`Store::write_page`]
//! applies a whole page (and the site's page counter) in one transaction, so
//! an interrupted run leaves either the page or nothing. A resource replaces
//! the stored one of its site unless it is provably older (a smaller numeric
//! `versionId`, or else an earlier `lastUpdated`); the same data changes nothing.

pub mod schema;
pub mod site;

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

pub use schema::SCHEMA_VERSION;
pub use site::{check_site_id, site_id_for, SiteIdError, LOCAL_SITE, MAX_SITE_ID_LEN};

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
    /// The store was written by a later release (its schema version is newer than this one's).
    #[error(
        "the store has schema version {found}, newer than this release's {supported}: \
         use the release that wrote it (or a later one)"
    )]
    NewerSchema {
        /// The store's `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// The store's schema version is not one any release wrote (below 0).
    #[error("the store has schema version {found}, which no release of imnm wrote")]
    UnknownSchema {
        /// The store's `user_version`.
        found: i64,
    },
    /// A site id given to the store is not one (see [`site`](mod@site)).
    #[error("site id: {0}")]
    SiteId(#[from] SiteIdError),
    /// The store holds several sites where one is read (an export reads one site).
    #[error("the store holds {} sites ({}); this reads one site at a time", sites.len(), sites.join(", "))]
    SeveralSites {
        /// The sites held.
        sites: Vec<String>,
    },
}

/// What one page write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// New (site, type, id).
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
    /// The site it was synced from.
    pub site: String,
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

/// Sync state of one site.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// The base URL of the site's last run ([`Store::begin_run`]); `None` when
    /// pages were written without a run.
    pub base_url: Option<String>,
    /// The `lastUpdated` (crawl) or transaction time (bulk) the last successful run covers.
    pub watermark: Option<String>,
    /// Pages written for this site, over all runs.
    pub pages_done: u64,
    /// A Bulk Data status URL still being polled.
    pub status_url: Option<String>,
    /// `running`, `done` or `failed`.
    pub status: String,
}

/// The store. Open one with [`Store::open`] (a file) or [`Store::in_memory`].
pub struct Store {
    conn: Connection,
}

const ROW_COLUMNS: &str = "site, rtype, id, version_id, last_updated, json";

impl Store {
    /// Opens (creating if needed) the database file at `path`. A store of an
    /// earlier release is upgraded in place, in one transaction; one of a later
    /// release is refused ([`StoreError::NewerSchema`]).
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

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        schema::prepare(&mut conn)?;
        Ok(Store { conn })
    }

    /// Writes one page of `site`'s resources and counts the page for the site, in one transaction.
    pub fn write_page(&mut self, site: &str, resources: &[Value]) -> Result<WriteStats, StoreError> {
        check_site_id(site)?;
        let tx = self.conn.transaction()?;
        let mut stats = WriteStats::default();
        for (index, r) in resources.iter().enumerate() {
            stats.add(upsert(&tx, site, index, r)?);
        }
        tx.prepare_cached(
            "INSERT INTO sync_state (site, pages_done) VALUES (?1, 1)
             ON CONFLICT(site) DO UPDATE SET pages_done = pages_done + 1",
        )?
        .execute(params![site])?;
        tx.commit()?;
        Ok(stats)
    }

    /// Removes resources of `site` the server deleted (`(type, id)` pairs), in
    /// one transaction; returns how many the store held.
    pub fn delete(&mut self, site: &str, refs: &[(String, String)]) -> Result<u64, StoreError> {
        check_site_id(site)?;
        let tx = self.conn.transaction()?;
        let mut removed = 0u64;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3")?;
            for (rtype, id) in refs {
                removed += stmt.execute(params![site, rtype, id])? as u64;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The JSON of one resource of `site`.
    pub fn get(&self, site: &str, rtype: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT json FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3")?
            .query_row(params![site, rtype, id], |r| r.get(0))
            .optional()?)
    }

    /// Whether `site` holds a resource.
    pub fn contains(&self, site: &str, rtype: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.get(site, rtype, id)?.is_some())
    }

    /// Every site with resources or sync state, sorted.
    pub fn sites(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT site FROM resource UNION SELECT site FROM sync_state ORDER BY 1")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every row, ordered by site, type, id.
    pub fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        self.for_each(|row| out.push(row))?;
        Ok(out)
    }

    /// Calls `f` with every row of every site, ordered by site, type, id, one at a time.
    pub fn for_each(&self, f: impl FnMut(Row)) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {ROW_COLUMNS} FROM resource ORDER BY site, rtype, id"))?;
        let rows = stmt.query([])?;
        each_row(rows, f)
    }

    /// Calls `f` with every row of `site`, ordered by type, id, one at a time.
    pub fn for_each_in(&self, site: &str, f: impl FnMut(Row)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM resource WHERE site = ?1 ORDER BY rtype, id"
        ))?;
        let rows = stmt.query(params![site])?;
        each_row(rows, f)
    }

    /// Resources held per type, over all sites.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let stmt = self
            .conn
            .prepare("SELECT rtype, COUNT(*) FROM resource GROUP BY rtype ORDER BY rtype")?;
        type_counts(stmt, [])
    }

    /// Resources `site` holds per type.
    pub fn counts_in(&self, site: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let stmt = self
            .conn
            .prepare("SELECT rtype, COUNT(*) FROM resource WHERE site = ?1 GROUP BY rtype ORDER BY rtype")?;
        type_counts(stmt, params![site])
    }

    /// The sync state of `site`, if it was ever synced.
    pub fn sync_state(&self, site: &str) -> Result<Option<SyncState>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT base_url, watermark, pages_done, status_url, status FROM sync_state WHERE site = ?1",
                params![site],
                |r| {
                    Ok(SyncState {
                        base_url: r.get(0)?,
                        watermark: r.get(1)?,
                        pages_done: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        status_url: r.get(3)?,
                        status: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records the start of a run for `site` against `base_url` (status `running`).
    /// The site keeps its resources and watermark when its base URL changes.
    pub fn begin_run(&mut self, site: &str, base_url: &str) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.conn.execute(
            "INSERT INTO sync_state (site, base_url, status) VALUES (?1, ?2, 'running')
             ON CONFLICT(site) DO UPDATE SET status = 'running', base_url = ?2",
            params![site, base_url],
        )?;
        Ok(())
    }

    /// Records the end of a run of `site`: `done` with its watermark, or `failed` (watermark kept).
    pub fn finish_run(&mut self, site: &str, watermark: Option<&str>, ok: bool) -> Result<(), StoreError> {
        check_site_id(site)?;
        let status = if ok { "done" } else { "failed" };
        self.conn.execute(
            "INSERT INTO sync_state (site, watermark, status) VALUES (?1, ?2, ?3)
             ON CONFLICT(site) DO UPDATE SET status = ?3,
                watermark = CASE WHEN ?3 = 'done' THEN COALESCE(?2, watermark) ELSE watermark END",
            params![site, watermark, status],
        )?;
        Ok(())
    }
}

impl Store {
    /// Saves (or, with `None`, clears) the Bulk Data status URL being polled for `site`.
    pub fn set_status_url(&mut self, site: &str, status_url: Option<&str>) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.conn.execute(
            "INSERT INTO sync_state (site, status_url) VALUES (?1, ?2)
             ON CONFLICT(site) DO UPDATE SET status_url = ?2",
            params![site, status_url],
        )?;
        Ok(())
    }

    /// Remembers Patient ids as the cohort of `site` (incremental syncs re-check them).
    pub fn add_cohort<'a>(&mut self, site: &str, ids: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
        check_site_id(site)?;
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.prepare_cached("INSERT OR IGNORE INTO cohort (site, patient_id) VALUES (?1, ?2)")?
                .execute(params![site, id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The Patient ids remembered as the cohort of `site`.
    pub fn cohort(&self, site: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT patient_id FROM cohort WHERE site = ?1 ORDER BY patient_id")?;
        let ids = stmt.query_map(params![site], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Replaces the OperationOutcomes `site`'s server reported (bulk `error` files).
    pub fn replace_outcomes(&mut self, site: &str, outcomes: &[Value]) -> Result<(), StoreError> {
        check_site_id(site)?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM server_outcome WHERE site = ?1", params![site])?;
        for (seq, o) in outcomes.iter().enumerate() {
            tx.execute(
                "INSERT INTO server_outcome (site, seq, json) VALUES (?1, ?2, ?3)",
                params![site, seq as i64, o.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The OperationOutcomes `site`'s server reported, as JSON text.
    pub fn outcomes(&self, site: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM server_outcome WHERE site = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![site], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Hands each row of a query over [`ROW_COLUMNS`] to `f`.
fn each_row(mut rows: rusqlite::Rows<'_>, mut f: impl FnMut(Row)) -> Result<(), StoreError> {
    while let Some(r) = rows.next()? {
        f(Row {
            site: r.get(0)?,
            rtype: r.get(1)?,
            id: r.get(2)?,
            version_id: r.get(3)?,
            last_updated: r.get(4)?,
            json: r.get(5)?,
        });
    }
    Ok(())
}

/// The (type, count) rows of `stmt` as a map.
fn type_counts(
    mut stmt: rusqlite::Statement<'_>,
    p: impl rusqlite::Params,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let rows = stmt.query_map(p, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (t, n) = row?;
        out.insert(t, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// Inserts or replaces one resource inside `tx`.
fn upsert(tx: &rusqlite::Transaction<'_>, site: &str, index: usize, r: &Value) -> Result<WriteStats, StoreError> {
    let text = |p: &str| r.pointer(p).and_then(Value::as_str).map(str::to_string);
    let (Some(rtype), Some(id)) = (text("/resourceType"), text("/id")) else {
        return Err(StoreError::NotAResource { index });
    };
    let version_id = text("/meta/versionId");
    let last_updated = text("/meta/lastUpdated");
    let json = r.to_string();
    // Cached statements: preparing them for every resource was a quarter of a sync's CPU time.
    let held: Option<(Option<String>, Option<String>, String)> = tx
        .prepare_cached(
            "SELECT version_id, last_updated, json FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3",
        )?
        .query_row(params![site, rtype, id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
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
            "INSERT INTO resource (site, rtype, id, version_id, last_updated, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(site, rtype, id) DO UPDATE SET version_id = ?4, last_updated = ?5, json = ?6",
        )?
        .execute(params![site, rtype, id, version_id, last_updated, json])?;
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
        let first = s.write_page("x", &page).unwrap();
        assert_eq!(first.inserted, 2);
        let rows = s.rows().unwrap();
        let again = s.write_page("x", &page).unwrap();
        assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
        assert_eq!(s.rows().unwrap(), rows);
        assert_eq!(s.sync_state("x").unwrap().unwrap().pages_done, 2);
    }

    #[test]
    fn newer_version_wins_and_older_is_ignored() {
        let mut s = Store::in_memory().unwrap();
        s.write_page("b", &[obs("a", "2", "2024-01-02T00:00:00Z", 2)]).unwrap();
        let older = s.write_page("b", &[obs("a", "1", "2024-01-01T00:00:00Z", 1)]).unwrap();
        assert_eq!(older.unchanged, 1);
        assert!(s
            .get("b", "Observation", "a")
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
        s.begin_run("b", "http://b/fhir").unwrap();
        s.finish_run("b", Some("2024-01-01T00:00:00Z"), true).unwrap();
        s.begin_run("b", "http://b/fhir").unwrap();
        s.finish_run("b", Some("2024-02-01T00:00:00Z"), false).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        let st = s.sync_state("b").unwrap().unwrap();
        assert_eq!(st.watermark.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(st.status, "failed");
        assert_eq!(st.base_url.as_deref(), Some("http://b/fhir"));
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

    #[test]
    fn sites_never_replace_each_other() {
        let mut s = Store::in_memory().unwrap();
        let a = s.write_page("a", &[obs("x", "1", "2024-01-01T00:00:00Z", 1)]).unwrap();
        let b = s.write_page("b", &[obs("x", "1", "2024-01-01T00:00:00Z", 2)]).unwrap();
        assert_eq!((a.inserted, b.inserted, b.updated), (1, 1, 0));
        assert!(s
            .get("a", "Observation", "x")
            .unwrap()
            .unwrap()
            .contains("\"valueInteger\":1"));
        assert!(s
            .get("b", "Observation", "x")
            .unwrap()
            .unwrap()
            .contains("\"valueInteger\":2"));
        assert!(!s.contains("c", "Observation", "x").unwrap());
        s.write_page("b", &[json!({"resourceType": "Patient", "id": "p"})])
            .unwrap();
        s.begin_run("c", "http://c/").unwrap();
        assert_eq!(s.sites().unwrap(), ["a", "b", "c"]);
        let order: Vec<(String, String)> = s.rows().unwrap().into_iter().map(|r| (r.site, r.rtype)).collect();
        assert_eq!(
            order,
            [("a", "Observation"), ("b", "Observation"), ("b", "Patient")].map(|(a, b)| (a.into(), b.into()))
        );
        let mut in_b = Vec::new();
        s.for_each_in("b", |r| in_b.push(r.rtype)).unwrap();
        assert_eq!(in_b, ["Observation", "Patient"]);
        assert_eq!(s.counts().unwrap()["Observation"], 2);
        assert_eq!(s.counts_in("a").unwrap().len(), 1);
        assert!(s.counts_in("c").unwrap().is_empty());
        assert!(matches!(
            s.write_page("B", &[]),
            Err(StoreError::SiteId(SiteIdError::Characters))
        ));
    }

    #[test]
    fn a_newer_schema_is_refused_and_the_version_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        let err = Store::open(&path).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 3, supported: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this release's 2"), "{err}");
    }

    #[test]
    fn a_v1_store_with_two_servers_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE resource (rtype TEXT NOT NULL, id TEXT NOT NULL, version_id TEXT, last_updated TEXT,
                json TEXT NOT NULL, PRIMARY KEY (rtype, id));
             CREATE TABLE sync_state (base_url TEXT PRIMARY KEY, watermark TEXT,
                pages_done INTEGER NOT NULL DEFAULT 0, status_url TEXT, status TEXT NOT NULL DEFAULT 'running');
             CREATE TABLE cohort (base_url TEXT NOT NULL, patient_id TEXT NOT NULL, PRIMARY KEY (base_url, patient_id));
             CREATE TABLE server_outcome (base_url TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL,
                PRIMARY KEY (base_url, seq));
             INSERT INTO resource VALUES ('Patient', 'p1', '1', NULL, '{\"resourceType\":\"Patient\",\"id\":\"p1\"}');
             INSERT INTO sync_state VALUES ('https://ehr.b.org/R4/', '2024-05-01T00:00:00Z', 3, NULL, 'done');
             INSERT INTO sync_state VALUES ('http://127.0.0.1:8080/fhir/', '2024-01-01T00:00:00Z', 2, 'http://s/1', 'done');
             INSERT INTO sync_state VALUES ('http://127.0.0.1:8080/other/', NULL, 1, NULL, 'failed');
             INSERT INTO cohort VALUES ('http://127.0.0.1:8080/fhir/', 'p1');
             INSERT INTO server_outcome VALUES ('https://ehr.b.org/R4/', 0, '{}');",
        )
        .unwrap();
        drop(conn);
        let s = Store::open(&path).unwrap();
        // The resources go to the most recently synced server's site (the latest watermark).
        assert_eq!(s.rows().unwrap()[0].site, "ehr-b-org");
        assert_eq!(s.sites().unwrap(), ["127-0-0-1-8080", "127-0-0-1-8080-2", "ehr-b-org"]);
        let st = s.sync_state("127-0-0-1-8080").unwrap().unwrap();
        assert_eq!(st.base_url.as_deref(), Some("http://127.0.0.1:8080/fhir/"));
        assert_eq!((st.pages_done, st.status_url.as_deref()), (2, Some("http://s/1")));
        assert_eq!(s.cohort("127-0-0-1-8080").unwrap(), ["p1"]);
        assert_eq!(s.outcomes("ehr-b-org").unwrap(), ["{}"]);
        let st2 = s.sync_state("127-0-0-1-8080-2").unwrap().unwrap();
        assert_eq!((st2.status.as_str(), st2.watermark), ("failed", None));
    }
}
