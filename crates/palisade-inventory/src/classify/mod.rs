//! Data classification: which kinds of sensitive data ([`DataClass`]) a JSON
//! value or a query-parameter value carries, using the field or parameter
//! name as a hint. The rules are in the [crate documentation](crate#data-classification).

mod class;
mod detect;
mod names;
mod walk;

use serde_json::{Number, Value};

pub use class::{Category, DataClass, DataClasses, DataClassesIter};
pub use walk::{classify_json, FieldProfile, JsonProfile, JsonType, JsonTypes, MAX_DEPTH};

pub(crate) use detect::email;
use names::Hints;

/// Strings longer than this are checked only for a JWT and a PEM private key
/// (the two long formats); nothing else of interest is that long.
const MAX_SHORT_VALUE: usize = 1024;

/// Strings longer than this are not looked at.
const MAX_VALUE: usize = 64 * 1024;

/// The classes of one string value: a JSON string or a query-parameter value.
///
/// `field_name` is the member or parameter name (`email`, `billingAddress`,
/// `user[dob]`), used as a hint; `None` when there is none. Surrounding
/// whitespace is ignored; the rest of the value must match a class as a
/// whole (free text is not searched for embedded values). Returns at most
/// one class. Does not allocate (but for the rare JWT whose header is over
/// 512 bytes).
///
/// ```
/// use palisade_inventory::{classify_str, DataClass};
///
/// assert!(classify_str(Some("contact"), "alice@example.com").contains(DataClass::Email));
/// assert!(classify_str(Some("dob"), "1990-05-17").contains(DataClass::DateOfBirth));
/// assert!(classify_str(Some("created_at"), "1990-05-17").is_empty());
/// assert!(classify_str(None, "1234567890").is_empty(), "bare digits are not a phone");
/// ```
pub fn classify_str(field_name: Option<&str>, value: &str) -> DataClasses {
    text(&Hints::new(field_name, None), value)
}

/// The classes of a JSON value in a member called `field_name`.
///
/// Strings are classified as by [`classify_str`]; non-negative integers only
/// when the name says what they are (a card number, an SSN, a `YYYYMMDD`
/// date of birth, a postal code); other numbers, booleans and `null` carry
/// no class. An array gives the union of its elements, each with the same
/// name; an object the union of its members, each with its own name (and
/// this one as the name of the object that holds it, so `name` inside a
/// `customer` is a person's name).
///
/// ```
/// use palisade_inventory::{classify_value, DataClass};
/// use serde_json::json;
///
/// let classes = classify_value(Some("customer"), &json!({"name": "Ada Lovelace", "zip": "94105"}));
/// assert!(classes.contains(DataClass::PersonName));
/// assert!(classes.contains(DataClass::Address));
/// assert!(classify_value(Some("card_number"), &json!(4111111111111111_u64)).contains(DataClass::PaymentCard));
/// assert!(classify_value(Some("order_id"), &json!(4111111111111111_u64)).is_empty());
/// ```
pub fn classify_value(field_name: Option<&str>, value: &Value) -> DataClasses {
    let mut out = DataClasses::EMPTY;
    value_into(field_name, None, value, 0, &mut out);
    out
}

fn value_into(
    name: Option<&str>,
    parent: Option<&str>,
    value: &Value,
    depth: usize,
    out: &mut DataClasses,
) {
    match value {
        Value::String(_) | Value::Number(_) => *out |= scalar(&Hints::new(name, parent), value),
        Value::Array(items) if depth < MAX_DEPTH => {
            for item in items {
                value_into(name, parent, item, depth + 1, out);
            }
        }
        Value::Object(members) if depth < MAX_DEPTH => {
            for (key, member) in members {
                value_into(Some(key), name, member, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// The classes of a string or number under `hints`; nothing for other values.
pub(crate) fn scalar(hints: &Hints<'_>, value: &Value) -> DataClasses {
    match value {
        Value::String(s) => text(hints, s),
        Value::Number(n) => number(hints, n),
        _ => DataClasses::EMPTY,
    }
}

fn text(hints: &Hints<'_>, value: &str) -> DataClasses {
    let s = value.trim();
    match class_of_text(hints, s) {
        Some(class) => DataClasses::only(class),
        None => DataClasses::EMPTY,
    }
}

fn number(hints: &Hints<'_>, n: &Number) -> DataClasses {
    let Some(n) = n.as_u64() else {
        return DataClasses::EMPTY;
    };
    let class = if hints.card() && detect::card_number_u64(n) {
        Some(DataClass::PaymentCard)
    } else if hints.ssn() && detect::us_ssn_number(n) {
        Some(DataClass::UsSsn)
    } else if detect::date_number(n) && hints.birth() {
        Some(DataClass::DateOfBirth)
    } else if (100..=99_999).contains(&n) && hints.postal_code() {
        Some(DataClass::Address)
    } else {
        None
    };
    class.map_or(DataClasses::EMPTY, DataClasses::only)
}

/// The one class of a trimmed string, trying the most specific rules first.
/// Value checks that are cheap and selective run before the name hints.
fn class_of_text(h: &Hints<'_>, s: &str) -> Option<DataClass> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if b.len() > MAX_VALUE {
        return None;
    }
    if first == b'-' {
        return detect::private_key(s).then_some(DataClass::Secret);
    }
    if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ") {
        let credential = s[7..].trim();
        return if detect::jwt(credential) {
            Some(DataClass::Jwt)
        } else if detect::known_secret(credential) || detect::high_entropy(credential) {
            Some(DataClass::Secret)
        } else {
            None
        };
    }
    if b.len() > MAX_SHORT_VALUE {
        return detect::jwt(s).then_some(DataClass::Jwt);
    }

    // One pass over the bytes decides which detectors can apply at all.
    let mut digits = 0usize;
    let (mut letters, mut at, mut colon, mut dot, mut other) = (0usize, false, false, false, false);
    let (mut space, mut dash, mut phone_punct) = (false, false, false);
    for &c in b {
        match c {
            b'0'..=b'9' => digits += 1,
            b'a'..=b'z' | b'A'..=b'Z' => letters += 1,
            b'@' => at = true,
            b':' => colon = true,
            b'.' => dot = true,
            b' ' => space = true,
            b'-' => dash = true,
            b'+' | b'(' | b')' => phone_punct = true,
            _ => other = true,
        }
    }
    let digits_and = |extra_ok: bool| digits > 0 && letters == 0 && !at && !other && extra_ok;

    if dot && letters > 0 && detect::jwt(s) {
        return Some(DataClass::Jwt);
    }
    if letters > 0 && detect::known_secret(s) {
        return Some(DataClass::Secret);
    }
    if at && detect::email(s) {
        return Some(DataClass::Email);
    }
    if digits > 0 && detect::date(s) && h.birth() {
        return Some(DataClass::DateOfBirth);
    }
    if letters >= 2 && digits >= 2 && first.is_ascii_alphabetic() && detect::iban(s) {
        return Some(DataClass::Iban);
    }
    if digits_and(!colon && !dot && !phone_punct) {
        if (b.len() == 11 || b.len() == 9) && detect::us_ssn(s, b.len() == 9 && h.ssn()) {
            return Some(DataClass::UsSsn);
        }
        if (13..=24).contains(&b.len()) && detect::payment_card(s, h.not_card()) {
            return Some(DataClass::PaymentCard);
        }
    }
    if digits_and(dot && !space && !dash && !phone_punct) && detect::ipv4(s) {
        return (!h.version()).then_some(DataClass::Ipv4);
    }
    if colon && !space && !at && detect::ipv6(s) {
        return Some(DataClass::Ipv6);
    }
    if digits >= 7 && !colon && !at {
        let bare = digits == b.len();
        if detect::phone(s, bare && h.phone()) {
            return Some(DataClass::Phone);
        }
    }
    // The name first: the entropy and placeholder checks cost more.
    if h.secret() && detect::high_entropy(s) {
        return Some(DataClass::Secret);
    }
    if h.password() && detect::plausible_password(s) {
        return Some(DataClass::Secret);
    }
    if letters > 0 || !s.is_ascii() {
        if h.person_name() && detect::person_name(s) {
            return Some(DataClass::PersonName);
        }
        let address = (h.street() && detect::street(s))
            || (h.address() && detect::address(s))
            || (h.postal_code() && detect::postal_code(s))
            || (h.city() && detect::city(s));
        if address {
            return Some(DataClass::Address);
        }
    }
    if digits > 0 && h.postal_code() && detect::postal_code(s) {
        return Some(DataClass::Address);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(field: Option<&str>, value: &str) -> Option<DataClass> {
        let classes = classify_str(field, value);
        assert!(classes.len() <= 1, "{value}: {classes}");
        classes.iter().next()
    }

    #[test]
    fn field_names_disambiguate_look_alikes() {
        assert_eq!(one(Some("client_ip"), "1.2.3.4"), Some(DataClass::Ipv4));
        assert_eq!(one(None, "1.2.3.4"), Some(DataClass::Ipv4));
        assert_eq!(one(Some("app_version"), "1.2.3.4"), None);
        assert_eq!(one(Some("version"), "v1.2.3"), None);
        assert_eq!(one(Some("dob"), "1990-05-17"), Some(DataClass::DateOfBirth));
        assert_eq!(one(Some("created"), "1990-05-17"), None);
        assert_eq!(one(Some("phone"), "4155552671"), Some(DataClass::Phone));
        assert_eq!(one(Some("id"), "4155552671"), None);
        assert_eq!(one(Some("ssn"), "123456789"), Some(DataClass::UsSsn));
        assert_eq!(
            one(Some("zip"), "123456789"),
            Some(DataClass::Address),
            "ZIP+4"
        );
        assert_eq!(one(Some("count"), "123456789"), None);
        assert_eq!(
            one(Some("card"), "4111111111111111"),
            Some(DataClass::PaymentCard)
        );
        assert_eq!(one(Some("order_id"), "4111111111111111"), None);
        assert_eq!(
            one(Some("api_key"), "q8X2v9LmR4tZ7wKp3NcB"),
            Some(DataClass::Secret)
        );
        assert_eq!(one(Some("request_id"), "q8X2v9LmR4tZ7wKp3NcB"), None);
        assert_eq!(
            one(Some("password"), "Tr0ub4dor&3"),
            Some(DataClass::Secret)
        );
        assert_eq!(one(Some("first_name"), "Ada"), Some(DataClass::PersonName));
        assert_eq!(one(Some("title"), "Ada"), None);
    }

    #[test]
    fn bearer_credentials_are_looked_into() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"; // palisade:allow (fake credential, test data)
        assert_eq!(one(None, &format!("Bearer {jwt}")), Some(DataClass::Jwt));
        assert_eq!(one(None, jwt), Some(DataClass::Jwt));
        assert_eq!(
            one(Some("authorization"), "Bearer q8X2v9LmR4tZ7wKp3NcB"),
            Some(DataClass::Secret)
        );
        assert_eq!(one(None, "Bearer of bad news"), None);
    }

    #[test]
    fn whitespace_around_a_value_is_ignored_and_long_values_are_cheap() {
        assert_eq!(one(None, "  alice@example.com\n"), Some(DataClass::Email));
        assert_eq!(one(None, ""), None);
        let long = "a".repeat(MAX_SHORT_VALUE + 1);
        assert_eq!(one(Some("first_name"), &long), None);
        let huge = "4".repeat(MAX_VALUE + 1);
        assert_eq!(one(Some("card"), &huge), None);
    }

    #[test]
    fn numbers_need_a_name() {
        let n = |field: &str, v: Value| classify_value(Some(field), &v).iter().next();
        assert_eq!(
            n("pan", json!(4111111111111111_u64)),
            Some(DataClass::PaymentCard)
        );
        assert_eq!(n("id", json!(4111111111111111_u64)), None);
        assert_eq!(
            n("phone", json!(4155552671_u64)),
            None,
            "a JSON number is never a phone"
        );
        assert_eq!(n("ssn", json!(123456789)), Some(DataClass::UsSsn));
        assert_eq!(n("dob", json!(19900517)), Some(DataClass::DateOfBirth));
        assert_eq!(n("ts", json!(19900517)), None);
        assert_eq!(n("zip", json!(94105)), Some(DataClass::Address));
        assert_eq!(n("card", json!(-4111111111111111_i64)), None);
        assert_eq!(n("card", json!(4.5)), None);
        assert_eq!(n("card", json!(true)), None);
    }

    #[test]
    fn containers_give_the_union_of_their_values() {
        let value = json!({
            "emails": ["a@example.com", "not an email"],
            "customers": [{"name": "Grace Hopper"}],
            "product": {"name": "Widget"},
        });
        let classes = classify_value(None, &value);
        assert_eq!(classes.to_string(), "email, person_name");
        assert_eq!(
            classify_value(Some("product"), &json!({"name": "Widget"})),
            DataClasses::EMPTY
        );
        assert_eq!(
            classify_value(Some("customer"), &json!({"name": "Widget"})),
            DataClass::PersonName.into()
        );
    }
}
