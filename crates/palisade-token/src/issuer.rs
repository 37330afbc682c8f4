//! The control plane's side: signing keys, the JWKS, and the token endpoint
//! (RFC 6749 §4.4 client credentials) issuing RFC 9068 JWT access tokens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};
use palisade_identity::svid_identity;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::client::{ClientAuth, ClientRegistry, RegisteredClient};
use crate::jose::{certificate_thumbprint, read_untrusted, Audience};
use crate::keys::KeyStore;
use crate::response::{Refusal, TokenResponse};
use crate::{TokenError, ACCESS_TOKEN_TYPE, JWT_BEARER_ASSERTION_TYPE, TOKEN_ENDPOINT_PATH};

/// Default access-token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// Default signing-key rotation period.
pub const DEFAULT_KEY_ROTATION: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime a client assertion may have (`exp` at most this far in the future).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Clock skew tolerated on client assertions' `exp`, `nbf` and `iat`.
pub const ASSERTION_LEEWAY: Duration = Duration::from_secs(30);
/// Longest `jti` accepted in a client assertion.
const MAX_JTI_LEN: usize = 256;

/// Issues access tokens: holds the signing keys (rotated on disk) and the replay cache of
/// client assertions. `Send + Sync`; share it behind an `Arc`.
pub struct TokenIssuer {
    issuer: String,
    token_endpoint: String,
    token_ttl: Duration,
    rotation: Duration,
    keys: RwLock<KeyStore>,
    /// `client_id \0 jti` → when the entry may be forgotten (the assertion's exp + leeway).
    seen_assertions: Mutex<HashMap<String, OffsetDateTime>>,
}

/// RFC 9068 §2.2 claims of an access token.
#[derive(Debug, Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 8705 §3.1 confirmation claim.
#[derive(Debug, Serialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// RFC 7523 §3 claims of a client assertion.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The token-endpoint parameters this crate reads; any other parameter is ignored
/// (RFC 6749 §3.2).
const KNOWN_PARAMETERS: [&str; 8] = [
    "grant_type",
    "scope",
    "audience",
    "resource",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The request's parameters, each at most once; empty values count as absent (§3.1).
struct Params<'a>(HashMap<&'static str, &'a str>);

impl<'a> Params<'a> {
    fn parse(form: &'a [(String, String)]) -> Result<Self, Refusal> {
        let mut map = HashMap::new();
        for (name, value) in form {
            let Some(&known) = KNOWN_PARAMETERS.iter().find(|k| **k == name) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            if map.insert(known, value.as_str()).is_some() {
                return Err(Refusal::DuplicateParameter(known));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.get(name).copied()
    }
}

impl TokenIssuer {
    /// Loads the signing keys from `<dir>/keys/` (creating the directory and a first key
    /// if there is none). `issuer_url` is the `iss` of every token (an `https://` URL, no
    /// query or fragment; a trailing `/` is dropped); the token endpoint is
    /// `issuer_url + "/oauth2/token"`, the `aud` client assertions must carry.
    pub fn open(
        dir: &Path,
        issuer_url: &str,
        token_ttl: Duration,
        rotation: Duration,
    ) -> Result<Self, TokenError> {
        let issuer = issuer_url.trim_end_matches('/');
        let valid_url = (issuer.starts_with("https://") || issuer.starts_with("http://"))
            && !issuer.contains(['?', '#'])
            && issuer
                .split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty());
        if !valid_url {
            return Err(TokenError::InvalidIssuerUrl(issuer_url.to_owned()));
        }
        if token_ttl.is_zero() || rotation.is_zero() {
            return Err(TokenError::InvalidDuration(
                "token_ttl and rotation must be positive",
            ));
        }
        let keys = KeyStore::open(dir, OffsetDateTime::now_utc())?;
        Ok(TokenIssuer {
            issuer: issuer.to_owned(),
            token_endpoint: format!("{issuer}{TOKEN_ENDPOINT_PATH}"),
            token_ttl,
            rotation,
            keys: RwLock::new(keys),
            seen_assertions: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint URL: the `aud` a client assertion must carry.
    pub fn token_endpoint_url(&self) -> &str {
        &self.token_endpoint
    }

    /// Lifetime of the access tokens issued.
    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    /// Rotates if the active key is older than `rotation`. A retired key stays in the
    /// JWKS until every token it signed has expired (`retired_at + token_ttl`), then is
    /// deleted; that cleanup happens in this call too. Returns whether a new key became
    /// active. Call it periodically (e.g. every minute).
    pub fn rotate_if_due(&self, now: OffsetDateTime) -> Result<bool, TokenError> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.rotate_if_due(now, self.token_ttl, self.rotation)
    }

    /// The public keys (RFC 7517 JWK Set) to serve at `/.well-known/jwks.json`: the active
    /// key first, then retired keys whose tokens may still be valid.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let list: Vec<serde_json::Value> = keys.published().map(|k| k.jwk()).collect();
        serde_json::json!({ "keys": list })
    }

    /// The token endpoint (RFC 6749 §4.4) over an already-parsed
    /// `application/x-www-form-urlencoded` body and the connection's client certificate
    /// (DER), if any. The certificate must already have been verified by the TLS layer
    /// (chain to the trust bundle, validity): this function only reads its SPIFFE ID.
    ///
    /// Returns the HTTP status and JSON body: `{access_token, token_type: "Bearer",
    /// expires_in, scope}` on success, `{error, error_description}` (RFC 6749 §5.2) on
    /// refusal. Send it with [`TokenResponse::headers`].
    pub fn token_endpoint(
        &self,
        form: &[(String, String)],
        client_cert_der: Option<&[u8]>,
        clients: &ClientRegistry,
        now: OffsetDateTime,
    ) -> TokenResponse {
        let mut claimed_client = None;
        match self.handle(form, client_cert_der, clients, now, &mut claimed_client) {
            Ok(response) => response,
            Err(refusal) => {
                tracing::info!(
                    code = refusal.code(),
                    client_id = claimed_client.as_deref().unwrap_or("-"),
                    detail = refusal.log_detail().unwrap_or(""),
                    "token request refused"
                );
                TokenResponse::refused(&refusal, claimed_client)
            }
        }
    }

    fn handle(
        &self,
        form: &[(String, String)],
        client_cert_der: Option<&[u8]>,
        clients: &ClientRegistry,
        now: OffsetDateTime,
        claimed_client: &mut Option<String>,
    ) -> Result<TokenResponse, Refusal> {
        let params = Params::parse(form)?;
        match params.get("grant_type") {
            None => return Err(Refusal::MissingParameter("grant_type")),
            Some("client_credentials") => {}
            Some(_) => return Err(Refusal::UnsupportedGrantType),
        }
        // Authenticate before looking at what is asked for: an unauthenticated caller
        // learns nothing about registrations.
        let (client, cert_bound) =
            self.authenticate(&params, client_cert_der, clients, now, claimed_client)?;
        let audience = requested_audience(&params)?;
        if client.scopes.is_empty() {
            return Err(Refusal::UnauthorizedClient);
        }
        let Some(registered) = client.scopes.get(audience) else {
            return Err(Refusal::InvalidTarget(
                "the client is not registered for this audience",
            ));
        };
        let scopes = granted_scopes(params.get("scope"), registered)?;
        let cnf = match (cert_bound, client_cert_der) {
            (true, Some(der)) => Some(Confirmation {
                x5t_s256: certificate_thumbprint(der),
            }),
            _ => None,
        };
        let scope = scopes.join(" ");
        let token = self.sign(client, audience, &scope, cnf, now)?;
        tracing::info!(client_id = %client.client_id, audience, scope, cert_bound, "issued access token");
        Ok(TokenResponse {
            status: 200,
            body: serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_ttl.as_secs(),
                "scope": scope,
            }),
            client_id: Some(client.client_id.clone()),
            outcome_code: None,
        })
    }

    /// Authenticates the client; returns it and whether its token is certificate-bound.
    fn authenticate<'c>(
        &self,
        params: &Params<'_>,
        client_cert_der: Option<&[u8]>,
        clients: &'c ClientRegistry,
        now: OffsetDateTime,
        claimed_client: &mut Option<String>,
    ) -> Result<(&'c RegisteredClient, bool), Refusal> {
        if params.get("client_secret").is_some() {
            *claimed_client = params.get("client_id").map(str::to_owned);
            return Err(Refusal::ClientSecretUnsupported);
        }
        let assertion = params.get("client_assertion");
        let assertion_type = params.get("client_assertion_type");
        if assertion.is_some() || assertion_type.is_some() {
            let client = self.authenticate_assertion(
                params,
                assertion,
                assertion_type,
                clients,
                now,
                claimed_client,
            )?;
            return Ok((client, false));
        }
        let Some(client_id) = params.get("client_id") else {
            return Err(Refusal::NoClientAuthentication);
        };
        *claimed_client = Some(client_id.to_owned());
        let client = clients.get(client_id).ok_or(Refusal::UnknownClient)?;
        if client.auth != ClientAuth::TlsClientAuth {
            return Err(Refusal::WrongAuthMethod);
        }
        let der = client_cert_der.ok_or(Refusal::ClientCertificateMissing)?;
        let presented = svid_identity(&CertificateDer::from(der))
            .map_err(|_| Refusal::ClientCertificateMismatch)?;
        if presented.as_str() != client.client_id {
            return Err(Refusal::ClientCertificateMismatch);
        }
        Ok((client, true))
    }

    /// RFC 7523 §2.2 / §3: `private_key_jwt`. Every failure is `invalid_client`
    /// (RFC 7523 §3.2), including a replayed `jti`.
    fn authenticate_assertion<'c>(
        &self,
        params: &Params<'_>,
        assertion: Option<&str>,
        assertion_type: Option<&str>,
        clients: &'c ClientRegistry,
        now: OffsetDateTime,
        claimed_client: &mut Option<String>,
    ) -> Result<&'c RegisteredClient, Refusal> {
        *claimed_client = params.get("client_id").map(str::to_owned);
        let assertion = assertion.ok_or(Refusal::MissingParameter("client_assertion"))?;
        match assertion_type {
            None => return Err(Refusal::MissingParameter("client_assertion_type")),
            Some(JWT_BEARER_ASSERTION_TYPE) => {}
            Some(_) => return Err(Refusal::UnsupportedAssertionType),
        }
        let untrusted = read_untrusted(assertion)
            .map_err(|_| Refusal::AssertionInvalid("assertion is not a compact JWS"))?;
        let Some(client_id) = untrusted.payload.get("iss").and_then(|v| v.as_str()) else {
            return Err(Refusal::AssertionInvalid("assertion has no iss"));
        };
        if claimed_client.as_deref().is_some_and(|id| id != client_id) {
            return Err(Refusal::AssertionInvalid(
                "client_id parameter differs from the assertion's iss",
            ));
        }
        *claimed_client = Some(client_id.to_owned());
        let client = clients.get(client_id).ok_or(Refusal::UnknownClient)?;
        if !matches!(client.auth, ClientAuth::PrivateKeyJwt { .. }) {
            return Err(Refusal::WrongAuthMethod);
        }
        let key = clients.key(client_id).ok_or(Refusal::AssertionInvalid(
            "the client's registered key is unusable",
        ))?;
        let alg_matches = untrusted
            .header
            .alg
            .as_deref()
            .is_some_and(|alg| alg == algorithm_name(key.alg));
        if !alg_matches {
            return Err(Refusal::AssertionInvalid(
                "assertion alg does not match the client's key",
            ));
        }
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    Refusal::AssertionInvalid("assertion signature does not verify")
                }
                _ => Refusal::AssertionInvalid("assertion claims are malformed"),
            })?
            .claims;
        if claims.iss != client.client_id || claims.sub != client.client_id {
            return Err(Refusal::AssertionInvalid(
                "assertion iss and sub must both be the client_id",
            ));
        }
        if !claims.aud.contains(&self.token_endpoint) {
            return Err(Refusal::AssertionInvalid(
                "assertion aud is not this token endpoint",
            ));
        }
        let now_s = now.unix_timestamp();
        let leeway = secs(ASSERTION_LEEWAY);
        if claims.exp <= now_s - leeway {
            return Err(Refusal::AssertionInvalid("assertion has expired"));
        }
        if claims.exp > now_s + secs(MAX_ASSERTION_LIFETIME) + leeway {
            return Err(Refusal::AssertionInvalid(
                "assertion exp is more than 5 minutes away",
            ));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now_s + leeway)
            || claims.iat.is_some_and(|iat| iat > now_s + leeway)
        {
            return Err(Refusal::AssertionInvalid("assertion is not valid yet"));
        }
        let jti = match claims.jti.as_deref() {
            Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti,
            _ => return Err(Refusal::AssertionInvalid("assertion needs a jti")),
        };
        self.remember_assertion(&client.client_id, jti, claims.exp + leeway, now)?;
        Ok(client)
    }

    /// Records a client assertion's `jti`; refuses one seen before. Entries are dropped
    /// once their assertion could no longer be accepted anyway.
    fn remember_assertion(
        &self,
        client_id: &str,
        jti: &str,
        forget_after: i64,
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        let forget_after = OffsetDateTime::from_unix_timestamp(forget_after)
            .map_err(|_| Refusal::AssertionInvalid("assertion exp is out of range"))?;
        let mut seen = self
            .seen_assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, until| *until >= now);
        let entry = format!("{client_id}\0{jti}");
        if seen.contains_key(&entry) {
            return Err(Refusal::AssertionReplayed);
        }
        seen.insert(entry, forget_after);
        Ok(())
    }

    fn sign(
        &self,
        client: &RegisteredClient,
        audience: &str,
        scope: &str,
        cnf: Option<Confirmation>,
        now: OffsetDateTime,
    ) -> Result<String, Refusal> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let Some((kid, encoding)) = keys
            .active()
            .and_then(|k| k.encoding.as_ref().map(|e| (&k.kid, e)))
        else {
            tracing::error!("no active token signing key");
            return Err(Refusal::ServerError);
        };
        let iat = now.unix_timestamp();
        let claims = AccessTokenClaims {
            iss: &self.issuer,
            sub: &client.client_id,
            aud: audience,
            client_id: &client.client_id,
            iat,
            exp: iat + secs(self.token_ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.to_owned(),
            cnf,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, encoding).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            Refusal::ServerError
        })
    }
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("token_ttl", &self.token_ttl)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

/// The one target service: `audience`, or `resource` (RFC 8707), or both if equal.
fn requested_audience<'a>(params: &Params<'a>) -> Result<&'a str, Refusal> {
    match (params.get("audience"), params.get("resource")) {
        (None, None) => Err(Refusal::InvalidTarget(
            "name one target service with audience (or resource)",
        )),
        (Some(a), Some(r)) if a != r => Err(Refusal::InvalidTarget(
            "audience and resource name different services; a token has exactly one",
        )),
        (Some(one), _) | (None, Some(one)) => Ok(one),
    }
}

/// The scopes to grant: the requested ones if all are registered, or every registered
/// scope when none is requested. Requested order is kept, duplicates dropped.
fn granted_scopes(requested: Option<&str>, registered: &[String]) -> Result<Vec<String>, Refusal> {
    let Some(requested) = requested else {
        if registered.is_empty() {
            return Err(Refusal::InvalidScope(
                "no scopes are registered for this audience",
            ));
        }
        return Ok(registered.to_vec());
    };
    let mut granted: Vec<String> = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let well_formed = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !well_formed {
            return Err(Refusal::InvalidScope("scope is malformed"));
        }
        if !registered.iter().any(|r| r == token) {
            return Err(Refusal::InvalidScope(
                "a requested scope is not registered for this client and audience",
            ));
        }
        if !granted.iter().any(|g| g == token) {
            granted.push(token.to_owned());
        }
    }
    if granted.is_empty() {
        return Err(Refusal::InvalidScope("scope is malformed"));
    }
    Ok(granted)
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "unsupported",
    }
}

/// Whole seconds of a duration, saturating.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn duplicate_parameters_are_refused_and_unknown_ones_ignored() {
        let f = form(&[("scope", "a"), ("scope", "b")]);
        assert!(matches!(
            Params::parse(&f),
            Err(Refusal::DuplicateParameter("scope"))
        ));
        let f = form(&[("foo", "1"), ("foo", "2"), ("scope", "")]);
        let p = Params::parse(&f).unwrap();
        assert_eq!(p.get("scope"), None, "empty value counts as absent");
    }

    #[test]
    fn grants_requested_subset_or_everything_registered() {
        let registered = vec!["invoices:read".to_owned(), "payments:write".to_owned()];
        assert_eq!(granted_scopes(None, &registered).unwrap(), registered);
        assert_eq!(
            granted_scopes(Some("invoices:read invoices:read"), &registered).unwrap(),
            vec!["invoices:read".to_owned()]
        );
        assert!(matches!(
            granted_scopes(Some("invoices:read admin"), &registered),
            Err(Refusal::InvalidScope(_))
        ));
        assert!(matches!(
            granted_scopes(Some("bad\"quote"), &registered),
            Err(Refusal::InvalidScope(_))
        ));
    }

    #[test]
    fn one_target_per_token() {
        let f = form(&[("audience", "billing"), ("resource", "orders")]);
        assert!(requested_audience(&Params::parse(&f).unwrap()).is_err());
        let f = form(&[("resource", "billing")]);
        assert_eq!(
            requested_audience(&Params::parse(&f).unwrap()).unwrap(),
            "billing"
        );
    }

    #[test]
    fn refuses_issuer_urls_with_query_or_no_scheme() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["cp.example.org", "https://cp.example.org/?x=1", "https://"] {
            assert!(matches!(
                TokenIssuer::open(dir.path(), bad, DEFAULT_TOKEN_TTL, DEFAULT_KEY_ROTATION),
                Err(TokenError::InvalidIssuerUrl(_))
            ));
        }
    }
}
