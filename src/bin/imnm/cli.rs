//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
  1  data issues found (only with --fail-on-issues)
  2  usage or configuration error (bad arguments, mapping files with problems)
  3  input unreadable (a path that does not exist or cannot be listed)
  4  output cannot be written";

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
    /// A Bundle (.json), NDJSON (.ndjson, .ndjson.gz) or a folder of them (Bulk Data layout). Repeatable.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Mapping folder (default: the mappings built into this binary).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Exit 1 when any data issue of severity error or warning was found.
    #[arg(long)]
    pub fail_on_issues: bool,
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
