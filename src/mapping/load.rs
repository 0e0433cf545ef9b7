//! Phase 2 of loading mappings: resolve names, check meaning, report every
//! problem at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use super::codes::{normalize_unit_text, CodeIndex, CodeNormalization, ConceptMaps, SystemTable, ValueSet};
use super::spec::{RawFile, RawRule};
use super::{
    role, Answers, Assay, CandidateRule, DiagnosisRule, ExcludedStatuses, MappingSet, QuantityDef, Rule, RuleKind,
    UnitDef,
};
use crate::domain::{ColumnKind, Dictionary};

mod conceptmap;
mod dictionary;
mod text;

/// One problem in the mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (relative to the mappings folder).
    pub file: String,
    /// The rule, value set or entry id, when the problem is in one.
    pub item: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}:{}: {}", self.file, item, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading mappings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the mapping files:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Reads every `*.toml` (and `*.json` ConceptMap) below `dir` (sorted) and loads them.
pub fn load_dir(dir: &Path) -> Result<MappingSet, LoadErrors> {
    from_sources(read_dir(dir)?)
}

/// Every `*.toml` and `*.json` (a FHIR ConceptMap) below `dir`, sorted, as
/// `(name relative to dir, text)`.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, LoadErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect_toml(dir, dir, &mut files, &mut errors);
    files.sort();
    let mut sources = Vec::new();
    for (name, path) in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((name, text)),
            Err(e) => errors.push(LoadError {
                file: name,
                item: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push(LoadError {
            file: dir.display().to_string(),
            item: None,
            message: "no *.toml mapping files".into(),
        });
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    Ok(sources)
}

fn collect_toml(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(LoadError {
                file: dir.display().to_string(),
                item: None,
                message: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_toml(root, &path, out, errors);
        } else if path.extension().is_some_and(|e| e == "toml" || e == "json") {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, path));
        }
    }
}

/// The ConceptMap files `maps` (a registry config's `concept_maps`) as
/// `(path, text)` sources, each named by its path; an unreadable one is a
/// problem naming it, and so is one not named `*.json`.
pub fn read_maps(maps: &[std::path::PathBuf]) -> Result<Vec<(String, String)>, LoadErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in maps {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(_) if !file.ends_with(".json") => errors.push(LoadError {
                file,
                item: None,
                message: "a ConceptMap file's name ends in .json".into(),
            }),
            Ok(text) => sources.push((file, text)),
            Err(e) => errors.push(LoadError {
                file,
                item: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Loads mappings from `(file name, text)` pairs: TOML mapping files, and
/// FHIR ConceptMaps in JSON for names ending in `.json`.
pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<MappingSet, LoadErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let mut maps = Vec::new();
    for (name, text) in sources {
        if name.ends_with(".json") {
            match conceptmap::parse(&name, &text) {
                Ok(raw) => maps.push((name, raw)),
                Err(e) => errors.push(e),
            }
            continue;
        }
        match toml::from_str::<RawFile>(&text) {
            Ok(raw) => files.push((name, raw)),
            Err(e) => errors.push(LoadError {
                file: name,
                item: None,
                message: e.to_string().replace('\n', " "),
            }),
        }
    }
    let mut b = Builder {
        errors,
        ..Builder::default()
    };
    b.resolve(&files);
    conceptmap::resolve(
        &maps,
        conceptmap::Tables {
            systems: &mut b.systems,
            index: &mut b.index,
            maps: &mut b.concept_maps,
            valuesets: &mut b.valuesets,
            errors: &mut b.errors,
        },
    );
    match b.finish() {
        Ok(set) => Ok(set),
        Err(errs) => Err(LoadErrors(errs)),
    }
}

#[derive(Default)]
struct Builder {
    errors: Vec<LoadError>,
    versions: BTreeMap<String, u32>,
    systems: SystemTable,
    valuesets: Vec<ValueSet>,
    index: CodeIndex,
    concept_maps: ConceptMaps,
    quantities: Vec<QuantityDef>,
    assays: Vec<Assay>,
    statuses: ExcludedStatuses,
    diagnosis: Option<DiagnosisRule>,
    /// `[candidates]`: the file, the lab peak column's name, the threshold.
    candidates: Option<(String, String, f64)>,
    answers: Option<Answers>,
    /// The dictionary and its file.
    dictionary: Option<(String, Dictionary)>,
    /// Rules with the file each came from.
    rules: Vec<(String, Rule)>,
    /// Text rules (`text.toml`).
    text: super::text::TextRules,
}

const KINDS: &[&str] = &[
    "systems",
    "valuesets",
    "units",
    "cutoffs",
    "dictionary",
    "rules",
    "text",
];

impl Builder {
    fn err(&mut self, file: &str, item: Option<&str>, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: file.to_string(),
            item: item.map(str::to_string),
            message: message.into(),
        });
    }

    fn resolve(&mut self, files: &[(String, RawFile)]) {
        for (name, raw) in files {
            self.versions.insert(name.clone(), raw.version);
            if !KINDS.contains(&raw.kind.as_str()) {
                self.err(
                    name,
                    None,
                    format!("unknown kind {:?} (expected one of {})", raw.kind, KINDS.join(", ")),
                );
            }
            self.check_sections(name, raw);
        }
        // Order matters: systems before codes, value sets before what names them.
        for (name, raw) in files {
            self.add_systems(name, raw);
        }
        for (name, raw) in files {
            self.add_valuesets(name, raw);
        }
        for (name, raw) in files {
            self.add_quantities(name, raw);
        }
        self.dictionary = dictionary::resolve(files, &mut self.errors);
        for (name, raw) in files {
            self.add_assays(name, raw);
            self.add_rules(name, raw);
        }
        let known = text::Known {
            valuesets: &self.valuesets,
            rules: &self.rules,
        };
        self.text = text::resolve(files, &known, &mut self.errors);
    }

    fn check_sections(&mut self, name: &str, raw: &RawFile) {
        let present = [
            ("systems", !raw.system.is_empty()),
            ("valuesets", !raw.valueset.is_empty()),
            ("units", !raw.quantity.is_empty()),
            ("cutoffs", !raw.assay.is_empty()),
            ("dictionary", !raw.column.is_empty() || raw.table1.is_some()),
            (
                "rules",
                !raw.rule.is_empty()
                    || raw.status.is_some()
                    || raw.diagnosis.is_some()
                    || raw.candidates.is_some()
                    || raw.answers.is_some(),
            ),
            (
                "text",
                raw.cues.is_some() || !raw.source.is_empty() || !raw.text_rule.is_empty(),
            ),
        ];
        for (kind, has) in present {
            if has && raw.kind != kind {
                self.err(
                    name,
                    None,
                    format!(
                        "a file of kind {:?} holds {kind} entries; move them to a file of kind {kind:?}",
                        raw.kind
                    ),
                );
            }
        }
    }

    fn add_systems(&mut self, name: &str, raw: &RawFile) {
        for s in &raw.system {
            let norm = match s.normalize.as_deref() {
                None => CodeNormalization::Exact,
                Some("icd") => CodeNormalization::Icd,
                Some(other) => {
                    self.err(
                        name,
                        Some(&s.uri),
                        format!("unknown normalize {other:?} (expected \"icd\")"),
                    );
                    CodeNormalization::Exact
                }
            };
            for alias in &s.aliases {
                if let Some(i) = self.systems.lookup(alias) {
                    if self.systems.uri(i) != s.uri {
                        self.err(
                            name,
                            Some(&s.uri),
                            format!("alias {alias:?} already names {}", self.systems.uri(i)),
                        );
                    }
                }
            }
            self.systems.add(&s.uri, &s.aliases, norm);
        }
    }

    fn add_valuesets(&mut self, name: &str, raw: &RawFile) {
        for v in &raw.valueset {
            if self.valuesets.iter().any(|x| x.id == v.id) {
                self.err(name, Some(&v.id), "value set id defined twice");
                continue;
            }
            if v.code.is_empty() && v.text.is_empty() {
                self.err(name, Some(&v.id), "value set has neither codes nor text");
            }
            let idx = self.valuesets.len();
            let mut codes = Vec::new();
            for c in &v.code {
                if c.code.trim().is_empty() || c.system.trim().is_empty() {
                    self.err(name, Some(&v.id), "a code row has an empty system or code");
                    continue;
                }
                if let Some(conf) = c.confidence.as_deref().filter(|c| !["V", "S", "N"].contains(c)) {
                    self.err(
                        name,
                        Some(&v.id),
                        format!("code {}: confidence {conf:?} is not V, S or N", c.code),
                    );
                }
                let sys = self.systems.intern(&c.system);
                self.index.insert(&self.systems, sys, &c.code, idx);
                codes.push((self.systems.uri(sys).to_string(), c.code.trim().to_string()));
            }
            let lower = |v: &[String]| v.iter().map(|t| t.trim().to_lowercase()).collect();
            self.valuesets.push(ValueSet {
                id: v.id.clone(),
                description: v.description.clone(),
                text: lower(&v.text),
                text_exclude: lower(&v.text_exclude),
                code_count: v.code.len(),
                codes,
            });
        }
    }

    fn add_quantities(&mut self, name: &str, raw: &RawFile) {
        for q in &raw.quantity {
            if self.quantities.iter().any(|x| x.id == q.id) {
                self.err(name, Some(&q.id), "quantity id defined twice");
            }
            let mut units = Vec::new();
            for u in &q.unit {
                if !(u.factor.is_finite() && u.factor > 0.0) {
                    self.err(
                        name,
                        Some(&q.id),
                        format!("unit {:?}: factor must be a positive number", u.ucum),
                    );
                }
                if u.ucum.is_none() && u.text.is_empty() {
                    self.err(name, Some(&q.id), "a unit row needs a ucum code or a text");
                }
                let text = u.text.iter().map(|t| normalize_unit_text(t)).collect();
                units.push(UnitDef {
                    ucum: u.ucum.clone(),
                    text,
                    factor: u.factor,
                });
            }
            self.quantities.push(QuantityDef {
                id: q.id.clone(),
                canonical: q.canonical.clone(),
                units,
            });
        }
    }

    fn valueset_ref(&mut self, file: &str, item: &str, field: &str, id: Option<&str>) -> Option<usize> {
        let Some(id) = id else {
            self.err(file, Some(item), format!("missing {field}"));
            return None;
        };
        let found = self.valuesets.iter().position(|v| v.id == id);
        if found.is_none() {
            self.err(file, Some(item), format!("{field} {id:?} is not a value set"));
        }
        found
    }

    fn add_assays(&mut self, name: &str, raw: &RawFile) {
        for a in &raw.assay {
            let vs = self.valueset_ref(name, &a.id, "valueset", Some(&a.valueset));
            if a.negative_below > a.positive_from {
                self.err(name, Some(&a.id), "negative_below must not exceed positive_from");
            }
            if a.codes.is_empty() {
                self.err(name, Some(&a.id), "an assay needs at least one code");
            }
            let codes = a.codes.iter().map(|c| {
                let sys = self.systems.intern(&c.system);
                (sys, self.systems.normalize_code(sys, &c.code))
            });
            let codes = codes.collect();
            let units: Vec<String> = a.units.iter().map(|u| super::codes::assay_unit(u)).collect();
            if units.iter().any(String::is_empty) {
                self.err(name, Some(&a.id), "an empty unit; list the units the assay reports in");
            }
            let method = a.method.as_ref().map(|c| {
                let sys = self.systems.intern(&c.system);
                (sys, self.systems.normalize_code(sys, &c.code))
            });
            if let Some(valueset) = vs {
                let assay = Assay {
                    id: a.id.clone(),
                    valueset,
                    codes,
                    units,
                    method,
                    negative_below: a.negative_below,
                    positive_from: a.positive_from,
                };
                if let Some(other) = self.assays.iter().find(|o| overlap(o, &assay)) {
                    let msg = format!(
                        "applies to a code, unit and method assay {:?} already covers (which cutoff to use would be unclear)",
                        other.id
                    );
                    self.err(name, Some(&a.id), msg);
                }
                self.assays.push(assay);
            }
        }
    }

    fn add_rules(&mut self, name: &str, raw: &RawFile) {
        if let Some(status) = &raw.status {
            self.statuses = ExcludedStatuses::from_map(status.clone());
        }
        if let Some(c) = &raw.candidates {
            self.candidates = Some((name.to_string(), c.lab_peak.clone(), c.above));
        }
        if let Some(a) = &raw.answers {
            let get = |b: &mut Self, field: &str, v: &str| b.valueset_ref(name, "answers", field, Some(v));
            let sets = [
                get(self, "positive", &a.positive),
                get(self, "negative", &a.negative),
                get(self, "indeterminate", &a.indeterminate),
                get(self, "yes", &a.yes),
                get(self, "no", &a.no),
            ];
            if let [Some(positive), Some(negative), Some(indeterminate), Some(yes), Some(no)] = sets {
                self.answers = Some(Answers {
                    positive,
                    negative,
                    indeterminate,
                    yes,
                    no,
                });
            }
        }
        if let Some(d) = &raw.diagnosis {
            let id = d.id.as_str();
            let vs = self.valueset_ref(name, id, "valueset", Some(&d.valueset));
            let parent = self.valueset_ref(name, id, "parent_valueset", Some(&d.parent_valueset));
            let text = self.valueset_ref(name, id, "text_valueset", Some(&d.text_valueset));
            let differential = self.valueset_ref(name, id, "differential_valueset", Some(&d.differential_valueset));
            if let (Some(valueset), Some(parent), Some(text), Some(differential)) = (vs, parent, text, differential) {
                self.diagnosis = Some(DiagnosisRule {
                    id: id.to_string(),
                    valueset,
                    parent,
                    text,
                    differential,
                });
            }
        }
        for r in &raw.rule {
            self.add_rule(name, r);
        }
    }

    fn add_rule(&mut self, file: &str, r: &RawRule) {
        let id = r.id.as_str();
        let vs = |b: &mut Self, field: &str, v: &Option<String>| b.valueset_ref(file, id, field, v.as_deref());
        let kind = match r.kind.as_str() {
            "lab-peak" => {
                let valueset = vs(self, "valueset", &r.valueset);
                let quantity = self.quantity_ref(file, id, r.quantity.as_deref());
                valueset
                    .zip(quantity)
                    .map(|(valueset, quantity)| RuleKind::LabPeak { valueset, quantity })
            }
            "antibody" => vs(self, "valueset", &r.valueset).map(|valueset| RuleKind::Antibody { valueset }),
            "finding" => vs(self, "valueset", &r.valueset).map(|valueset| RuleKind::Finding { valueset }),
            "exposure" => vs(self, "valueset", &r.valueset).map(|valueset| RuleKind::Exposure { valueset }),
            "mri" => {
                let edema = vs(self, "edema_valueset", &r.edema_valueset);
                let fatty = vs(self, "fatty_valueset", &r.fatty_valueset);
                edema.zip(fatty).map(|(edema, fatty)| RuleKind::Mri { edema, fatty })
            }
            "outcome" => {
                let v = vs(self, "valueset", &r.valueset);
                let c = vs(self, "complete_valueset", &r.complete_valueset);
                let p = vs(self, "partial_valueset", &r.partial_valueset);
                let n = vs(self, "none_valueset", &r.none_valueset);
                match (v, c, p, n) {
                    (Some(valueset), Some(complete), Some(partial), Some(none)) => Some(RuleKind::Outcome {
                        valueset,
                        complete,
                        partial,
                        none,
                    }),
                    _ => None,
                }
            }
            other => {
                self.err(
                    file,
                    Some(id),
                    format!("unknown kind {other:?} (expected lab-peak, antibody, finding, mri, exposure or outcome)"),
                );
                None
            }
        };
        let Some(kind) = kind else { return };
        if self.rules.iter().any(|(_, x)| x.id == id) {
            self.err(file, Some(id), "rule id defined twice");
        }
        let Some((_, d)) = &self.dictionary else { return };
        if let Some(column) = dictionary::rule_column(file, id, &r.column, &kind, d, &mut self.errors) {
            let rule = Rule {
                id: id.to_string(),
                column,
                kind,
            };
            self.rules.push((file.to_string(), rule));
        }
    }

    fn quantity_ref(&mut self, file: &str, item: &str, id: Option<&str>) -> Option<usize> {
        let found = id.and_then(|id| self.quantities.iter().position(|q| q.id == id));
        if found.is_none() {
            self.err(
                file,
                Some(item),
                format!("quantity {id:?} is not defined in a units file"),
            );
        }
        found
    }

    fn roles(&self) -> Vec<u8> {
        let mut roles = vec![0u8; self.valuesets.len()];
        if let Some(d) = &self.diagnosis {
            for vs in [d.valueset, d.parent, d.differential, d.text] {
                roles[vs] |= role::CONDITION;
            }
        }
        for (_, r) in &self.rules {
            let (sets, role): (Vec<usize>, u8) = match r.kind {
                RuleKind::LabPeak { valueset, .. } | RuleKind::Antibody { valueset } => {
                    (vec![valueset], role::OBSERVATION)
                }
                RuleKind::Finding { valueset } => (vec![valueset], role::OBSERVATION | role::CONDITION | role::REPORT),
                RuleKind::Mri { edema, fatty } => (vec![edema, fatty], role::OBSERVATION | role::REPORT),
                RuleKind::Exposure { valueset } => (vec![valueset], role::MEDICATION),
                RuleKind::Outcome { valueset, .. } => (vec![valueset], role::OBSERVATION),
            };
            for vs in sets {
                roles[vs] |= role;
            }
        }
        for vs in self.text.sources.iter().filter_map(|s| s.valueset) {
            roles[vs] |= role::TEXT;
        }
        roles
    }

    fn finish(mut self) -> Result<MappingSet, Vec<LoadError>> {
        if let Some((file, d)) = &self.dictionary {
            dictionary::check_rules(file, d, &self.rules, &self.quantities, &mut self.errors);
        }
        let candidates = self.candidate_rule();
        if self.diagnosis.is_none() {
            self.err("rules", None, "no [diagnosis] section");
        }
        if self.answers.is_none() {
            self.err("rules", None, "no [answers] section");
        }
        let known: HashMap<&str, ()> = crate::fhir::MAPPED_TYPES.iter().map(|t| (*t, ())).collect();
        for t in self.statuses.types() {
            if !known.contains_key(t.as_str()) && t != "Condition_verification" {
                self.errors.push(LoadError {
                    file: "rules".into(),
                    item: Some("status".into()),
                    message: format!("{t:?} is not a mapped resource type"),
                });
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let roles = self.roles();
        let (Some(diagnosis), Some(candidates), Some(answers), Some((_, dictionary))) =
            (self.diagnosis, candidates, self.answers, self.dictionary)
        else {
            return Err(self.errors);
        };
        Ok(MappingSet {
            versions: self.versions,
            systems: self.systems,
            valuesets: self.valuesets,
            roles,
            index: self.index,
            concept_maps: self.concept_maps,
            quantities: self.quantities,
            assays: self.assays,
            statuses: self.statuses,
            diagnosis,
            answers,
            candidates,
            dictionary,
            rules: self.rules.into_iter().map(|(_, r)| r).collect(),
            text: self.text,
        })
    }

    /// `[candidates]`, its lab peak resolved in the dictionary.
    fn candidate_rule(&mut self) -> Option<CandidateRule> {
        let Some((file, column, above)) = self.candidates.clone() else {
            self.err("rules", None, "no [candidates] section");
            return None;
        };
        let d = &self.dictionary.as_ref()?.1;
        match d.index(&column) {
            Some(lab_peak) if d.columns[lab_peak].kind == ColumnKind::LabPeak => {
                Some(CandidateRule { lab_peak, above })
            }
            _ => {
                let msg = format!("lab_peak {column:?} is not a lab-peak column of the dictionary");
                self.err(&file, Some("candidates"), msg);
                None
            }
        }
    }
}

impl ExcludedStatuses {
    fn from_map(by_type: BTreeMap<String, Vec<String>>) -> Self {
        Self { by_type }
    }

    fn types(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }
}

/// Whether two assays could both apply to one result: a shared code, a unit
/// both accept (no units: any) and methods that do not tell them apart.
fn overlap(a: &Assay, b: &Assay) -> bool {
    let units = a.units.is_empty() || b.units.is_empty() || a.units.iter().any(|u| b.units.contains(u));
    let methods = a.method.is_none() || b.method.is_none() || a.method == b.method;
    a.codes.iter().any(|c| b.codes.contains(c)) && units && methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_mappings_load() {
        let set = MappingSet::builtin().unwrap();
        let filled = set.dictionary.columns.iter().filter(|c| c.kind.filled_by_rule());
        assert_eq!(set.rules.len(), filled.count());
        let ck = set.valueset("ck").unwrap();
        assert!(set.in_valueset(ck, Some("urn:oid:2.16.840.1.113883.6.1"), Some("2157-6")));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut files: Vec<(String, String)> = super::super::BUILTIN
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        for (name, text) in files.iter_mut() {
            if name == "rules.toml" {
                *text = text
                    .replace("valueset = \"anti-srp\"", "valueset = \"anti-srq\"")
                    .replace(
                        "kind = \"finding\"\nvalueset = \"rash\"",
                        "kind = \"finding-x\"\nvalueset = \"rash\"",
                    );
            }
            if name == "units.toml" {
                text.push_str("\n[[quantity]]\nid = \"x\"\ncanonical = \"U\"\nbogus = 1\n");
            }
        }
        let errs = from_sources(files).unwrap_err();
        let text = errs.to_string();
        assert!(
            text.contains("rules.toml:anti-srp: valueset \"anti-srq\" is not a value set"),
            "{text}"
        );
        assert!(text.contains("rules.toml:rash: unknown kind \"finding-x\""), "{text}");
        assert!(
            text.contains("units.toml: TOML parse error at line 48") && text.contains("unknown field `bogus`"),
            "{text}"
        );
    }

    #[test]
    fn text_rule_problems_are_reported_at_once() {
        let files = super::super::BUILTIN.iter().map(|(n, s)| {
            let text = match *n {
                "text.toml" => s
                    .replace(
                        "from = [\"clinic-note\"]\npresent = [\n  \"rash\"",
                        "from = [\"nope\"]\npresent = [\n  \"rash\"",
                    )
                    .replace("rule = \"emg-myopathic\"", "rule = \"ck-peak\"")
                    .replace("valueset = \"report-mri\"", "valueset = \"report-xray\"")
                    .replace("\"gottron*\"", "\"... gottron\""),
                _ => s.to_string(),
            };
            (n.to_string(), text)
        });
        let text = from_sources(files).unwrap_err().to_string();
        for want in [
            "text.toml:rash-text: from \"nope\" is not a [[source]]",
            "text.toml:emg-myopathic-text: rule \"ck-peak\" is not of kind finding or mri",
            "text.toml:mri-report: valueset \"report-xray\" is not a value set",
            "text.toml:rash-text: phrase \"... gottron\" starts or ends with \"...\"",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }
}
