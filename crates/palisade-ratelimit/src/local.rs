//! The in-process limiter: governor GCRA buckets, one per caller identity (or per
//! overridden caller / (caller, route)). Also the rule matcher both backends use.

use std::collections::HashMap;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::NotUntil;

use crate::decision::Verdict;
use crate::error::RateLimitError;
use crate::rules::{Limit, LimitRules};

/// One bucket per caller identity, created on first use and dropped by
/// [`LocalLimiter::collect_garbage`] once full again.
type KeyedLimiter<C> =
    governor::RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>;

/// One bucket for a rule that names its caller (and route), so it has exactly one key.
type DirectLimiter<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// The rules, compiled, each with its local bucket(s).
pub(crate) struct LocalLimiter<C: Clock> {
    default: Option<(Limit, KeyedLimiter<C>)>,
    callers: HashMap<String, CallerRules<C>>,
}

/// The overrides for one caller.
struct CallerRules<C: Clock> {
    own: Option<(Limit, DirectLimiter<C>)>,
    routes: HashMap<String, (Limit, DirectLimiter<C>)>,
}

/// The rule that applies to one request, and its local bucket.
pub(crate) struct Matched<'a, C: Clock> {
    /// "default", "caller" or "route".
    pub(crate) policy: &'static str,
    pub(crate) limit: &'a Limit,
    /// The route when the rule is per route; `None` for per-caller budgets.
    pub(crate) route: Option<&'a str>,
    bucket: Bucket<'a, C>,
}

enum Bucket<'a, C: Clock> {
    Keyed(&'a KeyedLimiter<C>),
    Direct(&'a DirectLimiter<C>),
}

impl<C: Clock + Clone> LocalLimiter<C> {
    /// Validates and compiles `rules`; every bucket reads time from `clock`.
    pub(crate) fn new(rules: &LimitRules, clock: C) -> Result<Self, RateLimitError> {
        let default = match rules.default {
            Some(rate) => {
                let limit = Limit::new(rate, || "default".to_owned())?;
                let limiter =
                    KeyedLimiter::new(limit.quota(), DashMapStateStore::default(), clock.clone());
                Some((limit, limiter))
            }
            None => None,
        };
        let mut callers: HashMap<String, CallerRules<C>> = HashMap::new();
        for (caller, rate) in &rules.callers {
            let limit = Limit::new(*rate, || format!("caller {caller}"))?;
            let limiter =
                DirectLimiter::new(limit.quota(), InMemoryState::default(), clock.clone());
            callers
                .entry(caller.clone())
                .or_insert_with(CallerRules::empty)
                .own = Some((limit, limiter));
        }
        for ((caller, route), rate) in &rules.routes {
            let limit = Limit::new(*rate, || format!("route {caller} {route}"))?;
            let limiter =
                DirectLimiter::new(limit.quota(), InMemoryState::default(), clock.clone());
            callers
                .entry(caller.clone())
                .or_insert_with(CallerRules::empty)
                .routes
                .insert(route.clone(), (limit, limiter));
        }
        Ok(Self { default, callers })
    }
}

impl<C: Clock> LocalLimiter<C> {
    /// The rule for `caller` calling `route`: (caller, route) override, else caller
    /// override, else the default. `None`: unlimited.
    pub(crate) fn matching<'a>(&'a self, caller: &str, route: &'a str) -> Option<Matched<'a, C>> {
        if let Some(rules) = self.callers.get(caller) {
            if let Some((route, (limit, limiter))) = rules.routes.get_key_value(route) {
                return Some(Matched {
                    policy: "route",
                    limit,
                    route: Some(route.as_str()),
                    bucket: Bucket::Direct(limiter),
                });
            }
            if let Some((limit, limiter)) = &rules.own {
                return Some(Matched {
                    policy: "caller",
                    limit,
                    route: None,
                    bucket: Bucket::Direct(limiter),
                });
            }
        }
        self.default.as_ref().map(|(limit, limiter)| Matched {
            policy: "default",
            limit,
            route: None,
            bucket: Bucket::Keyed(limiter),
        })
    }

    /// Forgets callers whose default-rule bucket is full again (indistinguishable from a
    /// fresh one) and returns the memory, so the keyed state never outgrows the set of
    /// recently active callers. Override buckets are fixed by the rules.
    pub(crate) fn collect_garbage(&self) {
        if let Some((_, limiter)) = &self.default {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many callers the default rule currently tracks.
    pub(crate) fn tracked_callers(&self) -> usize {
        self.default
            .as_ref()
            .map_or(0, |(_, limiter)| limiter.len())
    }
}

impl<C: Clock> Matched<'_, C> {
    /// Spends one request from the local bucket of `caller` under this rule.
    pub(crate) fn decide_locally(&self, caller: &str) -> Verdict {
        match self.bucket {
            Bucket::Keyed(limiter) => verdict(
                self.limit,
                limiter.check_key(&caller.to_owned()),
                limiter.clock(),
            ),
            Bucket::Direct(limiter) => verdict(self.limit, limiter.check(), limiter.clock()),
        }
    }
}

impl<C: Clock> CallerRules<C> {
    fn empty() -> Self {
        Self {
            own: None,
            routes: HashMap::new(),
        }
    }
}

/// Governor's answer as a [`Verdict`].
fn verdict<C: Clock>(
    limit: &Limit,
    result: Result<StateSnapshot, NotUntil<C::Instant>>,
    clock: &C,
) -> Verdict {
    match result {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            Verdict {
                allowed: true,
                remaining,
                retry_after: Duration::ZERO,
                // The snapshot only tells whole remaining requests, so the time until the
                // bucket is full is known to within one emission interval: round it up.
                reset: limit
                    .interval
                    .saturating_mul(limit.rate.burst.saturating_sub(remaining)),
            }
        }
        Err(not_until) => {
            let retry_after = not_until.wait_time_from(clock.now());
            Verdict {
                allowed: false,
                remaining: 0,
                retry_after,
                reset: retry_after.saturating_add(limit.tolerance()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::rules::Rate;

    const CALLER: &str = "spiffe://example.org/ns/prod/sa/orders";

    fn rate(requests: u32, secs: u64, burst: u32) -> Rate {
        Rate {
            requests,
            per: Duration::from_secs(secs),
            burst,
        }
    }

    fn limiter(rules: &LimitRules) -> (LocalLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (LocalLimiter::new(rules, clock.clone()).unwrap(), clock)
    }

    fn check(limiter: &LocalLimiter<FakeRelativeClock>, caller: &str) -> Verdict {
        limiter
            .matching(caller, "/x")
            .unwrap()
            .decide_locally(caller)
    }

    #[test]
    fn a_spent_budget_refills_one_request_per_emission_interval() {
        // 10 per minute = one every 6 s, burst 3.
        let (limiter, clock) = limiter(&LimitRules {
            default: Some(rate(10, 60, 3)),
            ..LimitRules::default()
        });
        let remaining: Vec<u32> = (0..3).map(|_| check(&limiter, CALLER).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let limited = check(&limiter, CALLER);
        assert!(!limited.allowed);
        assert_eq!(limited.retry_after, Duration::from_secs(6));
        assert_eq!(limited.reset, Duration::from_secs(18));

        clock.advance(Duration::from_secs(5));
        let still = check(&limiter, CALLER);
        assert!(!still.allowed);
        assert_eq!(still.retry_after, Duration::from_secs(1));

        clock.advance(Duration::from_secs(1));
        let again = check(&limiter, CALLER);
        assert!(again.allowed);
        assert_eq!(again.remaining, 0);

        clock.advance(Duration::from_secs(18));
        let full = check(&limiter, CALLER);
        assert_eq!((full.allowed, full.remaining), (true, 2));
        assert_eq!(full.reset, Duration::from_secs(6));
    }

    #[test]
    fn idle_callers_are_forgotten_once_their_bucket_is_full_again() {
        let (limiter, clock) = limiter(&LimitRules {
            default: Some(rate(60, 60, 5)),
            ..LimitRules::default()
        });
        for n in 0..100 {
            assert!(check(&limiter, &format!("spiffe://example.org/sa/{n}")).allowed);
        }
        assert_eq!(limiter.tracked_callers(), 100);
        limiter.collect_garbage();
        assert_eq!(
            limiter.tracked_callers(),
            100,
            "buckets still refilling stay"
        );

        clock.advance(Duration::from_secs(1));
        assert!(check(&limiter, CALLER).allowed);
        clock.advance(Duration::from_secs(1));
        limiter.collect_garbage();
        assert_eq!(
            limiter.tracked_callers(),
            1,
            "only the caller seen within a refill stays"
        );
    }

    #[test]
    fn route_override_beats_caller_override_beats_default() {
        let mut rules = LimitRules {
            default: Some(rate(1, 60, 1)),
            ..LimitRules::default()
        };
        rules.callers.insert(CALLER.to_owned(), rate(2, 60, 2));
        rules.routes.insert(
            (CALLER.to_owned(), "/invoices/{id}".to_owned()),
            rate(3, 60, 3),
        );
        let (limiter, _) = limiter(&rules);

        let route = limiter.matching(CALLER, "/invoices/{id}").unwrap();
        assert_eq!(
            (route.policy, route.route),
            ("route", Some("/invoices/{id}"))
        );
        assert_eq!(route.limit.rate, rate(3, 60, 3));
        let caller = limiter.matching(CALLER, "/payments").unwrap();
        assert_eq!((caller.policy, caller.route), ("caller", None));
        let default = limiter
            .matching("spiffe://example.org/sa/other", "/invoices/{id}")
            .unwrap();
        assert_eq!((default.policy, default.route), ("default", None));
    }

    #[test]
    fn a_route_override_alone_leaves_other_routes_unlimited() {
        let mut rules = LimitRules::default();
        rules
            .routes
            .insert((CALLER.to_owned(), "/invoices".to_owned()), rate(3, 60, 3));
        let (limiter, _) = limiter(&rules);
        assert!(limiter.matching(CALLER, "/invoices").is_some());
        assert!(limiter.matching(CALLER, "/payments").is_none());
        assert_eq!(limiter.tracked_callers(), 0);
    }
}
