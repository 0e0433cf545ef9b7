//! [`Texts::try_render_each`]: texts rendered into bytes on the set threads,
//! handed back in the order their places came.
//!
//! The calling thread hands out the places in stretches of [`STRETCH`],
//! in turn to threads that live as long as the rendering (each reads its
//! stretch's texts and renders them), and takes the bytes back in the same
//! turn: at most [`AHEAD`] stretches per thread wait, so memory holds a few
//! megabytes whatever the number of texts. With one thread, each stretch is
//! rendered where it fills.
//!
//! This module owns the threads of the rendering only; where texts lie is
//! `Texts`', what a text becomes is `render`'s, where the bytes go `write`'s.

use std::sync::mpsc::{channel, Receiver, Sender};

use super::{Place, Stored, Texts, STRETCH};

/// Stretches handed to each thread and not yet taken back, at most.
const AHEAD: usize = 2;

impl Texts {
    /// Renders the texts at the places `places` hands to its `put`, in that
    /// order, each with `render` (told the place's `K`), on up to the set
    /// threads, handing the bytes to `write` in stretches, in order: the same
    /// bytes for any number of threads. Stops at the first error: `places`',
    /// reading a text back, or `write`'s.
    pub fn try_render_each<K: Send, E: From<std::io::Error>>(
        &self,
        places: impl FnOnce(&mut dyn FnMut(K, Place) -> Result<(), E>) -> Result<(), E>,
        render: impl Fn(&K, Stored<'_>, &mut Vec<u8>) + Sync,
        mut write: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let render = &render;
        if self.threads <= 1 {
            return in_stretches(places, |stretch| write(self.render_stretch(&stretch, render)?));
        }
        std::thread::scope(|s| {
            let mut pool = Pool {
                threads: Vec::with_capacity(self.threads),
                sent: 0,
                taken: 0,
            };
            for _ in 0..self.threads {
                let (jobs, inbox) = channel::<Vec<(K, Place)>>();
                let (done, outbox) = channel::<std::io::Result<Vec<u8>>>();
                s.spawn(move || {
                    for stretch in inbox {
                        if done.send(self.render_stretch(&stretch, render)).is_err() {
                            break; // nobody takes them any more
                        }
                    }
                });
                pool.threads.push((jobs, outbox));
            }
            in_stretches(places, |stretch| pool.send(stretch, &mut write))?;
            pool.drain(&mut write)
            // Returning drops the senders: the threads end once their stretches are done.
        })
    }
}

/// Groups the places `places` hands to its `put` into stretches of
/// [`STRETCH`], in order, handing each full one to `hand`, then the last,
/// shorter one (none when empty).
fn in_stretches<K, E>(
    places: impl FnOnce(&mut dyn FnMut(K, Place) -> Result<(), E>) -> Result<(), E>,
    mut hand: impl FnMut(Vec<(K, Place)>) -> Result<(), E>,
) -> Result<(), E> {
    let mut stretch = Vec::with_capacity(STRETCH);
    places(&mut |key, place| {
        stretch.push((key, place));
        match stretch.len() < STRETCH {
            true => Ok(()),
            false => hand(std::mem::replace(&mut stretch, Vec::with_capacity(STRETCH))),
        }
    })?;
    match stretch.is_empty() {
        true => Ok(()),
        false => hand(stretch),
    }
}

/// The rendering threads of [`Texts::try_render_each`]: each one's stretches
/// to render and its bytes rendered; stretch `i` goes to thread `i % n`.
struct Pool<K> {
    threads: Vec<Lane<K>>,
    /// Stretches handed out.
    sent: usize,
    /// Stretches taken back (and written).
    taken: usize,
}

/// One rendering thread's stretches to render, and its bytes rendered.
type Lane<K> = (Sender<Vec<(K, Place)>>, Receiver<std::io::Result<Vec<u8>>>);

impl<K> Pool<K> {
    /// Hands `stretch` to the next thread, first taking back the oldest
    /// stretch when [`AHEAD`] per thread are out.
    fn send<E: From<std::io::Error>>(
        &mut self,
        stretch: Vec<(K, Place)>,
        write: &mut impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.sent - self.taken >= AHEAD * self.threads.len() {
            self.take(write)?;
        }
        let (jobs, _) = self.thread(self.sent)?;
        jobs.send(stretch).map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    /// Takes back the oldest stretch's bytes and writes them.
    fn take<E: From<std::io::Error>>(&mut self, write: &mut impl FnMut(Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let (_, outbox) = self.thread(self.taken)?;
        let bytes = outbox.recv().map_err(|_| stopped())??;
        self.taken += 1;
        write(bytes)
    }

    /// Takes back and writes every stretch still out, in order.
    fn drain<E: From<std::io::Error>>(&mut self, write: &mut impl FnMut(Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        while self.taken < self.sent {
            self.take(write)?;
        }
        Ok(())
    }

    /// The thread of stretch `i`.
    fn thread(&self, i: usize) -> std::io::Result<&Lane<K>> {
        let n = self.threads.len().max(1);
        self.threads.get(i % n).ok_or_else(stopped)
    }
}

/// A rendering thread that ended before its stretches were taken back (it panicked).
fn stopped() -> std::io::Error {
    std::io::Error::other("a thread rendering texts stopped")
}
