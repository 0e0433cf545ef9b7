//! `imnm sync`: syncs a FHIR server's IMNM cohort into the SQLite store, with
//! settings from flags and `--config`, progress bars on a terminal, and the
//! run's `log.ndjson`. A `--config` that is a registry config (`[[site]]`
//! tables) syncs each of its sites instead ([`crate::sync_sites`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use imnm_fhir::client::{Auth, EventSink, FhirClient, Smart};
use imnm_fhir::exit;
use imnm_fhir::store::StoreLocation;
use imnm_fhir::store::{self, Store};
use imnm_fhir::sync::{self, Mode, Progress, ProgressSink, Since, SinceMode, SyncError, SyncOptions, SyncReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{AuthArgs, SinceModeArg, SyncArgs, SyncMode, SyncSettings};
use crate::{Exit, OrExit};

/// The environment variable holding the token for `--auth bearer`.
pub const TOKEN_VAR: &str = "IMNM_TOKEN";

/// The settings of the command line, completed from the single-server settings
/// file `path` (holding `text`).
fn settings(args: SyncArgs, config: Option<(&Path, &str)>) -> Result<SyncSettings, Exit> {
    let Some((path, text)) = config else {
        return Ok(args.settings);
    };
    let file: SyncSettings = toml::from_str(text)
        .with_context(|| format!("config {}", path.display()))
        .or_exit(exit::USAGE)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(args.settings.or(file.relative_to(dir)))
}

/// Whether a config file's text is a registry config: it has `[[site]]` tables.
fn is_registry_config(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.get("site").is_some_and(toml::Value::is_array))
}

/// The client authorization the options ask for (shared by `sync` and `push`).
pub fn auth_from(s: &AuthArgs) -> Result<Auth, Exit> {
    let usage = |e: anyhow::Error| Exit::new(exit::USAGE, e);
    match s.auth.as_deref().unwrap_or("none") {
        "none" => Ok(Auth::None),
        "bearer" => Auth::bearer_from_env(TOKEN_VAR).map_err(|e| usage(e.into())),
        "smart" => {
            let (Some(client_id), Some(key)) = (&s.client_id, &s.key) else {
                return Err(usage(anyhow::anyhow!("--auth smart needs --client-id and --key")));
            };
            let bytes = std::fs::read(key)
                .with_context(|| format!("reading key {}", key.display()))
                .or_exit(exit::INPUT)?;
            let scope = s.scope.as_deref().unwrap_or("system/*.rs");
            let smart = if bytes.trim_ascii_start().starts_with(b"{") {
                Smart::from_jwks(client_id, &bytes, s.kid.clone(), scope)
            } else {
                Smart::from_pem(client_id, &bytes, s.kid.clone(), scope)
            };
            Ok(Auth::Smart(smart.map_err(|e| usage(e.into()))?))
        }
        other => Err(usage(anyhow::anyhow!("--auth {other}: expected none, bearer or smart"))),
    }
}

pub(crate) fn patient_list(path: &Path) -> Result<Vec<String>, Exit> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))
        .or_exit(exit::INPUT)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn options(s: &SyncSettings, site: String, progress: ProgressSink) -> Result<SyncOptions, Exit> {
    Ok(SyncOptions {
        site,
        concurrency: usize::try_from(s.concurrency.unwrap_or(4)).unwrap_or(4),
        patients: s.patients.as_deref().map(patient_list).transpose()?,
        group: s.group.clone(),
        mode: match s.mode.unwrap_or(SyncMode::Crawl) {
            SyncMode::Crawl => Mode::Crawl,
            SyncMode::Bulk => Mode::Bulk,
        },
        system_export: s.system.unwrap_or(false),
        since: match s.since.as_deref() {
            None => Since::All,
            Some("auto") => Since::Auto,
            Some(t) => Since::At(sync::check_instant(t)?),
        },
        since_mode: match s.since_mode.unwrap_or(SinceModeArg::LastUpdated) {
            SinceModeArg::LastUpdated => SinceMode::LastUpdated,
            SinceModeArg::Created => SinceMode::Created,
        },
        progress: Some(progress),
        new_base_url: s.new_base_url,
        ..SyncOptions::default()
    })
}

/// Parses the settings, runs the sync, prints counts, writes the log. A
/// registry config is handed to [`crate::sync_sites::run`].
pub fn run(args: SyncArgs) -> Result<u8, Exit> {
    let usage = |e: anyhow::Error| Exit::new(exit::USAGE, e);
    let text = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))
                .or_exit(exit::INPUT)?,
        ),
        None => None,
    };
    if let (Some(path), Some(text)) = (&args.config, &text) {
        if is_registry_config(text) {
            return crate::sync_sites::run(path.clone(), text, args);
        }
    }
    if args.parallel_sites.is_some() {
        return Err(usage(anyhow::anyhow!(
            "--parallel-sites needs a registry config (--config with [[site]] tables)"
        )));
    }
    if args.site.len() > 1 {
        return Err(usage(anyhow::anyhow!(
            "one --site with --base-url (several need a registry config)"
        )));
    }
    let site_arg = args.site.first().cloned();
    let config = args.config.clone();
    let s = settings(args, config.as_deref().zip(text.as_deref()))?;
    let Some(base_url) = s.base_url.clone() else {
        return Err(usage(anyhow::anyhow!(
            "--base-url is required (on the command line or in --config)"
        )));
    };
    let site = match site_arg {
        Some(site) => {
            store::check_site_id(&site).map_err(|e| usage(anyhow::anyhow!("--site: {e}")))?;
            site
        }
        None => {
            let site = store::site_id_for(&base_url);
            eprintln!("site {site} (from the base URL; --site to name it)");
            site
        }
    };
    let mappings = crate::load_mappings(s.mappings.as_deref())?;
    let store_at = s
        .store
        .clone()
        .unwrap_or_else(|| StoreLocation::Path(PathBuf::from("imnm.db")));
    let log_path = s.log.clone().unwrap_or_else(|| default_log(&store_at));
    let bars = Bars::new();
    let options = options(&s, site.clone(), bars.sink())?;
    let log = RunLog::create(&log_path)?;
    let client = FhirClient::builder(base_url)
        .concurrency(options.concurrency)
        .auth(auth_from(&s.auth_args())?)
        .on_event(log.sink(&site))
        .build()
        .map_err(|e| usage(e.into()))?;
    let store = Arc::new(Mutex::new(open_store(&store_at)?));
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(usage)?;
    let result = runtime.block_on(run_until_ctrl_c(&client, store.clone(), &mappings, &options));
    bars.finish();
    log.finish(&site, &result);
    let report = result.map_err(|e| match e {
        Stopped::Sync(e) if e.is_usage() => Exit::from(e),
        Stopped::Sync(e) => Exit::from(e).context("sync"),
        Stopped::Interrupted(msg) => Exit::new(exit::INTERRUPTED, anyhow::anyhow!(msg)),
    })?;
    print_report(&report, &store, &store_at, &log_path)?;
    Ok(exit::OK)
}

/// Opens (creating) the store a sync writes; a failure is an output error naming
/// the store without password or query.
pub(crate) fn open_store(at: &StoreLocation) -> Result<Store, Exit> {
    at.open()
        .with_context(|| format!("opening store {at}"))
        .or_exit(exit::OUTPUT)
}

/// The run log's default place: beside a SQLite store, else in the working folder.
pub(crate) fn default_log(at: &StoreLocation) -> PathBuf {
    match at.path() {
        Some(p) => p.parent().unwrap_or(Path::new("")).join("log.ndjson"),
        None => PathBuf::from("log.ndjson"),
    }
}

fn print_report(
    report: &SyncReport,
    store: &Mutex<Store>,
    store_at: &StoreLocation,
    log_path: &Path,
) -> Result<(), Exit> {
    let counts = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .counts_in(&report.site)
        .context("counting the store")
        .or_exit(exit::OUTPUT)?;
    eprintln!(
        "synced {} patient(s): {} page(s), {} new, {} updated, {} medication(s) and {} report result(s) fetched by reference",
        report.patients, report.pages, report.inserted, report.updated, report.medications_fetched, report.results_fetched
    );
    if report.attachments_fetched + report.attachments_elsewhere > 0 {
        eprintln!(
            "{} report/note attachment(s) fetched from Binary urls; {} url(s) off the server's base URL not fetched",
            report.attachments_fetched, report.attachments_elsewhere
        );
    }
    if report.deleted > 0 {
        eprintln!(
            "{} resource(s) deleted on the server removed from the store",
            report.deleted
        );
    }
    if report.resumed {
        eprintln!("resumed the bulk export an interrupted run had started");
    }
    if let Some(since) = &report.since {
        eprintln!("changes since {since}");
    }
    if report.server_issues > 0 {
        eprintln!(
            "the server reported {} problem(s) in the export's error files (kept in the store's server_outcome table)",
            report.server_issues
        );
    }
    let per_type: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("store {store_at}, site {}: {}", report.site, per_type.join(", "));
    eprintln!("log: {}", log_path.display());
    Ok(())
}

pub(crate) enum Stopped {
    Sync(SyncError),
    Interrupted(String),
}

/// Runs the sync; on Ctrl-C stops it, cancels (DELETE) a pending bulk export and says so.
async fn run_until_ctrl_c(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &imnm_fhir::mapping::MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, Stopped> {
    tokio::select! {
        r = sync::run(client, store.clone(), mappings, options) => r.map_err(Stopped::Sync),
        _ = tokio::signal::ctrl_c() => {
            let cancelled = sync::bulk::cancel(client, &store, &options.site).await;
            Err(Stopped::Interrupted(interrupted_message(cancelled).to_string()))
        }
    }
}

/// What to say after Ctrl-C, by what cancelling a pending bulk export gave.
pub(crate) fn interrupted_message(cancelled: Result<bool, SyncError>) -> &'static str {
    match cancelled {
        Ok(true) => {
            "interrupted: the pending bulk export was cancelled on the server (pages already written stay in the store)"
        }
        Ok(false) => "interrupted (pages already written stay in the store)",
        Err(_) => "interrupted; cancelling the pending bulk export failed (a rerun resumes it)",
    }
}

/// The run's `log.ndjson`: one line per request attempt (method, path without
/// query or ids, status, retry wait), then one line with the outcome and counts.
pub(crate) struct RunLog {
    file: Arc<Mutex<LogFile>>,
}

/// The log's file; with a limit, a file grown past it is renamed to
/// `NAME.1` (replacing the one before) and a new file started.
struct LogFile {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
    limit: Option<u64>,
}

impl LogFile {
    fn open(path: &Path, append: bool, limit: Option<u64>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        Ok(LogFile {
            written: file.metadata()?.len(),
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            limit,
        })
    }

    fn line(&mut self, line: &serde_json::Value) {
        let text = line.to_string();
        let _ = writeln!(self.out, "{text}");
        self.written += text.len() as u64 + 1;
        if self.limit.is_some_and(|l| self.written > l) {
            let _ = self.out.flush();
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            let renamed = std::fs::rename(&self.path, &old);
            if let (Ok(()), Ok(fresh)) = (renamed, LogFile::open(&self.path, false, self.limit)) {
                *self = fresh;
            }
        }
    }
}

impl RunLog {
    /// A log written afresh at `path` (one `imnm sync` run).
    pub(crate) fn create(path: &Path) -> Result<Self, Exit> {
        Self::open(path, false, None)
    }

    /// A log appended to at `path` across restarts (the service's), rotated
    /// to `path.1` when it grows past `limit` bytes.
    pub(crate) fn rotating(path: &Path, limit: u64) -> Result<Self, Exit> {
        Self::open(path, true, Some(limit))
    }

    fn open(path: &Path, append: bool, limit: Option<u64>) -> Result<Self, Exit> {
        let file = LogFile::open(path, append, limit)
            .with_context(|| format!("opening the log {}", path.display()))
            .or_exit(exit::OUTPUT)?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn write(file: &Mutex<LogFile>, line: &serde_json::Value) {
        file.lock().unwrap_or_else(|e| e.into_inner()).line(line);
    }

    /// The client's event sink for `site`: one line per request attempt, with the site id.
    pub(crate) fn sink(&self, site: &str) -> EventSink {
        let file = self.file.clone();
        let site = site.to_string();
        Arc::new(move |e| {
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["event"] = "request".into();
            v["site"] = site.as_str().into();
            RunLog::write(&file, &v);
        })
    }

    /// The line of a site that could not start (its settings): the error's text.
    pub(crate) fn failed(&self, site: &str, error: &str) {
        RunLog::write(
            &self.file,
            &serde_json::json!({"event": "failed", "site": site, "error": error}),
        );
        let _ = self.file.lock().unwrap_or_else(|e| e.into_inner()).out.flush();
    }

    /// The last line of `site`'s run: its outcome and counts.
    pub(crate) fn finish(&self, site: &str, result: &Result<SyncReport, Stopped>) {
        let mut line = match result {
            Ok(r) => serde_json::json!({"event": "done", "patients": r.patients, "pages": r.pages,
                "received": r.received, "inserted": r.inserted, "updated": r.updated,
                "medications_fetched": r.medications_fetched, "results_fetched": r.results_fetched,
                "attachments_fetched": r.attachments_fetched, "attachments_elsewhere": r.attachments_elsewhere, "deleted": r.deleted, "server_issues": r.server_issues,
                "resumed": r.resumed, "since": r.since, "watermark": r.watermark}),
            Err(Stopped::Interrupted(_)) => serde_json::json!({"event": "interrupted"}),
            Err(Stopped::Sync(e)) => serde_json::json!({"event": "failed", "error": e.to_string()}),
        };
        line["site"] = site.into();
        RunLog::write(&self.file, &line);
        let _ = self.file.lock().unwrap_or_else(|e| e.into_inner()).out.flush();
    }
}

/// One progress bar per phase on a terminal (hidden otherwise).
pub(crate) struct Bars {
    current: Arc<Mutex<Option<ProgressBar>>>,
}

impl Bars {
    pub(crate) fn new() -> Self {
        Bars {
            current: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn sink(&self) -> ProgressSink {
        let current = self.current.clone();
        ProgressSink(Arc::new(move |p| {
            let mut held = current.lock().unwrap_or_else(|e| e.into_inner());
            match p {
                Progress::Phase { name, total } => {
                    if let Some(old) = held.take() {
                        old.finish();
                    }
                    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                    let template = if total.is_some() {
                        "{prefix:>12} [{wide_bar}] {pos}/{len} {elapsed}"
                    } else {
                        "{spinner} {prefix:>10} {msg} {elapsed}"
                    };
                    bar.set_style(
                        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_prefix(name);
                    *held = Some(bar);
                }
                Progress::Step => {
                    if let Some(bar) = held.as_ref() {
                        bar.inc(1);
                    }
                }
                Progress::More(n) => {
                    if let Some(bar) = held.as_ref() {
                        bar.inc_length(n);
                    }
                }
                Progress::Message(m) => {
                    if let Some(bar) = held.as_ref() {
                        bar.set_message(m);
                        bar.tick();
                    }
                }
            }
        }))
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = self.current.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_log_appends_across_restarts_and_rotates_past_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync-log.ndjson");
        let line = serde_json::json!({"event": "request", "site": "a", "status": 200});
        let size = line.to_string().len() as u64 + 1;
        {
            let log = RunLog::rotating(&path, size * 10).ok().unwrap();
            (0..4).for_each(|_| RunLog::write(&log.file, &line));
            log.failed("a", "x");
        }
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.lines().count(), 5);
        let log = RunLog::rotating(&path, size * 10).ok().unwrap();
        (0..6).for_each(|_| RunLog::write(&log.file, &line));
        drop(log);
        let rotated = std::fs::read_to_string(dir.path().join("sync-log.ndjson.1")).unwrap();
        assert!(
            rotated.starts_with(&first),
            "the earlier run's lines are in the rotated file"
        );
        assert!(std::fs::metadata(&path).unwrap().len() <= size * 10);
        let fresh = RunLog::create(&path).ok().unwrap();
        drop(fresh);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "imnm sync's log starts afresh"
        );
    }
}
