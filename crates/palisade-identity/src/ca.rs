//! The Palisade certificate authority: a self-signed ECDSA P-256 root that issues SVIDs.
//!
//! The CA directory holds one root until a rollover starts; then several (see
//! [`crate::roots`]): the active one signs, and every root in the bundle is trusted.

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

/// CA certificate file inside `<state>/ca/`. With one root, that root; once a rollover
/// has started, the whole trust bundle with the active (signing) root first, so it stays
/// usable wherever a bundle is expected (`[control] bundle` defaults to it).
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA private key file inside `<state>/ca/` (mode 0600), while the CA has one root. A
/// rollover moves it to `root-<fingerprint>.key`, next to the other roots' keys.
pub const CA_KEY_FILE: &str = "ca.key";
/// Default SVID lifetime: one hour, per SPIFFE practice of short-lived credentials.
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(3600);
/// Lifetime of a root created by `ca init` or a rollover.
pub(crate) const CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start being valid slightly in the past to absorb clock skew between hosts.
pub(crate) const BACKDATE: Duration = Duration::from_secs(60);

/// The backdating of a certificate living `ttl`: [`BACKDATE`], but at most a tenth of the
/// lifetime, so short-lived SVIDs still renew at (about) half their real life.
fn backdate(ttl: Duration) -> Duration {
    BACKDATE.min(ttl / 10)
}

/// A loaded certificate authority for one trust domain: the active root (which signs)
/// and the trust bundle (every root peers must accept, the active one included).
pub struct CertificateAuthority {
    trust_domain: String,
    cert_pem: String,
    bundle_pem: String,
    retired_pem: String,
    fingerprint: String,
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
    /// invalidates every SVID it issued. The replaced roots' files are moved to
    /// `<state_dir>/ca/retired/`, never deleted.
    pub fn init(state_dir: &Path, trust_domain: &str, force: bool) -> Result<Self, IdentityError> {
        validate_trust_domain(trust_domain).map_err(IdentityError::BadTrustDomain)?;
        let dir = Self::dir(state_dir);
        let cert_path = dir.join(CA_CERT_FILE);
        let manifest = dir.join(crate::roots::ROOTS_FILE);
        if (cert_path.exists() || manifest.exists()) && !force {
            return Err(IdentityError::CaExists { path: cert_path });
        }
        let (key, params, cert) = new_root(trust_domain, false)?;
        fs::create_dir_all(&dir).map_err(|source| IdentityError::Io {
            path: dir.clone(),
            source,
        })?;
        crate::roots::archive_all(&dir)?;
        write_private(&dir.join(CA_KEY_FILE), &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        Ok(CertificateAuthority {
            trust_domain: trust_domain.to_owned(),
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            bundle_pem: cert.pem(),
            retired_pem: String::new(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `<state_dir>/ca/`: the active root signs; the bundle is every
    /// root not retired.
    pub fn load(state_dir: &Path) -> Result<Self, IdentityError> {
        let dir = Self::dir(state_dir);
        match crate::roots::read_manifest(&dir)? {
            Some(manifest) => {
                let roots = crate::roots::bundle_of(&dir, &manifest)?;
                Self::from_files(
                    &roots.active_cert,
                    &roots.active_key,
                    Some(roots.bundle_pem),
                    roots.retired_pem,
                )
            }
            None => {
                let cert_path = dir.join(CA_CERT_FILE);
                if !cert_path.exists() {
                    return Err(IdentityError::CaMissing { path: cert_path });
                }
                Self::from_files(&cert_path, &dir.join(CA_KEY_FILE), None, String::new())
            }
        }
    }

    /// A CA from a root's certificate and key files; `bundle_pem` defaults to the root.
    fn from_files(
        cert_path: &Path,
        key_path: &Path,
        bundle_pem: Option<String>,
        retired_pem: String,
    ) -> Result<Self, IdentityError> {
        let cert_pem = String::from_utf8_lossy(&read_file(cert_path)?).into_owned();
        let key_pem = String::from_utf8_lossy(&read_file(key_path)?).into_owned();
        let key = KeyPair::from_pem(&key_pem).map_err(|source| IdentityError::BadKey {
            path: key_path.to_path_buf(),
            source,
        })?;
        let der = read_certs(cert_path)?.remove(0);
        let trust_domain =
            ca_trust_domain(&der).ok_or_else(|| IdentityError::CaWithoutTrustDomain {
                path: cert_path.to_path_buf(),
            })?;
        let issuer =
            Issuer::from_ca_cert_der(&der, key).map_err(|source| IdentityError::BadKey {
                path: cert_path.to_path_buf(),
                source,
            })?;
        Ok(CertificateAuthority {
            trust_domain,
            fingerprint: fingerprint(der.as_ref()),
            bundle_pem: bundle_pem.unwrap_or_else(|| cert_pem.clone()),
            cert_pem,
            retired_pem,
            issuer,
        })
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The trust bundle peers verify SVIDs against, PEM: the active root first, then
    /// a prepared next root and the previous root while a rollover is under way.
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }

    /// The active root's certificate, PEM: the one that signs.
    pub fn root_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The SHA-256 fingerprint of the active root (lower-case hex of the DER).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The roots a rollover retired, PEM (empty when none): no longer trusted, known only
    /// to name the refusal of an SVID that still chains to one.
    pub fn retired_pem(&self) -> &str {
        &self.retired_pem
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

/// A new self-signed root for `trust_domain`: key, parameters and certificate. Roots made
/// by a rollover (`labelled`) carry their creation date and key digest in the common
/// name, so two roots of one trust domain never share a subject (path building and
/// operators tell them apart by it).
pub(crate) fn new_root(
    trust_domain: &str,
    labelled: bool,
) -> Result<(KeyPair, CertificateParams, rcgen::Certificate), IdentityError> {
    use rcgen::PublicKeyData;
    let key = KeyPair::generate().map_err(IdentityError::Generate)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade");
    let cn = if labelled {
        let date = OffsetDateTime::now_utc()
            .format(time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_default();
        let key_id = fingerprint(&key.subject_public_key_info());
        format!(
            "Palisade root CA for {trust_domain} ({date}, key {})",
            &key_id[..8]
        )
    } else {
        format!("Palisade root CA for {trust_domain}")
    };
    dn.push(DnType::CommonName, cn);
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
    Ok((key, params, cert))
}

/// The SHA-256 fingerprint of a certificate: lower-case hex of the digest of its DER (what
/// `openssl x509 -fingerprint -sha256` prints, without the colons).
pub fn fingerprint(cert_der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Replaces `bundle.pem` in an SVID directory atomically (readers never see half a
/// bundle): what a sidecar does when the control plane serves a new trust bundle.
pub fn write_bundle(dir: &Path, bundle_pem: &str) -> Result<(), IdentityError> {
    write_atomic(&dir.join(BUNDLE_FILE), bundle_pem, false)
}

/// The trust domain named by a CA certificate's `spiffe://<td>` URI SAN.
pub(crate) fn ca_trust_domain(der: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
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
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), IdentityError> {
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

pub(crate) fn write_public(path: &Path, contents: &str) -> Result<(), IdentityError> {
    fs::write(path, contents).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `contents` atomically (a temporary file renamed over it), so a
/// concurrent reader sees the old or the new text, never a mix. `private` files are
/// created with mode 0600.
pub(crate) fn write_atomic(
    path: &Path,
    contents: &str,
    private: bool,
) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    if let Err(source) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io(source));
    }
    // Persist the rename itself; a directory that cannot be opened for sync is no error.
    if let Some(parent) = path.parent() {
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}
