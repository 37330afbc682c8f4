//! inspect: injection and deserialization defence over the decoded path, query values,
//! configured headers, and every key and string of a JSON body (raw bodies are checked
//! for serialized-object markers).

use http::request::Parts;
use palisade_inspect::{Finding, Inspector, Source};

use crate::rejection::Rejection;

/// The body as the inspect stage sees it.
#[derive(Debug, Clone, Copy)]
pub enum InspectedBody<'a> {
    /// No body.
    None,
    /// A parsed JSON body.
    Json(&'a serde_json::Value),
    /// Any other body.
    Raw(&'a [u8]),
}

/// Refuses the request on the first finding; the location is named, the payload never.
pub fn inspect(
    inspector: &Inspector,
    parts: &Parts,
    body: InspectedBody<'_>,
) -> Result<(), Rejection> {
    let finding = inspector
        .inspect_target(parts.uri.path(), parts.uri.query())
        .or_else(|| inspector.inspect_headers(&parts.headers))
        .or_else(|| match body {
            InspectedBody::None => None,
            InspectedBody::Json(value) => inspector.inspect_json(value),
            InspectedBody::Raw(bytes) => inspector.inspect_raw_body(bytes),
        });
    match finding {
        None => Ok(()),
        Some(finding) => Err(rejection(&finding)),
    }
}

fn rejection(finding: &Finding) -> Rejection {
    let location = match finding.source {
        // Body findings are JSON Pointers into the body.
        Source::Body => format!("body{}", finding.location),
        _ => finding.location.clone(),
    };
    Rejection::InjectionDetected {
        code: finding.kind.code(),
        location,
        rule: finding.rule,
    }
}
