//! A sync store's rows read on several threads with the same result as on
//! one: the calling thread reads the rows (a database connection stays on
//! its thread) and cuts them into blocks of about
//! [`ReadOptions::chunk_bytes`](super::ReadOptions::chunk_bytes), numbered in
//! row order, into a queue of at most [`QUEUED_PER_THREAD`] × threads blocks;
//! the other threads take blocks from the queue and scan them (`scan`). When
//! the queue is full the reading thread scans its oldest block itself, so no
//! thread only reads or only waits. A block is scanned only while it is
//! less than [`AHEAD_PER_THREAD`] × threads blocks past the next one due.
//! Batches are applied to the collector in block order by whichever thread
//! hands in the one due ([`super::InOrder`]), as for files.
//!
//! This module owns the hand-out of rows only; the rows are the store's, what
//! a row contributes is `scan`'s.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::{lock, InOrder, AHEAD_PER_THREAD};
use crate::fhir::source::{Item, Location, Pos};
use crate::pipeline::scan::{self, Batch, Scanner};
use crate::pipeline::Collector;

/// Rows of a store, back to back: the texts and where each ends.
#[derive(Default)]
struct Block {
    /// The position (`entry[N]`) of the first row.
    first: usize,
    text: String,
    ends: Vec<usize>,
}

impl Block {
    fn scan(&self, scanner: Scanner<'_>, file: &Arc<str>) -> Batch {
        let mut batch = Batch::default();
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let location = Location {
                file: file.clone(),
                pos: Pos::Entry(self.first + i),
            };
            let item = Item::Resource {
                location,
                text: &self.text[start..end],
                full_url: None,
            };
            scan::scan_item(scanner, item, &mut batch);
            start = end;
        }
        batch
    }
}

/// Cut blocks per thread that may wait in the queue for a worker.
const QUEUED_PER_THREAD: usize = 2;

/// Blocks waiting for a worker.
struct Queue {
    blocks: VecDeque<(usize, Block)>,
    /// The reading thread has queued its last block.
    done: bool,
}

/// Reads the rows `each_row` hands out (one text a call, in order) into
/// `collector` on `threads` threads (the calling one, which runs `each_row`,
/// included); `file` names them in issues (`file#entry[N]`, N from 0).
pub(crate) fn read_rows<E>(
    collector: &mut Collector<'_>,
    threads: usize,
    chunk: usize,
    file: &Arc<str>,
    each_row: impl FnOnce(&mut dyn FnMut(&str)) -> Result<(), E>,
) -> Result<(), E> {
    read_rows_counted(collector, threads, chunk, file, each_row).0
}

/// As [`read_rows`]; also the most scanned batches that waited at once for an earlier one.
fn read_rows_counted<E>(
    collector: &mut Collector<'_>,
    threads: usize,
    chunk: usize,
    file: &Arc<str>,
    each_row: impl FnOnce(&mut dyn FnMut(&str)) -> Result<(), E>,
) -> (Result<(), E>, usize) {
    let deleted = collector.deleted().clone();
    let prefilter = collector.prefilter().clone();
    let scanner = Scanner {
        mappings: collector.mappings,
        deleted: &deleted,
        prefilter: &prefilter,
    };
    let in_order = InOrder::new(collector);
    let queue = Mutex::new(Queue {
        blocks: VecDeque::new(),
        done: false,
    });
    let ready = Condvar::new();
    // Scanned batches may wait for an earlier one up to `cap`; cut blocks wait for a
    // worker up to `queued` (2 MiB each: enough to keep every thread busy).
    let cap = AHEAD_PER_THREAD * threads.max(1);
    let queued = QUEUED_PER_THREAD * threads.max(1);
    let (in_order, queue, ready) = (&in_order, &queue, &ready);
    // A block is scanned (by a worker or the reading thread) only while it is less
    // than `cap` blocks ahead of the next one due: scanned batches waiting for a slow
    // earlier block would otherwise pile up without bound.
    let scan_in_turn = move |seq: usize, block: Block, file: &Arc<str>| {
        in_order.wait_within(seq, cap);
        in_order.hand_in(seq, block.scan(scanner, file));
    };
    let result = std::thread::scope(|s| {
        for _ in 1..threads.max(1) {
            let own: Arc<str> = Arc::from(&**file);
            s.spawn(move || {
                let _leaving = Leaving(queue, ready, in_order);
                while let Some((seq, block)) = take(queue, ready) {
                    scan_in_turn(seq, block, &own);
                }
            });
        }
        let _leaving = Leaving(queue, ready, in_order);
        let mut block = Block::default();
        let mut seq = 0;
        let mut index = 0;
        let scan_own = |seq: usize, block: Block| scan_in_turn(seq, block, file);
        let result = each_row(&mut |text: &str| {
            block.text.push_str(text);
            block.ends.push(block.text.len());
            index += 1;
            if block.text.len() >= chunk {
                let full = std::mem::replace(
                    &mut block,
                    Block {
                        first: index,
                        ..Block::default()
                    },
                );
                if let Some((n, oldest)) = queue_block(queue, ready, queued, seq, full) {
                    scan_own(n, oldest);
                }
                seq += 1;
            }
        });
        if !block.ends.is_empty() {
            if let Some((n, oldest)) = queue_block(queue, ready, queued, seq, block) {
                scan_own(n, oldest);
            }
        }
        lock(queue).done = true;
        ready.notify_all();
        // The reading thread helps with what is left.
        while let Some((n, b)) = take(queue, ready) {
            scan_own(n, b);
        }
        result
    });
    let most = lock(&in_order.order).most_waiting;
    (result, most)
}

/// Queues `block` as number `seq`; when the queue is full, the oldest block
/// comes back for the caller to scan.
fn queue_block(queue: &Mutex<Queue>, ready: &Condvar, cap: usize, seq: usize, block: Block) -> Option<(usize, Block)> {
    let mut q = lock(queue);
    q.blocks.push_back((seq, block));
    let oldest = (q.blocks.len() > cap).then(|| q.blocks.pop_front()).flatten();
    drop(q);
    ready.notify_one();
    oldest
}

/// The next block to scan; `None` once the reader is done and the queue empty.
fn take(queue: &Mutex<Queue>, ready: &Condvar) -> Option<(usize, Block)> {
    let mut q = lock(queue);
    loop {
        if let Some(b) = q.blocks.pop_front() {
            return Some(b);
        }
        if q.done {
            return None;
        }
        q = ready.wait(q).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Stops the others when this thread panics: the queue is emptied and closed.
struct Leaving<'s, 'a, 'm>(&'s Mutex<Queue>, &'s Condvar, &'s InOrder<'a, 'm>);

impl Drop for Leaving<'_, '_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = lock(self.0);
            q.done = true;
            q.blocks.clear();
            drop(q);
            self.1.notify_all();
            self.2.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test: a failure should stop it loudly")]

    use super::super::tests::ck_result;
    use super::*;
    use crate::mapping::MappingSet;

    /// While another thread is slow on a big first block, the reading thread
    /// scans at most the bound of blocks ahead: scanned batches do not pile up
    /// waiting for it. Every row is read either way.
    #[test]
    fn the_reading_thread_runs_no_further_ahead_than_the_bound() {
        let mappings = MappingSet::builtin().unwrap();
        let rows: Vec<String> = std::iter::once(ck_result(0, "p", 50_000))
            .chain((1..3_000).map(|i| ck_result(i, "p", 0)))
            .collect();
        let file: Arc<str> = Arc::from("store.db");
        for threads in [1, 2] {
            let mut collector = Collector::new(&mappings);
            let (result, most) = read_rows_counted(&mut collector, threads, 40, &file, |f| {
                rows.iter().for_each(|r| f(r));
                Ok::<_, ()>(())
            });
            result.unwrap();
            let cap = AHEAD_PER_THREAD * threads;
            assert!(most <= cap, "{most} batches waited, bound {cap}, {threads} threads");
            let read = collector.finish();
            assert_eq!(read.stats.seen.get("Observation"), Some(&3_000));
        }
    }
}
