//! Numbers sent as text: what interface engines put in `valueString` for a
//! numeric result ("3988", "3,988", "3988 U/L", ">13000", "<20 CU"). Read into
//! a value, a comparator and the unit text that followed, or nothing when the
//! text is not one number (then the caller reports it).

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
    fn anything_but_one_number_is_refused() {
        for s in [
            "", "abc", "1:320", "12-15", "3,98", "39,88", "1.2.3", "U/L 30", "3 4", ",988",
        ] {
            assert_eq!(read(s), None, "{s:?}");
        }
    }
}
