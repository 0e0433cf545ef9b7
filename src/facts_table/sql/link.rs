//! The linkage steps of the SQL: patients of different sites that share a
//! keyed linking identifier (`link` rows, `imnm facts --link-key`) are one
//! case, transitively, as `cohort::link` groups them; a group that would hold
//! two patients of one site is not linked.
//!
//! Connected components without recursion (Spark 3.5 has none): min-label
//! propagation unrolled `rounds` times (each round one step from patient to
//! patient), then a check that one more round changes no label, which fails
//! the script loudly (DuckDB `error`, Spark `raise_error`) when it would.
//! The last step, `imnm_facts`, is the deduplicated facts with each linked
//! patient's rows moved to its case: `site` `a+b`, `patient` `pa+pb` (members
//! in site name order), `source` named with its site (`a:Condition/c1`, as
//! `imnm cohort` names a linked case's sources) and `home` the site the row
//! came from.

use super::{lit, Dialect};

/// The steps, in order: `(name, body)`; `dedup` is the deduplicated facts (a subquery).
pub(super) fn steps(dialect: Dialect, rounds: usize, dedup: &str) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "imnm_links".to_string(),
            format!(
                "SELECT DISTINCT site, patient, value_code AS link FROM {dedup} d\n\
                 WHERE role = 'link' AND patient IS NOT NULL AND value_code IS NOT NULL\n"
            ),
        ),
        (
            "imnm_label0".to_string(),
            "SELECT DISTINCT site, patient, site || ':' || patient AS lbl FROM imnm_links\n".to_string(),
        ),
    ];
    for r in 1..=rounds {
        out.push((format!("imnm_label{r}"), round(&format!("imnm_label{}", r - 1))));
    }
    let last = format!("imnm_label{rounds}");
    let message = lit(&format!(
        "imnm sql: linked patients did not settle into groups in {rounds} rounds; print the SQL again with a larger --link-rounds"
    ));
    let fail = match dialect {
        Dialect::Duckdb => format!("error({message})"),
        Dialect::Spark => format!("raise_error({message})"),
    };
    out.push((
        "imnm_link_check".to_string(),
        format!(
            "SELECT CASE WHEN changed > 0 THEN {fail} ELSE changed END AS changed FROM (\n\
             \x20 SELECT COUNT(*) AS changed FROM ({}) x\n\
             \x20 JOIN {last} p ON p.site = x.site AND p.patient = x.patient WHERE x.lbl <> p.lbl) c\n",
            round(&last)
        ),
    ));
    out.push(("imnm_member".to_string(), members(dialect, &last, dedup)));
    out.push(("imnm_facts".to_string(), keyed(dedup)));
    out
}

/// One round: each link takes the least label of its patients, each patient the least label of its links.
fn round(previous: &str) -> String {
    format!(
        "SELECT n.site, n.patient, MIN(k.lbl) AS lbl FROM imnm_links n\n\
         \x20 JOIN (SELECT l.link, MIN(p.lbl) AS lbl FROM imnm_links l\n\
         \x20   JOIN {previous} p ON p.site = l.site AND p.patient = l.patient GROUP BY l.link) k ON k.link = n.link\n\
         \x20 GROUP BY n.site, n.patient\n"
    )
}

/// Each patient of a linked group with its case's `site` and `patient`: groups
/// of two or more patients, no two of one site, at least one a case.
fn members(dialect: Dialect, labels: &str, dedup: &str) -> String {
    let qualifying = format!(
        "SELECT DISTINCT site, patient FROM {dedup} d WHERE role = 'diagnosis' AND value_text IN ('{}', '{}')",
        super::super::rows::diagnosis_kind(crate::domain::DiagnosisKind::Qualifying),
        super::super::rows::diagnosis_kind(crate::domain::DiagnosisKind::ParentWithText),
    );
    format!(
        "SELECT l.site, l.patient, g.csite, g.cpatient FROM {labels} l JOIN (\n\
         \x20 SELECT l.lbl, {sites} AS csite, {patients} AS cpatient FROM {labels} l\n\
         \x20 LEFT JOIN ({qualifying}) q ON q.site = l.site AND q.patient = l.patient\n\
         \x20 GROUP BY l.lbl\n\
         \x20 HAVING COUNT(*) > 1 AND COUNT(DISTINCT l.site) = COUNT(*) AND MAX(CASE WHEN q.patient IS NULL THEN 0 ELSE 1 END) = 1\n\
         ) g ON g.lbl = l.lbl\n",
        sites = dialect.joined("l.site", "l.site", "+"),
        patients = dialect.joined("l.patient", "l.site", "+"),
    )
}

/// The facts with each linked patient's rows moved to its case.
fn keyed(dedup: &str) -> String {
    format!(
        "SELECT COALESCE(m.csite, f.site) AS site, COALESCE(m.cpatient, f.patient) AS patient, f.site AS home,\n\
         \x20 f.role, f.column_name, f.kind, f.rule, f.value_num, f.value_int, f.value_code, f.value_text, f.value_date,\n\
         \x20 f.unit, f.comparator, f.fact_date,\n\
         \x20 CASE WHEN m.csite IS NULL THEN f.source ELSE f.site || ':' || f.source END AS source,\n\
         \x20 f.dictionary_version, f.shard, f.evidence\n\
         FROM {dedup} f LEFT JOIN imnm_member m ON m.site = f.site AND m.patient = f.patient\n"
    )
}
