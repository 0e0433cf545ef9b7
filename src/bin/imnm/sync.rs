//! `imnm sync`: crawls a FHIR server's IMNM cohort into the SQLite store.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use imnm_fhir::client::{Auth, FhirClient, Smart};
use imnm_fhir::store::Store;
use imnm_fhir::sync::{self, SyncOptions};

use crate::cli::SyncArgs;
use crate::Exit;

/// The environment variable holding the token for `--auth bearer`.
pub const TOKEN_VAR: &str = "IMNM_TOKEN";

/// Parses the arguments, runs the crawl, prints counts.
pub fn run(args: SyncArgs) -> Result<u8, Exit> {
    let usage = |e: anyhow::Error| Exit(2, e);
    let mappings = crate::load_mappings(args.mappings.as_deref())?;
    let auth = match args.auth.as_str() {
        "none" => Auth::None,
        "bearer" => Auth::bearer_from_env(TOKEN_VAR).map_err(|e| usage(e.into()))?,
        "smart" => {
            let (Some(client_id), Some(key)) = (&args.client_id, &args.key) else {
                return Err(usage(anyhow::anyhow!("--auth smart needs --client-id and --key")));
            };
            let pem = std::fs::read(key)
                .with_context(|| format!("reading key {}", key.display()))
                .map_err(|e| Exit(3, e))?;
            Auth::Smart(Smart::from_pem(client_id, &pem, args.kid.clone(), &args.scope).map_err(|e| usage(e.into()))?)
        }
        other => return Err(usage(anyhow::anyhow!("--auth {other}: expected none, bearer or smart"))),
    };
    let patients = match &args.patients {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(|e| Exit(3, e))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let concurrency = usize::try_from(args.concurrency).unwrap_or(4);
    let client = FhirClient::builder(args.base_url.clone())
        .concurrency(concurrency)
        .auth(auth)
        .build()
        .map_err(|e| usage(e.into()))?;
    let store = Store::open(&args.store)
        .with_context(|| format!("opening store {}", args.store.display()))
        .map_err(|e| Exit(4, e))?;
    let store = Arc::new(Mutex::new(store));
    let options = SyncOptions {
        concurrency,
        patients,
        ..SyncOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(usage)?;
    let report = runtime
        .block_on(sync::crawl(&client, store.clone(), &mappings, &options))
        .context("sync")
        .map_err(|e| Exit(6, e))?;
    let counts = store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .counts()
        .context("counting the store")
        .map_err(|e| Exit(4, e))?;
    eprintln!(
        "synced {} patient(s): {} page(s), {} new, {} updated, {} medication(s) fetched by reference",
        report.patients, report.pages, report.inserted, report.updated, report.medications_fetched
    );
    let per_type: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("store {}: {}", args.store.display(), per_type.join(", "));
    Ok(0)
}
