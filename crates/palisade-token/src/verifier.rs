//! The sidecar's side: verifying RFC 9068 access tokens against the issuer's JWKS.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::jose::{certificate_thumbprint, read_untrusted, Audience, ParseFailure};
use crate::TokenError;

/// Default clock-skew leeway on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Least time between two JWKS refreshes triggered by unknown key ids.
pub const MIN_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Checks access tokens for one service (`aud`) from one issuer (`iss`). `Send + Sync`.
///
/// The key set is fed from outside ([`TokenVerifier::set_jwks`]): the sidecar fetches
/// `<issuer>/.well-known/jwks.json` at start and on a schedule, and again when a token
/// names an unknown `kid` and [`TokenVerifier::needs_refresh`] says so (at most once per
/// [`MIN_JWKS_REFRESH_INTERVAL`], so a stream of forged kids cannot hammer the issuer).
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway: Duration,
    require_binding: bool,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: Mutex<Option<Instant>>,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`: for client credentials, the client itself.
    pub subject: String,
    /// `client_id`: a SPIFFE ID for mesh workloads.
    pub client_id: String,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
    /// `exp`.
    pub expires_at: OffsetDateTime,
    /// Whether the token was bound to (and checked against) the peer's certificate.
    pub cert_bound: bool,
    /// `jti`, for the audit record.
    pub token_id: String,
}

/// Why a token was refused. `Display` never includes the token or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not a compact JWS, a claim missing or of the wrong type, or too long.
    #[error("the access token is malformed: {0}")]
    Malformed(&'static str),
    /// Signed with an algorithm other than ES256 (`none`, `HS256`, `RS256`...).
    #[error("the access token's algorithm {alg:?} is not accepted (ES256 only)")]
    DisallowedAlgorithm {
        /// The header's `alg`, truncated to 16 characters.
        alg: String,
    },
    /// Signed by a key not in the current key set.
    #[error("the access token was signed by unknown key {kid:?}")]
    UnknownKey {
        /// The header's `kid`.
        kid: String,
    },
    /// The signature does not verify.
    #[error("the access token's signature does not verify")]
    BadSignature,
    /// `typ` is not `at+jwt` (e.g. an ID token or another JWT).
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    /// `exp` has passed (beyond the leeway).
    #[error("the access token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the access token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not name this service.
    #[error("the access token is meant for another service")]
    WrongAudience,
    /// The token is certificate-bound and the connection has no client certificate.
    #[error("the access token is certificate-bound but no client certificate was presented")]
    CertificateRequired,
    /// The token is bound to another certificate than the connection's.
    #[error("the access token is bound to another client certificate")]
    CertificateMismatch,
    /// The token is not certificate-bound and this verifier requires binding.
    #[error("the access token is not certificate-bound")]
    MissingCertificateBinding,
    /// `cnf` holds only confirmation methods this verifier cannot check.
    #[error("the access token's confirmation method is not supported")]
    UnsupportedBinding,
}

impl TokenRejection {
    /// The stable `palisade.token.*` code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenRejection::Malformed(_) => "palisade.token.malformed",
            TokenRejection::DisallowedAlgorithm { .. } => "palisade.token.disallowed_algorithm",
            TokenRejection::UnknownKey { .. } => "palisade.token.unknown_key",
            TokenRejection::BadSignature => "palisade.token.bad_signature",
            TokenRejection::WrongType => "palisade.token.wrong_type",
            TokenRejection::Expired => "palisade.token.expired",
            TokenRejection::NotYetValid => "palisade.token.not_yet_valid",
            TokenRejection::WrongIssuer => "palisade.token.wrong_issuer",
            TokenRejection::WrongAudience => "palisade.token.wrong_audience",
            TokenRejection::CertificateRequired => "palisade.token.certificate_required",
            TokenRejection::CertificateMismatch => "palisade.token.certificate_mismatch",
            TokenRejection::MissingCertificateBinding => "palisade.token.binding_required",
            TokenRejection::UnsupportedBinding => "palisade.token.unsupported_binding",
        }
    }

    /// HTTP status for the sidecar's refusal: 401 (RFC 6750 §3.1 `invalid_token`).
    pub fn status(&self) -> u16 {
        401
    }
}

/// The claims read from a verified token.
#[derive(Debug, Deserialize)]
struct AccessClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    client_id: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    scope: Option<String>,
    cnf: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TokenVerifier {
    /// A verifier for tokens from `issuer` (the `iss`, trailing `/` ignored) meant for
    /// `audience` (this service's name), tolerating `leeway` of clock skew.
    pub fn new(issuer: &str, audience: &str, leeway: Duration) -> Self {
        TokenVerifier {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            leeway,
            require_binding: false,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
        }
    }

    /// Also refuse tokens that are not certificate-bound (`cnf.x5t#S256`), so a token
    /// alone is never enough on this service. Off by default.
    pub fn with_required_binding(mut self, required: bool) -> Self {
        self.require_binding = required;
        self
    }

    /// Replaces the key set with the ES256 P-256 signing keys of an RFC 7517 JWK Set.
    /// Keys of other types or uses are skipped; a set without any usable key is refused
    /// and the current set stays.
    pub fn set_jwks(&self, jwks: &serde_json::Value) -> Result<(), TokenError> {
        let Some(list) = jwks.get("keys").and_then(|k| k.as_array()) else {
            return Err(TokenError::InvalidJwks("no \"keys\" array".into()));
        };
        let mut keys = HashMap::new();
        for jwk in list {
            let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
            let usable = field("kty") == Some("EC")
                && field("crv") == Some("P-256")
                && field("use").is_none_or(|u| u == "sig")
                && field("alg").is_none_or(|a| a == "ES256");
            let (Some(kid), Some(x), Some(y)) = (field("kid"), field("x"), field("y")) else {
                continue;
            };
            if !usable {
                tracing::debug!(kid, "skipping a JWK that is not an ES256 signing key");
                continue;
            }
            let coordinates_ok = [x, y]
                .iter()
                .all(|c| crate::jose::b64url_decode(c).is_some_and(|bytes| bytes.len() == 32));
            if !coordinates_ok {
                return Err(TokenError::InvalidJwks(format!(
                    "key {kid:?}: x and y must be 32-byte base64url values"
                )));
            }
            let key = DecodingKey::from_ec_components(x, y)
                .map_err(|e| TokenError::InvalidJwks(format!("key {kid:?}: {e}")))?;
            keys.insert(kid.to_owned(), key);
        }
        if keys.is_empty() {
            return Err(TokenError::InvalidJwks("no usable ES256 key".into()));
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        tracing::debug!(keys = count, "token verification keys replaced");
        Ok(())
    }

    /// Whether any signing key is known (false until the first JWKS is installed).
    pub fn has_keys(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Whether the sidecar should fetch the JWKS now because of `kid`: true when `kid` is
    /// unknown and no refresh was asked for in the last [`MIN_JWKS_REFRESH_INTERVAL`]. A
    /// `true` answer counts as the refresh attempt, so concurrent callers get one `true`
    /// between them. Scheduled fetches ([`TokenVerifier::set_jwks`]) do not count: a key
    /// rotated just after one must still be fetched when its first token arrives.
    pub fn needs_refresh(&self, kid: &str) -> bool {
        if self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(kid)
        {
            return false;
        }
        let mut last = self
            .last_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= MIN_JWKS_REFRESH_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Verifies an access token presented to this service over a connection whose
    /// (verified) client certificate is `peer_cert_der`, if any.
    ///
    /// Checks, in order: the header (ES256 only, so `alg: none` and HS*/RS* algorithm
    /// confusion are refused; `typ` `at+jwt`; known `kid`), the signature, then `iss`,
    /// `aud` contains this service, `exp`/`nbf`/`iat` with leeway, the required claims,
    /// and if `cnf.x5t#S256` is present, that it is the thumbprint of `peer_cert_der` (a
    /// stolen certificate-bound token is useless without the certificate's key).
    pub fn verify(
        &self,
        token: &str,
        peer_cert_der: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<VerifiedToken, TokenRejection> {
        let untrusted = read_untrusted(token).map_err(|e| match e {
            ParseFailure::TooLong => TokenRejection::Malformed("the token is too long"),
            ParseFailure::NotAJws => TokenRejection::Malformed("not a compact JWS"),
        })?;
        let header = untrusted.header;
        match header.alg.as_deref() {
            Some("ES256") => {}
            Some(other) => {
                return Err(TokenRejection::DisallowedAlgorithm {
                    alg: other.chars().take(16).collect(),
                })
            }
            None => return Err(TokenRejection::Malformed("the header has no alg")),
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(crate::ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenRejection::WrongType);
        }
        let Some(kid) = header.kid else {
            return Err(TokenRejection::Malformed("the header has no kid"));
        };
        let claims = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            let Some(key) = keys.get(&kid) else {
                return Err(TokenRejection::UnknownKey {
                    kid: kid.chars().take(64).collect(),
                });
            };
            let mut validation = Validation::new(Algorithm::ES256);
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        TokenRejection::BadSignature
                    }
                    _ => TokenRejection::Malformed("claims of the wrong type"),
                })?
                .claims
        };
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(TokenRejection::WrongIssuer);
        }
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains(&self.audience))
        {
            return Err(TokenRejection::WrongAudience);
        }
        let now_s = now.unix_timestamp();
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let Some(exp) = claims.exp else {
            return Err(TokenRejection::Malformed("no exp"));
        };
        if now_s.saturating_sub(leeway) >= exp {
            return Err(TokenRejection::Expired);
        }
        let future = |t: Option<i64>| t.is_some_and(|t| t > now_s.saturating_add(leeway));
        if future(claims.nbf) || future(claims.iat) {
            return Err(TokenRejection::NotYetValid);
        }
        let (Some(subject), Some(client_id), Some(token_id)) =
            (claims.sub, claims.client_id, claims.jti)
        else {
            return Err(TokenRejection::Malformed(
                "sub, client_id and jti are required",
            ));
        };
        let cert_bound = match &claims.cnf {
            None if self.require_binding => return Err(TokenRejection::MissingCertificateBinding),
            None => false,
            Some(cnf) => {
                let Some(bound) = cnf.get("x5t#S256") else {
                    return Err(TokenRejection::UnsupportedBinding);
                };
                let Some(bound) = bound.as_str() else {
                    return Err(TokenRejection::Malformed("cnf x5t#S256 is not a string"));
                };
                let Some(peer) = peer_cert_der else {
                    return Err(TokenRejection::CertificateRequired);
                };
                if certificate_thumbprint(peer) != bound {
                    return Err(TokenRejection::CertificateMismatch);
                }
                true
            }
        };
        let expires_at = OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|_| TokenRejection::Malformed("exp is out of range"))?;
        let scopes = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(VerifiedToken {
            subject,
            client_id,
            scopes,
            expires_at,
            cert_bound,
            token_id,
        })
    }
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("require_binding", &self.require_binding)
            .field("kids", &kids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_refresh_is_rate_limited_for_unknown_kids() {
        let verifier = TokenVerifier::new("https://cp", "billing", DEFAULT_LEEWAY);
        assert!(verifier.needs_refresh("k1"), "never fetched: fetch now");
        assert!(!verifier.needs_refresh("k2"), "just asked: wait");
    }

    #[test]
    fn rejection_display_never_contains_token_text() {
        let verifier = TokenVerifier::new("https://cp", "billing", DEFAULT_LEEWAY);
        let token = "eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOiJ4In0.";
        let err = verifier
            .verify(token, None, OffsetDateTime::now_utc())
            .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!text.is_empty() && !text.contains("eyJ"), "{text}");
    }
}
