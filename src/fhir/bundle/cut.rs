//! A Bundle shared out among workers: cut into pieces that are read on any
//! thread, with the same items and the same report as when one thread reads
//! the file ([`super::read_bundle`]).
//!
//! The cutter ([`Cut`]) reads up to the first entry with the one-thread
//! reader's own steps, then only reads blocks and cuts each after the last
//! comma that looks like one between entries: `,` then `{` then a member
//! of an entry (`"fullUrl"`, `"resource"`, `"link"` as Epic puts first,
//! `"search"`, `"request"`, `"response"`) and its `:`, white space allowed between. In
//! JSON such a comma cannot lie inside a string (the key's quote is not
//! escaped, and a quote that closed a string could not be followed by a
//! letter), so it is one between array elements; most likely those of the
//! `entry` array, but a nested Bundle has them too. So a cut is only a guess
//! until the piece before it has been read: a worker checks its piece's
//! entries with serde first ([`check`]). When its piece began where one
//! thread would have begun an entry and reads to its end cleanly, entry,
//! comma, entry, comma, so does the next; otherwise (serde refused an entry,
//! or could not tell without the bytes after the piece, or no comma followed
//! one) the rest of the file is read from the start of that entry by one
//! thread's steps ([`read_rest`]), which report what one thread reports. The caller numbers entries across
//! pieces in their order and drops the pieces after one that ended the
//! Bundle. Before the first entry, any surprise leaves the whole file to the
//! one-thread reader ([`Cut::open`] gives `None`).
//!
//! This module decides where pieces begin and end and what a piece holds;
//! who reads them, and in which order their results count, is the caller's
//! (`pipeline::parallel`).

use std::io::Read;
use std::sync::Arc;

use super::super::item::Item;
use super::{deliver, is_space, one, plain_entry, settle, Buffer, Entry, Got, Problem, Try, BLOCK};

/// Where a piece of a Bundle starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Start {
    /// Newlines before it.
    pub line: u64,
    /// Bytes between the last of those newlines (or the file's start) and it.
    pub col: u64,
}

impl Start {
    /// Where the byte after `bytes` (which start here) is.
    fn after(self, bytes: &[u8]) -> Start {
        match memchr::memrchr(b'\n', bytes) {
            Some(last) => Start {
                line: self.line + memchr::memchr_iter(b'\n', bytes).count() as u64,
                col: (bytes.len() - last - 1) as u64,
            },
            None => Start {
                line: self.line,
                col: self.col + bytes.len() as u64,
            },
        }
    }
}

/// A piece of a Bundle, in the caller's block (`block[..len]`) unless it is `Rest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Entries up to a comma that looks like one between entries: [`check`] them.
    Entries { start: Start, offset: u64, len: usize },
    /// The last bytes of the file: read them with [`read_last`].
    Last { start: Start, len: usize },
    /// The rest of the file from byte `offset` (no cut found within
    /// [`MOST_UNCUT`] bytes): read it with [`read_rest`].
    Rest { start: Start, offset: u64 },
}

/// Bytes read without finding a cut after which the rest of the file is left
/// to one reader, so that memory stays bounded.
pub const MOST_UNCUT: usize = 16 << 20;

/// A Bundle being cut into pieces.
pub struct Cut<R> {
    reader: R,
    /// Bytes read after the last cut.
    carry: Vec<u8>,
    /// Where `carry` starts.
    start: Start,
    offset: u64,
    done: bool,
}

impl<R: Read> Cut<R> {
    /// Reads up to the first entry of the first non-empty `entry` array;
    /// `None` when there is none or anything else comes first (not a
    /// Bundle, a problem): such a file is read whole by one thread.
    pub fn open(reader: R) -> Option<Self> {
        Self::open_in_blocks(reader, BLOCK)
    }

    /// As [`Cut::open`], asking `block` bytes of the reader at a time.
    fn open_in_blocks(reader: R, block: usize) -> Option<Self> {
        let mut b = Buffer::new(reader, block);
        if !matches!(b.opens_a_bundle(), Ok(true)) {
            return None;
        }
        b.keep = false;
        if !matches!(b.skip_to_first_entry(), Ok(true)) {
            return None;
        }
        let (line, col) = b.line_col(b.pos);
        Some(Self {
            carry: b.buf[b.pos..].to_vec(),
            offset: b.dropped + b.pos as u64,
            reader: b.reader,
            start: Start {
                line: line - 1,
                col: col - 1,
            },
            done: false,
        })
    }

    /// Bytes of the input handed out so far (or read up to the first entry).
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// The next piece, of about `chunk` bytes; `None` after the last.
    pub fn next(&mut self, block: &mut Vec<u8>, chunk: usize) -> Option<Piece> {
        if self.done {
            return None;
        }
        block.clear();
        block.append(&mut self.carry);
        loop {
            let before = block.len();
            let eof = match (&mut self.reader).take(chunk as u64).read_to_end(block) {
                Ok(n) => n < chunk,
                // One reader meets the failure again and reports it.
                Err(_) => return Some(self.rest()),
            };
            let (start, offset) = (self.start, self.offset);
            if eof {
                self.done = true;
                self.offset += block.len() as u64;
                return Some(Piece::Last {
                    start,
                    len: block.len(),
                });
            }
            if let Some(len) = last_cut(block, before.saturating_sub(CUT_LOOKS_BACK)) {
                self.carry.extend_from_slice(&block[len..]);
                block.truncate(len);
                self.start = start.after(block);
                self.offset += len as u64;
                return Some(Piece::Entries { start, offset, len });
            }
            if block.len() > MOST_UNCUT {
                return Some(self.rest());
            }
        }
    }

    fn rest(&mut self) -> Piece {
        self.done = true;
        Piece::Rest {
            start: self.start,
            offset: self.offset,
        }
    }
}

/// How far before the bytes just read a cut's `{` may lie (the pattern may
/// straddle the end of the bytes read before).
const CUT_LOOKS_BACK: usize = 64;

/// Just after the last comma in `bytes` that looks like one between entries
/// and whose `{` lies at or after `from`: found by walking back over the `{`
/// bytes from the end (most are a few hundred bytes back), not by searching
/// the whole block for each key, which cost an eighth of a two-thread run.
fn last_cut(bytes: &[u8], from: usize) -> Option<usize> {
    let mut end = bytes.len();
    while let Some(brace) = memchr::memrchr(b'{', &bytes[from..end]).map(|i| from + i) {
        end = brace;
        if let Some(cut) = comma_before(bytes, brace).filter(|_| entry_key_after(bytes, brace + 1)) {
            return Some(cut);
        }
    }
    None
}

/// The members of a Bundle entry (R4 `Bundle.entry`, but for `id` and
/// `extension`, which begin objects inside resources too).
const ENTRY_KEYS: [&[u8]; 6] = [b"fullUrl", b"resource", b"link", b"search", b"request", b"response"];

/// Whether white space, a quoted member of an entry, white space and a `:`
/// follow from `at` (no more bytes: no).
fn entry_key_after(bytes: &[u8], at: usize) -> bool {
    let Some(quote) = non_space_from(bytes, at) else {
        return false;
    };
    if bytes[quote] != b'"' {
        return false;
    }
    let key = &bytes[quote + 1..];
    ENTRY_KEYS.iter().any(|k| {
        key.len() > k.len() && key.starts_with(k) && key[k.len()] == b'"' && colon_after(bytes, quote + k.len() + 2)
    })
}

/// Just after the `,` before `bytes[brace]` (white space allowed between).
fn comma_before(bytes: &[u8], brace: usize) -> Option<usize> {
    let comma = skip_back_space(bytes, brace)?.checked_sub(1)?;
    (bytes[comma] == b',').then_some(comma + 1)
}

/// The index after the last non-space byte before `end`.
fn skip_back_space(bytes: &[u8], end: usize) -> Option<usize> {
    let from = bytes[..end].iter().rposition(|c| !is_space(*c))?;
    Some(from + 1)
}

/// Whether white space and a `:` follow from `at` (no more bytes: no).
fn colon_after(bytes: &[u8], at: usize) -> bool {
    non_space_from(bytes, at).map(|i| bytes[i]) == Some(b':')
}

/// The index of the first byte at or after `at` that is not white space.
fn non_space_from(bytes: &[u8], at: usize) -> Option<usize> {
    bytes[at..].iter().position(|c| !is_space(*c)).map(|i| at + i)
}

impl<R: Read> Buffer<R> {
    /// The members up to the first entry of a non-empty `entry` array:
    /// `Ok(true)` there, `Ok(false)` after the Bundle's end.
    fn skip_to_first_entry(&mut self) -> Result<bool, Problem> {
        while let Some(key) = self.next_member()? {
            if key != "entry" {
                self.value::<serde::de::IgnoredAny>()?;
            } else if self.opens_entries()? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The entries of a piece, read by serde (or, plain ones, by `plain_entry`), borrowed from it.
pub struct Checked<'a> {
    entries: Vec<Got<'a>>,
    /// How the piece ended.
    pub end: End,
}

/// How reading a piece's entries ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// After the comma that ends the piece: the next piece starts at an entry.
    Clean,
    /// At the entry starting at `piece[at..]`, which serde refuses, or cannot
    /// judge without the bytes after the piece, or which is not followed by a
    /// comma: one thread's steps go on from there ([`read_rest`]) and report
    /// what one thread reports.
    Unsure { at: usize },
}

impl Checked<'_> {
    /// Entries read.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Hands `f` the entries, numbered from `first`.
    pub fn deliver(self, file: &Arc<str>, first: usize, f: &mut dyn FnMut(Item<'_>)) {
        for (i, entry) in self.entries.into_iter().enumerate() {
            deliver(entry, file, first + i, f);
        }
    }
}

/// The entries of `piece` (an `Entries` piece) as serde reads them (a plain
/// one as `plain_entry` does, which gives the same), each followed by its
/// comma, up to the end or the first one that is not so.
pub fn check(piece: &[u8]) -> Checked<'_> {
    let mut entries = Vec::new();
    let mut pos = 0;
    let end = loop {
        let at = pos;
        let Some(value) = non_space_from(piece, pos) else {
            break End::Unsure { at };
        };
        let bytes = &piece[value..];
        let (entry, used) = match plain_entry(bytes) {
            Some((entry, used)) => (Got::Plain(entry), used),
            None => {
                let (result, used) = one::<Entry<'_>>(bytes);
                let Try::Done(entry, used) = settle(result, used, bytes, false) else {
                    break End::Unsure { at };
                };
                (Got::Serde(entry), used)
            }
        };
        match non_space_from(piece, value + used) {
            Some(comma) if piece[comma] == b',' => pos = comma + 1,
            _ => break End::Unsure { at },
        }
        entries.push(entry);
        if pos == piece.len() {
            break End::Clean;
        }
    };
    Checked { entries, end }
}

/// Where byte `at` of a piece that starts at `start` is.
pub fn start_at(start: Start, piece: &[u8], at: usize) -> Start {
    start.after(&piece[..at])
}

/// Reads the last piece of a Bundle (`block`), its entries numbered from
/// `first`, as one thread goes on from its start. Gives the block back.
pub fn read_last(file: &Arc<str>, block: Vec<u8>, start: Start, first: usize, f: &mut dyn FnMut(Item<'_>)) -> Vec<u8> {
    let mut b = Buffer::new(std::io::empty(), 0);
    b.buf = block;
    b.eof = true;
    b.lines_before = start.line;
    b.col_before = start.col;
    go_on(&mut b, file, first, f);
    b.buf
}

/// Reads the rest of a Bundle (`reader` at the piece's offset), its entries
/// numbered from `first`, as one thread goes on from there.
pub fn read_rest(file: &Arc<str>, reader: impl Read, start: Start, first: usize, f: &mut dyn FnMut(Item<'_>)) {
    let mut b = Buffer::new(reader, BLOCK);
    b.keep = false;
    b.lines_before = start.line;
    b.col_before = start.col;
    go_on(&mut b, file, first, f);
}

/// The entries from the buffer's start, the array's end, the members after it.
fn go_on<R: Read>(b: &mut Buffer<R>, file: &Arc<str>, first: usize, f: &mut dyn FnMut(Item<'_>)) {
    let mut index = first;
    let result = match b.entry_list(file, &mut index, f) {
        Ok(()) => b.members(file, &mut index, f),
        Err(p) => Err(p),
    };
    if let Err(p) = result {
        b.report(file, p, f);
    }
}

#[cfg(test)]
mod tests;
