//! identify: establish who is calling.
//!
//! For mTLS the work happened in the handshake (chain, validity, SVID shape, trust domain
//! and revocation were verified by `palisade_identity::tls::SvidClientVerifier`); this
//! stage turns the verified peer certificate into a [`Caller`].
//!
//! A service with `[service.tokens]` also accepts `Authorization: Bearer` access tokens
//! from the control plane. A presented token decides the identity (its `sub`), whether or
//! not the connection has a certificate, and an invalid one is refused even when the
//! certificate alone would have been enough: a caller that sends a token means to be
//! judged by it, and falling back silently would hide a misconfiguration or an attack.
//!
//! Either way the revocation list is checked again on every request, because a connection
//! opened (or a token issued) before a revocation must not keep its access.

use http::HeaderMap;
use palisade_identity::{Revocations, SpiffeId};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::context::Caller;
use crate::rejection::Rejection;
use crate::tokens::BearerTokens;
use palisade_audit::AuthMethod;

/// What the connection established about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionIdentity {
    /// A client certificate verified as an X.509-SVID during the handshake.
    Mtls {
        /// The SPIFFE ID in the certificate.
        id: SpiffeId,
        /// The certificate's serial number (hex), for revocation checks.
        serial: String,
        /// The certificate itself, which a certificate-bound token must match.
        certificate: CertificateDer<'static>,
    },
    /// The connection carries no identity (no client certificate where tokens make it
    /// optional, the local app on the outbound listener, tests).
    Anonymous,
}

impl ConnectionIdentity {
    fn certificate(&self) -> Option<&[u8]> {
        match self {
            ConnectionIdentity::Mtls { certificate, .. } => Some(certificate.as_ref()),
            ConnectionIdentity::Anonymous => None,
        }
    }
}

/// How a service verifies the callers' access tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy<'a> {
    /// The verifier (and its key source).
    pub tokens: &'a BearerTokens,
    /// The trust domain of the control plane issuing the tokens, for callers whose
    /// `sub` is not a SPIFFE ID.
    pub trust_domain: &'a str,
}

/// The token of an `Authorization: Bearer` header, if the request has one. Other schemes
/// are the application's business and pass through.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = |why| {
        Err(Rejection::InvalidToken(
            palisade_token::TokenRejection::Malformed(why),
        ))
    };
    let Ok(text) = value.to_str() else {
        return Ok(None);
    };
    let Some((scheme, token)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if values.next().is_some() {
        return malformed("more than one Authorization header");
    }
    let token = token.trim();
    if token.is_empty() {
        return malformed("the Bearer credentials are empty");
    }
    Ok(Some(token))
}

/// Returns the caller, or refuses an unidentified one (fail closed).
pub async fn identify(
    connection: &ConnectionIdentity,
    headers: &HeaderMap,
    tokens: Option<TokenPolicy<'_>>,
    now: OffsetDateTime,
) -> Result<Caller, Rejection> {
    if let Some(policy) = tokens {
        if let Some(token) = bearer_token(headers)? {
            let verified = policy
                .tokens
                .verify(token, connection.certificate(), now)
                .await?;
            let trust_domain = match verified.subject.parse::<SpiffeId>() {
                Ok(id) => id.trust_domain().to_owned(),
                Err(_) => policy.trust_domain.to_owned(),
            };
            tracing::debug!(sub = %verified.subject, jti = %verified.token_id, cert_bound = verified.cert_bound, "access token accepted");
            return Ok(Caller {
                id: verified.subject,
                trust_domain,
                auth: AuthMethod::Jwt,
                scopes: verified.scopes,
            });
        }
    }
    match connection {
        ConnectionIdentity::Mtls { id, .. } => Ok(Caller::mtls(id)),
        ConnectionIdentity::Anonymous => Err(Rejection::CallerUnidentified),
    }
}

/// Refuses a caller revoked since its connection was opened (the handshake checked the
/// list as it was then), or whose token names a revoked identity.
pub fn check_not_revoked(
    connection: &ConnectionIdentity,
    caller: &Caller,
    revocations: &Revocations,
) -> Result<(), Rejection> {
    if let ConnectionIdentity::Mtls { id, serial, .. } = connection {
        if revocations.is_revoked(serial, id.as_str()) {
            return Err(Rejection::CallerRevoked {
                caller: id.to_string(),
            });
        }
    }
    if caller.auth == AuthMethod::Jwt && revocations.is_revoked("", &caller.id) {
        return Err(Rejection::CallerRevoked {
            caller: caller.id.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn connection() -> ConnectionIdentity {
        ConnectionIdentity::Mtls {
            id: "spiffe://td/ns/a/sa/b".parse().unwrap(),
            serial: "0a1b".into(),
            certificate: CertificateDer::from(vec![0x30, 0x00]),
        }
    }

    fn headers(authorization: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[tokio::test]
    async fn an_svid_identifies_the_caller() {
        let now = OffsetDateTime::now_utc();
        let caller = identify(&connection(), &HeaderMap::new(), None, now)
            .await
            .unwrap();
        check_not_revoked(&connection(), &caller, &Revocations::default()).unwrap();
        assert_eq!(caller.id, "spiffe://td/ns/a/sa/b");
        assert_eq!(caller.trust_domain, "td");
        assert_eq!(caller.auth, AuthMethod::Mtls);
    }

    #[tokio::test]
    async fn a_revoked_caller_is_refused_on_a_connection_opened_before_the_revocation() {
        let now = OffsetDateTime::now_utc();
        let caller = identify(&connection(), &HeaderMap::new(), None, now)
            .await
            .unwrap();
        let revocations = Revocations::default();
        revocations.replace(1, ["0A1B".to_owned()], []);
        let err = check_not_revoked(&connection(), &caller, &revocations).unwrap_err();
        assert_eq!(err.code(), "palisade.identity.revoked");
        revocations.replace(2, [], ["spiffe://td/ns/a/sa/b".to_owned()]);
        assert!(check_not_revoked(&connection(), &caller, &revocations).is_err());
    }

    #[tokio::test]
    async fn an_anonymous_connection_is_refused() {
        let now = OffsetDateTime::now_utc();
        let err = identify(&ConnectionIdentity::Anonymous, &HeaderMap::new(), None, now)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "palisade.identity.missing");
    }

    #[test]
    fn reads_only_bearer_credentials() {
        assert_eq!(bearer_token(&headers(&[])).unwrap(), None);
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])).unwrap(),
            None,
            "other schemes belong to the application"
        );
        assert_eq!(
            bearer_token(&headers(&["bearer abc.def.ghi"])).unwrap(),
            Some("abc.def.ghi")
        );
        let twice = bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"])).unwrap_err();
        assert_eq!(twice.code(), "palisade.token.malformed");
        let empty = bearer_token(&headers(&["Bearer  "])).unwrap_err();
        assert_eq!(empty.code(), "palisade.token.malformed");
    }
}
