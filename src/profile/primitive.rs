//! FHIR R4 primitive formats (the regexes of the spec's datatypes page,
//! written out by hand): JSON type first, then the lexical form.

use serde_json::Value;

use crate::domain::FhirDate;

/// True when `code` names a primitive type.
pub fn is_primitive(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Checks `v` against primitive type `code`; the error says what is wrong (never the value).
pub fn check(code: &str, v: &Value) -> Result<(), String> {
    match code {
        "boolean" => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| "expected true or false".into()),
        "integer" => int(v, i64::from(i32::MIN)),
        "unsignedInt" => int(v, 0),
        "positiveInt" => int(v, 1),
        "decimal" => v
            .is_number()
            .then_some(())
            .ok_or_else(|| "expected a JSON number".into()),
        _ => {
            let s = v.as_str().ok_or_else(|| format!("expected a JSON string ({code})"))?;
            text(code, s)
        }
    }
}

fn int(v: &Value, min: i64) -> Result<(), String> {
    match v.as_i64() {
        Some(i) if i >= min && i <= i64::from(i32::MAX) => Ok(()),
        Some(_) => Err(format!("integer out of range (minimum {min})")),
        None => Err("expected a JSON integer".into()),
    }
}

fn text(code: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty string (FHIR strings have at least one character)".into());
    }
    match code {
        "id" => {
            let ok = s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            ok.then_some(())
                .ok_or_else(|| "not a FHIR id ([A-Za-z0-9-.]{1,64})".into())
        }
        "code" => {
            let ok = s.trim() == s && !s.contains("  ") && !s.contains(['\t', '\n', '\r']);
            ok.then_some(())
                .ok_or_else(|| "not a FHIR code (no leading, trailing or double whitespace)".into())
        }
        "uri" | "url" | "canonical" | "oid" | "uuid" => {
            let ok = !s.chars().any(char::is_whitespace);
            ok.then_some(())
                .ok_or_else(|| format!("not a FHIR {code} (whitespace)"))
        }
        "date" => date(s, false),
        "dateTime" => date(s, true),
        "instant" => {
            let full = s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T');
            if !full {
                return Err("not a FHIR instant (YYYY-MM-DDThh:mm:ss with a zone)".into());
            }
            date(s, true)
        }
        "time" => {
            let parts: Vec<&str> = s.split(':').collect();
            let ok = parts.len() == 3
                && parts[..2]
                    .iter()
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
            ok.then_some(()).ok_or_else(|| "not a FHIR time (hh:mm:ss)".into())
        }
        _ => Ok(()),
    }
}

fn date(s: &str, time_allowed: bool) -> Result<(), String> {
    if s.contains('T') {
        if !time_allowed {
            return Err("not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD; no time)".into());
        }
        let zone = &s[s.find('T').unwrap_or(0)..];
        if !(zone.ends_with('Z') || zone.contains('+') || zone.contains('-')) {
            return Err("a dateTime with a time needs a time zone".into());
        }
    }
    FhirDate::parse(s).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_follow_the_spec() {
        assert!(check("date", &json!("2019-03")).is_ok());
        assert!(check("date", &json!("2019-02-30")).is_err());
        assert!(check("date", &json!("2019-03-01T10:00:00Z")).is_err());
        assert!(check("dateTime", &json!("2019-03-01T10:00:00+01:00")).is_ok());
        assert!(check("dateTime", &json!("2019-03-01T10:00:00")).is_err());
        assert!(check("id", &json!("a_b")).is_err());
        assert!(check("code", &json!(" x")).is_err());
        assert!(check("decimal", &json!("1.0")).is_err());
        assert!(check("positiveInt", &json!(0)).is_err());
        assert!(check("boolean", &json!("true")).is_err());
        assert!(check("string", &json!("")).is_err());
    }
}
