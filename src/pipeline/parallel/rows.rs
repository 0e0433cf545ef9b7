//! A sync store's rows read on several threads with the same result as on
//! one: the calling thread reads the rows (a database connection stays on
//! its thread) and cuts them into blocks of about
//! [`ReadOptions::chunk_bytes`](super::ReadOptions::chunk_bytes), numbered in
//! row order, into a queue of at most [`AHEAD_PER_THREAD`] × threads blocks;
//! the other threads take blocks from the queue and scan them (`scan`). When
//! the queue is full the reading thread scans its oldest block itself, so no
//! thread only reads or only waits. Batches are applied to the collector in
//! block order by whichever thread hands in the one due
//! ([`super::InOrder`]), as for files.
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
    let cap = AHEAD_PER_THREAD * threads.max(1);
    let (in_order, queue, ready) = (&in_order, &queue, &ready);
    std::thread::scope(|s| {
        for _ in 1..threads.max(1) {
            let own: Arc<str> = Arc::from(&**file);
            s.spawn(move || {
                let _leaving = Leaving(queue, ready, in_order);
                while let Some((seq, block)) = take(queue, ready) {
                    in_order.hand_in(seq, block.scan(scanner, &own));
                }
            });
        }
        let _leaving = Leaving(queue, ready, in_order);
        let mut block = Block::default();
        let mut seq = 0;
        let mut index = 0;
        let scan_own = |seq: usize, block: Block| in_order.hand_in(seq, block.scan(scanner, file));
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
                if let Some((n, oldest)) = queue_block(queue, ready, cap, seq, full) {
                    scan_own(n, oldest);
                }
                seq += 1;
            }
        });
        if !block.ends.is_empty() {
            if let Some((n, oldest)) = queue_block(queue, ready, cap, seq, block) {
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
    })
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
