//! Bearer access tokens on the inbound side (`[service.tokens]`): the verifier for this
//! service and the control plane's signing keys (JWKS) it checks them with.
//!
//! Keys are fetched at start (retried with backoff until the first success), refreshed
//! every [`JWKS_REFRESH_INTERVAL`], and fetched at once when a token names a key id not
//! seen yet: the control plane rotates its signing key and publishes the new one before
//! tokens signed by it arrive. That on-demand fetch is rate-limited by the verifier
//! ([`palisade_token::MIN_JWKS_REFRESH_INTERVAL`]), so forged key ids cannot turn the
//! sidecar into a load generator against the control plane.

use std::time::Duration;

use palisade_config::TokenSettings;
use palisade_control::ControlClient;
use palisade_token::{TokenRejection, TokenVerifier, VerifiedToken};
use time::OffsetDateTime;

use crate::rejection::Rejection;

/// How often the key set is refreshed in the background.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Longest a request waits for an on-demand key fetch.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// First retry delay after a failed fetch at start; doubles up to the refresh interval.
const JWKS_RETRY_START: Duration = Duration::from_millis(250);

/// Verifies the access tokens presented to one service.
pub struct BearerTokens {
    verifier: TokenVerifier,
    source: Option<ControlClient>,
    // Requests meeting an unknown key id wait for one fetch instead of each failing.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokens")
            .field("verifier", &self.verifier)
            .field("fetches_keys", &self.source.is_some())
            .finish()
    }
}

impl BearerTokens {
    /// Tokens for `service` (their `aud`), with keys fetched through `source`.
    pub fn new(settings: &TokenSettings, service: &str, source: ControlClient) -> Self {
        let verifier = TokenVerifier::new(&settings.issuer, service, settings.leeway)
            .with_required_binding(settings.require_binding);
        BearerTokens::with_verifier(verifier, Some(source))
    }

    /// Tokens checked by `verifier`, whose keys are set by the caller when `source` is
    /// `None` (tests, or keys distributed out of band).
    pub fn with_verifier(verifier: TokenVerifier, source: Option<ControlClient>) -> Self {
        BearerTokens {
            verifier,
            source,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The verifier, e.g. to install keys.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Fetches the key set and installs it.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(source) = &self.source else {
            return Err("no key source configured".into());
        };
        let jwks = tokio::time::timeout(JWKS_FETCH_TIMEOUT, source.jwks())
            .await
            .map_err(|_| format!("no JWKS within {} s", JWKS_FETCH_TIMEOUT.as_secs_f32()))?
            .map_err(|e| e.to_string())?;
        self.verifier.set_jwks(&jwks).map_err(|e| e.to_string())
    }

    /// Verifies `token` presented over a connection whose client certificate (DER) is
    /// `peer_cert`. An unknown key id triggers one (rate-limited) key fetch and a retry.
    pub async fn verify(
        &self,
        token: &str,
        peer_cert: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<VerifiedToken, Rejection> {
        let first = match self.verifier.verify(token, peer_cert, now) {
            Err(TokenRejection::UnknownKey { .. }) if self.source.is_some() => {
                let _one_fetch = self.refreshing.lock().await;
                match self.verifier.verify(token, peer_cert, now) {
                    Err(TokenRejection::UnknownKey { kid })
                        if self.verifier.needs_refresh(&kid) =>
                    {
                        match self.refresh().await {
                            Ok(()) => tracing::info!(
                                kid,
                                "fetched the token signing keys for an unknown key id"
                            ),
                            Err(e) => {
                                tracing::warn!(kid, error = %e, "could not fetch the token signing keys")
                            }
                        }
                        self.verifier.verify(token, peer_cert, now)
                    }
                    other => other,
                }
            }
            other => other,
        };
        match first {
            // Without any key the sidecar cannot judge a token: its own state, not the caller's fault.
            Err(TokenRejection::UnknownKey { .. }) if !self.verifier.has_keys() => {
                Err(Rejection::TokenKeysUnavailable)
            }
            Err(rejection) => Err(Rejection::InvalidToken(rejection)),
            Ok(verified) => Ok(verified),
        }
    }

    /// Fetches the keys at start (retrying with backoff until it works) and then every
    /// [`JWKS_REFRESH_INTERVAL`]. Runs until the task is aborted.
    pub async fn refresh_forever(self: std::sync::Arc<Self>) {
        let mut delay = JWKS_RETRY_START;
        loop {
            match self.refresh().await {
                Ok(()) => {
                    tracing::debug!("token signing keys refreshed");
                    delay = JWKS_RETRY_START;
                    tokio::time::sleep(JWKS_REFRESH_INTERVAL).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "could not fetch the token signing keys");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(JWKS_REFRESH_INTERVAL);
                }
            }
        }
    }
}
