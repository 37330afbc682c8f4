//! The request stages, each a small function over typed inputs that can be tested alone.
//! [`crate::pipeline`] assembles them in order.

pub mod authorize;
pub mod forward;
pub mod identify;
pub mod inspect;
pub mod limit;
pub mod route;
pub mod validate;
