//! FHIR references: relative (`Patient/1`), absolute (`https://…/Patient/1`),
//! versioned (`…/_history/2`), contained (`#med1`) and `urn:uuid:` ones that
//! only a Bundle's fullUrl resolves.

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    /// `Type/id`.
    Typed {
        /// The resource type.
        resource_type: String,
        /// The logical id.
        id: String,
    },
    /// `#id`: a contained resource.
    Contained(String),
    /// Anything else (`urn:uuid:…`, a logical identifier URL): resolved through Bundle fullUrls.
    Opaque(String),
}

/// Parses `reference`.
pub fn parse(reference: &str) -> Ref {
    let r = reference.trim();
    if let Some(id) = r.strip_prefix('#') {
        return Ref::Contained(id.to_string());
    }
    let path = r.split(['?']).next().unwrap_or(r);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let hist = segments.iter().rposition(|s| *s == "_history");
    let segments = match hist {
        Some(i) => &segments[..i],
        None => &segments[..],
    };
    match segments {
        [.., t, id] if is_type(t) && !id.is_empty() => Ref::Typed {
            resource_type: t.to_string(),
            id: id.to_string(),
        },
        _ => Ref::Opaque(r.to_string()),
    }
}

fn is_type(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// The `Type/id` a Bundle entry's fullUrl names, if it names one.
pub fn full_url_target(full_url: &str) -> Option<(String, String)> {
    match parse(full_url) {
        Ref::Typed { resource_type, id } => Some((resource_type, id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: &str, id: &str) -> Ref {
        Ref::Typed {
            resource_type: t.into(),
            id: id.into(),
        }
    }

    #[test]
    fn reads_the_shapes_servers_send() {
        assert_eq!(parse("Patient/123"), typed("Patient", "123"));
        assert_eq!(
            parse("https://ehr.example.org/fhir/R4/Patient/eAbc3"),
            typed("Patient", "eAbc3")
        );
        assert_eq!(parse("Patient/1/_history/4"), typed("Patient", "1"));
        assert_eq!(parse("#med1"), Ref::Contained("med1".into()));
        assert_eq!(parse("urn:uuid:0b4f"), Ref::Opaque("urn:uuid:0b4f".into()));
    }
}
