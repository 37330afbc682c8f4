//! A control plane under test: a throwaway CA, the server on 127.0.0.1 with real TLS, the
//! audit log in a real SQLite file, a client, and raw-request helpers for what the client
//! never sends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use palisade_audit::{AuditQuery, AuditRecord, AuditWriter, SinkConfig};
use palisade_control::{
    ControlClient, ControlServer, ControlServerConfig, ControlState, RunningControl,
};
use palisade_identity::{
    write_svid_dir, CertificateAuthority, IssuedSvid, SpiffeId, SvidMaterial, CA_CERT_FILE,
};
use palisade_testkit::{client_config, tls_request_with, TestPki, TestResponse};

/// The trust domain of every test.
pub const TRUST_DOMAIN: &str = "example.org";

/// A running control plane and everything around it.
pub struct Harness {
    pub pki: TestPki,
    pub control: Option<RunningControl>,
    pub writer: Option<AuditWriter>,
    pub audit_db: PathBuf,
    pub client: ControlClient,
}

impl Harness {
    /// Starts a control plane with the default SVID TTL (1 h).
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// Starts a control plane whose configuration `configure` adjusts first.
    pub async fn start_with(configure: impl FnOnce(&TestPki, &mut ControlServerConfig)) -> Self {
        let pki = TestPki::new(TRUST_DOMAIN);
        let audit_db = pki.dir.path().join("audit.db");
        let writer = AuditWriter::start(
            SinkConfig::Sqlite {
                path: audit_db.clone(),
            },
            1024,
        )
        .unwrap();
        let mut config = ControlServerConfig::new(
            pki.state_dir(),
            "127.0.0.1:0".parse().unwrap(),
            TRUST_DOMAIN,
            writer.handle(),
        );
        configure(&pki, &mut config);
        let control = ControlServer::start(config).await.unwrap();
        let client = ControlClient::new(
            &format!("https://{}", control.addr),
            pki.ca.bundle_pem(),
            TRUST_DOMAIN,
        )
        .unwrap();
        Harness {
            pki,
            control: Some(control),
            writer: Some(writer),
            audit_db,
            client,
        }
    }

    /// The control plane's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.control.as_ref().unwrap().addr
    }

    /// The control plane's identity.
    pub fn control_id(&self) -> SpiffeId {
        self.control.as_ref().unwrap().spiffe_id.clone()
    }

    /// The state as the CLI sees it: its own connection to the same database.
    pub fn state(&self) -> ControlState {
        ControlState::open(&self.pki.state_dir()).unwrap()
    }

    /// A workload ID `spiffe://example.org/ns/test/sa/<name>`.
    pub fn id(&self, name: &str) -> SpiffeId {
        self.pki.id(name)
    }

    /// A join token for `id`, valid for 10 minutes.
    pub fn token(&self, id: &SpiffeId) -> String {
        self.state()
            .create_join_token(id, Duration::from_secs(600))
            .unwrap()
    }

    /// Writes an issued SVID (with the bundle) as a sidecar would and loads it back.
    pub fn install(&self, label: &str, svid: &IssuedSvid) -> (PathBuf, SvidMaterial) {
        let dir = self.pki.dir.path().join("workloads").join(label);
        write_svid_dir(&dir, svid, self.pki.ca.bundle_pem()).unwrap();
        let material = SvidMaterial::load_dir(&dir).unwrap();
        (dir, material)
    }

    /// The CA certificate file (a bundle for clients without an SVID).
    pub fn bundle_path(&self) -> PathBuf {
        CertificateAuthority::dir(&self.pki.state_dir()).join(CA_CERT_FILE)
    }

    /// One raw HTTP/1.1 request over TLS, presenting the SVID in `svid_dir` if given.
    pub async fn raw(
        &self,
        svid_dir: Option<&std::path::Path>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<TestResponse, String> {
        let bundle = match svid_dir {
            Some(dir) => dir.join("bundle.pem"),
            None => self.bundle_path(),
        };
        let config = client_config(svid_dir, &bundle, &self.control_id());
        tls_request_with(self.addr(), config, method, path, headers, body).await
    }

    /// Stops the control plane, flushes the audit log and returns every record.
    pub async fn finish(mut self) -> Vec<AuditRecord> {
        self.control.take().unwrap().shutdown().await;
        let writer = self.writer.take().unwrap();
        tokio::task::spawn_blocking(move || writer.shutdown().unwrap())
            .await
            .unwrap();
        palisade_audit::query(&self.audit_db, &AuditQuery::default()).unwrap()
    }
}

/// A PEM CSR for `uri` signed by a fresh P-256 key.
pub fn csr_for(uri: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// The DER of the first certificate in a PEM text.
pub fn cert_der(pem: &str) -> Vec<u8> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The `(status, code)` of a refusal, or a panic naming what came back instead.
pub fn refusal<T: std::fmt::Debug>(
    result: Result<T, palisade_control::ControlError>,
) -> (u16, String) {
    match result {
        Err(palisade_control::ControlError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
