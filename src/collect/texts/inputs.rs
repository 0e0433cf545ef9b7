//! The input files texts lie in (`Held::At`): each opened again on the
//! first read, read at a text's place with one positional read (one for
//! several texts that lie one after another, [`run_len`], which says the
//! same of the temporary file's records), and each text checked to be still
//! there (a file changed under a run is an error naming the file only).
//!
//! This module owns reading input files back; which texts lie where is
//! `Texts`', what is done with a text read is its caller's.

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use super::{At, Place};
use crate::spill::ReadAt;

/// The most bytes between two texts of an input file read with one
/// positional read (a line break, or a few lines no rule used: copying a
/// few kB costs less than another read).
pub(super) const RUN_GAP: u64 = 2048;

/// The most bytes one positional read of several texts takes.
pub(super) const RUN_BYTES: u64 = 1 << 20;

/// How many places from the first are texts one after another in one file,
/// an input file or the temporary file (each starting at most [`RUN_GAP`]
/// bytes past the end of the one before, all within [`RUN_BYTES`]): read
/// with one positional read where they are more than one (`sources.ndjson`
/// renders texts in the order they came, which is their order in a file).
pub(super) fn run_len<K>(places: &[(K, Place)]) -> usize {
    let mut n = 0;
    let mut run: Option<(u32, u64, u64)> = None;
    for (_, place) in places {
        let Some((file, offset, end)) = place.span() else {
            break;
        };
        match run {
            None => run = Some((file, offset, end)),
            Some((f, start, last))
                if f == file && offset >= last && offset - last <= RUN_GAP && end - start <= RUN_BYTES =>
            {
                run = Some((f, start, end));
            }
            Some(_) => break,
        }
        n += 1;
    }
    n
}

/// An input file texts lie in, opened again on the first read.
#[derive(Debug)]
struct Input {
    name: Arc<str>,
    open: OnceLock<Result<File, String>>,
}

/// The error of a text no longer at its place in `input`.
fn changed(input: &Input) -> std::io::Error {
    let msg = format!(
        "{}: changed while being read (a resource read before is no longer there)",
        input.name
    );
    std::io::Error::other(msg)
}

/// The input files texts lie in, numbered in the order first met.
#[derive(Debug, Default)]
pub(super) struct Inputs {
    files: Vec<Input>,
}

impl Inputs {
    /// The number of input file `name`.
    pub(super) fn number(&mut self, name: Arc<str>) -> u32 {
        // Texts come file by file: the last one is nearly always it.
        let found = self.files.iter().rposition(|f| f.name == name);
        let n = found.unwrap_or_else(|| {
            self.files.push(Input {
                name,
                open: OnceLock::new(),
            });
            self.files.len() - 1
        });
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The text at `offset` in input file `file`, read into `buf`.
    pub(super) fn text<'b>(&self, at: At, buf: &'b mut Vec<u8>) -> std::io::Result<&'b str> {
        self.span(at.file, at.offset, at.len as usize, buf)?;
        self.checked(at.file, buf)
    }

    /// Input file `file`'s `len` bytes from `offset`, read into `buf` (one positional read).
    pub(super) fn span(&self, file: u32, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let input = self.input(file)?;
        let open = input
            .open
            .get_or_init(|| File::open(&*input.name).map_err(|e| e.to_string()));
        let handle = open
            .as_ref()
            .map_err(|e| std::io::Error::other(format!("{}: cannot open again: {e}", input.name)))?;
        buf.resize(len, 0);
        ReadAt::new(handle, offset).read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => changed(input),
            _ => e,
        })
    }

    /// `bytes` read at a text's place in input file `file`, as that text: an
    /// error when they are no longer a JSON object's text.
    pub(super) fn checked<'b>(&self, file: u32, bytes: &'b [u8]) -> std::io::Result<&'b str> {
        // The text was a JSON object, so it starts and ends as one.
        if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
            return Err(changed(self.input(file)?));
        }
        simdutf8::basic::from_utf8(bytes).map_err(|_| self.input(file).map_or_else(|e| e, changed))
    }

    fn input(&self, file: u32) -> std::io::Result<&Input> {
        (self.files.get(file as usize)).ok_or_else(|| std::io::Error::other("text place out of range"))
    }
}
