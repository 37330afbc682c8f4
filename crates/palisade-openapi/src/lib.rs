#![doc = include_str!("../README.md")]

mod body;
mod dialect;
mod error;
mod params;
mod raw;
mod router;
mod spec;
mod template;
mod validate;
mod violation;

pub use error::{SpecError, TemplateError};
pub use spec::{ApiSpec, Operation, RouteMatch};
pub use validate::{BodyExpectation, RequestValidator, ValidatedRoute, ValidationOptions};
pub use violation::Violation;
