#![doc = include_str!("../README.md")]

mod command;
mod deser;
mod finding;
mod inspector;
mod normalize;
mod nosql;
mod path;
mod profile;
mod sql;

pub use finding::{Finding, InjectionKind, Source};
pub use inspector::{InspectOptions, Inspector};
