//! identify: establish who is calling.
//!
//! For mTLS the work happened in the handshake (chain, validity, SVID shape, trust domain
//! were verified by `palisade_identity::tls::SvidClientVerifier`); this stage turns the
//! verified peer certificate into a [`Caller`]. Token-based identity will plug in here.

use palisade_audit::AuthMethod;
use palisade_identity::SpiffeId;

use crate::context::Caller;
use crate::rejection::Rejection;

/// What the connection established about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionIdentity {
    /// A client certificate verified as an X.509-SVID during the handshake.
    Mtls(SpiffeId),
    /// The connection carries no identity (the local app on the outbound listener, tests).
    Anonymous,
}

/// Returns the caller, or refuses an unidentified one (fail closed).
pub fn identify(connection: &ConnectionIdentity) -> Result<Caller, Rejection> {
    match connection {
        ConnectionIdentity::Mtls(id) => Ok(Caller {
            id: id.clone(),
            auth: AuthMethod::Mtls,
        }),
        ConnectionIdentity::Anonymous => Err(Rejection::CallerUnidentified),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_svid_identifies_the_caller() {
        let id: SpiffeId = "spiffe://td/ns/a/sa/b".parse().unwrap();
        let caller = identify(&ConnectionIdentity::Mtls(id.clone())).unwrap();
        assert_eq!(caller.id, id);
        assert_eq!(caller.auth, AuthMethod::Mtls);
    }

    #[test]
    fn an_anonymous_connection_is_refused() {
        let err = identify(&ConnectionIdentity::Anonymous).unwrap_err();
        assert_eq!(err.code(), "palisade.identity.missing");
    }
}
