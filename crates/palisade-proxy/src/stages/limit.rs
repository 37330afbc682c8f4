//! limit: rate limits per caller identity (never per IP), per route when configured.
//!
//! Runs after route (limits may be per route template) and before authorize, so a caller
//! stuck in a retry loop is throttled before it costs a policy evaluation.

use palisade_ratelimit::{LimitOutcome, RateLimiter};

use crate::context::RequestContext;
use crate::rejection::Rejection;

/// Checks the caller's budget for `endpoint`. Sets the `RateLimit` headers every response
/// carries and the degraded flag; refuses when the budget is spent (or, with
/// `fail_closed`, when the shared backend is down).
pub async fn limit(
    limiter: &RateLimiter,
    ctx: &mut RequestContext,
    endpoint: &str,
) -> Result<(), Rejection> {
    let Some(caller) = ctx.caller.as_ref() else {
        return Err(Rejection::CallerUnidentified);
    };
    let decision = limiter.check(caller.id.as_str(), endpoint).await;
    ctx.ratelimit_degraded = decision.degraded;
    ctx.response_headers.extend(decision.headers());
    match decision.outcome {
        LimitOutcome::Admitted => Ok(()),
        LimitOutcome::Limited { retry_after } => Err(Rejection::RateLimited {
            caller: caller.id.to_string(),
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }),
        LimitOutcome::Unavailable => Err(Rejection::RateLimitUnavailable),
    }
}
