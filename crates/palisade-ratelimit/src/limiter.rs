//! [`RateLimiter`]: rule matching, the backend, degradation, metrics and upkeep tasks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::DefaultClock;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use crate::decision::{LimitDecision, LimitOutcome};
use crate::error::RateLimitError;
use crate::local::LocalLimiter;
use crate::redis_backend::{RedisBackend, PROBE_INTERVAL};
use crate::rules::{Backend, LimitRules};

/// How often the local limiter forgets callers whose budget is full again.
const LOCAL_GC_INTERVAL: Duration = Duration::from_secs(30);

/// The rate limiter of one service. `Send + Sync`: build it once and share it behind an
/// `Arc` with every connection. Dropping it stops its background tasks.
pub struct RateLimiter {
    inner: Arc<Inner>,
    tasks: Vec<AbortHandle>,
}

struct Inner {
    service: String,
    /// The rules with their local buckets: the whole limiter for [`Backend::Local`], the
    /// fallback for [`Backend::Redis`].
    local: LocalLimiter<DefaultClock>,
    redis: Option<RedisBackend>,
    admitted: AtomicU64,
    limited: AtomicU64,
    degraded: AtomicU64,
}

/// Counters since the limiter was built, and whether Redis is in use right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitMetrics {
    /// Requests admitted (unlimited ones included; degraded ones too).
    pub admitted: u64,
    /// Requests refused with 429 (degraded ones included).
    pub limited: u64,
    /// Requests Redis did not decide: decided locally, or refused as
    /// [`LimitOutcome::Unavailable`] when failing closed.
    pub degraded_decisions: u64,
    /// Failed Redis operations (connects, probes, requests; timeouts included). Keeps
    /// rising while Redis is down.
    pub redis_errors: u64,
    /// Whether requests currently go to Redis (always `false` for [`Backend::Local`]).
    pub redis_available: bool,
}

impl RateLimiter {
    /// Builds the limiter for `service`. For Redis it does NOT fail if Redis is down at
    /// start: it starts degraded and reconnects in the background.
    ///
    /// Must be called within a Tokio runtime: it spawns the upkeep tasks (forgetting idle
    /// callers; probing an unavailable Redis every 250 ms).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InvalidRate`] for a rule with zero requests, burst or period (or
    /// outside the supported range), [`RateLimitError::InvalidRedisUrl`] for a URL that does
    /// not parse.
    pub async fn new(
        service: &str,
        rules: LimitRules,
        backend: Backend,
    ) -> Result<Self, RateLimitError> {
        let local = LocalLimiter::new(&rules, DefaultClock::default())?;
        let redis = match &backend {
            Backend::Local => None,
            Backend::Redis {
                url,
                fail_closed,
                key_prefix,
            } => {
                let redis = RedisBackend::new(url, *fail_closed, key_prefix, service)?;
                if !redis.probe(service).await {
                    tracing::warn!(
                        service,
                        fail_closed,
                        "redis rate limit backend unreachable at start: {} until it is reachable",
                        if *fail_closed {
                            "refusing rate-limited requests (503)"
                        } else {
                            "deciding locally (degraded)"
                        }
                    );
                }
                Some(redis)
            }
        };
        tracing::debug!(
            service,
            backend = if redis.is_some() { "redis" } else { "local" },
            "rate limiter ready"
        );
        let inner = Arc::new(Inner {
            service: service.to_owned(),
            local,
            redis,
            admitted: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            degraded: AtomicU64::new(0),
        });
        let mut tasks = vec![tokio::spawn(collect_garbage(Arc::downgrade(&inner))).abort_handle()];
        if inner.redis.is_some() {
            tasks.push(tokio::spawn(probe_redis(Arc::downgrade(&inner))).abort_handle());
        }
        Ok(Self { inner, tasks })
    }

    /// Decides one request of `caller` (its SPIFFE ID: never an address) to `route`, and
    /// spends from the budget when admitted.
    pub async fn check(&self, caller: &str, route: &str) -> LimitDecision {
        let inner = &*self.inner;
        let Some(matched) = inner.local.matching(caller, route) else {
            inner.admitted.fetch_add(1, Ordering::Relaxed);
            return LimitDecision::unlimited();
        };
        let rate = matched.limit.rate;
        let shared = match &inner.redis {
            Some(redis) => match redis.decide(caller, matched.route, matched.limit).await {
                Some(verdict) => Some(verdict),
                None if redis.fails_closed() => {
                    inner.degraded.fetch_add(1, Ordering::Relaxed);
                    return LimitDecision::unavailable(matched.policy, rate);
                }
                None => None,
            },
            None => None,
        };
        let degraded = inner.redis.is_some() && shared.is_none();
        let verdict = match shared {
            Some(verdict) => verdict,
            None => matched.decide_locally(caller),
        };
        let decision = LimitDecision::from_verdict(matched.policy, rate, verdict, degraded);
        if degraded {
            inner.degraded.fetch_add(1, Ordering::Relaxed);
        }
        match decision.outcome {
            LimitOutcome::Limited { retry_after } => {
                inner.limited.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    service = %inner.service,
                    caller,
                    route,
                    policy = decision.policy,
                    retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
                    degraded,
                    "request rate limited"
                );
            }
            LimitOutcome::Admitted => {
                inner.admitted.fetch_add(1, Ordering::Relaxed);
            }
            LimitOutcome::Unavailable => {}
        }
        decision
    }

    /// Counters since the limiter was built.
    pub fn metrics(&self) -> RateLimitMetrics {
        let inner = &*self.inner;
        RateLimitMetrics {
            admitted: inner.admitted.load(Ordering::Relaxed),
            limited: inner.limited.load(Ordering::Relaxed),
            degraded_decisions: inner.degraded.load(Ordering::Relaxed),
            redis_errors: inner.redis.as_ref().map_or(0, RedisBackend::errors),
            redis_available: inner.redis.as_ref().is_some_and(RedisBackend::is_available),
        }
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("service", &self.inner.service)
            .field(
                "backend",
                &if self.inner.redis.is_some() {
                    "redis"
                } else {
                    "local"
                },
            )
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Periodically forgets callers whose local budget is full again, so the local state only
/// holds recently active callers.
async fn collect_garbage(inner: Weak<Inner>) {
    let mut ticks = tokio::time::interval(LOCAL_GC_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let before = inner.local.tracked_callers();
        inner.local.collect_garbage();
        tracing::trace!(
            service = %inner.service,
            before,
            after = inner.local.tracked_callers(),
            "rate limiter forgot idle callers"
        );
    }
}

/// While Redis is unavailable, probes it every [`PROBE_INTERVAL`]; the first success sends
/// requests back to it.
async fn probe_redis(inner: Weak<Inner>) {
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Some(redis) = &inner.redis {
            if !redis.is_available() {
                redis.probe(&inner.service).await;
            }
        }
    }
}
