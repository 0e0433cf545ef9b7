//! Findings from the text of one report or note (`text.toml`): which text
//! rules apply (the resource's kind, by its code, type or category), the
//! facts each affirmed or negated mention makes, and an issue for each
//! uncertain one. A fact's detail names the element, the character span of
//! the mention and of its sentence, the text rule and the phrase; no fact,
//! issue or detail holds a word of the text itself.

use super::{concept_matches, first_code, Ctx};
use crate::domain::facts::MriPart;
use crate::domain::{Evidence, Fact, FactValue, FhirDate};
use crate::fhir::model::types::CodeableConcept;
use crate::mapping::text::{scan, DocResource, Hit, Polarity, Sets, TextRules};
use crate::mapping::MappingSet;
use crate::report::{IssueCode, Severity};

/// One text of a resource, and the FHIR element it came from.
pub struct Body {
    /// The element, e.g. `DiagnosticReport.presentedForm[0]`.
    pub path: String,
    /// How it was read: `string`, `text/plain` or `text/html`.
    pub how: &'static str,
    /// The text.
    pub text: String,
}

/// What the bodies of one resource are read for.
pub struct Doc<'a> {
    /// Report or note.
    pub resource: DocResource,
    /// Its code (a report) or type and categories (a note).
    pub kinds: Vec<&'a CodeableConcept>,
    /// When it applies.
    pub date: Option<FhirDate>,
}

/// The text rules that read a resource of these kinds, with the rank of the
/// best kind each lists (its place in `from`).
pub fn applicable(m: &MappingSet, doc: &Doc<'_>) -> Vec<(usize, u8)> {
    let t: &TextRules = &m.text;
    let is = |s: usize| {
        t.sources.get(s).is_some_and(|src| {
            src.resource == doc.resource
                && src
                    .valueset
                    .is_none_or(|vs| doc.kinds.iter().any(|cc| concept_matches(m, vs, cc)))
        })
    };
    t.rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let rank = r.from.iter().position(|&s| is(s))?;
            Some((i, u8::try_from(rank).unwrap_or(u8::MAX)))
        })
        .collect()
}

/// Reads every body of one resource with the applicable text rules.
pub fn read(ctx: &mut Ctx<'_>, doc: &Doc<'_>, bodies: &[Body]) {
    let rules = applicable(ctx.m, doc);
    if rules.is_empty() {
        return;
    }
    let which: Vec<usize> = rules.iter().map(|(r, _)| *r).collect();
    let code = doc.kinds.first().map_or_else(|| "(no code)".to_string(), first_code);
    let mut mentions = 0;
    for body in bodies {
        for hit in scan(&ctx.m.text, &which, &body.text) {
            let rank = rules.iter().find(|(r, _)| *r == hit.rule).map_or(0, |(_, k)| *k);
            mention(ctx, doc, body, &hit, rank, &code);
            mentions += 1;
        }
    }
    if mentions == 0 && !bodies.is_empty() {
        let ids: Vec<&str> = which
            .iter()
            .filter_map(|&r| ctx.m.text.rules.get(r))
            .map(|r| r.id.as_str())
            .collect();
        let msg = format!("text read by text rules {}; no finding phrase in it", ids.join(", "));
        let path = bodies.iter().map(|b| b.path.as_str()).collect::<Vec<_>>().join(", ");
        ctx.issue(Severity::Information, IssueCode::MissingValue, path, msg);
    }
}

/// The fact (or issue) of one mention.
fn mention(ctx: &mut Ctx<'_>, doc: &Doc<'_>, body: &Body, hit: &Hit, rank: u8, code: &str) {
    let m = ctx.m;
    let Some(rule) = m.text.rules.get(hit.rule) else { return };
    let Some(trigger) = rule.triggers.get(hit.trigger) else {
        return;
    };
    let span = chars(&body.text, hit.span);
    let sentence = chars(&body.text, hit.sentence);
    let where_ = format!(
        "{} ({}) chars {}..{} in sentence {}..{}: text rule {}, phrase {:?}",
        body.path, body.how, span.0, span.1, sentence.0, sentence.1, rule.id, trigger.phrase.text
    );
    let values = values(trigger.sets, hit.polarity);
    if values.is_empty() {
        if hit.polarity != Polarity::Affirmed {
            let msg = format!("{where_}: an uncertain mention; not mapped");
            ctx.issue(Severity::Information, IssueCode::UncertainText, body.path.clone(), msg);
        }
        return;
    }
    let polarity = if hit.polarity == Polarity::Negated {
        "negated"
    } else {
        "affirmed"
    };
    for value in values {
        let source = ctx.out.source.clone();
        ctx.out.facts.push(Fact {
            rule: rule.rule,
            value,
            date: doc.date,
            source,
            code: code.to_string(),
            detail: format!("{where_}, {polarity}"),
            via: None,
            evidence: Evidence::Text(rank),
            text: None,
            via_text: None,
        });
    }
}

/// The values a mention sets: none when it is uncertain, or when its
/// phrase only counts negated (or only affirmed) and it is not.
fn values(sets: Sets, polarity: Polarity) -> Vec<FactValue> {
    use Polarity::{Affirmed, Negated};
    match (sets, polarity) {
        (_, Polarity::Uncertain) => vec![],
        (Sets::Present, p) => vec![FactValue::Present(p == Affirmed)],
        (Sets::Absent, Affirmed) | (Sets::NegatedOnly, Negated) => vec![FactValue::Present(false)],
        (Sets::Edema, p) => vec![FactValue::Mri(MriPart::Edema, p == Affirmed)],
        (Sets::Fatty, p) => vec![FactValue::Mri(MriPart::Fatty, p == Affirmed)],
        (Sets::Normal, Affirmed) => vec![
            FactValue::Mri(MriPart::Edema, false),
            FactValue::Mri(MriPart::Fatty, false),
        ],
        (Sets::Absent | Sets::Normal, Negated) => vec![],
        (Sets::NegatedOnly, Affirmed) => vec![],
    }
}

/// A byte span as a character span.
fn chars(text: &str, (a, b): (usize, usize)) -> (usize, usize) {
    let count = |i: usize| text.get(..i).map_or(0, |s| s.chars().count());
    (count(a), count(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negated_normal_is_uncertain_and_affirmed_negated_only_says_nothing() {
        assert!(values(Sets::Normal, Polarity::Negated).is_empty());
        assert!(values(Sets::NegatedOnly, Polarity::Affirmed).is_empty());
        assert_eq!(
            values(Sets::NegatedOnly, Polarity::Negated),
            [FactValue::Present(false)]
        );
        assert_eq!(values(Sets::Normal, Polarity::Affirmed).len(), 2);
        assert!(values(Sets::Present, Polarity::Uncertain).is_empty());
    }

    #[test]
    fn spans_count_characters() {
        assert_eq!(chars("é rash", (3, 7)), (2, 6));
    }
}
