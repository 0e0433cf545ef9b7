//! Findings from report and note text: the rules of `mappings/text.toml`
//! (loaded in `load/text.rs`) and the matcher that applies them to one text.
//!
//! [`scan`] cuts a text into sentences and words (`phrase`), finds each
//! rule's phrases and decides, NegEx-style within the sentence (`scope`),
//! whether each mention is affirmed, negated or uncertain. It returns spans
//! and rule / phrase indexes, never text, so callers can name where a value
//! came from without copying a word of the note. It owns no FHIR: which
//! element a text came from, and the facts it makes, are `extract/text.rs`'s.

pub(crate) mod phrase;
mod scope;

use std::sync::OnceLock;

pub use phrase::{Phrase, PhraseIndex};

/// Negation and uncertainty cues, with their scope.
#[derive(Debug, Clone, Default)]
pub struct Cues {
    /// Words a cue may be from its trigger.
    pub window: usize,
    /// Cues before a trigger that negate it.
    pub negation: Vec<Phrase>,
    /// Cues after a trigger that negate it.
    pub post_negation: Vec<Phrase>,
    /// Cues before a trigger that make it uncertain.
    pub uncertainty: Vec<Phrase>,
    /// Cues after a trigger that make it uncertain.
    pub post_uncertainty: Vec<Phrase>,
    /// Phrases that look like cues and are none.
    pub pseudo: Vec<Phrase>,
    /// Words that end a cue's scope.
    pub terminate: Vec<Phrase>,
}

/// Which resources a source kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocResource {
    /// A DiagnosticReport, by its `code`.
    Report,
    /// A DocumentReference, by its `type` or `category`.
    Note,
}

/// A kind of report or note text rules read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its id.
    pub id: String,
    /// The resource type.
    pub resource: DocResource,
    /// The value set its code / type must match (`None`: any).
    pub valueset: Option<usize>,
}

/// What a phrase's match sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sets {
    /// Finding: affirmed yes, negated no.
    Present,
    /// Finding: affirmed no, negated uncertain.
    Absent,
    /// Finding: negated no, affirmed nothing.
    NegatedOnly,
    /// MRI oedema: affirmed yes, negated no.
    Edema,
    /// MRI fatty infiltration: affirmed yes, negated no.
    Fatty,
    /// MRI normal: affirmed both parts no, negated uncertain.
    Normal,
}

/// One phrase of a text rule.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The phrase.
    pub phrase: Phrase,
    /// What it sets.
    pub sets: Sets,
}

/// One text rule: the phrases that feed one finding or MRI rule.
#[derive(Debug, Clone)]
pub struct TextRule {
    /// Its id (in provenance).
    pub id: String,
    /// The rules.toml rule it feeds (index into `MappingSet::rules`).
    pub rule: usize,
    /// The source kinds it reads, best first (indexes into [`TextRules::sources`]).
    pub from: Vec<usize>,
    /// Its phrases.
    pub triggers: Vec<Trigger>,
}

/// Every text rule, loaded (empty when the mappings have no text file).
#[derive(Debug, Clone, Default)]
pub struct TextRules {
    /// The cues.
    pub cues: Cues,
    /// The source kinds.
    pub sources: Vec<Source>,
    /// The rules.
    pub rules: Vec<TextRule>,
    /// Every rule's phrases by first word, built on the first [`scan`]
    /// (the rules are not changed once loaded).
    index: OnceLock<TriggerIndex>,
}

impl TextRules {
    /// True when some rule reads resources of `resource`.
    pub fn reads(&self, resource: DocResource) -> bool {
        self.sources.iter().any(|s| s.resource == resource)
    }

    fn index(&self) -> &TriggerIndex {
        self.index.get_or_init(|| TriggerIndex::new(&self.rules))
    }
}

/// Every trigger of every rule in one [`PhraseIndex`], with its owner.
#[derive(Debug, Clone, Default)]
struct TriggerIndex {
    phrases: PhraseIndex,
    /// `(rule, trigger)` of each indexed phrase.
    owner: Vec<(usize, usize)>,
}

impl TriggerIndex {
    fn new(rules: &[TextRule]) -> Self {
        let mut owner = Vec::new();
        let mut phrases = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            for (t, trigger) in rule.triggers.iter().enumerate() {
                owner.push((r, t));
                phrases.push(trigger.phrase.clone());
            }
        }
        Self {
            phrases: PhraseIndex::new(phrases),
            owner,
        }
    }
}

/// How a mention reads in its sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Stated as present.
    Affirmed,
    /// Negated by a cue.
    Negated,
    /// Made uncertain by a cue.
    Uncertain,
}

/// One mention found: which rule and phrase, where, and how it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`TextRules::rules`].
    pub rule: usize,
    /// Index into that rule's triggers.
    pub trigger: usize,
    /// Byte span of the mention in the text.
    pub span: (usize, usize),
    /// Byte span of its sentence.
    pub sentence: (usize, usize),
    /// Affirmed, negated or uncertain.
    pub polarity: Polarity,
}

/// The mentions of the rules `which` (indexes into `rules.rules`) in `text`,
/// sentence by sentence, rules in the order of `which`. In one sentence, a
/// rule's longer match wins over a shorter one it overlaps. Cues are looked
/// for only in sentences with a mention.
pub fn scan(rules: &TextRules, which: &[usize], text: &str) -> Vec<Hit> {
    let index = rules.index();
    let mut wanted = vec![false; rules.rules.len()];
    for &r in which {
        if let Some(w) = wanted.get_mut(r) {
            *w = true;
        }
    }
    let mut hits = Vec::new();
    for sentence in phrase::sentences(text) {
        let words = phrase::words(text, sentence.0, sentence.1);
        let found = index.phrases.find_all(&words, |id| wanted[index.owner[id].0]);
        if found.is_empty() {
            continue;
        }
        let scope = scope::Scope::new(&rules.cues, &words);
        for &r in which {
            let of_rule = found
                .iter()
                .filter(|(id, _)| index.owner[*id].0 == r)
                .map(|&(id, m)| (index.owner[id].1, m));
            for (trigger, (a, b)) in best_matches(of_rule.collect()) {
                hits.push(Hit {
                    rule: r,
                    trigger,
                    span: (words[a].start, words[b - 1].end),
                    sentence,
                    polarity: scope.polarity(a, b),
                });
            }
        }
    }
    hits
}

/// Of one rule's matches in a sentence, `(trigger, (first word, end))`: the
/// longest first, dropping any that overlaps one already kept.
fn best_matches(mut all: Vec<(usize, (usize, usize))>) -> Vec<(usize, (usize, usize))> {
    all.sort_by_key(|(t, (a, b))| (std::cmp::Reverse(b - a), *a, *t));
    let mut kept: Vec<(usize, (usize, usize))> = Vec::new();
    for (t, (a, b)) in all {
        if kept.iter().all(|(_, (x, y))| b <= *x || a >= *y) {
            kept.push((t, (a, b)));
        }
    }
    kept.sort_by_key(|(_, (a, _))| *a);
    kept
}

#[cfg(test)]
mod tests;
