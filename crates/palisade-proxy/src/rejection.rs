//! Why a request was refused, and how that looks on the wire (RFC 9457 problem+json).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// A refusal by one pipeline stage. Each variant is a fact about the request, knows its
/// stable code and HTTP status, and becomes a problem+json body through [`problem_body`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The connection carried no verified caller identity.
    #[error("the caller presented no verified identity")]
    CallerUnidentified,
    /// The presented access token was refused (RFC 6750 `invalid_token`).
    #[error("{0}")]
    InvalidToken(palisade_token::TokenRejection),
    /// The sidecar has no token signing keys yet (the control plane was never reached),
    /// so it cannot judge any token.
    #[error("the token signing keys are not available yet; tokens cannot be verified")]
    TokenKeysUnavailable,
    /// The caller's SVID was revoked after its connection was opened.
    #[error("{caller} has been revoked by the control plane")]
    CallerRevoked {
        /// The caller's SPIFFE ID.
        caller: String,
    },
    /// The policy set denied the call (including by default).
    #[error("{reason}")]
    Denied {
        /// `palisade.authz.*`.
        code: &'static str,
        /// Why, in words.
        reason: String,
        /// Policies that decided (forbids), if any.
        policies: Vec<String>,
    },
    /// No valid policy set has been loaded: everything is denied.
    #[error("{reason}")]
    PolicyUnavailable {
        /// Why, in words.
        reason: String,
    },
    /// The local application did not answer.
    #[error("upstream {addr} is unavailable: {detail}")]
    UpstreamUnavailable {
        /// The upstream address.
        addr: String,
        /// The connection error.
        detail: String,
    },
    /// The local application took too long to answer.
    #[error("upstream {addr} did not answer within {seconds} s")]
    UpstreamTimeout {
        /// The upstream address.
        addr: String,
        /// The timeout.
        seconds: u64,
    },
    /// This workload's own SVID has expired and no renewal succeeded yet.
    #[error("this workload's SVID expired at {expired_at}; calls are refused until it is renewed")]
    OwnIdentityExpired {
        /// When it expired.
        expired_at: time::OffsetDateTime,
    },
    /// The caller spent its rate-limit budget.
    #[error("{caller} exceeded its rate limit; retry after {retry_after_secs} s")]
    RateLimited {
        /// The caller's SPIFFE ID (limits are per identity, not per address).
        caller: String,
        /// Seconds until a request would be admitted.
        retry_after_secs: u64,
    },
    /// The shared rate-limit backend is down and the service is configured to fail closed.
    #[error("the shared rate-limit backend is unavailable and this service fails closed")]
    RateLimitUnavailable,
    /// The request does not match the service's OpenAPI spec.
    #[error("{message}")]
    SchemaViolation {
        /// `palisade.schema.*`.
        code: &'static str,
        /// The HTTP status the validator chose (400, 404, 405, 415).
        status: u16,
        /// JSON Pointer (body) or `query/<name>`-style location of the problem.
        field: Option<String>,
        /// The schema rule broken (`required`, `unevaluatedProperties`, ...).
        rule: Option<String>,
        /// What is wrong, without the offending value.
        message: String,
    },
    /// The body is larger than the service accepts.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read (the client aborted, or sent malformed framing).
    #[error("request body could not be read: {detail}")]
    BodyUnreadable {
        /// The I/O or protocol error.
        detail: String,
    },
    /// An injection or serialized-object payload was found.
    #[error(
        "{} payload detected in {location} (rule {rule})",
        injection_name(code)
    )]
    InjectionDetected {
        /// `palisade.injection.*`.
        code: &'static str,
        /// Where: `path`, `query/<name>`, `header/<name>` or `body<JSON Pointer>`.
        location: String,
        /// The detector rule that matched (never the payload).
        rule: &'static str,
    },
    /// The audit writer is gone, so the request cannot be recorded and is refused.
    #[error("the audit log is unavailable; requests are refused until it is back")]
    AuditUnavailable,
    /// An outbound request named no target service.
    #[error("the request has no Host header naming a target service")]
    MissingTarget,
    /// An outbound request named a service that is not configured.
    #[error("no service named {host:?} is configured")]
    UnknownTarget {
        /// The Host header as received.
        host: String,
    },
    /// The target's sidecar failed the mTLS handshake: wrong identity, untrusted, expired.
    #[error("refused to talk to {service}: {detail}")]
    TargetRejected {
        /// The identity code (`palisade.identity.server_mismatch`, ...).
        code: &'static str,
        /// The target service.
        service: String,
        /// What was wrong.
        detail: String,
    },
}

impl Rejection {
    /// The stable `palisade.*` code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::CallerUnidentified => "palisade.identity.missing",
            Rejection::CallerRevoked { .. } => "palisade.identity.revoked",
            Rejection::InvalidToken(rejection) => rejection.code(),
            Rejection::TokenKeysUnavailable => "palisade.token.keys_unavailable",
            Rejection::Denied { code, .. } => code,
            Rejection::PolicyUnavailable { .. } => "palisade.policy.unavailable",
            Rejection::UpstreamUnavailable { .. } => "palisade.upstream.unavailable",
            Rejection::UpstreamTimeout { .. } => "palisade.upstream.timeout",
            Rejection::OwnIdentityExpired { .. } => "palisade.identity.expired",
            Rejection::RateLimited { .. } => "palisade.ratelimit.exceeded",
            Rejection::RateLimitUnavailable => "palisade.ratelimit.unavailable",
            Rejection::SchemaViolation { code, .. } => code,
            Rejection::BodyTooLarge { .. } => "palisade.schema.body_too_large",
            Rejection::BodyUnreadable { .. } => "palisade.request.body_unreadable",
            Rejection::InjectionDetected { code, .. } => code,
            Rejection::AuditUnavailable => "palisade.audit.unavailable",
            Rejection::MissingTarget => "palisade.outbound.missing_target",
            Rejection::UnknownTarget { .. } => "palisade.outbound.unknown_service",
            Rejection::TargetRejected { code, .. } => code,
        }
    }

    /// The HTTP status the caller sees.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::CallerUnidentified | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::CallerRevoked { .. } => StatusCode::FORBIDDEN,
            Rejection::Denied { .. } => StatusCode::FORBIDDEN,
            // Fail closed, but say it is the proxy's state, not the caller's fault.
            Rejection::PolicyUnavailable { .. }
            | Rejection::AuditUnavailable
            | Rejection::RateLimitUnavailable
            | Rejection::TokenKeysUnavailable
            | Rejection::OwnIdentityExpired { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::SchemaViolation { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Rejection::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyUnreadable { .. } | Rejection::InjectionDetected { .. } => {
                StatusCode::BAD_REQUEST
            }
            Rejection::UpstreamUnavailable { .. } | Rejection::TargetRejected { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Rejection::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Rejection::MissingTarget | Rejection::UnknownTarget { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// A short, fixed summary (RFC 9457 `title`).
    pub fn title(&self) -> &'static str {
        match self {
            Rejection::CallerUnidentified => "Caller not identified",
            Rejection::CallerRevoked { .. } => "Caller revoked",
            Rejection::InvalidToken(_) => "Invalid access token",
            Rejection::TokenKeysUnavailable => "Token verification unavailable",
            Rejection::Denied { .. } => "Forbidden by policy",
            Rejection::PolicyUnavailable { .. } => "Policy unavailable",
            Rejection::UpstreamUnavailable { .. } => "Upstream unavailable",
            Rejection::UpstreamTimeout { .. } => "Upstream timeout",
            Rejection::OwnIdentityExpired { .. } => "Workload identity expired",
            Rejection::RateLimited { .. } => "Rate limit exceeded",
            Rejection::RateLimitUnavailable => "Rate limiting unavailable",
            Rejection::SchemaViolation { .. } => "Request does not match the API specification",
            Rejection::BodyTooLarge { .. } => "Request body too large",
            Rejection::BodyUnreadable { .. } => "Request body unreadable",
            Rejection::InjectionDetected { .. } => "Malicious payload detected",
            Rejection::AuditUnavailable => "Audit unavailable",
            Rejection::MissingTarget => "Missing target service",
            Rejection::UnknownTarget { .. } => "Unknown target service",
            Rejection::TargetRejected { .. } => "Target service identity rejected",
        }
    }

    /// Where in the request the problem is (RFC 9457 extension `field`), if somewhere.
    pub fn field(&self) -> Option<&str> {
        match self {
            Rejection::SchemaViolation { field, .. } => field.as_deref(),
            Rejection::InjectionDetected { location, .. } => Some(location),
            _ => None,
        }
    }

    /// The audit form of this refusal as a guard finding: `"<code>@<location>"`.
    pub fn finding(&self) -> String {
        format!("{}@{}", self.code(), self.field().unwrap_or("request"))
    }

    /// Policy ids that decided, for the body and the audit record.
    pub fn policies(&self) -> &[String] {
        match self {
            Rejection::Denied { policies, .. } => policies,
            _ => &[],
        }
    }
}

fn injection_name(code: &str) -> &str {
    match code {
        "palisade.injection.sql" => "SQL injection",
        "palisade.injection.command" => "OS command injection",
        "palisade.injection.path_traversal" => "path traversal",
        "palisade.injection.nosql" => "NoSQL operator injection",
        "palisade.injection.deserialization" => "serialized object",
        _ => "injection",
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    policies: &'a [String],
}

/// `type` URI of a problem: a URN per code, documented in docs/ERRORS.md.
pub fn problem_type(code: &str) -> String {
    format!("urn:{}", code.replacen('.', ":", 1))
}

/// Renders a rejection as an `application/problem+json` response.
pub fn problem_body(rejection: &Rejection, request_id: &str) -> Response<Bytes> {
    // Retry-After and the RateLimit headers of a 429 come with the limiter's decision.
    let mut response = render_problem(
        rejection.status(),
        rejection.title(),
        rejection.code(),
        &rejection.to_string(),
        request_id,
        rejection.field(),
        rejection.policies(),
    );
    if let Rejection::InvalidToken(refused) = rejection {
        // RFC 6750 §3: the challenge names the error; the description is a quoted-string.
        let description: String = refused
            .to_string()
            .chars()
            .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
            .collect();
        let challenge =
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// The challenge a token-accepting service sends with a 401 for a request that carried
/// no credentials at all (RFC 6750 §3: no error code then).
pub fn bearer_challenge(service: &str) -> (http::HeaderName, HeaderValue) {
    let realm: String = service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let value = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    (header::WWW_AUTHENTICATE, value)
}

/// Renders any problem (also used for refusals outside the pipeline, such as plaintext).
pub fn render_problem(
    status: StatusCode,
    title: &str,
    code: &str,
    detail: &str,
    request_id: &str,
    field: Option<&str>,
    policies: &[String],
) -> Response<Bytes> {
    let problem = Problem {
        kind: problem_type(code),
        title,
        status: status.as_u16(),
        detail: detail.to_owned(),
        code,
        request_id,
        field,
        policies,
    };
    // Serializing a struct of strings cannot fail; fall back to an empty object regardless.
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(crate::context::REQUEST_ID_HEADER, id);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_rfc9457_fields_with_code_and_policies() {
        let rejection = Rejection::Denied {
            code: "palisade.authz.denied",
            reason: "forbidden by policy no-deletes".into(),
            policies: vec!["no-deletes".into()],
        };
        let response = problem_body(&rejection, "req-1");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["type"], "urn:palisade:authz.denied");
        assert_eq!(body["status"], 403);
        assert_eq!(body["code"], "palisade.authz.denied");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["policies"][0], "no-deletes");
        assert_eq!(body["detail"], "forbidden by policy no-deletes");
    }

    #[test]
    fn omits_policies_when_none_decided() {
        let response = problem_body(&Rejection::MissingTarget, "r");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert!(body.get("policies").is_none());
        assert_eq!(body["status"], 400);
    }
}
