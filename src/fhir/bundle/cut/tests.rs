use super::*;
use crate::fhir::bundle::tests::{bundles, items, show};

/// The items of `text` read as the workers read it, one piece after the
/// other: cut after about `chunk` bytes at a time, the header read `block`
/// bytes at a time, entries numbered across pieces, the rest read by one
/// reader after a piece that did not end cleanly; and how many pieces, and
/// whether one did not end cleanly.
fn pieces(text: &str, chunk: usize, block: usize) -> (Vec<String>, usize) {
    let (items, n, _) = pieces_unsure(text, chunk, block);
    (items, n)
}

fn pieces_unsure(text: &str, chunk: usize, block: usize) -> (Vec<String>, usize, bool) {
    let Some(mut cut) = Cut::open_in_blocks(text.as_bytes(), block) else {
        return (whole(text), 0, false);
    };
    let file: Arc<str> = "f.json".into();
    let mut out = Vec::new();
    let mut take = |item: Item<'_>| out.push(show(item));
    let (mut n, mut index) = (0, 0);
    let mut buf = Vec::new();
    let from = |offset: u64| &text.as_bytes()[usize::try_from(offset).unwrap()..];
    while let Some(piece) = cut.next(&mut buf, chunk) {
        n += 1;
        match piece {
            Piece::Entries { start, offset, len } => {
                assert_eq!(buf.len(), len);
                let checked = check(&buf);
                let end = checked.end;
                let count = checked.count();
                checked.deliver(&file, index, &mut take);
                index += count;
                if let End::Unsure { at } = end {
                    read_rest(
                        &file,
                        from(offset + at as u64),
                        start_at(start, &buf, at),
                        index,
                        &mut take,
                    );
                    return (out, n, true);
                }
            }
            Piece::Last { start, len } => {
                assert_eq!(buf.len(), len);
                buf = read_last(&file, std::mem::take(&mut buf), start, index, &mut take);
            }
            Piece::Rest { start, offset } => read_rest(&file, from(offset), start, index, &mut take),
        }
    }
    (out, n, false)
}

/// Bundles to cut: the one-thread reader's test Bundles, and one holding a
/// Bundle (whose entries look like the outer ones').
fn texts() -> Vec<String> {
    let mut texts = bundles();
    let inner = r#"{"resourceType":"Bundle","entry":[{"fullUrl":"i1","resource":{"resourceType":"Patient","id":"i1"}},{"fullUrl":"i2","resource":{"resourceType":"Patient","id":"i2"}}]}"#;
    texts.push(format!(
        r#"{{"resourceType":"Bundle","entry":[{{"fullUrl":"o1","resource":{inner}}}, {{"fullUrl":"o2","resource":{{"resourceType":"Patient","id":"o2"}}}},{{"fullUrl":"o3","resource":{inner}}}]}}"#
    ));
    // Epic's order: the entry's links first, its search mode last.
    let epic = |i: usize| {
        format!(
            r#"{{"link":[{{"relation":"self","url":"https://x/Patient/e{i}"}}],"fullUrl":"https://x/Patient/e{i}","resource":{{"resourceType":"Patient","id":"e{i}"}},"search":{{"mode":"match"}}}}"#
        )
    };
    let entries: Vec<String> = (0..3).map(epic).collect();
    texts.push(format!(
        r#"{{"resourceType":"Bundle","type":"searchset","entry":[{}]}}"#,
        entries.join(",\n")
    ));
    texts
}

/// What one thread gives, through the block reader.
fn whole(text: &str) -> Vec<String> {
    items(text, Some(BLOCK))
}

#[test]
fn pieces_give_what_one_thread_gives() {
    let mut cut_at_all = 0;
    for text in texts() {
        let want = whole(&text);
        for (chunk, block) in [(1, 1), (1, 3), (7, 2), (64, 5), (64, 1 << 16), (1 << 20, BLOCK)] {
            let (got, n) = pieces(&text, chunk, block);
            assert_eq!(got, want, "chunk {chunk}, block {block}: {text}");
            cut_at_all += usize::from(n > 1);
        }
    }
    assert!(cut_at_all > 10, "the Bundles were cut into pieces {cut_at_all} times");
    // The inner Bundle's entries are cut at too: the outer entry holding them is
    // read on by one reader from its start.
    let nested = texts().into_iter().find(|t| t.contains(r#""o3""#)).unwrap();
    assert!(pieces_unsure(&nested, 1, 1).2);
    assert_eq!(pieces_unsure(&nested, 1, 1).0, whole(&nested));
}

/// Cut anywhere, or with a wrong byte anywhere, the pieces give the same
/// entries and the same report, place included, as one thread.
#[test]
fn damage_anywhere_is_reported_as_one_thread_reports_it() {
    let texts = texts();
    let n = texts.len();
    let plain = texts.iter().find(|t| t.contains(r#""id":"plain""#)).unwrap();
    for text in [&texts[0], &texts[1], plain, &texts[n - 2], &texts[n - 1]] {
        for cut in 0..text.len() {
            let t = &text[..cut];
            assert_eq!(pieces(t, 1, 4).0, whole(t), "cut at {cut}: {t}");
        }
        for at in 0..text.len() {
            for bad in ["}", "]", ",", "x", "\"", "\\", "{", "[", " "] {
                let mut t = text.to_string();
                t.replace_range(at..at + 1, bad);
                let want = whole(&t);
                for (chunk, block) in [(1, 3), (40, 7)] {
                    assert_eq!(pieces(&t, chunk, block).0, want, "{bad} at {at}, chunk {chunk}: {t}");
                }
            }
        }
    }
}

#[test]
fn a_generated_bundle_is_cut_into_pieces_of_about_the_size_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    crate::bench_data::write_bundle(&crate::bench_data::Spec::new(3000), &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let want = whole(&text);
    assert!(want.len() > 2500, "{} items", want.len());
    let (got, n) = pieces(&text, 64 << 10, 1 << 14);
    assert_eq!(got, want);
    let expect = text.len() / (64 << 10);
    assert!(n >= expect && n <= expect + 2, "{n} pieces of {} bytes", text.len());
}

#[test]
fn cuts_are_after_commas_before_an_entry_key_only() {
    fn at(text: &str) -> Option<&str> {
        last_cut(text.as_bytes(), 0).map(|i| &text[i..])
    }
    assert_eq!(at(r#"{"a":1}, {"fullUrl":"x"}"#), Some(r#" {"fullUrl":"x"}"#));
    assert_eq!(at("{}\r\n ,\n\t{ \"resource\" : {}}"), Some("\n\t{ \"resource\" : {}}"));
    // The later of the two keys wins; a key inside a string or without its colon does not count.
    assert_eq!(at(r#"x,{"resource":1},{"fullUrl":2}"#), Some(r#"{"fullUrl":2}"#));
    assert_eq!(at(r#"x,{"fullUrl":1},{"resource":2}"#), Some(r#"{"resource":2}"#));
    assert_eq!(
        at(r#"x,{"fullUrl":1},"a,{\"fullUrl\":"#),
        Some(r#"{"fullUrl":1},"a,{\"fullUrl\":"#)
    );
    assert_eq!(at(r#"x,{"fullUrl":1},{"fullUrl""#), Some(r#"{"fullUrl":1},{"fullUrl""#));
    assert_eq!(
        at(r#"x,{"fullUrl":1},{"fullUrls":2},{"a":1,"fullUrl":3}"#),
        Some(r#"{"fullUrl":1},{"fullUrls":2},{"a":1,"fullUrl":3}"#)
    );
    assert_eq!(at(r#"{"fullUrl":1}"#), None);
    // Epic puts the entry's own links first; other entry members count too.
    assert_eq!(
        at(r#"x,{"link":[{"relation":"self","url":"u"}],"fullUrl":1}"#),
        Some(r#"{"link":[{"relation":"self","url":"u"}],"fullUrl":1}"#)
    );
    assert_eq!(
        at(r#"x, {"response":{"status":"201"}}"#),
        Some(r#" {"response":{"status":"201"}}"#)
    );
    assert_eq!(
        at(r#"x,{"link":1},{"linkId":2},{"id":3},{"url":4}"#),
        Some(r#"{"link":1},{"linkId":2},{"id":3},{"url":4}"#)
    );
    // A `{` inside a string, or after something other than a comma, does not count.
    assert_eq!(
        at(r#"x,{"search":1},"a,{\"search\":1",[{"search":2}]"#),
        Some(r#"{"search":1},"a,{\"search\":1",[{"search":2}]"#)
    );
}
