//! The live trust bundle over real TLS on 127.0.0.1: a verifier over roots A and B
//! accepts SVIDs of both; once the bundle holds only B, an SVID of A is refused as
//! signed by a retired root, while a connection opened before keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use palisade_identity::tls::{
    classify_handshake_error, inbound_server_config_with_bundle, outbound_client_config_with_bundle,
};
use palisade_identity::{
    write_svid_dir, BundleChange, CertificateAuthority, IssuedSvid, Revocations, SpiffeId,
    SvidMaterial, SvidStore, TrustBundle,
};
use rustls::{ClientConnection, ServerConfig, ServerConnection, StreamOwned};

const TRUST_DOMAIN: &str = "example.org";

/// Two roots of one trust domain, as a rollover leaves them after `activate`: SVIDs from
/// the old root (A) and from the new one (B).
struct Pki {
    dir: tempfile::TempDir,
    a_pem: String,
    b_pem: String,
    a: CertificateAuthority,
    b: CertificateAuthority,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let a = CertificateAuthority::init(dir.path(), TRUST_DOMAIN, false).unwrap();
        CertificateAuthority::prepare_root(dir.path()).unwrap();
        CertificateAuthority::activate_root(dir.path()).unwrap();
        let b = CertificateAuthority::load(dir.path()).unwrap();
        Pki {
            a_pem: a.root_pem().to_owned(),
            b_pem: b.root_pem().to_owned(),
            a,
            b,
            dir,
        }
    }

    fn both(&self) -> String {
        format!("{}{}", self.a_pem, self.b_pem)
    }

    fn svid(&self, ca: &CertificateAuthority, label: &str, name: &str) -> SvidMaterial {
        let id = SpiffeId::new(TRUST_DOMAIN, &format!("/ns/test/sa/{name}")).unwrap();
        let issued: IssuedSvid = ca.issue(&id, Duration::from_secs(600)).unwrap();
        let out = self.dir.path().join("svids").join(label);
        write_svid_dir(&out, &issued, &self.both()).unwrap();
        SvidMaterial::load_dir(&out).unwrap()
    }
}

fn server_id() -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, "/ns/test/sa/server").unwrap()
}

/// An mTLS echo server. Each handshake's outcome (`Ok` or the refusal code) is sent on
/// the returned channel, in connection order.
fn serve(config: ServerConfig) -> (SocketAddr, mpsc::Receiver<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(config);
    let (outcomes, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (config, outcomes) = (config.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), stream);
                while tls.conn.is_handshaking() {
                    if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                        let _ = outcomes.send(Err(classify_handshake_error(&e).code.to_owned()));
                        return;
                    }
                }
                let _ = outcomes.send(Ok(()));
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 || tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, received)
}

type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connects presenting `svid`, trusting `trust` for the server, which must be `server_id`.
fn connect(
    addr: SocketAddr,
    svid: &SvidMaterial,
    trust: &Arc<TrustBundle>,
) -> Result<Client, String> {
    let config = outbound_client_config_with_bundle(
        SvidStore::new(svid).unwrap(),
        trust.clone(),
        server_id(),
        Revocations::new(),
    )
    .unwrap();
    let name = rustls::pki_types::ServerName::try_from("palisade.invalid").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| classify_handshake_error(&e).code.to_owned())?;
    }
    Ok(tls)
}

/// One round trip on an open connection. With TLS 1.3 the server checks the client's
/// certificate after the client finished its handshake: a refusal shows up here.
fn ping(tls: &mut Client) -> Result<(), String> {
    tls.write_all(b"ping").map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut answer = [0u8; 4];
    tls.read_exact(&mut answer).map_err(|e| e.to_string())?;
    assert_eq!(&answer, b"ping");
    Ok(())
}

fn outcome(outcomes: &mpsc::Receiver<Result<(), String>>) -> Result<(), String> {
    outcomes.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn a_bundle_with_both_roots_accepts_both_and_after_replacing_refuses_the_retired_one() {
    let pki = Pki::new();
    let server_svid = pki.svid(&pki.b, "server", "server");
    let from_a = pki.svid(&pki.a, "orders-a", "orders");
    let from_b = pki.svid(&pki.b, "orders-b", "orders");

    let server_bundle = TrustBundle::from_pem(&pki.both()).unwrap();
    let config = inbound_server_config_with_bundle(
        SvidStore::new(&server_svid).unwrap(),
        server_bundle.clone(),
        vec![TRUST_DOMAIN.into()],
        Revocations::new(),
        true,
    )
    .unwrap();
    let (addr, outcomes) = serve(config);
    let client_trust = TrustBundle::from_pem(&pki.both()).unwrap();

    let mut opened_with_a = connect(addr, &from_a, &client_trust).unwrap();
    ping(&mut opened_with_a).unwrap();
    assert_eq!(outcome(&outcomes), Ok(()));
    let mut with_b = connect(addr, &from_b, &client_trust).unwrap();
    ping(&mut with_b).unwrap();
    assert_eq!(outcome(&outcomes), Ok(()));

    // The rollover retires A: only B is trusted from the next handshake on.
    let change = server_bundle.replace_pem(&pki.b_pem).unwrap();
    assert_eq!(
        change,
        BundleChange {
            added: 0,
            removed: 1
        }
    );

    // Connections opened before keep going.
    ping(&mut opened_with_a).unwrap();
    ping(&mut with_b).unwrap();
    // A new connection with A's SVID is refused, and the refusal says why.
    let refused = connect(addr, &from_a, &client_trust).and_then(|mut tls| ping(&mut tls));
    assert!(refused.is_err());
    assert_eq!(
        outcome(&outcomes),
        Err("palisade.identity.retired_root".to_owned())
    );
    let mut new_b = connect(addr, &from_b, &client_trust).unwrap();
    ping(&mut new_b).unwrap();
    assert_eq!(outcome(&outcomes), Ok(()));

    // A root nobody ever trusted is still just untrusted.
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = CertificateAuthority::init(foreign_dir.path(), TRUST_DOMAIN, false).unwrap();
    let stranger = pki.svid(&foreign, "stranger", "orders");
    let refused = connect(addr, &stranger, &client_trust).and_then(|mut tls| ping(&mut tls));
    assert!(refused.is_err());
    assert_eq!(
        outcome(&outcomes),
        Err("palisade.identity.untrusted".to_owned())
    );
}

#[test]
fn a_client_refuses_a_server_whose_root_its_bundle_retired() {
    let pki = Pki::new();
    let server_svid = pki.svid(&pki.a, "server", "server");
    let client_svid = pki.svid(&pki.b, "orders", "orders");
    let config = inbound_server_config_with_bundle(
        SvidStore::new(&server_svid).unwrap(),
        TrustBundle::from_pem(&pki.both()).unwrap(),
        vec![TRUST_DOMAIN.into()],
        Revocations::new(),
        true,
    )
    .unwrap();
    let (addr, _outcomes) = serve(config);
    let client_trust = TrustBundle::from_pem(&pki.both()).unwrap();
    let mut tls = connect(addr, &client_svid, &client_trust).unwrap();
    ping(&mut tls).unwrap();

    client_trust.replace_pem(&pki.b_pem).unwrap();
    assert_eq!(
        connect(addr, &client_svid, &client_trust).err().as_deref(),
        Some("palisade.identity.retired_root")
    );
    ping(&mut tls).unwrap();
}

#[test]
fn without_a_required_certificate_a_caller_may_connect_but_a_presented_one_is_checked() {
    let pki = Pki::new();
    let server_svid = pki.svid(&pki.b, "server", "server");
    let bundle = TrustBundle::from_pem(&pki.b_pem).unwrap();
    let config = inbound_server_config_with_bundle(
        SvidStore::new(&server_svid).unwrap(),
        bundle,
        vec![TRUST_DOMAIN.into()],
        Revocations::new(),
        false,
    )
    .unwrap();
    let (addr, outcomes) = serve(config);

    // No client certificate at all: admitted.
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(
        palisade_identity::tls::SvidServerVerifier::with_bundle(
            TrustBundle::from_pem(&pki.both()).unwrap(),
            server_id(),
        ),
    ))
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("palisade.invalid").unwrap();
    let mut tls = StreamOwned::new(
        ClientConnection::new(Arc::new(client), name).unwrap(),
        TcpStream::connect(addr).unwrap(),
    );
    ping(&mut tls).unwrap();
    assert_eq!(outcome(&outcomes), Ok(()));

    // A certificate from a root this server does not trust is still refused.
    let from_a = pki.svid(&pki.a, "orders-a", "orders");
    let trust = TrustBundle::from_pem(&pki.both()).unwrap();
    let refused = connect(addr, &from_a, &trust).and_then(|mut tls| ping(&mut tls));
    assert!(refused.is_err());
    assert_eq!(
        outcome(&outcomes),
        Err("palisade.identity.untrusted".to_owned())
    );
}
