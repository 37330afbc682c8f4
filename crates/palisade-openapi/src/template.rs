//! Path templates: parsing into segments, and matching one segment.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::TemplateError;

/// One `/`-separated segment of a parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Literal text; matches exactly one (normalized) request segment.
    Literal(String),
    /// `{name}`: matches any non-empty request segment.
    Param(String),
    /// Literal text and parameters mixed, e.g. `{name}.{ext}` or `v{version}`.
    Mixed(MixedSegment),
}

/// A segment mixing literal text and parameters, compiled into
/// a prefix followed by `(parameter, literal that follows it)` pairs.
///
/// Every literal between two parameters is non-empty (adjacent parameters
/// are rejected when parsing); only the last suffix may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MixedSegment {
    prefix: String,
    parts: Vec<(String, String)>,
}

impl MixedSegment {
    /// What the segment matches, ignoring parameter names: `{}.{}` for
    /// `{name}.{ext}`. Literal text cannot contain braces, so this is unambiguous.
    pub(crate) fn shape(&self) -> String {
        let mut shape = self.prefix.clone();
        for (_, suffix) in &self.parts {
            shape.push_str("{}");
            shape.push_str(suffix);
        }
        shape
    }

    /// Number of literal bytes; segments with more literal text are tried first.
    pub(crate) fn literal_len(&self) -> usize {
        self.prefix.len() + self.parts.iter().map(|(_, s)| s.len()).sum::<usize>()
    }

    /// The parameter names, in order.
    pub(crate) fn param_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|(name, _)| name.as_str())
    }

    /// Matches a whole request segment. On success pushes one non-empty value
    /// per parameter to `out` and returns `true`; on failure leaves `out` as it was.
    ///
    /// When a literal occurs more than once, each parameter takes the longest
    /// value that still lets the rest match: `{name}.{ext}` splits
    /// `report.tar.gz` into `report.tar` and `gz`.
    pub(crate) fn captures<'s>(&self, segment: &'s str, out: &mut Vec<&'s str>) -> bool {
        segment
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| match_parts(&self.parts, rest, out))
    }
}

fn match_parts<'s>(parts: &[(String, String)], text: &'s str, out: &mut Vec<&'s str>) -> bool {
    let Some(((_, suffix), rest)) = parts.split_first() else {
        return text.is_empty();
    };
    if rest.is_empty() {
        return match text.strip_suffix(suffix.as_str()) {
            Some(value) if !value.is_empty() => {
                out.push(value);
                true
            }
            _ => false,
        };
    }
    let longest = text.len().saturating_sub(suffix.len());
    for end in (1..=longest).rev() {
        if !text.is_char_boundary(end) {
            continue;
        }
        let (value, tail) = text.split_at(end);
        if let Some(tail) = tail.strip_prefix(suffix.as_str()) {
            out.push(value);
            if match_parts(rest, tail, out) {
                return true;
            }
            out.pop();
        }
    }
    false
}

/// Parses a template such as `/files/{name}.{ext}` into its segments.
///
/// The segments are what lies between the `/`s after the leading one, so
/// `/` has one empty segment and `/a/` has two (`a` and an empty one).
pub(crate) fn parse(template: &str) -> Result<Vec<Segment>, TemplateError> {
    let rest = template
        .strip_prefix('/')
        .ok_or(TemplateError::MissingLeadingSlash)?;
    let segments = rest
        .split('/')
        .map(parse_segment)
        .collect::<Result<Vec<_>, _>>()?;

    let mut names = HashSet::new();
    for segment in &segments {
        let duplicate = match segment {
            Segment::Literal(_) => None,
            Segment::Param(name) => (!names.insert(name.as_str())).then_some(name.as_str()),
            Segment::Mixed(mixed) => mixed.param_names().find(|name| !names.insert(name)),
        };
        if let Some(name) = duplicate {
            return Err(TemplateError::DuplicateParameter(name.to_owned()));
        }
    }
    Ok(segments)
}

fn parse_segment(segment: &str) -> Result<Segment, TemplateError> {
    let unbalanced = || TemplateError::UnbalancedBraces(segment.to_owned());
    let mut prefix = String::new();
    let mut parts: Vec<(String, String)> = Vec::new();
    let mut rest = segment;
    loop {
        let Some(open) = rest.find(['{', '}']) else {
            literal_slot(&mut prefix, &mut parts).push_str(&normalize(rest));
            break;
        };
        let (literal, brace) = rest.split_at(open);
        if brace.starts_with('}') {
            return Err(unbalanced());
        }
        let slot = literal_slot(&mut prefix, &mut parts);
        slot.push_str(&normalize(literal));
        if slot.is_empty() && !parts.is_empty() {
            return Err(TemplateError::AdjacentParameters(segment.to_owned()));
        }
        let after = &brace[1..];
        let close = after.find(['{', '}']).ok_or_else(unbalanced)?;
        let (name, closing) = after.split_at(close);
        if !closing.starts_with('}') {
            return Err(unbalanced());
        }
        if name.is_empty() {
            return Err(TemplateError::EmptyParameterName(segment.to_owned()));
        }
        parts.push((name.to_owned(), String::new()));
        rest = &closing[1..];
    }

    Ok(match parts.as_slice() {
        [] => Segment::Literal(prefix),
        [(name, suffix)] if prefix.is_empty() && suffix.is_empty() => Segment::Param(name.clone()),
        _ => Segment::Mixed(MixedSegment { prefix, parts }),
    })
}

/// Where the next literal text of a segment goes: the prefix before the
/// first parameter, or the suffix of the last parameter seen.
fn literal_slot<'a>(prefix: &'a mut String, parts: &'a mut [(String, String)]) -> &'a mut String {
    match parts.last_mut() {
        Some((_, suffix)) => suffix,
        None => prefix,
    }
}

/// Normalizes a raw path segment the way RFC 3986 (section 6.2.2) says is
/// safe: escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
/// and the hex digits of the other escapes are upper-cased. Everything else,
/// `%2F` included, is left as it is. Borrows when there is no `%`.
pub(crate) fn normalize(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(percent) = rest.find('%') {
        out.push_str(&rest[..percent]);
        let after = &rest[percent + 1..];
        let hex = after
            .get(..2)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok().map(|byte| (hex, byte))) {
            Some((_, byte)) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(char::from(byte));
                rest = &after[2..];
            }
            Some((hex, _)) => {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
                rest = &after[2..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn mixed(template: &str) -> MixedSegment {
        match parse(template).as_deref() {
            Ok([Segment::Mixed(m)]) => m.clone(),
            other => panic!("not one mixed segment: {other:?}"),
        }
    }

    #[test]
    fn segments_split_on_slashes_after_the_leading_one() {
        assert_eq!(parse("/"), Ok(vec![Segment::Literal(String::new())]));
        assert_eq!(
            parse("/a/{id}/"),
            Ok(vec![
                Segment::Literal("a".into()),
                Segment::Param("id".into()),
                Segment::Literal(String::new()),
            ])
        );
    }

    #[test]
    fn malformed_templates_are_rejected_with_the_reason() {
        let unbalanced = |s: &str| Err(TemplateError::UnbalancedBraces(s.into()));
        assert_eq!(parse("a/b"), Err(TemplateError::MissingLeadingSlash));
        assert_eq!(parse("/a/{id"), unbalanced("{id"));
        assert_eq!(parse("/a/id}"), unbalanced("id}"));
        assert_eq!(parse("/a/{{id}}"), unbalanced("{{id}}"));
        assert_eq!(parse("/a/{x/y}"), unbalanced("{x"));
        assert_eq!(
            parse("/a/{}"),
            Err(TemplateError::EmptyParameterName("{}".into()))
        );
        assert_eq!(
            parse("/a/{x}{y}"),
            Err(TemplateError::AdjacentParameters("{x}{y}".into()))
        );
        assert_eq!(
            parse("/a/{x}/b/{y}.{x}"),
            Err(TemplateError::DuplicateParameter("x".into()))
        );
    }

    #[test]
    fn mixed_segment_shape_ignores_parameter_names() {
        assert_eq!(mixed("/v{a}-{b}.json").shape(), "v{}-{}.json");
        assert_eq!(mixed("/v{a}-{b}.json").literal_len(), 7);
    }

    #[test]
    fn mixed_segment_parameters_take_the_longest_value_that_fits() {
        let m = mixed("/{name}.{ext}");
        let mut out = Vec::new();
        assert!(m.captures("report.tar.gz", &mut out));
        assert_eq!(out, ["report.tar", "gz"]);
    }

    #[test]
    fn mixed_segment_needs_every_literal_and_non_empty_values() {
        let m = mixed("/v{major}.{minor}-beta");
        let mut out = Vec::new();
        assert!(m.captures("v1.2-beta", &mut out));
        assert_eq!(out, ["1", "2"]);
        out.clear();
        for text in ["v1.2", "1.2-beta", "v.2-beta", "v1.-beta", "v12-beta"] {
            assert!(!m.captures(text, &mut out), "{text}");
            assert!(out.is_empty(), "{text}");
        }
    }

    #[test]
    fn normalize_decodes_only_unreserved_escapes() {
        assert_eq!(normalize("plain"), Cow::Borrowed("plain"));
        assert_eq!(normalize("%6De"), "me");
        assert_eq!(normalize("a%2fb%2Eb"), "a%2Fb.b");
        assert_eq!(normalize("100%"), "100%");
        assert_eq!(normalize("%zz%+1%é"), "%zz%+1%é");
    }
}
