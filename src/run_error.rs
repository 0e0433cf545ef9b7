//! The error of reading inputs and writing a run's outputs (files, the store,
//! temporary files, the mappings), shared by the pipeline, the cohort and the
//! export layers. It sits low in the module graph so they can all return it;
//! the top-level [`crate::Error`] wraps it.

use std::path::PathBuf;

use crate::mapping::LoadErrors;
use crate::store::StoreError;

/// A failure that stops reading inputs or writing a run's outputs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    #[error("cannot read store {store}: {source}")]
    Store {
        /// The store (shown without password or query).
        store: crate::store::StoreLocation,
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
}

/// A failure while data streams from temporary files into an output: the
/// output cannot be written ([`RunError::Output`] and the like), or a temporary
/// file cannot be read back (an `io::Error` from `Texts`, `Patients` or
/// `Issues`, which converts to [`RunError::Spill`]).
#[derive(Debug)]
pub(crate) enum Streaming {
    /// Writing the output failed.
    Out(RunError),
    /// Reading a temporary file back failed.
    Spill(std::io::Error),
}

impl From<std::io::Error> for Streaming {
    fn from(source: std::io::Error) -> Self {
        Streaming::Spill(source)
    }
}

impl From<Streaming> for RunError {
    fn from(e: Streaming) -> Self {
        match e {
            Streaming::Out(e) => e,
            Streaming::Spill(source) => RunError::Spill { source },
        }
    }
}

/// `Result` with [`RunError`].
pub type Result<T, E = RunError> = std::result::Result<T, E>;
