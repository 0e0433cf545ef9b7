//! The SQL that turns facts tables into the cohort and Table 1 (`imnm sql`),
//! generated from the data dictionary: each column's SQL follows its
//! [`ColumnKind`], as `cohort::build` fills it, never its name.
//!
//! The script reads a table or view of facts (default `facts`: every
//! `facts-*.parquet` of every site and shard) and creates tables (temporary in DuckDB):
//! `imnm_cohort` (one row per case, the columns of `cohort.csv`),
//! `imnm_candidates` (the rows of `candidates.csv`),
//! `imnm_table1` (Table 1 pooled, site `all`, and per site when there are
//! several, as `table1.json`) and `imnm_table1_suppressed` (small cells
//! hidden as `cohort`/`export` --min-cell do). Statements end with `;` at the
//! end of a line; it runs on DuckDB and Spark SQL (the two dialects differ
//! in quoting, the text type, string aggregation, the quantile function,
//! splitting a linked case's sites and raising an error). Patients linked
//! across sites are grouped by the steps of `sql/link.rs`.

use std::fmt::Write as _;
use std::str::FromStr;

use crate::domain::dictionary::Summary;
use crate::domain::{AntibodyStatus, ColumnKind, DiagnosisKind, Dictionary};
use crate::mapping::MappingSet;

mod link;

/// The SQL engines the script is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Apache Spark SQL (3.x).
    Spark,
    /// DuckDB (1.x).
    Duckdb,
}

/// An unknown dialect name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SQL dialect {0:?} (expected spark or duckdb)")]
pub struct UnknownDialect(pub String);

impl FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spark" => Ok(Self::Spark),
            "duckdb" => Ok(Self::Duckdb),
            _ => Err(UnknownDialect(s.to_string())),
        }
    }
}

impl Dialect {
    /// An identifier, quoted.
    fn quote(self, name: &str) -> String {
        match self {
            Self::Spark => format!("`{}`", name.replace('`', "``")),
            Self::Duckdb => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The values of `x` where it is not NULL, ordered by `order`, joined by `sep` (NULL when none).
    fn joined(self, x: &str, order: &str, sep: &str) -> String {
        match self {
            Self::Spark => format!(
                "NULLIF(array_join(transform(array_sort(collect_list(CASE WHEN {x} IS NOT NULL THEN struct({order} AS o, {x} AS v) END)), e -> e.v), {}), '')",
                lit(sep)
            ),
            Self::Duckdb => format!("string_agg({x}, {} ORDER BY {order})", lit(sep)),
        }
    }

    /// The linear-interpolation quantile (R type 7) of `x`.
    fn quantile(self, x: &str, p: f64) -> String {
        match self {
            Self::Spark => format!("percentile({x}, {p})"),
            Self::Duckdb => format!("quantile_cont({x}, {p})"),
        }
    }
}

/// What the script is generated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The engine.
    pub dialect: Dialect,
    /// The smallest count `imnm_table1_suppressed` shows.
    pub min_cell: u64,
    /// The table or view of facts read.
    pub facts: String,
    /// Rounds of label propagation that group linked patients (a group
    /// whose patients are further apart makes the script fail, saying so).
    pub link_rounds: usize,
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The whole script.
pub fn script(m: &MappingSet, o: &Options) -> String {
    let mut s = format!(
        "-- imnm sql --dialect {}: facts (schema v{}) -> imnm_cohort, imnm_candidates, imnm_table1, imnm_table1_suppressed.\n\
         -- Generated from the data dictionary (v{}); see docs/facts.md.\n",
        match o.dialect {
            Dialect::Spark => "spark",
            Dialect::Duckdb => "duckdb",
        },
        super::SCHEMA_VERSION,
        m.versions.get("dictionary.toml").copied().unwrap_or(0)
    );
    for (name, body) in views(m, o) {
        // Every step is computed once and kept (a temporary table in DuckDB,
        // a table in Spark's warehouse: a cached view would carry its whole
        // lineage into every later plan, which then grows past the driver's
        // heap), so later steps do not expand the chain again.
        let head = match o.dialect {
            Dialect::Duckdb => format!("CREATE OR REPLACE TEMPORARY TABLE {name} AS"),
            Dialect::Spark => format!("DROP TABLE IF EXISTS {name};\nCREATE TABLE {name} USING parquet AS"),
        };
        // The text type is the one type name the dialects spell differently;
        // Spark keeps a small step in few partitions (a union of a step per
        // Table 1 variable would otherwise be hundreds of tiny tasks).
        let body = match o.dialect {
            Dialect::Spark if SMALL.contains(&name.as_str()) => {
                format!("SELECT /*+ COALESCE(1) */ * FROM (\n{body}) small\n")
            }
            Dialect::Spark => body,
            Dialect::Duckdb => body.replace(" AS STRING)", " AS VARCHAR)"),
        };
        let _ = write!(s, "\n{head}\n{body};\n");
    }
    s
}

/// The steps whose rows are per case or fewer (the cohort and Table 1).
const SMALL: [&str; 8] = [
    "imnm_cohort",
    "imnm_candidates",
    "imnm_groups",
    "imnm_t1_wide",
    "imnm_table1",
    "imnm_cells",
    "imnm_hidden",
    "imnm_table1_suppressed",
];

/// Every view, in the order they are created.
fn views(m: &MappingSet, o: &Options) -> Vec<(String, String)> {
    let d = &m.dictionary;
    let mut steps = vec![("imnm_keep".to_string(), kept_shards(&o.facts))];
    steps.extend(link::steps(o.dialect, o.link_rounds, &deduplicated(&o.facts)));
    let rest = vec![
        ("imnm_values", values(FACTS)),
        ("imnm_dx", diagnoses(FACTS)),
        ("imnm_case", cases(FACTS)),
        ("imnm_agg", aggregates(d)),
        (
            "imnm_peak",
            ranked(
                "lab-peak",
                "value_num IS NOT NULL",
                "value_num DESC, fact_date ASC NULLS FIRST, source",
            ),
        ),
        (
            "imnm_latest",
            ranked(
                "outcome",
                "value_code IS NOT NULL",
                "fact_date DESC NULLS LAST, source DESC",
            ),
        ),
        ("imnm_cohort", cohort(d, o.dialect)),
        ("imnm_candidates", candidates(m, o.dialect)),
        ("imnm_groups", groups(o.dialect)),
        ("imnm_t1_wide", t1_wide(d, o.dialect)),
        ("imnm_table1", table1(d, o.dialect)),
        ("imnm_cells", cells()),
        ("imnm_hidden", hidden(o.min_cell)),
        ("imnm_table1_suppressed", suppressed(o.min_cell)),
    ];
    steps.extend(rest.into_iter().map(|(n, b)| (n.to_string(), b)));
    steps
}

/// The step every later step reads: the facts with each resource's rows
/// from one shard only, linked patients' rows moved to their case ([`link`]).
const FACTS: &str = "imnm_facts";

/// `imnm_keep`: the shard whose rows of each resource count. A resource
/// sent in several shards (the same `source` of a site in two files) gives
/// its rows once: those of the first shard by name (`imnm cohort` keeps one
/// copy of a resource it reads twice too, there the newest by `meta`; facts
/// rows carry no version, so here it is the shard's name that decides).
fn kept_shards(facts: &str) -> String {
    format!("SELECT site, source, MIN(shard) AS shard FROM {facts} GROUP BY site, source\n")
}

/// The facts of the kept shards ([`kept_shards`]), as a subquery: read
/// once into `imnm_facts`, and for the few `link` and diagnosis rows the
/// linkage steps need.
fn deduplicated(facts: &str) -> String {
    format!(
        "(SELECT f.* FROM {facts} f JOIN imnm_keep k ON k.site = f.site AND k.source = f.source AND k.shard = f.shard)"
    )
}

/// Every value a rule read, medication references joined to the Medications
/// they name, of the best evidence only: per case and rule, the rows of the
/// lowest `evidence` (coded before text, a report of the rule's first kind
/// before a clinic note), as `cohort::build`'s `best_evidence` keeps them.
fn values(facts: &str) -> String {
    format!(
        "SELECT site, patient, column_name, kind, value_num, value_int, value_code, value_text, fact_date, source FROM (\n\
         \x20 SELECT u.*, MIN(evidence) OVER (PARTITION BY site, patient, rule) AS best FROM (\n\
         \x20   SELECT site, patient, rule, evidence, column_name, kind, value_num, value_int, value_code, value_text, fact_date, source\n\
         \x20   FROM {facts} WHERE role = 'value'\n\
         \x20   UNION ALL\n\
         \x20   SELECT DISTINCT r.site, r.patient, m.rule, m.evidence, m.column_name, m.kind, CAST(NULL AS DOUBLE), CAST(NULL AS BIGINT),\n\
         \x20     m.value_code, m.value_text, r.fact_date, r.source\n\
         \x20   FROM {facts} r JOIN {facts} m ON m.home = r.home AND m.source = r.value_text\n\
         \x20   WHERE r.role = 'medication-reference' AND m.role = 'medication') u) v\n\
         WHERE evidence = best\n"
    )
}

/// Every qualifying diagnosis with its onset, stated age and remission.
fn diagnoses(facts: &str) -> String {
    let part = |role: &str, cols: &str| {
        format!(
            "(SELECT site, patient, source, {cols} FROM {facts} WHERE role = '{role}' GROUP BY site, patient, source)"
        )
    };
    format!(
        "SELECT d.site, d.patient, d.source, MIN(d.value_code) AS code, MIN(d.fact_date) AS recorded,\n\
         \x20 MIN(o.onset_date) AS onset_date, MIN(o.onset_years) AS onset_years, MIN(a.stated_age) AS stated_age,\n\
         \x20 MAX(CASE WHEN r.source IS NULL THEN 0 ELSE 1 END) AS remission\n\
         FROM {facts} d\n\
         LEFT JOIN {} o ON o.site = d.site AND o.patient = d.patient AND o.source = d.source\n\
         LEFT JOIN {} a ON a.site = d.site AND a.patient = d.patient AND a.source = d.source\n\
         LEFT JOIN {} r ON r.site = d.site AND r.patient = d.patient AND r.source = d.source\n\
         WHERE d.role = 'diagnosis' AND d.value_text IN ('qualifying', 'parent-with-text')\n\
         GROUP BY d.site, d.patient, d.source\n",
        part("onset", "MIN(value_date) AS onset_date, MIN(value_num) AS onset_years"),
        part("stated-age", "MIN(value_int) AS stated_age"),
        part("remission", "MIN(value_code) AS code"),
    )
}

/// Completed years from FHIR date `b` to `a` (`FhirDate::completed_years_until`):
/// full dates, or months that differ; else NULL; never negative.
fn age(b: &str, a: &str) -> String {
    let year = |x: &str| format!("CAST(substr({x}, 1, 4) AS INT)");
    let years = format!("{} - {}", year(a), year(b));
    format!(
        "CASE WHEN length({b}) >= 10 AND length({a}) >= 10\n\
         \x20   THEN {years} - CASE WHEN substr({a}, 6, 5) < substr({b}, 6, 5) THEN 1 ELSE 0 END\n\
         \x20 WHEN length({b}) >= 7 AND length({a}) >= 7 AND substr({a}, 6, 2) <> substr({b}, 6, 2)\n\
         \x20   THEN {years} - CASE WHEN substr({a}, 6, 2) < substr({b}, 6, 2) THEN 1 ELSE 0 END END"
    )
}

/// One row per case: the diagnosis `cohort` keeps (earliest onset date, else
/// an onset age, else the earliest recorded), demographics and onset age.
fn cases(facts: &str) -> String {
    let raw_age = format!(
        "CASE WHEN x.stated_age IS NOT NULL THEN x.stated_age\n\
         \x20 WHEN x.onset_years IS NOT NULL THEN CAST(FLOOR(x.onset_years) AS BIGINT)\n\
         \x20 WHEN x.onset_date IS NOT NULL THEN {}\n\
         \x20 WHEN x.recorded IS NOT NULL THEN {} END",
        age("p.birth", "x.onset_date"),
        age("p.birth", "x.recorded")
    );
    format!(
        "SELECT x.site, x.patient, x.code, x.onset_date, p.sex, p.birth, x.remission,\n\
         \x20 CASE WHEN ({raw_age}) >= 0 THEN ({raw_age}) END AS onset_age\n\
         FROM (SELECT dx.*,\n\
         \x20   MAX(dx.remission) OVER (PARTITION BY dx.site, dx.patient) AS any_remission,\n\
         \x20   ROW_NUMBER() OVER (PARTITION BY dx.site, dx.patient ORDER BY\n\
         \x20     CASE WHEN dx.onset_date IS NOT NULL THEN 0 WHEN dx.onset_years IS NOT NULL THEN 1 ELSE 2 END,\n\
         \x20     CASE WHEN dx.onset_date IS NOT NULL THEN dx.onset_date WHEN dx.onset_years IS NULL THEN dx.recorded END ASC NULLS FIRST, dx.source) AS rn\n\
         \x20 FROM imnm_dx dx) x\n\
         LEFT JOIN (SELECT * FROM (SELECT site, patient, MIN(CASE WHEN kind = 'sex' THEN value_code END) AS sex,\n\
         \x20   MIN(CASE WHEN kind = 'birth-date' THEN value_date END) AS birth,\n\
         \x20   ROW_NUMBER() OVER (PARTITION BY site, patient ORDER BY home) AS first\n\
         \x20 FROM {facts} WHERE role = 'patient' GROUP BY site, patient, home) q WHERE first = 1) p\n\
         \x20 ON p.site = x.site AND p.patient = x.patient\n\
         WHERE x.rn = 1\n"
    )
}

/// A column's facts: `(column_name = c)`.
fn of(c: &str) -> String {
    format!("column_name = {}", lit(c))
}

/// The per-case aggregates of the kinds a plain aggregate fills (`a{i}`, `a{i}_fatty` for column `i`).
fn aggregates(d: &Dictionary) -> String {
    let yes_no = "CASE value_code WHEN 'yes' THEN 2 WHEN 'no' THEN 1 END";
    let mut cols = Vec::new();
    for (i, c) in d.columns.iter().enumerate() {
        let w = of(&c.name);
        match c.kind {
            ColumnKind::Antibody => {
                let ranks: String = [
                    AntibodyStatus::Positive,
                    AntibodyStatus::Negative,
                    AntibodyStatus::Indeterminate,
                    AntibodyStatus::NotTested,
                ]
                .iter()
                .map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), s.rank()))
                .collect();
                cols.push(format!(
                    "MAX(CASE WHEN {w} THEN CASE value_code{ranks} END END) AS a{i}"
                ));
            }
            ColumnKind::Finding => cols.push(format!("MAX(CASE WHEN {w} THEN {yes_no} END) AS a{i}")),
            ColumnKind::Mri => {
                cols.push(format!(
                    "MAX(CASE WHEN {w} AND value_text = 'edema' THEN {yes_no} END) AS a{i}"
                ));
                cols.push(format!(
                    "MAX(CASE WHEN {w} AND value_text = 'fatty' THEN {yes_no} END) AS a{i}_fatty"
                ));
            }
            ColumnKind::Exposure => cols.push(format!("MAX(CASE WHEN {w} THEN 1 ELSE 0 END) AS a{i}")),
            ColumnKind::LabCount => {
                if let Some(peak) = c.of.and_then(|p| d.columns.get(p)) {
                    let w = of(&peak.name);
                    cols.push(format!(
                        "SUM(CASE WHEN {w} AND value_num IS NOT NULL THEN value_int ELSE 0 END) AS a{i}"
                    ));
                }
            }
            ColumnKind::PatientId
            | ColumnKind::Sex
            | ColumnKind::BirthDate
            | ColumnKind::OnsetDate
            | ColumnKind::OnsetAge
            | ColumnKind::DiagnosisCode
            | ColumnKind::LabPeak
            | ColumnKind::LabPeakDate
            | ColumnKind::Outcome => {}
        }
    }
    if cols.is_empty() {
        cols.push("COUNT(*) AS a_rows".into());
    }
    format!(
        "SELECT site, patient,\n  {}\nFROM imnm_values GROUP BY site, patient\n",
        cols.join(",\n  ")
    )
}

/// The first value of each case and column of `kind` in `order`.
fn ranked(kind: &str, filter: &str, order: &str) -> String {
    format!(
        "SELECT site, patient, column_name, value_num, value_code, fact_date FROM (\n\
         \x20 SELECT v.*, ROW_NUMBER() OVER (PARTITION BY site, patient, column_name ORDER BY {order}) AS rn\n\
         \x20 FROM imnm_values v WHERE kind = '{kind}' AND {filter}) t\n\
         WHERE rn = 1\n"
    )
}

/// Levels `hi`/`lo` of a yes/no aggregate (2 yes, 1 no, NULL none).
fn level_of(x: &str, yes: &str, no: &str, none: &str) -> String {
    format!("CASE {x} WHEN 2 THEN '{yes}' WHEN 1 THEN '{no}' ELSE '{none}' END")
}

/// `imnm_cohort`: the columns of cohort.csv, each by its kind.
fn cohort(d: &Dictionary, dialect: Dialect) -> String {
    let mut cols = vec![format!("c.site AS {}", dialect.quote(crate::domain::SITE_COLUMN))];
    let mut joins = String::new();
    for (i, c) in d.columns.iter().enumerate() {
        let q = dialect.quote(&c.name);
        let peak_join = |alias: &str, view: &str, name: &str| {
            format!(
                "LEFT JOIN {view} {alias} ON {alias}.site = c.site AND {alias}.patient = c.patient AND {alias}.column_name = {}\n",
                lit(name)
            )
        };
        let expr = match c.kind {
            ColumnKind::PatientId => "c.patient".to_string(),
            ColumnKind::Sex => "COALESCE(c.sex, 'unknown')".to_string(),
            ColumnKind::BirthDate => "c.birth".to_string(),
            ColumnKind::OnsetDate => "c.onset_date".to_string(),
            ColumnKind::OnsetAge => "c.onset_age".to_string(),
            ColumnKind::DiagnosisCode => "c.code".to_string(),
            ColumnKind::LabPeak => {
                joins.push_str(&peak_join(&format!("p{i}"), "imnm_peak", &c.name));
                format!("p{i}.value_num")
            }
            ColumnKind::LabPeakDate => match c.of.and_then(|p| d.columns.get(p)) {
                Some(peak) => {
                    joins.push_str(&peak_join(&format!("p{i}"), "imnm_peak", &peak.name));
                    format!("p{i}.fact_date")
                }
                None => "CAST(NULL AS STRING)".to_string(),
            },
            ColumnKind::LabCount => format!("COALESCE(a.a{i}, 0)"),
            ColumnKind::Antibody => antibody_level(&format!("a.a{i}")),
            ColumnKind::Finding => level_of(&format!("a.a{i}"), "yes", "no", "unknown"),
            ColumnKind::Mri => mri(&format!("a.a{i}"), &format!("a.a{i}_fatty")),
            ColumnKind::Exposure => format!("CASE WHEN a.a{i} = 1 THEN 'yes' ELSE 'no' END"),
            ColumnKind::Outcome => {
                joins.push_str(&peak_join(&format!("o{i}"), "imnm_latest", &c.name));
                format!(
                    "COALESCE(o{i}.value_code, CASE WHEN c.remission = 1 THEN '{}' END, '{}')",
                    crate::domain::Outcome::CompleteRemission,
                    crate::domain::Outcome::Unknown
                )
            }
        };
        cols.push(format!("{expr} AS {q}"));
    }
    format!(
        "SELECT {}\nFROM imnm_case c\nLEFT JOIN imnm_agg a ON a.site = c.site AND a.patient = c.patient\n{joins}",
        cols.join(",\n  ")
    )
}

/// A number as `format_number` prints it (at most 3 decimals, no trailing zeros).
fn number_text(x: &str) -> String {
    format!("regexp_replace(regexp_replace(printf('%.3f', {x}), '0+$', ''), '[.]$', '')")
}

/// `imnm_candidates`: the rows of candidates.csv (`cohort::build`'s
/// candidate rule): patients with no qualifying diagnosis whose lab peak is
/// above `[candidates] above` with an antibody positive, or with a myositis
/// parent code without IMNM wording, or a Condition text naming IMNM.
fn candidates(m: &MappingSet, dialect: Dialect) -> String {
    let d = &m.dictionary;
    let lab_name = lit(d.columns.get(m.candidates.lab_peak).map_or("", |c| c.name.as_str()));
    let positive = AntibodyStatus::Positive.rank();
    let antibodies: Vec<usize> = d.of_kind(ColumnKind::Antibody).collect();
    let positives: Vec<String> = antibodies
        .iter()
        .map(|&i| format!("CASE WHEN a.a{i} = {positive} THEN {} END", lit(&d.columns[i].name)))
        .collect();
    let positives = format!("NULLIF(concat_ws(', ', {}), '')", positives.join(", "));
    let lab_reason = format!(
        "CASE WHEN l.value_num > {above} AND {positives} IS NOT NULL THEN\n\
         \x20     {lab_name} || ' ' || {num} || ' > ' || {above_text} || ' and ' || {positives} || ' positive' END",
        above = m.candidates.above,
        num = number_text("l.value_num"),
        above_text = lit(&crate::domain::case::format_number(m.candidates.above)),
    );
    let codes = |kind: DiagnosisKind| {
        let x = format!(
            "CASE WHEN value_text = '{}' THEN value_code END",
            super::rows::diagnosis_kind(kind)
        );
        dialect.joined(&x, "source", ", ")
    };
    let mut cols = vec![
        format!("x.site AS {}", dialect.quote(crate::domain::SITE_COLUMN)),
        "x.patient AS patient_id".to_string(),
        "x.reason".to_string(),
        "COALESCE(x.all_codes, '') AS diagnosis_codes".to_string(),
    ];
    let mut joins = String::new();
    for i in d.candidate_columns() {
        let c = &d.columns[i];
        let q = dialect.quote(&c.name);
        if c.kind == ColumnKind::LabPeak {
            let _ = writeln!(
                joins,
                "LEFT JOIN imnm_peak p{i} ON p{i}.site = x.site AND p{i}.patient = x.patient AND p{i}.column_name = {}",
                lit(&c.name)
            );
            cols.push(format!("p{i}.value_num AS {q}"));
        } else {
            cols.push(format!("{} AS {q}", antibody_level(&format!("x.a{i}"))));
        }
    }
    format!(
        "SELECT {cols}\nFROM (\n\
         \x20 SELECT n.site, n.patient{antibodies}, g.all_codes,\n\
         \x20   NULLIF(concat_ws('; ', {lab_reason},\n\
         \x20     'myositis parent code ' || g.parent_codes || ' without IMNM wording',\n\
         \x20     'Condition text names IMNM but its code (' || g.text_codes || ') is not an IMNM or parent code'), '') AS reason\n\
         \x20 FROM (SELECT DISTINCT site, patient FROM {FACTS} WHERE patient IS NOT NULL) n\n\
         \x20 LEFT JOIN imnm_case c ON c.site = n.site AND c.patient = n.patient\n\
         \x20 LEFT JOIN imnm_agg a ON a.site = n.site AND a.patient = n.patient\n\
         \x20 LEFT JOIN imnm_peak l ON l.site = n.site AND l.patient = n.patient AND l.column_name = {lab_name}\n\
         \x20 LEFT JOIN (SELECT site, patient, {all} AS all_codes, {parent} AS parent_codes, {text} AS text_codes\n\
         \x20   FROM {FACTS} WHERE role = 'diagnosis' GROUP BY site, patient) g ON g.site = n.site AND g.patient = n.patient\n\
         \x20 WHERE c.patient IS NULL) x\n\
         {joins}WHERE x.reason IS NOT NULL\n",
        cols = cols.join(",\n  "),
        antibodies = antibodies.iter().map(|i| format!(", a.a{i}")).collect::<String>(),
        all = dialect.joined("value_code", "source", ";"),
        parent = codes(DiagnosisKind::ParentOnly),
        text = codes(DiagnosisKind::TextOnly),
    )
}

/// An antibody level from its aggregate rank (`AntibodyStatus::rank`).
fn antibody_level(x: &str) -> String {
    let back: String = [
        AntibodyStatus::Positive,
        AntibodyStatus::Negative,
        AntibodyStatus::Indeterminate,
    ]
    .iter()
    .map(|s| format!(" WHEN {} THEN '{}'", s.rank(), s.as_str()))
    .collect();
    format!("CASE {x}{back} ELSE '{}' END", AntibodyStatus::NotTested.as_str())
}

/// The thigh MRI level from its two parts (`MriThigh::from_parts`).
fn mri(edema: &str, fatty: &str) -> String {
    use crate::domain::MriThigh as M;
    format!(
        "CASE WHEN {edema} = 2 AND {fatty} = 2 THEN '{}' WHEN {edema} = 2 THEN '{}' WHEN {fatty} = 2 THEN '{}'\n\
         \x20   WHEN {edema} = 1 AND {fatty} = 1 THEN '{}' ELSE '{}' END",
        M::EdemaAndFatty,
        M::Edema,
        M::Fatty,
        M::Normal,
        M::Unknown
    )
}

/// The cohort once pooled (`grp` = `all`) and, with several sites, once per
/// site: a linked case (`a+b`) once in each of its sites.
fn groups(dialect: Dialect) -> String {
    let each = match dialect {
        Dialect::Spark => "explode(split(c.site, '[+]'))",
        Dialect::Duckdb => "unnest(string_split(c.site, '+'))",
    };
    format!(
        "SELECT '{all}' AS grp, c.* FROM imnm_cohort c\n\
         UNION ALL\n\
         SELECT s.grp, c.* FROM imnm_cohort c JOIN (SELECT DISTINCT site, {each} AS grp FROM imnm_cohort c) s ON s.site = c.site\n\
         WHERE (SELECT COUNT(DISTINCT grp) FROM (SELECT {each} AS grp FROM imnm_cohort c) t) > 1\n",
        all = crate::cohort::table1::ALL_SITES
    )
}

/// `imnm_t1_wide`: one row per group with every Table 1 figure as a column
/// (`c{k}` the count of layout row `k`, `m{k}` its variable's missing level,
/// `md{k}`/`lo{k}`/`hi{k}`/`mn{k}`/`mx{k}` a continuous row's figures): one
/// pass over the cases.
fn t1_wide(d: &Dictionary, dialect: Dialect) -> String {
    let mut cols = vec!["COUNT(*) AS total".to_string()];
    for (k, (_, variable, level, summary, missing)) in t1_layout(d).iter().enumerate() {
        let Some(i) = d.index(variable) else { continue };
        let q = dialect.quote(&d.columns[i].name);
        let count = |l: &str| format!("SUM(CASE WHEN {q} = {} THEN 1 ELSE 0 END)", lit(l));
        match (*summary, level) {
            ("continuous", _) => {
                let x = format!("CAST({q} AS DOUBLE)");
                cols.push(format!("COUNT({q}) AS c{k}"));
                cols.push(format!("{} AS md{k}", dialect.quantile(&x, 0.5)));
                cols.push(format!("{} AS lo{k}", dialect.quantile(&x, 0.25)));
                cols.push(format!("{} AS hi{k}", dialect.quantile(&x, 0.75)));
                cols.push(format!("MIN({x}) AS mn{k}, MAX({x}) AS mx{k}"));
            }
            (_, Some(level)) => {
                cols.push(format!("{} AS c{k}", count(level)));
                if let Some(m) = missing {
                    cols.push(format!("{} AS m{k}", count(m)));
                }
            }
            _ => {}
        }
    }
    format!("SELECT grp,\n  {}\nFROM imnm_groups GROUP BY grp\n", cols.join(",\n  "))
}

/// One Table 1 row of a dictionary: `(ord, variable, level, summary, missing level)`;
/// summary `n`, `continuous`, `levels` or `yes`.
type LayoutRow = (usize, String, Option<String>, &'static str, Option<&'static str>);

/// The Table 1 rows a dictionary has.
fn t1_layout(d: &Dictionary) -> Vec<LayoutRow> {
    let mut rows = vec![(0, "n".to_string(), None, "n", None)];
    for &i in &d.table1 {
        let c = &d.columns[i];
        match c.kind.summary() {
            Summary::None => {}
            Summary::Continuous => rows.push((rows.len(), c.name.clone(), None, "continuous", None)),
            Summary::Levels { missing } => {
                for level in c.levels.iter().filter(|l| Some(l.as_str()) != missing) {
                    rows.push((rows.len(), c.name.clone(), Some(level.clone()), "levels", missing));
                }
            }
            Summary::YesCount => rows.push((rows.len(), c.name.clone(), Some("yes".into()), "yes", None)),
        }
    }
    rows
}

/// `imnm_table1`: Table 1 rows in `table1.json`'s fields, `ord` the row
/// order within a site: the layout rows, each taking its figures from
/// [`t1_wide`].
fn table1(d: &Dictionary, dialect: Dialect) -> String {
    let layout = t1_layout(d);
    let opt = |x: &Option<String>| x.as_deref().map_or("CAST(NULL AS STRING)".to_string(), lit);
    let rows: Vec<String> = layout
        .iter()
        .map(|(ord, v, level, summary, _)| format!("({ord}, {}, {}, '{summary}')", lit(v), opt(level)))
        .collect();
    let values = match dialect {
        Dialect::Spark => format!("VALUES {} AS l(ord, variable, level, summary)", rows.join(", ")),
        Dialect::Duckdb => format!("(VALUES {}) l(ord, variable, level, summary)", rows.join(", ")),
    };
    let pick = |name: &str, of: &dyn Fn(usize, &LayoutRow) -> Option<String>, ty: &str| {
        let arms: String = layout
            .iter()
            .enumerate()
            .filter_map(|(k, r)| of(k, r).map(|e| format!(" WHEN {k} THEN {e}")))
            .collect();
        if arms.is_empty() {
            format!("CAST(NULL AS {ty}) AS {name}")
        } else {
            format!("CAST(CASE l.ord{arms} END AS {ty}) AS {name}")
        }
    };
    let continuous = |r: &LayoutRow| r.3 == "continuous";
    let fig = |p: &'static str| move |k: usize, r: &LayoutRow| continuous(r).then(|| format!("w.{p}{k}"));
    let n = pick(
        "n",
        &|k, r| {
            Some(if r.3 == "n" {
                "w.total".to_string()
            } else {
                format!("w.c{k}")
            })
        },
        "BIGINT",
    );
    let missing = pick(
        "missing",
        &|k, r| match (continuous(r), r.4) {
            (true, _) => Some(format!("w.total - w.c{k}")),
            (false, Some(_)) => Some(format!("w.m{k}")),
            _ => None,
        },
        "BIGINT",
    );
    let figures: Vec<String> = [
        ("median", "md"),
        ("q1", "lo"),
        ("q3", "hi"),
        ("min", "mn"),
        ("max", "mx"),
    ]
    .iter()
    .map(|(name, p)| pick(name, &fig(p), "DOUBLE"))
    .collect();
    format!(
        "SELECT t.site, t.ord, t.variable, t.level, t.n,\n\
         \x20 CASE WHEN t.summary IN ('levels', 'yes') THEN ROUND(CAST(t.n AS DOUBLE) * CAST(1000 AS DOUBLE) / t.total) / CAST(10 AS DOUBLE) END AS percent,\n\
         \x20 t.median, t.q1, t.q3, t.min, t.max, t.missing\n\
         FROM (SELECT w.grp AS site, w.total, l.ord, l.variable, l.level, l.summary,\n  {n},\n  {},\n  {missing}\n\
         \x20 FROM imnm_t1_wide w CROSS JOIN {values}) t\n",
        figures.join(",\n  ")
    )
}

/// `imnm_table1_suppressed`: primary and secondary suppression as
/// `cohort::suppress` does, each site's column on its own; `suppressed` and
/// `missing_suppressed` say what was hidden.
fn suppressed(min_cell: u64) -> String {
    let n = min_cell;
    format!(
        "SELECT t.site, t.ord, t.variable, t.level,\n\
         \x20 CASE WHEN hn = 1 THEN NULL ELSE t.n END AS n,\n\
         \x20 CASE WHEN hn = 1 THEN NULL ELSE t.percent END AS percent,\n\
         \x20 CASE WHEN hs = 1 THEN NULL ELSE t.median END AS median,\n\
         \x20 CASE WHEN hs = 1 THEN NULL ELSE t.q1 END AS q1,\n\
         \x20 CASE WHEN hs = 1 THEN NULL ELSE t.q3 END AS q3,\n\
         \x20 CASE WHEN hs = 1 THEN NULL ELSE t.min END AS min,\n\
         \x20 CASE WHEN hs = 1 THEN NULL ELSE t.max END AS max,\n\
         \x20 CASE WHEN hm = 1 THEN NULL ELSE t.missing END AS missing,\n\
         \x20 hn = 1 AS suppressed, hm = 1 AS missing_suppressed\n\
         FROM (\n\
         \x20 SELECT t.*,\n\
         \x20   CASE WHEN tot.total < {n} THEN (CASE WHEN t.n IS NULL THEN 0 ELSE 1 END) ELSE COALESCE(lc.hide, 0) END AS hn,\n\
         \x20   CASE WHEN tot.total < {n} THEN (CASE WHEN t.missing IS NULL THEN 0 ELSE 1 END) ELSE COALESCE(mc.hide, 0) END AS hm,\n\
         \x20   CASE WHEN tot.total < {n} OR (COALESCE(lc.hide, 0) = 1 AND t.level IS NULL AND t.n < {n}) THEN 1 ELSE 0 END AS hs\n\
         \x20 FROM imnm_table1 t\n\
         \x20 JOIN (SELECT site, n AS total FROM imnm_table1 WHERE variable = 'n') tot ON tot.site = t.site\n\
         \x20 LEFT JOIN imnm_hidden lc ON lc.site = t.site AND lc.variable = t.variable AND lc.cell_ord = t.ord\n\
         \x20 LEFT JOIN imnm_hidden mc ON mc.site = t.site AND mc.variable = t.variable AND mc.cell_ord = 1000000\n\
         ) t\n"
    )
}

/// `imnm_cells`: each displayed count of a variable: its levels' n, then
/// its missing count as `cell_ord` 1000000.
fn cells() -> String {
    "SELECT site, variable, ord AS cell_ord, n AS v FROM imnm_table1 WHERE variable <> 'n' AND n IS NOT NULL\n\
     UNION ALL\n\
     SELECT site, variable, 1000000 AS cell_ord, MIN(missing) AS v FROM imnm_table1\n\
     WHERE variable <> 'n' GROUP BY site, variable HAVING MIN(missing) IS NOT NULL\n"
        .to_string()
}

/// `imnm_hidden`: each cell of [`cells`] and whether it is hidden (primary,
/// or the secondary cell of a variable whose cells add up to the cases).
fn hidden(min_cell: u64) -> String {
    let n = min_cell;
    let small = format!("CASE WHEN v > 0 AND v < {n} THEN 1 ELSE 0 END");
    format!(
        "SELECT p.site, p.variable, p.cell_ord,\n\
         \x20 CASE WHEN p.small = 1 OR (v.hidden = 1 AND v.s = p.total AND v.k > 1 AND k.rn = 1) THEN 1 ELSE 0 END AS hide\n\
         FROM (SELECT c.*, tot.total, {small} AS small FROM imnm_cells c\n\
         \x20 JOIN (SELECT site, n AS total FROM imnm_table1 WHERE variable = 'n') tot ON tot.site = c.site) p\n\
         JOIN (SELECT site, variable, SUM(v) AS s, COUNT(*) AS k, SUM({small}) AS hidden\n\
         \x20 FROM imnm_cells GROUP BY site, variable) v ON v.site = p.site AND v.variable = p.variable\n\
         LEFT JOIN (SELECT site, variable, cell_ord, ROW_NUMBER() OVER (PARTITION BY site, variable ORDER BY v, cell_ord) AS rn\n\
         \x20 FROM imnm_cells WHERE {small} = 0) k\n\
         \x20 ON k.site = p.site AND k.variable = p.variable AND k.cell_ord = p.cell_ord\n"
    )
}
