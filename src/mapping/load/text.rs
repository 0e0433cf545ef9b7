//! Phase 2 for `text` files: cues, source kinds and text rules resolved
//! against the value sets and rules, every problem as `file:item: message`.

use super::super::spec::{RawCues, RawFile, RawTextRule};
use super::super::text::{Cues, DocResource, Phrase, Sets, Source, TextRule, TextRules, Trigger};
use super::super::{Rule, RuleKind};
use super::LoadError;
use crate::mapping::codes::ValueSet;

/// What the text rules are resolved against.
pub struct Known<'a> {
    /// The value sets.
    pub valuesets: &'a [ValueSet],
    /// The rules (with their files).
    pub rules: &'a [(String, Rule)],
}

/// The text rules of every `text` file (at most one file may hold `[cues]`).
pub fn resolve(files: &[(String, RawFile)], known: &Known<'_>, errors: &mut Vec<LoadError>) -> TextRules {
    let mut out = TextRules::default();
    let mut e = Errs { errors };
    for (name, raw) in files {
        if let Some(c) = &raw.cues {
            out.cues = cues(name, c, &mut e);
        }
        for s in &raw.source {
            let resource = match s.resource.as_str() {
                "DiagnosticReport" => Some(DocResource::Report),
                "DocumentReference" => Some(DocResource::Note),
                other => {
                    let msg = format!("resource {other:?} is not DiagnosticReport or DocumentReference");
                    e.at(name, &s.id, msg);
                    None
                }
            };
            let valueset = s.valueset.as_deref().and_then(|v| {
                let found = known.valuesets.iter().position(|x| x.id == v);
                if found.is_none() {
                    e.at(name, &s.id, format!("valueset {v:?} is not a value set"));
                }
                found
            });
            if out.sources.iter().any(|x| x.id == s.id) {
                e.at(name, &s.id, "source id defined twice");
            }
            if let Some(resource) = resource {
                let id = s.id.clone();
                out.sources.push(Source { id, resource, valueset });
            }
        }
    }
    for (name, raw) in files {
        for r in &raw.text_rule {
            if let Some(rule) = text_rule(name, r, known, &out.sources, &mut e) {
                if out.rules.iter().any(|x| x.id == rule.id || x.rule == rule.rule) {
                    e.at(name, &r.id, "a second text rule with this id or for this rule");
                }
                out.rules.push(rule);
            }
        }
    }
    if !out.rules.is_empty() && out.cues.window == 0 {
        e.errors.push(LoadError {
            file: "text".into(),
            item: Some("cues".into()),
            message: "text rules need a [cues] section with a window above 0".into(),
        });
    }
    out
}

struct Errs<'e> {
    errors: &'e mut Vec<LoadError>,
}

impl Errs<'_> {
    fn at(&mut self, file: &str, item: &str, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: file.to_string(),
            item: Some(item.to_string()),
            message: message.into(),
        });
    }

    fn phrases(&mut self, file: &str, item: &str, list: &[String]) -> Vec<Phrase> {
        list.iter()
            .filter_map(|p| Phrase::parse(p).map_err(|m| self.at(file, item, m)).ok())
            .collect()
    }
}

fn cues(name: &str, c: &RawCues, e: &mut Errs<'_>) -> Cues {
    let mut p = |list: &[String]| e.phrases(name, "cues", list);
    Cues {
        window: c.window,
        negation: p(&c.negation),
        post_negation: p(&c.post_negation),
        uncertainty: p(&c.uncertainty),
        post_uncertainty: p(&c.post_uncertainty),
        pseudo: p(&c.pseudo),
        terminate: p(&c.terminate),
    }
}

fn text_rule(name: &str, r: &RawTextRule, known: &Known<'_>, sources: &[Source], e: &mut Errs<'_>) -> Option<TextRule> {
    let rule = known.rules.iter().position(|(_, x)| x.id == r.rule);
    let Some(rule) = rule else {
        e.at(name, &r.id, format!("rule {:?} is not a rule of rules.toml", r.rule));
        return None;
    };
    let mri = match known.rules[rule].1.kind {
        RuleKind::Finding { .. } => false,
        RuleKind::Mri { .. } => true,
        _ => {
            e.at(name, &r.id, format!("rule {:?} is not of kind finding or mri", r.rule));
            return None;
        }
    };
    let mut from = Vec::new();
    for f in &r.from {
        match sources.iter().position(|s| &s.id == f) {
            Some(i) => from.push(i),
            None => e.at(name, &r.id, format!("from {f:?} is not a [[source]]")),
        }
    }
    if from.is_empty() {
        e.at(name, &r.id, "from names no source");
    }
    let lists: [(&[String], Sets, bool); 6] = [
        (&r.present, Sets::Present, false),
        (&r.absent, Sets::Absent, false),
        (&r.negated_only, Sets::NegatedOnly, false),
        (&r.edema, Sets::Edema, true),
        (&r.fatty, Sets::Fatty, true),
        (&r.normal, Sets::Normal, true),
    ];
    let mut triggers = Vec::new();
    for (list, sets, for_mri) in lists {
        if !list.is_empty() && for_mri != mri {
            let kind = if mri { "an mri rule" } else { "a finding rule" };
            e.at(
                name,
                &r.id,
                format!("{sets:?} phrases do not apply to {kind}").to_lowercase(),
            );
        }
        let phrases = e.phrases(name, &r.id, list);
        triggers.extend(phrases.into_iter().map(|phrase| Trigger { phrase, sets }));
    }
    if triggers.is_empty() {
        e.at(name, &r.id, "no phrases");
    }
    Some(TextRule {
        id: r.id.clone(),
        rule,
        from,
        triggers,
    })
}
