//! The SHA-256 of a bundle's files, taken as they are written: the manifest
//! lists them without reading the files back. This module owns the hashing
//! writer and the list; which files a bundle has is the callers'.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// A writer that hashes what it writes.
pub(super) struct Hashed<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashed<W> {
    /// Hashes what goes to `inner`.
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
        }
    }

    /// The SHA-256 (hex) of everything written.
    pub(super) fn finish(self) -> String {
        crate::deid::key::to_hex(&self.hash.finalize())
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 (hex) of the files written so far, by `/`-separated path relative
/// to the bundle folder.
#[derive(Debug, Default)]
pub(super) struct Hashes(BTreeMap<String, String>);

impl Hashes {
    /// Keeps the hash of the file at `path` below `dir`.
    pub(super) fn insert(&mut self, dir: &Path, path: &Path, hash: String) {
        if let Ok(rel) = path.strip_prefix(dir) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            self.0.insert(parts.join("/"), hash);
        }
    }

    /// The hash of `rel`, taken out of the list.
    pub(super) fn take(&mut self, rel: &str) -> Option<String> {
        self.0.remove(rel)
    }

    /// The list.
    #[cfg(test)]
    pub(super) fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}
