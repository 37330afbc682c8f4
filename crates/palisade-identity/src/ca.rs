//! The Palisade certificate authority: a self-signed ECDSA P-256 root that issues SVIDs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::svid::{read_certs, read_file, BUNDLE_FILE, SVID_CERT_FILE, SVID_KEY_FILE};
use crate::{validate_trust_domain, IdentityError, SpiffeId};

/// CA certificate file inside `<state>/ca/`.
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA private key file inside `<state>/ca/` (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// Default SVID lifetime: one hour, per SPIFFE practice of short-lived credentials.
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(3600);
/// Lifetime of a root created by `ca init`.
const CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start being valid slightly in the past to absorb clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(60);

/// The backdating of a certificate living `ttl`: [`BACKDATE`], but at most a tenth of the
/// lifetime, so short-lived SVIDs still renew at (about) half their real life.
fn backdate(ttl: Duration) -> Duration {
    BACKDATE.min(ttl / 10)
}

/// A loaded certificate authority for one trust domain.
pub struct CertificateAuthority {
    trust_domain: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly issued SVID and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    /// The identity in the certificate.
    pub spiffe_id: SpiffeId,
    /// The leaf certificate.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// An SVID signed for a public key the workload holds: no private key ever passes here.
#[derive(Debug, Clone)]
pub struct SignedSvid {
    /// The identity in the certificate.
    pub spiffe_id: SpiffeId,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Start of validity (a minute before issuance, for clock skew).
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl CertificateAuthority {
    /// The directory holding the CA inside a state directory.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("ca")
    }

    /// Creates a new root CA for `trust_domain` in `<state_dir>/ca/`.
    ///
    /// Refuses to replace an existing CA unless `force` is set: replacing a root
    /// invalidates every SVID it issued.
    pub fn init(state_dir: &Path, trust_domain: &str, force: bool) -> Result<Self, IdentityError> {
        validate_trust_domain(trust_domain).map_err(IdentityError::BadTrustDomain)?;
        let dir = Self::dir(state_dir);
        let cert_path = dir.join(CA_CERT_FILE);
        if cert_path.exists() && !force {
            return Err(IdentityError::CaExists { path: cert_path });
        }
        let key = KeyPair::generate().map_err(IdentityError::Generate)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Palisade");
        dn.push(
            DnType::CommonName,
            format!("Palisade root CA for {trust_domain}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // The SPIFFE spec gives a signing certificate the trust domain's own ID as URI SAN.
        params.subject_alt_names = vec![SanType::URI(
            format!("spiffe://{trust_domain}")
                .try_into()
                .map_err(IdentityError::Generate)?,
        )];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_TTL;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(IdentityError::Generate)?;
        fs::create_dir_all(&dir).map_err(|source| IdentityError::Io {
            path: dir.clone(),
            source,
        })?;
        write_private(&dir.join(CA_KEY_FILE), &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        Ok(CertificateAuthority {
            trust_domain: trust_domain.to_owned(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `<state_dir>/ca/`.
    pub fn load(state_dir: &Path) -> Result<Self, IdentityError> {
        let dir = Self::dir(state_dir);
        let cert_path = dir.join(CA_CERT_FILE);
        if !cert_path.exists() {
            return Err(IdentityError::CaMissing { path: cert_path });
        }
        let cert_pem = String::from_utf8_lossy(&read_file(&cert_path)?).into_owned();
        let key_path = dir.join(CA_KEY_FILE);
        let key_pem = String::from_utf8_lossy(&read_file(&key_path)?).into_owned();
        let key = KeyPair::from_pem(&key_pem).map_err(|source| IdentityError::BadKey {
            path: key_path,
            source,
        })?;
        let der = read_certs(&cert_path)?.remove(0);
        let trust_domain =
            ca_trust_domain(&der).ok_or_else(|| IdentityError::CaWithoutTrustDomain {
                path: cert_path.clone(),
            })?;
        let issuer =
            Issuer::from_ca_cert_der(&der, key).map_err(|source| IdentityError::BadKey {
                path: cert_path,
                source,
            })?;
        Ok(CertificateAuthority {
            trust_domain,
            cert_pem,
            issuer,
        })
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate, PEM: the trust bundle peers verify SVIDs against.
    pub fn bundle_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues an X.509-SVID for `id`, valid from now (less a minute of skew) for `ttl`.
    ///
    /// The key pair is generated here, for the CLI's `ca issue`; the control plane's CSR
    /// flow signs keys generated by workloads instead.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<IssuedSvid, IdentityError> {
        let now = OffsetDateTime::now_utc();
        self.issue_between(id, now - backdate(ttl), now + ttl)
    }

    /// Issues an SVID with an explicit validity window (tests use it for expired SVIDs).
    pub fn issue_between(
        &self,
        id: &SpiffeId,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedSvid, IdentityError> {
        self.check_request(id, not_before, not_after)?;
        let key = KeyPair::generate().map_err(IdentityError::Generate)?;
        let cert = self.sign(id, &key, not_before, not_after)?;
        Ok(IssuedSvid {
            spiffe_id: id.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// Signs an X.509-SVID for `id` certifying `spki_der`, a DER SubjectPublicKeyInfo whose
    /// private key the workload generated and keeps (the control plane's CSR flow). Valid
    /// from now (less a minute of skew) for `ttl`; the same [`svid_params`] as
    /// [`issue`](Self::issue). Supported keys: those rcgen can name (ECDSA P-256/P-384,
    /// Ed25519, RSA); anything else is [`IdentityError::UnsupportedPublicKey`].
    pub fn sign_public_key(
        &self,
        id: &SpiffeId,
        spki_der: &[u8],
        ttl: Duration,
    ) -> Result<SignedSvid, IdentityError> {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = (now - backdate(ttl), now + ttl);
        self.check_request(id, not_before, not_after)?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(IdentityError::UnsupportedPublicKey)?;
        let cert = svid_params(id, not_before, not_after)?
            .signed_by(&public_key, &self.issuer)
            .map_err(IdentityError::Generate)?;
        Ok(SignedSvid {
            spiffe_id: id.clone(),
            cert_pem: cert.pem(),
            not_before,
            not_after,
        })
    }

    /// The checks every issuance makes: trust domain, workload path, non-empty validity.
    fn check_request(
        &self,
        id: &SpiffeId,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        if id.trust_domain() != self.trust_domain {
            return Err(IdentityError::ForeignTrustDomain {
                id: id.to_string(),
                ca_trust_domain: self.trust_domain.clone(),
            });
        }
        if id.path().is_empty() {
            return Err(IdentityError::NoWorkloadPath { id: id.to_string() });
        }
        if not_after <= not_before {
            return Err(IdentityError::EmptyValidity);
        }
        Ok(())
    }

    fn sign(
        &self,
        id: &SpiffeId,
        public_key: &KeyPair,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<rcgen::Certificate, IdentityError> {
        svid_params(id, not_before, not_after)?
            .signed_by(public_key, &self.issuer)
            .map_err(IdentityError::Generate)
    }
}

/// Certificate parameters of a leaf X.509-SVID for `id`: one URI SAN, CA=false,
/// digitalSignature (plus the key-exchange usages TLS 1.2 RSA/ECDH suites may need),
/// serverAuth and clientAuth, a random serial.
///
/// Public so tools and tests can sign SVIDs with keys this CA type does not manage;
/// [`CertificateAuthority::issue`] is the normal way to get one.
pub fn svid_params(
    id: &SpiffeId,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(
        id.as_str().try_into().map_err(IdentityError::Generate)?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    Ok(params)
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

/// Writes an SVID directory: `svid.pem`, `svid.key` (0600) and `bundle.pem`.
pub fn write_svid_dir(
    dir: &Path,
    svid: &IssuedSvid,
    bundle_pem: &str,
) -> Result<(), IdentityError> {
    fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&dir.join(SVID_KEY_FILE), &svid.key_pem)?;
    write_public(&dir.join(SVID_CERT_FILE), &svid.cert_pem)?;
    write_public(&dir.join(BUNDLE_FILE), bundle_pem)
}

/// The trust domain named by a CA certificate's `spiffe://<td>` URI SAN.
fn ca_trust_domain(der: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
    let (_, x509) = X509Certificate::from_der(der.as_ref()).ok()?;
    x509.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                san.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(uri) => uri
                        .parse::<SpiffeId>()
                        .ok()
                        .map(|id| id.trust_domain().to_owned()),
                    _ => None,
                })
            }
            _ => None,
        })
}

/// A random positive 127-bit serial (RFC 5280 asks for up to 20 octets, unpredictable).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Writes a secret with mode 0600, created that way so it is never readable by others.
fn write_private(path: &Path, contents: &str) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its old mode on open: tighten it explicitly.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn write_public(path: &Path, contents: &str) -> Result<(), IdentityError> {
    fs::write(path, contents).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}
