#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod api;
mod audit;
mod certs;
mod client;
mod error;
pub mod inventory;
mod problem;
mod server;
mod state;
mod tls;

pub use audit::{admin_audit_record, AdminAction};
pub use certs::{normalize_serial, serial_hex};
pub use client::{ControlClient, FetchedBundle, REQUEST_TIMEOUT};
pub use error::ControlError;
pub use problem::{Problem, Reason, Refusal};
pub use server::{
    ControlServer, ControlServerConfig, OAuthSettings, RunningControl, AUDIT_SERVICE,
    CA_CHECK_INTERVAL, CONTROL_SVID_TTL, DRAIN_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_BODY_BYTES,
    OAUTH_KEYS_DIR,
};
pub use state::{
    CaStatus, ControlState, RetiredRoot, RevocationList, RootUsage, CONTROL_DB_FILE,
    CONTROL_ID_PATH, JOIN_TOKEN_PREFIX, SCHEMA_VERSION,
};
