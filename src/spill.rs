//! Record files: what a large run moves off the heap.
//!
//! A [`Log`] appends serde records (postcard, each behind its u64 length) to
//! an anonymous temporary file in `TMPDIR`: unlinked at creation and readable
//! by this process only, so nothing holding patient data is left behind, even
//! after a crash. Records are read back in the order written, by any number of
//! [`Reader`]s at once (positional reads), or one at a time at the offset a
//! reader gave ([`Log::read_at`]), while the log stays open for more. A
//! [`List`] keeps its first records in memory and appends the rest to a log.
//!
//! This module owns the file format only; `collect::texts`,
//! `collect::patients`, the `Collector`, `report::Issues` and the cohort's
//! provenance decide what goes in and when.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Records appended to an anonymous temporary file.
#[derive(Debug, Default)]
pub(crate) struct Log {
    file: Option<BufWriter<File>>,
    records: u64,
    /// Bytes written (buffered included): where the next record starts.
    end: u64,
    buf: Vec<u8>,
    /// Tests: pushes past this many fail, as on a full disk.
    #[cfg(test)]
    fail_after: Option<u64>,
}

impl Log {
    /// Appends `record` (the file is created on the first).
    pub(crate) fn push(&mut self, record: &impl Serialize) -> std::io::Result<()> {
        self.push_at(record).map(|_| ())
    }

    /// Appends `record`; returns the byte offset it starts at, for [`Log::read_at`].
    pub(crate) fn push_at(&mut self, record: &impl Serialize) -> std::io::Result<u64> {
        #[cfg(test)]
        if self.fail_after.is_some_and(|n| self.records >= n) {
            return Err(std::io::Error::other("no space left (test)"));
        }
        let w = match self.file.as_mut() {
            Some(w) => w,
            None => self
                .file
                .insert(BufWriter::with_capacity(1 << 16, tempfile::tempfile()?)),
        };
        self.buf.clear();
        self.buf = postcard::to_extend(record, std::mem::take(&mut self.buf)).map_err(std::io::Error::other)?;
        w.write_all(&(self.buf.len() as u64).to_le_bytes())?;
        w.write_all(&self.buf)?;
        self.records += 1;
        let at = self.end;
        self.end += 8 + self.buf.len() as u64;
        Ok(at)
    }

    /// A log whose pushes past the first `records` fail.
    #[cfg(test)]
    pub(crate) fn failing_after(records: u64) -> Self {
        Self {
            fail_after: Some(records),
            ..Self::default()
        }
    }

    /// How many records were pushed.
    pub(crate) fn len(&self) -> u64 {
        self.records
    }

    /// Writes out what is buffered; a [`Reader`] sees only flushed records.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }

    /// Reads the records back from the first. Errors if some are not flushed.
    pub(crate) fn reader<T: DeserializeOwned>(&self) -> std::io::Result<Reader<'_, T>> {
        let r = self
            .flushed()?
            .map(|file| BufReader::with_capacity(1 << 16, ReadAt { file, pos: 0 }));
        Ok(Reader {
            r,
            left: self.records,
            pos: 0,
            buf: Vec::new(),
            record: PhantomData,
        })
    }

    /// The record at byte offset `pos` (a [`Reader::position`]).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "no caller outside the tests since the export's sink keeps raw texts"
        )
    )]
    pub(crate) fn read_at<T: DeserializeOwned>(&self, pos: u64) -> std::io::Result<T> {
        let file = self
            .flushed()?
            .ok_or_else(|| std::io::Error::other("record file read before any record"))?;
        read_record(&mut ReadAt { file, pos }, &mut Vec::new()).map(|(_, record)| record)
    }

    /// The record at byte offset `pos` that takes `size` bytes in the file
    /// (length included; see [`Reader::next_borrowed`]), read with one
    /// positional read into `buf` and borrowing from it.
    pub(crate) fn read_sized<'b, T: Deserialize<'b>>(
        &self,
        pos: u64,
        size: u64,
        buf: &'b mut Vec<u8>,
    ) -> std::io::Result<T> {
        self.read_span(pos, size, buf)?;
        record_in(buf)
    }

    /// The file's `len` bytes from `pos` (records one after another, each
    /// then read with [`record_in`]), read with one positional read into `buf`.
    pub(crate) fn read_span(&self, pos: u64, len: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let file = self
            .flushed()?
            .ok_or_else(|| std::io::Error::other("record file read before any record"))?;
        buf.resize(usize::try_from(len).map_err(std::io::Error::other)?, 0);
        ReadAt { file, pos }.read_exact(buf)
    }

    /// The file, when it exists and nothing is left in the write buffer.
    fn flushed(&self) -> std::io::Result<Option<&File>> {
        match &self.file {
            Some(w) if !w.buffer().is_empty() => Err(std::io::Error::other("record file read before flush")),
            Some(w) => Ok(Some(w.get_ref())),
            None => Ok(None),
        }
    }
}

/// Reads one record; returns its size in the file with it.
fn read_record<T: DeserializeOwned>(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<(u64, T)> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let size = u64::from_le_bytes(len);
    buf.resize(usize::try_from(size).map_err(std::io::Error::other)?, 0);
    r.read_exact(buf)?;
    let record = postcard::from_bytes(buf).map_err(invalid)?;
    Ok((8 + size, record))
}

/// The record `bytes` hold, as a [`Log`] wrote it (its length, then its
/// body), borrowing from them: the bytes at a record's place and size from
/// [`Reader::next_borrowed`], read by [`Log::read_span`].
pub(crate) fn record_in<'b, T: Deserialize<'b>>(bytes: &'b [u8]) -> std::io::Result<T> {
    let (len, body) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| invalid("record shorter than its length"))?;
    if usize::try_from(u64::from_le_bytes(*len)).ok() != Some(body.len()) {
        return Err(invalid("record of another length than its place says"));
    }
    postcard::from_bytes(body).map_err(invalid)
}

/// A record file that does not read back as written.
fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// The records of a [`Log`], in order.
pub(crate) struct Reader<'f, T> {
    r: Option<BufReader<ReadAt<'f>>>,
    left: u64,
    /// Byte offset of the next record.
    pos: u64,
    buf: Vec<u8>,
    record: PhantomData<T>,
}

impl<T: DeserializeOwned> Reader<'_, T> {
    /// The next record; `None` after the last.
    pub(crate) fn next(&mut self) -> std::io::Result<Option<T>> {
        let Some(r) = self.r.as_mut().filter(|_| self.left > 0) else {
            return Ok(None);
        };
        self.left -= 1;
        let (size, record) = read_record(r, &mut self.buf)?;
        self.pos += size;
        Ok(Some(record))
    }

    /// The next record read as `U`, which may borrow from the reader's
    /// buffer (a text read as `&str`: no copy of its own), with where it
    /// starts and its size in the file, for [`Log::read_sized`]; `None` after the last.
    pub(crate) fn next_borrowed<'b, U: Deserialize<'b>>(&'b mut self) -> std::io::Result<Option<(u64, u64, U)>> {
        let Some(r) = self.r.as_mut().filter(|_| self.left > 0) else {
            return Ok(None);
        };
        self.left -= 1;
        let mut len = [0u8; 8];
        r.read_exact(&mut len)?;
        let size = u64::from_le_bytes(len);
        self.buf
            .resize(usize::try_from(size).map_err(std::io::Error::other)?, 0);
        r.read_exact(&mut self.buf)?;
        let at = self.pos;
        self.pos += 8 + size;
        let record = postcard::from_bytes(&self.buf).map_err(invalid)?;
        Ok(Some((at, 8 + size, record)))
    }

    /// Where the next record starts, for [`Log::read_at`].
    #[cfg(test)]
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }
}

/// A list that keeps its first records in memory and the rest in a [`Log`]
/// (as `R`, the form the file stores: every field written, since postcard is
/// not self-describing); if the file cannot be written, the rest stay in
/// memory after it.
#[derive(Debug)]
pub(crate) struct List<T, R = T> {
    head: Vec<T>,
    in_memory: usize,
    spilled: Log,
    /// After the file failed (in order after `spilled`).
    tail: Vec<T>,
    failed: bool,
    stored: PhantomData<R>,
}

impl<T: From<R>, R: From<T> + Serialize + DeserializeOwned> List<T, R> {
    /// Keeps the first `in_memory` records in memory.
    pub(crate) fn new(in_memory: usize) -> Self {
        Self {
            head: Vec::new(),
            in_memory,
            spilled: Log::default(),
            tail: Vec::new(),
            failed: false,
            stored: PhantomData,
        }
    }

    /// A list whose file fails after `records` records, as on a full disk.
    #[cfg(test)]
    pub(crate) fn failing_after(in_memory: usize, records: u64) -> Self {
        Self {
            spilled: Log::failing_after(records),
            ..Self::new(in_memory)
        }
    }

    /// Appends `record`. On the file's first failure the record comes back
    /// with the error, not kept: later pushes stay in memory.
    pub(crate) fn push(&mut self, record: T) -> Result<(), (T, std::io::Error)> {
        if self.head.len() < self.in_memory {
            self.head.push(record);
        } else if self.failed {
            self.tail.push(record);
        } else {
            let stored = R::from(record);
            if let Err(e) = self.spilled.push(&stored) {
                self.failed = true;
                return Err((T::from(stored), e));
            }
        }
        Ok(())
    }

    /// Appends `record`, keeping it in memory if the file fails; the error is
    /// the file's first failure (that record and later ones stay in memory).
    pub(crate) fn push_keeping(&mut self, record: T) -> Option<std::io::Error> {
        let Err((record, e)) = self.push(record) else {
            return None;
        };
        let _in_memory = self.push(record); // after a failure records stay in memory: Ok
        Some(e)
    }

    /// Every record, in memory, in order.
    pub(crate) fn all(&self) -> std::io::Result<Vec<T>>
    where
        T: Clone,
    {
        let mut v = Vec::with_capacity(self.len());
        self.try_for_each(|r| {
            v.push(r.clone());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(v)
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.held() + self.spilled.len() as usize
    }

    /// Number of records in memory.
    pub(crate) fn held(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// True once the file failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Writes out what is buffered; [`List::try_for_each`] needs it after a push.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.spilled.flush()
    }

    /// The records in order, in three parts: those in memory before the
    /// file's, a reader of the file's (to read them in place:
    /// [`Reader::next_borrowed`]), those kept in memory after the file failed.
    ///
    /// # Errors
    ///
    /// Opening the file to read it back.
    pub(crate) fn parts(&self) -> std::io::Result<(&[T], Reader<'_, R>, &[T])> {
        Ok((&self.head, self.spilled.reader::<R>()?, &self.tail))
    }

    /// Calls `f` with every record in order; stops at the first error
    /// (reading the file back, unflushed records, or one `f` returns).
    pub(crate) fn try_for_each<E: From<std::io::Error>>(
        &self,
        mut f: impl FnMut(&T) -> Result<(), E>,
    ) -> Result<(), E> {
        self.head.iter().try_for_each(&mut f)?;
        let mut records = self.spilled.reader::<R>()?;
        while let Some(record) = records.next()? {
            f(&T::from(record))?;
        }
        self.tail.iter().try_for_each(f)
    }
}

/// Reads a file from `pos` on with positional reads, so several readers and
/// the writer can share one open file (its own offset is never moved).
pub(crate) struct ReadAt<'f> {
    file: &'f File,
    pos: u64,
}

impl<'f> ReadAt<'f> {
    /// Reads `file` from byte `pos` on.
    pub(crate) fn new(file: &'f File, pos: u64) -> Self {
        Self { file, pos }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_gives_back_memory_file_and_after_failure_records_in_order() {
        let mut list: List<String> = List::new(3);
        list.spilled = Log::failing_after(4);
        let mut errors = 0;
        for i in 0..10u32 {
            if let Err((back, _)) = list.push(format!("r{i}")) {
                errors += 1;
                assert_eq!(back, "r7", "the record the file refused comes back");
                list.push(back).unwrap();
            }
        }
        assert_eq!((errors, list.len(), list.held()), (1, 10, 6), "told once, nothing lost");
        assert!(list.try_for_each(|_| Ok::<_, std::io::Error>(())).is_err(), "unflushed");
        list.flush().unwrap();
        let mut all = Vec::new();
        list.try_for_each(|r| {
            all.push(r.clone());
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
        assert_eq!(all, (0..10).map(|i| format!("r{i}")).collect::<Vec<_>>());
        assert_eq!((list.head.len(), list.spilled.len(), list.tail.len()), (3, 4, 3));
    }

    #[test]
    fn records_come_back_in_order_to_each_reader_and_the_log_grows_on() {
        let mut log = Log::default();
        assert_eq!(log.reader::<u32>().unwrap().next().unwrap(), None);
        for i in 0..1000u32 {
            log.push(&(i, format!("r{i}"))).unwrap();
        }
        assert!(log.reader::<(u32, String)>().is_err(), "unflushed records are refused");
        log.flush().unwrap();
        let (mut a, mut b) = (
            log.reader::<(u32, String)>().unwrap(),
            log.reader::<(u32, String)>().unwrap(),
        );
        assert_eq!(a.next().unwrap(), Some((0, "r0".to_string())));
        let mut all = Vec::new();
        while let Some(r) = b.next().unwrap() {
            all.push(r);
        }
        assert_eq!((all.len(), &all[999]), (1000, &(999, "r999".to_string())));
        assert_eq!(a.position(), 8 + 4, "length, then 0 and \"r0\" in 1 + 1 + 2 bytes");
        assert_eq!(a.next().unwrap(), Some((1, "r1".to_string())));
        assert_eq!(
            log.read_at::<(u32, String)>(a.position()).unwrap(),
            (2, "r2".to_string())
        );
        log.push(&(1000u32, "more".to_string())).unwrap();
        log.flush().unwrap();
        assert_eq!(log.len(), 1001);
        let mut c = log.reader::<(u32, String)>().unwrap();
        let last = std::iter::from_fn(|| c.next().unwrap()).last();
        assert_eq!(last, Some((1000, "more".to_string())));
    }

    #[test]
    fn borrowed_records_come_back_with_their_place_and_are_read_again_there() {
        let mut log = Log::default();
        for i in 0..100u32 {
            log.push(&(i, "x".repeat(i as usize))).unwrap();
        }
        log.flush().unwrap();
        let mut r = log.reader::<(u32, String)>().unwrap();
        let mut places = Vec::new();
        while let Some((at, size, (i, text))) = r.next_borrowed::<(u32, &str)>().unwrap() {
            assert_eq!(text.len(), i as usize);
            places.push((at, size, i));
        }
        assert_eq!(places.len(), 100);
        assert_eq!(
            places[1].0,
            places[0].0 + places[0].1,
            "each record right after the one before"
        );
        let mut buf = Vec::new();
        for (at, size, i) in places.into_iter().rev() {
            let (j, text): (u32, &str) = log.read_sized(at, size, &mut buf).unwrap();
            assert_eq!((j, text.len()), (i, i as usize));
            assert_eq!(log.read_at::<(u32, String)>(at).unwrap().0, i);
        }
    }
}
