//! The text of an Attachment: `text/plain` as is, `text/html` with its tags
//! stripped (block tags become line breaks, entities decoded, scripts and
//! styles dropped), from base64 `data`. An attachment that only has a `url`
//! was not fetched (`imnm sync` fetches Binary URLs on the server's origin
//! into `data`); any other content type is refused, not guessed. Errors
//! name what is wrong, never the content.

use base64::Engine;

use super::text::Body;
use super::{Ctx, Prim};
use crate::fhir::model::types::Attachment;
use crate::report::{IssueCode, Severity};

/// The attachment at `path` as a body to read; an issue when it cannot be.
pub fn body(ctx: &mut Ctx<'_>, a: &Attachment, path: String) -> Option<Body> {
    match text(a) {
        Ok((text, how)) => Some(Body { path, how, text }),
        Err(e) => {
            ctx.issue(Severity::Warning, IssueCode::UnreadAttachment, path, e.message());
            None
        }
    }
}

/// Why an attachment gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// A content type other than text/plain or text/html (or none).
    ContentType(String),
    /// Only a `url`: not fetched.
    NotFetched,
    /// Neither `data` nor `url`.
    Empty,
    /// `data` is not base64, or not UTF-8 text.
    Undecodable(&'static str),
}

impl Unread {
    /// The issue message.
    pub fn message(&self) -> String {
        match self {
            Unread::ContentType(t) => format!(
                "attachment of content type {t:?} not read (text/plain and text/html are); no finding taken from it"
            ),
            Unread::NotFetched => {
                "attachment given by url only, not fetched (imnm sync fetches Binary urls on the server's origin); not read".into()
            }
            Unread::Empty => "attachment without data or url; not read".into(),
            Unread::Undecodable(why) => format!("attachment data {why}; not read"),
        }
    }
}

/// The attachment's text, and how it was read (`text/plain` or `text/html`).
pub fn text(a: &Attachment) -> Result<(String, &'static str), Unread> {
    let ct = a.content_type.v().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let html = match mime.as_str() {
        "text/plain" => false,
        "text/html" => true,
        _ => return Err(Unread::ContentType(if ct.is_empty() { "(none)".into() } else { mime })),
    };
    let Some(data) = a.data.v() else {
        return Err(if a.url.v().is_some() {
            Unread::NotFetched
        } else {
            Unread::Empty
        });
    };
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| Unread::Undecodable("is not base64"))?;
    let raw = String::from_utf8(bytes).map_err(|_| Unread::Undecodable("is not UTF-8 text"))?;
    Ok(if html {
        (strip_html(&raw), "text/html")
    } else {
        (raw, "text/plain")
    })
}

/// Tags that end a line of text.
const BLOCK: &[&str] = &[
    "br", "p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "hr",
];

/// HTML as text: tags removed (block tags as line breaks), `script` and
/// `style` contents dropped, entities decoded.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<String> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        let after = &rest[lt + 1..];
        let Some(gt) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = after[..gt].trim().trim_start_matches('/').to_ascii_lowercase();
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let closing = after.starts_with('/');
        match &skip_until {
            Some(end) if closing && &name == end => skip_until = None,
            Some(_) => {}
            None if !closing && (name == "script" || name == "style") => skip_until = Some(name.clone()),
            None if BLOCK.contains(&name.as_str()) => out.push('\n'),
            None => out.push(' '),
        }
        rest = &after[gt + 1..];
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        match end.and_then(|e| entity(&after[..e]).map(|c| (c, e))) {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::model::types::{Base64Binary, Code, Url};

    fn att(ct: Option<&str>, data: Option<&[u8]>, url: Option<&str>) -> Attachment {
        Attachment {
            content_type: ct.map(|c| Code {
                value: Some(c.into()),
                ..Default::default()
            }),
            data: data.map(|d| Base64Binary {
                value: Some(base64::engine::general_purpose::STANDARD.encode(d)),
                ..Default::default()
            }),
            url: url.map(|u| Url {
                value: Some(u.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_plain_and_html_and_refuses_the_rest() {
        let plain = att(Some("text/plain; charset=utf-8"), Some(b"No rash."), None);
        assert_eq!(text(&plain).unwrap(), ("No rash.".to_string(), "text/plain"));
        let html = b"<html><style>p{}</style><p>Gottron&#39;s papules</p><p>No&nbsp;edema &amp; no fat</p></html>";
        let (t, how) = text(&att(Some("text/html"), Some(html), None)).unwrap();
        assert_eq!((t.trim(), how), ("Gottron's papules\n\nNo edema & no fat", "text/html"));
        let pdf = att(Some("application/pdf"), Some(b"%PDF"), None);
        assert_eq!(text(&pdf).unwrap_err(), Unread::ContentType("application/pdf".into()));
        let url = att(Some("text/plain"), None, Some("Binary/1"));
        assert_eq!(text(&url).unwrap_err(), Unread::NotFetched);
        assert_eq!(
            text(&att(None, Some(b"x"), None)).unwrap_err(),
            Unread::ContentType("(none)".into())
        );
        let bad = att(Some("text/plain"), Some(&[0xff, 0xfe]), None);
        assert_eq!(text(&bad).unwrap_err(), Unread::Undecodable("is not UTF-8 text"));
    }
}
