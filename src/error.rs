//! The library's top-level error: failures that stop a run (as opposed to
//! data issues, which are [`crate::report::Issue`]s and never stop it).
//!
//! Each layer has its own error enum ([`ClientError`], [`SyncError`],
//! [`StoreError`], [`DeidError`], [`ExportError`], [`PushError`],
//! [`ProfileErrors`], [`LoadErrors`], [`ParseError`], [`MockError`]);
//! [`Error`] wraps each with `From`, so `?` lifts any of them, and
//! [`crate::exit::ExitCode`] gives each its exit code.

use std::path::PathBuf;

use crate::client::ClientError;
use crate::deid::DeidError;
use crate::export::ExportError;
use crate::fhir::parse::ParseError;
use crate::mapping::LoadErrors;
use crate::mock::MockError;
use crate::profile::{ProfileError, ProfileErrors};
use crate::push::PushError;
use crate::store::StoreError;
use crate::sync::SyncError;

/// A run-stopping failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mapping files have problems (all are listed).
    #[error(transparent)]
    Mappings(#[from] LoadErrors),
    /// An input path cannot be opened or listed.
    #[error("cannot read input {path}: {source}")]
    Input {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A sync store cannot be opened or read.
    #[error("cannot read store {path}: {source}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// A temporary file of a large run (texts or patients moved off the
    /// heap) cannot be read back.
    #[error("cannot read back a temporary file in {}: {source}", std::env::temp_dir().display())]
    Spill {
        /// Why.
        source: std::io::Error,
    },
    /// An output cannot be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Talking to a FHIR server failed, or the client cannot be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A sync stopped.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// De-identification cannot start (key, rules), or a key cannot be made.
    #[error(transparent)]
    Deid(#[from] DeidError),
    /// An export, verify or merge cannot run (boxed: it can hold an [`Error`]).
    #[error(transparent)]
    Export(Box<ExportError>),
    /// A push stopped.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The profile files have problems (all are listed).
    #[error(transparent)]
    Profiles(#[from] ProfileErrors),
    /// A profile file has a problem.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A resource that is not valid FHIR R4 JSON where one must be.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The mock EHR cannot start.
    #[error(transparent)]
    Mock(#[from] MockError),
}

impl From<ExportError> for Error {
    fn from(e: ExportError) -> Self {
        Error::Export(Box::new(e))
    }
}

/// A failure while data streams from temporary files into an output: the
/// output cannot be written ([`Error::Output`] and the like), or a temporary
/// file cannot be read back (an `io::Error` from `Texts`, `Patients` or
/// `Issues`, which converts to [`Error::Spill`]).
#[derive(Debug)]
pub(crate) enum Streaming {
    /// Writing the output failed.
    Out(Error),
    /// Reading a temporary file back failed.
    Spill(std::io::Error),
}

impl From<std::io::Error> for Streaming {
    fn from(source: std::io::Error) -> Self {
        Streaming::Spill(source)
    }
}

impl From<Streaming> for Error {
    fn from(e: Streaming) -> Self {
        match e {
            Streaming::Out(e) => e,
            Streaming::Spill(source) => Error::Spill { source },
        }
    }
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
