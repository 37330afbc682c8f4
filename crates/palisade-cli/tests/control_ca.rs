//! `palisade control ca`: the rollover steps from the command line, their refusals and
//! exit codes, the status between them, and the audit record of each step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

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

/// Runs `palisade control ca <step> --config <config> [extra]`.
fn ca(step: &str, config: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["control", "ca", step, "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    palisade(&args)
}

fn roles(config: &Path) -> Vec<String> {
    let out = ca("status", config, &["--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn control_ca_rolls_the_ca_over_step_by_step_refuses_early_retirement_and_audits_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    assert!(palisade(&[
        "ca",
        "init",
        "--trust-domain",
        "palisade.test",
        "--state",
        state.to_str().unwrap()
    ])
    .status
    .success());
    let config = dir.path().join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"palisade.test\"\n\n[[service]]\nname = \"billing\"\nspiffe_id = \"spiffe://palisade.test/ns/test/sa/billing\"\ninbound = \"{}\"\nupstream = \"{}\"\n\n[control]\nlisten = \"127.0.0.1:0\"\nrevocation_poll = \"2s\"\n",
            free_addr(),
            free_addr()
        ),
    )
    .unwrap();

    let status = ca("status", &config, &[]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let shown = text(&status.stdout);
    assert!(
        shown.contains("active") && shown.contains("signing: "),
        "{shown}"
    );

    let early = ca("activate", &config, &[]);
    assert_eq!(early.status.code(), Some(2));
    assert!(text(&early.stderr).contains("no prepared root"));

    let prepared = ca("prepare", &config, &[]);
    assert!(prepared.status.success(), "{}", text(&prepared.stderr));
    assert!(text(&prepared.stdout).starts_with("prepared root "));
    assert!(
        text(&prepared.stderr).contains("every 2s"),
        "{}",
        text(&prepared.stderr)
    );
    assert_eq!(roles(&config), ["active", "next"]);

    // A workload joins (from a running control plane) while the old root still signs.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writer = palisade_audit::AuditWriter::start(
        palisade_audit::SinkConfig::Sqlite {
            path: dir.path().join("server-audit.db"),
        },
        64,
    )
    .unwrap();
    let billing: palisade_identity::SpiffeId =
        "spiffe://palisade.test/ns/test/sa/billing".parse().unwrap();
    let server = runtime.block_on(async {
        let server =
            palisade_control::ControlServer::start(palisade_control::ControlServerConfig::new(
                state.clone(),
                "127.0.0.1:0".parse().unwrap(),
                "palisade.test",
                writer.handle(),
            ))
            .await
            .unwrap();
        let token = palisade_control::ControlState::open(&state)
            .unwrap()
            .create_join_token(&billing, Duration::from_secs(60))
            .unwrap();
        let bundle = std::fs::read_to_string(state.join("ca/ca.pem")).unwrap();
        let client = palisade_control::ControlClient::new(
            &format!("https://{}", server.addr),
            &bundle,
            "palisade.test",
        )
        .unwrap();
        client.join(&token, &billing).await.unwrap();
        server
    });

    let activated = ca("activate", &config, &[]);
    assert!(activated.status.success(), "{}", text(&activated.stderr));
    assert_eq!(roles(&config), ["previous", "active"]);

    // Billing has not renewed: retiring is a failed check (exit 1) that names it.
    let refused = ca("retire", &config, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let why = text(&refused.stderr);
    assert!(
        why.contains(billing.as_str()) && why.contains("force"),
        "{why}"
    );
    let shown = text(&ca("status", &config, &[]).stdout);
    assert!(shown.contains("previous root: 1 SVID(s)"), "{shown}");

    let forced = ca("retire", &config, &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(text(&forced.stderr).contains("were still in use"));
    assert_eq!(roles(&config), ["retired", "active"]);
    runtime.block_on(server.shutdown());
    writer.shutdown().unwrap();

    let audit = palisade(&[
        "audit",
        "query",
        "--db",
        state.join("audit.db").to_str().unwrap(),
        "--service",
        "palisade-control",
        "--format",
        "json",
    ]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    let details: Vec<String> = text(&audit.stdout)
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["detail"].as_str().unwrap().to_owned()
        })
        .collect();
    for step in ["prepared root", "activated root", "retired root"] {
        assert!(
            details.iter().any(|d| d.contains(step)),
            "no audit record for {step}: {details:?}"
        );
    }
    assert!(details.iter().any(|d| d.contains("forced: 1 SVID(s)")));
}
