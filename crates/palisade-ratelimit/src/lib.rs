#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod decision;
mod error;
mod limiter;
mod local;
mod redis_backend;
mod rules;

pub use decision::{LimitDecision, LimitOutcome};
pub use error::RateLimitError;
pub use limiter::{RateLimitMetrics, RateLimiter};
pub use redis_backend::REDIS_CALL_TIMEOUT;
pub use rules::{Backend, LimitRules, Rate, DEFAULT_KEY_PREFIX};
