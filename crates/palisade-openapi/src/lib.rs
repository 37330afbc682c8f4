#![doc = include_str!("../README.md")]

mod error;
mod raw;
mod router;
mod spec;
mod template;

pub use error::{SpecError, TemplateError};
pub use spec::{ApiSpec, Operation, RouteMatch};
