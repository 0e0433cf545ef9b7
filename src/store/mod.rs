//! The sync store: a database holding each resource's raw
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
//! Two backends keep the same tables behind one interface ([`Store`]): an
//! embedded SQLite file ([`Store::open`], the default: one machine) and a
//! PostgreSQL database ([`Store::connect`]: one registry database shared by
//! sync workers on several machines, see [`pg`](mod@pg)). [`StoreLocation`]
//! tells them apart from what the user wrote (`registry.db` or
//! `postgres://…`).
//!
//! This module owns the databases and their schema, versioned
//! ([`SCHEMA_VERSION`]); opening upgrades a store of an earlier release in
//! place, in one transaction (see [`schema`](mod@schema) for how its data is
//! given sites), and refuses a store of a later one. It knows
//! nothing of HTTP ([`crate::client`]), of what to fetch ([`crate::sync`]) or of
//! the cohort rules; it must not touch them.
//!
//! Writes are idempotent and transactional per page: [`Store::write_page`]
//! applies a whole page (and the site's page counter) in one transaction, so
//! an interrupted run leaves either the page or nothing. A resource replaces
//! the stored one of its site unless it is provably older (a smaller numeric
//! `versionId`, or else an earlier `lastUpdated`); the same data changes nothing.

mod location;
pub mod pg;
pub mod schema;
pub mod site;
mod sqlite;
pub mod tables;
#[doc(hidden)]
pub mod testing;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

pub use location::{url_scheme, StoreLocation};
pub use schema::SCHEMA_VERSION;
pub use site::{check_site_id, site_id_for, SiteIdError, LOCAL_SITE, MAX_SITE_ID_LEN};
pub use tables::Table;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (opening, schema, a statement).
    #[error("store database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (connecting, schema, a statement). The message names
    /// no password: the driver's errors never hold one.
    #[error("store database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    /// A store URL this release cannot use (its scheme or form), with the URL
    /// shown without password or query.
    #[error("store {url}: {reason}")]
    BadUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A table to publish is not one ([`Table`]).
    #[error("table {table}: {reason}")]
    BadTable {
        /// Its name.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// The PostgreSQL connection's thread ended (the connection broke).
    #[error("store database (PostgreSQL): the connection ended")]
    Disconnected,
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
    /// When the last run ended (done or failed), Unix seconds.
    pub finished_at: Option<i64>,
}

/// One finished sync run of a site, as the service records it: times,
/// outcome and counts, and a failure's text (no identifiers, no URL queries).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct RunRecord {
    /// When it started (an instant, `YYYY-MM-DDThh:mm:ssZ`).
    pub started: String,
    /// When it ended.
    pub ended: String,
    /// `ok` or `failed`.
    pub status: String,
    /// Resources new in the store.
    pub new: u64,
    /// Resources updated.
    pub updated: u64,
    /// How long it took.
    pub seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs kept per site in the run history: recording one more drops the oldest.
pub const RUNS_KEPT: u64 = 200;

/// One resource of a page to write, its keys read once (both backends take these).
pub(crate) struct Incoming<'a> {
    rtype: &'a str,
    id: &'a str,
    version_id: Option<&'a str>,
    last_updated: Option<&'a str>,
    json: String,
}

impl<'a> Incoming<'a> {
    fn of(index: usize, r: &'a Value) -> Result<Self, StoreError> {
        let text = |p: &str| r.pointer(p).and_then(Value::as_str);
        let (Some(rtype), Some(id)) = (text("/resourceType"), text("/id")) else {
            return Err(StoreError::NotAResource { index });
        };
        Ok(Incoming {
            rtype,
            id,
            version_id: text("/meta/versionId"),
            last_updated: text("/meta/lastUpdated"),
            json: r.to_string(),
        })
    }
}

/// A sync worker's claim on a site: `holder` syncs it until `now + ttl_secs`
/// unless it renews (see [`Store::take_lease`]).
pub(crate) struct Lease<'a> {
    site: &'a str,
    holder: &'a str,
    now: i64,
    ttl_secs: i64,
}

/// What a backend does; [`Store`] checks the arguments and hands them on.
trait Backend: Send {
    fn write_page(&mut self, site: &str, page: &[Incoming<'_>]) -> Result<WriteStats, StoreError>;
    fn delete(&mut self, site: &str, keys: &[(String, String)]) -> Result<u64, StoreError>;
    fn get(&self, site: &str, rtype: &str, id: &str) -> Result<Option<String>, StoreError>;
    fn sites(&self) -> Result<Vec<String>, StoreError>;
    fn for_each(&self, site: Option<&str>, f: &mut dyn FnMut(Row)) -> Result<(), StoreError>;
    fn for_each_of(&self, site: &str, rtype: &str, f: &mut dyn FnMut(Row)) -> Result<(), StoreError>;
    /// The JSON of every row of `site`, in [`Backend::for_each`]'s order,
    /// borrowed where the backend can (no row of owned strings per resource).
    fn for_each_json(&self, site: &str, f: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        self.for_each(Some(site), &mut |row| f(&row.json))
    }
    fn counts(&self, site: Option<&str>) -> Result<BTreeMap<String, u64>, StoreError>;
    fn sync_state(&self, site: &str) -> Result<Option<SyncState>, StoreError>;
    fn begin_run(&mut self, site: &str, base_url: &str) -> Result<(), StoreError>;
    fn finish_run(&mut self, site: &str, watermark: Option<&str>, ok: bool, now: i64) -> Result<(), StoreError>;
    fn set_status_url(&mut self, site: &str, status_url: Option<&str>) -> Result<(), StoreError>;
    fn add_cohort(&mut self, site: &str, ids: &[&str]) -> Result<(), StoreError>;
    fn cohort(&self, site: &str) -> Result<Vec<String>, StoreError>;
    fn replace_outcomes(&mut self, site: &str, outcomes: &[String]) -> Result<(), StoreError>;
    fn outcomes(&self, site: &str) -> Result<Vec<String>, StoreError>;
    fn take_lease(&mut self, lease: &Lease<'_>) -> Result<bool, StoreError>;
    fn release_lease(&mut self, site: &str, holder: &str) -> Result<(), StoreError>;
    fn replace_tables(&mut self, tables: &[Table]) -> Result<(), StoreError>;
    fn record_run(&mut self, site: &str, run: &RunRecord) -> Result<(), StoreError>;
    fn runs(&self, site: &str, limit: u64) -> Result<Vec<RunRecord>, StoreError>;
}

/// The store. Open one with [`Store::open`] (a SQLite file), [`Store::connect`]
/// (PostgreSQL), [`StoreLocation::open`] (either) or [`Store::in_memory`].
pub struct Store {
    backend: Box<dyn Backend>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file at `path`. A store of an
    /// earlier release is upgraded in place, in one transaction; one of a later
    /// release is refused ([`StoreError::NewerSchema`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Store {
            backend: Box::new(sqlite::Sqlite::open(path)?),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`;
    /// what the URL leaves out comes from `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`), creating or upgrading the schema (see [`pg`](mod@pg)).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Store {
            backend: Box::new(pg::Pg::connect(url)?),
        })
    }

    /// A SQLite store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Store {
            backend: Box::new(sqlite::Sqlite::in_memory()?),
        })
    }

    /// Writes one page of `site`'s resources and counts the page for the site, in
    /// one transaction. A page with a resource lacking `resourceType` or `id`
    /// writes nothing.
    pub fn write_page(&mut self, site: &str, resources: &[Value]) -> Result<WriteStats, StoreError> {
        check_site_id(site)?;
        let page = resources
            .iter()
            .enumerate()
            .map(|(i, r)| Incoming::of(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        self.backend.write_page(site, &page)
    }

    /// Removes resources of `site` (type, id) in one transaction (a server's
    /// deletions); returns how many were held.
    pub fn delete(&mut self, site: &str, keys: &[(String, String)]) -> Result<u64, StoreError> {
        check_site_id(site)?;
        self.backend.delete(site, keys)
    }

    /// The JSON of one resource of `site`.
    pub fn get(&self, site: &str, rtype: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.backend.get(site, rtype, id)
    }

    /// Whether `site` holds a resource.
    pub fn contains(&self, site: &str, rtype: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.get(site, rtype, id)?.is_some())
    }

    /// Every site with resources or sync state, sorted.
    pub fn sites(&self) -> Result<Vec<String>, StoreError> {
        self.backend.sites()
    }

    /// Every row, ordered by site, type, id.
    pub fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        self.for_each(|row| out.push(row))?;
        Ok(out)
    }

    /// Calls `f` with every row of every site, ordered by site, type, id, one at a time.
    pub fn for_each(&self, mut f: impl FnMut(Row)) -> Result<(), StoreError> {
        self.backend.for_each(None, &mut f)
    }

    /// Calls `f` with every row of `site`, ordered by type, id, one at a time.
    pub fn for_each_in(&self, site: &str, mut f: impl FnMut(Row)) -> Result<(), StoreError> {
        self.backend.for_each(Some(site), &mut f)
    }

    /// Calls `f` with the JSON of every row of `site`, in [`Store::for_each_in`]'s
    /// order (by type, id): what reading a store for a cohort needs, without
    /// the row's other columns.
    pub fn for_each_json_in(&self, site: &str, mut f: impl FnMut(&str)) -> Result<(), StoreError> {
        self.backend.for_each_json(site, &mut f)
    }

    /// Adds a finished run to `site`'s run history (keeping the newest [`RUNS_KEPT`]).
    pub fn record_run(&mut self, site: &str, run: &RunRecord) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.backend.record_run(site, run)
    }

    /// `site`'s recorded runs, newest first, at most `limit`.
    pub fn runs(&self, site: &str, limit: u64) -> Result<Vec<RunRecord>, StoreError> {
        self.backend.runs(site, limit)
    }

    /// Calls `f` with every row of `site` of type `rtype`, ordered by id, one
    /// at a time (read through the key: the other types are not read).
    pub fn for_each_of(&self, site: &str, rtype: &str, mut f: impl FnMut(Row)) -> Result<(), StoreError> {
        self.backend.for_each_of(site, rtype, &mut f)
    }

    /// Resources held per type, over all sites.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.backend.counts(None)
    }

    /// Resources `site` holds per type.
    pub fn counts_in(&self, site: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        self.backend.counts(Some(site))
    }

    /// The sync state of `site`, if it was ever synced.
    pub fn sync_state(&self, site: &str) -> Result<Option<SyncState>, StoreError> {
        self.backend.sync_state(site)
    }

    /// Records the start of a run for `site` against `base_url` (status `running`).
    /// The site keeps its resources and watermark when its base URL changes.
    pub fn begin_run(&mut self, site: &str, base_url: &str) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.backend.begin_run(site, base_url)
    }

    /// Records the end of a run of `site`: `done` with its watermark, or `failed`
    /// (watermark kept), and when it ended.
    pub fn finish_run(&mut self, site: &str, watermark: Option<&str>, ok: bool) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.backend.finish_run(site, watermark, ok, unix_now())
    }
}

impl Store {
    /// Saves (or, with `None`, clears) the Bulk Data status URL being polled for `site`.
    pub fn set_status_url(&mut self, site: &str, status_url: Option<&str>) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.backend.set_status_url(site, status_url)
    }

    /// Remembers Patient ids as the cohort of `site` (incremental syncs re-check them).
    pub fn add_cohort<'a>(&mut self, site: &str, ids: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
        check_site_id(site)?;
        let ids: Vec<&str> = ids.into_iter().collect();
        self.backend.add_cohort(site, &ids)
    }

    /// The Patient ids remembered as the cohort of `site`.
    pub fn cohort(&self, site: &str) -> Result<Vec<String>, StoreError> {
        self.backend.cohort(site)
    }

    /// Replaces the OperationOutcomes `site`'s server reported (bulk `error` files).
    pub fn replace_outcomes(&mut self, site: &str, outcomes: &[Value]) -> Result<(), StoreError> {
        check_site_id(site)?;
        let texts: Vec<String> = outcomes.iter().map(Value::to_string).collect();
        self.backend.replace_outcomes(site, &texts)
    }

    /// The OperationOutcomes `site`'s server reported, as JSON text.
    pub fn outcomes(&self, site: &str) -> Result<Vec<String>, StoreError> {
        self.backend.outcomes(site)
    }

    /// Takes (or renews) the lease on `site` for `holder` for `ttl` from now:
    /// true when taken — the site had no lease, its lease had expired, or it
    /// was `holder`'s. Two workers never hold one site at once; a worker killed
    /// mid-run leaves a lease that expires and is then taken over.
    pub fn take_lease(&mut self, site: &str, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        check_site_id(site)?;
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX / 4);
        self.backend.take_lease(&Lease {
            site,
            holder,
            now: unix_now(),
            ttl_secs,
        })
    }

    /// Replaces the published tables named in `tables` (see [`tables`](mod@tables)),
    /// all in one transaction: a reader sees the previous set or the new one.
    /// A table keeps its grants when its columns are unchanged.
    pub fn replace_tables(&mut self, tables: &[Table]) -> Result<(), StoreError> {
        tables.iter().try_for_each(Table::check)?;
        self.backend.replace_tables(tables)
    }

    /// Gives up `holder`'s lease on `site` (nothing when it holds none).
    pub fn release_lease(&mut self, site: &str, holder: &str) -> Result<(), StoreError> {
        check_site_id(site)?;
        self.backend.release_lease(site, holder)
    }
}

/// The clock of sync state and leases (what [`SyncState::finished_at`] is
/// written by): Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4))
        .unwrap_or(0)
}

/// What writing `incoming` over the `held` (versionId, lastUpdated, JSON) does:
/// new, the same data or provably older (unchanged), else an update.
fn decide(held: Option<(Option<String>, Option<String>, String)>, incoming: &Incoming<'_>) -> WriteStats {
    let one = |i, u, n| WriteStats {
        inserted: i,
        updated: u,
        unchanged: n,
    };
    match held {
        None => one(1, 0, 0),
        Some((_, _, held_json)) if held_json == incoming.json => one(0, 0, 1),
        Some((held_v, held_lu, _))
            if is_older(
                (incoming.version_id, incoming.last_updated),
                (held_v.as_deref(), held_lu.as_deref()),
            ) =>
        {
            one(0, 0, 1)
        }
        Some(_) => one(0, 1, 0),
    }
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
    use rusqlite::Connection;
    use serde_json::json;

    /// Opens a test store (again).
    type Opener = Box<dyn Fn() -> Store>;

    /// Each backend's store, opened afresh by calling the closure (a second call reopens it).
    fn stores() -> Vec<(&'static str, Opener)> {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("s.db");
        let mut out: Vec<(&'static str, Opener)> = vec![("sqlite", Box::new(move || Store::open(&path).unwrap()))];
        if let Some(url) = testing::fresh_database().unwrap() {
            out.push(("postgres", Box::new(move || Store::connect(&url).unwrap())));
        }
        out
    }

    fn obs(id: &str, version: &str, updated: &str, value: i64) -> Value {
        json!({"resourceType": "Observation", "id": id,
               "meta": {"versionId": version, "lastUpdated": updated}, "valueInteger": value})
    }

    #[test]
    fn a_key_twice_in_one_page_counts_as_one_by_one() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            let page = [
                obs("a", "1", "2024-01-01T00:00:00Z", 1),
                obs("a", "2", "2024-01-02T00:00:00Z", 2),
                obs("a", "1", "2024-01-01T00:00:00Z", 1),
                obs("b", "1", "2024-01-01T00:00:00Z", 3),
            ];
            let stats = s.write_page("x", &page).unwrap();
            assert_eq!((stats.inserted, stats.updated, stats.unchanged), (2, 1, 1));
            assert_eq!(s.rows().unwrap()[0].version_id.as_deref(), Some("2"));
            assert_eq!(s.rows().unwrap().len(), 2);
        }
    }

    #[test]
    fn same_data_twice_changes_nothing() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
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
    }

    #[test]
    fn newer_version_wins_and_older_is_ignored() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
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
    }

    #[test]
    fn a_bad_resource_rolls_back_the_whole_page() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            let page = [obs("a", "1", "2024-01-01T00:00:00Z", 1), json!({"id": "x"})];
            assert!(matches!(
                s.write_page("b", &page),
                Err(StoreError::NotAResource { index: 1 })
            ));
            assert!(s.rows().unwrap().is_empty());
            assert!(s.sync_state("b").unwrap().is_none());
        }
    }

    #[test]
    fn sync_state_keeps_the_last_good_watermark() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            s.begin_run("b", "http://b/fhir").unwrap();
            s.finish_run("b", Some("2024-01-01T00:00:00Z"), true).unwrap();
            s.begin_run("b", "http://b/fhir").unwrap();
            s.finish_run("b", Some("2024-02-01T00:00:00Z"), false).unwrap();
            drop(s);
            let s = open();
            let st = s.sync_state("b").unwrap().unwrap();
            assert_eq!(st.watermark.as_deref(), Some("2024-01-01T00:00:00Z"));
            assert_eq!(st.status, "failed");
            assert_eq!(st.base_url.as_deref(), Some("http://b/fhir"));
            assert_eq!(s.counts().unwrap().len(), 0);
        }
    }

    #[test]
    fn status_url_cohort_and_outcomes_survive_reopening() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            s.set_status_url("b", Some("http://b/_bulk/status/1")).unwrap();
            s.add_cohort("b", ["p2", "p1", "p1"]).unwrap();
            s.replace_outcomes("b", &[json!({"resourceType": "OperationOutcome"})])
                .unwrap();
            drop(s);
            let mut s = open();
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

    fn run(n: u64, ok: bool) -> RunRecord {
        RunRecord {
            started: format!("2026-12-06T10:{:02}:00Z", n % 60),
            ended: format!("2026-12-06T10:{:02}:30Z", n % 60),
            status: if ok { "ok" } else { "failed" }.into(),
            new: n,
            updated: n * 2,
            seconds: 1.5,
            error: (!ok).then(|| format!("failure {n}")),
        }
    }

    #[test]
    fn the_run_history_keeps_each_sites_newest_runs() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            assert!(s.runs("a", 10).unwrap().is_empty());
            for n in 1..=RUNS_KEPT + 3 {
                s.record_run("a", &run(n, n % 3 != 0)).unwrap();
            }
            s.record_run("b", &run(7, false)).unwrap();
            let a = s.runs("a", RUNS_KEPT + 10).unwrap();
            assert_eq!(a.len() as u64, RUNS_KEPT);
            assert_eq!(a[0], run(RUNS_KEPT + 3, (RUNS_KEPT + 3) % 3 != 0));
            assert_eq!(a.last().unwrap().new, 4, "the oldest three dropped");
            assert_eq!(s.runs("a", 2).unwrap().len(), 2);
            assert_eq!(s.runs("b", 10).unwrap(), [run(7, false)]);
            assert!(s.record_run("no such site!", &run(1, true)).is_err());
        }
    }

    #[test]
    fn a_version_3_store_gains_the_run_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let mut s = Store::open(&path).unwrap();
            s.write_page("a", &[obs("x", "1", "2024-01-01T00:00:00Z", 1)]).unwrap();
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE sync_run; PRAGMA user_version = 3;")
            .unwrap();
        drop(conn);
        let mut s = Store::open(&path).unwrap();
        s.record_run("a", &run(1, true)).unwrap();
        assert_eq!(s.runs("a", 5).unwrap(), [run(1, true)]);
        assert!(s.contains("a", "Observation", "x").unwrap());
        let Some(url) = testing::fresh_database().unwrap() else {
            return;
        };
        drop(Store::connect(&url).unwrap());
        let sql = "DROP TABLE sync_run; DELETE FROM imnm_schema; INSERT INTO imnm_schema (version) VALUES (3);";
        let u = url.clone();
        std::thread::spawn(move || {
            postgres::Client::connect(&u, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap()
        })
        .join()
        .unwrap();
        let mut pg = Store::connect(&url).unwrap();
        pg.record_run("a", &run(2, false)).unwrap();
        assert_eq!(pg.runs("a", 5).unwrap(), [run(2, false)]);
    }

    #[test]
    fn sites_never_replace_each_other() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
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
            // The JSON alone comes in the rows' order, with their texts.
            let (mut json_in_b, mut rows_in_b) = (Vec::new(), Vec::new());
            s.for_each_json_in("b", |j| json_in_b.push(j.to_string())).unwrap();
            s.for_each_in("b", |r| rows_in_b.push(r.json)).unwrap();
            assert_eq!((json_in_b.len(), &json_in_b), (2, &rows_in_b));
            let mut patients = Vec::new();
            s.for_each_of("b", "Patient", |r| patients.push((r.site, r.id)))
                .unwrap();
            assert_eq!(patients, [("b".to_string(), "p".to_string())]);
            s.for_each_of("a", "Patient", |_| panic!("site a holds no Patient"))
                .unwrap();
            assert_eq!(s.counts().unwrap()["Observation"], 2);
            assert_eq!(s.counts_in("a").unwrap().len(), 1);
            assert!(s.counts_in("c").unwrap().is_empty());
            assert!(matches!(
                s.write_page("B", &[]),
                Err(StoreError::SiteId(SiteIdError::Characters))
            ));
        }
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
            matches!(err, StoreError::NewerSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("newer than this release's {SCHEMA_VERSION}")),
            "{err}"
        );
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

    #[test]
    fn leases_keep_two_workers_off_one_site_until_they_expire() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut a = open();
            let mut b = open();
            let ttl = std::time::Duration::from_secs(60);
            assert!(a.take_lease("x", "worker-a", ttl).unwrap());
            assert!(!b.take_lease("x", "worker-b", ttl).unwrap(), "held by a");
            assert!(b.take_lease("y", "worker-b", ttl).unwrap(), "another site is free");
            assert!(a.take_lease("x", "worker-a", ttl).unwrap(), "a renews its own");
            a.release_lease("x", "worker-b").unwrap();
            assert!(!b.take_lease("x", "worker-b", ttl).unwrap(), "only the holder releases");
            a.release_lease("x", "worker-a").unwrap();
            assert!(b.take_lease("x", "worker-b", ttl).unwrap());
            // An expired lease (a killed worker's) is taken over.
            let expired = Lease {
                site: "z",
                holder: "killed",
                now: unix_now() - 120,
                ttl_secs: 60,
            };
            assert!(a.backend.take_lease(&expired).unwrap());
            assert!(b.take_lease("z", "worker-b", ttl).unwrap());
        }
    }

    #[test]
    fn deletes_remove_one_sites_resources_and_runs_record_their_end() {
        for (name, open) in stores() {
            eprintln!("backend {name}");
            let mut s = open();
            s.write_page(
                "a",
                &[
                    obs("x", "1", "2024-01-01T00:00:00Z", 1),
                    obs("y", "1", "2024-01-01T00:00:00Z", 1),
                ],
            )
            .unwrap();
            s.write_page("b", &[obs("x", "1", "2024-01-01T00:00:00Z", 2)]).unwrap();
            let keys = [("Observation", "x"), ("Observation", "gone")].map(|(t, i)| (t.to_string(), i.to_string()));
            assert_eq!(s.delete("a", &keys).unwrap(), 1);
            assert!(!s.contains("a", "Observation", "x").unwrap());
            assert!(s.contains("a", "Observation", "y").unwrap());
            assert!(s.contains("b", "Observation", "x").unwrap());
            let before = unix_now();
            s.begin_run("a", "http://a/").unwrap();
            assert_eq!(s.sync_state("a").unwrap().unwrap().finished_at, None);
            s.finish_run("a", None, true).unwrap();
            let ended = s.sync_state("a").unwrap().unwrap().finished_at.unwrap();
            assert!(ended >= before && ended <= unix_now(), "{ended}");
        }
    }

    #[test]
    fn a_v2_store_gains_run_ends_and_leases_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE resource (site TEXT NOT NULL, rtype TEXT NOT NULL, id TEXT NOT NULL, version_id TEXT,
                last_updated TEXT, json TEXT NOT NULL, PRIMARY KEY (site, rtype, id));
             CREATE TABLE sync_state (site TEXT PRIMARY KEY, base_url TEXT, watermark TEXT,
                pages_done INTEGER NOT NULL DEFAULT 0, status_url TEXT, status TEXT NOT NULL DEFAULT 'running');
             CREATE TABLE cohort (site TEXT NOT NULL, patient_id TEXT NOT NULL, PRIMARY KEY (site, patient_id));
             CREATE TABLE server_outcome (site TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL,
                PRIMARY KEY (site, seq));
             INSERT INTO resource VALUES ('a', 'Patient', 'p1', '1', NULL, '{}');
             INSERT INTO sync_state VALUES ('a', 'http://a/', '2024-05-01T00:00:00Z', 3, NULL, 'done');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(conn);
        let mut s = Store::open(&path).unwrap();
        let st = s.sync_state("a").unwrap().unwrap();
        assert_eq!((st.pages_done, st.finished_at), (3, None));
        assert_eq!(s.get("a", "Patient", "p1").unwrap().as_deref(), Some("{}"));
        assert!(s.take_lease("a", "w", std::time::Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn a_newer_postgres_schema_is_refused() {
        let Some(url) = testing::fresh_database().unwrap() else {
            return;
        };
        drop(Store::connect(&url).unwrap());
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.execute("UPDATE imnm_schema SET version = version + 1", &[]).unwrap();
        let err = Store::connect(&url).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }
}
