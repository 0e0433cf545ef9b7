//! An exact set of 128-bit keys, for the duplicate check: about 18 bytes
//! per key in memory, and past a limit about 1.3–2.6 bytes per key (the rest
//! on disk).
//!
//! A hash set of `u128` costs 19–39 bytes per key between resizes and twice
//! that while one happens. [`KeySet`] keeps most keys in sorted, disjoint
//! blocks of [`BLOCK`] keys (16 bytes each, found by binary search) and only
//! the newest in a hash set of at most 1/16 of the rest (at least
//! [`MIN_RECENT`]); when that fills, it is merged into the blocks, block by
//! block, so no step holds two copies of the set. Past a limit of keys in
//! memory ([`KeySet::with_limit`]) the blocks go to a sorted run on disk
//! ([`disk`]: a Bloom filter and a page index stay in memory).
//!
//! This module owns the data structure only; what a key means is the
//! collector's.

use std::collections::HashSet;

mod disk;

/// Keys per sorted block (64 KiB).
const BLOCK: usize = 4096;
/// The hash set of new keys is merged once it holds this many, or 1/16 of the sorted keys.
const MIN_RECENT: usize = 1 << 16;

/// An exact set of `u128` keys.
#[derive(Debug)]
pub(super) struct KeySet {
    /// Sorted, disjoint, in ascending order; every block but the last is full.
    blocks: Vec<Box<[u128]>>,
    /// The first key of each block.
    firsts: Vec<u128>,
    /// Keys in `blocks`.
    sorted: usize,
    /// Keys not yet merged.
    recent: HashSet<u128, foldhash::fast::RandomState>,
    /// Keys in memory (`sorted` plus `recent`) past which the blocks go to disk.
    limit: usize,
    /// Keys older than the blocks.
    disk: disk::Disk,
    /// A temporary file failed: new keys stay in memory.
    spill_failed: bool,
    /// The runs could not be read back: they are no longer consulted.
    unreadable: bool,
    /// Failures not yet taken by [`KeySet::take_troubles`].
    troubles: Vec<Trouble>,
}

/// A failure of the set's temporary files. The set stays usable: a key that
/// could not be written stays in memory; runs that cannot be read back are
/// no longer consulted (a later copy of one of their keys is taken as new).
#[derive(Debug)]
pub(super) enum Trouble {
    /// Keys could not be written (or merged) on disk.
    Write(std::io::Error),
    /// Keys on disk could not be read back.
    Read(std::io::Error),
}

impl Default for KeySet {
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

impl KeySet {
    /// A set that keeps about `limit` keys in memory and the rest on disk.
    pub(super) fn with_limit(limit: usize) -> Self {
        Self {
            blocks: Vec::new(),
            firsts: Vec::new(),
            sorted: 0,
            recent: HashSet::default(),
            limit: limit.max(1),
            disk: disk::Disk::default(),
            spill_failed: false,
            unreadable: false,
            troubles: Vec::new(),
        }
    }

    /// Adds `key`; false when it was already there.
    pub(super) fn insert(&mut self, key: u128) -> bool {
        // Disk and memory are disjoint: a key found on disk is not in `recent`.
        if self.in_blocks(key) || self.on_disk(key) || !self.recent.insert(key) {
            return false;
        }
        let mut cap = MIN_RECENT.max(self.sorted / 16);
        if !self.spill_failed {
            cap = cap.min(self.limit);
        }
        if self.recent.len() >= cap {
            self.merge();
            if self.sorted >= self.limit && !self.spill_failed {
                self.spill();
            }
        }
        true
    }

    /// The failures since the last call (see [`Trouble`]).
    pub(super) fn take_troubles(&mut self) -> Vec<Trouble> {
        std::mem::take(&mut self.troubles)
    }

    /// Number of keys.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sorted + self.recent.len() + self.disk.len()
    }

    fn on_disk(&mut self, key: u128) -> bool {
        if self.unreadable {
            return false;
        }
        self.disk.contains(key).unwrap_or_else(|e| {
            (self.unreadable, self.spill_failed) = (true, true);
            self.troubles.push(Trouble::Read(e));
            false
        })
    }

    /// Moves the blocks to a new run on disk.
    fn spill(&mut self) {
        let keys = self.blocks.iter().flat_map(|b| b.iter().copied());
        if let Err(e) = self.disk.add_run(keys) {
            self.spill_failed = true;
            return self.troubles.push(Trouble::Write(e));
        }
        (self.blocks, self.firsts, self.sorted) = (Vec::new(), Vec::new(), 0);
        if let Err(e) = self.disk.compact_if_full() {
            self.spill_failed = true;
            self.troubles.push(Trouble::Write(e));
        }
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

    /// Keys like those of [`agrees_with_a_hash_set_through_merges`], `n` of them.
    fn keys(n: u64) -> impl Iterator<Item = u128> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n).map(move |i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 7 == 0 {
                u128::from(i % 500)
            } else {
                u128::from(x) << 64 | u128::from(i)
            }
        })
    }

    #[test]
    fn keys_past_the_limit_go_to_disk_and_are_still_found() {
        let mut set = KeySet::with_limit(1000);
        let mut reference = HashSet::new();
        for (i, key) in keys(30_000).enumerate() {
            assert_eq!(set.insert(key), reference.insert(key), "key {i}");
        }
        assert!(set.take_troubles().is_empty());
        assert!(set.disk.len() > 20_000, "most went to disk: {}", set.disk.len());
        assert!(set.sorted + set.recent.len() <= 1000, "memory holds at most the limit");
        assert_eq!(set.len(), reference.len());
        assert!(reference.into_iter().all(|k| !set.insert(k)));
    }

    #[test]
    fn a_failing_disk_is_told_once_and_the_set_stays_exact_in_memory() {
        let mut set = KeySet::with_limit(100);
        set.disk.fail = true;
        let mut reference = HashSet::new();
        for key in keys(5_000) {
            assert_eq!(set.insert(key), reference.insert(key));
        }
        let troubles = set.take_troubles();
        assert!(matches!(troubles[..], [Trouble::Write(_)]), "{troubles:?}");
        assert_eq!((set.disk.len(), set.len()), (0, reference.len()));
        assert!(reference.into_iter().all(|k| !set.insert(k)));
    }

    #[test]
    fn runs_that_cannot_be_read_back_are_told_once_and_then_left_alone() {
        let mut set = KeySet::with_limit(100);
        let first: Vec<u128> = keys(1_000).collect();
        for &k in &first {
            set.insert(k);
        }
        assert!(set.disk.len() > 0);
        set.disk.fail = true;
        let in_memory: Vec<u128> = set.recent.iter().copied().collect();
        let reinserted: Vec<bool> = first.iter().map(|&k| set.insert(k)).collect();
        let troubles = set.take_troubles();
        assert!(matches!(troubles[..], [Trouble::Read(_)]), "{troubles:?}");
        assert!(reinserted.iter().any(|&new| new), "keys on disk are taken as new");
        assert!(
            in_memory.iter().all(|&k| !set.insert(k)),
            "keys in memory are still found"
        );
    }
}
