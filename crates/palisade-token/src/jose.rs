//! Small JOSE helpers shared by the issuer and the verifier: base64url, reading a
//! compact JWS's header and payload without trusting them, JWK thumbprints and
//! certificate thumbprints.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Longest compact JWT accepted anywhere in this crate. Tokens Palisade issues are well
/// under 1 KiB; the bound keeps a hostile input from costing more than a few allocations.
pub(crate) const MAX_JWT_LEN: usize = 8 * 1024;

/// base64url without padding (RFC 7515 §2).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` when it is not.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `x5t#S256` of a certificate (RFC 8705 §3.1): base64url(SHA-256(DER)).
pub fn certificate_thumbprint(cert_der: &[u8]) -> String {
    b64url(&Sha256::digest(cert_der))
}

/// The JOSE header fields this crate looks at, read before any signature check.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHeader {
    /// Signature algorithm as written (may be `none`, `HS256`, anything).
    pub alg: Option<String>,
    /// Media type of the token (`at+jwt` for RFC 9068 access tokens).
    pub typ: Option<String>,
    /// Key id.
    pub kid: Option<String>,
}

/// A compact JWS split into its parts, with the header decoded.
pub(crate) struct UntrustedJwt {
    /// The decoded header.
    pub header: RawHeader,
    /// The decoded payload as JSON (not yet verified).
    pub payload: serde_json::Value,
}

/// Why a compact JWS could not even be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseFailure {
    /// Too long for any token this crate deals with.
    TooLong,
    /// Not three base64url parts, or a part is not JSON.
    NotAJws,
}

/// Reads the header and payload of a compact JWS (three base64url parts) without
/// checking the signature: only for choosing the key and for error messages.
pub(crate) fn read_untrusted(token: &str) -> Result<UntrustedJwt, ParseFailure> {
    if token.len() > MAX_JWT_LEN {
        return Err(ParseFailure::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseFailure::NotAJws);
    };
    if header.is_empty() || payload.is_empty() || b64url_decode(signature).is_none() {
        return Err(ParseFailure::NotAJws);
    }
    let header: RawHeader = b64url_decode(header)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(ParseFailure::NotAJws)?;
    let payload: serde_json::Value = b64url_decode(payload)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(ParseFailure::NotAJws)?;
    if !payload.is_object() {
        return Err(ParseFailure::NotAJws);
    }
    Ok(UntrustedJwt { header, payload })
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `wanted` is one of the audiences.
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(aud) => aud == wanted,
            Audience::Many(auds) => auds.iter().any(|aud| aud == wanted),
        }
    }
}

/// RFC 7638 thumbprint of a P-256 public key: base64url(SHA-256 of the canonical JWK
/// `{"crv","kty","x","y"}` with members in lexicographic order and no whitespace).
pub(crate) fn ec_jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64url(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example_shape() {
        // Thumbprints are 32 bytes of SHA-256, base64url without padding: 43 characters.
        let t = ec_jwk_thumbprint("abc", "def");
        assert_eq!(t.len(), 43);
        assert!(!t.contains('='));
    }

    #[test]
    fn rejects_tokens_that_are_not_three_parts() {
        assert_eq!(
            read_untrusted("a.b").err(),
            Some(ParseFailure::NotAJws),
            "two parts"
        );
        assert_eq!(read_untrusted("a.b.c.d").err(), Some(ParseFailure::NotAJws));
        let long = "a".repeat(MAX_JWT_LEN + 1);
        assert_eq!(read_untrusted(&long).err(), Some(ParseFailure::TooLong));
    }

    #[test]
    fn reads_header_and_payload_of_unsigned_token() {
        let header = b64url(br#"{"alg":"none","typ":"at+jwt"}"#);
        let payload = b64url(br#"{"sub":"x"}"#);
        let jwt = read_untrusted(&format!("{header}.{payload}.")).unwrap();
        assert_eq!(jwt.header.alg.as_deref(), Some("none"));
        assert_eq!(jwt.payload["sub"], "x");
    }

    #[test]
    fn audience_accepts_string_or_array() {
        let one: Audience = serde_json::from_str(r#""billing""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["a","billing"]"#).unwrap();
        assert!(one.contains("billing") && many.contains("billing"));
        assert!(!many.contains("orders"));
    }
}
