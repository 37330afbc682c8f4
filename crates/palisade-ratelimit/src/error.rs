//! The one error type of this crate.

/// Why a [`RateLimiter`](crate::RateLimiter) could not be built. Only configuration
/// mistakes are errors: an unreachable Redis is not (the limiter starts degraded).
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// A rate in the rules cannot be enforced (zero requests, burst or period, or outside
    /// the supported range).
    #[error("invalid rate limit rule {rule}: {reason}")]
    InvalidRate {
        /// Which rule: `default`, `caller <SPIFFE ID>` or `route <SPIFFE ID> <route>`.
        rule: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The Redis URL does not parse (the URL itself is not repeated: it may hold a password).
    #[error("invalid redis url")]
    InvalidRedisUrl(#[source] redis::RedisError),
}
