//! The shared backend: one GCRA bucket per key in Redis, updated atomically by a Lua
//! script that reads Redis' own clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::decision::Verdict;
use crate::error::RateLimitError;
use crate::rules::Limit;

/// The longest a request waits for Redis before it is decided without it. A hung Redis
/// costs the one request that notices it this much; later ones skip Redis until a
/// background probe finds it healthy again.
pub const REDIS_CALL_TIMEOUT: Duration = Duration::from_millis(50);

/// How long one connection attempt (TCP connect and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// How long a background probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// How often an unavailable Redis is probed.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// GCRA over the theoretical arrival time (TAT) stored at `KEYS[1]`, in microseconds of
/// Redis' clock (`TIME`), so every replica measures against the same clock.
///
/// `ARGV[1]`: emission interval T (µs); `ARGV[2]`: burst. A request conforms when
/// `now >= TAT - T * (burst - 1)`; then TAT becomes `max(TAT, now) + T` and the key expires
/// when TAT is reached, i.e. exactly when the bucket is full again (an absent key and a
/// full bucket are the same state). Returns `{allowed, remaining, retry_after_us, reset_us}`.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local earliest = tat - tolerance
if now < earliest then
  return {0, 0, earliest - now, tat - now}
end
local new_tat = tat + interval
local reset = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil(reset / 1000)))
return {1, math.floor((tolerance + interval - reset) / interval), 0, reset}
";

/// Budgets in Redis, with its availability as last observed.
pub(crate) struct RedisBackend {
    client: redis::Client,
    /// Set once the first connection succeeds; the manager reconnects by itself after.
    connection: OnceLock<ConnectionManager>,
    available: AtomicBool,
    errors: AtomicU64,
    fail_closed: bool,
    /// `{prefix}:{service}:`, the part of every key that does not depend on the request.
    key_base: String,
    script: Script,
}

impl RedisBackend {
    /// Parses `url`; does not connect (see [`probe`](Self::probe)).
    pub(crate) fn new(
        url: &str,
        fail_closed: bool,
        key_prefix: &str,
        service: &str,
    ) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(RateLimitError::InvalidRedisUrl)?;
        Ok(Self {
            client,
            connection: OnceLock::new(),
            available: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            fail_closed,
            key_base: format!("{key_prefix}:{}:", escape(service)),
            script: Script::new(GCRA_SCRIPT),
        })
    }

    /// Whether requests currently go to Redis.
    pub(crate) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// Refuse (rather than decide locally) when Redis cannot answer.
    pub(crate) fn fails_closed(&self) -> bool {
        self.fail_closed
    }

    /// Failed Redis operations so far (connects, probes and requests, timeouts included).
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The bucket key: `{prefix}:{service}:{caller}:{route}`, route `*` for per-caller
    /// budgets. Parts are escaped so that no two (service, caller, route) share a key.
    pub(crate) fn key(&self, caller: &str, route: Option<&str>) -> String {
        let mut key = self.key_base.clone();
        key.push_str(&escape(caller));
        key.push(':');
        match route {
            Some(route) => key.push_str(&escape(route)),
            None => key.push('*'),
        }
        key
    }

    /// Spends one request of `caller`'s shared budget. `None` when Redis is unavailable or
    /// fails or times out now: the caller then decides without it.
    pub(crate) async fn decide(
        &self,
        caller: &str,
        route: Option<&str>,
        limit: &Limit,
    ) -> Option<Verdict> {
        if !self.is_available() {
            return None;
        }
        let mut connection = self.connection.get()?.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key(caller, route))
            .arg(limit.interval_micros())
            .arg(limit.rate.burst);
        let reply = tokio::time::timeout(
            REDIS_CALL_TIMEOUT,
            invocation.invoke_async::<(i64, i64, i64, i64)>(&mut connection),
        )
        .await;
        match reply {
            Ok(Ok((allowed, remaining, retry_after_us, reset_us))) => Some(Verdict {
                allowed: allowed == 1,
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                retry_after: micros(retry_after_us),
                reset: micros(reset_us),
            }),
            Ok(Err(error)) => {
                self.request_failed(&error.to_string());
                None
            }
            Err(_elapsed) => {
                self.request_failed("no answer within REDIS_CALL_TIMEOUT");
                None
            }
        }
    }

    /// Connects if not connected yet and loads the script; on success requests go to
    /// Redis again. Returns whether Redis is available.
    pub(crate) async fn probe(&self, service: &str) -> bool {
        let mut connection = match self.connection.get() {
            Some(connection) => connection.clone(),
            None => match self.connect().await {
                Ok(connection) => self.connection.get_or_init(|| connection).clone(),
                Err(error) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(service, %error, "redis rate limit backend: connect failed");
                    return false;
                }
            },
        };
        let loaded =
            tokio::time::timeout(PROBE_TIMEOUT, self.script.load_async(&mut connection)).await;
        match loaded {
            Ok(Ok(_sha)) => {
                if !self.available.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        service,
                        "redis rate limit backend available: budgets are shared by all replicas"
                    );
                }
                true
            }
            Ok(Err(error)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(service, %error, "redis rate limit backend: probe failed");
                false
            }
            Err(_elapsed) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(service, "redis rate limit backend: probe timed out");
                false
            }
        }
    }

    async fn connect(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            // One attempt per connect or reconnect: the probe loop is the retry.
            .set_number_of_retries(0);
        match tokio::time::timeout(
            CONNECT_TIMEOUT.saturating_mul(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_elapsed) => Err("connect timed out".to_owned()),
        }
    }

    fn request_failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                key_base = %self.key_base,
                error,
                fail_closed = self.fail_closed,
                "redis rate limit backend unavailable: {} until it is back",
                if self.fail_closed {
                    "refusing rate-limited requests (503)"
                } else {
                    "deciding locally (degraded)"
                }
            );
        }
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

/// Escapes `%`, `:` and `*` so a part can never be mistaken for a separator or for the
/// per-caller route `*` (a SPIFFE ID always contains `:`).
fn escape(part: &str) -> String {
    let mut escaped = String::with_capacity(part.len() + 8);
    for c in part.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            ':' => escaped.push_str("%3A"),
            '*' => escaped.push_str("%2A"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> RedisBackend {
        RedisBackend::new("redis://127.0.0.1:1", false, "palisade:rl", "billing").unwrap()
    }

    #[test]
    fn keys_name_prefix_service_caller_and_route() {
        let backend = backend();
        assert_eq!(
            backend.key("spiffe://example.org/sa/orders", None),
            "palisade:rl:billing:spiffe%3A//example.org/sa/orders:*"
        );
        assert_eq!(
            backend.key("spiffe://example.org/sa/orders", Some("/invoices/{id}")),
            "palisade:rl:billing:spiffe%3A//example.org/sa/orders:/invoices/{id}"
        );
    }

    #[test]
    fn colons_and_stars_in_parts_cannot_collide() {
        let backend = backend();
        assert_ne!(backend.key("a:b", Some("c")), backend.key("a", Some("b:c")));
        assert_ne!(backend.key("a", Some("*")), backend.key("a", None));
        assert_ne!(backend.key("a%3Ab", None), backend.key("a:b", None));
    }

    #[test]
    fn invalid_urls_are_configuration_errors() {
        assert!(matches!(
            RedisBackend::new("http://nope", false, "p", "s"),
            Err(RateLimitError::InvalidRedisUrl(_))
        ));
    }
}
