//! The raw JSON of resources that gave a fact, kept off the heap.
//!
//! [`Texts`] maps `Type/id` to a resource's text. The first
//! [`ReadOptions::spill_after`](crate::pipeline::ReadOptions::spill_after) bytes stay in
//! memory; later texts are appended, with their key, to a `spill::Log` (an
//! anonymous temporary file in `TMPDIR`), with nothing kept in memory for
//! them: a 10 GB export costs no memory per relevant resource here. Reading
//! back is a sequential pass over the file, which is how outputs want them: all
//! of them in the order they came ([`Texts::try_for_each`]), or the resources
//! behind cohort rows in key order ([`Texts::try_for_each_selected`]: one pass
//! to find them, then a positional read each, with only their keys held).
//! If the temporary file cannot be written, texts stay in memory and the
//! caller is told once (see [`Texts::insert`]).
//!
//! This module owns which texts stay in memory only; the file format is
//! `spill`'s, which resources go in is decided by the `Collector`, what is
//! written out by `cohort::write` and `export`.

use std::collections::BTreeMap;

use crate::domain::SourceRef;
use crate::spill::Log;

/// Where a selected text lies (from [`Texts::places`]).
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// Index in `Texts::memory`.
    Memory(usize),
    /// Offset of its record in `Texts::spilled`, and the record's size there.
    Disk(u64, u64),
}

/// A spilled text's record: its key and its text.
type Record = (SourceRef, String);

/// A record's key read in place (a [`SourceRef`]'s two fields, borrowed).
type Key<'a> = (&'a str, &'a str);

/// Resource texts by `Type/id`.
#[derive(Debug)]
pub struct Texts {
    /// In the order inserted: `memory[..split]` came before every spilled
    /// text, `memory[split..]` (kept once the temporary file failed) after.
    memory: Vec<(SourceRef, Box<str>)>,
    /// `(key, text)` records, between the two parts of `memory`.
    spilled: Log,
    /// The length of `memory` when the first text went to disk.
    split: Option<usize>,
    in_memory: usize,
    spill_after: usize,
    spill_failed: bool,
}

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
            in_memory: 0,
            spill_after,
            spill_failed: false,
        }
    }

    /// Stores `text` under `key`. The caller stores each key once (the
    /// `Collector` keeps the first copy of a resource). Returns the error met
    /// the first time the temporary file could not be created or written; the
    /// text is then kept in memory, as are all later ones.
    pub fn insert(&mut self, key: SourceRef, text: String) -> Option<std::io::Error> {
        // Once one text is on disk, all later ones go there too: memory holds a prefix.
        let fits = self.spilled.len() == 0 && self.in_memory.saturating_add(text.len()) <= self.spill_after;
        if !fits && !self.spill_failed {
            let record = (key, text);
            match self.spilled.push(&record) {
                Ok(()) => {
                    self.split.get_or_insert(self.memory.len());
                    return None;
                }
                Err(e) => {
                    self.spill_failed = true;
                    self.keep(record.0, record.1);
                    return Some(e);
                }
            }
        }
        self.keep(key, text);
        None
    }

    fn keep(&mut self, key: SourceRef, text: String) {
        self.in_memory += text.len();
        self.memory.push((key, text.into_boxed_str()));
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
        let mut buf = Vec::new();
        for (key, place) in self.places(wanted)? {
            match place {
                Place::Disk(at, size) => {
                    let (_, text): (Key<'_>, &str) = self.spilled.read_sized(at, size, &mut buf)?;
                    f(&key, text)?;
                }
                Place::Memory(_) => f(&key, &self.read(place)?)?,
            }
        }
        Ok(())
    }

    /// The keys `wanted` accepts with where their texts lie, in key order (a
    /// key stored twice keeps its order): one pass over the temporary file.
    pub fn places(&mut self, wanted: impl Fn(&SourceRef) -> bool) -> std::io::Result<Vec<(SourceRef, Place)>> {
        let mut places: Vec<(SourceRef, Place)> = (self.memory.iter().enumerate())
            .filter(|(_, (key, _))| wanted(key))
            .map(|(i, (key, _))| (key.clone(), Place::Memory(i)))
            .collect();
        self.spilled.flush()?;
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((at, size, (key, _))) = records.next_borrowed::<(SourceRef, &str)>()? {
            if wanted(&key) {
                places.push((key, Place::Disk(at, size)));
            }
        }
        places.sort_by(|a, b| a.0.cmp(&b.0)); // stable
        Ok(places)
    }

    /// Calls `f` with every key and where its text lies, in the order of
    /// [`Texts::places`] before its sort (the texts in memory, then the
    /// spilled ones), holding nothing: one pass over the temporary file,
    /// texts not read.
    pub fn try_for_each_place<E: From<std::io::Error>>(
        &mut self,
        mut f: impl FnMut(&SourceRef, Place) -> Result<(), E>,
    ) -> Result<(), E> {
        for (i, (key, _)) in self.memory.iter().enumerate() {
            f(key, Place::Memory(i))?;
        }
        self.spilled.flush()?;
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((at, size, (key, _))) = records.next_borrowed::<(SourceRef, &str)>()? {
            f(&key, Place::Disk(at, size))?;
        }
        Ok(())
    }

    /// The text at `place` (one of [`Texts::places`]).
    pub fn read(&self, place: Place) -> std::io::Result<std::borrow::Cow<'_, str>> {
        match place {
            Place::Memory(i) => self
                .memory
                .get(i)
                .map(|(_, text)| std::borrow::Cow::Borrowed(&**text))
                .ok_or_else(|| std::io::Error::other("text place out of range")),
            Place::Disk(at, size) => {
                let mut buf = Vec::new();
                let (_, text): (Key<'_>, &str) = self.spilled.read_sized(at, size, &mut buf)?;
                Ok(text.to_string().into())
            }
        }
    }

    /// Calls `f` with every key and text in the order they were inserted;
    /// stops at the first error (reading the temporary file back, or one `f` returns).
    pub fn try_for_each<E: From<std::io::Error>>(
        &mut self,
        mut f: impl FnMut(&SourceRef, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let (before, after) = self.memory.split_at(self.split.unwrap_or(self.memory.len()));
        for (key, text) in before {
            f(key, text)?;
        }
        self.spilled.flush()?;
        let mut records = self.spilled.reader::<Record>()?;
        while let Some((_, _, (key, text))) = records.next_borrowed::<(SourceRef, &str)>()? {
            f(&key, text)?;
        }
        after.iter().try_for_each(|(key, text)| f(key, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> SourceRef {
        SourceRef::new("Observation", id)
    }

    #[test]
    fn texts_past_the_limit_go_to_disk_and_come_back_in_key_order() {
        let mut texts = Texts::new(10);
        assert!(texts.insert(key("c"), "{\"id\":\"c\"}".into()).is_none()); // 10 bytes: fits
        assert!(texts.insert(key("a"), "{\"id\":\"a\",\"é\":1}".into()).is_none());
        assert!(texts.insert(key("b"), "{\"id\":\"b\"}".into()).is_none());
        assert!(texts.insert(key("d"), "{}".into()).is_none()); // would fit; after a spilled one
        assert_eq!((texts.len(), texts.spilled()), (4, 3));
        let all = texts.select(|_| true).unwrap();
        let seen: Vec<String> = all.iter().map(|(k, t)| format!("{}={t}", k.id)).collect();
        assert_eq!(
            seen,
            [
                "a={\"id\":\"a\",\"é\":1}",
                "b={\"id\":\"b\"}",
                "c={\"id\":\"c\"}",
                "d={}"
            ]
        );
        let some = texts.select(|k| k.id == "b" || k.id == "c").unwrap();
        assert_eq!(some.keys().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        // Reading back leaves the file ready for more.
        assert!(texts.insert(key("0"), "{\"e\":1}".into()).is_none());
        assert_eq!(texts.select(|k| k.id == "0").unwrap()[&key("0")], "{\"e\":1}");
        let mut order = Vec::new();
        texts
            .try_for_each(|k, _| {
                order.push(k.id.clone());
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
        assert_eq!(order, ["c", "a", "b", "d", "0"]);
    }

    #[test]
    fn texts_kept_after_the_temporary_file_failed_come_back_after_the_spilled_ones() {
        let mut texts = Texts {
            spilled: Log::failing_after(2),
            ..Texts::new(2)
        };
        let mut failures = 0;
        for id in ["a", "b", "c", "d", "e"] {
            failures += usize::from(texts.insert(key(id), format!("{{\"id\":\"{id}\"}}")).is_some());
        }
        assert_eq!(
            (failures, texts.len(), texts.spilled()),
            (1, 5, 2),
            "told once, nothing lost"
        );
        let mut order = Vec::new();
        texts
            .try_for_each(|k, t| {
                order.push(format!("{}={t}", k.id));
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
        let want = ["a", "b", "c", "d", "e"].map(|id| format!("{id}={{\"id\":\"{id}\"}}"));
        assert_eq!(order, want);
    }

    #[test]
    fn without_a_limit_nothing_touches_disk() {
        let mut texts = Texts::default();
        for i in 0..100 {
            texts.insert(key(&i.to_string()), "x".repeat(1000));
        }
        assert_eq!((texts.len(), texts.spilled()), (100, 0));
    }
}
