//! The outcome of one check and the response headers that advertise it.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::rules::Rate;

/// `RateLimit-Policy`: the quota policy that applies to the request.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of the quota.
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What the limiter decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitDecision {
    /// Admit, refuse with 429, or refuse with 503.
    pub outcome: LimitOutcome,
    /// Which rule decided: "default", "caller", "route" (used as the policy name in headers).
    pub policy: &'static str,
    /// The rate that applied; `None` = unlimited (no rule, no headers).
    pub rate: Option<Rate>,
    /// Requests that could still be sent back to back right now (0 when limited or
    /// unavailable; `u32::MAX` when unlimited).
    pub remaining: u32,
    /// Time until the budget is full again (all `burst` requests available). Decided
    /// locally after an admission, it is rounded up to a whole emission interval.
    pub reset: Duration,
    /// Decided locally because Redis was unavailable (the audit record's
    /// `ratelimit_degraded`). Also set on [`LimitOutcome::Unavailable`]: Redis could not
    /// decide that one either.
    pub degraded: bool,
}

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitOutcome {
    /// Within budget: forward the request.
    Admitted,
    /// Over budget: answer 429 with [`LimitDecision::headers`].
    Limited {
        /// How long until one more request would be admitted.
        retry_after: Duration,
    },
    /// Redis is down and the backend fails closed: answer 503.
    Unavailable,
}

/// A GCRA verdict as either backend computes it, before it becomes a [`LimitDecision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) allowed: bool,
    pub(crate) remaining: u32,
    pub(crate) retry_after: Duration,
    pub(crate) reset: Duration,
}

impl LimitDecision {
    /// No rule applies to the request.
    pub(crate) fn unlimited() -> Self {
        Self {
            outcome: LimitOutcome::Admitted,
            policy: "default",
            rate: None,
            remaining: u32::MAX,
            reset: Duration::ZERO,
            degraded: false,
        }
    }

    /// A decision from a GCRA verdict.
    pub(crate) fn from_verdict(
        policy: &'static str,
        rate: Rate,
        verdict: Verdict,
        degraded: bool,
    ) -> Self {
        Self {
            outcome: if verdict.allowed {
                LimitOutcome::Admitted
            } else {
                LimitOutcome::Limited {
                    retry_after: verdict.retry_after,
                }
            },
            policy,
            rate: Some(rate),
            remaining: if verdict.allowed {
                verdict.remaining
            } else {
                0
            },
            reset: verdict.reset,
            degraded,
        }
    }

    /// Redis is down and the backend fails closed.
    pub(crate) fn unavailable(policy: &'static str, rate: Rate) -> Self {
        Self {
            outcome: LimitOutcome::Unavailable,
            policy,
            rate: Some(rate),
            remaining: 0,
            reset: Duration::ZERO,
            degraded: true,
        }
    }

    /// The response headers for this decision, in the structured-field form of
    /// [draft-ietf-httpapi-ratelimit-headers-11](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/)
    /// (sections 3 and 4), plus `Retry-After` (RFC 9110, section 10.2.3) when limited:
    ///
    /// ```text
    /// RateLimit-Policy: "default";q=100;w=60     quota q requests per window w seconds
    /// RateLimit: "default";r=0;t=12              r requests left, full again in t seconds
    /// Retry-After: 3                             only when limited: whole seconds, rounded up, at least 1
    /// ```
    ///
    /// The policy name is [`policy`](Self::policy). Seconds are rounded up. Unlimited
    /// decisions have no headers; [`LimitOutcome::Unavailable`] has only `RateLimit-Policy`
    /// (the remaining quota is unknown).
    pub fn headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let Some(rate) = self.rate else {
            return Vec::new();
        };
        let (quota, window) = rate.quota_and_window();
        let mut fields = vec![(
            RATELIMIT_POLICY,
            format!("\"{}\";q={quota};w={window}", self.policy),
        )];
        let service_limit = || {
            (
                RATELIMIT,
                format!(
                    "\"{}\";r={};t={}",
                    self.policy,
                    self.remaining,
                    ceil_secs(self.reset)
                ),
            )
        };
        match &self.outcome {
            LimitOutcome::Admitted => fields.push(service_limit()),
            LimitOutcome::Limited { retry_after } => {
                fields.push(service_limit());
                fields.push((
                    http::header::RETRY_AFTER,
                    ceil_secs(*retry_after).max(1).to_string(),
                ));
            }
            LimitOutcome::Unavailable => {}
        }
        fields
            .into_iter()
            .filter_map(|(name, value)| Some((name, HeaderValue::try_from(value).ok()?)))
            .collect()
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(12)), 12);
        assert_eq!(ceil_secs(Duration::from_millis(11_200)), 12);
    }

    #[test]
    fn unlimited_has_no_headers() {
        assert!(LimitDecision::unlimited().headers().is_empty());
    }
}
