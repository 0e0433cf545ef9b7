//! The embedded backend: one SQLite file (WAL), schema in [`schema`](super::schema).
//! Owns the SQL of the SQLite store and nothing else: what a write does to the
//! counts ([`super::decide`]) and the checks of a page are the store's.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{decide, Backend, Incoming, Lease, Row, RunRecord, StoreError, SyncState, Table, WriteStats, RUNS_KEPT};

/// A SQLite connection holding a store of [`super::SCHEMA_VERSION`].
pub(super) struct Sqlite {
    conn: Connection,
}

const ROW_COLUMNS: &str = "site, rtype, id, version_id, last_updated, json";

impl Sqlite {
    /// Opens (creating) the file and brings it to the current schema.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Several processes (sync workers) may share the file: wait for a writer instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Self::init(conn)
    }

    /// A store in memory.
    pub(super) fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        super::schema::prepare(&mut conn)?;
        Ok(Sqlite { conn })
    }
}

impl Backend for Sqlite {
    fn write_page(&mut self, site: &str, page: &[Incoming<'_>]) -> Result<WriteStats, StoreError> {
        let tx = self.conn.transaction()?;
        let mut stats = WriteStats::default();
        for r in page {
            // Cached statements: preparing them for every resource was a quarter of a sync's CPU time.
            let held: Option<(Option<String>, Option<String>, String)> = tx
                .prepare_cached(
                    "SELECT version_id, last_updated, json FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3",
                )?
                .query_row(params![site, r.rtype, r.id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let one = decide(held, r);
            if one.unchanged == 0 {
                tx.prepare_cached(
                    "INSERT INTO resource (site, rtype, id, version_id, last_updated, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(site, rtype, id) DO UPDATE SET version_id = ?4, last_updated = ?5, json = ?6",
                )?
                .execute(params![site, r.rtype, r.id, r.version_id, r.last_updated, r.json])?;
            }
            stats.add(one);
        }
        tx.prepare_cached(
            "INSERT INTO sync_state (site, pages_done) VALUES (?1, 1)
             ON CONFLICT(site) DO UPDATE SET pages_done = pages_done + 1",
        )?
        .execute(params![site])?;
        tx.commit()?;
        Ok(stats)
    }

    fn delete(&mut self, site: &str, keys: &[(String, String)]) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for (rtype, id) in keys {
            n += tx
                .prepare_cached("DELETE FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3")?
                .execute(params![site, rtype, id])? as u64;
        }
        tx.commit()?;
        Ok(n)
    }

    fn get(&self, site: &str, rtype: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT json FROM resource WHERE site = ?1 AND rtype = ?2 AND id = ?3")?
            .query_row(params![site, rtype, id], |r| r.get(0))
            .optional()?)
    }

    fn sites(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT site FROM resource UNION SELECT site FROM sync_state ORDER BY 1")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn for_each(&self, site: Option<&str>, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
        let mut stmt;
        let rows = match site {
            None => {
                stmt = self
                    .conn
                    .prepare(&format!("SELECT {ROW_COLUMNS} FROM resource ORDER BY site, rtype, id"))?;
                stmt.query([])?
            }
            Some(site) => {
                stmt = self.conn.prepare(&format!(
                    "SELECT {ROW_COLUMNS} FROM resource WHERE site = ?1 ORDER BY rtype, id"
                ))?;
                stmt.query(params![site])?
            }
        };
        each_row(rows, f)
    }

    fn for_each_of(&self, site: &str, rtype: &str, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM resource WHERE site = ?1 AND rtype = ?2 ORDER BY id"
        ))?;
        let rows = stmt.query(params![site, rtype])?;
        each_row(rows, f)
    }

    fn for_each_json(&self, site: &str, f: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM resource WHERE site = ?1 ORDER BY rtype, id")?;
        let mut rows = stmt.query(params![site])?;
        while let Some(r) = rows.next()? {
            f(r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?);
        }
        Ok(())
    }

    fn counts(&self, site: Option<&str>) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT rtype, COUNT(*) FROM resource WHERE ?1 IS NULL OR site = ?1 GROUP BY rtype ORDER BY rtype",
        )?;
        let rows = stmt.query_map(params![site], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (t, n) = row?;
            out.insert(t, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    fn sync_state(&self, site: &str) -> Result<Option<SyncState>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT base_url, watermark, pages_done, status_url, status, finished_at FROM sync_state WHERE site = ?1",
                params![site],
                |r| {
                    Ok(SyncState {
                        base_url: r.get(0)?,
                        watermark: r.get(1)?,
                        pages_done: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        status_url: r.get(3)?,
                        status: r.get(4)?,
                        finished_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    fn begin_run(&mut self, site: &str, base_url: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_state (site, base_url, status) VALUES (?1, ?2, 'running')
             ON CONFLICT(site) DO UPDATE SET status = 'running', base_url = ?2",
            params![site, base_url],
        )?;
        Ok(())
    }

    fn finish_run(&mut self, site: &str, watermark: Option<&str>, ok: bool, now: i64) -> Result<(), StoreError> {
        let status = if ok { "done" } else { "failed" };
        self.conn.execute(
            "INSERT INTO sync_state (site, watermark, status, finished_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(site) DO UPDATE SET status = ?3, finished_at = ?4,
                watermark = CASE WHEN ?3 = 'done' THEN COALESCE(?2, watermark) ELSE watermark END",
            params![site, watermark, status, now],
        )?;
        Ok(())
    }

    fn set_status_url(&mut self, site: &str, status_url: Option<&str>) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_state (site, status_url) VALUES (?1, ?2)
             ON CONFLICT(site) DO UPDATE SET status_url = ?2",
            params![site, status_url],
        )?;
        Ok(())
    }

    fn add_cohort(&mut self, site: &str, ids: &[&str]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.prepare_cached("INSERT OR IGNORE INTO cohort (site, patient_id) VALUES (?1, ?2)")?
                .execute(params![site, id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn cohort(&self, site: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT patient_id FROM cohort WHERE site = ?1 ORDER BY patient_id")?;
        let ids = stmt.query_map(params![site], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    fn replace_outcomes(&mut self, site: &str, outcomes: &[String]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM server_outcome WHERE site = ?1", params![site])?;
        for (seq, o) in outcomes.iter().enumerate() {
            tx.execute(
                "INSERT INTO server_outcome (site, seq, json) VALUES (?1, ?2, ?3)",
                params![site, seq as i64, o],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn outcomes(&self, site: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM server_outcome WHERE site = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![site], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn take_lease(&mut self, lease: &Lease<'_>) -> Result<bool, StoreError> {
        // Taken when free, expired, or already ours (a renewal); IMMEDIATE so two processes never both win.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT INTO site_lease (site, holder, expires_at) VALUES (?1, ?2, ?3 + ?4)
             ON CONFLICT(site) DO UPDATE SET holder = ?2, expires_at = ?3 + ?4
             WHERE site_lease.expires_at <= ?3 OR site_lease.holder = ?2",
            params![lease.site, lease.holder, lease.now, lease.ttl_secs],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn replace_tables(&mut self, tables: &[Table]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for t in tables {
            let name = format!("imnm_cohort_{}", t.name);
            let held: Vec<String> = {
                let mut stmt = tx.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
                let names = stmt.query_map(params![name], |r| r.get(0))?;
                names.collect::<Result<_, _>>()?
            };
            if held == t.columns {
                tx.execute(&format!("DELETE FROM {name}"), [])?;
            } else {
                tx.execute(&format!("DROP TABLE IF EXISTS {name}"), [])?;
                tx.execute(&t.create_sql(&name), [])?;
            }
            let marks = vec!["?"; t.columns.len()].join(", ");
            let mut insert = tx.prepare(&format!("INSERT INTO {name} ({}) VALUES ({marks})", t.column_list()))?;
            for row in &t.rows {
                insert.execute(rusqlite::params_from_iter(row.iter()))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn release_lease(&mut self, site: &str, holder: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM site_lease WHERE site = ?1 AND holder = ?2",
            params![site, holder],
        )?;
        Ok(())
    }

    fn record_run(&mut self, site: &str, run: &RunRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO sync_run (site, seq, started, ended, status, new_count, updated_count, seconds, error)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM sync_run WHERE site = ?1",
            params![
                site,
                run.started,
                run.ended,
                run.status,
                i64::try_from(run.new).unwrap_or(i64::MAX),
                i64::try_from(run.updated).unwrap_or(i64::MAX),
                run.seconds,
                run.error
            ],
        )?;
        tx.execute(
            "DELETE FROM sync_run WHERE site = ?1 AND seq <= (SELECT MAX(seq) FROM sync_run WHERE site = ?1) - ?2",
            params![site, i64::try_from(RUNS_KEPT).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn runs(&self, site: &str, limit: u64) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT started, ended, status, new_count, updated_count, seconds, error FROM sync_run
             WHERE site = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![site, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(RunRecord {
                started: r.get(0)?,
                ended: r.get(1)?,
                status: r.get(2)?,
                new: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                updated: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                seconds: r.get(5)?,
                error: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Hands each row of a query over [`ROW_COLUMNS`] to `f`.
fn each_row(mut rows: rusqlite::Rows<'_>, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
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
