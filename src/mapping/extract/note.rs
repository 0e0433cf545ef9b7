//! DocumentReference → findings from its text: a clinic note (or an EMG,
//! biopsy or MRI report filed as a document) whose `type` or `category` a
//! text rule's source kind matches; each `content[i].attachment` is read
//! (`attachment.rs`). A note of a kind no text rule reads gives nothing (the
//! peek cannot see a note's type, so it keeps every DocumentReference when
//! text rules read notes).

use super::text::{self, Body, Doc};
use super::{attachment, Ctx, Prim};
use crate::fhir::model::resources::DocumentReference;
use crate::mapping::text::DocResource;

/// Reads a DocumentReference.
pub fn read(d: &DocumentReference, ctx: &mut Ctx<'_>) {
    if ctx.excluded("DocumentReference", d.status.value.as_deref(), || {
        "DocumentReference.status".into()
    }) {
        return;
    }
    let mut kinds: Vec<_> = d.r#type.as_deref().into_iter().collect();
    kinds.extend(d.category.iter());
    let probe = Doc {
        resource: DocResource::Note,
        kinds,
        date: None,
    };
    if text::applicable(ctx.m, &probe).is_empty() {
        return;
    }
    ctx.subject(d.subject.as_deref(), "DocumentReference.subject");
    if ctx.out.subject.is_none() {
        return;
    }
    let period = d.context.as_ref().and_then(|c| c.period.as_ref());
    let date = match d.date.v() {
        Some(v) => ctx.date(Some(v), "DocumentReference.date"),
        None => ctx.date(
            period.and_then(|p| p.start.v()),
            "DocumentReference.context.period.start",
        ),
    };
    let doc = Doc { date, ..probe };
    let mut bodies: Vec<Body> = Vec::new();
    for (i, c) in d.content.iter().enumerate() {
        let path = format!("DocumentReference.content[{i}].attachment");
        bodies.extend(attachment::body(ctx, &c.attachment, path));
    }
    text::read(ctx, &doc, &bodies);
}
