//! The `palisade` binary end to end: CA commands, check-config, a real sidecar process
//! called by curl and Python `requests`, and audit queries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_testkit::free_addr;

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ca_init_refuses_to_overwrite_and_issue_names_the_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let out = palisade(&[
        "ca",
        "init",
        "--trust-domain",
        "example.org",
        "--state",
        state,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = palisade(&[
        "ca",
        "init",
        "--trust-domain",
        "example.org",
        "--state",
        state,
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );

    let svid_dir = dir.path().join("w");
    let issue = palisade(&[
        "ca",
        "issue",
        "--state",
        state,
        "--spiffe-id",
        "spiffe://example.org/ns/a/sa/w",
        "--out",
        svid_dir.to_str().unwrap(),
    ]);
    assert!(issue.status.success(), "{}", text(&issue.stderr));
    for file in ["svid.pem", "svid.key", "bundle.pem"] {
        assert!(svid_dir.join(file).is_file(), "{file} missing");
    }
    let bad = palisade(&[
        "ca",
        "issue",
        "--state",
        state,
        "--spiffe-id",
        "spiffe://example.org/ns//w",
        "--out",
        "/tmp/unused",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("empty segment"),
        "{}",
        text(&bad.stderr)
    );
    let foreign = palisade(&[
        "ca",
        "issue",
        "--state",
        state,
        "--spiffe-id",
        "spiffe://other.org/w",
        "--out",
        "/tmp/unused",
    ]);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(text(&foreign.stderr).contains("outside this CA's trust domain"));
}

/// Writes a one-service deployment (CA, SVIDs for billing and orders, config, policy).
fn deployment(
    dir: &Path,
    inbound: SocketAddr,
    upstream: SocketAddr,
    policy: &str,
) -> std::path::PathBuf {
    let state = dir.join("state");
    let state_s = state.to_str().unwrap();
    assert!(palisade(&[
        "ca",
        "init",
        "--trust-domain",
        "palisade.test",
        "--state",
        state_s
    ])
    .status
    .success());
    for name in ["billing", "orders"] {
        let out = state.join("svids").join(name);
        let id = format!("spiffe://palisade.test/ns/test/sa/{name}");
        assert!(palisade(&[
            "ca",
            "issue",
            "--state",
            state_s,
            "--spiffe-id",
            &id,
            "--out",
            out.to_str().unwrap()
        ])
        .status
        .success());
    }
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/billing.cedar"), policy).unwrap();
    let config = dir.join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"palisade.test\"\n\n[[service]]\nname = \"billing\"\nspiffe_id = \"spiffe://palisade.test/ns/test/sa/billing\"\ninbound = \"{inbound}\"\nupstream = \"{upstream}\"\n"
        ),
    )
    .unwrap();
    config
}

const ALLOW_ORDERS: &str = r#"@id("orders-read")
permit(principal == Palisade::Service::"spiffe://palisade.test/ns/test/sa/orders", action == Palisade::Action::"GET", resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing");
"#;

#[test]
fn check_config_accepts_a_valid_deployment_and_names_file_and_line_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), free_addr(), free_addr(), ALLOW_ORDERS);
    let ok = palisade(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("policies: 1"),
        "{}",
        text(&ok.stdout)
    );

    std::fs::write(
        dir.path().join("policies/bad.cedar"),
        "\n\npermit(principal, action, resource) when { principal.nope };\n",
    )
    .unwrap();
    let bad = palisade(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("bad.cedar:3"), "{stderr}");

    let broken = std::fs::read_to_string(&config)
        .unwrap()
        .replace("upstream", "upstrem");
    std::fs::write(&config, broken).unwrap();
    let bad = palisade(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = text(&bad.stderr);
    assert!(
        stderr.contains("palisade.toml:7") && stderr.contains("upstrem"),
        "{stderr}"
    );
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("palisade proxy exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "sidecar did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sidecar_process_serves_curl_and_python_requests_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(palisade_testkit::spawn_echo_app(
        "127.0.0.1:0".parse().unwrap(),
        "billing",
    ));
    let inbound = free_addr();
    let config = deployment(dir.path(), inbound, upstream, ALLOW_ORDERS);
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "proxy",
            "--config",
            config.to_str().unwrap(),
            "--service",
            "billing",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sidecar = Running(child);
    wait_for_port(inbound, &mut sidecar.0);
    let svids = dir.path().join("state/svids/orders");
    let (cert, key, bundle) = (
        svids.join("svid.pem"),
        svids.join("svid.key"),
        svids.join("bundle.pem"),
    );
    let url = format!("https://{inbound}/invoices/42");

    // curl checks no URI SANs, so it skips server verification (-k); the sidecar still
    // verifies curl's client certificate.
    let curl = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .expect("curl is installed by .ci/run");
    let curl_out = text(&curl.stdout);
    assert!(
        curl_out.ends_with("\n200"),
        "curl: {curl_out} {}",
        text(&curl.stderr)
    );
    assert!(curl_out.contains("\"xfcc\":\"By=spiffe://palisade.test/ns/test/sa/billing;URI=spiffe://palisade.test/ns/test/sa/orders\""), "{curl_out}");

    // Without a certificate curl is refused in the handshake.
    let anonymous = Command::new("curl")
        .args(["-sS", "-k", &url])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());

    // Python requests verifies the sidecar's chain against the bundle (hostname checks
    // off: SVIDs name workloads, not hosts).
    let script = r#"
import sys, requests
from requests.adapters import HTTPAdapter
class SvidAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = False
        return super().init_poolmanager(*args, **kwargs)
session = requests.Session()
session.mount("https://", SvidAdapter())
url, cert, key, bundle = sys.argv[1:5]
response = session.get(url, cert=(cert, key), verify=bundle, timeout=10)
print(response.status_code)
print(response.headers.get("x-request-id", ""))
"#;
    let python = Command::new("python3")
        .args([
            "-c",
            script,
            &url,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            bundle.to_str().unwrap(),
        ])
        .output()
        .expect("python3 with requests is installed by .ci/run");
    let py_out = text(&python.stdout);
    assert!(
        py_out.starts_with("200\n"),
        "python: {py_out} {}",
        text(&python.stderr)
    );

    // SIGTERM: the sidecar drains and flushes its audit log before exiting.
    let pid = sidecar.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = sidecar.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sidecar did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());

    let db = dir.path().join("state/audit.db");
    let db_s = db.to_str().unwrap();
    let all = palisade(&["audit", "query", "--db", db_s, "--format", "json"]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    let records: Vec<serde_json::Value> = text(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{records:#?}");
    let allowed: Vec<_> = records
        .iter()
        .filter(|r| r["decision"] == "allow")
        .collect();
    assert_eq!(allowed.len(), 2);
    assert!(allowed.iter().all(|r| r["policies"][0] == "orders-read"));
    let request_id = py_out.lines().nth(1).unwrap();
    assert!(allowed.iter().any(|r| r["request_id"] == request_id));

    let denied = palisade(&[
        "audit",
        "query",
        "--db",
        db_s,
        "--decision",
        "deny",
        "--format",
        "json",
    ]);
    let denied: Vec<serde_json::Value> = text(&denied.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["code"], "palisade.identity.missing");

    let by_caller = palisade(&[
        "audit",
        "query",
        "--db",
        db_s,
        "--caller",
        "spiffe://palisade.test/ns/test/sa/orders",
        "--since",
        "1h",
    ]);
    let table = text(&by_caller.stdout);
    assert!(table.contains("2 records"), "{table}");
}

#[test]
fn audit_query_reports_a_missing_database_as_an_error() {
    let out = palisade(&["audit", "query", "--db", "/nonexistent/audit.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/audit.db"));
}

#[test]
fn a_sidecar_joins_with_a_cli_token_and_enforces_a_cli_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(palisade_testkit::spawn_echo_app(
        "127.0.0.1:0".parse().unwrap(),
        "billing",
    ));
    let inbound = free_addr();
    let control_addr = free_addr();
    let config = deployment(dir.path(), inbound, upstream, ALLOW_ORDERS);
    // Billing gets its SVID from the control plane instead of `ca issue`.
    std::fs::remove_dir_all(dir.path().join("state/svids/billing")).unwrap();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[control]\nlisten = \"{control_addr}\"\nrevocation_poll = \"200ms\"\n"
    ));
    std::fs::write(&config, toml).unwrap();
    let config_s = config.to_str().unwrap();

    let control = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["control", "serve", "--config", config_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut control = Running(control);
    wait_for_port(control_addr, &mut control.0);

    let token = palisade(&[
        "control",
        "join-token",
        "create",
        "--config",
        config_s,
        "--spiffe-id",
        "spiffe://palisade.test/ns/test/sa/billing",
    ]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token = text(&token.stdout).trim().to_owned();
    assert!(token.starts_with("pjt_"), "{token}");

    let sidecar = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["proxy", "--config", config_s, "--service", "billing"])
        .env("PALISADE_JOIN_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sidecar = Running(sidecar);
    wait_for_port(inbound, &mut sidecar.0);
    assert!(
        dir.path().join("state/svids/billing/svid.pem").is_file(),
        "the joined SVID is written for restarts"
    );

    let svids = dir.path().join("state/svids/orders");
    let url = format!("https://{inbound}/invoices/42");
    let curl = |expect_ok: bool| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-k",
                "--cert",
                svids.join("svid.pem").to_str().unwrap(),
                "--key",
                svids.join("svid.key").to_str().unwrap(),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{} {}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    curl(true);
    let revoke = palisade(&[
        "control",
        "revoke",
        "--config",
        config_s,
        "--spiffe-id",
        "spiffe://palisade.test/ns/test/sa/orders",
        "--reason",
        "laptop stolen",
    ]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-k",
                "--cert",
                svids.join("svid.pem").to_str().unwrap(),
                "--key",
                svids.join("svid.key").to_str().unwrap(),
                "-o",
                "/dev/null",
                &url,
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revocation not enforced within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    curl(false);
}
