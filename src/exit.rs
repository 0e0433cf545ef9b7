//! The `imnm` binary's exit codes, in one place: the named codes of README.md's
//! "Exit codes" table (a test checks the table lists exactly [`ALL`]), and
//! [`ExitCode`], which gives each library error its code. The binary picks a
//! code itself only for failures of its own (a file it reads or writes, an
//! argument), and then names it with these constants.

use crate::client::ClientError;
use crate::deid::DeidError;
use crate::export::ExportError;
use crate::fhir::parse::ParseError;
use crate::mapping::LoadErrors;
use crate::mock::MockError;
use crate::profile::{ProfileError, ProfileErrors};
use crate::push::PushError;
use crate::run_error::RunError;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::sync::SyncError;
use crate::Error;

/// Success (data issues, if any, are in `issues.ndjson`).
pub const OK: u8 = 0;
/// Data issues found with `--fail-on-issues`; `validate`: errors found;
/// `to-fhir`: a row, cell or case refused, or the Bundle not written; `push`: an entry refused.
pub const DATA_ISSUES: u8 = 1;
/// A usage or configuration error: bad arguments, mapping or profile files with
/// problems, an unusable key, config or `--since`.
pub const USAGE: u8 = 2;
/// An input cannot be read: a path that does not exist or cannot be listed, a
/// store, a key, `--patients` or `--config` file.
pub const INPUT: u8 = 3;
/// An output cannot be written (also `keygen` onto an existing file, the sync store or its log).
pub const OUTPUT: u8 = 4;
/// `export --verify` found a problem, or `merge` refused a bundle.
pub const VERIFY: u8 = 5;
/// `sync` or `push` failed: the server refused a request or never answered.
pub const REMOTE: u8 = 6;
/// `sync` interrupted by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// Every exit code with its name, in README.md's order.
pub const ALL: [(u8, &str); 8] = [
    (OK, "OK"),
    (DATA_ISSUES, "DATA_ISSUES"),
    (USAGE, "USAGE"),
    (INPUT, "INPUT"),
    (OUTPUT, "OUTPUT"),
    (VERIFY, "VERIFY"),
    (REMOTE, "REMOTE"),
    (INTERRUPTED, "INTERRUPTED"),
];

/// The exit code a failure ends `imnm` with.
pub trait ExitCode {
    /// One of this module's constants.
    fn exit_code(&self) -> u8;
}

impl ExitCode for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Run(e) => e.exit_code(),
            Error::Client(e) => e.exit_code(),
            Error::Sync(e) => e.exit_code(),
            Error::Deid(e) => e.exit_code(),
            Error::Export(e) => e.exit_code(),
            Error::Push(e) => e.exit_code(),
            Error::Profiles(e) => e.exit_code(),
            Error::Profile(e) => e.exit_code(),
            Error::Parse(e) => e.exit_code(),
            Error::Mock(e) => e.exit_code(),
            Error::Service(e) => e.exit_code(),
        }
    }
}

/// Mappings with problems are a configuration error; an unreadable input or
/// store is [`INPUT`]; an output or temporary file that fails is [`OUTPUT`].
impl ExitCode for RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Mappings(e) => e.exit_code(),
            RunError::Input { .. } | RunError::Store { .. } => INPUT,
            RunError::Spill { .. } | RunError::Output { .. } => OUTPUT,
        }
    }
}

/// Mapping files with problems: a configuration error.
impl ExitCode for LoadErrors {
    fn exit_code(&self) -> u8 {
        USAGE
    }
}

/// Profile files with problems: a configuration error.
impl ExitCode for ProfileErrors {
    fn exit_code(&self) -> u8 {
        USAGE
    }
}

/// A profile file with a problem: a configuration error.
impl ExitCode for ProfileError {
    fn exit_code(&self) -> u8 {
        USAGE
    }
}

/// A client that cannot be set up is a configuration error; a server that
/// refused or never answered is [`REMOTE`].
impl ExitCode for ClientError {
    fn exit_code(&self) -> u8 {
        if self.is_config() {
            USAGE
        } else {
            REMOTE
        }
    }
}

/// A bad `--since` is a usage error; anything else stopping a sync (the
/// server, the store, the mappings) is [`REMOTE`], as the README documents.
impl ExitCode for SyncError {
    fn exit_code(&self) -> u8 {
        if self.is_usage() {
            USAGE
        } else {
            REMOTE
        }
    }
}

/// The store read as an input.
impl ExitCode for StoreError {
    fn exit_code(&self) -> u8 {
        INPUT
    }
}

/// A key that cannot be made or written (`keygen`) is [`OUTPUT`]; an unusable
/// key or rule file is a configuration error.
impl ExitCode for DeidError {
    fn exit_code(&self) -> u8 {
        match self {
            DeidError::KeyExists { .. } | DeidError::KeyWrite { .. } | DeidError::Random { .. } => OUTPUT,
            DeidError::KeyRead { .. }
            | DeidError::KeyPermissions { .. }
            | DeidError::KeyFormat { .. }
            | DeidError::RulesSyntax { .. }
            | DeidError::NoDateShift
            | DeidError::Zip3 { .. }
            | DeidError::KeepWithoutId { .. } => USAGE,
        }
    }
}

impl ExitCode for ExportError {
    fn exit_code(&self) -> u8 {
        match self {
            ExportError::Deid(_) | ExportError::Manifest { .. } => USAGE,
            ExportError::Pipeline(e) => e.exit_code(),
            ExportError::Read { .. } => INPUT,
            ExportError::Output { .. } => OUTPUT,
            ExportError::Refused { .. } => VERIFY,
        }
    }
}

/// A push that stopped (the file is no transaction, or a slice was refused).
impl ExitCode for PushError {
    fn exit_code(&self) -> u8 {
        REMOTE
    }
}

/// A resource that does not parse where one must: an unreadable input.
impl ExitCode for ParseError {
    fn exit_code(&self) -> u8 {
        INPUT
    }
}

/// The mock's dataset cannot be loaded: an unreadable input.
impl ExitCode for MockError {
    fn exit_code(&self) -> u8 {
        INPUT
    }
}

/// A service refused by its config (an open non-loopback address, a store
/// URL) is a configuration error; an address or output it cannot use is [`OUTPUT`].
impl ExitCode for ServiceError {
    fn exit_code(&self) -> u8 {
        match self {
            ServiceError::OpenToNetwork { .. } => USAGE,
            ServiceError::Store { .. } => INPUT,
            ServiceError::Listen { .. } | ServiceError::Output { .. } | ServiceError::Server { .. } => OUTPUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes in README.md's "Exit codes" table, in order.
    fn readme_codes() -> Vec<u8> {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Exit codes\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        section
            .lines()
            .filter_map(|l| l.strip_prefix('|'))
            .filter_map(|l| l.split('|').next())
            .filter_map(|cell| cell.trim().parse().ok())
            .collect()
    }

    #[test]
    fn the_readme_table_lists_exactly_the_constants() {
        let codes: Vec<u8> = ALL.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            readme_codes(),
            codes,
            "README.md's exit-code table and exit::ALL differ"
        );
    }

    #[test]
    fn layer_errors_map_to_the_documented_codes() {
        let client = ClientError::TokenVar { var: "X".into() };
        assert_eq!(Error::from(client).exit_code(), USAGE);
        let refused = ClientError::Status {
            what: "Observation search".into(),
            status: 500,
            outcome: String::new(),
        };
        assert_eq!(Error::from(refused).exit_code(), REMOTE);
        let since = crate::sync::check_instant("yesterday").unwrap_err();
        assert_eq!(since.exit_code(), USAGE);
        let exists = DeidError::KeyExists { path: "k".into() };
        assert_eq!(exists.exit_code(), OUTPUT);
        let input = RunError::Input {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(ExportError::Pipeline(input).exit_code(), INPUT);
        let refused = ExportError::Refused {
            dir: "b".into(),
            reason: "r".into(),
        };
        assert_eq!(Error::from(refused).exit_code(), VERIFY);
    }
}
