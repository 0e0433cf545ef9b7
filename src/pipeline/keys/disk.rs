//! The older keys of a [`KeySet`](super::KeySet): sorted runs in temporary
//! files, with a Bloom filter in memory (1.25–2.5 bytes per key) that answers
//! "not there" for all but about 1 % of new keys without a read, and the first
//! key of every 4 KiB page of each run (0.06 bytes per key) so a lookup reads
//! one page per run.
//!
//! This module owns the files and the filter; which keys come here, and when,
//! is the set's.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Keys per page read back by a lookup (4 KiB).
const PAGE: usize = 256;
/// The runs are merged into one once there are this many.
const MAX_RUNS: usize = 8;
/// Bloom filter bits per key it was sized for (about 1 % false positives).
const BITS_PER_KEY: usize = 10;
/// Bits set per key, each from 9 bits of the key's high half.
const PROBES: u32 = 7;

/// Sorted, disjoint runs of keys on disk.
#[derive(Debug, Default)]
pub(super) struct Disk {
    runs: Vec<Run>,
    bloom: Bloom,
    len: usize,
    /// Tests: every file operation fails, as on a full or lost disk.
    #[cfg(test)]
    pub(super) fail: bool,
}

impl Disk {
    /// Keys on disk.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether `key` is in a run.
    pub(super) fn contains(&self, key: u128) -> io::Result<bool> {
        if self.len == 0 || !self.bloom.maybe(key) {
            return Ok(false);
        }
        self.check()?;
        for run in &self.runs {
            if run.contains(key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes `keys` (ascending, none of them on disk yet) as a new run. On
    /// an error nothing was added: the keys are still only the caller's.
    pub(super) fn add_run(&mut self, keys: impl Iterator<Item = u128>) -> io::Result<()> {
        self.check()?;
        let mut w = RunWriter::new()?;
        for key in keys {
            w.push(key)?;
            self.bloom.add(key);
        }
        let run = w.finish()?;
        self.len += run.len;
        self.runs.push(run);
        if self.len > self.bloom.capacity {
            if let Err(e) = self.rebuild_bloom() {
                // The old filter still covers the other runs.
                self.len -= self.runs.pop().map_or(0, |r| r.len);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Merges the runs into one once there are [`MAX_RUNS`]. On an error the
    /// runs stay as they were.
    pub(super) fn compact_if_full(&mut self) -> io::Result<()> {
        if self.runs.len() < MAX_RUNS {
            return Ok(());
        }
        let mut readers = self.runs.iter().map(Run::reader).collect::<io::Result<Vec<_>>>()?;
        let mut heads = readers
            .iter_mut()
            .map(RunReader::next)
            .collect::<io::Result<Vec<_>>>()?;
        let mut w = RunWriter::new()?;
        while let Some((i, key)) = lowest(&heads) {
            w.push(key)?;
            heads[i] = readers[i].next()?;
        }
        let run = w.finish()?;
        drop(readers);
        self.runs = vec![run];
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.fail {
            return Err(io::Error::other("no space left (test)"));
        }
        Ok(())
    }

    /// A filter for twice the keys on disk, from every run.
    fn rebuild_bloom(&mut self) -> io::Result<()> {
        let mut bloom = Bloom::with_capacity(self.len.saturating_mul(2));
        for run in &self.runs {
            let mut r = run.reader()?;
            while let Some(key) = r.next()? {
                bloom.add(key);
            }
        }
        self.bloom = bloom;
        Ok(())
    }
}

/// The run holding the lowest head, and that key.
fn lowest(heads: &[Option<u128>]) -> Option<(usize, u128)> {
    let heads = heads.iter().enumerate();
    heads.filter_map(|(i, h)| h.map(|k| (i, k))).min_by_key(|&(_, k)| k)
}

/// Keys in ascending order, 16 bytes each (little-endian).
#[derive(Debug)]
struct Run {
    file: File,
    /// The first key of each page.
    firsts: Vec<u128>,
    len: usize,
}

impl Run {
    fn contains(&self, key: u128) -> io::Result<bool> {
        let page = match self.firsts.partition_point(|&f| f <= key) {
            0 => return Ok(false),
            i => i - 1,
        };
        let start = page * PAGE;
        let n = PAGE.min(self.len - start);
        let mut bytes = [0u8; PAGE * 16];
        let mut file = &self.file;
        file.seek(SeekFrom::Start(start as u64 * 16))?;
        file.read_exact(&mut bytes[..n * 16])?;
        let mut keys = [0u128; PAGE];
        for (k, b) in keys.iter_mut().zip(bytes[..n * 16].chunks_exact(16)) {
            *k = u128::from_le_bytes(b.try_into().unwrap_or_default());
        }
        Ok(keys[..n].binary_search(&key).is_ok())
    }

    fn reader(&self) -> io::Result<RunReader<'_>> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))?;
        Ok(RunReader {
            r: BufReader::with_capacity(64 << 10, file),
            left: self.len,
        })
    }
}

struct RunReader<'a> {
    r: BufReader<&'a File>,
    left: usize,
}

impl RunReader<'_> {
    fn next(&mut self) -> io::Result<Option<u128>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 16];
        self.r.read_exact(&mut b)?;
        self.left -= 1;
        Ok(Some(u128::from_le_bytes(b)))
    }
}

struct RunWriter {
    w: BufWriter<File>,
    firsts: Vec<u128>,
    len: usize,
}

impl RunWriter {
    fn new() -> io::Result<Self> {
        Ok(Self {
            w: BufWriter::with_capacity(64 << 10, tempfile::tempfile()?),
            firsts: Vec::new(),
            len: 0,
        })
    }

    fn push(&mut self, key: u128) -> io::Result<()> {
        if self.len % PAGE == 0 {
            self.firsts.push(key);
        }
        self.w.write_all(&key.to_le_bytes())?;
        self.len += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<Run> {
        let file = self.w.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(Run {
            file,
            firsts: self.firsts,
            len: self.len,
        })
    }
}

/// A blocked Bloom filter: each key sets [`PROBES`] bits of one 512-bit block
/// (one cache line per lookup). Keys are uniform 128-bit digests already.
#[derive(Debug, Default)]
struct Bloom {
    blocks: Vec<[u64; 8]>,
    /// Keys it was sized for.
    capacity: usize,
}

impl Bloom {
    fn with_capacity(keys: usize) -> Self {
        let n = keys.saturating_mul(BITS_PER_KEY).div_ceil(512).max(1);
        Self {
            blocks: vec![[0; 8]; n],
            capacity: keys,
        }
    }

    /// The block and bit positions of `key`.
    fn probes(&self, key: u128) -> (usize, impl Iterator<Item = u64>) {
        let (high, low) = ((key >> 64) as u64, key as u64);
        let block = ((u128::from(low) * self.blocks.len() as u128) >> 64) as usize;
        (block, (0..PROBES).map(move |i| (high >> (i * 9)) & 511))
    }

    fn add(&mut self, key: u128) {
        if self.blocks.is_empty() {
            return;
        }
        let (b, bits) = self.probes(key);
        for bit in bits {
            self.blocks[b][(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn maybe(&self, key: u128) -> bool {
        if self.blocks.is_empty() {
            return true;
        }
        let (b, mut bits) = self.probes(key);
        bits.all(|bit| self.blocks[b][(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(n: u64, salt: u64) -> Vec<u128> {
        let mut x = 0x9e37_79b9_7f4a_7c15 ^ salt;
        let mut keys: Vec<u128> = (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                u128::from(x) << 64 | u128::from(x.rotate_left(29) ^ i)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    #[test]
    fn runs_find_every_key_they_hold_and_few_others_through_compaction() {
        let mut disk = Disk::default();
        let mut all = Vec::new();
        for salt in 0..MAX_RUNS as u64 + 3 {
            let keys = spread(1000 + salt * 37, salt);
            disk.add_run(keys.iter().copied()).unwrap();
            disk.compact_if_full().unwrap();
            all.extend(keys);
        }
        assert_eq!(disk.len(), all.len());
        assert!(disk.runs.len() < MAX_RUNS, "compacted");
        assert!(all.iter().all(|&k| disk.contains(k).unwrap()));
        let others = spread(20_000, 999);
        let false_hits = others.iter().filter(|&&k| disk.bloom.maybe(k)).count();
        assert!(others.iter().all(|&k| !disk.contains(k).unwrap()));
        assert!(false_hits < others.len() / 25, "{false_hits} filter false positives");
    }

    #[test]
    fn keys_at_page_edges_and_beyond_the_ends_are_told_apart() {
        let keys: Vec<u128> = (0..(PAGE as u128 * 3 + 5)).map(|i| i * 2 + 10).collect();
        let mut disk = Disk::default();
        disk.add_run(keys.iter().copied()).unwrap();
        for k in 0..(keys.len() as u128 * 2 + 20) {
            assert_eq!(disk.contains(k).unwrap(), keys.binary_search(&k).is_ok(), "key {k}");
        }
        assert!(!disk.contains(u128::MAX).unwrap());
    }
}
