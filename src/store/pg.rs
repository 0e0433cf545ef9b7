//! The shared backend: a PostgreSQL database holding the same tables as the
//! SQLite file, for a registry whose sync workers run on several machines.
//!
//! # Connection
//! `postgres://user[:password]@host[:port]/dbname`; what the URL leaves out
//! comes from the standard `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and
//! `PGDATABASE` variables (then `localhost`, 5432, the login name, no password,
//! the user name). Plain TCP or a Unix socket (a `host=/run/postgresql` query
//! parameter, or `PGHOST` set to a folder). TLS is rustls: `sslmode=prefer`
//! (the default) uses it when the server offers it, `sslmode=require` insists,
//! `disable` never. As libpq does, the server's certificate is checked only
//! when a root is named: `PGSSLROOTCERT=/path/ca.pem` (a registry's own CA) or
//! `PGSSLROOTCERT=system` (the system's roots); without it the connection is
//! encrypted but the server unverified (libpq's `require`). The password is
//! never shown: errors name the URL through `redact`.
//!
//! # Schema
//! The tables of [`super::schema`] at [`SCHEMA_VERSION`], with the version in
//! `imnm_schema`. Every process creates or upgrades them at start under a
//! transaction-scoped advisory lock, so several workers starting at once do it
//! once; a database of a later version is refused.
//!
//! # Threads
//! The driver is blocking on a runtime of its own, which must not run inside
//! the sync's tokio runtime: one thread per connection owns the client and runs
//! the store's calls in order, handing rows back over a bounded channel.
//!
//! Owns the PostgreSQL SQL only; what a write counts (`store::decide`) is the
//! store's.

use std::collections::BTreeMap;
use std::sync::mpsc;

use postgres::types::ToSql;
use postgres::{Client, Config};

use super::location::redact;
use super::{
    decide, Backend, Incoming, Lease, Row, RunRecord, StoreError, SyncState, Table, WriteStats, RUNS_KEPT,
    SCHEMA_VERSION,
};

/// A job for the connection's thread.
type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// A connection to a PostgreSQL store, owned by its own thread.
pub(super) struct Pg {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The tables, as [`super::schema`]'s with PostgreSQL's integer widths. Keys
/// collate as bytes (`"C"`), as SQLite's do, so both backends read rows in
/// one order (and the outputs are the same bytes) whatever the database's locale.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resource (
    site TEXT COLLATE \"C\" NOT NULL, rtype TEXT COLLATE \"C\" NOT NULL, id TEXT COLLATE \"C\" NOT NULL,
    version_id TEXT, last_updated TEXT, json TEXT NOT NULL,
    PRIMARY KEY (site, rtype, id)
);
CREATE TABLE IF NOT EXISTS sync_state (
    site TEXT COLLATE \"C\" PRIMARY KEY, base_url TEXT, watermark TEXT,
    pages_done BIGINT NOT NULL DEFAULT 0, status_url TEXT,
    status TEXT NOT NULL DEFAULT 'running', finished_at BIGINT
);
CREATE TABLE IF NOT EXISTS cohort (
    site TEXT COLLATE \"C\" NOT NULL, patient_id TEXT COLLATE \"C\" NOT NULL, PRIMARY KEY (site, patient_id)
);
CREATE TABLE IF NOT EXISTS server_outcome (
    site TEXT NOT NULL, seq BIGINT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (site, seq)
);
CREATE TABLE IF NOT EXISTS site_lease (
    site TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_run (
    site TEXT COLLATE \"C\" NOT NULL, seq BIGINT NOT NULL, started TEXT NOT NULL, ended TEXT NOT NULL,
    status TEXT NOT NULL, new_count BIGINT NOT NULL, updated_count BIGINT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL, error TEXT, PRIMARY KEY (site, seq)
);
";

/// The advisory lock key under which the schema is created (any fixed number).
const SCHEMA_LOCK: i64 = 0x1_3a6d_2026;

impl Pg {
    /// Connects and brings the database to [`SCHEMA_VERSION`].
    pub(super) fn connect(url: &str) -> Result<Self, StoreError> {
        let config = config_for(url)?;
        let tls = tls().map_err(|reason| StoreError::BadUrl {
            url: redact(url),
            reason,
        })?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), postgres::Error>>(1);
        let thread = std::thread::Builder::new()
            .name("imnm-store-pg".into())
            .spawn(move || match config.connect(tls) {
                Ok(mut client) => {
                    let _ = ready_tx.send(Ok(()));
                    for job in inbox {
                        job(&mut client);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::BadUrl {
                url: redact(url),
                reason: format!("cannot start the connection's thread: {e}"),
            })?;
        let pg = Pg {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        ready.recv().map_err(|_| StoreError::Disconnected)??;
        pg.call(migrate)?;
        Ok(pg)
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    /// Streams the rows of `scope` (every site; one site; one site's type) to `f`.
    fn rows_of(&self, scope: Option<(String, Option<String>)>, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
        self.streamed(move |c, out| stream(c, scope, out), f)
    }

    /// Calls `f` with each item `produce` sends from the connection's thread, as they come.
    fn streamed<T: Send + 'static>(
        &self,
        produce: impl FnOnce(&mut Client, &mpsc::SyncSender<T>) -> Result<(), StoreError> + Send + 'static,
        f: &mut dyn FnMut(T),
    ) -> Result<(), StoreError> {
        let (rows_tx, rows) = mpsc::sync_channel::<T>(1024);
        let (done_tx, done) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| {
            let _ = done_tx.send(produce(c, &rows_tx));
        });
        self.jobs
            .as_ref()
            .ok_or(StoreError::Disconnected)?
            .send(job)
            .map_err(|_| StoreError::Disconnected)?;
        for row in rows {
            f(row);
        }
        done.recv().map_err(|_| StoreError::Disconnected)?
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.jobs
            .as_ref()
            .ok_or(StoreError::Disconnected)?
            .send(job)
            .map_err(|_| StoreError::Disconnected)?;
        rx.recv().map_err(|_| StoreError::Disconnected)?
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Closing the queue ends the thread after its last job.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The driver's config for `url`, completed from the `PG*` environment.
fn config_for(url: &str) -> Result<Config, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    let mut config: Config = url
        .parse()
        .map_err(|e: postgres::Error| bad(format!("not a PostgreSQL URL ({e})")))?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        config.host(&env("PGHOST").unwrap_or_else(|| "localhost".into()));
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env("PGPORT") {
            let port = p.parse().map_err(|_| bad("PGPORT is not a port number".into()))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Some(pw) = env("PGPASSWORD") {
            config.password(pw);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(&db);
        }
    }
    config.application_name("imnm");
    config.connect_timeout(std::time::Duration::from_secs(30));
    Ok(config)
}

/// The TLS connector (see the module docs): verifying against `PGSSLROOTCERT`
/// (a PEM file, or `system`), else encrypting without verifying, as libpq.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match std::env::var_os("PGSSLROOTCERT").filter(|v| !v.is_empty()) {
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        Some(name) => {
            let mut roots = rustls::RootCertStore::empty();
            if name == "system" {
                // Unreadable system certificates leave fewer roots: the server then fails to verify, clearly.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            } else {
                let pem = std::fs::read(&name).map_err(|e| format!("PGSSLROOTCERT: {e}"))?;
                for cert in pem_certs(&pem)? {
                    roots.add(cert).map_err(|e| format!("PGSSLROOTCERT: {e}"))?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `sslmode=require` without a root: any certificate, signatures still checked.
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificates of a PEM file.
fn pem_certs(text: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("PGSSLROOTCERT: {e}"))?;
    if certs.is_empty() {
        return Err("PGSSLROOTCERT: no certificate in the file".into());
    }
    Ok(certs)
}

/// Creates or checks the schema, once among processes starting together.
fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS imnm_schema (version BIGINT NOT NULL)")?;
    let found: Option<i64> = tx
        .query_opt("SELECT max(version) FROM imnm_schema", &[])?
        .and_then(|r| r.get(0));
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        Some(v) if v == SCHEMA_VERSION => {}
        // Version 3 lacked only the run history (`sync_run`), which SCHEMA creates.
        Some(3) => {
            tx.batch_execute(SCHEMA)?;
            tx.execute("INSERT INTO imnm_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])?;
        }
        Some(v) => return Err(StoreError::UnknownSchema { found: v }),
        None => {
            tx.batch_execute(SCHEMA)?;
            tx.execute("INSERT INTO imnm_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// An owned resource of a page, sent to the connection's thread.
struct Owned {
    rtype: String,
    id: String,
    version_id: Option<String>,
    last_updated: Option<String>,
    json: String,
}

/// What a key holds: (versionId, lastUpdated, JSON).
type Held = (Option<String>, Option<String>, String);

/// Writes a page inside one transaction in three round trips: the held rows of
/// the page's keys are read and locked at once, each resource is compared in
/// page order ([`decide`], a key written twice in a page against its first
/// write, as one by one), and the keys that change are upserted together.
fn write(c: &mut Client, site: &str, page: Vec<Owned>) -> Result<WriteStats, StoreError> {
    use std::collections::HashMap;
    let mut tx = c.transaction()?;
    let (rtypes, ids): (Vec<&str>, Vec<&str>) = page.iter().map(|r| (r.rtype.as_str(), r.id.as_str())).unzip();
    let mut current: HashMap<(String, String), Held> = HashMap::new();
    for row in tx.query(
        "SELECT rtype, id, version_id, last_updated, json FROM resource
         WHERE site = $1 AND (rtype, id) IN (SELECT * FROM unnest($2::text[], $3::text[])) FOR UPDATE",
        &[&site, &rtypes, &ids],
    )? {
        current.insert((row.get(0), row.get(1)), (row.get(2), row.get(3), row.get(4)));
    }
    let mut stats = WriteStats::default();
    // Keys to write, in first-change order (each once).
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut marked: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for r in &page {
        let key = (r.rtype.clone(), r.id.clone());
        let incoming = Incoming {
            rtype: &r.rtype,
            id: &r.id,
            version_id: r.version_id.as_deref(),
            last_updated: r.last_updated.as_deref(),
            json: r.json.clone(),
        };
        let one = decide(current.get(&key).cloned(), &incoming);
        if one.unchanged == 0 {
            if marked.insert(key.clone()) {
                changed.push(key.clone());
            }
            current.insert(key, (r.version_id.clone(), r.last_updated.clone(), r.json.clone()));
        }
        stats.add(one);
    }
    let mut cols: [Vec<Option<String>>; 5] = Default::default();
    for key in &changed {
        if let Some((v, lu, json)) = current.get(key) {
            let cells = [
                Some(key.0.clone()),
                Some(key.1.clone()),
                v.clone(),
                lu.clone(),
                Some(json.clone()),
            ];
            for (col, cell) in cols.iter_mut().zip(cells) {
                col.push(cell);
            }
        }
    }
    let [t, i, v, lu, json] = &cols;
    tx.execute(
        "INSERT INTO resource (site, rtype, id, version_id, last_updated, json)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         ON CONFLICT (site, rtype, id) DO UPDATE SET version_id = EXCLUDED.version_id,
            last_updated = EXCLUDED.last_updated, json = EXCLUDED.json",
        &[&site, t, i, v, lu, json],
    )?;
    tx.execute(
        "INSERT INTO sync_state (site, pages_done) VALUES ($1, 1)
         ON CONFLICT (site) DO UPDATE SET pages_done = sync_state.pages_done + 1",
        &[&site],
    )?;
    tx.commit()?;
    Ok(stats)
}

/// Runs `sql` (no rows wanted) with owned text parameters.
fn exec(pg: &Pg, sql: &'static str, params: Vec<Option<String>>) -> Result<u64, StoreError> {
    pg.call(move |c| {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(c.execute(sql, &refs)?)
    })
}

/// The first column of every row of `sql` as text.
fn texts(pg: &Pg, sql: &'static str, params: Vec<String>) -> Result<Vec<String>, StoreError> {
    pg.call(move |c| {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(c.query(sql, &refs)?.iter().map(|r| r.get(0)).collect())
    })
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

impl Backend for Pg {
    fn write_page(&mut self, site: &str, page: &[Incoming<'_>]) -> Result<WriteStats, StoreError> {
        let owned: Vec<Owned> = page
            .iter()
            .map(|r| Owned {
                rtype: r.rtype.to_string(),
                id: r.id.to_string(),
                version_id: r.version_id.map(str::to_string),
                last_updated: r.last_updated.map(str::to_string),
                json: r.json.clone(),
            })
            .collect();
        let site = site.to_string();
        self.call(move |c| write(c, &site, owned))
    }

    fn delete(&mut self, site: &str, keys: &[(String, String)]) -> Result<u64, StoreError> {
        let (site, keys) = (site.to_string(), keys.to_vec());
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare("DELETE FROM resource WHERE site = $1 AND rtype = $2 AND id = $3")?;
            let mut n = 0;
            for (rtype, id) in &keys {
                n += tx.execute(&stmt, &[&site, rtype, id])?;
            }
            tx.commit()?;
            Ok(n)
        })
    }

    fn get(&self, site: &str, rtype: &str, id: &str) -> Result<Option<String>, StoreError> {
        let params = vec![site.to_string(), rtype.to_string(), id.to_string()];
        Ok(texts(
            self,
            "SELECT json FROM resource WHERE site = $1 AND rtype = $2 AND id = $3",
            params,
        )?
        .pop())
    }

    fn sites(&self) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT site FROM resource UNION SELECT site FROM sync_state ORDER BY 1",
            vec![],
        )
    }

    fn for_each(&self, site: Option<&str>, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
        self.rows_of(site.map(|s| (s.to_string(), None)), f)
    }

    fn for_each_of(&self, site: &str, rtype: &str, f: &mut dyn FnMut(Row)) -> Result<(), StoreError> {
        self.rows_of(Some((site.to_string(), Some(rtype.to_string()))), f)
    }

    fn for_each_json(&self, site: &str, f: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let site = site.to_string();
        self.streamed(move |c, out| stream_json(c, &site, out), &mut |json: String| f(&json))
    }

    fn counts(&self, site: Option<&str>) -> Result<BTreeMap<String, u64>, StoreError> {
        let site = site.map(str::to_string);
        self.call(move |c| {
            let rows = c.query(
                "SELECT rtype, COUNT(*) FROM resource WHERE $1::text IS NULL OR site = $1 GROUP BY rtype ORDER BY rtype",
                &[&site],
            )?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, String>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
                .collect())
        })
    }

    fn sync_state(&self, site: &str) -> Result<Option<SyncState>, StoreError> {
        let site = site.to_string();
        self.call(move |c| {
            let row = c.query_opt(
                "SELECT base_url, watermark, pages_done, status_url, status, finished_at FROM sync_state WHERE site = $1",
                &[&site],
            )?;
            Ok(row.map(|r| SyncState {
                base_url: r.get(0),
                watermark: r.get(1),
                pages_done: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                status_url: r.get(3),
                status: r.get(4),
                finished_at: r.get(5),
            }))
        })
    }

    fn begin_run(&mut self, site: &str, base_url: &str) -> Result<(), StoreError> {
        exec(
            self,
            "INSERT INTO sync_state (site, base_url, status) VALUES ($1, $2, 'running')
             ON CONFLICT (site) DO UPDATE SET status = 'running', base_url = $2",
            vec![s(site), s(base_url)],
        )
        .map(drop)
    }

    fn finish_run(&mut self, site: &str, watermark: Option<&str>, ok: bool, now: i64) -> Result<(), StoreError> {
        let (site, watermark) = (site.to_string(), watermark.map(str::to_string));
        let status = if ok { "done" } else { "failed" };
        self.call(move |c| {
            c.execute(
                "INSERT INTO sync_state (site, watermark, status, finished_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (site) DO UPDATE SET status = $3, finished_at = $4,
                    watermark = CASE WHEN $3 = 'done' THEN COALESCE($2, sync_state.watermark)
                                     ELSE sync_state.watermark END",
                &[&site, &watermark, &status, &now],
            )?;
            Ok(())
        })
    }

    fn set_status_url(&mut self, site: &str, status_url: Option<&str>) -> Result<(), StoreError> {
        exec(
            self,
            "INSERT INTO sync_state (site, status_url) VALUES ($1, $2)
             ON CONFLICT (site) DO UPDATE SET status_url = $2",
            vec![s(site), status_url.map(str::to_string)],
        )
        .map(drop)
    }

    fn add_cohort(&mut self, site: &str, ids: &[&str]) -> Result<(), StoreError> {
        let site = site.to_string();
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.call(move |c| {
            c.execute(
                "INSERT INTO cohort (site, patient_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                &[&site, &ids],
            )?;
            Ok(())
        })
    }

    fn cohort(&self, site: &str) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT patient_id FROM cohort WHERE site = $1 ORDER BY patient_id",
            vec![site.to_string()],
        )
    }

    fn replace_outcomes(&mut self, site: &str, outcomes: &[String]) -> Result<(), StoreError> {
        let (site, outcomes) = (site.to_string(), outcomes.to_vec());
        self.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM server_outcome WHERE site = $1", &[&site])?;
            for (seq, o) in outcomes.iter().enumerate() {
                let seq = seq as i64;
                tx.execute(
                    "INSERT INTO server_outcome (site, seq, json) VALUES ($1, $2, $3)",
                    &[&site, &seq, o],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn outcomes(&self, site: &str) -> Result<Vec<String>, StoreError> {
        texts(
            self,
            "SELECT json FROM server_outcome WHERE site = $1 ORDER BY seq",
            vec![site.to_string()],
        )
    }

    fn take_lease(&mut self, lease: &Lease<'_>) -> Result<bool, StoreError> {
        let (site, holder, now, ttl) = (
            lease.site.to_string(),
            lease.holder.to_string(),
            lease.now,
            lease.ttl_secs,
        );
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO site_lease (site, holder, expires_at) VALUES ($1, $2, $3::bigint + $4::bigint)
                 ON CONFLICT (site) DO UPDATE SET holder = $2, expires_at = $3::bigint + $4::bigint
                 WHERE site_lease.expires_at <= $3 OR site_lease.holder = $2",
                &[&site, &holder, &now, &ttl],
            )?;
            Ok(n == 1)
        })
    }

    fn replace_tables(&mut self, tables: &[Table]) -> Result<(), StoreError> {
        let tables = tables.to_vec();
        self.call(move |c| publish(c, &tables))
    }

    fn release_lease(&mut self, site: &str, holder: &str) -> Result<(), StoreError> {
        exec(
            self,
            "DELETE FROM site_lease WHERE site = $1 AND holder = $2",
            vec![s(site), s(holder)],
        )
        .map(drop)
    }

    fn record_run(&mut self, site: &str, run: &RunRecord) -> Result<(), StoreError> {
        let (site, run) = (site.to_string(), run.clone());
        let keep = i64::try_from(RUNS_KEPT).unwrap_or(i64::MAX);
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let (new, updated) = (
                i64::try_from(run.new).unwrap_or(i64::MAX),
                i64::try_from(run.updated).unwrap_or(i64::MAX),
            );
            tx.execute(
                "INSERT INTO sync_run (site, seq, started, ended, status, new_count, updated_count, seconds, error)
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8 FROM sync_run WHERE site = $1",
                &[
                    &site,
                    &run.started,
                    &run.ended,
                    &run.status,
                    &new,
                    &updated,
                    &run.seconds,
                    &run.error,
                ],
            )?;
            tx.execute(
                "DELETE FROM sync_run WHERE site = $1 AND seq <= (SELECT MAX(seq) FROM sync_run WHERE site = $1) - $2",
                &[&site, &keep],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn runs(&self, site: &str, limit: u64) -> Result<Vec<RunRecord>, StoreError> {
        let site = site.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let rows = c.query(
                "SELECT started, ended, status, new_count, updated_count, seconds, error FROM sync_run
                 WHERE site = $1 ORDER BY seq DESC LIMIT $2",
                &[&site, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| RunRecord {
                    started: r.get(0),
                    ended: r.get(1),
                    status: r.get(2),
                    new: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                    updated: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
                    seconds: r.get(5),
                    error: r.get(6),
                })
                .collect())
        })
    }
}

/// Streams the rows of one site (or all) to `out`, in the store's order.
fn stream(
    c: &mut Client,
    scope: Option<(String, Option<String>)>,
    out: &mpsc::SyncSender<Row>,
) -> Result<(), StoreError> {
    let cols = "site, rtype, id, version_id, last_updated, json";
    let rows = match &scope {
        None => c.query_raw(
            &format!("SELECT {cols} FROM resource ORDER BY site, rtype, id"),
            std::iter::empty::<&str>(),
        )?,
        Some((site, None)) => c.query_raw(
            &format!("SELECT {cols} FROM resource WHERE site = $1 ORDER BY rtype, id"),
            [site],
        )?,
        Some((site, Some(rtype))) => c.query_raw(
            &format!("SELECT {cols} FROM resource WHERE site = $1 AND rtype = $2 ORDER BY id"),
            [site, rtype],
        )?,
    };
    send_each(rows, out, |r| {
        Ok(Row {
            site: r.try_get(0)?,
            rtype: r.try_get(1)?,
            id: r.try_get(2)?,
            version_id: r.try_get(3)?,
            last_updated: r.try_get(4)?,
            json: r.try_get(5)?,
        })
    })
}

/// Sends the JSON of each row of `site` to `out`, in [`stream`]'s order: the
/// one column reading a store for a cohort needs.
fn stream_json(c: &mut Client, site: &str, out: &mpsc::SyncSender<String>) -> Result<(), StoreError> {
    let sql = "SELECT json FROM resource WHERE site = $1 ORDER BY rtype, id";
    send_each(c.query_raw(sql, [site])?, out, |r| r.try_get(0))
}

/// Sends `each` of every row of `rows` to `out`, until the receiver is gone.
fn send_each<T>(
    mut rows: postgres::RowIter<'_>,
    out: &mpsc::SyncSender<T>,
    each: impl Fn(&postgres::Row) -> Result<T, postgres::Error>,
) -> Result<(), StoreError> {
    use postgres::fallible_iterator::FallibleIterator;
    while let Some(r) = rows.next()? {
        if out.send(each(&r)?).is_err() {
            break;
        }
    }
    Ok(())
}

/// Replaces the published tables in one transaction, each filled by `COPY`.
fn publish(c: &mut Client, tables: &[Table]) -> Result<(), StoreError> {
    use std::io::Write;
    let schema = super::tables::SCHEMA;
    let mut tx = c.transaction()?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
    for t in tables {
        let name = format!("{schema}.{}", t.name);
        let held: Vec<String> = tx
            .query(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&schema, &t.name],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if held == t.columns {
            tx.batch_execute(&format!("TRUNCATE {name}"))?;
        } else {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {name}; {}", t.create_sql(&name)))?;
        }
        let mut w = tx.copy_in(&format!("COPY {name} ({}) FROM STDIN", t.column_list()))?;
        let mut line = String::new();
        for row in &t.rows {
            line.clear();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push('\t');
                }
                copy_cell(&mut line, cell.as_deref());
            }
            line.push('\n');
            w.write_all(line.as_bytes()).map_err(|e| StoreError::BadTable {
                table: t.name.clone(),
                reason: format!("copying rows: {e}"),
            })?;
        }
        w.finish()?;
    }
    tx.commit()?;
    Ok(())
}

/// One cell in `COPY`'s text format: `\N` for NULL, backslash escapes otherwise.
fn copy_cell(out: &mut String, cell: Option<&str>) {
    let Some(text) = cell else {
        out.push_str("\\N");
        return;
    };
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}
