//! The `imnm` command-line tool. See `imnm --help` and README.md.

mod casefhir;
mod cli;
mod demo;
mod facts;
mod mock_ehr;
mod registry;
mod serve;
mod share;
mod sync;
mod sync_sites;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use imnm_fhir::cohort::{self, RunOutcome};
use imnm_fhir::collect::Collected;
use imnm_fhir::exit;
use imnm_fhir::mapping::MappingSet;
use imnm_fhir::pipeline;
use imnm_fhir::report::Severity;
use imnm_fhir::store::StoreLocation;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cli::{Cli, Command, MappingsCommand, RegistryCommand};

// mimalloc: reading an export and syncing allocate many small objects (parsed resources,
// JSON trees); the system allocator was a quarter of a sync's instructions (callgrind).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A failure with its exit code (one of [`imnm_fhir::exit`]'s constants).
pub(crate) struct Exit {
    code: u8,
    error: anyhow::Error,
}

impl Exit {
    /// A failure of the binary's own (a file it reads or writes, an argument) with the code the README gives it.
    pub(crate) fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Exit {
            code,
            error: error.into(),
        }
    }

    /// The same failure with `context` before its message.
    pub(crate) fn context(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        Exit {
            code: self.code,
            error: self.error.context(context),
        }
    }
}

/// A library error exits with the code [`exit::ExitCode`] gives it.
impl<E> From<E> for Exit
where
    E: exit::ExitCode + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        Exit {
            code: e.exit_code(),
            error: e.into(),
        }
    }
}

/// `.or_exit(code)` on the binary's own fallible steps (usually after `.context(…)`).
pub(crate) trait OrExit<T> {
    /// The error as an [`Exit`] with `code`.
    fn or_exit(self, code: u8) -> Result<T, Exit>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8) -> Result<T, Exit> {
        self.map_err(|e| Exit::new(code, e))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Exit { code, error }) => {
            eprintln!("error: {}", message(&error));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes joined by `: ` (as `{:#}` does), leaving out a
/// cause whose text the message already holds (library errors name their
/// source in their own message and also keep it as `source()`).
fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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
        Command::Serve(args) => serve::run(args),
        Command::Facts(args) => facts::facts(args),
        Command::Sql(args) => facts::sql(args),
    }
}

pub(crate) fn load_mappings(dir: Option<&Path>) -> Result<MappingSet, Exit> {
    match dir {
        Some(d) => {
            MappingSet::load_dir(d).map_err(|e| Exit::from(e).context(format!("loading mappings from {}", d.display())))
        }
        None => MappingSet::builtin().map_err(|e| Exit::from(e).context("loading the built-in mappings")),
    }
}

/// The mappings (`dir`, else the built-in ones) with a registry config's
/// `concept_maps`, loaded in the same two phases as one set.
pub(crate) fn load_registry_mappings(
    dir: Option<&Path>,
    config: &imnm_fhir::registry::RegistryConfig,
) -> Result<MappingSet, Exit> {
    if config.concept_maps.is_empty() {
        return load_mappings(dir);
    }
    let what = match dir {
        Some(d) => format!("loading mappings from {} with the registry's concept_maps", d.display()),
        None => "loading the built-in mappings with the registry's concept_maps".to_string(),
    };
    MappingSet::load_with_maps(dir, &config.concept_maps).map_err(|e| Exit::from(e).context(what))
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
    let phrases: usize = set.text.rules.iter().map(|r| r.triggers.len()).sum();
    println!(
        "text: {} rules ({} phrases) from {} report and note kinds",
        set.text.rules.len(),
        phrases,
        set.text.sources.len()
    );
    for (file, version) in &set.versions {
        println!("  {file} v{version}");
    }
    let maps = &set.concept_maps;
    if !maps.files.is_empty() {
        println!(
            "{} ConceptMap(s): {} local codes read as value set codes, {} targets skipped by equivalence",
            maps.files.len(),
            maps.len(),
            maps.skipped
        );
        for (file, url) in &maps.files {
            println!("  {file} ({url})");
        }
    }
    Ok(exit::OK)
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
    let (store, link, mappings) = cohort_config(&args)?;
    let opts = read_options(&args);
    if let Some(path) = &store {
        let mut sites = pipeline::collect_store_at_with(path, &mappings, opts)?;
        if !args.site.is_empty() {
            let held: Vec<String> = sites.iter().map(|c| c.site.clone()).collect();
            if let Some(missing) = args.site.iter().find(|s| !held.contains(s)) {
                let e = anyhow::anyhow!("the store holds no site {missing} (it holds: {})", held.join(", "));
                return Err(Exit::new(exit::USAGE, e));
            }
            sites.retain(|c| args.site.contains(&c.site));
        }
        let code = finish_cohort(sites, &mappings, &args, &link)?;
        if args.site.is_empty() && !args.no_publish {
            publish(path, &args.out)?;
        }
        return Ok(code);
    }
    let groups = imnm_fhir::collect::inputs_by_site(&args.input);
    let mut total = 0;
    for (_, paths) in &groups {
        for input in paths {
            if !input.exists() {
                let e = anyhow::anyhow!("input {} does not exist", input.display());
                return Err(Exit::new(exit::INPUT, e));
            }
        }
        let plan = imnm_fhir::fhir::source::plan(paths)
            .context("listing inputs")
            .or_exit(exit::INPUT)?;
        let bytes = plan
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len());
        total += bytes.sum::<u64>();
    }
    let pb = progress_bar(total);
    tracing::info!(sites = groups.len(), bytes = total, "reading inputs");
    let mut sites = Vec::with_capacity(groups.len());
    for (site, paths) in groups {
        let counter = pb.clone();
        let mut collected = pipeline::collect_with(&paths, &mappings, opts, move |n| counter.inc(n))?;
        collected.site = site;
        sites.push(collected);
    }
    pb.finish_and_clear();
    finish_cohort(sites, &mappings, &args, &link)
}

/// How `imnm cohort` reads its inputs (files or a store): threads, block size, prefilter, memory limit.
fn read_options(args: &cli::CohortArgs) -> pipeline::ReadOptions {
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
    opts
}

/// The store to read (`--store`, or `--config`'s), the identifier systems
/// that link sites (`--link-identifier`, then `--config`'s `link_identifiers`)
/// and the mappings (`--mappings`, with `--config`'s `concept_maps`).
fn cohort_config(args: &cli::CohortArgs) -> Result<(Option<StoreLocation>, Vec<String>, MappingSet), Exit> {
    let mut link = args.link_identifier.clone();
    let Some(file) = &args.config else {
        return Ok((args.store.clone(), link, load_mappings(args.mappings.as_deref())?));
    };
    let config = registry::load(file)?;
    let mappings = load_registry_mappings(args.mappings.as_deref(), &config)?;
    for system in config.link_identifiers {
        if !link.contains(&system) {
            link.push(system);
        }
    }
    Ok((Some(config.store), link, mappings))
}

/// Writes the cohort outputs in `out` into the store's database as tables
/// (`imnm_fhir::cohort::publish`), for researchers' SQL.
fn publish(at: &StoreLocation, out: &Path) -> Result<(), Exit> {
    let tables = cohort::publish::tables_of(out)?;
    let mut store = at
        .open()
        .with_context(|| format!("opening store {at}"))
        .or_exit(exit::OUTPUT)?;
    store
        .replace_tables(&tables)
        .with_context(|| format!("publishing the cohort tables into store {at}"))
        .or_exit(exit::OUTPUT)?;
    let place = match at {
        StoreLocation::Path(_) => "tables imnm_cohort_*",
        StoreLocation::Url(_) => "schema imnm_cohort",
    };
    eprintln!("published {} table(s) into store {at} ({place})", tables.len());
    Ok(())
}

fn finish_cohort(
    sites: Vec<Collected>,
    mappings: &MappingSet,
    args: &cli::CohortArgs,
    link: &[String],
) -> Result<u8, Exit> {
    let formats = cohort::Formats {
        csv: args.format != "parquet",
        parquet: args.format != "csv",
        relevant: args.relevant,
    };
    let outcome = cohort::build_and_write_linked(sites, mappings, &args.out, formats, link)?;
    print!(
        "{}",
        imnm_fhir::cohort::table1::to_markdown(&outcome.cohort.table1(), &outcome.cohort.dictionary)
    );
    summary(&outcome, &args.out);
    Ok(data_exit(&outcome.issues, args.fail_on_issues))
}

/// The exit code of a run that wrote its outputs: [`exit::DATA_ISSUES`] when
/// something could not be read (an error-level issue), or with `strict` any
/// warning too; said on stderr.
pub(crate) fn data_exit(issues: &imnm_fhir::report::Issues, strict: bool) -> u8 {
    let count = |severity: Severity| {
        issues
            .counts()
            .iter()
            .filter(|((s, _), _)| *s == severity)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if errors > 0 || (strict && warnings > 0) {
        eprintln!(
            "exit {}: {errors} error-level issue(s){} (outputs written from what could be read)",
            exit::DATA_ISSUES,
            if strict {
                format!(", {warnings} warning(s)")
            } else {
                String::new()
            }
        );
        exit::DATA_ISSUES
    } else {
        exit::OK
    }
}

fn demo(out: &Path) -> Result<u8, Exit> {
    let mappings = load_mappings(None)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating {}", out.display()))
        .or_exit(exit::OUTPUT)?;
    let store_path = out.join("imnm-demo.db");
    let store = demo::demo_sync(&store_path, &mappings)?;
    let sites = pipeline::collect_store_sites(&store, &store_path.display().to_string(), &mappings)
        .map_err(|e| Exit::from(e).context("reading the demo store"))?;
    let outcome = cohort::build_and_write_sites(sites, &mappings, out, cohort::Formats::default())?;
    println!("IMNM demo: 10 synthetic children in three EHR styles, synced from a mock EHR (no hospital needed)\n");
    print!(
        "{}",
        imnm_fhir::cohort::table1::to_markdown(&outcome.cohort.table1(), &outcome.cohort.dictionary)
    );
    summary(&outcome, out);
    eprintln!("store: {}", store_path.display());
    Ok(exit::OK)
}

/// One stderr line per (severity, code) of `issues`, with its count.
pub(crate) fn print_issue_counts(issues: &imnm_fhir::report::Issues) {
    for ((severity, code), n) in issues.counts() {
        eprintln!(
            "  {:<12} {:<22} {n}",
            format!("{severity:?}").to_lowercase(),
            serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
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
        print_issue_counts(&outcome.issues);
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
