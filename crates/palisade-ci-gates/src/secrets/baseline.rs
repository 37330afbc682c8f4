//! Baselines: findings already known and accepted, identified by
//! fingerprint, read from a previous report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::report::{json, Report};

/// A set of accepted finding fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    fingerprints: HashSet<String>,
}

impl Baseline {
    /// Reads a previous report: this crate's JSON (`--format json`) or a
    /// SARIF log it wrote.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| Error::Baseline {
            path: path.to_owned(),
            message,
        })
    }

    /// [`Baseline::from_file`] on text already read.
    pub fn from_report_str(text: &str) -> Result<Self, Error> {
        Self::parse(text).map_err(|message| Error::Baseline {
            path: PathBuf::from("<input>"),
            message,
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        Ok(Self::from_fingerprints(json::fingerprints_from_str(text)?))
    }

    /// Every finding of `report`.
    pub fn from_report(report: &Report) -> Self {
        Self::from_fingerprints(report.findings.iter().map(|f| f.fingerprint.clone()))
    }

    /// These fingerprints.
    pub fn from_fingerprints<I: IntoIterator<Item = String>>(fingerprints: I) -> Self {
        Baseline {
            fingerprints: fingerprints.into_iter().collect(),
        }
    }

    /// Whether `fingerprint` is accepted.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// Number of fingerprints.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}
