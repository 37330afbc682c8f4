//! NoSQL operator injection: MongoDB query, update and aggregation operators
//! smuggled in as JSON object keys (`{"password": {"$ne": null}}`), as
//! bracketed query keys (`password[$ne]=`), or as JSON text inside a string
//! (`?filter={"$where": "..."}`).
//!
//! Only the operator names listed here count: `$schema`, `$ref`, `$id`,
//! `$defs`, `$comment` and the other JSON Schema keywords are ordinary keys,
//! and a bare query parameter named like an OData system option (`$filter`,
//! `$select`, `$top`, ...) is left alone. Operators are case-sensitive, as
//! MongoDB's are.

use crate::profile::{self, Profile};

/// MongoDB operators an attacker can use to change a query's meaning.
const OPERATORS: &[&str] = &[
    "$accumulator",
    "$addFields",
    "$addToSet",
    "$all",
    "$and",
    "$bitsAllClear",
    "$bitsAllSet",
    "$bitsAnyClear",
    "$bitsAnySet",
    "$currentDate",
    "$elemMatch",
    "$eq",
    "$exists",
    "$expr",
    "$facet",
    "$function",
    "$geoIntersects",
    "$geoWithin",
    "$graphLookup",
    "$group",
    "$gt",
    "$gte",
    "$in",
    "$inc",
    "$jsonSchema",
    "$lookup",
    "$lt",
    "$lte",
    "$match",
    "$max",
    "$merge",
    "$min",
    "$mod",
    "$mul",
    "$ne",
    "$near",
    "$nearSphere",
    "$nin",
    "$nor",
    "$not",
    "$options",
    "$or",
    "$out",
    "$project",
    "$pull",
    "$pullAll",
    "$push",
    "$regex",
    "$rename",
    "$replaceRoot",
    "$sample",
    "$search",
    "$set",
    "$setOnInsert",
    "$size",
    "$slice",
    "$text",
    "$type",
    "$unionWith",
    "$unset",
    "$unwind",
    "$where",
];

/// OData system query options: legitimate bare query parameter names.
const ODATA_OPTIONS: &[&str] = &[
    "$apply",
    "$compute",
    "$count",
    "$expand",
    "$filter",
    "$format",
    "$index",
    "$orderby",
    "$schemaversion",
    "$search",
    "$select",
    "$skip",
    "$skiptoken",
    "$top",
];

/// The operator `key` names, if it is one.
pub(crate) fn operator(key: &str) -> Option<&'static str> {
    if !key.starts_with('$') {
        return None;
    }
    OPERATORS.iter().find(|op| **op == key).copied()
}

/// An operator inside brackets anywhere in a key (`user[$ne]`,
/// `filter[user][$in][]`).
pub(crate) fn bracketed_operator(key: &str) -> Option<&'static str> {
    key.split('[')
        .skip(1)
        .filter_map(|part| part.split_once(']').map(|(inner, _)| inner))
        .find_map(operator)
}

/// The operator a query parameter name carries: bracketed anywhere, or the
/// whole name unless it is an OData option.
pub(crate) fn query_key_operator(name: &str) -> Option<&'static str> {
    if let Some(op) = bracketed_operator(name) {
        return Some(op);
    }
    let lower = name.to_ascii_lowercase();
    if ODATA_OPTIONS.contains(&lower.as_str()) {
        return None;
    }
    operator(name)
}

/// A JSON member `"$op":` written inside a string value.
pub(crate) fn embedded_operator(text: &str, profile: Profile) -> Option<&'static str> {
    if !profile.any(profile::QUOTE) || !profile.any(profile::DOLLAR) {
        return None;
    }
    text.match_indices("\"$").find_map(|(at, _)| {
        let rest = text.get(at + 1..)?;
        let (name, after) = rest.split_once('"')?;
        let op = operator(name)?;
        after.trim_start().starts_with(':').then_some(op)
    })
}

/// The part of a query parameter name before any `[`.
pub(crate) fn base_name(name: &str) -> &str {
    name.split('[').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded_operator(text: &str) -> Option<&'static str> {
        super::embedded_operator(text, Profile::of(text))
    }

    #[test]
    fn operators_are_exact() {
        assert_eq!(operator("$ne"), Some("$ne"));
        assert_eq!(operator("$where"), Some("$where"));
        assert_eq!(operator("$NE"), None);
        assert_eq!(operator("ne"), None);
        for schema_keyword in ["$schema", "$ref", "$id", "$defs", "$comment", "$anchor"] {
            assert_eq!(operator(schema_keyword), None);
        }
    }

    #[test]
    fn query_keys() {
        assert_eq!(query_key_operator("user[$ne]"), Some("$ne"));
        assert_eq!(query_key_operator("login[$in][]"), Some("$in"));
        assert_eq!(query_key_operator("filter[user][$regex]"), Some("$regex"));
        assert_eq!(query_key_operator("$where"), Some("$where"));
        assert_eq!(query_key_operator("$search"), None);
        assert_eq!(query_key_operator("$filter"), None);
        assert_eq!(query_key_operator("filter[status]"), None);
        assert_eq!(query_key_operator("ids[]"), None);
    }

    #[test]
    fn json_inside_a_string() {
        assert_eq!(embedded_operator(r#"{"user": {"$ne": null}}"#), Some("$ne"));
        assert_eq!(embedded_operator(r#"{"$where" : "1"}"#), Some("$where"));
        assert_eq!(embedded_operator(r#"price "$gt" 5"#), None);
        assert_eq!(embedded_operator("costs $5"), None);
    }
}
