//! The audit log: one JSON line per API call that returns patient-level data
//! (`time`, `token`, `route`, `site`, `patients`). It names the route by its
//! template (`/api/cases/{site}/{patient_id}`), never the URL, and holds no
//! value and no patient id.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::ServiceError;

/// The open audit log.
pub(crate) struct Audit(Mutex<std::fs::File>);

impl Audit {
    /// Opens `path` for appending (created with its folder if needed).
    pub(crate) fn open(path: &Path) -> Result<Audit, ServiceError> {
        let err = |source| ServiceError::Output {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Audit(Mutex::new(file)))
    }

    /// Records one call: who (the token's name, `open` without tokens), the
    /// route template, the site asked for (`all` when none) and how many patients it returned.
    pub(crate) fn record(&self, token: &str, route: &str, site: Option<&str>, patients: usize) {
        let line = serde_json::json!({
            "time": super::state::now(),
            "token": token,
            "route": route,
            "site": site.unwrap_or("all"),
            "patients": patients,
        });
        let mut file = super::state::lock(&self.0);
        if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            tracing::warn!(error = %e, "the audit log cannot be written");
        }
    }
}
