//! What can stop the demo.

use std::net::SocketAddr;
use std::path::PathBuf;

use palisade_audit::AuditError;
use palisade_config::ConfigError;
use palisade_identity::IdentityError;
use palisade_proxy::ProxyError;

/// Why `palisade demo` could not run to the end.
///
/// A scenario that does not have its expected outcome is not an error: it is reported as
/// failed in the [`DemoReport`](crate::DemoReport).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The directory holds files the demo did not create; it is never cleared.
    #[error(
        "{dir} is not empty and was not created by `palisade demo` (it has no palisade.toml \
         starting with \"{marker}\"); nothing was deleted. Pass an empty or new directory"
    )]
    DirNotEmpty {
        /// The directory.
        dir: PathBuf,
        /// The first line a demo-generated palisade.toml starts with.
        marker: &'static str,
    },
    /// The demo directory path names something that is not a directory.
    #[error("{path} exists and is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing a file of the demo directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No free loopback port could be found.
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(#[source] std::io::Error),
    /// A demo SPIFFE ID is invalid.
    #[error("invalid demo SPIFFE ID: {0}")]
    SpiffeId(#[from] palisade_identity::SpiffeIdError),
    /// Creating the demo CA or an SVID failed.
    #[error("creating the demo identities: {0}")]
    Identity(#[from] IdentityError),
    /// The generated configuration did not load.
    #[error("the generated configuration does not load: {0}")]
    Config(#[from] ConfigError),
    /// The generated configuration lacks a service the demo needs.
    #[error("{config} has no service named {name:?}")]
    MissingService {
        /// The service.
        name: &'static str,
        /// The configuration file.
        config: PathBuf,
    },
    /// The generated configuration lacks the rate limit the retry-loop scenario runs into.
    #[error("{config} has no rate limit for {caller} on {route} at {service}")]
    MissingLimit {
        /// The limited service.
        service: &'static str,
        /// The caller with a budget of its own.
        caller: &'static str,
        /// The route of that budget.
        route: &'static str,
        /// The configuration file.
        config: PathBuf,
    },
    /// The in-process control plane could not start, issue a join token or revoke.
    #[error("control plane: {0}")]
    Control(#[from] palisade_control::ControlError),
    /// A blocking control-plane task did not finish.
    #[error("control plane task failed: {0}")]
    ControlTask(String),
    /// The audit log could not be opened, flushed or read.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// A spec could not be loaded for the API inventory.
    #[error("loading the specs for the API inventory: {0}")]
    InventorySpec(#[from] palisade_proxy::SpecError),
    /// The API inventory could not be built from the demo's audit log (boxed: it is
    /// large and rare).
    #[error("building the API inventory: {0}")]
    Inventory(Box<palisade_inventory::InventoryError>),
    /// The audit writer did not finish flushing.
    #[error("the audit writer did not shut down: {0}")]
    AuditShutdown(String),
    /// A sidecar did not start.
    #[error("starting the {service} sidecar: {source}")]
    Sidecar {
        /// The service.
        service: String,
        /// The cause (boxed: it is large, and errors travel by value).
        source: Box<ProxyError>,
    },
    /// A sidecar started without a valid policy set (it would deny everything).
    #[error("the {service} sidecar could not load the demo policies: {reason}")]
    Policies {
        /// The service.
        service: String,
        /// Why the policy set did not load.
        reason: String,
    },
    /// A sidecar started without a listener the demo needs.
    #[error("the {service} sidecar has no {listener} listener")]
    MissingListener {
        /// The service.
        service: String,
        /// `inbound` or `outbound`.
        listener: &'static str,
    },
    /// A demo app or the impostor could not listen.
    #[error("starting {what} on {addr}: {source}")]
    Listen {
        /// What was starting.
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A TLS configuration for a demo client or the impostor could not be built.
    #[error("building the TLS configuration of {what}: {reason}")]
    Tls {
        /// The client or server.
        what: &'static str,
        /// The cause.
        reason: String,
    },
    /// A demo OAuth client's key pair could not be generated, read or used.
    #[error("the key of OAuth client {client}: {reason}")]
    ClientKey {
        /// The client id.
        client: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The control plane did not issue an access token a scenario needs.
    #[error("getting an access token for {client} (audience {audience}) from the control plane: {reason}")]
    Token {
        /// The demo OAuth client (its name: a service, or the client id).
        client: &'static str,
        /// The service the token was for.
        audience: &'static str,
        /// Why there is none: the token endpoint's answer, or why it could not be asked.
        reason: String,
    },
    /// Waiting for Ctrl-C failed.
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}
