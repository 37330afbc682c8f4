//! A small mesh for sidecar tests: a PKI, a config file, policies, an echo app and the
//! sidecar under test, all on 127.0.0.1, with the audit log in a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use palisade_audit::{AuditQuery, AuditRecord, AuditWriter, SinkConfig};
use palisade_config::Config;
use palisade_identity::SpiffeId;
use palisade_proxy::{RunningSidecar, Sidecar};
use palisade_testkit::{free_addr, spawn_echo_app, TestPki};

/// Policies used by most tests: orders may GET billing's invoices; a forbid for deletes.
pub const POLICIES: &str = r#"
@id("orders-read-invoices")
permit(
  principal == Palisade::Service::"spiffe://palisade.test/ns/test/sa/orders",
  action == Palisade::Action::"GET",
  resource == Palisade::Endpoint::"billing:/invoices/{id}"
);

@id("orders-delete-anything")
permit(
  principal == Palisade::Service::"spiffe://palisade.test/ns/test/sa/orders",
  action == Palisade::Action::"DELETE",
  resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing"
);

@id("no-deleting-invoices")
forbid(
  principal,
  action == Palisade::Action::"DELETE",
  resource == Palisade::Endpoint::"billing:/invoices/{id}"
);
"#;

const BILLING_SPEC: &str = r##"
openapi: 3.0.3
info: { title: billing, version: "1" }
paths:
  /invoices:
    get:
      parameters:
        - { name: q, in: query, schema: { type: string, maxLength: 200 } }
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
      responses: { "200": { description: ok } }
  /invoices/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: string } }
    get: { responses: { "200": { description: ok } } }
    delete: { responses: { "204": { description: deleted } } }
  /payments:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Payment" }
      responses: { "200": { description: ok } }
  /customers:
    post:
      parameters:
        - { name: email, in: query, schema: { type: string } }
        - { name: q, in: query, schema: { type: string } }
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Customer" }
      responses: { "200": { description: ok } }
components:
  schemas:
    Customer:
      type: object
      properties:
        full_name: { type: string }
        email: { type: string }
        card_number: { type: string }
        ssn: { type: string }
        note: { type: string }
    Payment:
      type: object
      required: [invoice, amount_cents]
      properties:
        invoice: { type: string }
        amount_cents: { type: integer, minimum: 1 }
        memo: { type: string, maxLength: 500 }
"##;

pub struct Mesh {
    pub pki: TestPki,
    pub config: Config,
    pub audit_db: PathBuf,
    writer: Option<AuditWriter>,
    pub sidecars: Vec<RunningSidecar>,
}

/// Addresses of the services in the test config.
pub struct Ports {
    pub billing_inbound: SocketAddr,
    pub billing_app: SocketAddr,
    pub orders_inbound: SocketAddr,
    pub orders_outbound: SocketAddr,
}

impl Mesh {
    /// Writes the PKI, config and `policies` (None = no policy directory at all), starts the
    /// billing echo app and the sidecars named in `run`.
    pub async fn start(policies: Option<&str>, run: &[&str]) -> Mesh {
        Mesh::start_with(policies, run, "").await
    }

    /// Like [`Mesh::start`], with `billing_extra` TOML (e.g. `[service.limits]` tables)
    /// appended to billing's `[[service]]` entry.
    pub async fn start_with(policies: Option<&str>, run: &[&str], billing_extra: &str) -> Mesh {
        let pki = TestPki::new("palisade.test");
        let root = pki.dir.path().to_path_buf();
        for name in ["orders", "billing", "customers"] {
            pki.svid_dir(name, &pki.id(name));
        }
        if let Some(text) = policies {
            std::fs::create_dir_all(root.join("policies")).unwrap();
            std::fs::write(root.join("policies/main.cedar"), text).unwrap();
        }
        std::fs::write(root.join("billing.yaml"), BILLING_SPEC).unwrap();
        let billing_app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "billing").await;
        let ports = Ports {
            billing_inbound: free_addr(),
            billing_app,
            orders_inbound: free_addr(),
            orders_outbound: free_addr(),
        };
        let config_text = format!(
            r#"
trust_domain = "palisade.test"

[audit]
path = "audit.db"

[[service]]
name = "billing"
spiffe_id = "spiffe://palisade.test/ns/test/sa/billing"
inbound = "{billing_inbound}"
upstream = "{billing_app}"
openapi = "billing.yaml"
owner = "team-billing"
{billing_extra}

[[service]]
name = "orders"
spiffe_id = "spiffe://palisade.test/ns/test/sa/orders"
inbound = "{orders_inbound}"
upstream = "127.0.0.1:9"
outbound = "{orders_outbound}"
"#,
            billing_inbound = ports.billing_inbound,
            orders_inbound = ports.orders_inbound,
            orders_outbound = ports.orders_outbound,
        );
        let config_path = root.join("palisade.toml");
        std::fs::write(&config_path, config_text).unwrap();
        let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let audit_db = root.join("audit.db");
        let writer = AuditWriter::start(
            SinkConfig::Sqlite {
                path: audit_db.clone(),
            },
            1024,
        )
        .unwrap();
        let mut sidecars = Vec::new();
        for name in run {
            sidecars.push(
                Sidecar::start(&config, name, writer.handle())
                    .await
                    .unwrap(),
            );
        }
        Mesh {
            pki,
            config,
            audit_db,
            writer: Some(writer),
            sidecars,
        }
    }

    pub fn root(&self) -> &Path {
        self.pki.dir.path()
    }

    pub fn id(&self, name: &str) -> SpiffeId {
        self.pki.id(name)
    }

    pub fn svid(&self, name: &str) -> PathBuf {
        self.pki.state_dir().join("svids").join(name)
    }

    pub fn bundle(&self) -> PathBuf {
        self.svid("billing").join("bundle.pem")
    }

    pub fn billing_inbound(&self) -> SocketAddr {
        self.config.service("billing").unwrap().inbound
    }

    /// Starts another replica of billing (same config, another inbound port) sharing the
    /// audit log; returns its inbound address.
    pub async fn start_billing_replica(&mut self) -> SocketAddr {
        let mut config = self.config.clone();
        let billing = config
            .services
            .iter_mut()
            .find(|s| s.name == "billing")
            .unwrap();
        billing.inbound = free_addr();
        let sidecar = Sidecar::start(&config, "billing", self.writer.as_ref().unwrap().handle())
            .await
            .unwrap();
        let addr = sidecar.inbound_addr;
        self.sidecars.push(sidecar);
        addr
    }

    /// A handle on the shared audit log, for sidecars a test starts itself.
    pub fn audit_handle(&self) -> palisade_audit::AuditHandle {
        self.writer.as_ref().unwrap().handle()
    }

    /// The records the writer has committed so far (read while the sidecars run).
    pub fn records_now(&self) -> Vec<AuditRecord> {
        palisade_audit::query(&self.audit_db, &AuditQuery::default()).unwrap_or_default()
    }

    /// The bytes of every file of the audit database (`audit.db`, and `-wal`, `-shm`
    /// when they exist), by name.
    pub fn audit_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self.root()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("audit.db") {
                files.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
        files.sort();
        files
    }

    /// Stops every sidecar and flushes the audit log; returns every record in it and the
    /// bytes of the database files as they are left.
    pub async fn finish_with_files(mut self) -> (Vec<AuditRecord>, Vec<(String, Vec<u8>)>) {
        for sidecar in self.sidecars.drain(..) {
            sidecar.shutdown().await;
        }
        let writer = self.writer.take().unwrap();
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .unwrap()
            .unwrap();
        let records = palisade_audit::query(&self.audit_db, &AuditQuery::default()).unwrap();
        (records, self.audit_files())
    }

    /// Stops every sidecar, flushes the audit log and returns every record in it.
    pub async fn finish(mut self) -> Vec<AuditRecord> {
        for sidecar in self.sidecars.drain(..) {
            sidecar.shutdown().await;
        }
        let writer = self.writer.take().unwrap();
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .unwrap()
            .unwrap();
        palisade_audit::query(&self.audit_db, &AuditQuery::default()).unwrap()
    }
}

/// For guard tests: orders and customers may call anything on billing, so only the guard
/// stages decide.
pub const OPEN_POLICIES: &str = r#"
@id("anyone-in-the-mesh-on-billing")
permit(
  principal,
  action,
  resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing"
);
"#;
