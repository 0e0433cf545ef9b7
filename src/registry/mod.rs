//! The registry config: one TOML file describing a rare-disease registry
//! across hospitals, its store and one `[[site]]` per hospital's FHIR server.
//! `imnm registry check`, `imnm sync --config` (several sites) and `imnm serve`
//! read it through [`RegistryConfig::load`].
//!
//! This module owns the config's typed model ([`RegistryConfig`],
//! [`SiteConfig`], [`SiteAuth`], …) and its loading, which reports **every**
//! problem of a file at once as `file:line: message` ([`ConfigErrors`]): the
//! TOML is parsed with spans and walked by hand rather than deserialized, so
//! one bad key does not hide the next. Secrets are never in the file (a bearer
//! token comes from the environment variable `token_env` names, a SMART key
//! from the `key` file), keys that would hold one are refused, and no message
//! repeats a value from the file except a valid site id.
//!
//! Loading reads the config file and nothing else: it does not check that the
//! key or patients files exist, read environment variables, do HTTP, touch the
//! store or run syncs. Those belong to the commands that use the config.
//!
//! # Defaults
//! `[serve] listen` [`DEFAULT_LISTEN`]; per site: `auth = "none"`, `mode =
//! "crawl"`, the cohort found by the IMNM Condition search, `concurrency`
//! [`DEFAULT_CONCURRENCY`], `since_mode = "last-updated"`, `every = "24h"`
//! ([`DEFAULT_EVERY`]).

mod config;
mod load;
pub mod values;

pub use config::{
    ApiToken, ConfigError, ConfigErrors, RegistryConfig, Role, ServeConfig, SinceMode, SiteAuth, SiteCohort,
    SiteConfig, SiteMode, StoreLocation, DEFAULT_CONCURRENCY, DEFAULT_EVERY, DEFAULT_LISTEN, MAX_CONCURRENCY,
};
