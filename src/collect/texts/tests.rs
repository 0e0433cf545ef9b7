//! Tests of [`super::Texts`]: memory, disk and input places, runs, failures.

use super::inputs::{RUN_BYTES, RUN_GAP};
use super::*;

#[test]
fn places_come_back_from_their_sort_records() {
    let places = [
        Place::Memory(7),
        Place::Disk(1 << 40, 99),
        Place::Input(At {
            file: u32::MAX,
            offset: 1 << 45,
            len: u32::MAX,
            compact: false,
        }),
        Place::Input(At {
            file: 3,
            offset: 0,
            len: 7,
            compact: true,
        }),
    ];
    for place in places {
        assert_eq!(format!("{:?}", place_of(place_rec(place))), format!("{place:?}"));
    }
}

#[test]
fn a_run_is_texts_one_after_another_in_one_file_within_its_limits() {
    let at = |file: u32, offset: u64, len: u32| {
        let place = Place::Input(At {
            file,
            offset,
            len,
            compact: false,
        });
        (key("k"), place)
    };
    let gap = RUN_GAP;
    let places = [
        at(0, 0, 10),
        at(0, 11, 10),
        at(0, 21 + gap, 10),
        at(0, 32 + 2 * gap, 10),
    ];
    assert_eq!(run_len(&places), 3, "within the gap after the one before, not past it");
    assert_eq!(run_len(&places[3..]), 1);
    assert_eq!(run_len(&[at(0, 0, 10), at(1, 11, 10)]), 1, "another file");
    assert_eq!(run_len(&[at(0, 100, 10), at(0, 0, 10)]), 1, "before the one before");
    assert_eq!(run_len(&[at(0, 0, 10), (key("m"), Place::Memory(0)), at(0, 11, 10)]), 1);
    // Records of the temporary file make runs of their own, as an input file's texts do.
    let disk = |at: u64, size: u64| (key("d"), Place::Disk(at, size));
    assert_eq!(run_len(&[disk(0, 9), at(0, 9, 10)]), 1, "a record, then an input file");
    assert_eq!(run_len(&[disk(0, 9), disk(9, 20), disk(29 + gap, 5), disk(10, 3)]), 3);
    assert_eq!(run_len(&[at(0, 0, 10), disk(10, 9)]), 1, "an input file, then a record");
    let big = u32::try_from(RUN_BYTES).unwrap();
    assert_eq!(
        run_len(&[at(0, 0, big), at(0, u64::from(big) + 1, 10)]),
        1,
        "past the bytes of one read"
    );
}

fn key(id: &str) -> SourceRef {
    SourceRef::new("Observation", id)
}

#[test]
fn texts_past_the_limit_go_to_disk_and_come_back_in_key_order() {
    let mut texts = Texts::new(10);
    assert!(texts.insert(&key("c"), "{\"id\":\"c\"}".to_string()).is_none()); // 10 bytes: fits
    assert!(texts.insert(&key("a"), "{\"id\":\"a\",\"é\":1}".to_string()).is_none());
    assert!(texts.insert(&key("b"), "{\"id\":\"b\"}".to_string()).is_none());
    assert!(texts.insert(&key("d"), "{}".to_string()).is_none()); // would fit; after a spilled one
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
    assert!(texts.insert(&key("0"), "{\"e\":1}".to_string()).is_none());
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
        failures += usize::from(texts.insert(&key(id), format!("{{\"id\":\"{id}\"}}")).is_some());
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
    // Their places too: the n-th is the text numbered n - 1 (as the collector numbered them).
    assert_eq!(place_ids(&texts), ["a", "b", "c", "d", "e"]);
}

/// The ids of `texts` in the order `try_for_each_place` gives them.
fn place_ids(texts: &Texts) -> Vec<String> {
    let mut ids = Vec::new();
    texts
        .try_for_each_place(|(_, id), _| {
            ids.push(id.to_string());
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
    ids
}

#[test]
fn without_a_limit_nothing_touches_disk() {
    let mut texts = Texts::default();
    for i in 0..100 {
        texts.insert(&key(&i.to_string()), "x".repeat(1000));
    }
    assert_eq!((texts.len(), texts.spilled()), (100, 0));
}

#[test]
fn texts_kept_as_places_are_read_in_their_file_and_a_changed_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.ndjson");
    std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();
    let name: Arc<str> = path.display().to_string().into();
    // A place costs its entry and its key's bytes (about 84): `a` stays in memory, the rest go to disk.
    let mut texts = Texts::new(120);
    for (id, offset, compact) in [("a", 0, true), ("b", 11, false)] {
        let at = Kept::At {
            file: name.clone(),
            offset,
            len: 10,
            compact,
        };
        assert!(texts.insert(&key(id), at).is_none());
    }
    assert!(texts.insert(&key("c"), "{\"id\":\"c\"}".to_string()).is_none());
    assert_eq!((texts.len(), texts.spilled()), (3, 2));
    let all = texts.select(|_| true).unwrap();
    let seen: Vec<String> = all.iter().map(|(k, t)| format!("{}={t}", k.id)).collect();
    assert_eq!(seen, ["a={\"id\":\"a\"}", "b={\"id\":\"b\"}", "c={\"id\":\"c\"}"]);
    let places = texts.places(|k| k.id == "b").unwrap();
    assert_eq!(texts.read(places[0].1).unwrap(), "{\"id\":\"b\"}");
    // A text in its file is placed there (its spilled record is not read again).
    assert!(
        matches!(
            places[0].1,
            Place::Input(At {
                offset: 11,
                len: 10,
                ..
            })
        ),
        "{places:?}"
    );
    let mut each = Vec::new();
    texts.flush().unwrap();
    texts
        .try_for_each_place(|(_, id), p| {
            each.push(format!("{}:{}", id, matches!(p, Place::Input(_))));
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
    assert_eq!(each, ["a:true", "b:true", "c:false"]);
    let mut out = Vec::new();
    // Whether a text is known compact comes back with it, wherever it was kept.
    let render = |_: &SourceRef, t: Stored<'_>, line: &mut Vec<u8>| {
        line.extend_from_slice(t.text.as_bytes());
        line.push(if t.compact { b'+' } else { b'-' });
    };
    let write = |b: Vec<u8>| {
        out.extend_from_slice(&b);
        Ok::<_, std::io::Error>(())
    };
    texts.try_render_places(&places, render, write).unwrap();
    assert_eq!(out, b"{\"id\":\"b\"}-");
    let d = Kept::Text {
        text: "{\"id\":\"d\"}".into(),
        compact: true,
    };
    assert!(texts.insert(&key("d"), d).is_none());
    out.clear();
    let write = |b: Vec<u8>| {
        out.extend_from_slice(&b);
        Ok::<_, std::io::Error>(())
    };
    texts.try_render_selected(|_| true, render, write).unwrap();
    let want = "{\"id\":\"a\"}+{\"id\":\"b\"}-{\"id\":\"c\"}-{\"id\":\"d\"}+";
    assert_eq!(String::from_utf8_lossy(&out), want);
    // `a` and `b` lie one after the other in the file: read with one read.
    assert_eq!(run_len(&texts.places(|_| true).unwrap()), 2);
    // A file changed under a run of texts is an error too.
    std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"x\"").unwrap();
    let nothing = |_: Vec<u8>| Ok::<_, std::io::Error>(());
    let err = texts.try_render_selected(|_| true, render, nothing).unwrap_err();
    assert!(err.to_string().contains("changed while being read"), "{err}");
    texts.set_threads(2); // the same from a rendering thread
    let err = texts.try_render_selected(|_| true, render, nothing).unwrap_err();
    assert!(err.to_string().contains("changed while being read"), "{err}");
    texts.set_threads(1);
    std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();
    // The input cut short: said, not written out wrong.
    std::fs::write(&path, "{\"id\":\"a\"}\n").unwrap();
    let err = texts.select(|_| true).unwrap_err();
    assert!(err.to_string().contains("changed while being read"), "{err}");
    let err = texts.try_for_each(|_, _| Ok::<_, std::io::Error>(())).unwrap_err();
    assert!(err.to_string().contains("changed while being read"), "{err}");
}

/// `try_for_each_place` gives every text once, held or spilled, in the
/// order inserted: the `n`-th is the text the collector numbered `n - 1`.
#[test]
fn places_come_in_insert_order_held_or_spilled() {
    let mut texts = Texts::new(40);
    let ids: Vec<String> = (0..50).map(|i| format!("id{}", (i * 37) % 101)).collect();
    for id in &ids {
        texts.insert(&key(id), format!("{{\"id\":\"{id}\"}}"));
    }
    assert!(texts.spilled() > 0 && texts.spilled() < 50, "{}", texts.spilled());
    texts.flush().unwrap();
    assert_eq!(place_ids(&texts), ids, "places come in insert order");
}

/// Spilled texts chosen with gaps between them (others left out) are
/// rendered from one read per run with the bytes of one read each.
#[test]
fn spilled_runs_render_the_texts_of_single_reads() {
    let mut texts = Texts::new(0);
    for i in 0..400 {
        let text = format!("{{\"id\":\"t{i}\",\"pad\":\"{}\"}}", "x".repeat(i % 37));
        texts.insert(&key(&format!("t{i}")), text);
    }
    texts.flush().unwrap();
    let mut all = Vec::new();
    texts
        .try_for_each_place(|_, place| {
            all.push(place);
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
    assert!(all.iter().all(|p| matches!(p, Place::Disk(..))));
    // Every text but each fifth and a stretch of 50: runs with gaps and a gap past RUN_GAP.
    let chosen: Vec<((), Place)> = (all.iter().enumerate())
        .filter(|(i, _)| i % 5 != 0 && !(200..250).contains(i))
        .map(|(_, p)| ((), *p))
        .collect();
    assert!(run_len(&chosen) > 100, "{}", run_len(&chosen));
    let render = |_: &(), t: Stored<'_>, line: &mut Vec<u8>| {
        line.extend_from_slice(t.text.as_bytes());
        line.push(b'\n');
    };
    let mut together = Vec::new();
    texts
        .try_render_places(&chosen, render, |b| {
            together.extend(b);
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
    let mut one_by_one = Vec::new();
    for (_, place) in &chosen {
        one_by_one.extend_from_slice(texts.read(*place).unwrap().as_bytes());
        one_by_one.push(b'\n');
    }
    assert_eq!(
        String::from_utf8(together).unwrap(),
        String::from_utf8(one_by_one).unwrap()
    );
}

/// `try_render_each` on several threads gives the bytes of one thread, in
/// order, over many more stretches than wait at once; a failing `write`
/// stops it with that error (the threads end: the call returns).
#[test]
fn rendering_on_threads_gives_the_bytes_of_one_in_order_and_stops_at_an_error() {
    let mut texts = Texts::default();
    let n = STRETCH * 9 + 13;
    for i in 0..n {
        texts.insert(&key(&i.to_string()), format!("{{\"id\":\"{i}\"}}"));
    }
    let render = |k: &u64, t: Stored<'_>, line: &mut Vec<u8>| {
        line.extend_from_slice(format!("{k}:{}\n", t.text).as_bytes());
    };
    let rendered = |texts: &Texts, fail_at: usize| {
        let (mut out, mut chunks) = (Vec::new(), 0);
        let every_third_left_out = |put: &mut dyn FnMut(u64, Place) -> std::io::Result<()>| {
            let mut i = 0u64;
            texts.try_for_each_place(|_, place| {
                i += 1;
                match i % 3 {
                    0 => Ok(()),
                    _ => put(i, place),
                }
            })
        };
        let written = texts.try_render_each(every_third_left_out, render, |bytes| {
            chunks += 1;
            if chunks == fail_at {
                return Err(std::io::Error::other("disk full (test)"));
            }
            out.extend(bytes);
            Ok(())
        });
        (written.map(|()| out), chunks)
    };
    let (one, chunks) = rendered(&texts, 0);
    let one = String::from_utf8(one.unwrap()).unwrap();
    assert_eq!(one.lines().count(), n - n / 3);
    assert!(
        one.starts_with("1:{\"id\":\"0\"}\n2:{\"id\":\"1\"}\n4:"),
        "{}",
        &one[..40]
    );
    assert!(chunks > 6, "{chunks} stretches");
    for threads in [2, 3] {
        texts.set_threads(threads);
        let (many, _) = rendered(&texts, 0);
        assert!(String::from_utf8(many.unwrap()).unwrap() == one, "{threads} threads");
        let (failed, at) = rendered(&texts, 3);
        assert_eq!(failed.unwrap_err().to_string(), "disk full (test)");
        assert_eq!(at, 3, "nothing written past the error");
    }
}
