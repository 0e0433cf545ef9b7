//! The `imnm` command-line tool. See `imnm --help` and README.md.

mod casefhir;
mod cli;
mod demo;
mod mock_ehr;
mod registry;
mod share;
mod sync;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::pipeline::{self, RunOutcome};
use imnm_fhir::report::Severity;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cli::{Cli, Command, MappingsCommand, RegistryCommand};

// mimalloc: reading an export and syncing allocate many small objects (parsed resources,
// JSON trees); the system allocator was a quarter of a sync's instructions (callgrind).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A failure with its exit code.
pub(crate) struct Exit(u8, anyhow::Error);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Exit(code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<u8, Exit> {
    match cli.command {
        Command::Demo(args) => demo(&args.out),
        Command::Cohort(args) => cohort(args),
        Command::Mappings(MappingsCommand::Check { dir }) => mappings_check(dir.as_deref()),
        Command::Keygen { out } => share::keygen(&out),
        Command::Export(args) => share::export(args),
        Command::Merge(args) => share::merge(args),
        Command::MockEhr(args) => mock_ehr::run(args),
        Command::Sync(args) => sync::run(args),
        Command::Validate(args) => casefhir::validate(args),
        Command::ToFhir(args) => casefhir::to_fhir(args),
        Command::Push(args) => casefhir::push(args),
        Command::Registry(RegistryCommand::Check { file }) => registry::check(&file),
    }
}

pub(crate) fn load_mappings(dir: Option<&Path>) -> Result<MappingSet, Exit> {
    let loaded = match dir {
        Some(d) => MappingSet::load_dir(d).with_context(|| format!("loading mappings from {}", d.display())),
        None => MappingSet::builtin().context("loading the built-in mappings"),
    };
    loaded.map_err(|e| Exit(2, e))
}

fn mappings_check(dir: Option<&Path>) -> Result<u8, Exit> {
    let set = load_mappings(dir)?;
    let codes: usize = set.valuesets.iter().map(|v| v.code_count).sum();
    println!(
        "mappings OK: {} files, {} value sets ({} codes), {} rules, {} assays",
        set.versions.len(),
        set.valuesets.len(),
        codes,
        set.rules.len(),
        set.assays.len()
    );
    for (file, version) in &set.versions {
        println!("  {file} v{version}");
    }
    Ok(0)
}

fn progress_bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} reading {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn cohort(args: cli::CohortArgs) -> Result<u8, Exit> {
    let mappings = load_mappings(args.mappings.as_deref())?;
    if let Some(path) = &args.store {
        let collected = pipeline::collect_store_at(path, &mappings).map_err(|e| Exit(3, e.into()))?;
        return finish_cohort(collected, &mappings, &args);
    }
    for input in &args.input {
        if !input.exists() {
            return Err(Exit(3, anyhow::anyhow!("input {} does not exist", input.display())));
        }
    }
    let plan = imnm_fhir::fhir::source::plan(&args.input)
        .map_err(|e| Exit(3, anyhow::Error::new(e).context("listing inputs")))?;
    let total: u64 = plan
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let pb = progress_bar(total);
    let counter = pb.clone();
    tracing::info!(files = plan.files.len(), bytes = total, "reading inputs");
    let mut opts = pipeline::ReadOptions::default();
    if let Some(n) = args.threads {
        opts.threads = usize::from(n);
    }
    opts.prefilter = !args.no_prefilter;
    if let Some(n) = args.chunk_bytes {
        opts.chunk_bytes = n as usize;
    }
    if let Some(n) = args.spill_after_bytes {
        opts.spill_after = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let collected =
        pipeline::collect_with(&args.input, &mappings, opts, move |n| counter.inc(n)).map_err(|e| Exit(3, e.into()))?;
    pb.finish_and_clear();
    finish_cohort(collected, &mappings, &args)
}

fn finish_cohort(collected: pipeline::Collected, mappings: &MappingSet, args: &cli::CohortArgs) -> Result<u8, Exit> {
    let formats = pipeline::Formats {
        csv: args.format != "parquet",
        parquet: args.format != "csv",
        relevant: args.relevant,
    };
    let outcome =
        pipeline::build_and_write_as(collected, mappings, &args.out, formats).map_err(|e| Exit(4, e.into()))?;
    print!(
        "{}",
        imnm_fhir::cohort::table1::to_markdown(&outcome.cohort.table1(), &outcome.cohort.dictionary)
    );
    summary(&outcome, &args.out);
    let serious = outcome
        .issues
        .counts()
        .iter()
        .filter(|((s, _), _)| *s != Severity::Information)
        .map(|(_, n)| n)
        .sum::<u64>();
    Ok(if args.fail_on_issues && serious > 0 { 1 } else { 0 })
}

fn demo(out: &Path) -> Result<u8, Exit> {
    let mappings = load_mappings(None)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating {}", out.display()))
        .map_err(|e| Exit(4, e))?;
    let store_path = out.join("imnm-demo.db");
    let store = demo::demo_sync(&store_path, &mappings)?;
    let collected = pipeline::collect_store(&store, &store_path.display().to_string(), &mappings)
        .context("reading the demo store")
        .map_err(|e| Exit(3, e))?;
    let outcome = pipeline::build_and_write(collected, &mappings, out).map_err(|e| Exit(4, e.into()))?;
    println!("IMNM demo: 10 synthetic children in three EHR styles, synced from a mock EHR (no hospital needed)\n");
    print!(
        "{}",
        imnm_fhir::cohort::table1::to_markdown(&outcome.cohort.table1(), &outcome.cohort.dictionary)
    );
    summary(&outcome, out);
    eprintln!("store: {}", store_path.display());
    Ok(0)
}

/// The one-screen summary on stderr. Counts only: no identifiers.
fn summary(outcome: &RunOutcome, out: &Path) {
    let seen: u64 = outcome.stats.seen.values().sum();
    eprintln!();
    eprintln!(
        "read {} file(s), {} resource(s), {} parsed in full",
        outcome.stats.files, seen, outcome.stats.parsed
    );
    let per_type: Vec<String> = outcome.stats.seen.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("  {}", per_type.join(", "));
    eprintln!(
        "cases: {}   candidates: {}",
        outcome.cohort.rows.len(),
        outcome.cohort.candidates.len()
    );
    if outcome.issues.is_empty() {
        eprintln!("issues: none");
    } else {
        eprintln!(
            "issues: {} (details in {})",
            outcome.issues.total(),
            out.join("issues.ndjson").display()
        );
        for ((severity, code), n) in outcome.issues.counts() {
            eprintln!(
                "  {:<12} {:<22} {n}",
                format!("{severity:?}").to_lowercase(),
                serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
        }
        if outcome.issues.dropped() > 0 {
            eprintln!(
                "  ({} issues past the first {} were counted but not written: no temporary file could be written for them)",
                outcome.issues.dropped(),
                imnm_fhir::report::MAX_KEPT
            );
        }
    }
    eprintln!(
        "outputs in {}: {}",
        out.display(),
        imnm_fhir::cohort::write::FILES.join(", ")
    );
}
