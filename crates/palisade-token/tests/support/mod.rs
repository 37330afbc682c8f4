//! Shared test fixtures: a CA issuing SVIDs as client certificates, an issuer in a
//! tempdir, client keys, form bodies and client assertions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_identity::{CertificateAuthority, SpiffeId};
use palisade_token::{
    ClientAuth, ClientRegistry, RegisteredClient, TokenIssuer, TokenResponse, TokenVerifier,
    DEFAULT_LEEWAY, DEFAULT_TOKEN_TTL, JWT_BEARER_ASSERTION_TYPE,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use tempfile::TempDir;
use time::OffsetDateTime;

pub const ISSUER: &str = "https://control.example.org";
pub const ORDERS: &str = "spiffe://example.org/ns/prod/sa/orders";
pub const BILLING_SVC: &str = "billing";
pub const REPORTING: &str = "reporting-job";
pub const ROTATION: Duration = Duration::from_secs(3600);

/// A trust domain's CA and an issuer, both in one tempdir.
pub struct World {
    pub dir: TempDir,
    pub ca: CertificateAuthority,
    pub issuer: TokenIssuer,
    /// The `private_key_jwt` client's private key (PKCS#8 PEM).
    pub reporting_key_pem: String,
    pub clients: ClientRegistry,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(&dir.path().join("pki"), "example.org", false).unwrap();
        let issuer = TokenIssuer::open(
            &dir.path().join("tokens"),
            ISSUER,
            DEFAULT_TOKEN_TTL,
            ROTATION,
        )
        .unwrap();
        let reporting = rcgen::KeyPair::generate().unwrap();
        let clients = ClientRegistry::try_new(vec![
            RegisteredClient {
                client_id: ORDERS.into(),
                auth: ClientAuth::TlsClientAuth,
                scopes: HashMap::from([
                    (
                        BILLING_SVC.to_owned(),
                        vec!["invoices:read".to_owned(), "payments:write".to_owned()],
                    ),
                    ("customers".to_owned(), vec!["customers:read".to_owned()]),
                ]),
            },
            RegisteredClient {
                client_id: REPORTING.into(),
                auth: ClientAuth::PrivateKeyJwt {
                    public_key_pem: reporting.public_key_pem(),
                },
                scopes: HashMap::from([(BILLING_SVC.to_owned(), vec!["invoices:read".to_owned()])]),
            },
        ])
        .unwrap();
        World {
            dir,
            ca,
            issuer,
            reporting_key_pem: reporting.serialize_pem(),
            clients,
        }
    }

    /// DER of a fresh SVID for `id` from this world's CA.
    pub fn svid_der(&self, id: &str) -> Vec<u8> {
        let id: SpiffeId = id.parse().unwrap();
        let svid = self.ca.issue(&id, Duration::from_secs(3600)).unwrap();
        CertificateDer::from_pem_slice(svid.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    /// A verifier for `audience` loaded with this issuer's current JWKS.
    pub fn verifier(&self, audience: &str) -> TokenVerifier {
        let verifier = TokenVerifier::new(ISSUER, audience, DEFAULT_LEEWAY);
        verifier.set_jwks(&self.issuer.jwks()).unwrap();
        verifier
    }

    /// Client credentials over tls_client_auth as ORDERS with `cert`.
    pub fn tls_request(
        &self,
        extra: &[(&str, &str)],
        cert: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> TokenResponse {
        let mut pairs = vec![("grant_type", "client_credentials"), ("client_id", ORDERS)];
        pairs.extend_from_slice(extra);
        self.issuer
            .token_endpoint(&form(&pairs), cert, &self.clients, now)
    }

    /// Client credentials over private_key_jwt with an already-made assertion.
    pub fn jwt_request(
        &self,
        assertion: &str,
        extra: &[(&str, &str)],
        now: OffsetDateTime,
    ) -> TokenResponse {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", assertion),
        ];
        pairs.extend_from_slice(extra);
        self.issuer
            .token_endpoint(&form(&pairs), None, &self.clients, now)
    }

    /// Standard assertion claims for REPORTING at `now` with a fresh jti.
    pub fn assertion_claims(&self, now: OffsetDateTime) -> Value {
        json!({
            "iss": REPORTING,
            "sub": REPORTING,
            "aud": self.issuer.token_endpoint_url(),
            "iat": now.unix_timestamp(),
            "exp": now.unix_timestamp() + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// An ES256 assertion over `claims`, signed with REPORTING's key.
    pub fn sign_assertion(&self, claims: &Value) -> String {
        es256(&self.reporting_key_pem, claims)
    }
}

pub fn es256(private_pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &key).unwrap()
}

pub fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The access token of a successful response.
pub fn access_token(response: &TokenResponse) -> String {
    assert_eq!(response.status, 200, "{}", response.body);
    response.body["access_token"].as_str().unwrap().to_owned()
}

/// Header and payload of a compact JWT, decoded without checks.
pub fn decode_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = engine.decode(parts.next().unwrap()).unwrap();
    let payload = engine.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&payload).unwrap(),
    )
}

/// A compact JWS from raw header/payload JSON and a signature part.
pub fn compact(header: &Value, payload: &Value, signature: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(serde_json::to_vec(header).unwrap()),
        engine.encode(serde_json::to_vec(payload).unwrap()),
        signature
    )
}

pub fn assert_refused(response: &TokenResponse, status: u16, error: &str, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.body["error"], error, "{}", response.body);
    assert_eq!(response.outcome_code, Some(code), "{}", response.body);
    assert!(response.body["error_description"].is_string());
    assert!(response.body.get("access_token").is_none());
}
