//! Why the control plane refused a request, and how that looks on the wire
//! (RFC 9457 problem+json, the same shape as the sidecar's).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// Every reason the control plane refuses a request. Each knows its stable code
/// (`palisade.control.<reason>`, listed in docs/ERRORS.md), HTTP status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The body is not the JSON the endpoint expects.
    BadRequest,
    /// A POST without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The body exceeds the limit.
    BodyTooLarge,
    /// No such endpoint.
    NotFound,
    /// The endpoint exists, the method does not.
    MethodNotAllowed,
    /// The join token is not known (never issued, or mistyped).
    UnknownToken,
    /// The join token's validity has ended.
    TokenExpired,
    /// The join token was already redeemed.
    TokenUsed,
    /// The CSR is not valid PEM/DER, its signature does not verify, or its key type is
    /// not supported.
    InvalidCsr,
    /// The CSR does not name exactly one URI SAN equal to the identity the request may
    /// obtain (the token's, or the client certificate's for a renewal).
    IdentityMismatch,
    /// `/v1/renew` without a client certificate.
    ClientCertRequired,
    /// The client certificate expired while its connection stayed open.
    SvidExpired,
    /// The SPIFFE ID or the presented SVID's serial is revoked.
    Revoked,
    /// The audit log is unavailable: nothing is issued that cannot be recorded.
    AuditUnavailable,
    /// The control plane itself failed (state database, signing).
    Internal,
}

impl Reason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::BadRequest => "palisade.control.bad_request",
            Reason::UnsupportedMediaType => "palisade.control.unsupported_media_type",
            Reason::BodyTooLarge => "palisade.control.body_too_large",
            Reason::NotFound => "palisade.control.not_found",
            Reason::MethodNotAllowed => "palisade.control.method_not_allowed",
            Reason::UnknownToken => "palisade.control.unknown_token",
            Reason::TokenExpired => "palisade.control.token_expired",
            Reason::TokenUsed => "palisade.control.token_used",
            Reason::InvalidCsr => "palisade.control.invalid_csr",
            Reason::IdentityMismatch => "palisade.control.identity_mismatch",
            Reason::ClientCertRequired => "palisade.control.client_cert_required",
            Reason::SvidExpired => "palisade.control.svid_expired",
            Reason::Revoked => "palisade.control.revoked",
            // The sidecar's code: same condition, same meaning.
            Reason::AuditUnavailable => "palisade.audit.unavailable",
            Reason::Internal => "palisade.control.internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Reason::BadRequest | Reason::InvalidCsr => StatusCode::BAD_REQUEST,
            Reason::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::NotFound => StatusCode::NOT_FOUND,
            Reason::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::ClientCertRequired | Reason::SvidExpired => StatusCode::UNAUTHORIZED,
            Reason::UnknownToken
            | Reason::TokenExpired
            | Reason::TokenUsed
            | Reason::IdentityMismatch
            | Reason::Revoked => StatusCode::FORBIDDEN,
            Reason::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed summary (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            Reason::BadRequest => "Malformed request",
            Reason::UnsupportedMediaType => "Unsupported media type",
            Reason::BodyTooLarge => "Request body too large",
            Reason::NotFound => "Not found",
            Reason::MethodNotAllowed => "Method not allowed",
            Reason::UnknownToken => "Unknown join token",
            Reason::TokenExpired => "Join token expired",
            Reason::TokenUsed => "Join token already used",
            Reason::InvalidCsr => "Invalid certificate signing request",
            Reason::IdentityMismatch => "Identity mismatch",
            Reason::ClientCertRequired => "Client certificate required",
            Reason::SvidExpired => "Client certificate expired",
            Reason::Revoked => "Revoked",
            Reason::AuditUnavailable => "Audit unavailable",
            Reason::Internal => "Control plane error",
        }
    }
}

/// A refusal: the reason and a detail for humans (never a token, key or CSR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// What exactly, in words.
    pub detail: String,
}

impl Refusal {
    /// A refusal for `reason`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// The RFC 9457 body the control plane sends (and the client reads).
#[derive(Debug, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:palisade:control.<reason>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Fixed summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
    /// The stable code.
    pub code: String,
    /// The request id (also in `x-request-id` and the audit record).
    pub request_id: String,
}

/// Renders a refusal as an `application/problem+json` response.
pub(crate) fn problem_response(refusal: &Refusal, request_id: &str) -> Response<Bytes> {
    let code = refusal.reason.code();
    let problem = Problem {
        kind: format!("urn:{}", code.replacen('.', ":", 1)),
        title: refusal.reason.title().to_owned(),
        status: refusal.reason.status().as_u16(),
        detail: refusal.detail.clone(),
        code: code.to_owned(),
        request_id: request_id.to_owned(),
    };
    // Serializing a struct of strings cannot fail; fall back to an empty object regardless.
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = refusal.reason.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_rfc9457_fields_with_the_stable_code() {
        let refusal = Refusal::new(Reason::TokenUsed, "already used");
        let response = problem_response(&refusal, "req-1");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["type"], "urn:palisade:control.token_used");
        assert_eq!(body["code"], "palisade.control.token_used");
        assert_eq!(body["status"], 403);
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["detail"], "already used");
    }
}
