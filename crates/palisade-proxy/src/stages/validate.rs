//! validate: the request must be one the service's OpenAPI spec describes: a known route
//! and method, valid parameters, the declared content type, and a body within the size
//! limits that matches the operation's schema (unknown fields refused in strict mode).

use bytes::Bytes;
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use palisade_openapi::{
    ApiSpec, BodyExpectation, RequestValidator, RouteMatch, ValidatedRoute, Violation,
};

use crate::context::CountingBody;
use crate::rejection::Rejection;

impl From<Violation> for Rejection {
    fn from(v: Violation) -> Self {
        Rejection::SchemaViolation {
            code: v.code,
            status: v.status,
            field: v.pointer,
            rule: v.rule,
            message: v.message,
        }
    }
}

/// Checks route, method, parameters and content type (everything but the body).
pub fn validate_request<'v>(
    validator: &'v RequestValidator,
    parts: &Parts,
    has_body: bool,
) -> Result<ValidatedRoute<'v>, Rejection> {
    let route = validator.check_route(parts.method.as_str(), parts.uri.path())?;
    validator.check_parameters(&route, parts.uri.query(), &parts.headers)?;
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    validator.check_content_type(&route, content_type, has_body)?;
    Ok(route)
}

/// The `Allow` header a 405 must carry (RFC 9110 §15.5.6): the methods the route has.
pub fn allow_header(
    spec: &ApiSpec,
    method: &str,
    path: &str,
) -> Option<(http::HeaderName, http::HeaderValue)> {
    match spec.match_route(method, path) {
        RouteMatch::MethodNotAllowed { allowed, .. } => {
            http::HeaderValue::from_str(&allowed.join(", "))
                .ok()
                .map(|v| (http::header::ALLOW, v))
        }
        _ => None,
    }
}

/// Checks a buffered body against the operation's schema for its media type; returns the
/// parsed JSON when it is JSON (an operation may also accept non-JSON media types).
pub fn validate_body(
    validator: &RequestValidator,
    route: &ValidatedRoute<'_>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<serde_json::Value>, Rejection> {
    match validator.body_expectation_for(route, content_type) {
        BodyExpectation::Json { .. } if !body.is_empty() => {
            Ok(Some(validator.check_body_for(route, content_type, body)?))
        }
        _ => Ok(None),
    }
}

/// Reads a request body into memory, refusing it as soon as it passes `limit` bytes (a
/// declared `Content-Length` over the limit is refused before reading anything).
pub async fn read_body<B>(
    body: CountingBody<B>,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, Rejection>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Rejection::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::BodyTooLarge { limit })
        }
        Err(e) => Err(Rejection::BodyUnreadable {
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;

    use super::*;

    #[tokio::test]
    async fn reads_a_body_within_the_limit_and_counts_its_bytes() {
        let count = Arc::new(AtomicU64::new(0));
        let body = CountingBody::new(Full::new(Bytes::from_static(b"{\"a\":1}")), count.clone());
        let bytes = read_body(body, Some(7), 7).await.unwrap();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        assert_eq!(count.load(Ordering::Relaxed), 7);
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_limit_without_reading() {
        let count = Arc::new(AtomicU64::new(0));
        let body = CountingBody::new(Full::new(Bytes::from_static(b"0123456789")), count.clone());
        let err = read_body(body, Some(10), 4).await.unwrap_err();
        assert_eq!(err.code(), "palisade.schema.body_too_large");
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn refuses_an_undeclared_body_once_it_passes_the_limit() {
        let count = Arc::new(AtomicU64::new(0));
        let body = CountingBody::new(Full::new(Bytes::from_static(b"0123456789")), count);
        let err = read_body(body, None, 4).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
