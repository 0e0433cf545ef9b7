//! Text extraction benchmark (`cargo bench --bench text`): clinic notes read
//! per second on one core. 20,000 progress-note DocumentReferences (base64
//! text/plain, ~1 kB of text each, findings affirmed, negated and uncertain
//! among filler sentences, every fourth one in HTML) in one Bundle, through
//! the whole reading path of `imnm cohort` on one thread (Bundle reader, peek,
//! fhirbolt parse, attachment decoding, the text rules); then the matcher
//! alone on the same texts. Prints notes/s and MB of text/s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::time::Instant;

use base64::Engine;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use imnm_fhir::mapping::MappingSet;

const NOTES: usize = 20_000;

const FILLER: &[&str] = &[
    "Seen today in clinic with her mother for follow-up of her myopathy.",
    "She is tolerating the current regimen and attends school part time.",
    "Appetite is good and weight is stable on today's measurement.",
    "Vital signs were reviewed and are within normal limits for age.",
    "Cardiac and respiratory examination unremarkable, abdomen soft and non-tender.",
    "Labs from last week were reviewed with the family, CK is trending down.",
    "Plan to continue the current dose and review again in six weeks.",
    "The family were given written information and know how to reach the team.",
];

const FINDINGS: &[&str] = &[
    "Symmetric proximal muscle weakness, hip flexors 4/5.",
    "She denies weakness when climbing stairs.",
    "Gottron's papules over the knuckles.",
    "No rash.",
    "Possible heliotrope discoloration of the eyelids.",
    "EMG showed a myopathic pattern with early recruitment.",
    "Biopsy with scattered necrotic and regenerating myofibers.",
    "No evidence of necrosis on the repeat biopsy.",
];

fn note_text(i: usize) -> String {
    let mut s = String::new();
    for k in 0..12 {
        let pool = if k % 3 == 1 { FINDINGS } else { FILLER };
        s.push_str(pool[(i * 7 + k * 3) % pool.len()]);
        s.push(if k % 4 == 3 { '\n' } else { ' ' });
    }
    s
}

fn note(i: usize, text: &str) -> serde_json::Value {
    let (ct, body) = if i % 4 == 3 {
        (
            "text/html",
            format!("<html><body><p>{}</p></body></html>", text.replace('\n', "</p><p>")),
        )
    } else {
        ("text/plain", text.to_string())
    };
    json!({"resourceType": "DocumentReference", "id": format!("n{i}"), "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": format!("Patient/p{}", i / 20)}, "date": "2020-01-01T10:00:00Z",
        "content": [{"attachment": {"contentType": ct,
            "data": base64::engine::general_purpose::STANDARD.encode(body)}}]})
}

fn main() {
    let m = MappingSet::builtin().unwrap();
    let texts: Vec<String> = (0..NOTES).map(note_text).collect();
    let entries: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"resource": note(i, t)}))
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string();
    let mb = texts.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    let started = Instant::now();
    let collected = imnm_fhir::pipeline::collect_json_text("bench.json", &bundle, &m);
    let full = started.elapsed().as_secs_f64();
    let facts: usize = {
        let mut n = 0;
        collected
            .patients
            .try_for_each(|_, d| {
                n += d.facts.len();
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
        n
    };
    let which: Vec<usize> = (0..m.text.rules.len()).collect();
    let started = Instant::now();
    let hits: usize = texts
        .iter()
        .map(|t| imnm_fhir::mapping::text::scan(&m.text, &which, t).len())
        .sum();
    let matcher = started.elapsed().as_secs_f64();
    println!("text extraction: {NOTES} clinic notes, {mb:.1} MB of text, one thread");
    println!("{:<44} {:>10} {:>10} {:>8}", "path", "notes/s", "MB/s", "facts");
    println!(
        "{:<44} {:>10.0} {:>10.1} {:>8}",
        "Bundle → peek → parse → attachment → rules",
        NOTES as f64 / full,
        mb / full,
        facts
    );
    println!(
        "{:<44} {:>10.0} {:>10.1} {:>8}",
        "matcher alone (mapping::text::scan)",
        NOTES as f64 / matcher,
        mb / matcher,
        hits
    );
    assert!(facts > NOTES, "every note gives findings");
}
