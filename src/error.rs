//! The library's top-level error: failures that stop a run (as opposed to
//! data issues, which are [`crate::report::Issue`]s and never stop it).
//!
//! It sits at the top of the module graph. Each layer has its own error enum
//! ([`RunError`] for reading inputs and writing outputs, [`ClientError`], [`SyncError`],
//! [`crate::store::StoreError`], [`DeidError`], [`ExportError`], [`PushError`],
//! [`ProfileErrors`], [`LoadErrors`], [`ParseError`], [`MockError`], [`ServiceError`]);
//! [`Error`] wraps each with `From`, so `?` lifts any of them, and
//! [`crate::exit::ExitCode`] gives each its exit code.

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
use crate::sync::SyncError;

/// Any failure of the library: each layer's error, wrapped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading inputs or writing outputs failed, or the mappings have problems.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Talking to a FHIR server failed, or the client cannot be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A sync stopped.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// De-identification cannot start (key, rules), or a key cannot be made.
    #[error(transparent)]
    Deid(#[from] DeidError),
    /// An export, verify or merge cannot run (boxed: it is large).
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
    /// The registry service cannot start or stopped.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<LoadErrors> for Error {
    fn from(e: LoadErrors) -> Self {
        Error::Run(RunError::Mappings(e))
    }
}

impl From<ExportError> for Error {
    fn from(e: ExportError) -> Self {
        Error::Export(Box::new(e))
    }
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
