//! FHIR `date` / `dateTime` values as calendar dates with optional month and day.
//!
//! FHIR allows `YYYY`, `YYYY-MM`, `YYYY-MM-DD` and dateTimes with a time and an
//! offset. The registry works in days, so only the date part is kept; the time
//! and offset are checked for shape and dropped.

use std::fmt;

/// A calendar date with the precision it was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FhirDate {
    /// Year, 1..=9999.
    pub year: u16,
    /// Month, 1..=12, when given.
    pub month: Option<u8>,
    /// Day of month, when given (implies `month`).
    pub day: Option<u8>,
}

/// Why a date string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a FHIR date or dateTime: {reason}")]
pub struct DateError {
    /// What is wrong with it (never the value itself).
    pub reason: &'static str,
}

fn err(reason: &'static str) -> DateError {
    DateError { reason }
}

impl FhirDate {
    /// A full date. Returns `None` when the day does not exist.
    pub fn ymd(year: u16, month: u8, day: u8) -> Option<Self> {
        let ok =
            (1..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        ok.then_some(Self {
            year,
            month: Some(month),
            day: Some(day),
        })
    }

    /// Parses a FHIR `date` or `dateTime` (the time part, if any, is validated and dropped).
    pub fn parse(s: &str) -> Result<Self, DateError> {
        // Read as bytes: every character it accepts is ASCII (and no slice
        // can fall inside a character).
        let s = s.trim().as_bytes();
        let (date, time) = match s.iter().position(|&b| b == b'T') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut split = date.split(|&b| b == b'-');
        let parts = [split.next(), split.next(), split.next()];
        if split.next().is_some() {
            return Err(err("expected YYYY, YYYY-MM or YYYY-MM-DD"));
        }
        let year = digits(parts[0].unwrap_or_default(), 4).ok_or(err("year must be 4 digits"))?;
        if year == 0 {
            return Err(err("year 0000"));
        }
        let month = match parts[1] {
            Some(m) => Some(
                digits(m, 2)
                    .filter(|m| (1..=12).contains(m))
                    .ok_or(err("month must be 01..12"))? as u8,
            ),
            None => None,
        };
        let day = match (parts[2], month) {
            (Some(d), Some(m)) => {
                let d = digits(d, 2).ok_or(err("day must be 2 digits"))? as u8;
                if d == 0 || d > days_in_month(year, m) {
                    return Err(err("day does not exist in that month"));
                }
                Some(d)
            }
            _ => None,
        };
        if let Some(t) = time {
            if day.is_none() {
                return Err(err("a time needs a full date"));
            }
            check_time(t)?;
        }
        Ok(Self { year, month, day })
    }

    /// True when year, month and day are all given.
    pub fn is_full(&self) -> bool {
        self.day.is_some()
    }

    /// Completed years from `self` (a birth date) to `at`, when the precision of
    /// both dates decides it; `None` otherwise or when `at` is before `self`.
    pub fn completed_years_until(&self, at: &FhirDate) -> Option<u32> {
        let years = i32::from(at.year) - i32::from(self.year);
        let before = |a: (u8, u8), b: (u8, u8)| a < b;
        let result = match (self.month, self.day, at.month, at.day) {
            (Some(bm), Some(bd), Some(am), Some(ad)) => years - i32::from(before((am, ad), (bm, bd))),
            (Some(bm), _, Some(am), _) if am != bm => years - i32::from(am < bm),
            _ => return None,
        };
        u32::try_from(result).ok()
    }

    /// Days since 0001-01-01 for full dates (proleptic Gregorian).
    pub fn day_number(&self) -> Option<i64> {
        let (m, d) = (self.month?, self.day?);
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (i64::from(m) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(era * 146_097 + doe)
    }

    /// The date `days` after this one (full dates only).
    pub fn add_days(&self, days: i64) -> Option<FhirDate> {
        let z = self.day_number()? + days;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        FhirDate::ymd(u16::try_from(y).ok()?, m as u8, d as u8)
    }
}

fn digits(s: &[u8], len: usize) -> Option<u16> {
    if s.len() != len {
        return None;
    }
    // At most 4 digits here: no overflow.
    s.iter()
        .try_fold(0u16, |n, &b| b.is_ascii_digit().then(|| n * 10 + u16::from(b - b'0')))
}

fn check_time(t: &[u8]) -> Result<(), DateError> {
    let (clock, zone) = match t.iter().position(|b| matches!(b, b'Z' | b'+' | b'-')) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, &[][..]),
    };
    let mut hms = clock.splitn(3, |&b| b == b':');
    let h = hms.next().and_then(|h| digits(h, 2)).filter(|h| *h < 24);
    let m = hms.next().and_then(|m| digits(m, 2)).filter(|m| *m < 60);
    let s = hms.next().map(|s| {
        (s.split(|&b| b == b'.').next())
            .and_then(|s| digits(s, 2))
            .filter(|s| *s < 61)
    });
    if h.is_none() || m.is_none() || matches!(s, Some(None)) {
        return Err(err("time must be hh:mm[:ss[.fff]]"));
    }
    let offset = |z: &[u8]| match z {
        [_, h @ .., b':', m0, m1] => digits(h, 2).is_some() && digits(&[*m0, *m1], 2).is_some(),
        _ => false,
    };
    let zone_ok = zone.is_empty() || zone == b"Z" || (zone.len() == 6 && offset(zone));
    if zone_ok {
        Ok(())
    } else {
        Err(err("time zone must be Z or +hh:mm"))
    }
}

/// Seconds since 1970-01-01T00:00:00Z as a FHIR instant in UTC (`2024-01-01T00:00:00Z`).
pub fn instant_from_unix(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let date = FhirDate::ymd(1970, 1, 1)
        .and_then(|d| d.add_days(days))
        .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month.unwrap_or(1), d.day.unwrap_or(1)))
        .unwrap_or_else(|| "1970-01-01".into());
    format!("{date}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// A FHIR `instant` (`2024-01-02T03:04:05.123+02:00`: a full date, a time with
/// seconds, an offset) as milliseconds since 1970-01-01T00:00:00Z, so that two
/// instants given in different offsets compare; `None` for anything else
/// (fractions past milliseconds are dropped).
pub fn instant_millis(s: &str) -> Option<i64> {
    // Read byte by byte (every resource's `meta.lastUpdated` comes here).
    let b = s.trim().as_bytes();
    let num = |at: usize, len: usize| -> Option<i64> {
        let part = b.get(at..at + len)?;
        part.iter()
            .try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let punctuated = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !punctuated.iter().all(|&(at, c)| b.get(at) == Some(&c)) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let date = FhirDate::ymd(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
    )?;
    let (h, m, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b.get(at + 1..)?.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let kept = digits.min(3);
        millis = num(at + 1, kept)? * 10i64.pow(3 - kept as u32);
        at += 1 + digits;
    }
    let offset = match b.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (zh, zm) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if zh > 14 || zm > 59 {
                return None;
            }
            if *sign == b'-' {
                -(zh * 60 + zm)
            } else {
                zh * 60 + zm
            }
        }
        _ => return None,
    };
    let epoch = FhirDate::ymd(1970, 1, 1)?.day_number()?;
    let minutes = (date.day_number()? - epoch) * 1440 + h * 60 + m - offset;
    Some((minutes * 60 + sec) * 1000 + millis)
}

/// Days in a month of the Gregorian calendar.
pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for FhirDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading of before the byte-wise one (string splits, `str::parse`),
    /// kept as the reference it must agree with.
    mod before {
        use super::super::{days_in_month, err, DateError, FhirDate};

        fn digits(s: &str, len: usize) -> Option<u16> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        }

        fn check_time(t: &str) -> Result<(), DateError> {
            let (clock, zone) = match t.find(['Z', '+', '-']) {
                Some(i) => (&t[..i], &t[i..]),
                None => (t, ""),
            };
            let mut hms = clock.splitn(3, ':');
            let h = hms.next().and_then(|h| digits(h, 2)).filter(|h| *h < 24);
            let m = hms.next().and_then(|m| digits(m, 2)).filter(|m| *m < 60);
            let s = hms
                .next()
                .map(|s| s.split('.').next().and_then(|s| digits(s, 2)).filter(|s| *s < 61));
            if h.is_none() || m.is_none() || matches!(s, Some(None)) {
                return Err(err("time must be hh:mm[:ss[.fff]]"));
            }
            let zone_ok = zone.is_empty()
                || zone == "Z"
                || (zone.len() == 6
                    && digits(&zone[1..3], 2).is_some()
                    && &zone[3..4] == ":"
                    && digits(&zone[4..6], 2).is_some());
            zone_ok.then_some(()).ok_or(err("time zone must be Z or +hh:mm"))
        }

        pub(super) fn parse(s: &str) -> Result<FhirDate, DateError> {
            let s = s.trim();
            let (date, time) = match s.find('T') {
                Some(i) => (&s[..i], Some(&s[i + 1..])),
                None => (s, None),
            };
            let mut split = date.split('-');
            let parts = [split.next(), split.next(), split.next()];
            if split.next().is_some() {
                return Err(err("expected YYYY, YYYY-MM or YYYY-MM-DD"));
            }
            let year = digits(parts[0].unwrap_or_default(), 4).ok_or(err("year must be 4 digits"))?;
            if year == 0 {
                return Err(err("year 0000"));
            }
            let month = match parts[1] {
                Some(m) => Some(
                    digits(m, 2)
                        .filter(|m| (1..=12).contains(m))
                        .ok_or(err("month must be 01..12"))? as u8,
                ),
                None => None,
            };
            let day = match (parts[2], month) {
                (Some(d), Some(m)) => {
                    let d = digits(d, 2).ok_or(err("day must be 2 digits"))? as u8;
                    if d == 0 || d > days_in_month(year, m) {
                        return Err(err("day does not exist in that month"));
                    }
                    Some(d)
                }
                _ => None,
            };
            if let Some(t) = time {
                if day.is_none() {
                    return Err(err("a time needs a full date"));
                }
                check_time(t)?;
            }
            Ok(FhirDate { year, month, day })
        }
    }

    fn damaged(base: &str, edits: &[(usize, u8)]) -> String {
        const CHARS: &[u8] = b"0123456789-T:Z+.x 9";
        let mut b = base.as_bytes().to_vec();
        for &(at, what) in edits {
            let at = at % (b.len() + 1);
            let c = CHARS[usize::from(what) % CHARS.len()];
            match what % 3 {
                0 if at < b.len() => b[at] = c,
                1 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.insert(at, c),
            }
        }
        String::from_utf8(b).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Dates and dateTimes, whole and damaged: the same answer as before.
        #[test]
        fn reads_as_the_string_splits_did(
            base in proptest::sample::select(vec![
                "2023-12-20T15:32:00Z", "2016-02-29", "2015-06", "2015", "2024-03-01T02:00:00+02:00",
                "2024-02-29T23:30:00.123-01:00", " 2020-01-31T23:59:60Z ", "2020-01-01T00:00",
            ]),
            edits in proptest::collection::vec((0usize..32, proptest::prelude::any::<u8>()), 0..4),
        ) {
            let text = damaged(base, &edits);
            proptest::prop_assert_eq!(FhirDate::parse(&text), before::parse(&text), "{:?}", text);
        }
    }

    /// An offset with a character of several bytes inside is refused, not a
    /// slice through the character (which panicked before).
    #[test]
    fn an_offset_with_a_wide_character_is_refused() {
        for text in [
            "2020-01-01T00:00:00+0\u{e9}:0",
            "2020-01-01T00:00:00+\u{e9}0:0",
            "2020-01-01T00:00+00\u{e9}0",
        ] {
            assert!(FhirDate::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn instants_compare_across_offsets_and_fractions() {
        assert_eq!(instant_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(instant_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            instant_millis("2024-03-01T02:00:00+02:00"),
            instant_millis("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            instant_millis("2024-02-29T23:30:00-01:00"),
            instant_millis("2024-03-01T00:30:00.000Z")
        );
        assert!(instant_millis("2024-01-01T00:00:00.0001Z") < instant_millis("2024-01-01T00:00:00.002Z"));
        for bad in [
            "2024-01-01",
            "2024-01-01T00:00Z",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "x",
        ] {
            assert_eq!(instant_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn unix_seconds_become_utc_instants() {
        assert_eq!(instant_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(instant_from_unix(1_792_000_000), "2026-10-14T17:46:40Z");
        assert_eq!(instant_from_unix(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn parses_every_precision_and_rejects_impossible_dates() {
        assert_eq!(FhirDate::parse("2015").unwrap().to_string(), "2015");
        assert_eq!(FhirDate::parse("2015-06").unwrap().to_string(), "2015-06");
        assert_eq!(
            FhirDate::parse("2015-06-02T09:30:00-05:00").unwrap().to_string(),
            "2015-06-02"
        );
        assert_eq!(FhirDate::parse("2016-02-29").unwrap().day, Some(29));
        for bad in [
            "2012-13-45",
            "2015-02-29",
            "15-06-02",
            "2015-6-2",
            "",
            "2015-06-02T25:00:00Z",
            "2015-06T10:00",
        ] {
            assert!(FhirDate::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn completed_years_counts_birthdays() {
        let birth = FhirDate::parse("2010-07-21").unwrap();
        assert_eq!(
            birth.completed_years_until(&FhirDate::parse("2014-07-20").unwrap()),
            Some(3)
        );
        assert_eq!(
            birth.completed_years_until(&FhirDate::parse("2014-07-21").unwrap()),
            Some(4)
        );
        assert_eq!(
            birth.completed_years_until(&FhirDate::parse("2014-09").unwrap()),
            Some(4)
        );
        assert_eq!(birth.completed_years_until(&FhirDate::parse("2014-07").unwrap()), None);
        assert_eq!(
            birth.completed_years_until(&FhirDate::parse("2009-01-01").unwrap()),
            None
        );
    }

    #[test]
    fn day_arithmetic_round_trips() {
        let d = FhirDate::parse("2016-02-28").unwrap();
        assert_eq!(d.add_days(1).unwrap().to_string(), "2016-02-29");
        assert_eq!(d.add_days(366).unwrap().to_string(), "2017-02-28");
        assert_eq!(d.add_days(-59).unwrap().to_string(), "2015-12-31");
        let n = d.day_number().unwrap();
        assert_eq!(d.add_days(0).unwrap().day_number().unwrap(), n);
    }
}
