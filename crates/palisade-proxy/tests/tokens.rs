//! Sidecars accepting OAuth 2.0 access tokens (`[service.tokens]`) from a real control
//! plane over real TLS: certificate-bound tokens, scopes in Cedar, each refusal with its
//! own code and audit record, and signing keys fetched on an unknown key id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use palisade_audit::{AuditQuery, AuditRecord, AuditWriter, AuthMethod, Decision, SinkConfig};
use palisade_config::Config;
use palisade_control::{
    ControlServer, ControlServerConfig, ControlState, OAuthSettings, RunningControl,
};
use palisade_proxy::{RunningSidecar, Sidecar};
use palisade_testkit::{client_config, free_addr, spawn_echo_app, tls_request_with, TestPki};
use palisade_token::{ClientAuth, RegisteredClient};
use time::OffsetDateTime;

/// Orders may read billing's invoices only with a token carrying `invoices:read`; the
/// reporting job (outside the mesh) with one carrying `reports:read`.
const POLICY: &str = r#"
@id("orders-reads-invoices-with-scope")
permit (
  principal == Palisade::Service::"spiffe://palisade.test/ns/test/sa/orders",
  action == Palisade::Action::"GET",
  resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing"
) when { context.auth == "jwt" && context.scopes.contains("invoices:read") };

@id("reporting-job-reads-billing")
permit (
  principal == Palisade::Service::"reporting-job",
  action == Palisade::Action::"GET",
  resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing"
) when { context.scopes.contains("reports:read") };
"#;

/// The OAuth client outside the mesh (`private_key_jwt`).
const REPORTING: &str = "reporting-job";

struct Mesh {
    pki: TestPki,
    reporting_key: String,
    control: Option<RunningControl>,
    control_addr: SocketAddr,
    billing: RunningSidecar,
    writer: AuditWriter,
}

/// A control plane whose token endpoint knows `orders` and `customers` (both
/// `tls_client_auth`) and the reporting job (`private_key_jwt` with `reporting_key`), on
/// `listen`.
async fn start_control(
    pki: &TestPki,
    listen: SocketAddr,
    reporting_key: &str,
    audit: palisade_audit::AuditHandle,
) -> RunningControl {
    let client = |name: &str, scopes: &[(&str, &str)]| RegisteredClient {
        client_id: pki.id(name).to_string(),
        auth: ClientAuth::TlsClientAuth,
        scopes: scopes
            .iter()
            .map(|(aud, scope)| ((*aud).to_owned(), vec![(*scope).to_owned()]))
            .collect::<HashMap<_, _>>(),
    };
    let mut config = ControlServerConfig::new(pki.state_dir(), listen, "palisade.test", audit);
    config.oauth = Some(OAuthSettings::new(vec![
        client(
            "orders",
            &[("billing", "invoices:read"), ("customers", "profiles:read")],
        ),
        client("customers", &[("billing", "invoices:read")]),
        RegisteredClient {
            client_id: REPORTING.to_owned(),
            auth: ClientAuth::PrivateKeyJwt {
                public_key_pem: rcgen::KeyPair::from_pem(reporting_key)
                    .unwrap()
                    .public_key_pem(),
            },
            scopes: HashMap::from([("billing".to_owned(), vec!["reports:read".to_owned()])]),
        },
    ]));
    ControlServer::start(config).await.unwrap()
}

/// Billing's sidecar accepting tokens (`tokens`: more `[service.tokens]` lines), with
/// SVIDs on disk for orders and customers.
async fn mesh(tokens: &str) -> Mesh {
    let reporting_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let pki = TestPki::new("palisade.test");
    for name in ["billing", "orders", "customers"] {
        pki.svid_dir(name, &pki.id(name));
    }
    let root = pki.dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::write(root.join("policies/tokens.cedar"), POLICY).unwrap();
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: root.join("audit.db"),
        },
        1024,
    )
    .unwrap();
    let control = start_control(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        &reporting_key,
        writer.handle(),
    )
    .await;
    let control_addr = control.addr;
    let app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "billing").await;
    let text = format!(
        "trust_domain = \"palisade.test\"\n\n[[service]]\nname = \"billing\"\nspiffe_id = \"spiffe://palisade.test/ns/test/sa/billing\"\ninbound = \"{}\"\nupstream = \"{app}\"\n\n[service.tokens]\n{tokens}\n[control]\nurl = \"https://{control_addr}\"\n",
        free_addr(),
    );
    std::fs::write(root.join("palisade.toml"), text).unwrap();
    let config = Config::load(&root.join("palisade.toml")).unwrap();
    let billing = Sidecar::start_with(&config, "billing", writer.handle(), None)
        .await
        .unwrap();
    Mesh {
        pki,
        reporting_key,
        control: Some(control),
        control_addr,
        billing,
        writer,
    }
}

impl Mesh {
    fn svid(&self, name: &str) -> PathBuf {
        self.pki.state_dir().join("svids").join(name)
    }

    /// A token for `client` (authenticated by its SVID) meant for `audience`.
    async fn token(&self, client: &str, audience: &str, scope: &str) -> String {
        let control_id = ControlState::open(&self.pki.state_dir())
            .unwrap()
            .control_id()
            .unwrap();
        let dir = self.svid(client);
        let config = client_config(Some(&dir), &dir.join("bundle.pem"), &control_id);
        let client_id = self.pki.id(client).to_string();
        let form = format!(
            "grant_type=client_credentials&client_id={}&audience={audience}&scope={}",
            urlencode(&client_id),
            urlencode(scope)
        );
        let response = tls_request_with(
            self.control_addr,
            config,
            "POST",
            "/oauth2/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200, "{:?}", response.body);
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A token for the reporting job, which authenticates with a signed assertion
    /// (RFC 7523 `private_key_jwt`) over TLS without a client certificate.
    async fn reporting_token(&self) -> String {
        let control_id = ControlState::open(&self.pki.state_dir())
            .unwrap()
            .control_id()
            .unwrap();
        let bundle = self.svid("orders").join("bundle.pem");
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let assertion = {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.typ = Some("JWT".into());
            let claims = serde_json::json!({
                "iss": REPORTING, "sub": REPORTING,
                "aud": format!("https://{}/oauth2/token", self.control_addr),
                "iat": now, "exp": now + 60, "jti": format!("assertion-{now}"),
            });
            let key =
                jsonwebtoken::EncodingKey::from_ec_pem(self.reporting_key.as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        let form = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}&audience=billing&scope=reports%3Aread",
            urlencode(palisade_token::JWT_BEARER_ASSERTION_TYPE)
        );
        let response = tls_request_with(
            self.control_addr,
            client_config(None, &bundle, &control_id),
            "POST",
            "/oauth2/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200, "{:?}", response.body);
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// curl (a real third-party client, without a client certificate) calling billing
    /// with `authorization` if given: (status, headers and body as curl printed them).
    async fn curl(&self, authorization: Option<&str>) -> (u16, String, String) {
        let url = format!("https://{}/invoices/1", self.billing.inbound_addr);
        let mut command = std::process::Command::new("curl");
        // The SVID names no DNS name; the point here is the caller's side, so -k.
        command.args(["-sS", "-k", "-D", "-", "-w", "\n%{http_code}", &url]);
        if let Some(value) = authorization {
            command.args(["-H", &format!("authorization: {value}")]);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("curl is installed by scripts/test");
        let text = String::from_utf8(output.stdout).unwrap();
        let (rest, status) = text.rsplit_once('\n').unwrap();
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        (
            status.parse().unwrap(),
            head.to_ascii_lowercase(),
            body.to_owned(),
        )
    }

    /// `GET /invoices/1` on billing from `caller`'s SVID, with `authorization` if given.
    async fn call(
        &self,
        caller: &str,
        authorization: Option<&str>,
    ) -> palisade_testkit::TestResponse {
        let dir = self.svid(caller);
        let config = client_config(Some(&dir), &dir.join("bundle.pem"), &self.pki.id("billing"));
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        tls_request_with(
            self.billing.inbound_addr,
            config,
            "GET",
            "/invoices/1",
            &headers,
            "",
        )
        .await
        .unwrap()
    }

    async fn finish(self) -> Vec<AuditRecord> {
        self.billing.shutdown().await;
        if let Some(control) = self.control {
            control.shutdown().await;
        }
        let db = self.pki.dir.path().join("audit.db");
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .unwrap()
            .unwrap();
        palisade_audit::query(
            &db,
            &AuditQuery {
                service: Some("billing".into()),
                ..AuditQuery::default()
            },
        )
        .unwrap()
    }
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('/', "%2F")
}

/// Signs `claims` as an access token with the PKCS#8 EC key in `key_pem`, naming `kid`.
fn sign(claims: &serde_json::Value, key_pem: &[u8], kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// The control plane's active signing key: (kid, PKCS#8 PEM).
fn active_signing_key(state_dir: &Path) -> (String, Vec<u8>) {
    let keys = state_dir
        .join(palisade_control::OAUTH_KEYS_DIR)
        .join(palisade_token::KEYS_DIR);
    let pem = std::fs::read_dir(&keys)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "pem"))
        .expect("an active signing key");
    let kid = pem.file_stem().unwrap().to_str().unwrap().to_owned();
    (kid, std::fs::read(pem).unwrap())
}

/// Claims of an otherwise valid, unbound token from orders for billing.
fn claims(issuer: &str, issued_at: i64, lifetime: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": issuer,
        "aud": "billing",
        "sub": "spiffe://palisade.test/ns/test/sa/orders",
        "client_id": "spiffe://palisade.test/ns/test/sa/orders",
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "jti": format!("forged-{issued_at}-{lifetime}"),
        "scope": "invoices:read",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_a_certificate_bound_token_and_hands_its_scopes_to_policies() {
    let mesh = mesh("").await;
    let without = mesh.call("orders", None).await;
    assert_eq!(without.status, 403, "the SVID alone carries no scope");
    assert_eq!(without.json()["code"], "palisade.authz.denied");

    let token = mesh.token("orders", "billing", "invoices:read").await;
    let with = mesh.call("orders", Some(&format!("Bearer {token}"))).await;
    assert_eq!(with.status, 200, "{:?}", with.body);
    let echo = with.json();
    assert_eq!(echo["caller"], "spiffe://palisade.test/ns/test/sa/orders");
    assert_eq!(echo["scopes"], "invoices:read");
    assert_eq!(
        echo["authorization"], false,
        "the token is consumed by the sidecar"
    );
    assert_eq!(echo["xfcc"], serde_json::Value::Null);

    let records = mesh.finish().await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].auth, AuthMethod::Mtls);
    assert_eq!(records[0].code.as_deref(), Some("palisade.authz.denied"));
    assert_eq!(records[1].auth, AuthMethod::Jwt);
    assert_eq!(records[1].decision, Decision::Allow);
    assert_eq!(
        records[1].caller.as_deref(),
        Some("spiffe://palisade.test/ns/test/sa/orders")
    );
    assert_eq!(
        records[1].policies,
        vec!["orders-reads-invoices-with-scope"]
    );
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&token), "tokens are never audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_each_bad_token_with_its_own_code_and_audits_it() {
    let mesh = mesh("").await;
    let issuer = format!("https://{}", mesh.control_addr);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (kid, key) = active_signing_key(&mesh.pki.state_dir());
    let stranger = rcgen::KeyPair::generate().unwrap();

    let bound_to_orders = mesh.token("orders", "billing", "invoices:read").await;
    let for_customers = mesh.token("orders", "customers", "profiles:read").await;
    let cases: Vec<(&str, &str, String)> = vec![
        // A stolen certificate-bound token is useless without the certificate's key.
        (
            "customers",
            "palisade.token.certificate_mismatch",
            bound_to_orders,
        ),
        ("orders", "palisade.token.wrong_audience", for_customers),
        (
            "orders",
            "palisade.token.expired",
            sign(&claims(&issuer, now - 600, 300), &key, &kid),
        ),
        (
            "orders",
            "palisade.token.wrong_issuer",
            sign(&claims("https://elsewhere.example", now, 300), &key, &kid),
        ),
        (
            "orders",
            "palisade.token.unknown_key",
            sign(
                &claims(&issuer, now, 300),
                stranger.serialize_pem().as_bytes(),
                "not-a-palisade-key",
            ),
        ),
        ("orders", "palisade.token.malformed", "not.a.jwt".to_owned()),
    ];
    for (caller, code, token) in &cases {
        let response = mesh.call(caller, Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status, 401, "{code}: {:?}", response.body);
        assert_eq!(response.json()["code"], *code);
        let challenge = response.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{code}: {challenge}"
        );
        assert!(!response
            .body
            .windows(token.len())
            .any(|w| w == token.as_bytes()));
    }
    // A forged token signed with the real key and claims is accepted: the refusals above
    // are about what each case changed, not about forging as such.
    let genuine = sign(&claims(&issuer, now, 300), &key, &kid);
    assert_eq!(
        mesh.call("orders", Some(&format!("Bearer {genuine}")))
            .await
            .status,
        200
    );

    let records = mesh.finish().await;
    let codes: Vec<Option<&str>> = records.iter().map(|r| r.code.as_deref()).collect();
    let mut expected: Vec<Option<&str>> = cases.iter().map(|(_, code, _)| Some(*code)).collect();
    expected.push(None);
    assert_eq!(codes, expected);
    for record in &records[..cases.len()] {
        assert_eq!(record.decision, Decision::Deny);
        assert_eq!(record.status, Some(401));
        assert!(record.detail.is_some());
    }
    let all = serde_json::to_string(&records).unwrap();
    for (_, _, token) in &cases {
        assert!(!all.contains(token.as_str()), "tokens are never audited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_the_signing_keys_again_when_a_token_names_an_unknown_key() {
    let mut mesh = mesh("").await;
    let first = mesh.token("orders", "billing", "invoices:read").await;
    assert_eq!(
        mesh.call("orders", Some(&format!("Bearer {first}")))
            .await
            .status,
        200
    );
    // The control plane comes back with a new signing key (its key directory was lost).
    mesh.control.take().unwrap().shutdown().await;
    std::fs::remove_dir_all(mesh.pki.state_dir().join(palisade_control::OAUTH_KEYS_DIR)).unwrap();
    mesh.control = Some(
        start_control(
            &mesh.pki,
            mesh.control_addr,
            &mesh.reporting_key,
            mesh.writer.handle(),
        )
        .await,
    );
    let second = mesh.token("orders", "billing", "invoices:read").await;
    let response = mesh.call("orders", Some(&format!("Bearer {second}"))).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    // The old key is gone from the JWKS: its tokens no longer verify.
    let stale = mesh.call("orders", Some(&format!("Bearer {first}"))).await;
    assert_eq!(stale.json()["code"], "palisade.token.unknown_key");
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_outside_the_mesh_needs_only_a_token_where_certificates_are_optional() {
    let mesh = mesh("client_cert = \"optional\"\n").await;
    let token = mesh.reporting_token().await;

    let (status, head, body) = mesh.curl(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{head}{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["caller"], REPORTING);
    assert_eq!(echo["scopes"], "reports:read");

    // No credential at all: 401 with the RFC 6750 challenge, no error code.
    let (status, head, body) = mesh.curl(None).await;
    assert_eq!(status, 401, "{head}{body}");
    assert!(
        head.contains("www-authenticate: bearer realm=\"billing\""),
        "{head}"
    );
    assert!(body.contains("palisade.identity.missing"), "{body}");

    // A token bound to orders' certificate is useless without that certificate.
    let bound = mesh.token("orders", "billing", "invoices:read").await;
    let (status, head, body) = mesh.curl(Some(&format!("Bearer {bound}"))).await;
    assert_eq!(status, 401, "{head}{body}");
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    assert!(
        body.contains("palisade.token.certificate_required"),
        "{body}"
    );

    // Mesh callers still present their SVIDs and are identified by them.
    assert_eq!(
        mesh.call("orders", Some(&format!("Bearer {bound}")))
            .await
            .status,
        200
    );

    let records = mesh.finish().await;
    let seen: Vec<(Option<&str>, AuthMethod, Option<&str>)> = records
        .iter()
        .map(|r| (r.caller.as_deref(), r.auth, r.code.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some(REPORTING), AuthMethod::Jwt, None),
            (None, AuthMethod::None, Some("palisade.identity.missing")),
            (
                None,
                AuthMethod::None,
                Some("palisade.token.certificate_required")
            ),
            (
                Some("spiffe://palisade.test/ns/test/sa/orders"),
                AuthMethod::Jwt,
                None
            ),
        ]
    );
    assert_eq!(records[0].policies, vec!["reporting-job-reads-billing"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signing_keys_a_token_is_refused_as_unavailable_not_invalid() {
    let mut mesh = mesh("").await;
    let token = mesh.token("orders", "billing", "invoices:read").await;
    // A second sidecar for billing's config, started while the control plane is down:
    // it never gets the keys.
    mesh.control.take().unwrap().shutdown().await;
    let root = mesh.pki.dir.path();
    let config = Config::load(&root.join("palisade.toml")).unwrap();
    let mut text = std::fs::read_to_string(root.join("palisade.toml")).unwrap();
    text = text.replace(
        &config.services[0].inbound.to_string(),
        &free_addr().to_string(),
    );
    std::fs::write(root.join("cut-off.toml"), text).unwrap();
    let cut_off = Sidecar::start_with(
        &Config::load(&root.join("cut-off.toml")).unwrap(),
        "billing",
        mesh.writer.handle(),
        None,
    )
    .await
    .unwrap();
    let dir = mesh.svid("orders");
    let response = tls_request_with(
        cut_off.inbound_addr,
        client_config(Some(&dir), &dir.join("bundle.pem"), &mesh.pki.id("billing")),
        "GET",
        "/invoices/1",
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 503, "{:?}", response.body);
    assert_eq!(response.json()["code"], "palisade.token.keys_unavailable");
    cut_off.shutdown().await;
    mesh.finish().await;
}
