//! [`TextMarks`]: which kept resource texts the cohort's cells and candidates
//! name, one bit per text of each site, by the number the collector gave it
//! ([`crate::domain::TextNumber`]). `build` sets them as it notes each cell's
//! provenance; `write` renders the texts marked into `sources.ndjson`, so no
//! key is sorted or looked up to choose them.
//!
//! This module owns the bits only: what a number means is `collect::Texts`'s.

use std::collections::BTreeMap;

/// Per site, a bit per kept text (bit `n` for the text numbered `n`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextMarks {
    by_site: BTreeMap<String, Vec<u64>>,
}

impl TextMarks {
    /// Marks text `number` of `site`.
    pub fn mark(&mut self, site: &str, number: u64) {
        set(self.site_mut(site), number);
    }

    /// Marks each of `numbers`: of `site` when it names none, else of the site it names.
    pub fn mark_all(&mut self, site: &str, numbers: impl IntoIterator<Item = (Option<String>, u64)>) {
        // `site`'s bits taken out while marking: looked up once, not per number.
        let mut own = std::mem::take(self.site_mut(site));
        for (other, number) in numbers {
            match other {
                Some(other) if other != site => self.mark(&other, number),
                _ => set(&mut own, number),
            }
        }
        *self.site_mut(site) = own;
    }

    /// `site`'s bits (a new key's text allocated each call: called per case, not per text).
    fn site_mut(&mut self, site: &str) -> &mut Vec<u64> {
        self.by_site.entry(site.to_string()).or_default()
    }

    /// The marks of `site`'s texts.
    pub fn of(&self, site: &str) -> Marked<'_> {
        Marked(self.by_site.get(site).map_or(&[][..], Vec::as_slice))
    }

    /// Adds `other`'s marks to these.
    pub fn absorb(&mut self, other: TextMarks) {
        for (site, bits) in other.by_site {
            let held = self.by_site.entry(site).or_default();
            if held.len() < bits.len() {
                held.resize(bits.len(), 0);
            }
            for (h, b) in held.iter_mut().zip(bits) {
                *h |= b;
            }
        }
    }
}

/// Sets bit `number` of `bits`, growing them as needed.
fn set(bits: &mut Vec<u64>, number: u64) {
    let (word, bit) = (number / 64, number % 64);
    let word = usize::try_from(word).unwrap_or(usize::MAX);
    if word >= bits.len() {
        // A number beyond memory's reach cannot be a text held: nothing to mark.
        let Some(len) = word.checked_add(1) else { return };
        bits.resize(len, 0);
    }
    bits[word] |= 1 << bit;
}

/// One site's marks ([`TextMarks::of`]).
#[derive(Debug, Clone, Copy)]
pub struct Marked<'a>(&'a [u64]);

impl Marked<'_> {
    /// True when the text numbered `number` is marked.
    pub fn contains(&self, number: u64) -> bool {
        let word = usize::try_from(number / 64).unwrap_or(usize::MAX);
        self.0.get(word).is_some_and(|w| w >> (number % 64) & 1 == 1)
    }

    /// How many texts are marked.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_kept_per_site_and_merged() {
        let mut a = TextMarks::default();
        a.mark("a", 0);
        a.mark("a", 130);
        a.mark("a", 130);
        let mut b = TextMarks::default();
        // Of the row's site "a" unless another is named; "a" named is "a".
        b.mark_all(
            "a",
            [(None, 64), (Some("b".to_string()), 1), (Some("a".to_string()), 65)],
        );
        a.absorb(b);
        let marked = |site: &str| (0..200).filter(|&n| a.of(site).contains(n)).collect::<Vec<_>>();
        assert_eq!(marked("a"), [0, 64, 65, 130]);
        assert_eq!(marked("b"), [1]);
        assert!(marked("c").is_empty());
        assert_eq!((a.of("a").count(), a.of("b").count(), a.of("c").count()), (4, 1, 0));
    }
}
