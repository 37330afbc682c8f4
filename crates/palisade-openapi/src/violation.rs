//! Why a request was refused, and turning schema errors into that.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::dialect::escape;

/// Why a request does not conform to the spec.
///
/// `code` is stable (`palisade.schema.<reason>`, one of the associated
/// constants) and `status` is the HTTP status to answer with. `pointer` says
/// where: a JSON Pointer into the body (`/items/2/colour`; `""` is the whole
/// body), or `query/<name>`, `path/<name>`, `header/<name>` or
/// `cookie/<name>` for a parameter. `rule` is the rule broken: the JSON
/// Schema keyword (`type`, `required`, `unevaluatedProperties`, `readOnly`...)
/// or a word of this crate's (`duplicate`, `encoding`, `depth`...).
///
/// No field ever contains a value taken from the request other than the
/// names in `pointer`: values may be secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Violation {
    /// The stable error code, e.g. `palisade.schema.unknown_field`.
    pub code: &'static str,
    /// The HTTP status: 400, 404, 405, 413 or 415.
    pub status: u16,
    /// Where the problem is (see the type's documentation).
    pub pointer: Option<String>,
    /// The rule broken (see the type's documentation).
    pub rule: Option<String>,
    /// A human-readable sentence, without values from the request.
    pub message: String,
}

impl Violation {
    /// 404: no path template of the spec matches the path.
    pub const UNKNOWN_ROUTE: &'static str = "palisade.schema.unknown_route";
    /// 405: a template matches but has no operation for the method.
    pub const METHOD_NOT_ALLOWED: &'static str = "palisade.schema.method_not_allowed";
    /// 400: a path, query, header or cookie parameter is missing or breaks its schema.
    pub const INVALID_PARAMETER: &'static str = "palisade.schema.invalid_parameter";
    /// 400: a query parameter the operation does not declare (strict mode).
    pub const UNKNOWN_PARAMETER: &'static str = "palisade.schema.unknown_parameter";
    /// 415: the Content-Type is missing or not one the operation accepts.
    pub const UNSUPPORTED_MEDIA_TYPE: &'static str = "palisade.schema.unsupported_media_type";
    /// 400: the operation requires a body and there is none.
    pub const MISSING_BODY: &'static str = "palisade.schema.missing_body";
    /// 400: a body was sent to an operation that has no `requestBody`.
    pub const UNEXPECTED_BODY: &'static str = "palisade.schema.unexpected_body";
    /// 413: the body is larger than `max_body_bytes`.
    pub const BODY_TOO_LARGE: &'static str = "palisade.schema.body_too_large";
    /// 400: the body nests arrays and objects deeper than `max_depth`.
    pub const TOO_DEEP: &'static str = "palisade.schema.too_deep";
    /// 400: an object has more than `max_object_keys` keys or an array more
    /// than `max_array_items` items.
    pub const TOO_LARGE: &'static str = "palisade.schema.too_large";
    /// 400: the body is not JSON (or has an object with a duplicate key).
    pub const MALFORMED_JSON: &'static str = "palisade.schema.malformed_json";
    /// 400: a field the schema does not define (`additionalProperties` or,
    /// in strict mode, `unevaluatedProperties`).
    pub const UNKNOWN_FIELD: &'static str = "palisade.schema.unknown_field";
    /// 400: the body breaks its schema in any other way.
    pub const INVALID_BODY: &'static str = "palisade.schema.invalid_body";

    pub(crate) fn new(
        code: &'static str,
        status: u16,
        pointer: Option<String>,
        rule: Option<&str>,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            code,
            status,
            pointer,
            rule: rule.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The 413 the proxy answers when a body exceeds `limit` bytes while it
    /// is streamed in (also returned by `check_body` for an oversized buffer).
    pub fn body_too_large(limit: usize) -> Violation {
        Violation::new(
            Violation::BODY_TOO_LARGE,
            413,
            None,
            Some("maxBodyBytes"),
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }
}

/// The error to report for an instance the validator refuses, or `None` if
/// it is valid.
///
/// An `unevaluatedProperties` failure is reported only when nothing else
/// failed: when a part of an `allOf` fails, the members it declares count
/// as unevaluated, so the real cause is the other error. Likewise, when a
/// nested object has an unknown field, the enclosing object's
/// `unevaluatedProperties` lists the nested one too: the deepest failure is
/// the one reported. Inside a failed `anyOf`/`oneOf`, the branch that got
/// furthest into the instance is reported, when one did.
pub(crate) fn first_error<'a>(
    validator: &'a Validator,
    instance: &'a Value,
) -> Option<ValidationError<'a>> {
    if validator.is_valid(instance) {
        return None;
    }
    pick(validator.iter_errors(instance).collect())
}

fn pick(errors: Vec<ValidationError<'_>>) -> Option<ValidationError<'_>> {
    let at = match errors.iter().position(|e| !is_unevaluated(e)) {
        Some(at) => at,
        None => {
            let depth = |e: &ValidationError<'_>| e.instance_path().segments().count();
            let deepest = errors.iter().map(depth).max().unwrap_or_default();
            errors
                .iter()
                .position(|e| depth(e) == deepest)
                .unwrap_or_default()
        }
    };
    errors.into_iter().nth(at)
}

fn is_unevaluated(error: &ValidationError<'_>) -> bool {
    matches!(
        error.kind(),
        ValidationErrorKind::UnevaluatedProperties { .. }
    )
}

/// For a failed `anyOf`/`oneOf`, the error of the branch that got deepest
/// into the instance when exactly one did (a branch refusing the value's
/// type counting as less far along); otherwise the error itself.
fn innermost<'e>(error: &'e ValidationError<'e>) -> &'e ValidationError<'e> {
    let (ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }) =
        error.kind()
    else {
        return error;
    };
    let primaries: Vec<&ValidationError<'static>> = context
        .iter()
        .filter_map(|branch| {
            branch
                .iter()
                .find(|e| !is_unevaluated(e))
                .or_else(|| branch.first())
        })
        .collect();
    let depth = |e: &ValidationError<'_>| e.instance_path().segments().count();
    let deepest = primaries.iter().map(|e| depth(e)).max().unwrap_or_default();
    let mut candidates: Vec<_> = primaries
        .into_iter()
        .filter(|e| depth(e) == deepest)
        .collect();
    if candidates.len() > 1 {
        candidates.retain(|e| !matches!(e.kind(), ValidationErrorKind::Type { .. }));
    }
    match candidates.as_slice() {
        [only] => innermost(only),
        _ => error,
    }
}

/// Where a failed schema check is reported.
pub(crate) enum Subject<'a> {
    /// The body; pointers are JSON Pointers into it.
    Body,
    /// A parameter: `query/limit`, `header/X-Request-Id`...
    Parameter(&'a str),
}

/// The violation for a schema error.
pub(crate) fn from_schema_error(error: &ValidationError<'_>, subject: &Subject<'_>) -> Violation {
    let error = innermost(error);
    let path = error.instance_path().as_str();
    let kind = error.kind();
    let rule = kind.keyword();
    let (code, pointer, what) = match kind {
        ValidationErrorKind::UnevaluatedProperties { unexpected }
        | ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().map(String::as_str).unwrap_or_default();
            (
                Violation::UNKNOWN_FIELD,
                format!("{path}/{}", escape(name)),
                "the field is not defined by the schema".to_owned(),
            )
        }
        ValidationErrorKind::Required { property } => (
            Violation::INVALID_BODY,
            path.to_owned(),
            match property {
                Value::String(name) => format!("the required property `{name}` is missing"),
                other => format!("the required property {other} is missing"),
            },
        ),
        ValidationErrorKind::Custom { keyword, .. } if keyword == "readOnly" => (
            Violation::INVALID_BODY,
            path.to_owned(),
            "the property is read-only and must not be sent".to_owned(),
        ),
        ValidationErrorKind::PropertyNames { error } => (
            Violation::INVALID_BODY,
            path.to_owned(),
            format!(
                "a property name is invalid: {}",
                error.masked_with("the name")
            ),
        ),
        ValidationErrorKind::FalseSchema => (
            Violation::INVALID_BODY,
            path.to_owned(),
            "no value is allowed here".to_owned(),
        ),
        _ => (
            Violation::INVALID_BODY,
            path.to_owned(),
            error.masked_with("the value").to_string(),
        ),
    };
    match subject {
        Subject::Body => {
            let place = if pointer.is_empty() {
                "the body".to_owned()
            } else {
                format!("`{pointer}`")
            };
            Violation::new(
                code,
                400,
                Some(pointer),
                Some(rule),
                format!("{place}: {what}"),
            )
        }
        Subject::Parameter(name) => {
            let item = if pointer.is_empty() {
                String::new()
            } else {
                format!(" (at {pointer})")
            };
            Violation::new(
                Violation::INVALID_PARAMETER,
                400,
                Some((*name).to_owned()),
                Some(rule),
                format!("parameter {name}{item}: {what}"),
            )
        }
    }
}
