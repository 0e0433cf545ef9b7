//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use imnm_fhir::store::StoreLocation;

/// imnm: IMNM case data between hospital EHRs and research registries over FHIR R4.
#[derive(Debug, Parser)]
#[command(name = "imnm", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Exit codes, shown in --help.
pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  cohort, facts, export: something could not be read (an error-level data issue; with --fail-on-issues warnings too), outputs written from the rest; validate, to-fhir: errors found
  2  usage or configuration error (bad arguments, mapping files with problems)
  3  input unreadable (a path that does not exist or cannot be listed)
  4  output cannot be written
  5  a study bundle does not verify, or merge refused a bundle
  6  sync or push failed (the server refused or never answered; the store keeps every page written, a push every slice committed; sync --config registry.toml: the first failing site's code, after syncing the others)";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole job on the built-in demo data (10 synthetic children) and print Table 1.
    #[command(after_help = "Example:\n  imnm demo --out demo-out")]
    Demo(DemoArgs),
    /// Build the IMNM cohort, candidates and Table 1 from FHIR files.
    #[command(
        after_help = "Examples:\n  imnm cohort --input export/ --out cohort-out\n  imnm cohort --input bundle.json --input extra.ndjson.gz --out out --fail-on-issues\n  imnm cohort --input export/ --out out --mappings my-mappings/"
    )]
    Cohort(CohortArgs),
    /// Work with the mapping files.
    #[command(subcommand)]
    Mappings(MappingsCommand),
    /// Write a new random site key (256-bit, hex, file mode 0600) for `export`.
    #[command(after_help = "Example:\n  imnm keygen --out site.key")]
    Keygen {
        /// The key file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a de-identified study bundle of the cohort, or check one with --verify.
    #[command(
        after_help = "Examples:\n  imnm export --input export/ --out bundle-a --site-key site.key --site A\n  imnm export --store imnm.db --out bundle-a --site-key site.key --site A\n  imnm export --verify bundle-a --source export/"
    )]
    Export(ExportArgs),
    /// Pool several sites' study bundles into one cohort.csv (with a site column) and Table 1.
    #[command(after_help = "Example:\n  imnm merge bundle-a bundle-b --out pooled")]
    Merge(MergeArgs),
    /// Crawl a FHIR R4 server's IMNM cohort into a local SQLite store.
    #[command(
        after_help = "Examples:\n  imnm sync --base-url https://ehr.example.org/fhir/R4 --store imnm.db\n  IMNM_TOKEN=... imnm sync --base-url URL --auth bearer --patients ids.txt --concurrency 8\n  imnm sync --base-url URL --auth smart --client-id my-client --key client.pem --kid key-1\n  imnm sync --base-url URL --site hospital-a --store registry.db\n  imnm sync --config registry.toml --parallel-sites 2\n  imnm cohort --store imnm.db --out cohort-out"
    )]
    Sync(SyncArgs),
    /// Serve a dataset as a mock FHIR R4 EHR on 127.0.0.1 until Ctrl-C (for testing clients).
    #[command(
        after_help = "Examples:\n  imnm mock-ehr --data examples/demo-cohort/bundle.json --vendor epic --port 8080\n  imnm mock-ehr --data export/ --port 8080 --faults 429:0.1,503:0.05,seed=7 --journal journal.ndjson\n  imnm mock-ehr --data export/ --port 8080 --auth smart --jwks jwks.json --client-id my-client"
    )]
    MockEhr(MockEhrArgs),
    /// Validate FHIR R4 resources, Bundles or NDJSON against the IMNM profiles (OperationOutcome out).
    #[command(
        after_help = "Examples:\n  imnm validate bundle.json\n  imnm validate export/ --out outcome.json\n\nExit 1 when any error was found."
    )]
    Validate(ValidateArgs),
    /// Turn a case CSV (the columns of cohort.csv) into a FHIR transaction Bundle (validated before it is written).
    #[command(
        after_help = "Example:\n  imnm to-fhir --cases cases.csv --out bundle.json --site-system https://registry.example.org/fhir/case-id\n\nExit 1 when any row or cell was refused (the rest is converted)."
    )]
    ToFhir(ToFhirArgs),
    /// Work with a registry config (the registry's store and its sites).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Post a transaction Bundle (from to-fhir) to a FHIR server and print each entry's outcome.
    #[command(
        after_help = "Examples:\n  imnm push bundle.json --base-url https://fhir.example.org/R4\n  IMNM_TOKEN=... imnm push bundle.json --base-url URL --auth bearer --batch-size 8"
    )]
    Push(PushArgs),
    /// Run the registry service: sync every site of a registry config on its schedule, serve the API and page.
    #[command(
        after_help = "Examples:\n  imnm serve --config registry.toml\n  imnm serve --config registry.toml --listen 127.0.0.1:9090 --out registry-out\n  printf %s \"$TOKEN\" | imnm serve hash-token\n\nStops on SIGTERM or Ctrl-C (exit 0); a non-loopback --listen needs [[serve.token]] in the config (else exit 2)."
    )]
    Serve(ServeArgs),
    /// Write a site's (or shard's) facts as versioned Parquet, for SQL at the centre (docs/facts.md).
    #[command(
        after_help = "Examples:\n  imnm facts --input export/ --out facts/ --site hospital-a --site-key site.key\n  imnm facts --input a=export-a/ --input b=export-b/ --out facts/\n  imnm facts --input export/ --out facts/ --site hospital-a --site-key site.key --link-key link.key --link-identifier https://nhs.example/nhs-number"
    )]
    Facts(crate::facts::FactsArgs),
    /// Print the SQL (Spark or DuckDB) that turns facts into the cohort and Table 1 (docs/facts.md).
    #[command(after_help = "Example:\n  imnm sql --dialect duckdb > cohort.sql")]
    Sql(crate::facts::SqlArgs),
}

/// `imnm serve`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    /// `hash-token`.
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// The registry config (TOML, with [[site]] tables).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The address to listen on (default: the config's [serve] listen, else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where the cohort outputs are rebuilt (default: registry-out next to the store).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The audit log, JSON lines (default: OUT/audit.ndjson).
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Mapping folder (default: the built-in mappings).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
}

/// `imnm serve …`.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Print the SHA-256 of a token read from stdin (what [[serve.token]] sha256 holds).
    HashToken,
}

/// `imnm to-fhir`.
#[derive(Debug, Args)]
pub struct ToFhirArgs {
    /// The case CSV, with a header of cohort.csv column names.
    #[arg(long)]
    pub cases: PathBuf,
    /// The transaction Bundle to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Identifier system of the site's case ids (Patient.identifier; other identifiers add /column).
    #[arg(long, default_value = imnm_fhir::to_fhir::DEFAULT_SITE_SYSTEM)]
    pub site_system: String,
    /// Mapping folder (default: the built-in mappings).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Profile folder (default: the built-in profiles).
    #[arg(long)]
    pub profiles: Option<PathBuf>,
}

/// `imnm validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Bundles, resources (.json), NDJSON (.ndjson, .ndjson.gz) or folders of them.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Write the OperationOutcome here (default: stdout).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Profile folder (default: the profiles built into this binary).
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// Mapping folder whose value sets (and data dictionary) the built-in
    /// profiles' ValueSets are generated from (default: the built-in mappings).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
}

/// `imnm export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Input Bundle, NDJSON or folder (as for `cohort`). Repeatable.
    #[arg(long, short, num_args = 1.., required_unless_present_any = ["verify", "store"], conflicts_with = "store")]
    pub input: Vec<PathBuf>,
    /// Read a sync store (from `imnm sync`) instead of files: a SQLite file or a
    /// postgres://user@host:port/db URL.
    #[arg(long, value_parser = store_location)]
    pub store: Option<StoreLocation>,
    /// The bundle folder to write (must be absent or empty).
    #[arg(long, short, required_unless_present = "verify")]
    pub out: Option<PathBuf>,
    /// The site key file (from `imnm keygen`; must not be readable by group or others).
    #[arg(long, required_unless_present = "verify")]
    pub site_key: Option<PathBuf>,
    /// De-identification profile.
    #[arg(long, value_enum, default_value_t = imnm_fhir::deid::Profile::SafeHarbor)]
    pub profile: imnm_fhir::deid::Profile,
    /// Table 1 counts from 1 to this minus 1 are suppressed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cell: u64,
    /// Site name written to the manifest and the merged `site` column.
    #[arg(long, default_value = "site")]
    pub site: String,
    /// Mapping folder (default: the mappings built into this binary).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Threads reading the input and de-identifying (default: the available cores).
    /// Any number writes the same bundle.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Write the data issues of reading the input (as `cohort`'s issues.ndjson) to this file;
    /// never into the bundle, which is shared. Without it only their counts are printed.
    #[arg(long)]
    pub issues: Option<PathBuf>,
    /// Verify the study bundle in this folder instead of exporting.
    #[arg(long, conflicts_with_all = ["input", "store", "out", "site_key", "issues"])]
    pub verify: Option<PathBuf>,
    /// With --verify: the original input, to scan for its identifiers, names and birth dates.
    #[arg(long, requires = "verify", num_args = 1..)]
    pub source: Vec<PathBuf>,
}

/// `imnm merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Study bundle folders, one per site.
    #[arg(required = true, num_args = 2..)]
    pub dirs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Pooled Table 1 counts from 1 to this minus 1 are suppressed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cell: u64,
    /// Mapping folder the bundles were made with (default: the mappings built into this binary).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
}

/// `imnm demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the outputs.
    #[arg(long, default_value = "imnm-demo-out")]
    pub out: PathBuf,
}

/// `imnm cohort`.
#[derive(Debug, Args)]
pub struct CohortArgs {
    /// A Bundle (.json), NDJSON (.ndjson, .ndjson.gz) or a folder of them (Bulk Data layout), or
    /// `SITE=PATH` to name the registry site it comes from (`[a-z0-9-]`; a plain path is site
    /// `local`). Repeatable; each site is read on its own.
    #[arg(long, short, required_unless_present_any = ["store", "config"], conflicts_with_all = ["store", "config"], num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Read a sync store (from `imnm sync`) instead of files: every site it holds.
    /// A SQLite file or a postgres://user@host:port/db URL.
    #[arg(long, conflicts_with = "config", value_parser = store_location)]
    pub store: Option<StoreLocation>,
    /// A registry config (see `imnm registry check`): read its store, every site, and link by its
    /// `[registry] link_identifiers` (besides any --link-identifier).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// An identifier system (URI) that links one child across sites: patients of different sites
    /// with the same identifier of this system are one case, site `a+b` (repeatable; default none:
    /// nothing is linked). Identifier values are never written anywhere.
    #[arg(long, value_name = "SYSTEM")]
    pub link_identifier: Vec<String>,
    /// With --store: only these sites (repeatable; default every site in the store).
    #[arg(long, requires = "store")]
    pub site: Vec<String>,
    /// Output folder (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Mapping folder (default: the mappings built into this binary).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Exit 1 on warnings too (error-level data issues always give exit 1).
    #[arg(long)]
    pub fail_on_issues: bool,
    /// Table format of cohort and candidates: csv, parquet (adds facts.parquet) or both.
    #[arg(long, default_value = "csv", value_parser = ["csv", "parquet", "both"])]
    pub format: String,
    /// Also write relevant.ndjson: every resource a rule used (run per shard, then one run over these files).
    #[arg(long)]
    pub relevant: bool,
    /// With --store or --config: do not write the cohort tables into the store's database
    /// (by default a build of every site replaces them: schema imnm_cohort in PostgreSQL,
    /// tables imnm_cohort_* in SQLite).
    #[arg(long)]
    pub no_publish: bool,
    /// Threads reading the input, files or a store, and writing sources.ndjson (default: the
    /// available cores). Any number gives the same outputs.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Give every line the full narrow peek (serde) instead of skipping, after a one-pass syntax
    /// and shape check, lines whose bytes show no rule uses them. Same outputs, slower; for
    /// comparison and troubleshooting.
    #[arg(long)]
    pub no_prefilter: bool,
    /// Accepted for compatibility: the prefilter is on by default and checks syntax.
    #[arg(long, hide = true, conflicts_with = "no_prefilter")]
    pub prefilter: bool,
    /// Size in bytes of the blocks a plain NDJSON file (or a store's rows) is cut into for the
    /// threads (tests and tuning).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_bytes: Option<u32>,
    /// About how many bytes of relevant resources' raw JSON, and as many of patients' facts, of
    /// cohort rows and of each sort of resource keys, stay in memory before the rest goes to
    /// temporary files in TMPDIR (tests and tuning; default 2 MiB).
    #[arg(long, hide = true)]
    pub spill_after_bytes: Option<u64>,
}

/// `imnm mappings …`.
#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Check mapping files and report every problem at once (default: the built-in ones).
    Check {
        /// The mapping folder.
        dir: Option<PathBuf>,
    },
}

/// `imnm registry …`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check a registry config and report every problem at once; list its sites when it is good.
    #[command(after_help = "Example:\n  imnm registry check registry.toml\n\nExit 2 when the file has problems.")]
    Check {
        /// The registry config (TOML).
        file: PathBuf,
    },
}

/// `imnm mock-ehr`.
#[derive(Debug, Args)]
pub struct MockEhrArgs {
    /// A Bundle (.json), NDJSON or a folder of them (as for `cohort --input`). Repeatable.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Which server to behave like: epic, cerner, hapi or generic.
    #[arg(long, default_value = "generic")]
    pub vendor: String,
    /// The port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Faults to inject, e.g. 429:0.1,503:0.05,truncate:0.05,drop:0.02,latency:20ms,token-expiry:50,repeat-last:0.1,seed=7
    #[arg(long)]
    pub faults: Option<String>,
    /// Authorization: none, or smart (SMART Backend Services; needs --jwks and --client-id).
    #[arg(long, default_value = "none")]
    pub auth: String,
    /// The client's public keys (a JWK Set file), for --auth smart.
    #[arg(long)]
    pub jwks: Option<PathBuf>,
    /// The registered client id, for --auth smart.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Write the request journal here as NDJSON when stopped (never holds tokens).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Retry-After seconds for 429, 503 and bulk status polls.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
}

/// Authorization options of `push` (`sync` has the same ones in [`SyncSettings`]).
#[derive(Debug, Default, Clone, Args)]
pub struct AuthArgs {
    /// Authorization: none (default), bearer (token from the IMNM_TOKEN environment variable), or
    /// smart (SMART Backend Services; needs --client-id and --key).
    #[arg(long)]
    pub auth: Option<String>,
    /// The registered client id, for --auth smart.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The private key for --auth smart: PEM (RSA for RS384, EC P-384 for ES384) or a JWKS JSON
    /// file with private members (the key is picked by --kid, else the first RS384/ES384 one).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The key id sent in the assertion header (and picked from a JWKS), for --auth smart.
    #[arg(long)]
    pub kid: Option<String>,
    /// Scopes asked for, for --auth smart (default v2 `system/*.rs`; push needs write scopes,
    /// e.g. `system/*.cruds`, or v1 `system/*.write`).
    #[arg(long)]
    pub scope: Option<String>,
}

/// `imnm push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The transaction Bundle (from `imnm to-fhir`).
    pub bundle: PathBuf,
    /// The FHIR R4 base URL.
    #[arg(long)]
    pub base_url: String,
    /// How requests authenticate.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Entries per transaction (0: all in one). Later slices refer to earlier ones by the locations the server returned.
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
}

/// `imnm sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A TOML file with any of the settings below (keys as the flags, e.g. `base-url = "…"`);
    /// flags given on the command line win; relative paths in it are relative to the file.
    /// A registry config (with `[[site]]` tables, see `imnm registry check`) instead syncs each
    /// of its sites into the config's store.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The site id the server's data is kept under in the store (a-z, 0-9, -; up to 32
    /// characters). Default: derived from the base URL's host and port. With a registry
    /// config: a site to sync (repeatable; default every site).
    #[arg(long = "site", value_name = "ID")]
    pub site: Vec<String>,
    /// With a registry config: how many sites are synced at once. Default 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64), conflicts_with = "worker")]
    pub parallel_sites: Option<u64>,
    /// With a registry config: run as one of several sync workers sharing its store
    /// (several processes or machines): take each due site no other worker holds, sync
    /// it under a lease, and exit when none is left. A site is due when it never
    /// finished, or its last run ended `every` ago (a failed one: min(every, 15 min)).
    #[arg(long, requires = "config")]
    pub worker: bool,
    /// With --worker: how long a lease lasts without renewal (renewed every third of it
    /// while the site syncs); a killed worker's site is taken over this long after.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_ttl: u64,
    /// The settings (each may come from --config instead).
    #[command(flatten)]
    pub settings: SyncSettings,
}

/// `imnm sync` settings, from flags or a `--config` TOML file.
#[derive(Debug, Default, Clone, Args, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyncSettings {
    /// The FHIR R4 base URL (required).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Authorization: none (default), bearer (token from the IMNM_TOKEN environment variable), or
    /// smart (SMART Backend Services; needs --client-id and --key).
    #[arg(long)]
    pub auth: Option<String>,
    /// The registered client id, for --auth smart.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The private key for --auth smart: PEM (RSA for RS384, EC P-384 for ES384) or a JWKS JSON
    /// file with private members (the key is picked by --kid, else the first RS384/ES384 one).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The key id sent in the assertion header (and picked from a JWKS), for --auth smart.
    #[arg(long)]
    pub kid: Option<String>,
    /// Scopes asked for, for --auth smart (v2 `system/*.rs`, the default, or v1 `system/*.read`).
    #[arg(long)]
    pub scope: Option<String>,
    /// The store to write: a SQLite file (created if missing; default imnm.db) or a
    /// postgres://user@host:port/db URL (password from PGPASSWORD, never in the URL of a script).
    #[arg(long, value_parser = store_location)]
    pub store: Option<StoreLocation>,
    /// Patients crawled / files downloaded at once (also the most requests in flight). Default 4.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: Option<u64>,
    /// A file of Patient ids (one a line) to crawl instead of searching the cohort.
    #[arg(long, conflicts_with = "group")]
    pub patients: Option<PathBuf>,
    /// The cohort is this Group's members (crawl: the Group is read; bulk: Group/ID/$export).
    #[arg(long)]
    pub group: Option<String>,
    /// crawl (searches per patient, the default) or bulk (Bulk Data $export).
    #[arg(long, value_enum)]
    pub mode: Option<SyncMode>,
    /// With --mode bulk and no --group: a system-level /$export instead of /Patient/$export.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub system: Option<bool>,
    /// Only what changed: `auto` (since the last successful run of this server) or a FHIR instant.
    #[arg(long)]
    pub since: Option<String>,
    /// How changes are asked for: last-updated (`_lastUpdated` / `_since`, the default) or created
    /// (each type's clinical date parameter, as for types without `_lastUpdated` such as Epic's).
    #[arg(long, value_enum)]
    pub since_mode: Option<SinceModeArg>,
    /// Mapping folder for the cohort codes (default: the built-in mappings).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// The run's log (NDJSON: requests, retries, counts; no identifiers, no tokens).
    /// Default `log.ndjson` next to the store.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Sync the site even though the store last synced it from another base URL (the hospital
    /// moved its FHIR endpoint). Without it such a run is refused (exit 2), so two hospitals
    /// are never mixed under one site id.
    #[arg(long)]
    #[serde(default)]
    pub new_base_url: bool,
}

impl SyncSettings {
    /// The authorization settings, as `push` takes them.
    pub fn auth_args(&self) -> AuthArgs {
        AuthArgs {
            auth: self.auth.clone(),
            client_id: self.client_id.clone(),
            key: self.key.clone(),
            kid: self.kid.clone(),
            scope: self.scope.clone(),
        }
    }

    /// `self`, with each setting it lacks taken from `other`.
    pub fn or(self, other: SyncSettings) -> SyncSettings {
        SyncSettings {
            base_url: self.base_url.or(other.base_url),
            auth: self.auth.or(other.auth),
            client_id: self.client_id.or(other.client_id),
            key: self.key.or(other.key),
            kid: self.kid.or(other.kid),
            scope: self.scope.or(other.scope),
            store: self.store.or(other.store),
            concurrency: self.concurrency.or(other.concurrency),
            patients: self.patients.or(other.patients),
            group: self.group.or(other.group),
            mode: self.mode.or(other.mode),
            system: self.system.or(other.system),
            since: self.since.or(other.since),
            since_mode: self.since_mode.or(other.since_mode),
            mappings: self.mappings.or(other.mappings),
            log: self.log.or(other.log),
            new_base_url: self.new_base_url || other.new_base_url,
        }
    }

    /// Paths made relative to `dir` (for settings read from a file in `dir`).
    pub fn relative_to(mut self, dir: &std::path::Path) -> SyncSettings {
        for p in [&mut self.key, &mut self.patients, &mut self.mappings, &mut self.log]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(StoreLocation::Path(p)) = &mut self.store {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        self
    }
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Searches per patient.
    Crawl,
    /// Bulk Data $export.
    Bulk,
}

/// `--since-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinceModeArg {
    /// `_lastUpdated` (crawl) / `_since` (bulk).
    LastUpdated,
    /// Clinical date parameters (Epic).
    Created,
}

/// `--store`: a SQLite file path or a database URL.
fn store_location(text: &str) -> Result<StoreLocation, String> {
    if text.trim().is_empty() {
        return Err("empty".into());
    }
    Ok(StoreLocation::parse(text))
}

#[cfg(test)]
mod tests {
    /// `--help` lists only codes that `imnm_fhir::exit` names.
    #[test]
    fn help_lists_named_exit_codes() {
        let named: Vec<u8> = imnm_fhir::exit::ALL.iter().map(|(c, _)| *c).collect();
        let listed: Vec<u8> = super::EXIT_CODES
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(
            listed.len(),
            super::EXIT_CODES.lines().count() - 1,
            "every line starts with a code"
        );
        assert!(
            listed.iter().all(|c| named.contains(c)),
            "{listed:?} not all in {named:?}"
        );
    }
}
