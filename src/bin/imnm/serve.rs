//! `imnm serve --config registry.toml`: the registry service
//! ([`imnm_fhir::service`]) with each site prepared exactly as `imnm sync
//! --config` prepares it ([`crate::sync_sites::prepare`]), stopped by SIGTERM
//! or Ctrl-C (exit 0). `imnm serve hash-token` prints the SHA-256 a
//! `[[serve.token]]` holds for a token read from stdin.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use imnm_fhir::exit;
use imnm_fhir::registry::StoreLocation;
use imnm_fhir::service::{self, ServeOptions};
use imnm_fhir::sync::Since;

use crate::cli::{ServeArgs, ServeCommand};
use crate::sync::RunLog;

/// `sync-log.ndjson` is renamed to `sync-log.ndjson.1` past this size (64 MiB), so an
/// unattended service's request log stays bounded (two files at most).
const SYNC_LOG_LIMIT: u64 = 64 << 20;
use crate::{Exit, OrExit};

/// Runs `imnm serve` as `args` ask.
pub fn run(args: ServeArgs) -> Result<u8, Exit> {
    if let Some(ServeCommand::HashToken) = args.command {
        return hash_token();
    }
    let Some(file) = &args.config else {
        return Err(Exit::new(
            exit::USAGE,
            anyhow::anyhow!("imnm serve needs --config registry.toml"),
        ));
    };
    let config = crate::registry::load(file)?;
    let listen = args.listen.unwrap_or(config.serve.listen);
    service::check_listen(&config, listen)?;
    // Outputs beside a SQLite store, else (a database URL) in the working folder.
    let dir = match &config.store {
        StoreLocation::Path(store) => store.parent().unwrap_or(Path::new("")).to_path_buf(),
        StoreLocation::Url(_) => std::path::PathBuf::new(),
    };
    let out = args.out.clone().unwrap_or_else(|| dir.join("registry-out"));
    let audit = args.audit.clone().unwrap_or_else(|| out.join("audit.ndjson"));
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating {}", out.display()))
        .or_exit(exit::OUTPUT)?;
    let log = Arc::new(RunLog::rotating(&out.join("sync-log.ndjson"), SYNC_LOG_LIMIT)?);
    let mappings = Arc::new(crate::load_registry_mappings(args.mappings.as_deref(), &config)?);
    let prepare: service::Prepare = Arc::new(move |site| {
        crate::sync_sites::prepare(site, Since::Auto, None, &log).map_err(|e| crate::message(&e.error))
    });
    let options = ServeOptions {
        config,
        listen,
        out,
        audit,
        mappings,
        prepare,
    };
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .or_exit(exit::USAGE)?;
    runtime.block_on(service::serve(options, stop_signal()))?;
    eprintln!("imnm serve: stopped");
    Ok(exit::OK)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads a token from the first line of stdin and prints its SHA-256 (hex).
fn hash_token() -> Result<u8, Exit> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the token from stdin")
        .or_exit(exit::INPUT)?;
    if line.trim().is_empty() {
        return Err(Exit::new(
            exit::USAGE,
            anyhow::anyhow!("no token on stdin (echo -n TOKEN | imnm serve hash-token)"),
        ));
    }
    println!("{}", service::hash_token(&line));
    Ok(exit::OK)
}
