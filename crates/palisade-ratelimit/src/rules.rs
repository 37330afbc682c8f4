//! Rates, the rules that say which rate applies to a request, and their validation.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;

use crate::error::RateLimitError;

/// The Redis key prefix used when the configuration does not name one.
pub const DEFAULT_KEY_PREFIX: &str = "palisade:rl";

/// The shortest supported time between two requests at the sustained rate (one million
/// requests per second): the Redis script counts in microseconds.
const MIN_EMISSION_INTERVAL: Duration = Duration::from_micros(1);

/// The longest supported time for an emptied budget to refill completely.
const MAX_REFILL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// `requests` per `per`, allowing bursts of up to `burst` back-to-back requests.
///
/// Enforced with GCRA: one request is earned every `per / requests`, and up to `burst`
/// earned requests can be saved up and spent back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per `per` at the sustained rate (at least 1).
    pub requests: u32,
    /// The period over which `requests` are allowed (longer than zero).
    pub per: std::time::Duration,
    /// How many requests may arrive back to back after a quiet period (at least 1).
    pub burst: u32,
}

impl Rate {
    /// The quota `q` and window `w` (whole seconds, at least 1) advertised in
    /// `RateLimit-Policy`. A period that is not a whole number of seconds is widened to the
    /// next whole second and the quota scaled down to match (never advertising more than
    /// the sustained rate allows).
    pub(crate) fn quota_and_window(&self) -> (u64, u64) {
        let per_ns = self.per.as_nanos();
        let window = per_ns.div_ceil(1_000_000_000).max(1);
        let quota = (u128::from(self.requests) * window * 1_000_000_000)
            .checked_div(per_ns)
            .unwrap_or(u128::from(self.requests));
        (
            u64::try_from(quota).unwrap_or(u64::MAX),
            u64::try_from(window).unwrap_or(u64::MAX),
        )
    }
}

/// Which rate applies: (caller, route) override > caller override > default. None anywhere
/// = unlimited.
///
/// Callers are SPIFFE IDs; routes are OpenAPI route templates (or literal paths when the
/// service has no spec), exactly as the proxy's route stage produces them.
#[derive(Debug, Clone, Default)]
pub struct LimitRules {
    /// The rate for every caller that has no override; `None` leaves them unlimited.
    pub default: Option<Rate>,
    /// Per-caller overrides, keyed by SPIFFE ID.
    pub callers: HashMap<String, Rate>,
    /// Per-(caller, route) overrides: (SPIFFE ID, route template or path).
    pub routes: HashMap<(String, String), Rate>,
}

/// Where the budgets live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In this process: every replica of the service has its own budgets.
    Local,
    /// In Redis: one budget per caller shared by every replica of the service.
    Redis {
        /// `redis://[user:password@]host:port[/db]` (`rediss://` needs TLS support, which is
        /// not built in).
        url: String,
        /// When Redis cannot answer: `false` decides locally (degraded), `true` refuses the
        /// request ([`LimitOutcome::Unavailable`](crate::LimitOutcome::Unavailable)).
        fail_closed: bool,
        /// Prefix of every key; [`DEFAULT_KEY_PREFIX`] unless configured.
        key_prefix: String,
    },
}

/// A validated [`Rate`] with the numbers both backends need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    /// The rate as configured.
    pub(crate) rate: Rate,
    /// Time between two requests at the sustained rate (`per / requests`).
    pub(crate) interval: Duration,
    quota: Quota,
}

impl Limit {
    /// Validates `rate`; `rule` names the rule in the error.
    pub(crate) fn new(rate: Rate, rule: impl FnOnce() -> String) -> Result<Self, RateLimitError> {
        let invalid = |reason: &'static str| RateLimitError::InvalidRate {
            rule: rule(),
            reason,
        };
        let (Some(requests), Some(burst)) =
            (NonZeroU32::new(rate.requests), NonZeroU32::new(rate.burst))
        else {
            return Err(invalid(if rate.requests == 0 {
                "requests must be at least 1"
            } else {
                "burst must be at least 1"
            }));
        };
        if rate.per.is_zero() {
            return Err(invalid("per must be longer than zero"));
        }
        let interval = rate.per / requests.get();
        if interval < MIN_EMISSION_INTERVAL {
            return Err(invalid(
                "more than one request per microsecond (per / requests < 1 µs) is not supported",
            ));
        }
        if interval.saturating_mul(burst.get()) > MAX_REFILL {
            return Err(invalid(
                "the budget must refill within 366 days (per / requests * burst)",
            ));
        }
        let quota = Quota::with_period(interval)
            .ok_or_else(|| invalid("per / requests must be longer than zero"))?
            .allow_burst(burst);
        Ok(Self {
            rate,
            interval,
            quota,
        })
    }

    /// The governor quota for the local limiter.
    pub(crate) fn quota(&self) -> Quota {
        self.quota
    }

    /// GCRA's delay tolerance: how far ahead of now the theoretical arrival time may be
    /// for a request to still conform (`interval * (burst - 1)`).
    pub(crate) fn tolerance(&self) -> Duration {
        self.interval
            .saturating_mul(self.rate.burst.saturating_sub(1))
    }

    /// The emission interval in whole microseconds, rounded up, for the Redis script.
    pub(crate) fn interval_micros(&self) -> u64 {
        u64::try_from(self.interval.as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, per: Duration, burst: u32) -> Rate {
        Rate {
            requests,
            per,
            burst,
        }
    }

    #[test]
    fn zero_requests_burst_or_period_are_rejected_naming_the_rule() {
        for (bad, reason) in [
            (
                rate(0, Duration::from_secs(1), 1),
                "requests must be at least 1",
            ),
            (
                rate(1, Duration::from_secs(1), 0),
                "burst must be at least 1",
            ),
            (rate(1, Duration::ZERO, 1), "per must be longer than zero"),
        ] {
            let err = Limit::new(bad, || "caller spiffe://x/a".to_owned()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("caller spiffe://x/a"), "{text}");
            assert!(text.contains(reason), "{text}");
        }
    }

    #[test]
    fn rates_beyond_a_microsecond_interval_or_a_year_refill_are_rejected() {
        assert!(Limit::new(rate(2_000_000, Duration::from_secs(1), 1), String::new).is_err());
        assert!(Limit::new(rate(1_000_000, Duration::from_secs(1), 1), String::new).is_ok());
        assert!(Limit::new(rate(1, Duration::from_secs(86_400), 400), String::new).is_err());
    }

    #[test]
    fn policy_window_is_whole_seconds_and_quota_scales_with_it() {
        assert_eq!(
            rate(100, Duration::from_secs(60), 10).quota_and_window(),
            (100, 60)
        );
        assert_eq!(
            rate(10, Duration::from_millis(500), 1).quota_and_window(),
            (20, 1)
        );
        assert_eq!(
            rate(3, Duration::from_millis(1500), 1).quota_and_window(),
            (4, 2)
        );
    }

    #[test]
    fn interval_micros_rounds_up() {
        let limit = Limit::new(rate(3, Duration::from_secs(1), 1), String::new).unwrap();
        assert_eq!(limit.interval_micros(), 333_334);
        assert_eq!(limit.tolerance(), Duration::ZERO);
    }
}
