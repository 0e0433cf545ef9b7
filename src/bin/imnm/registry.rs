//! `imnm registry check`: loads a registry config and lists its sites, or
//! prints every problem of the file.

use std::path::Path;

use imnm_fhir::registry::{values, RegistryConfig};

use crate::Exit;

/// Loads `file`, or prints every problem (stderr) and gives exit 2.
pub fn load(file: &Path) -> Result<RegistryConfig, Exit> {
    RegistryConfig::load(file).map_err(|errors| config_errors(&errors, &file.display().to_string()))
}

/// Loads `file`; prints one line per site (stdout) and a summary (stderr), or
/// every problem (stderr) and exit 2. Shows only URL origins, never a path of
/// the key or a token.
pub fn check(file: &Path) -> Result<u8, Exit> {
    let config = load(file)?;
    if !config.concept_maps.is_empty() {
        let maps = crate::load_registry_mappings(None, &config)?.concept_maps;
        eprintln!(
            "concept_maps: {} ConceptMap(s), {} local codes read as value set codes, {} targets skipped by equivalence",
            maps.files.len(),
            maps.len(),
            maps.skipped
        );
    }
    let store = config.store.redacted();
    let n = config.sites.len();
    eprintln!(
        "{}: {n} site{}, store {store}, serve on {}",
        file.display(),
        if n == 1 { "" } else { "s" },
        config.serve.listen
    );
    let width = |f: &dyn Fn(&imnm_fhir::registry::SiteConfig) -> usize| config.sites.iter().map(f).max().unwrap_or(0);
    let id_w = width(&|s| s.id.chars().count());
    let name_w = width(&|s| s.name.chars().count());
    let origin_w = width(&|s| s.origin().chars().count());
    for site in &config.sites {
        println!(
            "{:<id_w$}  {:<name_w$}  {:<origin_w$}  {:<5}  {:<6}  every {}",
            site.id,
            site.name,
            site.origin(),
            site.mode.as_str(),
            site.auth.kind(),
            values::format_duration(site.every),
        );
    }
    Ok(imnm_fhir::exit::OK)
}

/// Prints every problem of a registry config on stderr; the failure (exit 2) counts them.
pub(crate) fn config_errors(errors: &imnm_fhir::registry::ConfigErrors, file: &str) -> Exit {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    let n = errors.0.len();
    let problems = if n == 1 { "problem" } else { "problems" };
    Exit::new(imnm_fhir::exit::USAGE, anyhow::anyhow!("{n} {problems} in {file}"))
}
