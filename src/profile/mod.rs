//! The IMNM FHIR profiles (`profiles/`) and structural validation against them.
//!
//! This module owns the StructureDefinitions, ValueSets and local CodeSystem
//! of `profiles/`, the compact R4 base table they are laid over
//! (`base.rs`), snapshot generation (`snapshot.rs`, `generate.rs`) and the
//! validator (`validate.rs`), which is driven by the snapshots only: no rule
//! is written per profile. Findings are data, never `Err`s: [`crate::report::Issue`]s
//! with a validation code, in a [`ValidationReport`], turned into an
//! OperationOutcome by `fhir::outcome`.
//! It must not do HTTP or touch the store, and it does not map to the cohort.

pub mod base;
pub(crate) mod element;
pub mod files;
pub mod generate;
mod primitive;
pub(crate) mod snapshot;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

pub use base::BaseTable;
use element::ElementDef;
pub use validate::ValidationReport;

/// The canonical base of every IMNM conformance resource.
pub const CANONICAL_BASE: &str = "https://imnm-fhir.org/fhir";
/// The local CodeSystem's URL.
pub const LOCAL_SYSTEM: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-case";
/// Version of the profiles.
pub const VERSION: &str = "0.1.0";

macro_rules! builtin_files {
    ($($name:literal),+ $(,)?) => {
        /// The conformance files built into the binary (the repository's `profiles/`).
        pub const BUILTIN: &[(&str, &str)] = &[$(($name, include_str!(concat!("../../profiles/", $name)))),+];
    };
}

builtin_files!(
    "StructureDefinition-imnm-patient.json",
    "StructureDefinition-imnm-condition.json",
    "StructureDefinition-imnm-ck-observation.json",
    "StructureDefinition-imnm-antibody-observation.json",
    "StructureDefinition-imnm-finding-observation.json",
    "StructureDefinition-imnm-outcome-observation.json",
    "StructureDefinition-imnm-medicationstatement.json",
    "StructureDefinition-onset-age-years.json",
    "StructureDefinition-ck-result-count.json",
    "ValueSet-imnm-diagnosis-code.json",
    "ValueSet-imnm-ck-code.json",
    "ValueSet-imnm-ck-unit.json",
    "ValueSet-imnm-antibody-code.json",
    "ValueSet-imnm-antibody-result.json",
    "ValueSet-imnm-finding-code.json",
    "ValueSet-imnm-outcome-value.json",
    "ValueSet-imnm-medication-code.json",
    "CodeSystem-imnm-case.json",
);

/// `profiles/valuesets.toml`: which mapping value sets make each profile ValueSet.
pub const VALUESETS_TOML: &str = include_str!("../../profiles/valuesets.toml");

/// A problem with the profile files.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file that is not JSON.
    #[error("{file}: not JSON: {message}")]
    Json {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A snapshot that cannot be built.
    #[error("{file}: snapshot: {message}")]
    Snapshot {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A file whose content does not fit (unknown value set, duplicate URL, …).
    #[error("{file}: {message}")]
    Content {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Generation failed: a mapping file or `valuesets.toml` is not valid TOML.
    #[error("generating profiles: {file}: {source}")]
    GenerateToml {
        /// The file.
        file: String,
        /// The TOML parser's error.
        source: toml::de::Error,
    },
    /// Generation failed: `valuesets.toml` names a mapping value set that does not exist.
    #[error("generating profiles: valuesets.toml:{valueset}: no mapping value set {missing}")]
    NoMappingValueSet {
        /// The profile value set.
        valueset: String,
        /// The mapping value set it names.
        missing: String,
    },
    /// Generation failed: `valuesets.toml` names a quantity that does not exist.
    #[error("generating profiles: valuesets.toml:{valueset}: no quantity {missing}")]
    NoQuantity {
        /// The profile value set.
        valueset: String,
        /// The quantity it names.
        missing: String,
    },
    /// A file that cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ProfileError {
    fn json(file: &str, e: serde_json::Error) -> Self {
        ProfileError::Json {
            file: file.to_string(),
            message: e.to_string(),
        }
    }
}

/// Every problem found loading profiles, reported at once.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the profiles:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ProfileErrors(pub Vec<ProfileError>);

/// One profile (a constraint StructureDefinition) as the validator uses it.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Canonical URL.
    pub url: String,
    /// Short name (`imnm-ck-observation`).
    pub id: String,
    /// The constrained type (`Observation`, `Extension`).
    pub type_name: String,
    /// Snapshot elements.
    pub elements: Vec<ElementDef>,
}

impl Profile {
    /// The element at `path`.
    pub fn element(&self, path: &str) -> Option<&ElementDef> {
        self.elements.iter().find(|e| e.path == path)
    }

    /// The element that decides whether the profile applies to a resource
    /// without `meta.profile`: `code` or `medication[x]` when the profile
    /// constrains it with a pattern, fixed value or required binding.
    pub fn discriminator(&self) -> Option<&ElementDef> {
        ["code", "medication[x]"].iter().find_map(|n| {
            self.element(&format!("{}.{n}", self.type_name))
                .filter(|e| e.pattern.is_some() || e.fixed.is_some() || e.required_binding.is_some())
        })
    }
}

/// The loaded profiles, value sets and base.
#[derive(Debug, Clone)]
pub struct ProfileSet {
    /// The R4 base table.
    pub base: BaseTable,
    /// Profiles of resources, in file order.
    pub profiles: Vec<Profile>,
    /// Value set codes by canonical URL: `(system, code)`; system `None` for the base's code lists.
    pub value_sets: BTreeMap<String, BTreeSet<(Option<String>, String)>>,
    /// The base table's elements as element definitions, by type.
    pub base_defs: BTreeMap<String, Vec<ElementDef>>,
}

impl ProfileSet {
    /// The profiles built into the binary.
    pub fn builtin() -> Result<Self, ProfileErrors> {
        let base =
            BaseTable::builtin().map_err(|e| ProfileErrors(vec![ProfileError::json("base/r4-elements.json", e)]))?;
        Self::from_sources(BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())), base)
    }

    /// The built-in profiles with their ValueSets and local CodeSystem
    /// generated from `mappings` (`(file name, TOML text)`, as
    /// [`crate::mapping::BUILTIN`]): the codes of a mappings copy whose data
    /// dictionary has new columns validate.
    pub fn for_mappings(mappings: &[(String, String)]) -> Result<Self, ProfileErrors> {
        let base =
            BaseTable::builtin().map_err(|e| ProfileErrors(vec![ProfileError::json("base/r4-elements.json", e)]))?;
        let sds: Vec<(&str, &str)> = BUILTIN
            .iter()
            .filter(|(n, _)| n.starts_with("StructureDefinition-"))
            .copied()
            .collect();
        let mappings: Vec<(&str, &str)> = mappings.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let generated =
            generate::generate(&sds, VALUESETS_TOML, &mappings, &base).map_err(|e| ProfileErrors(vec![e]))?;
        let json = generated.into_iter().filter(|(n, _)| n.ends_with(".json"));
        Self::from_sources(json, base)
    }

    /// Loads every `*.json` directly in `dir` (the base table stays the built-in one).
    pub fn load_dir(dir: &Path) -> Result<Self, ProfileErrors> {
        let base =
            BaseTable::builtin().map_err(|e| ProfileErrors(vec![ProfileError::json("base/r4-elements.json", e)]))?;
        let io = |file: &Path, source| {
            ProfileErrors(vec![ProfileError::Io {
                file: file.display().to_string(),
                source,
            }])
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                files.push((name, text));
            }
        }
        files.sort();
        Self::from_sources(files, base)
    }

    /// Loads from `(file name, JSON text)` pairs: first every file's shape, then
    /// the cross references; every problem is reported at once.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        base: BaseTable,
    ) -> Result<Self, ProfileErrors> {
        let mut errors = Vec::new();
        let mut set = ProfileSet {
            value_sets: base_value_sets(&base),
            base_defs: base_defs(&base),
            base,
            profiles: Vec::new(),
        };
        for (file, text) in sources {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => set.add(&file, &v, &mut errors),
                Err(e) => errors.push(ProfileError::json(&file, e)),
            }
        }
        set.check_references(&mut errors);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(ProfileErrors(errors))
        }
    }

    fn add(&mut self, file: &str, v: &Value, errors: &mut Vec<ProfileError>) {
        let content = |message: String| ProfileError::Content {
            file: file.to_string(),
            message,
        };
        let url = v["url"].as_str().unwrap_or_default().to_string();
        if url.is_empty() {
            return errors.push(content("no url".into()));
        }
        let duplicate = self.profiles.iter().any(|p| p.url == url) || self.value_sets.contains_key(&url);
        if duplicate {
            return errors.push(content(format!("url {url} defined twice")));
        }
        match v["resourceType"].as_str() {
            Some("StructureDefinition") => match v["snapshot"]["element"].as_array() {
                Some(els) if !els.is_empty() => self.profiles.push(Profile {
                    id: v["id"].as_str().unwrap_or_default().to_string(),
                    type_name: v["type"].as_str().unwrap_or_default().to_string(),
                    elements: els.iter().filter_map(ElementDef::from_json).collect(),
                    url,
                }),
                _ => errors.push(content("no snapshot (run `cargo run --example gen_profiles`)".into())),
            },
            Some("ValueSet") => {
                let mut codes = BTreeSet::new();
                for inc in v["compose"]["include"].as_array().into_iter().flatten() {
                    let system = inc["system"].as_str().map(str::to_string);
                    for c in inc["concept"].as_array().into_iter().flatten() {
                        codes.insert((system.clone(), c["code"].as_str().unwrap_or_default().to_string()));
                    }
                }
                self.value_sets.insert(url, codes);
            }
            Some("CodeSystem") => {}
            other => errors.push(content(format!("unexpected resourceType {other:?}"))),
        }
    }

    fn check_references(&self, errors: &mut Vec<ProfileError>) {
        for p in &self.profiles {
            for e in &p.elements {
                let content = |message: String| ProfileError::Content {
                    file: p.id.clone(),
                    message,
                };
                if let Some(vs) = &e.required_binding {
                    if vs.starts_with(CANONICAL_BASE) && !self.value_sets.contains_key(vs) {
                        errors.push(content(format!("{}: value set {vs} is not defined", e.path)));
                    }
                }
                for t in e.types.iter().flat_map(|t| &t.target_profiles) {
                    if t.starts_with(CANONICAL_BASE) && self.profile(t).is_none() {
                        errors.push(content(format!("{}: target profile {t} is not defined", e.path)));
                    }
                }
            }
        }
    }

    /// The profile with canonical `url` (a `|version` suffix ignored).
    pub fn profile(&self, url: &str) -> Option<&Profile> {
        let url = url.split('|').next().unwrap_or(url);
        self.profiles.iter().find(|p| p.url == url)
    }
}

fn base_value_sets(base: &BaseTable) -> BTreeMap<String, BTreeSet<(Option<String>, String)>> {
    base.value_sets
        .iter()
        .map(|(url, codes)| (url.clone(), codes.iter().map(|c| (None, c.clone())).collect()))
        .collect()
}

fn base_defs(base: &BaseTable) -> BTreeMap<String, Vec<ElementDef>> {
    let def = |e: &base::BaseElement| ElementDef {
        path: e.path.clone(),
        min: e.min,
        max: if e.max == "*" { None } else { e.max.parse().ok() },
        types: e
            .types
            .iter()
            .map(|code| element::TypeRef {
                code: code.clone(),
                target_profiles: if code == "Reference" {
                    e.targets
                        .iter()
                        .map(|t| format!("http://hl7.org/fhir/StructureDefinition/{t}"))
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect(),
        fixed: None,
        pattern: None,
        required_binding: e.value_set.clone(),
        content_reference: e.content_reference.clone(),
        array: e.max != "1" && e.max != "0",
    };
    base.types
        .iter()
        .map(|(name, t)| (name.clone(), t.elements.iter().map(def).collect()))
        .collect()
}
