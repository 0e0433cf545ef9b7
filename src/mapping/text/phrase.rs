//! Words and phrases: how text is cut into sentences and words, and how a
//! phrase of `text.toml` (`a|b` alternatives, `word*` prefixes, `...` gaps)
//! matches a run of words. Positions are byte offsets into the text read,
//! so a match names its character span.

use std::collections::HashMap;

/// Words a `...` gap may skip.
const GAP: usize = 3;

/// One word of a sentence: its normalized form and its byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Lower-cased, apostrophes dropped.
    pub norm: String,
    /// Byte offset of its first character in the text.
    pub start: usize,
    /// Byte offset just past its last character.
    pub end: usize,
}

/// The sentences of `text`, as byte ranges: cut at `.`, `!`, `?` or `;`
/// followed by white space (or the end), and at line breaks.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_blank = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        let cut = c == '\n' || c == '\r' || (matches!(c, '.' | '!' | '?' | ';') && next_blank);
        if cut {
            push_range(&mut out, text, start, i);
            start = i + c.len_utf8();
        }
    }
    push_range(&mut out, text, start, text.len());
    out
}

fn push_range(out: &mut Vec<(usize, usize)>, text: &str, start: usize, end: usize) {
    if text
        .get(start..end)
        .is_some_and(|s| s.chars().any(char::is_alphanumeric))
    {
        out.push((start, end));
    }
}

/// The words of `text[start..end]`: runs of letters, digits, `/` and `+`
/// (a `-` before `/`, as in "4-/5", is dropped), lower-cased, apostrophes removed.
pub fn words(text: &str, start: usize, end: usize) -> Vec<Word> {
    let mut out = Vec::new();
    let mut cur: Option<Word> = None;
    let slice = text.get(start..end).unwrap_or("");
    let mut chars = slice.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = start + i;
        let dash_slash = c == '-' && chars.peek().is_some_and(|(_, n)| *n == '/');
        let joins = matches!(c, '\'' | '\u{2019}') && cur.is_some();
        if c.is_alphanumeric() || c == '/' || c == '+' || dash_slash || joins {
            let w = cur.get_or_insert_with(|| Word {
                norm: String::new(),
                start: at,
                end: at,
            });
            if !(dash_slash || joins) {
                w.norm.extend(c.to_lowercase());
            }
            w.end = at + c.len_utf8();
        } else if let Some(w) = cur.take() {
            out.push(w);
        }
    }
    out.extend(cur);
    out
}

/// One word of a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Any of these words (`a|b`); a trailing `*` matches a prefix.
    Word(Vec<String>),
    /// `...`: up to [`GAP`] words.
    Gap,
}

/// A phrase of `text.toml`, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// As written in the mapping file (named in provenance and issues).
    pub text: String,
    toks: Vec<Tok>,
}

impl Phrase {
    /// Parses a phrase; an error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        for raw in text.split_whitespace() {
            if raw == "..." {
                toks.push(Tok::Gap);
                continue;
            }
            let alts: Vec<String> = raw.split('|').map(normalize_alt).collect();
            if alts.iter().any(|a| a.trim_end_matches('*').is_empty()) {
                return Err(format!("phrase {text:?}: an empty word in {raw:?}"));
            }
            toks.push(Tok::Word(alts));
        }
        match (toks.first(), toks.last()) {
            (Some(Tok::Word(_)), Some(Tok::Word(_))) => Ok(Self {
                text: text.to_string(),
                toks,
            }),
            (None, _) => Err("an empty phrase".to_string()),
            _ => Err(format!("phrase {text:?} starts or ends with \"...\"")),
        }
    }

    /// The end (exclusive word index) of the shortest match starting at word `at`.
    pub fn match_at(&self, words: &[Word], at: usize) -> Option<usize> {
        match_from(&self.toks, words, at)
    }

    /// Every match in `words`, as `(first word, end)`, left to right, not overlapping.
    pub fn find_all(&self, words: &[Word]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < words.len() {
            match self.match_at(words, at) {
                Some(end) => {
                    out.push((at, end));
                    at = end.max(at + 1);
                }
                None => at += 1,
            }
        }
        out
    }
}

/// Phrases indexed by their first word, so a sentence is matched by looking
/// each word up once instead of trying every phrase at every word.
#[derive(Debug, Clone, Default)]
pub struct PhraseIndex {
    phrases: Vec<Phrase>,
    exact: HashMap<String, Vec<usize>>,
    prefix: Vec<(String, usize)>,
}

impl PhraseIndex {
    /// Indexes `phrases`; a match names a phrase by its position here.
    pub fn new(phrases: Vec<Phrase>) -> Self {
        let mut index = Self::default();
        for (id, p) in phrases.iter().enumerate() {
            let Some(Tok::Word(alts)) = p.toks.first() else {
                continue;
            };
            for alt in alts {
                match alt.strip_suffix('*') {
                    Some(prefix) => index.prefix.push((prefix.to_string(), id)),
                    None => index.exact.entry(alt.clone()).or_default().push(id),
                }
            }
        }
        index.phrases = phrases;
        index
    }

    /// Every match of the phrases `wanted` accepts, as `(phrase, (first word,
    /// end))`: for each phrase the matches [`Phrase::find_all`] gives.
    pub fn find_all(&self, words: &[Word], wanted: impl Fn(usize) -> bool) -> Vec<(usize, (usize, usize))> {
        let mut next = vec![0; self.phrases.len()];
        let mut out = Vec::new();
        for (at, w) in words.iter().enumerate() {
            let exact = self.exact.get(&w.norm).into_iter().flatten().copied();
            let prefix = self.prefix.iter().filter(|(p, _)| w.norm.starts_with(p.as_str()));
            for id in exact.chain(prefix.map(|(_, id)| *id)) {
                if at < next[id] || !wanted(id) {
                    continue;
                }
                if let Some(end) = self.phrases[id].match_at(words, at) {
                    out.push((id, (at, end)));
                    next[id] = end.max(at + 1);
                }
            }
        }
        out
    }
}

fn normalize_alt(a: &str) -> String {
    a.chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn match_from(toks: &[Tok], words: &[Word], at: usize) -> Option<usize> {
    let Some((tok, rest)) = toks.split_first() else {
        return Some(at);
    };
    match tok {
        Tok::Gap => (0..=GAP).find_map(|skip| match_from(rest, words, at + skip)),
        Tok::Word(alts) => {
            let w = words.get(at)?;
            alts.iter()
                .any(|a| word_is(a, &w.norm))
                .then(|| match_from(rest, words, at + 1))
                .flatten()
        }
    }
}

fn word_is(alt: &str, word: &str) -> bool {
    match alt.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => alt == word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(t: &str) -> Vec<String> {
        words(t, 0, t.len()).into_iter().map(|w| w.norm).collect()
    }

    #[test]
    fn cuts_sentences_and_words() {
        let t = "Hip flexors 4-/5. CK 3.5 today; Gottron's papules!\nNo rash";
        let s: Vec<&str> = sentences(t).iter().map(|(a, b)| &t[*a..*b]).collect();
        assert_eq!(
            s,
            ["Hip flexors 4-/5", " CK 3.5 today", " Gottron's papules", "No rash"]
        );
        assert_eq!(norms("Hip flexors 4-/5"), ["hip", "flexors", "4/5"]);
        assert_eq!(
            norms("Gottron’s papules, non-specific"),
            ["gottrons", "papules", "non", "specific"]
        );
        let w = words(t, 0, t.len());
        assert_eq!(&t[w[0].start..w[1].end], "Hip flexors");
    }

    #[test]
    fn phrases_match_alternatives_prefixes_and_gaps() {
        let p = Phrase::parse("necrotic ... myofiber|myofibers").unwrap();
        let w = words("scattered necrotic and regenerating myofibers seen", 0, 49);
        assert_eq!(p.find_all(&w), [(1, 5)]);
        let g = Phrase::parse("gottron*").unwrap();
        assert_eq!(g.find_all(&words("Gottron's papules", 0, 17)), [(0, 1)]);
        assert!(Phrase::parse("... x").is_err());
        assert!(Phrase::parse("a |b").is_err());
        assert!(Phrase::parse(" ").is_err());
        let far = words("necrotic a b c d myofibers", 0, 26);
        assert!(p.find_all(&far).is_empty());
    }
}
