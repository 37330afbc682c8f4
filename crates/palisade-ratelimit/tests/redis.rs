//! The Redis backend against real servers: the shared budget across replicas, key expiry,
//! degradation when Redis is unreachable (or failing closed), and recovery.
//!
//! The shared server is `REDIS_URL` (default `redis://127.0.0.1:6379`); the recovery test
//! starts its own `redis-server` on a free port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_ratelimit::{Backend, LimitDecision, LimitOutcome, LimitRules, Rate, RateLimiter};

const ORDERS: &str = "spiffe://example.org/ns/prod/sa/orders";
const BILLING: &str = "spiffe://example.org/ns/prod/sa/billing";

/// 10 per minute (one every 6 s), bursts of 5.
const TEN_PER_MINUTE: Rate = Rate {
    requests: 10,
    per: Duration::from_secs(60),
    burst: 5,
};

/// Generous, so the recovery test's polling never runs into the limit.
const GENEROUS: Rate = Rate {
    requests: 1000,
    per: Duration::from_secs(1),
    burst: 1000,
};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade:rl:test:{test}:{}:{nanos}", std::process::id())
}

fn rules(rate: Rate) -> LimitRules {
    LimitRules {
        default: Some(rate),
        ..LimitRules::default()
    }
}

async fn replica(url: &str, prefix: &str, rate: Rate, fail_closed: bool) -> RateLimiter {
    RateLimiter::new(
        "billing",
        rules(rate),
        Backend::Redis {
            url: url.to_owned(),
            fail_closed,
            key_prefix: prefix.to_owned(),
        },
    )
    .await
    .unwrap()
}

/// Waits until `limiter` routes requests to Redis.
async fn until_redis_available(limiter: &RateLimiter, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !limiter.metrics().redis_available {
        assert!(
            Instant::now() < deadline,
            "Redis at {url} is not reachable: start redis-server or set REDIS_URL ({:?})",
            limiter.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks until a decision satisfies `done`, failing after 10 s.
async fn until_decision(
    limiter: &RateLimiter,
    what: &str,
    done: impl Fn(&LimitDecision) -> bool,
) -> LimitDecision {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let decision = limiter.check(ORDERS, "/invoices").await;
        if done(&decision) {
            return decision;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} decision within 10 s; last {decision:?}, {:?}",
            limiter.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `redis-server` child process on `port`, killed on drop.
struct RedisServer {
    child: Child,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start `redis-server` ({error}): the Redis tests need it on PATH \
                     (Debian: apt-get install redis-server)"
                )
            });
        let mut server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} not listening after 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_replicas_sharing_redis_admit_no_more_than_one_shared_burst() {
    let url = redis_url();
    let prefix = unique_prefix("shared");
    let a = replica(&url, &prefix, TEN_PER_MINUTE, false).await;
    let b = replica(&url, &prefix, TEN_PER_MINUTE, false).await;
    until_redis_available(&a, &url).await;
    until_redis_available(&b, &url).await;

    let mut admitted = 0;
    for n in 0..40 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let decision = replica.check(ORDERS, "/invoices").await;
        assert!(
            !decision.degraded,
            "Redis did not decide check {n}: {decision:?}"
        );
        match decision.outcome {
            LimitOutcome::Admitted => admitted += 1,
            LimitOutcome::Limited { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(6));
                assert_eq!(decision.remaining, 0);
                assert!(decision.reset > Duration::from_secs(24));
            }
            LimitOutcome::Unavailable => panic!("unavailable with Redis up: {decision:?}"),
        }
    }
    // One more request is earned every 6 s: allow for it if the loop was that slow.
    assert!(
        (5..=6).contains(&admitted),
        "40 checks on 2 replicas admitted {admitted}"
    );
    assert_eq!(
        a.metrics().degraded_decisions + b.metrics().degraded_decisions,
        0
    );

    // Another identity's budget is untouched.
    let other = b.check(BILLING, "/invoices").await;
    assert_eq!(
        (other.outcome, other.remaining),
        (LimitOutcome::Admitted, 4)
    );
}

#[tokio::test]
async fn redis_keys_expire_when_the_bucket_is_full_again() {
    let url = redis_url();
    let prefix = unique_prefix("ttl");
    let mut route_rules = rules(TEN_PER_MINUTE);
    route_rules.routes.insert(
        (ORDERS.to_owned(), "/invoices/{id}".to_owned()),
        TEN_PER_MINUTE,
    );
    let limiter = RateLimiter::new(
        "billing",
        route_rules,
        Backend::Redis {
            url: url.clone(),
            fail_closed: false,
            key_prefix: prefix.clone(),
        },
    )
    .await
    .unwrap();
    until_redis_available(&limiter, &url).await;

    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (route, key_route) in [("/invoices", "*"), ("/invoices/{id}", "/invoices/{id}")] {
        let first = limiter.check(ORDERS, route).await;
        let second = limiter.check(ORDERS, route).await;
        assert!(!first.degraded && !second.degraded);
        assert_eq!((first.remaining, second.remaining), (4, 3));
        assert!(
            second.reset > Duration::from_secs(11) && second.reset <= Duration::from_secs(12),
            "two requests take 12 s to earn back, reset = {:?}",
            second.reset
        );

        let key = format!("{prefix}:billing:spiffe%3A//example.org/ns/prod/sa/orders:{key_route}");
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(
            ttl_ms > 10_000 && ttl_ms <= 12_000,
            "{key} expires in {ttl_ms} ms, not when its bucket is full again (12 s)"
        );
    }
}

#[tokio::test]
async fn unreachable_redis_decides_locally_flagged_degraded_and_counted() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let limiter = replica(&url, &unique_prefix("down"), TEN_PER_MINUTE, false).await;

    let mut admitted = 0;
    for _ in 0..7 {
        let decision = limiter.check(ORDERS, "/invoices").await;
        assert!(decision.degraded, "{decision:?}");
        if decision.outcome == LimitOutcome::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "the local budget applies while Redis is down");
    let metrics = limiter.metrics();
    assert_eq!(metrics.degraded_decisions, 7);
    assert_eq!((metrics.admitted, metrics.limited), (5, 2));
    assert!(metrics.redis_errors >= 1, "{metrics:?}");
    assert!(!metrics.redis_available);
}

#[tokio::test]
async fn unreachable_redis_with_fail_closed_answers_unavailable() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let limiter = replica(&url, &unique_prefix("closed"), TEN_PER_MINUTE, true).await;

    let decision = limiter.check(ORDERS, "/invoices").await;
    assert_eq!(decision.outcome, LimitOutcome::Unavailable);
    assert!(decision.degraded);
    assert_eq!(decision.rate, Some(TEN_PER_MINUTE));
    let metrics = limiter.metrics();
    assert_eq!(metrics.degraded_decisions, 1);
    assert_eq!((metrics.admitted, metrics.limited), (0, 0));
}

#[tokio::test]
async fn limiter_returns_to_redis_on_its_own_when_redis_comes_back() {
    let port = closed_port();
    let url = format!("redis://127.0.0.1:{port}");
    let limiter = replica(&url, &unique_prefix("recovery"), GENEROUS, false).await;

    // Down at start: decided locally.
    assert!(limiter.check(ORDERS, "/invoices").await.degraded);

    // Redis appears: the background probe connects.
    let server = RedisServer::start(port);
    until_decision(&limiter, "Redis-decided", |decision| !decision.degraded).await;

    // Redis dies: the next requests are decided locally.
    drop(server);
    until_decision(&limiter, "degraded", |decision| decision.degraded).await;
    assert!(!limiter.metrics().redis_available);

    // Redis is back on the same port: the connection manager reconnects.
    let _server = RedisServer::start(port);
    until_decision(&limiter, "Redis-decided", |decision| !decision.degraded).await;
    assert!(limiter.metrics().redis_available);
}
