//! authorize: may this caller call this endpoint with this method? Cedar decides, deny by
//! default; anything but an explicit allow is a refusal (fail closed).

use palisade_policy::{AuthzRequest, PolicyEngine};
use time::OffsetDateTime;

use crate::context::Caller;
use crate::rejection::Rejection;

/// The call being authorized.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Who calls.
    pub caller: &'a Caller,
    /// The HTTP method (the Cedar action).
    pub method: &'a str,
    /// The called service's name.
    pub service: &'a str,
    /// The endpoint: route template or literal path.
    pub endpoint: &'a str,
    /// The literal path.
    pub path: &'a str,
    /// When.
    pub at: OffsetDateTime,
}

/// Returns the ids of the policies that allowed the call, or the refusal.
pub fn authorize(engine: &PolicyEngine, call: Call<'_>) -> Result<Vec<String>, Rejection> {
    let decision = engine.authorize(&AuthzRequest {
        caller: &call.caller.id,
        caller_trust_domain: &call.caller.trust_domain,
        method: call.method,
        service: call.service,
        route: call.endpoint,
        path: call.path,
        auth: call.caller.auth.as_str(),
        scopes: &call.caller.scopes,
        time_unix: call.at.unix_timestamp(),
    });
    if decision.allowed {
        return Ok(decision.policies);
    }
    Err(match decision.code {
        Some("palisade.policy.unavailable") => Rejection::PolicyUnavailable {
            reason: decision.reason,
        },
        code => Rejection::Denied {
            code: code.unwrap_or("palisade.authz.denied"),
            reason: decision.reason,
            policies: decision.policies,
        },
    })
}
