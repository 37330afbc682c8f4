//! Parameter names: the singular of the literal segment before the
//! parameter, in lower camel case, plus `Id` (`users` → `userId`,
//! `api-keys` → `apiKeyId`); `param<N>` when there is no such segment.

use super::TemplateSegment;

/// The name of the parameter that follows `previous` in a template whose
/// segments so far are `segments`; `ordinal` is its 1-based position among
/// the template's parameters. Unique within the template: a name already
/// taken gets `2`, `3`, … appended.
pub(crate) fn param_name(segments: &[TemplateSegment], ordinal: usize) -> String {
    let base = match segments.last() {
        Some(TemplateSegment::Literal(word)) => from_word(word),
        _ => None,
    }
    .unwrap_or_else(|| format!("param{ordinal}"));
    let taken = |name: &str| {
        segments
            .iter()
            .any(|s| matches!(s, TemplateSegment::Param(p) if p.name() == name))
    };
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|name| !taken(name))
        .unwrap_or(base)
}

/// `users` → `userId`; `None` for a segment that is not made of ASCII
/// letters (and `-`, `_`, `.` between them).
fn from_word(word: &str) -> Option<String> {
    let parts: Vec<&str> = word
        .split(['-', '_', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty()
        || !parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return None;
    }
    let mut name = String::with_capacity(word.len() + 2);
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let lower = part.to_ascii_lowercase();
        let part = if i == last { singular(&lower) } else { lower };
        if i == 0 {
            name.push_str(&part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                name.push(first.to_ascii_uppercase());
                name.push_str(chars.as_str());
            }
        }
    }
    name.push_str("Id");
    Some(name)
}

/// English plural to singular, by suffix: `categories` → `category`,
/// `addresses` → `address`, `boxes` → `box`, `statuses` → `status`,
/// `users` → `user`; `status`, `class`, `analysis`, `data` stay.
fn singular(word: &str) -> String {
    let strip = |n: usize| word[..word.len() - n].to_owned();
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if ["sses", "xes", "ches", "shes", "uses"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        strip(2)
    } else if ["ss", "us", "is"].iter().any(|s| word.ends_with(s)) || word.len() < 2 {
        word.to_owned()
    } else if word.ends_with('s') {
        strip(1)
    } else {
        word.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Accepts, Param};

    fn param(name: &str) -> TemplateSegment {
        TemplateSegment::Param(Param::new(name.to_owned(), Accepts::default()))
    }

    #[test]
    fn names_come_from_the_previous_literal() {
        let lit = |s: &str| TemplateSegment::Literal(s.to_owned());
        assert_eq!(param_name(&[lit("users")], 1), "userId");
        assert_eq!(param_name(&[lit("categories")], 1), "categoryId");
        assert_eq!(param_name(&[lit("addresses")], 1), "addressId");
        assert_eq!(param_name(&[lit("api-keys")], 1), "apiKeyId");
        assert_eq!(param_name(&[lit("Line_Items")], 1), "lineItemId");
        assert_eq!(param_name(&[lit("status")], 1), "statusId");
        assert_eq!(param_name(&[lit("boxes")], 1), "boxId");
        assert_eq!(param_name(&[lit("v2")], 1), "param1");
        assert_eq!(param_name(&[], 1), "param1");
        assert_eq!(param_name(&[lit("repos"), param("repoId")], 2), "param2");
        assert_eq!(
            param_name(&[lit("users"), param("userId"), lit("users")], 2),
            "userId2"
        );
    }
}
