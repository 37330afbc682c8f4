//! What the token endpoint answers: an RFC 6749 §5.1 success or §5.2 error, plus what the
//! audit record needs.

use serde_json::json;

/// The token endpoint's answer: HTTP status and JSON body, and for the audit record the
/// authenticated (or claimed) client and the outcome code.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenResponse {
    /// HTTP status: 200, 400, 401 or 500.
    pub status: u16,
    /// The JSON body (RFC 6749 §5.1 or §5.2).
    pub body: serde_json::Value,
    /// The client the request was for, once known (authenticated on success; as claimed
    /// on refusals, for the audit record only).
    pub client_id: Option<String>,
    /// `palisade.token.<reason>` on refusal, `None` on success.
    pub outcome_code: Option<&'static str>,
}

impl TokenResponse {
    /// Headers the HTTP server must send with the body (RFC 6749 §5.1: the response is
    /// JSON and never cached). A 401 also carries `WWW-Authenticate` naming no scheme
    /// Palisade would accept a password for.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("pragma", "no-cache"),
        ];
        if self.status == 401 {
            headers.push(("www-authenticate", r#"Bearer error="invalid_client""#));
        }
        headers
    }

    /// Whether a token was issued.
    pub fn is_success(&self) -> bool {
        self.status == 200
    }

    pub(crate) fn refused(refusal: &Refusal, client_id: Option<String>) -> Self {
        TokenResponse {
            status: refusal.status(),
            body: json!({
                "error": refusal.oauth_error(),
                "error_description": refusal.description(),
            }),
            client_id,
            outcome_code: Some(refusal.code()),
        }
    }
}

/// Why the token endpoint refused a request. Each maps to an RFC 6749 §5.2 (or RFC 8707)
/// error, an HTTP status and a finer `palisade.token.*` code for the audit record.
///
/// Descriptions never echo a submitted value (assertions, tokens), and all failed
/// client authentications read alike to the caller; the code tells them apart in the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A parameter appears more than once (RFC 6749 §3.2).
    DuplicateParameter(&'static str),
    /// A required parameter is missing.
    MissingParameter(&'static str),
    /// `grant_type` is not `client_credentials`.
    UnsupportedGrantType,
    /// No client authentication at all.
    NoClientAuthentication,
    /// `client_secret` was sent: not supported by design.
    ClientSecretUnsupported,
    /// `client_assertion_type` is not the JWT bearer type.
    UnsupportedAssertionType,
    /// The client id is not registered.
    UnknownClient,
    /// The client is registered for another authentication method.
    WrongAuthMethod,
    /// `tls_client_auth` without a client certificate on the connection.
    ClientCertificateMissing,
    /// The client certificate is not an SVID, or names another SPIFFE ID.
    ClientCertificateMismatch,
    /// The client assertion failed a check (signature, iss/sub, aud, lifetime, jti).
    AssertionInvalid(&'static str),
    /// The client assertion's `jti` was already used.
    AssertionReplayed,
    /// The client may not get tokens at all (no audience registered).
    UnauthorizedClient,
    /// No audience/resource, or more than one, or one the client is not registered for.
    InvalidTarget(&'static str),
    /// Asked for scopes beyond the registration, or a malformed scope.
    InvalidScope(&'static str),
    /// The issuer could not sign (key store broken).
    ServerError,
}

impl Refusal {
    /// The RFC 6749 §5.2 / RFC 8707 `error` value.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Refusal::DuplicateParameter(_)
            | Refusal::MissingParameter(_)
            | Refusal::UnsupportedAssertionType => "invalid_request",
            Refusal::UnsupportedGrantType => "unsupported_grant_type",
            Refusal::NoClientAuthentication
            | Refusal::ClientSecretUnsupported
            | Refusal::UnknownClient
            | Refusal::WrongAuthMethod
            | Refusal::ClientCertificateMissing
            | Refusal::ClientCertificateMismatch
            | Refusal::AssertionInvalid(_)
            | Refusal::AssertionReplayed => "invalid_client",
            Refusal::UnauthorizedClient => "unauthorized_client",
            Refusal::InvalidTarget(_) => "invalid_target",
            Refusal::InvalidScope(_) => "invalid_scope",
            Refusal::ServerError => "server_error",
        }
    }

    /// HTTP status: 401 for `invalid_client` (RFC 6749 §5.2), 500 for `server_error`,
    /// 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.oauth_error() {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }

    /// The stable `palisade.token.*` code for the audit record.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::DuplicateParameter(_) | Refusal::MissingParameter(_) => {
                "palisade.token.invalid_request"
            }
            Refusal::UnsupportedGrantType => "palisade.token.unsupported_grant_type",
            Refusal::NoClientAuthentication => "palisade.token.client_auth_missing",
            Refusal::ClientSecretUnsupported => "palisade.token.client_secret_unsupported",
            Refusal::UnsupportedAssertionType => "palisade.token.assertion_type_unsupported",
            Refusal::UnknownClient => "palisade.token.unknown_client",
            Refusal::WrongAuthMethod => "palisade.token.wrong_auth_method",
            Refusal::ClientCertificateMissing => "palisade.token.client_cert_missing",
            Refusal::ClientCertificateMismatch => "palisade.token.client_cert_mismatch",
            Refusal::AssertionInvalid(_) => "palisade.token.assertion_invalid",
            Refusal::AssertionReplayed => "palisade.token.assertion_replayed",
            Refusal::UnauthorizedClient => "palisade.token.unauthorized_client",
            Refusal::InvalidTarget(_) => "palisade.token.invalid_target",
            Refusal::InvalidScope(_) => "palisade.token.invalid_scope",
            Refusal::ServerError => "palisade.token.server_error",
        }
    }

    /// `error_description`: what was wrong, never a submitted value.
    pub fn description(&self) -> String {
        match self {
            Refusal::DuplicateParameter(name) => {
                format!("parameter {name} is included more than once")
            }
            Refusal::MissingParameter(name) => format!("parameter {name} is required"),
            Refusal::UnsupportedGrantType => {
                "only grant_type=client_credentials is supported".into()
            }
            Refusal::NoClientAuthentication => {
                "client authentication is required: tls_client_auth or private_key_jwt".into()
            }
            Refusal::ClientSecretUnsupported => {
                "client secrets are not supported; use tls_client_auth or private_key_jwt".into()
            }
            Refusal::UnsupportedAssertionType => {
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    .into()
            }
            Refusal::UnknownClient
            | Refusal::WrongAuthMethod
            | Refusal::ClientCertificateMismatch
            | Refusal::AssertionReplayed
            | Refusal::AssertionInvalid(_) => "client authentication failed".into(),
            Refusal::ClientCertificateMissing => {
                "client authentication failed: no client certificate on the connection".into()
            }
            Refusal::UnauthorizedClient => {
                "the client is not authorized for any audience".into()
            }
            Refusal::InvalidTarget(why) | Refusal::InvalidScope(why) => (*why).into(),
            Refusal::ServerError => "the token could not be issued".into(),
        }
    }

    /// Detail for the operator's log (may say more than the caller sees, still no secrets).
    pub fn log_detail(&self) -> Option<&'static str> {
        match self {
            Refusal::AssertionInvalid(why) => Some(why),
            _ => None,
        }
    }
}
