//! `imnm facts` (a site's or shard's de-identified facts as Parquet) and
//! `imnm sql` (the SQL that turns facts into the cohort and Table 1).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use imnm_fhir::deid::{DeidRules, SiteKey};
use imnm_fhir::exit;
use imnm_fhir::facts_table::{self, rows::Keying, sql::Dialect};
use imnm_fhir::pipeline;

use crate::{load_mappings, Exit, OrExit};

/// `imnm facts`.
#[derive(Debug, Args)]
pub struct FactsArgs {
    /// Bundles, NDJSON files or folders; `SITE=PATH` names the site (repeat for several).
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Folder to write `facts-{site}-{shard}.parquet` and `issues-{site}-{shard}.ndjson` into (created).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Site of inputs given without `SITE=` (default: local).
    #[arg(long)]
    pub site: Option<String>,
    /// Site key (from `imnm keygen`): patient keys, resource ids and dates as `imnm export` writes them.
    #[arg(long)]
    pub site_key: Option<PathBuf>,
    /// Registry link key (from `imnm keygen`, shared by the sites, not a site key): writes a `link` row per
    /// linking identifier, its `system|value` keyed with HMAC-SHA256 (the identifier itself never).
    #[arg(long, requires = "link_identifier")]
    pub link_key: Option<PathBuf>,
    /// Identifier system (URI) that links one child across sites, as `imnm cohort --link-identifier` (repeatable).
    #[arg(long, requires = "link_key")]
    pub link_identifier: Vec<String>,
    /// Shard name in the file names (default: derived from the input paths, so shards of one site never collide).
    #[arg(long)]
    pub shard: Option<String>,
    /// Mapping folder (default: the mappings built into this binary).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Reader threads (default: all cores).
    #[arg(long)]
    pub threads: Option<u16>,
}

/// `imnm sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The engine's SQL dialect: spark or duckdb.
    #[arg(long, default_value = "duckdb")]
    pub dialect: Dialect,
    /// Mapping folder whose data dictionary the SQL follows (default: the built-in one).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Smallest count shown in the suppressed Table 1 (as `imnm cohort`/`export` --min-cell).
    #[arg(long, default_value_t = 5)]
    pub min_cell: u64,
    /// The table (or view) the facts are read from.
    #[arg(long, default_value = "facts")]
    pub facts_table: String,
    /// Rounds of label propagation that group patients linked across sites (`link` rows): a group whose
    /// patients are more than this many links apart makes the script fail, saying so.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub link_rounds: u16,
}

pub(crate) fn facts(args: FactsArgs) -> Result<u8, Exit> {
    let mappings = load_mappings(args.mappings.as_deref())?;
    let key = match &args.site_key {
        Some(p) => Some(SiteKey::load(p)?),
        None => None,
    };
    let max_days = DeidRules::builtin()?.max_offset_days;
    let link_key = match &args.link_key {
        Some(p) => Some(SiteKey::load(p)?),
        None => None,
    };
    if let (Some(l), Some(k)) = (&link_key, &key) {
        if l.key_id() == k.key_id() {
            let e = anyhow::anyhow!(
                "--link-key is the --site-key: the link key must be the registry's, shared by the sites"
            );
            return Err(Exit::new(exit::USAGE, e));
        }
    }
    let systems: Vec<String> = args
        .link_identifier
        .iter()
        .map(|s| mappings.canonical_system(s))
        .collect();
    let keying = match &link_key {
        Some(l) => Keying::new(key.as_ref(), max_days).with_link(l, &systems),
        None => Keying::new(key.as_ref(), max_days),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))
        .or_exit(exit::OUTPUT)?;
    let mut opts = pipeline::ReadOptions {
        keep_open: true,
        ..pipeline::ReadOptions::default()
    };
    if let Some(n) = args.threads {
        opts.threads = usize::from(n.max(1));
    }
    let mut code = exit::OK;
    for (site, paths) in imnm_fhir::collect::inputs_by_site(&args.input) {
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            let e = anyhow::anyhow!("input {} does not exist", missing.display());
            return Err(Exit::new(exit::INPUT, e));
        }
        let site = match (&args.site, site.as_str()) {
            (Some(s), imnm_fhir::collect::LOCAL_SITE) => s.clone(),
            _ => site,
        };
        imnm_fhir::store::check_site_id(&site).map_err(|e| Exit::new(exit::USAGE, anyhow::anyhow!("--site: {e}")))?;
        let shard = args.shard.clone().unwrap_or_else(|| shard_of(&paths));
        let mut collected = pipeline::collect_with(&paths, &mappings, opts, |_| {})?;
        collected.site = site.clone();
        let written = facts_table::write(&args.out, &shard, &mut collected, &mappings, &keying)?;
        eprintln!(
            "site {site}: {} fact row(s) of {} patient(s) in {}; {} issue(s)",
            written.rows,
            written.patients,
            written.path.display(),
            collected.issues.total()
        );
        code = code.max(crate::data_exit(&collected.issues, false));
    }
    Ok(code)
}

/// A shard name from the input paths: 12 hex digits of their SHA-256.
fn shard_of(paths: &[PathBuf]) -> String {
    let text: Vec<String> = paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .collect();
    let hex = imnm_fhir::deid::key::sha256_hex(text.join("\n").as_bytes());
    hex.chars().take(12).collect()
}

pub(crate) fn sql(args: SqlArgs) -> Result<u8, Exit> {
    let mappings = load_mappings(args.mappings.as_deref())?;
    let opts = facts_table::sql::Options {
        dialect: args.dialect,
        min_cell: args.min_cell,
        facts: args.facts_table,
        link_rounds: usize::from(args.link_rounds),
    };
    print!("{}", facts_table::sql::script(&mappings, &opts));
    Ok(exit::OK)
}
