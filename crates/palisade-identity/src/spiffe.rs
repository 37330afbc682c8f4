//! SPIFFE IDs, parsed and validated per the SPIFFE ID specification.
//!
//! <https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>

use std::fmt;
use std::str::FromStr;

/// Longest SPIFFE ID the spec allows, in bytes.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// Longest trust domain name the spec allows, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A validated SPIFFE ID: `spiffe://<trust-domain>/<path>`.
///
/// The trust domain is lower-case `[a-z0-9.-_]`; the path, when present, has no empty,
/// `.` or `..` segments and only `[A-Za-z0-9.-_]` characters. No query, fragment, port or
/// user info.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    trust_domain_len: usize,
}

/// A rule of the SPIFFE ID spec that an input broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The input is longer than 2048 bytes.
    #[error("SPIFFE ID is {0} bytes long; the maximum is 2048")]
    TooLong(usize),
    /// The scheme is not `spiffe://` (the scheme must be lower-case).
    #[error("SPIFFE ID must start with \"spiffe://\"")]
    WrongScheme,
    /// Nothing follows `spiffe://`.
    #[error("SPIFFE ID has no trust domain")]
    MissingTrustDomain,
    /// The trust domain has a character other than `[a-z0-9.-_]` (upper case included).
    #[error("trust domain has invalid character {0:?}: only lower-case letters, digits, '.', '-' and '_' are allowed")]
    BadTrustDomainChar(char),
    /// The trust domain is longer than 255 bytes.
    #[error("trust domain is {0} bytes long; the maximum is 255")]
    TrustDomainTooLong(usize),
    /// The path has an empty segment (`//` or a trailing `/`).
    #[error("path has an empty segment (\"//\" or a trailing \"/\")")]
    EmptySegment,
    /// The path has a `.` or `..` segment.
    #[error("path has a \".\" or \"..\" segment")]
    DotSegment,
    /// The path has a character other than `[A-Za-z0-9.-_]`.
    #[error("path has invalid character {0:?}: only letters, digits, '.', '-' and '_' are allowed in segments")]
    BadPathChar(char),
}

impl SpiffeId {
    /// Builds `spiffe://<trust_domain><path>`; `path` is empty or starts with `/`.
    pub fn new(trust_domain: &str, path: &str) -> Result<Self, SpiffeIdError> {
        format!("spiffe://{trust_domain}{path}").parse()
    }

    /// The trust domain name, e.g. `palisade.demo`.
    pub fn trust_domain(&self) -> &str {
        &self.id["spiffe://".len()..self.trust_domain_len]
    }

    /// The path, e.g. `/ns/demo/sa/orders`; empty for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.id[self.trust_domain_len..]
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

/// Checks a bare trust domain name (as given to `palisade ca init --trust-domain`).
pub fn validate_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong(name.len()));
    }
    match name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some(c) => Err(SpiffeIdError::BadTrustDomainChar(c)),
        None => Ok(()),
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong(input.len()));
        }
        let rest = input
            .strip_prefix("spiffe://")
            .ok_or(SpiffeIdError::WrongScheme)?;
        let (trust_domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // A port, user info, query or fragment all show up as a character the
        // trust-domain or path alphabet does not allow, so they need no rule of their own.
        validate_trust_domain(trust_domain)?;
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                match segment {
                    "" => return Err(SpiffeIdError::EmptySegment),
                    "." | ".." => return Err(SpiffeIdError::DotSegment),
                    _ => {}
                }
                if let Some(c) = segment
                    .chars()
                    .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
                {
                    return Err(SpiffeIdError::BadPathChar(c));
                }
            }
        }
        Ok(SpiffeId {
            id: input.to_owned(),
            trust_domain_len: "spiffe://".len() + trust_domain.len(),
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_style_ids() {
        let id: SpiffeId = "spiffe://palisade.demo/ns/demo/sa/orders".parse().unwrap();
        assert_eq!(id.trust_domain(), "palisade.demo");
        assert_eq!(id.path(), "/ns/demo/sa/orders");
        assert_eq!(SpiffeId::new("palisade.demo", "/ns/demo/sa/orders"), Ok(id));
    }

    #[test]
    fn accepts_a_bare_trust_domain_id() {
        let id: SpiffeId = "spiffe://example.org".parse().unwrap();
        assert_eq!(id.path(), "");
    }

    #[test]
    fn rejects_each_broken_rule_by_name() {
        let cases = [
            ("", SpiffeIdError::Empty),
            ("https://example.org/a", SpiffeIdError::WrongScheme),
            ("SPIFFE://example.org/a", SpiffeIdError::WrongScheme),
            ("spiffe://", SpiffeIdError::MissingTrustDomain),
            ("spiffe:///a", SpiffeIdError::MissingTrustDomain),
            (
                "spiffe://Example.org/a",
                SpiffeIdError::BadTrustDomainChar('E'),
            ),
            (
                "spiffe://example.org:8080/a",
                SpiffeIdError::BadTrustDomainChar(':'),
            ),
            (
                "spiffe://user@example.org/a",
                SpiffeIdError::BadTrustDomainChar('@'),
            ),
            ("spiffe://example.org/a//b", SpiffeIdError::EmptySegment),
            ("spiffe://example.org/a/", SpiffeIdError::EmptySegment),
            ("spiffe://example.org/a/../b", SpiffeIdError::DotSegment),
            ("spiffe://example.org/./b", SpiffeIdError::DotSegment),
            (
                "spiffe://example.org/a?x=1",
                SpiffeIdError::BadPathChar('?'),
            ),
            (
                "spiffe://example.org/a#frag",
                SpiffeIdError::BadPathChar('#'),
            ),
            (
                "spiffe://example.org/a%20b",
                SpiffeIdError::BadPathChar('%'),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<SpiffeId>(), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn rejects_overlong_ids() {
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        assert!(matches!(
            long.parse::<SpiffeId>(),
            Err(SpiffeIdError::TooLong(_))
        ));
        let td = format!("spiffe://{}/a", "a".repeat(256));
        assert_eq!(
            td.parse::<SpiffeId>(),
            Err(SpiffeIdError::TrustDomainTooLong(256))
        );
    }
}
