//! The registry config's typed model, its errors, and the entry points that
//! load it ([`RegistryConfig::load`], [`RegistryConfig::from_str`]). The walk
//! over the TOML document is in `load.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::sync::SinceMode;

/// The default `[serve] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default `every` of a site.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The default `concurrency` of a site.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The largest `concurrency` of a site.
pub const MAX_CONCURRENCY: usize = 64;

/// A registry: its store and one [`SiteConfig`] per hospital, from a TOML file.
///
/// Paths are resolved against the config file's folder; nothing here has been
/// checked to exist (loading reads only the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Where the registry keeps what it syncs (`store`).
    pub store: StoreLocation,
    /// Identifier systems that link one child across sites (`[registry] link_identifiers`).
    pub link_identifiers: Vec<String>,
    /// FHIR R4 ConceptMap files (`[registry] concept_maps`, paths resolved against the config's
    /// folder), loaded with the mappings for every command that reads the config: one set for all
    /// sites, as a site's local codes carry its own code system.
    pub concept_maps: Vec<PathBuf>,
    /// The registry service's settings (`[serve]`).
    pub serve: ServeConfig,
    /// The sites, in file order (`[[site]]`); at least one, ids unique.
    pub sites: Vec<SiteConfig>,
}

/// Where the registry's store is: the store's own [`StoreLocation`].
pub use crate::store::StoreLocation;

/// `[serve]`: the registry service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The address the service listens on. Default [`DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// The API's bearer tokens (`[[serve.token]]`), as SHA-256 hashes. None:
    /// the service is open, and only on a loopback address.
    pub tokens: Vec<ApiToken>,
}

/// One API token of the registry service (`[[serve.token]]`): its name, its
/// role and the SHA-256 of the token (the token itself is never in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it (named in the audit log; `[a-z0-9-]{1,32}` like a site id).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The SHA-256 of the token, 64 lowercase hex digits.
    pub sha256: String,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `GET` only; counts shown with small-cell suppression.
    Reader,
    /// `GET` and `POST` (start a sync).
    Operator,
}

impl Role {
    /// `reader` or `operator`, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
        }
    }
}

/// One hospital's FHIR server (`[[site]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// Short stable id (`[a-z0-9-]{1,32}`), unique in the registry; names the site in every output.
    pub id: String,
    /// Human name.
    pub name: String,
    /// The FHIR R4 base URL (http or https; no user, password, query or fragment).
    pub base_url: String,
    /// How requests authenticate. Default [`SiteAuth::None`].
    pub auth: SiteAuth,
    /// Crawl or Bulk Data. Default [`SiteMode::Crawl`].
    pub mode: SiteMode,
    /// Which patients form the cohort. Default [`SiteCohort::Search`].
    pub cohort: SiteCohort,
    /// Requests in flight at once, 1 to [`MAX_CONCURRENCY`]. Default [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// How incremental runs ask for changes. Default [`SinceMode::LastUpdated`].
    pub since_mode: SinceMode,
    /// How often the registry service syncs this site (more than zero). Default [`DEFAULT_EVERY`].
    pub every: Duration,
    /// The line of this site's `[[site]]` header, for messages about it.
    pub line: usize,
}

impl SiteConfig {
    /// `scheme://host[:port]` of the base URL: what may be shown (no path).
    pub fn origin(&self) -> &str {
        super::values::origin(&self.base_url)
    }
}

/// How a site's requests authenticate. Secrets are never in the config: a
/// bearer token is read from an environment variable, a SMART key from a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SiteAuth {
    /// No authorization (`auth = "none"`, the default).
    #[default]
    None,
    /// A bearer token from an environment variable (`auth = "bearer"`).
    Bearer {
        /// The environment variable's name (`token_env`).
        token_env: String,
    },
    /// SMART Backend Services (`auth = "smart"`).
    Smart {
        /// The registered client id (`client_id`).
        client_id: String,
        /// The private key file, PEM or JWKS (`key`), resolved against the config file's folder.
        key: PathBuf,
        /// The key id (`kid`), if given.
        kid: Option<String>,
        /// The scopes asked for (`scope`), if given.
        scope: Option<String>,
    },
}

impl SiteAuth {
    /// `none`, `bearer` or `smart`, as in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            SiteAuth::None => "none",
            SiteAuth::Bearer { .. } => "bearer",
            SiteAuth::Smart { .. } => "smart",
        }
    }
}

/// How a site is synced (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SiteMode {
    /// Searches per patient (`crawl`, the default).
    #[default]
    Crawl,
    /// Bulk Data `$export` (`bulk`).
    Bulk,
}

impl SiteMode {
    /// `crawl` or `bulk`, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteMode::Crawl => "crawl",
            SiteMode::Bulk => "bulk",
        }
    }
}

/// Which patients a site's cohort is (`group` and `patients` exclude each other).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SiteCohort {
    /// Found by a Condition search on the IMNM codes (neither key given; the default).
    #[default]
    Search,
    /// A Group's members (`group`).
    Group(String),
    /// The Patient ids in a file, one a line (`patients`), resolved against the config file's folder.
    Patients(PathBuf),
}

/// One problem in a registry config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, as it was named to the loader.
    pub file: String,
    /// The 1-based line of the offending key or table (of the `[[site]]` header
    /// for a key it lacks); `None` for the file as a whole (it cannot be read).
    pub line: Option<usize>,
    /// What is wrong. Never holds a value that could be a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a registry config, in line order (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl RegistryConfig {
    /// Reads and checks the config file at `path`; relative paths in it are
    /// resolved against its folder. Every problem is reported, as `file:line: message`.
    pub fn load(path: &Path) -> Result<RegistryConfig, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        RegistryConfig::from_str(&text, &file, base_dir)
    }

    /// Checks a config's `text`; `file_name` names it in errors, `base_dir`
    /// resolves its relative paths.
    pub fn from_str(text: &str, file_name: &str, base_dir: &Path) -> Result<RegistryConfig, ConfigErrors> {
        super::load::load(text, file_name, base_dir)
    }

    /// The site with this id.
    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }
}
