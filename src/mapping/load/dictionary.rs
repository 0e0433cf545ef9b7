//! Phase 2 for `dictionary.toml`: the columns, their kinds, levels, units,
//! companions and FHIR targets, and the Table 1 order; then the checks that
//! tie the dictionary to the rules (every rule-filled column has exactly one
//! rule of its kind, every rule a column). Problems are collected, never
//! thrown, so the loader reports them all at once.

use crate::domain::{Column, ColumnKind, Dictionary, FhirTarget};
use crate::mapping::spec::{RawColumn, RawFile};
use crate::mapping::{QuantityDef, Rule, RuleKind};

use super::LoadError;

/// Builds the dictionary from the file of kind `dictionary`; problems go to `errors`.
pub(super) fn resolve(files: &[(String, RawFile)], errors: &mut Vec<LoadError>) -> Option<(String, Dictionary)> {
    let mut found = files.iter().filter(|(_, f)| f.kind == "dictionary");
    let Some((file, raw)) = found.next() else {
        // A dictionary file that did not parse is reported already.
        if !errors.is_empty() {
            return None;
        }
        errors.push(error(
            "dictionary",
            None,
            "no file of kind \"dictionary\" (copy mappings/dictionary.toml of this release)",
        ));
        return None;
    };
    for (other, _) in found {
        errors.push(error(
            other,
            None,
            format!("a second dictionary file (the first is {file})"),
        ));
    }
    let mut d = Dictionary::default();
    for c in &raw.column {
        if let Some(col) = column(file, c, &d, errors) {
            d.columns.push(col);
        }
    }
    check_singles(file, &d, errors);
    match &raw.table1 {
        Some(t) => d.table1 = table1(file, &t.order, &d, errors),
        None => errors.push(error(file, None, "no [table1] section")),
    }
    // Kept even with problems, so the rules are checked against it too (the
    // load fails on any problem).
    Some((file.clone(), d))
}

fn error(file: &str, item: Option<&str>, message: impl Into<String>) -> LoadError {
    LoadError {
        file: file.to_string(),
        item: item.map(str::to_string),
        message: message.into(),
    }
}

fn column(file: &str, c: &RawColumn, d: &Dictionary, errors: &mut Vec<LoadError>) -> Option<Column> {
    let name = c.name.as_str();
    let mut err = |m: String| errors.push(error(file, Some(name), m));
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        err("a column name is lower-case letters, digits and _".into());
    }
    if d.index(name).is_some() {
        err("column defined twice".into());
    }
    let kind = match c.kind.parse::<ColumnKind>() {
        Ok(k) => k,
        Err(e) => {
            err(e.to_string());
            return None;
        }
    };
    let levels = levels(kind, &c.levels, &mut err);
    if kind.companion() != c.of.is_some() {
        err(match kind.companion() {
            true => format!("a {kind} column names its lab peak with `of`"),
            false => format!("`of` is only for lab-peak-date and lab-count columns, not {kind}"),
        });
    }
    let of = c.of.as_deref().and_then(|peak| match d.index(peak) {
        Some(i) if d.columns[i].kind == ColumnKind::LabPeak => Some(i),
        _ => {
            err(format!("`of` {peak:?} is not a lab-peak column defined above"));
            None
        }
    });
    if of.is_some_and(|p| d.companion(p, kind).is_some()) {
        err(format!(
            "lab peak {:?} has a {kind} column already",
            c.of.as_deref().unwrap_or("")
        ));
    }
    if (kind == ColumnKind::LabPeak) != c.unit.is_some() {
        err("a lab-peak column, and only one, has a `unit`".into());
    }
    let label = label(kind, c.label.as_deref(), &mut err);
    let fhir = fhir(kind, c.fhir.as_ref(), &mut err);
    Some(Column {
        name: name.to_string(),
        kind,
        label,
        levels,
        unit: c.unit.clone(),
        of,
        fhir,
    })
}

fn levels(kind: ColumnKind, given: &[String], err: &mut impl FnMut(String)) -> Vec<String> {
    let Some(allowed) = kind.levels() else {
        if !given.is_empty() {
            err(format!("a {kind} column has no levels"));
        }
        return Vec::new();
    };
    for l in given.iter().filter(|l| !allowed.contains(&l.as_str())) {
        err(format!(
            "unknown level {l:?} (a {kind} column has {})",
            allowed.join("|")
        ));
    }
    for l in allowed.iter().filter(|l| !given.iter().any(|g| g == *l)) {
        err(format!(
            "level {l:?} missing from `levels` (a {kind} column has {})",
            allowed.join("|")
        ));
    }
    if given.len() != allowed.len() {
        err("`levels` lists a level twice".into());
    }
    given.to_vec()
}

fn label(kind: ColumnKind, given: Option<&str>, err: &mut impl FnMut(String)) -> String {
    use crate::domain::dictionary::Summary;
    match (kind.summary(), given) {
        (Summary::None, Some(_)) => err(format!("a {kind} column is not in Table 1 and takes no label")),
        (Summary::None, None) => {}
        (_, None) => err(format!("a {kind} column needs a Table 1 `label`")),
        (_, Some(_)) => {}
    }
    given.unwrap_or_default().to_string()
}

fn fhir(
    kind: ColumnKind,
    given: Option<&crate::mapping::spec::RawFhir>,
    err: &mut impl FnMut(String),
) -> Option<FhirTarget> {
    let (Some(resource), Some(f)) = (kind.resource(), given) else {
        match (kind.resource(), given) {
            (Some(r), None) => err(format!("a {kind} column needs `fhir` (resource {r:?}, profile)")),
            (None, Some(_)) => err(format!(
                "a {kind} column is written with its peak, Patient or Condition; no `fhir`"
            )),
            _ => {}
        }
        return None;
    };
    if f.resource != resource {
        err(format!(
            "fhir.resource {:?}: a {kind} column is written as {resource}",
            f.resource
        ));
    }
    if (resource == "Observation") != f.category.is_some() {
        err("fhir.category (observation-category code) is given for Observations, and only for them".into());
    }
    if f.profile.trim().is_empty() {
        err("fhir.profile is empty".into());
    }
    Some(FhirTarget {
        resource: f.resource.clone(),
        profile: f.profile.clone(),
        category: f.category.clone(),
    })
}

fn check_singles(file: &str, d: &Dictionary, errors: &mut Vec<LoadError>) {
    for kind in [ColumnKind::PatientId, ColumnKind::DiagnosisCode] {
        if d.first(kind).is_none() {
            errors.push(error(file, None, format!("no column of kind {kind}")));
        }
    }
    if d.columns.first().is_some_and(|c| c.kind != ColumnKind::PatientId) {
        errors.push(error(file, None, "the first column is the patient-id column"));
    }
    for c in &d.columns {
        if c.kind.single() && d.first(c.kind).is_some_and(|i| d.columns[i].name != c.name) {
            errors.push(error(
                file,
                Some(&c.name),
                format!("a second {} column (at most one)", c.kind),
            ));
        }
    }
}

fn table1(file: &str, order: &[String], d: &Dictionary, errors: &mut Vec<LoadError>) -> Vec<usize> {
    use crate::domain::dictionary::Summary;
    let mut out = Vec::new();
    for name in order {
        match d.index(name) {
            None => errors.push(error(file, Some("table1"), format!("{name:?} is not a column"))),
            Some(i) if d.columns[i].kind.summary() == Summary::None => errors.push(error(
                file,
                Some("table1"),
                format!(
                    "{name:?} is a {} column, which Table 1 does not show",
                    d.columns[i].kind
                ),
            )),
            Some(i) if out.contains(&i) => {
                errors.push(error(file, Some("table1"), format!("{name:?} is listed twice")))
            }
            Some(i) => out.push(i),
        }
    }
    for c in d.columns.iter().filter(|c| c.kind.summary() != Summary::None) {
        if !order.contains(&c.name) {
            errors.push(error(
                file,
                Some(&c.name),
                "not in [table1] order (every column Table 1 can show is listed)",
            ));
        }
    }
    out
}

/// Checks the rules against the dictionary: each rule-filled column has one
/// rule of its kind, and a lab peak's unit is its quantity's canonical unit.
pub(super) fn check_rules(
    dict_file: &str,
    d: &Dictionary,
    rules: &[(String, Rule)],
    quantities: &[QuantityDef],
    errors: &mut Vec<LoadError>,
) {
    for (i, c) in d.columns.iter().enumerate() {
        let filling: Vec<&(String, Rule)> = rules.iter().filter(|(_, r)| r.column == i).collect();
        if c.kind.filled_by_rule() && filling.is_empty() {
            errors.push(error(
                dict_file,
                Some(&c.name),
                format!("no rule fills this {} column", c.kind),
            ));
        }
        for (file, r) in filling.iter().skip(1) {
            errors.push(error(
                file,
                Some(&r.id),
                format!("column {:?} has a rule already", c.name),
            ));
        }
        for (file, r) in &filling {
            if let RuleKind::LabPeak { quantity, .. } = r.kind {
                let canonical = &quantities[quantity].canonical;
                if c.unit.as_deref() != Some(canonical.as_str()) {
                    errors.push(error(
                        file,
                        Some(&r.id),
                        format!("its quantity's unit {canonical:?} is not column {:?}'s unit", c.name),
                    ));
                }
            }
        }
    }
}

/// The column a rule fills, checked against the rule's kind.
pub(super) fn rule_column(
    file: &str,
    id: &str,
    column: &str,
    kind: &RuleKind,
    d: &Dictionary,
    errors: &mut Vec<LoadError>,
) -> Option<usize> {
    let Some(i) = d.index(column) else {
        errors.push(error(
            file,
            Some(id),
            format!("column {column:?} is not in the data dictionary"),
        ));
        return None;
    };
    let want = d.columns[i].kind;
    if !want.filled_by_rule() {
        errors.push(error(
            file,
            Some(id),
            format!("column {column:?} (kind {want}) is filled from Patient/Condition, not by a rule"),
        ));
        return None;
    }
    if kind.column_kind() != want {
        errors.push(error(
            file,
            Some(id),
            format!(
                "kind {:?} does not fit column {column:?}, which the dictionary declares as {want:?}",
                kind.column_kind().as_str(),
                want = want.as_str()
            ),
        ));
        return None;
    }
    Some(i)
}
