//! Numbers sent as text: what interface engines put in `valueString` for a
//! numeric result ("3988", "3,988", "3988 U/L", ">13000", "<20 CU"), titres
//! ("1:320") and the upper limits of reference ranges written as text ("<20",
//! "0-19"). Read into a value, a comparator and the unit text that followed,
//! or nothing when the text is not one number (then the caller reports it).

/// A numeric result read from text.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericText {
    /// The number.
    pub value: f64,
    /// `<`, `<=`, `>` or `>=` when the text had one.
    pub comparator: Option<&'static str>,
    /// The unit text after the number, when there was one.
    pub unit: Option<String>,
}

const COMPARATORS: [&str; 4] = ["<=", ">=", "<", ">"];

/// Reads `text` as one number with an optional comparator before it, digit
/// groups of three separated by commas ("3,988"), and an optional unit after
/// it. Anything else (two numbers, a range, a titre "1:320", words) is `None`.
pub fn parse(text: &str) -> Option<NumericText> {
    let t = text.trim();
    let comparator = COMPARATORS.iter().find(|c| t.starts_with(**c)).copied();
    let t = t[comparator.map_or(0, str::len)..].trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let (number, rest) = t.split_at(end);
    let value = number_value(number)?;
    let unit = rest.trim();
    if unit.starts_with(|c: char| c.is_ascii_digit() || c == ':' || c == '-' || c == '.') {
        return None;
    }
    Some(NumericText {
        value,
        comparator,
        unit: (!unit.is_empty()).then(|| unit.to_string()),
    })
}

/// Reads `text` as a titre `1:N` with an optional comparator before it
/// ("1:320", "<1:40", ">= 1:1280"): N and the comparator.
pub fn titre(text: &str) -> Option<(f64, Option<&'static str>)> {
    let t = text.trim();
    let comparator = COMPARATORS.iter().find(|c| t.starts_with(**c)).copied();
    let t = t[comparator.map_or(0, str::len)..].trim_start();
    let (one, n) = t.split_once(':')?;
    if one.trim() != "1" {
        return None;
    }
    let n = number_value(n.trim())?;
    (n >= 1.0).then_some((n, comparator))
}

/// The upper limit of a normal range written as text ("<20", "<= 20 CU",
/// "0-19", "Negative: <20"): the limit, whether it is itself normal, and
/// the unit text after it. `None` for anything else (a lower limit, words).
pub fn range_high(text: &str) -> Option<(f64, bool, Option<String>)> {
    let t = text.rsplit(':').next().unwrap_or(text).trim();
    if let Some((low, high)) = t.split_once('-') {
        let low = parse(low)?;
        let high = parse(high)?;
        return (low.comparator.is_none() && high.comparator.is_none()).then_some((high.value, true, high.unit));
    }
    let n = parse(t)?;
    match n.comparator {
        Some("<") => Some((n.value, false, n.unit)),
        Some("<=") => Some((n.value, true, n.unit)),
        _ => None,
    }
}

/// A decimal number, with optional thousands commas in groups of three.
fn number_value(s: &str) -> Option<f64> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || fraction.contains([',', '.']) {
        return None;
    }
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped_ok = groups.len() == 1
        || (!groups[0].is_empty() && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
    if !grouped_ok {
        return None;
    }
    let plain = format!(
        "{}{}{fraction}",
        groups.concat(),
        if fraction.is_empty() { "" } else { "." }
    );
    plain.parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Option<(f64, Option<&'static str>, Option<String>)> {
        parse(s).map(|n| (n.value, n.comparator, n.unit))
    }

    #[test]
    fn forms_interface_engines_send() {
        assert_eq!(read("3988"), Some((3988.0, None, None)));
        assert_eq!(read(" 3,988 "), Some((3988.0, None, None)));
        assert_eq!(read("3,988.5 U/L"), Some((3988.5, None, Some("U/L".into()))));
        assert_eq!(read(">13000"), Some((13000.0, Some(">"), None)));
        assert_eq!(read(">= 13000 IU/L"), Some((13000.0, Some(">="), Some("IU/L".into()))));
        assert_eq!(read("<20 CU"), Some((20.0, Some("<"), Some("CU".into()))));
    }

    #[test]
    fn titres_and_range_texts() {
        assert_eq!(titre("1:320"), Some((320.0, None)));
        assert_eq!(titre("<1:40"), Some((40.0, Some("<"))));
        assert_eq!(titre(">= 1 : 1,280"), Some((1280.0, Some(">="))));
        for s in ["2:40", "1:", "320", "1:0", "1:x"] {
            assert_eq!(titre(s), None, "{s:?}");
        }
        assert_eq!(range_high("<20"), Some((20.0, false, None)));
        assert_eq!(range_high("<= 20 CU"), Some((20.0, true, Some("CU".into()))));
        assert_eq!(range_high("0-19"), Some((19.0, true, None)));
        assert_eq!(range_high("Negative: <20"), Some((20.0, false, None)));
        for s in [">20", "negative", "20", "a-19"] {
            assert_eq!(range_high(s), None, "{s:?}");
        }
    }

    #[test]
    fn anything_but_one_number_is_refused() {
        for s in [
            "", "abc", "1:320", "12-15", "3,98", "39,88", "1.2.3", "U/L 30", "3 4", ",988",
        ] {
            assert_eq!(read(s), None, "{s:?}");
        }
    }
}
