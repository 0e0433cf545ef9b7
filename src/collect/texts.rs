//! The raw JSON of resources that gave a fact, kept off the heap.
//!
//! [`Texts`] maps `Type/id` to a resource's text. The first
//! [`ReadOptions::spill_after`](crate::pipeline::ReadOptions::spill_after) bytes stay in
//! memory; later texts are appended, with their key, to a `spill::Log` (an
//! anonymous temporary file in `TMPDIR`), with nothing kept in memory for
//! them: a 10 GB export costs no memory per relevant resource here. A text
//! that lies unchanged in a regular input file (a plain NDJSON line,
//! [`Kept::At`]) is not copied at all: only where it lies is kept, and it is
//! read there again when written out (at 100 % relevant that halves the
//! bytes a run moves). Reading
//! back is a sequential pass over the file, which is how outputs want them: all
//! of them in the order they came ([`Texts::try_for_each`]), or a selection.
//! The texts are numbered in the order inserted (the collector stamps each
//! fact with its text's number); `cohort::write` renders those the cohort
//! marked in that order, on the threads
//! ([`Texts::try_render_places`]: one positional read for texts that lie
//! one after another in a file, an input file or the temporary file, else
//! one each: `inputs::run_len`). `Texts::sorted_places`
//! sorts the keys themselves, for the export's selection in key order;
//! [`Texts::try_for_each_selected`] selects holding the chosen keys in memory.
//! If the temporary file cannot be written, texts stay in memory and the
//! caller is told once (see [`Texts::insert`]). Each text keeps whether its
//! reader proved it compact JSON already ([`Kept`]), handed back with it
//! ([`Stored`]) so the writer need not look again.
//!
//! This module owns which texts stay in memory only; the file format is
//! `spill`'s, which resources go in is decided by the `Collector`, what is
//! written out by `cohort::write` and `export`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::SourceRef;
use crate::sorted::{Sorted, Sorter};
use crate::spill::Log;

mod inputs;
mod render;

use inputs::{run_len, Inputs};

/// A [`Place`] as a sortable record: memory `(0, index, 0)`, disk `(1,
/// offset, size)`, an input file `(2, offset, file << 32 | len)` (`3` for a
/// text known to be compact).
pub(crate) type PlaceRec = (u8, u64, u64);

/// The record of `place`.
pub(crate) fn place_rec(place: Place) -> PlaceRec {
    match place {
        Place::Memory(i) => (0, i as u64, 0),
        Place::Disk(at, size) => (1, at, size),
        Place::Input(At {
            file,
            offset,
            len,
            compact,
        }) => (2 + u8::from(compact), offset, u64::from(file) << 32 | u64::from(len)),
    }
}

/// The place of a record of [`place_rec`].
pub(crate) fn place_of((kind, a, b): PlaceRec) -> Place {
    match kind {
        0 => Place::Memory(usize::try_from(a).unwrap_or(usize::MAX)),
        1 => Place::Disk(a, b),
        kind => Place::Input(At {
            file: (b >> 32) as u32,
            offset: a,
            len: b as u32,
            compact: kind == 3,
        }),
    }
}

/// Where a selected text lies (from [`Texts::places`]).
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// Index in `Texts::memory`.
    Memory(usize),
    /// Offset of its record in `Texts::spilled`, and the record's size there.
    Disk(u64, u64),
    /// Where it lies in an input file: read there with one positional read,
    /// its record (in memory or spilled) not read again.
    Input(At),
}

/// Where a text lies in one of the texts' input files (`Texts::inputs`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct At {
    /// The file's number among the texts' input files.
    pub file: u32,
    /// The text's first byte in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u32,
    /// Known to be as `serde_json` writes it on one line (see [`Kept`]).
    pub compact: bool,
}

/// The number [`Place::span`] gives the temporary file (input files count from 0).
const SPILLED: u32 = u32::MAX;

impl Place {
    /// The file a text lies in (an input file's number, or [`SPILLED`]) and
    /// the bytes it takes there, its record's when spilled; `None` in memory.
    fn span(&self) -> Option<(u32, u64, u64)> {
        match *self {
            Place::Memory(_) => None,
            Place::Disk(at, size) => Some((SPILLED, at, at + size)),
            Place::Input(at) => Some((at.file, at.offset, at.offset + u64::from(at.len))),
        }
    }

    /// About how many bytes the text at this place takes (0: not known here).
    fn size_hint(&self) -> usize {
        match *self {
            Place::Memory(_) => 0,
            Place::Disk(_, size) => usize::try_from(size).unwrap_or(0),
            Place::Input(at) => at.len as usize,
        }
    }
}

impl<T> Held<T> {
    /// The same text or place, a text held turned by `f`.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Held<U> {
        match self {
            Held::Text { text, compact } => Held::Text { text: f(text), compact },
            Held::At(at) => Held::At(at),
        }
    }

    /// A borrowing copy.
    fn as_ref(&self) -> Held<&T> {
        match self {
            Held::Text { text, compact } => Held::Text {
                text,
                compact: *compact,
            },
            Held::At(at) => Held::At(*at),
        }
    }

    /// Where the text lies when in an input file; `None` when held itself.
    fn input(&self) -> Option<Place> {
        match *self {
            Held::At(at) => Some(Place::Input(at)),
            Held::Text { .. } => None,
        }
    }
}

/// A relevant resource's text as handed to [`Texts::insert`]. `compact`: the
/// reader proved it is already as `serde_json` writes it on one line (the
/// writer then copies it as it is, without looking again); false when not
/// known.
#[derive(Debug)]
pub enum Kept {
    /// The text itself.
    Text {
        /// The text.
        text: String,
        /// Known to be compact.
        compact: bool,
    },
    /// Where it lies, unchanged, in a regular input file (read there again
    /// when written out; the file must not change during the run).
    At {
        /// The file, as the input named it (opened again by that name).
        file: Arc<str>,
        /// The text's first byte in the file.
        offset: u64,
        /// Its length in bytes.
        len: u32,
        /// Known to be compact.
        compact: bool,
    },
}

/// A text held: itself, or where it lies in `Texts::files[file]`; `compact` as [`Kept`]'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Held<T> {
    Text { text: T, compact: bool },
    At(At),
}

/// A text as read back for writing out: the text, and whether it is known to
/// be compact (see [`Kept`]).
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The text.
    pub text: &'a str,
    /// Known to be as `serde_json` writes it on one line.
    pub compact: bool,
}

/// A spilled text's record: its key and its text (or where it lies).
type Record = (SourceRef, Held<String>);

/// A record's key read in place (a [`SourceRef`]'s two fields, borrowed).
type Key<'a> = (&'a str, &'a str);

/// Resource texts by `Type/id`.
#[derive(Debug)]
pub struct Texts {
    /// In the order inserted: `memory[..split]` came before every spilled
    /// text, `memory[split..]` (kept once the temporary file failed) after.
    memory: Vec<(SourceRef, Held<Box<str>>)>,
    /// `(key, text)` records, between the two parts of `memory`.
    spilled: Log,
    /// The length of `memory` when the first text went to disk.
    split: Option<usize>,
    /// The input files [`Held::At`] texts lie in.
    inputs: Inputs,
    in_memory: usize,
    spill_after: usize,
    spill_failed: bool,
    /// Threads [`Texts::try_render_places`] reads and renders on.
    threads: usize,
}

/// Texts a thread of [`Texts::try_render_places`] renders at a time (about 1 MB at 1 kB each).
const STRETCH: usize = 1024;

impl Default for Texts {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl Texts {
    /// Keeps up to `spill_after` bytes of text in memory, the rest on disk.
    pub fn new(spill_after: usize) -> Self {
        Self {
            memory: Vec::new(),
            spilled: Log::default(),
            split: None,
            inputs: Inputs::default(),
            threads: 1,
            in_memory: 0,
            spill_after,
            spill_failed: false,
        }
    }

    /// Stores `text` under `key`. The caller stores each key once (the
    /// `Collector` keeps one copy of a resource). Returns the error met
    /// the first time the temporary file could not be created or written; the
    /// text is then kept in memory, as are all later ones.
    pub fn insert(&mut self, key: &SourceRef, text: impl Into<Kept>) -> Option<std::io::Error> {
        let (held, size) = match text.into() {
            Kept::Text { text, compact } => {
                let size = text.len();
                (Held::Text { text, compact }, size)
            }
            Kept::At {
                file,
                offset,
                len,
                compact,
            } => {
                // What it costs in memory: its entry and its key's text.
                let size = std::mem::size_of::<(SourceRef, Held<Box<str>>)>() + key.resource_type.len() + key.id.len();
                let at = At {
                    file: self.inputs.number(file),
                    offset,
                    len,
                    compact,
                };
                (Held::At(at), size)
            }
        };
        // Once one text is on disk, all later ones go there too: memory holds a prefix.
        let fits = self.spilled.len() == 0 && self.in_memory.saturating_add(size) <= self.spill_after;
        if !fits && !self.spill_failed {
            // Written as a `Record` is read back; the key borrowed (a clone per text cost 1.5 %).
            match self.spilled.push(&(key, &held)) {
                Ok(()) => {
                    self.split.get_or_insert(self.memory.len());
                    return None;
                }
                Err(e) => {
                    self.spill_failed = true;
                    self.keep(key.clone(), held, size);
                    return Some(e);
                }
            }
        }
        self.keep(key.clone(), held, size);
        None
    }

    fn keep(&mut self, key: SourceRef, held: Held<String>, size: usize) {
        self.in_memory += size;
        self.memory.push((key, held.map(String::into_boxed_str)));
    }

    /// The text `held` stands for (read into `buf` when it lies in an input file).
    fn text_of<'s, T: AsRef<str>>(&'s self, held: &'s Held<T>, buf: &'s mut Vec<u8>) -> std::io::Result<&'s str> {
        match held {
            Held::Text { text, .. } => Ok(text.as_ref()),
            Held::At(at) => self.inputs.text(*at, buf),
        }
    }

    /// Sets the threads [`Texts::try_render_places`] uses (at least 1).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// The threads [`Texts::try_render_places`] uses.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many texts are held.
    pub fn len(&self) -> usize {
        self.memory.len() + self.spilled.len() as usize
    }

    /// True when no text is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many texts went to the temporary file.
    pub fn spilled(&self) -> u64 {
        self.spilled.len()
    }

    /// The texts whose key `wanted` accepts, in key order, in memory (see
    /// [`Texts::try_for_each_selected`] for a large selection).
    pub fn select(&mut self, wanted: impl Fn(&SourceRef) -> bool) -> std::io::Result<BTreeMap<SourceRef, String>> {
        let mut out = BTreeMap::new();
        self.try_for_each_selected(wanted, |key, text| {
            out.insert(key.clone(), text.to_string());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(out)
    }

    /// Calls `f` with the texts whose key `wanted` accepts, in key order,
    /// holding only their keys: one pass over the temporary file finds them,
    /// then each is read back at its place. Stops at the first error (reading
    /// the file back, or one `f` returns).
    pub fn try_for_each_selected<E: From<std::io::Error>>(
        &mut self,
        wanted: impl Fn(&SourceRef) -> bool,
        mut f: impl FnMut(&SourceRef, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut buf, mut input) = (Vec::new(), Vec::new());
        for (key, place) in self.places(wanted)? {
            f(&key, self.text_at(place, &mut buf, &mut input)?)?;
        }
        Ok(())
    }

    /// As [`Texts::try_for_each_selected`], rendering each text into bytes
    /// with `render` on up to the set threads (in stretches of `STRETCH`
    /// texts, read and rendered side by side), then handing the stretches'
    /// bytes to `write` in key order: the same bytes for any number of threads.
    pub fn try_render_selected<E: From<std::io::Error>>(
        &mut self,
        wanted: impl Fn(&SourceRef) -> bool,
        render: impl Fn(&SourceRef, Stored<'_>, &mut Vec<u8>) + Sync,
        write: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let places = self.places(wanted)?;
        self.try_render_places(&places, render, write)
    }

    /// The rendering of [`Texts::try_render_selected`] for places already chosen
    /// (of [`Texts::places`] or `Texts::sorted_places`), in their order
    /// ([`Texts::try_render_each`]). `K` is what `render` is told of each text
    /// (its key, or anything).
    pub fn try_render_places<K: Sync, E: From<std::io::Error>>(
        &self,
        places: &[(K, Place)],
        render: impl Fn(&K, Stored<'_>, &mut Vec<u8>) + Sync,
        write: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.try_render_each(
            |put| places.iter().try_for_each(|(key, place)| put(key, *place)),
            |key: &&K, stored, out| render(key, stored, out),
            write,
        )
    }

    /// Renders one stretch of places into bytes, in order: texts that lie one
    /// after another in one file with one positional read ([`run_len`]).
    fn render_stretch<K>(
        &self,
        part: &[(K, Place)],
        render: &(impl Fn(&K, Stored<'_>, &mut Vec<u8>) + Sync),
    ) -> std::io::Result<Vec<u8>> {
        // Sized once for what the texts take (and a line's frame): growing it
        // as it fills copied each stretch's bytes over again.
        let size: usize = part.iter().map(|(_, place)| place.size_hint() + 64).sum();
        let (mut out, mut buf, mut input) = (Vec::with_capacity(size), Vec::new(), Vec::new());
        let mut rest = part;
        while let Some((key, place)) = rest.first() {
            let n = run_len(rest);
            if n > 1 {
                self.render_run(&rest[..n], render, &mut input, &mut out)?;
            } else {
                render(key, self.stored_at(*place, &mut buf, &mut input)?, &mut out);
            }
            rest = &rest[n.max(1)..];
        }
        Ok(out)
    }

    /// Renders `run` (places of [`run_len`]: texts one after another in one
    /// file, an input file or the temporary file) with one positional read
    /// for all of them.
    fn render_run<K>(
        &self,
        run: &[(K, Place)],
        render: &(impl Fn(&K, Stored<'_>, &mut Vec<u8>) + Sync),
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let out_of_range = || std::io::Error::other("text place out of range");
        let (file, start, end) = run_span(run)?;
        match file {
            SPILLED => self.spilled.read_span(start, end - start, buf)?,
            file => {
                let len = usize::try_from(end - start).unwrap_or(usize::MAX);
                self.inputs.span(file, start, len, buf)?
            }
        }
        for (key, place) in run {
            let (_, from, to) = place.span().ok_or_else(out_of_range)?;
            let within = |at: u64| at.checked_sub(start).and_then(|d| usize::try_from(d).ok());
            let (Some(from), Some(to)) = (within(from), within(to)) else {
                return Err(out_of_range());
            };
            let bytes = buf.get(from..to).ok_or_else(out_of_range)?;
            let stored = match *place {
                Place::Input(at) => Stored {
                    text: self.inputs.checked(at.file, bytes)?,
                    compact: at.compact,
                },
                // A spilled place is a text held: one left in an input file has its own place.
                Place::Disk(..) => match crate::spill::record_in::<(Key<'_>, Held<&str>)>(bytes)?.1 {
                    Held::Text { text, compact } => Stored { text, compact },
                    Held::At(_) => return Err(out_of_range()),
                },
                Place::Memory(_) => return Err(out_of_range()),
            };
            render(key, stored, out);
        }
        Ok(())
    }

    /// The text at `place`, read into `buf` (a spilled record) or `input` (a text in an input file).
    fn text_at<'s>(&'s self, place: Place, buf: &'s mut Vec<u8>, input: &'s mut Vec<u8>) -> std::io::Result<&'s str> {
        Ok(self.stored_at(place, buf, input)?.text)
    }

    /// [`Texts::text_at`] with whether the text is known to be compact.
    fn stored_at<'s>(
        &'s self,
        place: Place,
        buf: &'s mut Vec<u8>,
        input: &'s mut Vec<u8>,
    ) -> std::io::Result<Stored<'s>> {
        let held = match place {
            Place::Disk(at, size) => self.spilled.read_sized::<(Key<'_>, Held<&str>)>(at, size, buf)?.1,
            Place::Input(at) => Held::At(at),
            Place::Memory(i) => match self.memory.get(i) {
                Some((_, held)) => held.as_ref().map(|text| &**text),
                None => return Err(std::io::Error::other("text place out of range")),
            },
        };
        Ok(match held {
            Held::Text { text, compact } => Stored { text, compact },
            Held::At(at) => Stored {
                text: self.inputs.text(at, input)?,
                compact: at.compact,
            },
        })
    }

    /// The keys `wanted` accepts with where their texts lie, in key order (a
    /// key stored twice keeps its order): one pass over the temporary file.
    pub fn places(&mut self, wanted: impl Fn(&SourceRef) -> bool) -> std::io::Result<Vec<(SourceRef, Place)>> {
        let mut places: Vec<(SourceRef, Place)> = (self.memory.iter().enumerate())
            .filter(|(_, (key, _))| wanted(key))
            .map(|(i, (key, held))| (key.clone(), held.input().unwrap_or(Place::Memory(i))))
            .collect();
        self.spilled.flush()?;
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((at, size, (key, held))) = records.next_borrowed::<(SourceRef, Held<&str>)>()? {
            if wanted(&key) {
                places.push((key, held.input().unwrap_or(Place::Disk(at, size))));
            }
        }
        places.sort_by(|a, b| a.0.cmp(&b.0)); // stable
        Ok(places)
    }

    /// Writes out what the temporary file still holds in its buffer: the texts
    /// can then be read from several threads (`Texts::sorted_places`).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.spilled.flush()
    }

    /// Every key with the record of where its text lies ([`place_rec`]),
    /// sorted by key (a key stored twice keeps its order), past `budget` keys
    /// on disk. Fails unless [`Texts::flush`] came after the last insert.
    pub(crate) fn sorted_places(&self, budget: usize) -> std::io::Result<Sorted<(SourceRef, u64, PlaceRec)>> {
        let mut places: Sorter<(SourceRef, u64, PlaceRec)> = Sorter::new(budget);
        let mut seq = 0u64;
        self.try_for_each_place(|(t, id), place| {
            seq += 1;
            places.push((SourceRef::new(t, id), seq, place_rec(place)))
        })?;
        places.finish()
    }

    /// Calls `f` with every key (its type and id) and where its text lies, in
    /// the order they were inserted (so the `n`-th call is the text numbered
    /// `n - 1`, [`crate::domain::TextNumber`]), holding nothing: one pass over
    /// the temporary file, texts not read. Fails unless [`Texts::flush`] came
    /// after the last insert.
    pub fn try_for_each_place<E: From<std::io::Error>>(
        &self,
        mut f: impl FnMut((&str, &str), Place) -> Result<(), E>,
    ) -> Result<(), E> {
        let split = self.split.unwrap_or(self.memory.len());
        for (key, place) in (0..split).filter_map(|i| self.held_place(i)) {
            f(key, place)?;
        }
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((at, size, (key, held))) = records.next_borrowed::<(Key<'_>, Held<&str>)>()? {
            f(key, held.input().unwrap_or(Place::Disk(at, size)))?;
        }
        for (key, place) in (split..self.memory.len()).filter_map(|i| self.held_place(i)) {
            f(key, place)?;
        }
        Ok(())
    }

    /// The key of `memory[i]` and where its text lies.
    fn held_place(&self, i: usize) -> Option<(Key<'_>, Place)> {
        let (key, held) = self.memory.get(i)?;
        Some(((&key.resource_type, &key.id), held.input().unwrap_or(Place::Memory(i))))
    }

    /// The text at `place` (one of [`Texts::places`]).
    pub fn read(&self, place: Place) -> std::io::Result<std::borrow::Cow<'_, str>> {
        if let Place::Memory(i) = place {
            if let Some((_, Held::Text { text, .. })) = self.memory.get(i) {
                return Ok(std::borrow::Cow::Borrowed(&**text));
            }
        }
        let (mut buf, mut input) = (Vec::new(), Vec::new());
        Ok(self.text_at(place, &mut buf, &mut input)?.to_string().into())
    }

    /// Calls `f` with every key and text in the order they were inserted;
    /// stops at the first error (reading the temporary file back, or one `f` returns).
    pub fn try_for_each<E: From<std::io::Error>>(
        &mut self,
        mut f: impl FnMut(&SourceRef, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let (before, after) = self.memory.split_at(self.split.unwrap_or(self.memory.len()));
        let mut input = Vec::new();
        for (key, held) in before {
            f(key, self.text_of(held, &mut input)?)?;
        }
        self.spilled.flush()?;
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((_, _, (key, held))) = records.next_borrowed::<(SourceRef, Held<&str>)>()? {
            f(&key, self.text_of(&held, &mut input)?)?;
        }
        for (key, held) in after {
            f(key, self.text_of(held, &mut input)?)?;
        }
        Ok(())
    }
}

/// The file of a run of places ([`run_len`]), where its first starts and where its last ends.
fn run_span<K>(run: &[(K, Place)]) -> std::io::Result<(u32, u64, u64)> {
    match (
        run.first().and_then(|p| p.1.span()),
        run.last().and_then(|p| p.1.span()),
    ) {
        (Some((file, start, _)), Some((_, _, end))) if end >= start => Ok((file, start, end)),
        _ => Err(std::io::Error::other("text place out of range")),
    }
}

impl From<String> for Kept {
    /// A text not known to be compact.
    fn from(text: String) -> Self {
        Kept::Text { text, compact: false }
    }
}

#[cfg(test)]
mod tests;
