#![doc = include_str!("../README.md")]

mod engine;
mod error;
mod load;
mod schema;
mod watch;

pub use engine::{
    AuthzDecision, AuthzRequest, PolicyEngine, ReloadSummary, CODE_DENIED, CODE_POLICY_UNAVAILABLE,
    CODE_UNKNOWN_ACTION,
};
pub use error::{PolicyError, PolicyLoadError, PolicyProblem, ProblemKind};
pub use load::PolicySet;
pub use schema::{
    PolicySchema, ServiceInfo, ACTIONS, ACTION_TYPE, ENDPOINT_TYPE, NAMESPACE, SERVICE_TYPE,
};
pub use watch::{spawn_reloader, ReloadWatcher};
