#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
mod query;
mod record;
mod render;
mod schema;
mod writer;

pub use error::{AuditError, ParseEnumError};
pub use query::{count, for_each_record, query, AuditQuery};
pub use record::{AuditRecord, AuthMethod, Decision, Direction, ExchangeShape, FieldShape};
pub use render::{render_json_lines, render_table};
pub use schema::SCHEMA_VERSION;
pub use writer::{AuditHandle, AuditSlot, AuditStats, AuditWriter, SinkConfig};
