//! The per-patient date shift.
//!
//! Every date of one patient moves by the same number of days (from
//! [`super::SiteKey::offset_days`]), so intervals between full dates are
//! exact. Precision is never increased and the time of day is dropped:
//!
//! - `YYYY-MM-DD` (with or without a time): shifted by the offset; the time
//!   and zone are removed (rule `time-dropped`).
//! - `YYYY-MM`: the 15th of that month is shifted and the result's month is
//!   written, so the month moves by about offset/30 (intervals to ±1 month).
//! - `YYYY`: 2 July of that year is shifted and the result's year is written.
//! - `birthDate` under safe-harbor: the shifted date reduced to its year.

use crate::domain::FhirDate;

/// What happened to one date value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shifted {
    /// A full date, shifted; `time_dropped` when a time was removed.
    Full(String, bool),
    /// A partial date (month or year precision), shifted at its precision.
    Partial(String),
    /// Not a date, or out of range: the value is removed.
    Invalid,
}

/// Shifts one FHIR date or dateTime by `days`.
pub fn shift(value: &str, days: i64) -> Shifted {
    let Ok(date) = FhirDate::parse(value) else {
        return Shifted::Invalid;
    };
    let had_time = value.contains('T');
    let anchor = match (date.month, date.day) {
        (Some(_), Some(_)) => date,
        (Some(m), None) => match FhirDate::ymd(date.year, m, 15) {
            Some(d) => d,
            None => return Shifted::Invalid,
        },
        _ => match FhirDate::ymd(date.year, 7, 2) {
            Some(d) => d,
            None => return Shifted::Invalid,
        },
    };
    let Some(moved) = anchor.add_days(days) else {
        return Shifted::Invalid;
    };
    match (date.month, date.day) {
        (Some(_), Some(_)) => Shifted::Full(moved.to_string(), had_time),
        (Some(_), None) => Shifted::Partial(format!("{:04}-{:02}", moved.year, moved.month.unwrap_or(1))),
        _ => Shifted::Partial(format!("{:04}", moved.year)),
    }
}

/// The year of `value` shifted by `days` (birthDate under safe-harbor).
pub fn shifted_year(value: &str, days: i64) -> Option<String> {
    match shift(value, days) {
        Shifted::Full(s, _) | Shifted::Partial(s) => s.get(..4).map(str::to_string),
        Shifted::Invalid => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_dates_keep_intervals_and_partial_dates_keep_precision() {
        assert_eq!(shift("2016-02-28", 2), Shifted::Full("2016-03-01".into(), false));
        assert_eq!(
            shift("2016-02-28T10:00:00+01:00", -59),
            Shifted::Full("2015-12-31".into(), true)
        );
        assert_eq!(shift("2016-02", 20), Shifted::Partial("2016-03".into()));
        assert_eq!(shift("2016", 180), Shifted::Partial("2016".into()));
        assert_eq!(shift("2016", -185), Shifted::Partial("2015".into()));
        assert_eq!(shift("not a date", 3), Shifted::Invalid);
        assert_eq!(shifted_year("2011-12-20", 20).as_deref(), Some("2012"));
    }
}
