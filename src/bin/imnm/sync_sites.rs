//! `imnm sync --config registry.toml`: syncs the sites of a registry config
//! (all, or those named by `--site`) into the config's store, each with its
//! own settings, at most `--parallel-sites` at once. A site's failure never
//! stops the others; the summary has one line per site and the exit code is
//! 0 only when every site succeeded (else the first failure's, in the
//! config's order).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use imnm_fhir::client::{Auth, FhirClient};
use imnm_fhir::exit;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::registry::{RegistryConfig, SiteAuth, SiteCohort, SiteConfig, SiteMode, StoreLocation};
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, Mode, Since, SyncOptions, SyncReport};

use crate::cli::{AuthArgs, SyncArgs, SyncSettings};
use crate::sync::{auth_from, interrupted_message, patient_list, Bars, RunLog, Stopped};
use crate::{Exit, OrExit};

/// One site's outcome.
pub(crate) type Outcome = Result<SyncReport, Exit>;

/// A site ready to run (its client and options), or why it cannot start.
pub(crate) type Prepared = Result<(FhirClient, SyncOptions), Exit>;

/// Syncs the registry config at `path` (holding `text`) as `args` ask.
pub fn run(path: PathBuf, text: &str, args: SyncArgs) -> Result<u8, Exit> {
    let usage = |e: anyhow::Error| Exit::new(exit::USAGE, e);
    let file = path.display().to_string();
    let config = RegistryConfig::from_str(text, &file, path.parent().unwrap_or(Path::new("")))
        .map_err(|e| crate::registry::config_errors(&e, &file))?;
    let per_site = per_site_flags(&args.settings);
    if !per_site.is_empty() {
        return Err(usage(anyhow::anyhow!(
            "{} set per site in the registry config {file}; with it only --site, --parallel-sites, --since, --mappings and --log are taken",
            per_site.join(", ")
        )));
    }
    let store_at = config.store.clone();
    let mut chosen: Vec<&SiteConfig> = Vec::new();
    for id in &args.site {
        match config.site(id) {
            Some(site) if !chosen.iter().any(|s| s.id == site.id) => chosen.push(site),
            Some(_) => {}
            None => return Err(usage(anyhow::anyhow!("--site {id}: no such site in {file}"))),
        }
    }
    if chosen.is_empty() {
        chosen = config.sites.iter().collect();
    }
    // An incremental run wherever the site has a successful run (`auto`), unless --since says otherwise.
    let since = match args.settings.since.as_deref() {
        None | Some("auto") => Since::Auto,
        Some(t) => Since::At(sync::check_instant(t)?),
    };
    let parallel = usize::try_from(args.parallel_sites.unwrap_or(1)).unwrap_or(1).max(1);
    let mappings = Arc::new(crate::load_registry_mappings(
        args.settings.mappings.as_deref(),
        &config,
    )?);
    let log_path = args
        .settings
        .log
        .clone()
        .unwrap_or_else(|| crate::sync::default_log(&store_at));
    let log = Arc::new(RunLog::create(&log_path)?);
    let store = crate::sync::open_store(&store_at)?;
    let store = Arc::new(Mutex::new(store));
    // Bars only when one site runs at a time: parallel sites' phases would draw over each other.
    let bars = (parallel == 1).then(Bars::new);
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(usage)?;
    if args.worker {
        let lease = std::time::Duration::from_secs(args.lease_ttl);
        let work = crate::worker::Work {
            sites: &chosen,
            since,
            store: store.clone(),
            mappings,
            log: &log,
            lease,
        };
        let outcomes = runtime.block_on(work.run())?;
        return summary(&outcomes, &store, &store_at, &log_path);
    }
    eprintln!(
        "{file}: syncing {} site(s), {parallel} at a time, into {}",
        chosen.len(),
        store_at
    );
    let prepared: Vec<(String, Prepared)> = chosen
        .iter()
        .map(|site| {
            let progress = bars.as_ref().map(Bars::sink);
            (site.id.clone(), prepare(site, since.clone(), progress, &log))
        })
        .collect();
    let outcomes = runtime.block_on(run_sites(prepared, store.clone(), mappings, parallel, &log));
    if let Some(bars) = &bars {
        bars.finish();
    }
    let outcomes = outcomes?;
    summary(&outcomes, &store, &store_at, &log_path)
}

/// The names of the single-server flags given (they are set per site in a registry config).
fn per_site_flags(s: &SyncSettings) -> Vec<&'static str> {
    [
        ("--base-url", s.base_url.is_some()),
        ("--auth", s.auth.is_some()),
        ("--client-id", s.client_id.is_some()),
        ("--key", s.key.is_some()),
        ("--kid", s.kid.is_some()),
        ("--scope", s.scope.is_some()),
        ("--store", s.store.is_some()),
        ("--concurrency", s.concurrency.is_some()),
        ("--patients", s.patients.is_some()),
        ("--group", s.group.is_some()),
        ("--mode", s.mode.is_some()),
        ("--system", s.system.is_some()),
        ("--since-mode", s.since_mode.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect()
}

/// A site's client and options, from its config (its token variable, key and
/// patients file are read now: a failure is the site's alone).
pub(crate) fn prepare(
    site: &SiteConfig,
    since: Since,
    progress: Option<sync::ProgressSink>,
    log: &RunLog,
) -> Result<(FhirClient, SyncOptions), Exit> {
    let auth = match &site.auth {
        SiteAuth::None => Auth::None,
        SiteAuth::Bearer { token_env } => Auth::bearer_from_env(token_env).map_err(Exit::from)?,
        SiteAuth::Smart {
            client_id,
            key,
            kid,
            scope,
        } => auth_from(&AuthArgs {
            auth: Some("smart".into()),
            client_id: Some(client_id.clone()),
            key: Some(key.clone()),
            kid: kid.clone(),
            scope: scope.clone(),
        })?,
    };
    let (patients, group) = match &site.cohort {
        SiteCohort::Search => (None, None),
        SiteCohort::Group(g) => (None, Some(g.clone())),
        SiteCohort::Patients(p) => (Some(patient_list(p)?), None),
    };
    let options = SyncOptions {
        site: site.id.clone(),
        concurrency: site.concurrency,
        patients,
        group,
        mode: match site.mode {
            SiteMode::Crawl => Mode::Crawl,
            SiteMode::Bulk => Mode::Bulk,
        },
        since,
        since_mode: site.since_mode,
        progress,
        ..SyncOptions::default()
    };
    let client = FhirClient::builder(site.base_url.clone())
        .concurrency(options.concurrency)
        .auth(auth)
        .on_event(log.sink(&site.id))
        .build()
        .map_err(Exit::from)?;
    Ok((client, options))
}

/// Runs the prepared sites, `parallel` at a time, each to its end whatever the
/// others do; on Ctrl-C stops them all and cancels their pending bulk exports.
pub(crate) async fn run_sites(
    prepared: Vec<(String, Prepared)>,
    store: Arc<Mutex<Store>>,
    mappings: Arc<MappingSet>,
    parallel: usize,
    log: &Arc<RunLog>,
) -> Result<Vec<(String, Outcome)>, Exit> {
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut outcomes: Vec<(String, Option<Outcome>)> = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    let mut started: Vec<(FhirClient, String)> = Vec::new();
    for (i, (id, prepared)) in prepared.into_iter().enumerate() {
        match prepared {
            Err(e) => {
                log.failed(&id, &crate::message(&e.error));
                outcomes.push((id, Some(Err(e))));
            }
            Ok((client, options)) => {
                started.push((client.clone(), options.site.clone()));
                outcomes.push((id, None));
                let (gate, store, mappings, log) = (gate.clone(), store.clone(), mappings.clone(), log.clone());
                running.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let result = sync::run(&client, store, &mappings, &options).await;
                    let result = result.map_err(Stopped::Sync);
                    log.finish(&options.site, &result);
                    (i, result)
                });
            }
        }
    }
    let all = async {
        while let Some(joined) = running.join_next().await {
            if let Ok((i, result)) = joined {
                let outcome = result.map_err(|e| match e {
                    Stopped::Sync(e) => Exit::from(e),
                    Stopped::Interrupted(msg) => Exit::new(exit::INTERRUPTED, anyhow::anyhow!(msg)),
                });
                if let Some(slot) = outcomes.get_mut(i) {
                    slot.1 = Some(outcome);
                }
            }
        }
    };
    tokio::select! {
        () = all => {}
        _ = tokio::signal::ctrl_c() => {
            running.abort_all();
            let mut cancelled = Ok(false);
            for (client, site) in &started {
                match sync::bulk::cancel(client, &store, site).await {
                    Ok(true) => cancelled = cancelled.map(|_| true),
                    Ok(false) => {}
                    Err(e) => cancelled = Err(e),
                }
            }
            return Err(Exit::new(exit::INTERRUPTED, anyhow::anyhow!(interrupted_message(cancelled))));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|(id, outcome)| {
            let outcome = outcome
                .unwrap_or_else(|| Err(Exit::new(exit::REMOTE, anyhow::anyhow!("the site's sync task stopped"))));
            (id, outcome)
        })
        .collect())
}

/// One line per site on stderr, the store's counts and the log; the exit code.
fn summary(
    outcomes: &[(String, Outcome)],
    store: &Mutex<Store>,
    store_at: &StoreLocation,
    log_path: &Path,
) -> Result<u8, Exit> {
    let width = outcomes.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
    let mut code = exit::OK;
    let mut failed = 0;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(r) => {
                let mut line = format!(
                    "site {id:<width$}  ok      {} patient(s), {} page(s), {} new, {} updated, {} medication(s) fetched by reference",
                    r.patients, r.pages, r.inserted, r.updated, r.medications_fetched
                );
                if let Some(since) = &r.since {
                    line.push_str(&format!(", changes since {since}"));
                }
                if r.results_fetched > 0 {
                    line.push_str(&format!(
                        ", {} report result(s) fetched by reference",
                        r.results_fetched
                    ));
                }
                if r.attachments_fetched > 0 {
                    line.push_str(&format!(", {} attachment(s) fetched", r.attachments_fetched));
                }
                if r.deleted > 0 {
                    line.push_str(&format!(", {} deleted on the server removed", r.deleted));
                }
                if r.server_issues > 0 {
                    line.push_str(&format!(", {} server problem(s) kept", r.server_issues));
                }
                eprintln!("{line}");
            }
            Err(e) => {
                failed += 1;
                if code == exit::OK {
                    code = e.code;
                }
                eprintln!("site {id:<width$}  failed  {}", crate::message(&e.error));
            }
        }
    }
    let counts = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .counts()
        .context("counting the store")
        .or_exit(exit::OUTPUT)?;
    let per_type: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("store {store_at}: {}", per_type.join(", "));
    eprintln!("log: {}", log_path.display());
    if failed > 0 {
        eprintln!("error: {failed} of {} site(s) failed", outcomes.len());
    }
    Ok(code)
}
