//! What a detection reports: the class of injection, where it was found and
//! which rule fired. Never the payload itself.

/// The class of attack a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InjectionKind {
    /// SQL injection (libinjection fingerprints plus two structural rules).
    Sql,
    /// OS command injection: a shell separator or substitution followed by a command.
    Command,
    /// Path traversal: `..` segments, sensitive absolute paths, NUL bytes.
    PathTraversal,
    /// NoSQL (MongoDB) operator injection: `$ne`, `$where`, `user[$gt]=`, ...
    NoSql,
    /// A serialized-object payload (Java, PHP, Python pickle, .NET, YAML tags,
    /// polymorphic JSON type hints).
    Deserialization,
}

impl InjectionKind {
    /// Every kind, in the order the detectors run on a value: the most
    /// specific evidence first (a serialization marker, an operator key, a
    /// shell command), so a value that matches several is reported as what
    /// it most plausibly is (`"|id|"` is a command, not SQL).
    pub const ALL: [InjectionKind; 5] = [
        InjectionKind::Deserialization,
        InjectionKind::NoSql,
        InjectionKind::Command,
        InjectionKind::Sql,
        InjectionKind::PathTraversal,
    ];

    /// The stable error code of this kind (see `docs/ERRORS.md`), e.g.
    /// `palisade.injection.sql`.
    pub fn code(self) -> &'static str {
        match self {
            InjectionKind::Sql => "palisade.injection.sql",
            InjectionKind::Command => "palisade.injection.command",
            InjectionKind::PathTraversal => "palisade.injection.path_traversal",
            InjectionKind::NoSql => "palisade.injection.nosql",
            InjectionKind::Deserialization => "palisade.injection.deserialization",
        }
    }

    /// Position of the kind in a `[bool; 5]` table.
    pub(crate) fn index(self) -> usize {
        match self {
            InjectionKind::Sql => 0,
            InjectionKind::Command => 1,
            InjectionKind::PathTraversal => 2,
            InjectionKind::NoSql => 3,
            InjectionKind::Deserialization => 4,
        }
    }
}

/// The part of the request a finding was made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request path.
    Path,
    /// A query-string parameter (name or value).
    Query,
    /// One of the configured request headers.
    Header,
    /// The request body (JSON or raw).
    Body,
}

/// One detection.
///
/// `location` names *where* the suspicious data is, never what it is:
///
/// | source | location |
/// | --- | --- |
/// | [`Source::Path`] | `path` |
/// | [`Source::Query`] | `query/<name>` for a value; `query/<name>` (the part before any `[`) for a bracketed key such as `user[$ne]`; `query` when the parameter name itself is the payload |
/// | [`Source::Header`] | `header/<name>` |
/// | [`Source::Body`] | a JSON Pointer (RFC 6901) to the offending string value, e.g. `/items/0/name`; for a bad object *key*, the pointer of the object holding it (`""` is the whole document); for a raw body, `/<field>` of a form field, else `""` |
///
/// `rule` is a short, static rule name such as `libinjection`, `dotdot_segment`
/// or `$ne`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The class of injection.
    pub kind: InjectionKind,
    /// Where it was found (see the table above).
    pub location: String,
    /// Which part of the request.
    pub source: Source,
    /// The rule that fired.
    pub rule: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let codes: Vec<&str> = [
            InjectionKind::Sql,
            InjectionKind::Command,
            InjectionKind::PathTraversal,
            InjectionKind::NoSql,
            InjectionKind::Deserialization,
        ]
        .into_iter()
        .map(InjectionKind::code)
        .collect();
        assert_eq!(
            codes,
            [
                "palisade.injection.sql",
                "palisade.injection.command",
                "palisade.injection.path_traversal",
                "palisade.injection.nosql",
                "palisade.injection.deserialization",
            ]
        );
    }

    #[test]
    fn indexes_are_distinct() {
        let mut seen = [false; 5];
        for kind in InjectionKind::ALL {
            assert!(!seen[kind.index()]);
            seen[kind.index()] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
