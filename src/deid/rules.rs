//! The de-identification rule file (`deid/rules.toml`): allow-list per
//! resource type, date elements, restricted ZIP3s, date-shift range.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::DeidError;

/// How much a bundle keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// HIPAA Safe Harbor style: birthDate to the (shifted) year, no address.
    #[default]
    SafeHarbor,
    /// Limited data set style: birthDate shifted, ZIP3 kept.
    Limited,
}

impl Profile {
    /// The name used on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Profile::SafeHarbor => "safe-harbor",
            Profile::Limited => "limited",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: u32,
    dates: RawDates,
    zip: RawZip,
    extensions: RawExtensions,
    resources: BTreeMap<String, RawResource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDates {
    max_offset_days: u32,
    elements: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZip {
    restricted_zip3: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtensions {
    keep: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    keep: Vec<String>,
    #[serde(default)]
    limited: Vec<String>,
}

/// Loaded, checked rules.
#[derive(Debug, Clone)]
pub struct DeidRules {
    /// The rule file's `version`.
    pub version: u32,
    /// Largest date offset in days.
    pub max_offset_days: u32,
    /// Element names holding dates.
    pub date_elements: BTreeSet<String>,
    /// ZIP3s set to 000.
    pub restricted_zip3: BTreeSet<String>,
    /// Extension URLs kept.
    pub extensions: BTreeSet<String>,
    keep: BTreeMap<String, BTreeSet<String>>,
    limited: BTreeMap<String, BTreeSet<String>>,
}

impl DeidRules {
    /// The rules built into the binary.
    pub fn builtin() -> Result<Self, DeidError> {
        Self::parse(super::BUILTIN_RULES)
    }

    /// Parses a rule file.
    pub fn parse(text: &str) -> Result<Self, DeidError> {
        let raw: RawRules = toml::from_str(text).map_err(|source| DeidError::RulesSyntax { source })?;
        if raw.dates.max_offset_days == 0 {
            return Err(DeidError::NoDateShift);
        }
        if let Some(bad) = raw.zip.restricted_zip3.iter().find(|z| z.len() != 3) {
            return Err(DeidError::Zip3 { value: bad.clone() });
        }
        let (mut keep, mut limited) = (BTreeMap::new(), BTreeMap::new());
        for (t, r) in raw.resources {
            if !r.keep.iter().any(|p| p == "id") {
                return Err(DeidError::KeepWithoutId { resource_type: t });
            }
            keep.insert(t.clone(), r.keep.into_iter().collect());
            limited.insert(t, r.limited.into_iter().collect());
        }
        Ok(Self {
            version: raw.version,
            max_offset_days: raw.dates.max_offset_days,
            date_elements: raw.dates.elements.into_iter().collect(),
            restricted_zip3: raw.zip.restricted_zip3.into_iter().collect(),
            extensions: raw.extensions.keep.into_iter().collect(),
            keep,
            limited,
        })
    }

    /// True when resources of `resource_type` may be exported at all.
    pub fn knows(&self, resource_type: &str) -> bool {
        self.keep.contains_key(resource_type)
    }

    /// Whether element `path` (dotted, without the type) of `resource_type`
    /// is kept whole ([`Allowed::Whole`]), kept for some children
    /// ([`Allowed::Partly`]) or removed.
    pub fn allowed(&self, resource_type: &str, path: &str, profile: Profile) -> Allowed {
        let lists = [
            self.keep.get(resource_type),
            match profile {
                Profile::Limited => self.limited.get(resource_type),
                Profile::SafeHarbor => None,
            },
        ];
        let mut result = Allowed::No;
        for p in lists.into_iter().flatten().flatten() {
            if p == path || below(path, p) {
                return Allowed::Whole;
            }
            if below(p, path) {
                result = Allowed::Partly;
            }
        }
        result
    }
}

/// True when dotted `path` lies below `parent` (`parent.` starts it).
fn below(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent).is_some_and(|rest| rest.starts_with('.'))
}

/// The answer of [`DeidRules::allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Kept with all its children.
    Whole,
    /// Kept for the allowed children only.
    Partly,
    /// Removed.
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_and_answer_paths() {
        let r = DeidRules::builtin().unwrap();
        assert_eq!(r.restricted_zip3.len(), 17);
        assert_eq!(r.allowed("Patient", "gender", Profile::SafeHarbor), Allowed::Whole);
        assert_eq!(r.allowed("Patient", "name", Profile::SafeHarbor), Allowed::No);
        assert_eq!(r.allowed("Patient", "address", Profile::SafeHarbor), Allowed::No);
        assert_eq!(r.allowed("Patient", "address", Profile::Limited), Allowed::Partly);
        assert_eq!(r.allowed("Condition", "subject", Profile::SafeHarbor), Allowed::Partly);
        assert_eq!(
            r.allowed("Condition", "code.coding", Profile::SafeHarbor),
            Allowed::Whole
        );
        assert!(!r.knows("Encounter"));
    }
}
