//! Registered clients and how they authenticate: `tls_client_auth` (RFC 8705 §2.1, the
//! SPIFFE ID of the verified client certificate) or `private_key_jwt` (RFC 7523 §2.2).
//!
//! Client secrets (`client_secret_basic`, `client_secret_post`) are not supported, by
//! design: a shared secret can be copied and replayed from anywhere, which is exactly the
//! network trust Palisade removes.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::TokenError;

/// A client allowed to get tokens: who it is, how it authenticates, what it may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client id: a SPIFFE ID for mesh workloads (`tls_client_auth`), any id for
    /// `private_key_jwt` clients.
    pub client_id: String,
    /// How the client proves it is `client_id`.
    pub auth: ClientAuth,
    /// Audience (target service name) → scopes the client may ask for on it.
    pub scopes: HashMap<String, Vec<String>>,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// RFC 8705 `tls_client_auth`: `client_id` must equal the SPIFFE ID of the
    /// connection's verified client certificate (an X.509-SVID). Tokens are bound to that
    /// certificate (`cnf.x5t#S256`).
    TlsClientAuth,
    /// RFC 7523 `private_key_jwt`: a `client_assertion` JWT signed with this key.
    PrivateKeyJwt {
        /// The client's public key, PEM (`PUBLIC KEY`; ES256 P-256 or RS256).
        public_key_pem: String,
    },
}

/// A client's assertion-verification key, parsed once.
pub(crate) struct ClientKey {
    /// The only algorithm accepted for this key.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

/// The clients the token endpoint knows, by `client_id`.
pub struct ClientRegistry {
    clients: HashMap<String, RegisteredClient>,
    keys: HashMap<String, ClientKey>,
}

impl ClientRegistry {
    /// Builds a registry. A client whose public key cannot be parsed is kept but can never
    /// authenticate (logged as a warning); a repeated `client_id` keeps the first entry.
    /// Use [`ClientRegistry::try_new`] to refuse such a configuration instead.
    pub fn new(clients: Vec<RegisteredClient>) -> Self {
        let (registry, problems) = Self::build(clients);
        for problem in problems {
            tracing::warn!(error = %problem, "token client registry");
        }
        registry
    }

    /// Builds a registry, refusing unparseable keys and repeated client ids.
    pub fn try_new(clients: Vec<RegisteredClient>) -> Result<Self, TokenError> {
        let (registry, mut problems) = Self::build(clients);
        match problems.is_empty() {
            true => Ok(registry),
            false => Err(problems.remove(0)),
        }
    }

    /// The client registered as `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    /// The parsed assertion key of a `private_key_jwt` client.
    pub(crate) fn key(&self, client_id: &str) -> Option<&ClientKey> {
        self.keys.get(client_id)
    }

    fn build(clients: Vec<RegisteredClient>) -> (Self, Vec<TokenError>) {
        let mut problems = Vec::new();
        let mut registry = ClientRegistry {
            clients: HashMap::new(),
            keys: HashMap::new(),
        };
        for client in clients {
            if registry.clients.contains_key(&client.client_id) {
                problems.push(TokenError::DuplicateClient {
                    client_id: client.client_id.clone(),
                });
                continue;
            }
            if let ClientAuth::PrivateKeyJwt { public_key_pem } = &client.auth {
                match parse_client_key(public_key_pem) {
                    Ok(key) => {
                        registry.keys.insert(client.client_id.clone(), key);
                    }
                    Err(reason) => problems.push(TokenError::InvalidClientKey {
                        client_id: client.client_id.clone(),
                        reason,
                    }),
                }
            }
            registry.clients.insert(client.client_id.clone(), client);
        }
        (registry, problems)
    }
}

impl fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.clients.keys().collect();
        ids.sort();
        f.debug_struct("ClientRegistry")
            .field("clients", &ids)
            .finish()
    }
}

/// Smallest DER encoding of an RSA public key accepted (see [`parse_client_key`]).
const MIN_RSA_DER_LEN: usize = 260;

/// Parses a client's public key: a P-256 EC key (ES256) or an RSA key of at least
/// 2048 bits (RS256).
fn parse_client_key(pem: &str) -> Result<ClientKey, String> {
    if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
        // Uncompressed SEC1 point of P-256: 0x04 || X(32) || Y(32).
        let point = key.as_bytes();
        if point.len() != 65 || point.first() != Some(&4) {
            return Err("EC key is not on P-256 (ES256 needs P-256)".into());
        }
        return Ok(ClientKey {
            alg: Algorithm::ES256,
            key,
        });
    }
    match DecodingKey::from_rsa_pem(pem.as_bytes()) {
        // A PKCS#1 RSAPublicKey of a 2048-bit modulus is 270 bytes; anything under 260
        // has a modulus shorter than 2048 bits.
        Ok(key) if key.as_bytes().len() < MIN_RSA_DER_LEN => {
            Err("RSA key is shorter than 2048 bits".into())
        }
        Ok(key) => Ok(ClientKey {
            alg: Algorithm::RS256,
            key,
        }),
        Err(_) => Err("not a PEM EC P-256 or RSA public key".into()),
    }
}
