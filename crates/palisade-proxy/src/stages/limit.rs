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
    let decision = limiter.check(&caller.id, endpoint).await;
    ctx.ratelimit_degraded = decision.degraded;
    ctx.response_headers.extend(decision.headers());
    match decision.outcome {
        LimitOutcome::Admitted => Ok(()),
        LimitOutcome::Limited { retry_after } => Err(Rejection::RateLimited {
            caller: caller.id.clone(),
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }),
        LimitOutcome::Unavailable => Err(Rejection::RateLimitUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use palisade_audit::Direction;
    use palisade_ratelimit::{Backend, LimitRules, Rate};

    use super::*;
    use crate::context::Caller;

    fn ctx(caller: &str) -> RequestContext {
        let mut ctx = RequestContext::new(
            "r".into(),
            "billing".into(),
            Direction::Inbound,
            None,
            &http::Method::GET,
            "/invoices/1",
        );
        ctx.caller = Some(Caller::mtls(&caller.parse().unwrap()));
        ctx
    }

    #[tokio::test]
    async fn refuses_the_request_after_the_identity_spent_its_burst() {
        let rules = LimitRules {
            default: Some(Rate {
                requests: 2,
                per: Duration::from_secs(60),
                burst: 2,
            }),
            ..LimitRules::default()
        };
        let limiter = RateLimiter::new("billing", rules, Backend::Local)
            .await
            .unwrap();
        let caller = "spiffe://td/ns/a/sa/orders";
        for _ in 0..2 {
            let mut c = ctx(caller);
            limit(&limiter, &mut c, "/invoices/{id}").await.unwrap();
            assert!(c
                .response_headers
                .iter()
                .any(|(n, _)| n == "ratelimit-policy"));
        }
        let mut c = ctx(caller);
        let refusal = limit(&limiter, &mut c, "/invoices/{id}").await.unwrap_err();
        assert_eq!(refusal.code(), "palisade.ratelimit.exceeded");
        assert!(!c.ratelimit_degraded);
        // Another identity is untouched.
        limit(
            &limiter,
            &mut ctx("spiffe://td/ns/a/sa/other"),
            "/invoices/{id}",
        )
        .await
        .unwrap();
    }
}
