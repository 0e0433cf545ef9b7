//! Each phrase family of the built-in `text.toml` with affirmed, negated and
//! uncertain sentences.

use super::{scan, Polarity, Sets};
use crate::mapping::MappingSet;

use Polarity::{Affirmed as A, Negated as N, Uncertain as U};

/// `(polarity, sets, matched text)` of every mention of text rule `id` in `text`.
fn read(text: &str, id: &str) -> Vec<(Polarity, Sets, String)> {
    let m = MappingSet::builtin().unwrap();
    let r = m.text.rules.iter().position(|r| r.id == id).unwrap();
    scan(&m.text, &[r], text)
        .into_iter()
        .map(|h| {
            let sets = m.text.rules[r].triggers[h.trigger].sets;
            (h.polarity, sets, text[h.span.0..h.span.1].to_string())
        })
        .collect()
}

fn polarities(text: &str, id: &str) -> Vec<Polarity> {
    read(text, id).into_iter().map(|(p, _, _)| p).collect()
}

#[test]
fn weakness() {
    let id = "proximal-weakness-text";
    assert_eq!(polarities("Symmetric proximal muscle weakness.", id), [A]);
    assert_eq!(
        polarities("Hip flexors 4-/5 bilaterally, positive Gowers sign.", id),
        [A, A]
    );
    assert_eq!(polarities("She denies weakness.", id), [N]);
    assert_eq!(polarities("No proximal weakness on examination.", id), [N]);
    assert_eq!(polarities("Possible proximal weakness, exam limited.", id), [U]);
    assert_eq!(polarities("No change in proximal weakness.", id), [A]);
    let w = read("Reports weakness when tired.", id);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].0, w[0].1), (A, Sets::NegatedOnly));
    assert_eq!(w[0].2, "weakness");
}

#[test]
fn rash() {
    let id = "rash-text";
    assert_eq!(
        polarities("Gottron's papules over the knuckles and a heliotrope rash.", id),
        [A, A, A]
    );
    assert_eq!(polarities("No rash.", id), [N]);
    assert_eq!(
        polarities("Skin: negative for Gottron papules or heliotrope.", id),
        [N, N]
    );
    assert_eq!(polarities("Rash not seen today.", id), [N]);
    assert_eq!(polarities("Questionable heliotrope discoloration.", id), [U]);
    assert_eq!(polarities("No fever, but a heliotrope rash.", id), [A, A]);
}

#[test]
fn emg() {
    let id = "emg-myopathic-text";
    assert_eq!(
        polarities("Impression: myopathic pattern with early recruitment.", id),
        [A, A]
    );
    assert_eq!(
        polarities("Short duration, small amplitude polyphasic motor unit potentials.", id),
        [A]
    );
    assert_eq!(polarities("No myopathic changes.", id), [N]);
    let normal = read("Normal EMG study of both legs.", id);
    assert_eq!(
        normal.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
        [(A, Sets::Absent)]
    );
    assert_eq!(polarities("Findings may represent a myopathic process.", id), [U]);
}

#[test]
fn biopsy() {
    let id = "biopsy-necrosis-text";
    assert_eq!(polarities("Scattered necrotic and regenerating myofibers.", id), [A]);
    assert_eq!(polarities("Myofiber necrosis with myophagocytosis.", id), [A, A]);
    assert_eq!(polarities("No evidence of necrosis.", id), [N]);
    assert_eq!(polarities("Without fiber necrosis; mild inflammation.", id), [N]);
    assert_eq!(polarities("Focal necrosis cannot be excluded.", id), [U]);
}

#[test]
fn mri() {
    let id = "mri-thigh-text";
    let sets = |t: &str| read(t, id).into_iter().map(|x| (x.0, x.1)).collect::<Vec<_>>();
    assert_eq!(
        sets("Bilateral STIR hyperintensity of the vasti without fatty infiltration."),
        [(A, Sets::Edema), (N, Sets::Fatty)]
    );
    assert_eq!(
        sets("Muscle oedema and fatty replacement."),
        [(A, Sets::Edema), (A, Sets::Fatty)]
    );
    assert_eq!(
        sets("No edema or fatty infiltration."),
        [(N, Sets::Edema), (N, Sets::Fatty)]
    );
    assert_eq!(
        sets("No edema, but fatty infiltration."),
        [(N, Sets::Edema), (A, Sets::Fatty)]
    );
    assert_eq!(sets("Normal MRI of both thighs."), [(A, Sets::Normal)]);
    assert_eq!(sets("Possible early fatty infiltration."), [(U, Sets::Fatty)]);
}

#[test]
fn scope_stays_in_the_sentence_and_window() {
    let id = "rash-text";
    assert_eq!(polarities("No fever. Heliotrope rash.", id), [A, A]);
    assert_eq!(
        polarities("No fever, cough, headache, vomiting or diarrhoea, heliotrope rash.", id),
        [A, A]
    );
}

#[test]
fn spans_name_the_mention() {
    let text = "History: no rash.\nExam: Gottron papules.";
    let got = read(text, "rash-text");
    assert_eq!(
        got.iter().map(|x| x.2.as_str()).collect::<Vec<_>>(),
        ["rash", "Gottron"]
    );
}

/// The phrase index finds, for every phrase of the built-in rules and cues,
/// exactly what trying that phrase at every word finds, on sentences made of
/// whole phrases, their words, their prefixes' words and filler.
mod index {
    use super::super::phrase::{words, Phrase, PhraseIndex};
    use crate::mapping::MappingSet;
    use proptest::prelude::*;

    fn phrases() -> Vec<Phrase> {
        let m = MappingSet::builtin().unwrap();
        let c = &m.text.cues;
        let cues = [
            &c.negation,
            &c.post_negation,
            &c.uncertainty,
            &c.post_uncertainty,
            &c.pseudo,
            &c.terminate,
        ];
        let triggers = m.text.rules.iter().flat_map(|r| r.triggers.iter().map(|t| &t.phrase));
        triggers.chain(cues.into_iter().flatten()).cloned().collect()
    }

    fn vocabulary(phrases: &[Phrase]) -> Vec<String> {
        let mut v: Vec<String> = phrases
            .iter()
            .flat_map(|p| p.text.split([' ', '|']).map(|w| w.replace('*', "ish")))
            .filter(|w| w != "...")
            .collect();
        v.extend(phrases.iter().map(|p| p.text.replace("...", "and").replace('*', "ish")));
        v.extend(["the", "and", "today", "4/5", "mild"].map(String::from));
        v.sort();
        v.dedup();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn equals_every_phrase_tried_at_every_word(picks in prop::collection::vec(any::<prop::sample::Index>(), 0..24)) {
            let phrases = phrases();
            let vocab = vocabulary(&phrases);
            let text = picks.iter().map(|i| i.get(&vocab).as_str()).collect::<Vec<_>>().join(" ");
            let w = words(&text, 0, text.len());
            let index = PhraseIndex::new(phrases.clone());
            let mut got = index.find_all(&w, |_| true);
            got.sort();
            let mut want: Vec<(usize, (usize, usize))> = phrases
                .iter()
                .enumerate()
                .flat_map(|(id, p)| p.find_all(&w).into_iter().map(move |m| (id, m)))
                .collect();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
