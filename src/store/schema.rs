//! The store's schema, its version (`PRAGMA user_version`) and the in-place
//! upgrade of a store written by an earlier release.
//!
//! # Versions
//! - **1** (no `user_version`): resources keyed by (type, id); sync state,
//!   cohort and server outcomes keyed by base URL. Two servers' resources with
//!   the same (type, id) replaced each other (issue 23).
//! - **2**: everything keyed by site; `sync_state` keeps the base URL as a
//!   column.
//! - **3**: `sync_state.finished_at` (when the last run
//!   ended, Unix seconds: which sites are due) and `site_lease` (which worker
//!   syncs a site, until when). A version 2 store gains both in place.
//! - **4** ([`SCHEMA_VERSION`]): `sync_run`, the service's run history (one row
//!   per finished run of a site, the newest [`RUNS_KEPT`](super::RUNS_KEPT)
//!   kept). A version 2 or 3 store gains it in place.
//!
//! The PostgreSQL backend keeps the same tables at the same version (see
//! [`pg`](super::pg)); a version 3 database gains `sync_run` in place.
//!
//! # Upgrading a version 1 store
//! In one transaction (an interruption leaves the version 1 store as it was):
//! each base URL of the old `sync_state` becomes the site [`site_id_for`]
//! derives from it (with `-2`, `-3`, … when two base URLs derive the same id),
//! keeping its watermark, pages, status and pending bulk status URL; the
//! cohort and server outcomes of a base URL go to its site. A version 1 store
//! does not say which server a resource came from: its resources go to the
//! site of the **most recently synced** base URL (the latest watermark, the
//! server clock of its last successful run; without watermarks, the last row
//! written), and when several base URLs were synced the others keep their
//! sync state but no resources (their next sync fetches them again: run it
//! without `--since`). A store with no sync state puts its resources in site
//! [`LOCAL_SITE`].

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Connection, OptionalExtension};

use super::site::{site_id_for, LOCAL_SITE};
use super::StoreError;

/// The schema version this release writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

/// The tables of [`SCHEMA_VERSION`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resource (
    site TEXT NOT NULL,
    rtype TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id TEXT,
    last_updated TEXT,
    json TEXT NOT NULL,
    PRIMARY KEY (site, rtype, id)
);
CREATE TABLE IF NOT EXISTS sync_state (
    site TEXT PRIMARY KEY,
    base_url TEXT,
    watermark TEXT,
    pages_done INTEGER NOT NULL DEFAULT 0,
    status_url TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS cohort (
    site TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (site, patient_id)
);
CREATE TABLE IF NOT EXISTS server_outcome (
    site TEXT NOT NULL,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (site, seq)
);
CREATE TABLE IF NOT EXISTS site_lease (
    site TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_run (
    site TEXT NOT NULL,
    seq INTEGER NOT NULL,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    status TEXT NOT NULL,
    new_count INTEGER NOT NULL,
    updated_count INTEGER NOT NULL,
    seconds REAL NOT NULL,
    error TEXT,
    PRIMARY KEY (site, seq)
);
";

/// Version 2 → 3: when a site's last run ended, and the sync workers' leases.
const UPGRADE_V2: &str = "
ALTER TABLE sync_state ADD COLUMN finished_at INTEGER;
CREATE TABLE IF NOT EXISTS site_lease (site TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
";

/// Version 3 → 4: the run history.
const UPGRADE_V3: &str = "
CREATE TABLE IF NOT EXISTS sync_run (
    site TEXT NOT NULL, seq INTEGER NOT NULL, started TEXT NOT NULL, ended TEXT NOT NULL, status TEXT NOT NULL,
    new_count INTEGER NOT NULL, updated_count INTEGER NOT NULL, seconds REAL NOT NULL, error TEXT,
    PRIMARY KEY (site, seq)
);
";

/// Brings the database to [`SCHEMA_VERSION`]: creates a new one, upgrades a
/// version 1 or 2 store in one transaction, refuses a newer one.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let has_resource: bool = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'resource'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if version == 3 {
        tx.execute_batch(UPGRADE_V3)?;
    } else if version == 2 {
        tx.execute_batch(UPGRADE_V2)?;
        tx.execute_batch(UPGRADE_V3)?;
    } else if version == 1 || (version == 0 && has_resource) {
        upgrade_from_v1(&tx)?;
    } else if version == 0 {
        tx.execute_batch(SCHEMA)?;
    } else {
        return Err(StoreError::UnknownSchema { found: version });
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// One row of a version 1 `sync_state`.
struct OldState {
    base_url: String,
    watermark: Option<String>,
    pages_done: i64,
    status_url: Option<String>,
    status: String,
}

/// The tables of version 1 (`git show` of the release before 2), created when
/// missing before an upgrade: a store of an even earlier release lacked some.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS resource (
    rtype TEXT NOT NULL, id TEXT NOT NULL, version_id TEXT, last_updated TEXT, json TEXT NOT NULL,
    PRIMARY KEY (rtype, id)
);
CREATE TABLE IF NOT EXISTS sync_state (
    base_url TEXT PRIMARY KEY, watermark TEXT, pages_done INTEGER NOT NULL DEFAULT 0,
    status_url TEXT, status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS cohort (
    base_url TEXT NOT NULL, patient_id TEXT NOT NULL, PRIMARY KEY (base_url, patient_id)
);
CREATE TABLE IF NOT EXISTS server_outcome (
    base_url TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (base_url, seq)
);
";

/// Version 1 → current inside `tx` (see the module docs).
fn upgrade_from_v1(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(SCHEMA_V1)?;
    tx.execute_batch(
        "ALTER TABLE resource RENAME TO resource_v1;
         ALTER TABLE sync_state RENAME TO sync_state_v1;
         ALTER TABLE cohort RENAME TO cohort_v1;
         ALTER TABLE server_outcome RENAME TO server_outcome_v1;",
    )?;
    tx.execute_batch(SCHEMA)?;
    let states: Vec<OldState> = {
        let mut stmt =
            tx.prepare("SELECT base_url, watermark, pages_done, status_url, status FROM sync_state_v1 ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok(OldState {
                base_url: r.get(0)?,
                watermark: r.get(1)?,
                pages_done: r.get(2)?,
                status_url: r.get(3)?,
                status: r.get(4)?,
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    // Each base URL (of the state, then of cohort and outcomes) gets its site.
    let mut site_of: HashMap<String, String> = HashMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut assign = |base: &str| -> String {
        if let Some(site) = site_of.get(base) {
            return site.clone();
        }
        let stem = site_id_for(base);
        let mut site = stem.clone();
        let mut n = 2;
        while taken.contains(&site) {
            let suffix = format!("-{n}");
            let keep = super::site::MAX_SITE_ID_LEN
                .saturating_sub(suffix.len())
                .min(stem.len());
            site = format!("{}{suffix}", stem[..keep].trim_end_matches('-'));
            n += 1;
        }
        taken.insert(site.clone());
        site_of.insert(base.to_string(), site.clone());
        site
    };
    for s in &states {
        let site = assign(&s.base_url);
        tx.execute(
            "INSERT INTO sync_state (site, base_url, watermark, pages_done, status_url, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![site, s.base_url, s.watermark, s.pages_done, s.status_url, s.status],
        )?;
    }
    // The resources' site: the most recently synced base URL's.
    let latest = states
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.watermark.cmp(&b.watermark).then(i.cmp(j)))
        .map(|(_, s)| s.base_url.clone());
    let resource_site = match latest {
        Some(base) => assign(&base),
        None => LOCAL_SITE.to_string(),
    };
    tx.execute(
        "INSERT INTO resource (site, rtype, id, version_id, last_updated, json)
         SELECT ?1, rtype, id, version_id, last_updated, json FROM resource_v1",
        params![resource_site],
    )?;
    let cohort: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT base_url, patient_id FROM cohort_v1")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (base, patient) in cohort {
        tx.execute(
            "INSERT OR IGNORE INTO cohort (site, patient_id) VALUES (?1, ?2)",
            params![assign(&base), patient],
        )?;
    }
    let outcomes: Vec<(String, i64, String)> = {
        let mut stmt = tx.prepare("SELECT base_url, seq, json FROM server_outcome_v1")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (base, seq, json) in outcomes {
        tx.execute(
            "INSERT INTO server_outcome (site, seq, json) VALUES (?1, ?2, ?3)",
            params![assign(&base), seq, json],
        )?;
    }
    tx.execute_batch(
        "DROP TABLE resource_v1; DROP TABLE sync_state_v1; DROP TABLE cohort_v1; DROP TABLE server_outcome_v1;",
    )?;
    Ok(())
}
