//! Bundles read in pieces (on one thread or several): the cutter's side (a Bundle file handed
//! out in pieces, [`OpenBundle`]) and the worker's ([`read`]), with the one
//! thing pieces share: the numbering of entries across pieces, given out in
//! piece order ([`Chains::turn`]). A piece learns the number of its first
//! entry once every piece before it has checked its own; after a piece that
//! did not read cleanly to its end (whose worker reads the rest of the file,
//! see [`crate::fhir::bundle::cut`]), the later pieces give nothing.
//!
//! What a piece is and how it is read belongs to `fhir::bundle::cut`; this
//! module only hands pieces out and puts their entries in order.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::lock;
use crate::fhir::bundle::cut::{self, Cut, End, Piece, Start};
use crate::fhir::source::{self, Item};
use crate::spill::ReadAt;

/// A piece of a Bundle to read.
pub(super) struct PieceTask {
    file: Arc<str>,
    /// The Bundle's file, read at an offset (positional reads) for the rest.
    handle: Arc<File>,
    piece: Piece,
    /// The Bundle's number in the run.
    bundle: u64,
    /// The piece's number in the Bundle.
    number: u64,
}

/// A Bundle being cut into pieces.
pub(super) struct OpenBundle {
    name: Arc<str>,
    handle: Arc<File>,
    cut: Cut<File>,
    /// The Bundle's number in the run.
    pub(super) bundle: u64,
    /// Pieces handed out.
    pieces: u64,
    /// Bytes counted into the progress bar.
    told: u64,
}

impl OpenBundle {
    /// `None` when `path` is not a regular file holding a Bundle with entries,
    /// or cannot be opened: it is then read whole, which reports why. (A pipe
    /// cannot be read again from an offset, which a piece may need.)
    pub(super) fn new(name: Arc<str>, path: &std::path::Path, bundle: u64) -> Option<Self> {
        // Asked before opening: a pipe opened here and then read whole by another
        // open would lose what its writer sent to the first.
        if !std::fs::metadata(path).ok()?.is_file() {
            return None;
        }
        let file = File::open(path).ok()?;
        let handle = Arc::new(file.try_clone().ok()?);
        let cut = Cut::open(file)?;
        Some(Self {
            name,
            handle,
            cut,
            bundle,
            pieces: 0,
            told: 0,
        })
    }

    /// The next piece, into `block`; `None` after the last.
    pub(super) fn cut(&mut self, block: &mut Vec<u8>, chunk: usize, progress: &dyn Fn(u64)) -> Option<PieceTask> {
        let piece = self.cut.next(block, chunk)?;
        let now = self.cut.consumed();
        progress(now - self.told);
        self.told = now;
        self.pieces += 1;
        Some(PieceTask {
            file: self.name.clone(),
            handle: self.handle.clone(),
            piece,
            bundle: self.bundle,
            number: self.pieces - 1,
        })
    }
}

/// The numbering of entries across the pieces of each Bundle.
#[derive(Default)]
pub(super) struct Chains {
    chains: Mutex<BTreeMap<u64, Chain>>,
    /// Signalled when a piece took its turn, or the run stops.
    turned: Condvar,
    /// One more than the number of the last Bundle whose pieces stopped
    /// counting (0: none): its cutting stops.
    pub(super) broken: AtomicU64,
    stop: AtomicBool,
}

/// One Bundle's numbering.
#[derive(Default)]
struct Chain {
    /// The number of the piece whose turn it is.
    next: u64,
    /// The number of its first entry.
    first: usize,
    /// A piece before did not read cleanly to its end.
    done: bool,
}

impl Chains {
    /// Waits for the turn of piece `number` of Bundle `bundle`, which holds
    /// `count` entries and read cleanly to its end or not: the number of its
    /// first entry, or `None` when its entries do not count.
    fn turn(&self, bundle: u64, number: u64, count: usize, clean: bool) -> Option<usize> {
        let mut chains = lock(&self.chains);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            let chain = chains.entry(bundle).or_default();
            if chain.next == number {
                chain.next += 1;
                let first = (!chain.done).then_some(chain.first);
                chain.first += count;
                if !clean && !chain.done {
                    chain.done = true;
                    self.broken.store(bundle + 1, Ordering::Relaxed);
                }
                self.turned.notify_all();
                return first;
            }
            chains = self.turned.wait(chains).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Wakes every piece waiting for its turn, for good (a worker panicked).
    pub(super) fn stop(&self) {
        let _chains = lock(&self.chains);
        self.stop.store(true, Ordering::Relaxed);
        self.turned.notify_all();
    }
}

/// Reads a piece (`block` as the cutter filled it) into `f`. Problems,
/// a read failure included, are items (`Item::Unreadable`), as when one thread
/// reads the file.
pub(super) fn read<P: Fn(u64) + Clone + 'static>(
    chains: &Chains,
    task: PieceTask,
    block: &mut Vec<u8>,
    progress: &P,
    f: &mut dyn FnMut(Item<'_>),
) {
    // A copy of the name per piece: every entry clones it (see the NDJSON blocks).
    let file: Arc<str> = Arc::from(&*task.file);
    let turn = |count, clean| chains.turn(task.bundle, task.number, count, clean);
    match task.piece {
        Piece::Entries { start, offset, .. } => {
            let checked = cut::check(block);
            let (count, end) = (checked.count(), checked.end);
            // No number: a piece before did not read cleanly, and its worker reads on.
            let Some(first) = turn(count, end == End::Clean) else {
                return;
            };
            checked.deliver(&file, first, f);
            if let End::Unsure { at } = end {
                let start = cut::start_at(start, block, at);
                rest(
                    &file,
                    &task.handle,
                    offset + at as u64,
                    start,
                    first + count,
                    progress,
                    f,
                );
            }
        }
        Piece::Last { start, .. } => {
            if let Some(first) = turn(0, false) {
                *block = cut::read_last(&file, std::mem::take(block), start, first, f);
            }
        }
        Piece::Rest { start, offset } => {
            if let Some(first) = turn(0, false) {
                rest(&file, &task.handle, offset, start, first, progress, f);
            }
        }
    }
}

/// Reads the rest of a Bundle from byte `offset` of `handle` on, as one thread does.
fn rest<P: Fn(u64) + Clone + 'static>(
    file: &Arc<str>,
    handle: &File,
    offset: u64,
    start: Start,
    first: usize,
    progress: &P,
    f: &mut dyn FnMut(Item<'_>),
) {
    let reader = source::counting(ReadAt::new(handle, offset), progress.clone());
    cut::read_rest(file, reader, start, first, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever order pieces come in, each gets the number of entries before
    /// it; after one that did not read cleanly, none gets any.
    #[test]
    fn pieces_take_their_turns_in_order() {
        let chains = Chains::default();
        let got = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for (number, count, clean) in [
                (3, 5, true),
                (1, 20, true),
                (4, 1, false),
                (0, 7, true),
                (2, 100, false),
            ] {
                let (chains, got) = (&chains, &got);
                s.spawn(move || {
                    let first = chains.turn(9, number, count, clean);
                    lock(got).push((number, first));
                });
            }
        });
        let mut got = got.into_inner().unwrap();
        got.sort_unstable();
        assert_eq!(got, [(0, Some(0)), (1, Some(7)), (2, Some(27)), (3, None), (4, None)]);
        assert_eq!(chains.broken.load(Ordering::Relaxed), 10);
        // Another Bundle's pieces count from 0, and a stop wakes a waiting piece.
        assert_eq!(chains.turn(10, 0, 3, true), Some(0));
        std::thread::scope(|s| {
            let waiting = s.spawn(|| chains.turn(10, 2, 1, true));
            std::thread::sleep(std::time::Duration::from_millis(20));
            chains.stop();
            assert_eq!(waiting.join().unwrap(), None);
        });
    }
}
