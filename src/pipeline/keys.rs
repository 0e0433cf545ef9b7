//! An exact set of 128-bit keys in about 18 bytes each, for the duplicate check.
//!
//! A hash set of `u128` costs 19–39 bytes per key between resizes and twice
//! that while one happens. [`KeySet`] keeps most keys in sorted, disjoint
//! blocks of [`BLOCK`] keys (16 bytes each, found by binary search) and only
//! the newest in a hash set of at most 1/16 of the rest (at least
//! [`MIN_RECENT`]); when that fills, it is merged into the blocks, block by
//! block, so no step holds two copies of the set.
//!
//! This module owns the data structure only; what a key means is the
//! collector's.

use std::collections::HashSet;

/// Keys per sorted block (64 KiB).
const BLOCK: usize = 4096;
/// The hash set of new keys is merged once it holds this many, or 1/16 of the sorted keys.
const MIN_RECENT: usize = 1 << 16;

/// An exact set of `u128` keys.
#[derive(Debug, Default)]
pub(super) struct KeySet {
    /// Sorted, disjoint, in ascending order; every block but the last is full.
    blocks: Vec<Box<[u128]>>,
    /// The first key of each block.
    firsts: Vec<u128>,
    /// Keys in `blocks`.
    sorted: usize,
    /// Keys not yet merged.
    recent: HashSet<u128>,
}

impl KeySet {
    /// Adds `key`; false when it was already there.
    pub(super) fn insert(&mut self, key: u128) -> bool {
        if self.in_blocks(key) || !self.recent.insert(key) {
            return false;
        }
        if self.recent.len() >= MIN_RECENT.max(self.sorted / 16) {
            self.merge();
        }
        true
    }

    /// Number of keys.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sorted + self.recent.len()
    }

    fn in_blocks(&self, key: u128) -> bool {
        match self.firsts.partition_point(|&f| f <= key) {
            0 => false,
            i => self.blocks[i - 1].binary_search(&key).is_ok(),
        }
    }

    /// Moves `recent` into the blocks.
    fn merge(&mut self) {
        let mut new: Vec<u128> = self.recent.drain().collect();
        new.sort_unstable();
        let mut out = Blocks::default();
        let mut new = new.into_iter().peekable();
        for block in std::mem::take(&mut self.blocks) {
            for &key in block.iter() {
                while let Some(k) = new.next_if(|&k| k < key) {
                    out.push(k);
                }
                out.push(key);
            }
            // `block` is freed here, before the next one is read.
        }
        new.for_each(|k| out.push(k));
        self.sorted = out.len;
        (self.blocks, self.firsts) = out.finish();
    }
}

/// Sorted blocks being filled.
#[derive(Default)]
struct Blocks {
    done: Vec<Box<[u128]>>,
    firsts: Vec<u128>,
    current: Vec<u128>,
    len: usize,
}

impl Blocks {
    fn push(&mut self, key: u128) {
        if self.current.is_empty() {
            self.current.reserve_exact(BLOCK);
            self.firsts.push(key);
        }
        self.current.push(key);
        self.len += 1;
        if self.current.len() == BLOCK {
            self.done.push(std::mem::take(&mut self.current).into_boxed_slice());
        }
    }

    fn finish(mut self) -> (Vec<Box<[u128]>>, Vec<u128>) {
        if !self.current.is_empty() {
            self.done.push(self.current.into_boxed_slice());
        }
        (self.done, self.firsts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spread of keys, with repeats, through several merges.
    #[test]
    fn agrees_with_a_hash_set_through_merges() {
        let mut set = KeySet::default();
        let mut reference = HashSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every fifth key repeats an earlier one (small values recur).
            let key = if i % 5 == 0 {
                u128::from(i % 1000)
            } else {
                u128::from(x) << 64 | u128::from(i)
            };
            assert_eq!(set.insert(key), reference.insert(key), "key {i}");
        }
        assert_eq!(set.len(), reference.len());
        assert!(set.sorted > MIN_RECENT, "merged at least once");
        assert!(set.blocks.windows(2).all(|w| w[0].last() < w[1].first()));
        assert!(set.blocks.iter().all(|b| b.windows(2).all(|w| w[0] < w[1])));
        for key in reference {
            assert!(!set.insert(key));
        }
    }
}
