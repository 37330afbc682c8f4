//! The local backend through the public API: budgets per identity, precedence of the
//! rules, unlimited services, headers, metrics and configuration errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use palisade_ratelimit::{
    Backend, LimitDecision, LimitOutcome, LimitRules, Rate, RateLimitError, RateLimiter,
};

const ORDERS: &str = "spiffe://example.org/ns/prod/sa/orders";
const BILLING: &str = "spiffe://example.org/ns/prod/sa/billing";

/// 10 per minute (one every 6 s), bursts of 5.
const TEN_PER_MINUTE: Rate = Rate {
    requests: 10,
    per: Duration::from_secs(60),
    burst: 5,
};

fn rate(requests: u32, burst: u32) -> Rate {
    Rate {
        requests,
        per: Duration::from_secs(60),
        burst,
    }
}

async fn limiter(rules: LimitRules) -> RateLimiter {
    RateLimiter::new("customers", rules, Backend::Local)
        .await
        .unwrap()
}

fn default_rule(rate: Rate) -> LimitRules {
    LimitRules {
        default: Some(rate),
        ..LimitRules::default()
    }
}

/// How many of `n` checks of `caller` to `route` are admitted.
async fn admitted(limiter: &RateLimiter, caller: &str, route: &str, n: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        if limiter.check(caller, route).await.outcome == LimitOutcome::Admitted {
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test]
async fn a_burst_is_admitted_then_limited_until_the_next_emission_interval() {
    let limiter = limiter(default_rule(TEN_PER_MINUTE)).await;
    for expected_remaining in (0..5).rev() {
        let decision = limiter.check(ORDERS, "/customers/{id}").await;
        assert_eq!(decision.outcome, LimitOutcome::Admitted);
        assert_eq!(decision.policy, "default");
        assert_eq!(decision.rate, Some(TEN_PER_MINUTE));
        assert_eq!(decision.remaining, expected_remaining);
        assert!(!decision.degraded);
    }
    let limited = limiter.check(ORDERS, "/customers/{id}").await;
    let LimitOutcome::Limited { retry_after } = limited.outcome else {
        panic!("the 6th request of a burst of 5 was not limited: {limited:?}");
    };
    assert!(
        retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(6),
        "one request is earned every 6 s, retry_after = {retry_after:?}"
    );
    assert_eq!(limited.remaining, 0);
    assert!(
        limited.reset > Duration::from_secs(29) && limited.reset <= Duration::from_secs(30),
        "five requests take 30 s to earn back, reset = {:?}",
        limited.reset
    );
}

#[tokio::test]
async fn one_identity_has_one_budget_across_routes_and_connections() {
    let limiter = Arc::new(limiter(default_rule(TEN_PER_MINUTE)).await);
    // The limiter never sees addresses: concurrent connections (from any number of IPs)
    // presenting the same identity draw from the same budget, whatever route they call.
    let tasks: Vec<_> = (0..8)
        .map(|connection| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let route = format!("/customers/{connection}");
                admitted(&limiter, ORDERS, &route, 3).await
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 5, "24 requests of one identity share one burst of 5");
}

#[tokio::test]
async fn different_identities_have_independent_budgets() {
    let limiter = limiter(default_rule(TEN_PER_MINUTE)).await;
    assert_eq!(admitted(&limiter, ORDERS, "/customers", 10).await, 5);
    assert_eq!(admitted(&limiter, BILLING, "/customers", 10).await, 5);
    assert_eq!(admitted(&limiter, ORDERS, "/customers", 1).await, 0);
}

#[tokio::test]
async fn caller_override_takes_precedence_over_the_default() {
    let mut rules = default_rule(rate(10, 2));
    rules.callers.insert(ORDERS.to_owned(), rate(10, 7));
    let limiter = limiter(rules).await;

    let first = limiter.check(ORDERS, "/customers").await;
    assert_eq!((first.policy, first.rate), ("caller", Some(rate(10, 7))));
    assert_eq!(admitted(&limiter, ORDERS, "/customers", 10).await, 6);
    let other = limiter.check(BILLING, "/customers").await;
    assert_eq!((other.policy, other.rate), ("default", Some(rate(10, 2))));
}

#[tokio::test]
async fn route_override_takes_precedence_over_the_caller_override_with_its_own_budget() {
    let mut rules = default_rule(rate(10, 2));
    rules.callers.insert(ORDERS.to_owned(), rate(10, 3));
    rules.routes.insert(
        (ORDERS.to_owned(), "/customers/{id}".to_owned()),
        rate(10, 4),
    );
    let limiter = limiter(rules).await;

    let on_route = limiter.check(ORDERS, "/customers/{id}").await;
    assert_eq!(
        (on_route.policy, on_route.rate),
        ("route", Some(rate(10, 4)))
    );
    assert_eq!(admitted(&limiter, ORDERS, "/customers/{id}", 10).await, 3);
    // The route's budget is its own: the caller's budget for other routes is untouched.
    let elsewhere = limiter.check(ORDERS, "/customers").await;
    assert_eq!(elsewhere.policy, "caller");
    assert_eq!(elsewhere.remaining, 2);
    // Another caller on the same route gets the default.
    let other = limiter.check(BILLING, "/customers/{id}").await;
    assert_eq!(other.policy, "default");
}

#[tokio::test]
async fn no_rules_means_unlimited_and_no_headers() {
    let limiter = limiter(LimitRules::default()).await;
    assert_eq!(admitted(&limiter, ORDERS, "/customers", 1000).await, 1000);
    let decision = limiter.check(ORDERS, "/customers").await;
    assert_eq!(decision.rate, None);
    assert!(decision.headers().is_empty());
}

fn header_text(decision: &LimitDecision) -> Vec<(String, String)> {
    decision
        .headers()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[test]
fn headers_of_admitted_and_limited_decisions_are_exact() {
    let admitted = LimitDecision {
        outcome: LimitOutcome::Admitted,
        policy: "default",
        rate: Some(Rate {
            requests: 100,
            per: Duration::from_secs(60),
            burst: 20,
        }),
        remaining: 17,
        reset: Duration::from_millis(1_800),
        degraded: false,
    };
    assert_eq!(
        header_text(&admitted),
        pairs(&[
            ("ratelimit-policy", "\"default\";q=100;w=60"),
            ("ratelimit", "\"default\";r=17;t=2"),
        ])
    );

    let limited = LimitDecision {
        outcome: LimitOutcome::Limited {
            retry_after: Duration::from_millis(2_100),
        },
        remaining: 0,
        reset: Duration::from_millis(11_500),
        ..admitted.clone()
    };
    assert_eq!(
        header_text(&limited),
        pairs(&[
            ("ratelimit-policy", "\"default\";q=100;w=60"),
            ("ratelimit", "\"default\";r=0;t=12"),
            ("retry-after", "3"),
        ])
    );

    let barely = LimitDecision {
        outcome: LimitOutcome::Limited {
            retry_after: Duration::from_millis(3),
        },
        policy: "route",
        ..limited.clone()
    };
    assert_eq!(
        header_text(&barely),
        pairs(&[
            ("ratelimit-policy", "\"route\";q=100;w=60"),
            ("ratelimit", "\"route\";r=0;t=12"),
            ("retry-after", "1"),
        ])
    );

    let unavailable = LimitDecision {
        outcome: LimitOutcome::Unavailable,
        degraded: true,
        ..admitted
    };
    assert_eq!(
        header_text(&unavailable),
        pairs(&[("ratelimit-policy", "\"default\";q=100;w=60")])
    );
}

#[tokio::test]
async fn headers_from_the_limiter_advertise_the_rule_that_decided() {
    let mut rules = LimitRules::default();
    rules.callers.insert(ORDERS.to_owned(), TEN_PER_MINUTE);
    let limiter = limiter(rules).await;
    let first = limiter.check(ORDERS, "/customers").await;
    assert_eq!(
        header_text(&first),
        pairs(&[
            ("ratelimit-policy", "\"caller\";q=10;w=60"),
            ("ratelimit", "\"caller\";r=4;t=6"),
        ])
    );
    admitted(&limiter, ORDERS, "/customers", 4).await;
    let limited = header_text(&limiter.check(ORDERS, "/customers").await);
    assert_eq!(limited.len(), 3, "{limited:?}");
    assert_eq!(
        limited[1],
        ("ratelimit".to_owned(), "\"caller\";r=0;t=30".to_owned())
    );
    assert_eq!(limited[2], ("retry-after".to_owned(), "6".to_owned()));
}

#[tokio::test]
async fn metrics_count_admitted_and_limited_requests() {
    let limiter = limiter(default_rule(TEN_PER_MINUTE)).await;
    admitted(&limiter, ORDERS, "/customers", 8).await;
    assert_eq!(
        limiter.metrics(),
        palisade_ratelimit::RateLimitMetrics {
            admitted: 5,
            limited: 3,
            degraded_decisions: 0,
            redis_errors: 0,
            redis_available: false,
        }
    );
}

#[tokio::test]
async fn invalid_rules_and_redis_urls_are_refused_at_build() {
    for (rules, rule) in [
        (default_rule(rate(0, 1)), "default"),
        (default_rule(rate(1, 0)), "default"),
        (
            LimitRules {
                callers: [(
                    ORDERS.to_owned(),
                    Rate {
                        requests: 1,
                        per: Duration::ZERO,
                        burst: 1,
                    },
                )]
                .into(),
                ..LimitRules::default()
            },
            "caller spiffe://example.org/ns/prod/sa/orders",
        ),
    ] {
        let error = RateLimiter::new("customers", rules, Backend::Local)
            .await
            .unwrap_err();
        assert!(matches!(error, RateLimitError::InvalidRate { .. }));
        assert!(error.to_string().contains(rule), "{error}");
    }

    let error = RateLimiter::new(
        "customers",
        default_rule(TEN_PER_MINUTE),
        Backend::Redis {
            url: "mysql://user:s3cret@db:3306".to_owned(), // palisade:allow (fake credential, test data)
            fail_closed: false,
            key_prefix: palisade_ratelimit::DEFAULT_KEY_PREFIX.to_owned(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, RateLimitError::InvalidRedisUrl(_)));
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
}

#[test]
fn the_limiter_can_be_shared_by_all_connections() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<RateLimiter>();
    shared::<LimitDecision>();
}
