//! Instants for `meta.lastUpdated`, `_lastUpdated`/`_since` and bulk
//! `transactionTime`: whole seconds since 0001-01-01T00:00:00Z on a logical
//! clock. The dataset starts at [`DATASET_START`]; each write moves the clock
//! one second on, so tests see the same timestamps on every run.

use crate::domain::date::FhirDate;

/// Seconds since 0001-01-01T00:00:00Z.
pub type Instant = i64;

/// 2024-01-01T00:00:00Z: the first dataset resource's lastUpdated (the next gets one second more).
pub const DATASET_START: Instant = 63_839_664_000;

const DAY: i64 = 86_400;

/// `2024-01-01T00:00:05Z` style.
pub fn format(t: Instant) -> String {
    let days = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    let date = FhirDate::ymd(1, 1, 1)
        .and_then(|d| d.add_days(days))
        .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month.unwrap_or(1), d.day.unwrap_or(1)))
        .unwrap_or_else(|| "0001-01-01".to_string());
    format!("{date}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The half-open range `[start, end)` a FHIR date or dateTime names (`2024` is the
/// whole year; a dateTime is one second, fractions dropped). `None` when malformed.
pub fn parse_range(s: &str) -> Option<(Instant, Instant)> {
    let s = s.trim();
    let date = FhirDate::parse(s).ok()?;
    let time = s.find('T').map(|i| &s[i + 1..]);
    let first = FhirDate {
        year: date.year,
        month: Some(date.month.unwrap_or(1)),
        day: Some(date.day.unwrap_or(1)),
    };
    let start_day = days_since_year_one(&first)?;
    let Some(time) = time else {
        let end = match (date.month, date.day) {
            (Some(_), Some(_)) => first.add_days(1)?,
            (Some(m), None) => FhirDate::ymd(date.year + u16::from(m == 12), m % 12 + 1, 1)?,
            _ => FhirDate::ymd(date.year + 1, 1, 1)?,
        };
        return Some((start_day * DAY, days_since_year_one(&end)? * DAY));
    };
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, "Z"),
    };
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts
        .next()
        .map(|s| s.split('.').next().unwrap_or("0").parse().ok())
        .unwrap_or(Some(0))?;
    let offset = match zone {
        "Z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let oh: i64 = z.get(1..3)?.parse().ok()?;
            let om: i64 = z.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let t = start_day * DAY + h * 3600 + m * 60 + sec - offset;
    Some((t, t + 1))
}

/// Days from 0001-01-01 (`FhirDate::day_number` counts from another origin).
fn days_since_year_one(d: &FhirDate) -> Option<i64> {
    Some(d.day_number()? - FhirDate::ymd(1, 1, 1)?.day_number()?)
}

/// Seconds since the Unix epoch, from the wall clock (for JWT `exp`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_dataset_start() {
        assert_eq!(format(DATASET_START), "2024-01-01T00:00:00Z");
        assert_eq!(format(DATASET_START + 3661), "2024-01-01T01:01:01Z");
        assert_eq!(
            parse_range("2024-01-01T00:00:00Z"),
            Some((DATASET_START, DATASET_START + 1))
        );
        assert_eq!(
            parse_range("2024-01-01T01:00:00+01:00"),
            Some((DATASET_START, DATASET_START + 1))
        );
        assert_eq!(parse_range("2024-01-01"), Some((DATASET_START, DATASET_START + DAY)));
        assert_eq!(parse_range("2023-12").map(|r| r.1), Some(DATASET_START));
        assert_eq!(parse_range("2023").map(|r| r.1), Some(DATASET_START));
        assert_eq!(parse_range("yesterday"), None);
    }
}
