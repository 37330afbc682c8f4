//! identify: establish who is calling.
//!
//! For mTLS the work happened in the handshake (chain, validity, SVID shape, trust domain
//! and revocation were verified by `palisade_identity::tls::SvidClientVerifier`); this
//! stage turns the verified peer certificate into a [`Caller`] and checks the revocation
//! list again on every request, because a connection opened before a revocation must not
//! keep its access. Token-based identity will plug in here.

use palisade_audit::AuthMethod;
use palisade_identity::{Revocations, SpiffeId};

use crate::context::Caller;
use crate::rejection::Rejection;

/// What the connection established about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionIdentity {
    /// A client certificate verified as an X.509-SVID during the handshake.
    Mtls {
        /// The SPIFFE ID in the certificate.
        id: SpiffeId,
        /// The certificate's serial number (hex), for revocation checks.
        serial: String,
    },
    /// The connection carries no identity (the local app on the outbound listener, tests).
    Anonymous,
}

/// Returns the caller, or refuses an unidentified one (fail closed).
pub fn identify(connection: &ConnectionIdentity) -> Result<Caller, Rejection> {
    match connection {
        ConnectionIdentity::Mtls { id, .. } => Ok(Caller {
            id: id.clone(),
            auth: AuthMethod::Mtls,
        }),
        ConnectionIdentity::Anonymous => Err(Rejection::CallerUnidentified),
    }
}

/// Refuses a caller revoked since its connection was opened (the handshake checked the
/// list as it was then).
pub fn check_not_revoked(
    connection: &ConnectionIdentity,
    revocations: &Revocations,
) -> Result<(), Rejection> {
    match connection {
        ConnectionIdentity::Mtls { id, serial } if revocations.is_revoked(serial, id.as_str()) => {
            Err(Rejection::CallerRevoked {
                caller: id.to_string(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn connection() -> ConnectionIdentity {
        ConnectionIdentity::Mtls {
            id: "spiffe://td/ns/a/sa/b".parse().unwrap(),
            serial: "0a1b".into(),
        }
    }

    #[test]
    fn an_svid_identifies_the_caller() {
        let caller = identify(&connection()).unwrap();
        check_not_revoked(&connection(), &Revocations::default()).unwrap();
        assert_eq!(caller.id.as_str(), "spiffe://td/ns/a/sa/b");
        assert_eq!(caller.auth, AuthMethod::Mtls);
    }

    #[test]
    fn a_revoked_caller_is_refused_on_a_connection_opened_before_the_revocation() {
        let revocations = Revocations::default();
        revocations.replace(1, ["0A1B".to_owned()], []);
        let err = check_not_revoked(&connection(), &revocations).unwrap_err();
        assert_eq!(err.code(), "palisade.identity.revoked");
        revocations.replace(2, [], ["spiffe://td/ns/a/sa/b".to_owned()]);
        assert!(check_not_revoked(&connection(), &revocations).is_err());
    }

    #[test]
    fn an_anonymous_connection_is_refused() {
        let err = identify(&ConnectionIdentity::Anonymous).unwrap_err();
        assert_eq!(err.code(), "palisade.identity.missing");
    }
}
