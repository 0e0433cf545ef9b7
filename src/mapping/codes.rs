//! Code systems, value sets and the index that answers "which value sets is
//! this coding in?" — with the aliases and code spellings real EHRs send.

use std::collections::HashMap;

/// The code tables' maps: their keys come from the mapping folder, not from
/// the input (which only looks up), so a fast hash without a random seed.
type Map<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// How codes of a system are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeNormalization {
    /// As written (whitespace trimmed).
    Exact,
    /// ICD: upper case, dots removed (`g7249` = `G72.49`).
    Icd,
}

/// Known code systems: canonical URIs, aliases and normalization.
#[derive(Debug, Default, Clone)]
pub struct SystemTable {
    by_name: Map<String, usize>,
    uris: Vec<String>,
    normalization: Vec<CodeNormalization>,
}

impl SystemTable {
    /// Adds a canonical system with its aliases; returns its index.
    pub fn add(&mut self, uri: &str, aliases: &[String], norm: CodeNormalization) -> usize {
        let idx = self.intern(uri);
        self.normalization[idx] = norm;
        for alias in aliases {
            self.by_name.insert(alias.trim().to_string(), idx);
        }
        idx
    }

    /// The index of `uri`, adding it (exact comparison) when unknown.
    pub fn intern(&mut self, uri: &str) -> usize {
        if let Some(i) = self.lookup(uri) {
            return i;
        }
        self.uris.push(uri.trim().to_string());
        self.normalization.push(CodeNormalization::Exact);
        let idx = self.uris.len() - 1;
        self.by_name.insert(uri.trim().to_string(), idx);
        idx
    }

    /// The index of a system URI or alias, if known.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(name.trim()).copied()
    }

    /// Whether codes of system `idx` are compared exactly (after trimming).
    pub fn is_exact(&self, idx: usize) -> bool {
        self.normalization[idx] == CodeNormalization::Exact
    }

    /// Every name (URI or alias) of system `idx`.
    pub fn names_of(&self, idx: usize) -> impl Iterator<Item = &str> {
        self.by_name
            .iter()
            .filter(move |(_, i)| **i == idx)
            .map(|(n, _)| n.as_str())
    }

    /// The canonical URI of system `idx`.
    pub fn uri(&self, idx: usize) -> &str {
        &self.uris[idx]
    }

    /// A code as it is compared within system `idx`.
    pub fn normalize_code(&self, idx: usize, code: &str) -> String {
        self.normalized(idx, code).into_owned()
    }

    /// [`SystemTable::normalize_code`], borrowed where it is the code trimmed.
    fn normalized<'c>(&self, idx: usize, code: &'c str) -> std::borrow::Cow<'c, str> {
        match self.normalization[idx] {
            CodeNormalization::Exact => code.trim().into(),
            CodeNormalization::Icd => code.trim().to_ascii_uppercase().replace('.', "").into(),
        }
    }
}

/// (system, normalized code) → `T`, looked up by a borrowed code (a lookup
/// per coding of every relevant resource: building a key for each cost more
/// than the search).
#[derive(Debug, Clone)]
struct ByCode<T>(Map<usize, Map<String, T>>);

impl<T> Default for ByCode<T> {
    fn default() -> Self {
        Self(Map::default())
    }
}

impl<T: Default> ByCode<T> {
    fn entry(&mut self, systems: &SystemTable, sys: usize, code: &str) -> &mut T {
        let code = systems.normalize_code(sys, code);
        self.0.entry(sys).or_default().entry(code).or_default()
    }

    /// What `code` of the system named `system` holds.
    fn get(&self, systems: &SystemTable, system: &str, code: &str) -> Option<&T> {
        let sys = systems.lookup(system)?;
        self.0.get(&sys)?.get(&*systems.normalized(sys, code))
    }

    fn len(&self) -> usize {
        self.0.values().map(Map::len).sum()
    }
}

/// One resolved value set.
#[derive(Debug, Clone)]
pub struct ValueSet {
    /// Its id in the mapping files.
    pub id: String,
    /// What it means.
    pub description: String,
    /// Lower-cased wording for text matching.
    pub text: Vec<String>,
    /// Lower-cased wording that vetoes a text match.
    pub text_exclude: Vec<String>,
    /// Number of codes.
    pub code_count: usize,
    /// Its codes as written (canonical system URI, code), e.g. for a server search.
    pub codes: Vec<(String, String)>,
}

impl ValueSet {
    /// True when `text` contains one of the value set's words and none of its exclusions.
    /// Short words (three letters or fewer) must match the whole text.
    pub fn matches_text(&self, text: &str) -> bool {
        self.text_match_len(text).is_some()
    }

    /// The length of the longest of the value set's words in `text` (none when an
    /// exclusion matches). Lets a caller prefer the most specific wording:
    /// "not detected" over "detected", "non-reactive" over "reactive".
    pub fn text_match_len(&self, text: &str) -> Option<usize> {
        if self.text.is_empty() {
            return None;
        }
        self.text_match_len_lowered(&text.trim().to_lowercase())
    }

    /// As [`Self::text_match_len`], for a text already trimmed and lower-cased.
    pub fn text_match_len_lowered(&self, text: &str) -> Option<usize> {
        let best = self
            .text
            .iter()
            .filter(|w| {
                if w.len() <= 3 {
                    text == w.as_str()
                } else {
                    text.contains(w.as_str())
                }
            })
            .map(|w| w.len())
            .max()?;
        (!self.text_exclude.iter().any(|w| text.contains(w.as_str()))).then_some(best)
    }
}

/// (system, normalized code) → value sets holding it.
#[derive(Debug, Default, Clone)]
pub struct CodeIndex {
    map: ByCode<Vec<usize>>,
}

impl CodeIndex {
    /// Records that value set `vs` holds `code` of system `sys`.
    pub fn insert(&mut self, systems: &SystemTable, sys: usize, code: &str, vs: usize) {
        let entry = self.map.entry(systems, sys, code);
        if !entry.contains(&vs) {
            entry.push(vs);
        }
    }

    /// The value sets holding `code` of the system named `system`.
    pub fn get(&self, systems: &SystemTable, system: &str, code: &str) -> &[usize] {
        self.map.get(systems, system, code).map_or(&[], Vec::as_slice)
    }
}

/// A local coding that a FHIR ConceptMap maps to a coding the value sets know.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The target system's index.
    pub target_system: usize,
    /// The target code, normalized for its system.
    pub target_code: String,
    /// The target as canonical `system|code`.
    pub target: String,
    /// The map: its `url`, else its file.
    pub map: String,
    /// The value sets holding the target (the local coding is read as in them).
    pub valuesets: Vec<usize>,
}

/// The ConceptMaps of a mapping folder: (system, normalized local code) → translations.
#[derive(Debug, Default, Clone)]
pub struct ConceptMaps {
    map: ByCode<Vec<Translation>>,
    /// The maps loaded: (file, url or file).
    pub files: Vec<(String, String)>,
    /// Targets not used because of their equivalence (narrower, inexact, …).
    pub skipped: usize,
}

impl ConceptMaps {
    /// Records a translation of `code` of system `sys`.
    pub fn insert(&mut self, systems: &SystemTable, sys: usize, code: &str, t: Translation) {
        self.map.entry(systems, sys, code).push(t);
    }

    /// The translations of a coding (none when no map names it).
    pub fn get(&self, systems: &SystemTable, system: &str, code: &str) -> &[Translation] {
        self.map.get(systems, system, code).map_or(&[], Vec::as_slice)
    }

    /// How many local codes the maps translate.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no map translates anything.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

/// Lower-cases a unit text and folds the spellings labs use: `µ`/`μ` → `u`, no spaces.
pub fn normalize_unit_text(unit: &str) -> String {
    unit.trim().to_lowercase().replace(['µ', 'μ'], "u").replace(' ', "")
}

/// The unit key of an antibody assay: [`normalize_unit_text`], with the
/// spellings of a titre (`titre`, `titer`, `{titer}`, `1:N`) folded to `titre`.
pub fn assay_unit(unit: &str) -> String {
    let u = normalize_unit_text(unit);
    match u.trim_matches(['{', '}']) {
        "titre" | "titer" | "1:n" => TITRE.to_string(),
        _ => u,
    }
}

/// The unit key of a titre (`1:N`, read as N).
pub const TITRE: &str = "titre";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_icd_spelling_find_the_same_code() {
        let mut systems = SystemTable::default();
        let icd = systems.add(
            "http://hl7.org/fhir/sid/icd-10-cm",
            &["urn:oid:2.16.840.1.113883.6.90".into()],
            CodeNormalization::Icd,
        );
        let mut index = CodeIndex::default();
        index.insert(&systems, icd, "G72.49", 7);
        assert_eq!(index.get(&systems, "urn:oid:2.16.840.1.113883.6.90", "g7249"), &[7]);
        assert_eq!(
            index.get(&systems, "http://hl7.org/fhir/sid/icd-10-cm", " G72.49 "),
            &[7]
        );
        assert!(index.get(&systems, "http://example.org/other", "G72.49").is_empty());
    }

    #[test]
    fn short_words_match_whole_text_only() {
        let vs = ValueSet {
            id: "x".into(),
            description: String::new(),
            text: vec!["pos".into(), "positive".into()],
            text_exclude: vec!["weakly".into()],
            code_count: 0,
            codes: Vec::new(),
        };
        assert!(vs.matches_text("POS"));
        assert!(vs.matches_text("Positive (>= 20)"));
        assert!(!vs.matches_text("possible"));
        assert!(!vs.matches_text("weakly positive"));
    }
}
