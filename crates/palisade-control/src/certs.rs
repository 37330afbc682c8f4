//! Reading what workloads send: CSRs (signature checked, identity and public key taken
//! out) and the SVIDs they present; serial numbers in their one canonical text form.

use palisade_identity::{svid_identity, SpiffeId};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate signing request whose signature verified: the only things Palisade
/// takes from it are the public key and the single URI SAN.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedCsr {
    /// The DER SubjectPublicKeyInfo the SVID will certify.
    pub spki_der: Vec<u8>,
    /// Every URI SAN the CSR asks for, as written.
    pub uri_sans: Vec<String>,
}

impl VerifiedCsr {
    /// The SPIFFE ID the CSR asks for when it names exactly `expected` in exactly one URI
    /// SAN; otherwise why not, in words (the `identity_mismatch` detail).
    pub fn check_identity(&self, expected: &SpiffeId) -> Result<(), String> {
        match self.uri_sans.as_slice() {
            [one] if one.parse::<SpiffeId>().ok().as_ref() == Some(expected) => Ok(()),
            [one] => Err(format!(
                "the CSR asks for {one}, but this request may only obtain {expected}"
            )),
            many => Err(format!(
                "the CSR must carry exactly one URI SAN ({expected}); it carries {}",
                many.len()
            )),
        }
    }
}

/// Parses a PEM CSR, verifies its self-signature and checks the key type.
///
/// Accepted keys: ECDSA P-256 (what [`ControlClient`](crate::ControlClient) makes), ECDSA
/// P-384 and Ed25519. Extensions other than SANs are ignored, not refused: the SVID's
/// fields come from Palisade's SVID profile, never from the CSR.
pub(crate) fn parse_csr(pem: &str) -> Result<VerifiedCsr, String> {
    let mut reader = pem.as_bytes();
    let mut csrs = Vec::new();
    for item in rustls_pemfile::read_all(&mut reader) {
        match item {
            Ok(rustls_pemfile::Item::Csr(der)) => csrs.push(der),
            Ok(_) => return Err("the PEM holds something other than a CSR".into()),
            Err(e) => return Err(format!("the CSR is not valid PEM: {e}")),
        }
    }
    let [der] = csrs.as_slice() else {
        return Err(format!(
            "expected exactly one PEM CERTIFICATE REQUEST, found {}",
            csrs.len()
        ));
    };
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| format!("the CSR is not valid DER: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the CSR".into());
    }
    csr.verify_signature()
        .map_err(|_| "the CSR's signature does not verify with its own public key".to_owned())?;
    let spki = &csr.certification_request_info.subject_pki;
    let algorithm = &spki.algorithm;
    let supported = if algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        curve.is_some_and(|c| c == OID_EC_P256 || c == OID_NIST_EC_P384)
    } else {
        algorithm.algorithm == OID_SIG_ED25519
    };
    if !supported {
        return Err("unsupported key type: use ECDSA P-256, ECDSA P-384 or Ed25519".into());
    }
    let mut uri_sans = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name {
                    uri_sans.push((*uri).to_owned());
                }
            }
        }
    }
    Ok(VerifiedCsr {
        spki_der: spki.raw.to_vec(),
        uri_sans,
    })
}

/// What the server knows about a verified client SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerSvid {
    /// The SPIFFE ID in the leaf.
    pub spiffe_id: SpiffeId,
    /// Its serial, canonical hex.
    pub serial: String,
    /// End of its validity.
    pub not_after: OffsetDateTime,
}

impl PeerSvid {
    /// Reads a leaf that rustls (and the SVID verifier) already accepted.
    pub fn from_leaf(leaf: &CertificateDer<'_>) -> Option<Self> {
        let spiffe_id = svid_identity(leaf).ok()?;
        let (_, x509) = X509Certificate::from_der(leaf.as_ref()).ok()?;
        Some(PeerSvid {
            spiffe_id,
            serial: hex(x509.raw_serial()),
            not_after: x509.validity().not_after.to_datetime(),
        })
    }
}

/// The serial number of a DER certificate in canonical form: lower-case hex without
/// separators, two digits per octet, without leading zero octets (`"0a1b"`; `"00"` for
/// zero), the same form as `palisade_identity::svid_facts`. This is the form
/// [`RevocationList`](crate::RevocationList) holds.
pub fn serial_hex(cert_der: &[u8]) -> Option<String> {
    let (_, x509) = X509Certificate::from_der(cert_der).ok()?;
    Some(hex(x509.raw_serial()))
}

/// Brings a serial written in hex (any case, optionally `:`-separated as openssl prints
/// it, leading zeros or not) to the canonical form of [`serial_hex`]; `None` if it is not
/// one.
pub fn normalize_serial(text: &str) -> Option<String> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // RFC 5280: at most 20 octets.
    if digits.is_empty() || digits.len() > 40 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(match trimmed.len() {
        0 => "00".to_owned(),
        n if n % 2 == 1 => format!("0{trimmed}"),
        _ => trimmed.to_owned(),
    })
}

fn hex(bytes: &[u8]) -> String {
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    normalize_serial(&text).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(text: &str) -> SpiffeId {
        text.parse().unwrap()
    }

    fn csr_for(uris: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn serials_are_normalised_to_lower_case_octets_without_leading_zero_octets() {
        assert_eq!(normalize_serial("00:1A:2b").as_deref(), Some("1a2b"));
        assert_eq!(normalize_serial("a1b").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("00:0a:1b").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("0000").as_deref(), Some("00"));
        assert_eq!(hex(&[0x00, 0x0a, 0x1b]), "0a1b");
        assert_eq!(hex(&[0x7f, 0x00]), "7f00");
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
        assert_eq!(normalize_serial(&"1".repeat(41)), None);
    }

    #[test]
    fn accepts_a_csr_naming_exactly_the_expected_id() {
        let csr = parse_csr(&csr_for(&["spiffe://example.org/ns/a/sa/b"])).unwrap();
        assert!(csr
            .check_identity(&id("spiffe://example.org/ns/a/sa/b"))
            .is_ok());
        assert!(csr
            .check_identity(&id("spiffe://example.org/ns/a/sa/c"))
            .is_err());
    }

    #[test]
    fn a_csr_with_two_uri_sans_or_none_matches_no_identity() {
        let expected = id("spiffe://example.org/ns/a/sa/b");
        let two = parse_csr(&csr_for(&[
            "spiffe://example.org/ns/a/sa/b",
            "spiffe://example.org/ns/a/sa/c",
        ]))
        .unwrap();
        assert!(two.check_identity(&expected).is_err());
        let none = parse_csr(&csr_for(&[])).unwrap();
        assert!(none.check_identity(&expected).is_err());
    }

    #[test]
    fn refuses_a_csr_whose_signature_does_not_verify() {
        let pem = csr_for(&["spiffe://example.org/ns/a/sa/b"]);
        let mut der = rustls_pemfile::read_one(&mut pem.as_bytes())
            .unwrap()
            .map(|item| match item {
                rustls_pemfile::Item::Csr(der) => der.as_ref().to_vec(),
                _ => Vec::new(),
            })
            .unwrap();
        // The last byte belongs to the signature.
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = pem_encode("CERTIFICATE REQUEST", &der);
        let err = parse_csr(&tampered).unwrap_err();
        assert!(err.contains("signature"), "{err}");
    }

    #[test]
    fn refuses_text_that_is_not_a_csr() {
        assert!(parse_csr("hello").is_err());
        assert!(parse_csr("").is_err());
    }

    fn pem_encode(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }
}
