//! NegEx-style scope within one sentence: a cue before a mention governs it
//! when it ends at most `window` words before it, a cue after when it starts
//! at most `window` words after it, and no terminating word stands between.
//! A pseudo-cue ("no change in") overlapping a cue cancels it. Uncertainty
//! wins over negation.

use super::phrase::{Phrase, Word};
use super::{Cues, Polarity};

/// The cues found in one sentence, as word ranges.
pub struct Scope {
    window: usize,
    negation: Vec<(usize, usize)>,
    post_negation: Vec<(usize, usize)>,
    uncertainty: Vec<(usize, usize)>,
    post_uncertainty: Vec<(usize, usize)>,
    terminate: Vec<usize>,
}

impl Scope {
    /// Finds every cue of `cues` in `words`.
    pub fn new(cues: &Cues, words: &[Word]) -> Self {
        let pseudo = found(&cues.pseudo, words, &[]);
        let terminate = found(&cues.terminate, words, &[]).into_iter().map(|(a, _)| a).collect();
        Self {
            window: cues.window,
            negation: found(&cues.negation, words, &pseudo),
            post_negation: found(&cues.post_negation, words, &pseudo),
            uncertainty: found(&cues.uncertainty, words, &pseudo),
            post_uncertainty: found(&cues.post_uncertainty, words, &pseudo),
            terminate,
        }
    }

    /// How the mention at words `a..b` reads.
    pub fn polarity(&self, a: usize, b: usize) -> Polarity {
        if self.before(&self.uncertainty, a) || self.after(&self.post_uncertainty, b) {
            Polarity::Uncertain
        } else if self.before(&self.negation, a) || self.after(&self.post_negation, b) {
            Polarity::Negated
        } else {
            Polarity::Affirmed
        }
    }

    fn before(&self, cues: &[(usize, usize)], a: usize) -> bool {
        cues.iter()
            .any(|&(_, y)| y <= a && a - y <= self.window && !self.terminate.iter().any(|t| (y..a).contains(t)))
    }

    fn after(&self, cues: &[(usize, usize)], b: usize) -> bool {
        cues.iter()
            .any(|&(x, _)| x >= b && x - b <= self.window && !self.terminate.iter().any(|t| (b..x).contains(t)))
    }
}

/// Where any of `phrases` match in `words`, minus those inside a pseudo-cue.
fn found(phrases: &[Phrase], words: &[Word], pseudo: &[(usize, usize)]) -> Vec<(usize, usize)> {
    phrases
        .iter()
        .flat_map(|p| p.find_all(words))
        .filter(|(a, b)| !pseudo.iter().any(|(x, y)| a < y && x < b))
        .collect()
}
