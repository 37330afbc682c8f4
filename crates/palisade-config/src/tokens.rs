//! `[service.tokens]`: the inbound side also accepts OAuth 2.0 access tokens (RFC 9068
//! JWTs) issued by the control plane.
//!
//! ```toml
//! [service.tokens]
//! issuer = "https://127.0.0.1:7000" # expected `iss`; default: [control].url
//! leeway = "30s"                    # clock skew tolerated on exp/nbf/iat
//! client_cert = "required"          # "required" (default) or "optional": callers outside
//!                                   # the mesh may then present only a token
//! require_binding = false           # refuse tokens without cnf.x5t#S256
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::guard::Report;

/// Default clock-skew leeway on a token's `exp`, `nbf` and `iat`.
pub const DEFAULT_TOKEN_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway accepted: beyond this an expired token would stay usable for too long.
const MAX_TOKEN_LEEWAY: Duration = Duration::from_secs(300);

/// Whether the inbound TLS handshake demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    /// Every caller presents an X.509-SVID; a token adds scopes (and can be bound to it).
    Required,
    /// A caller may connect without a certificate and identify with a token alone.
    Optional,
}

/// `[service.tokens]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The expected `iss`: the control plane's URL (also where the JWKS is fetched).
    pub issuer: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Whether callers must present a client certificate too.
    pub client_cert: ClientCertMode,
    /// Refuse tokens that are not bound to the connection's certificate.
    pub require_binding: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokens {
    issuer: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    #[serde(default)]
    require_binding: bool,
}

impl RawTokens {
    /// Checks the section; `control_url` is the `[control]` URL, the default issuer.
    pub(crate) fn check(
        self,
        span: std::ops::Range<usize>,
        field: &str,
        control_url: Option<&str>,
        report: &mut impl Report,
    ) -> Option<TokenSettings> {
        let issues_before = report.count();
        let issuer = match (self.issuer, control_url) {
            (Some(issuer), _) => {
                let text = issuer.get_ref().trim_end_matches('/');
                let valid = text
                    .strip_prefix("https://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', '@']));
                if !valid {
                    report.report(
                        issuer.span(),
                        format!("{field}.issuer"),
                        format!("{text:?} is not an https:// URL without query, fragment or credentials"),
                    );
                }
                text.to_owned()
            }
            (None, Some(url)) => url.trim_end_matches('/').to_owned(),
            (None, None) => String::new(),
        };
        if control_url.is_none() {
            report.report(
                span.clone(),
                field.to_owned(),
                "accepting tokens needs [control]: the signing keys (JWKS) are fetched from the control plane".into(),
            );
        }
        let leeway = match self.leeway {
            None => DEFAULT_TOKEN_LEEWAY,
            Some(text) => match humantime::parse_duration(text.get_ref()) {
                Ok(d) if d <= MAX_TOKEN_LEEWAY => d,
                Ok(_) => {
                    report.report(
                        text.span(),
                        format!("{field}.leeway"),
                        format!(
                            "at most {}: a longer leeway keeps expired tokens usable",
                            humantime::format_duration(MAX_TOKEN_LEEWAY)
                        ),
                    );
                    DEFAULT_TOKEN_LEEWAY
                }
                Err(e) => {
                    report.report(
                        text.span(),
                        format!("{field}.leeway"),
                        format!("invalid duration {:?}: {e}", text.get_ref()),
                    );
                    DEFAULT_TOKEN_LEEWAY
                }
            },
        };
        let client_cert = match self.client_cert.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("required") => ClientCertMode::Required,
            Some("optional") => ClientCertMode::Optional,
            Some(other) => {
                if let Some(c) = &self.client_cert {
                    report.report(
                        c.span(),
                        format!("{field}.client_cert"),
                        format!("unknown mode {other:?}: expected \"required\" or \"optional\""),
                    );
                }
                ClientCertMode::Required
            }
        };
        if self.require_binding && client_cert == ClientCertMode::Optional {
            report.report(
                span,
                format!("{field}.require_binding"),
                "a bound token needs a client certificate: with client_cert = \"optional\" set require_binding = false".into(),
            );
        }
        (report.count() == issues_before).then_some(TokenSettings {
            issuer,
            leeway,
            client_cert,
            require_binding: self.require_binding,
        })
    }
}
