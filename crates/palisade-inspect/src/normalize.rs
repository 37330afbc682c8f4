//! Normalisation: undo the encodings attackers use to slip a payload past a
//! filter, so that every detector sees the text the application will
//! eventually act on.
//!
//! - percent-decoding, repeated (`%252e` → `%2e` → `.`), with `%uXXXX`
//!   (IIS) escapes and `+` as a space where the value came from a query string
//!   or a form body;
//! - lenient UTF-8: overlong forms (`%c0%ae` → `.`, `%c0%af` → `/`,
//!   `%e0%80%ae` → `.`) decode to the character they spell instead of being
//!   dropped, other invalid bytes become U+FFFD;
//! - Unicode NFKC (full-width `．．／` → `../`) plus a handful of lookalikes
//!   NFKC leaves alone (division slash `∕`, set minus `∖`, modifier-letter and
//!   curly apostrophes).
//!
//! Case folding is left to each detector (paths and Windows commands are
//! case-insensitive, Unix commands and MongoDB operators are not). NUL bytes
//! are kept: the path detector reports them.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Decoding stops after this many rounds (`%25252e` needs three).
const MAX_DECODE_ROUNDS: usize = 4;

const REPLACEMENT: char = '\u{FFFD}';

/// One round of percent-decoding. `%XX` and `%uXXXX` are decoded, a `%` that
/// starts neither is kept, and `+` becomes a space when `plus_as_space`.
/// Returns the input unchanged (borrowed) when nothing was decoded.
pub(crate) fn percent_decode(input: &str, plus_as_space: bool) -> Cow<'_, str> {
    let bytes = input.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                if let Some(value) = hex_byte(bytes.get(i + 1..i + 3)) {
                    out.push(value);
                    i += 3;
                    changed = true;
                } else if let (Some(b'u' | b'U'), Some(cp)) =
                    (bytes.get(i + 1), hex_u16(bytes.get(i + 2..i + 6)))
                {
                    let ch = char::from_u32(cp).unwrap_or(REPLACEMENT);
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    changed = true;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
                changed = true;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    if changed {
        Cow::Owned(bytes_to_string(out))
    } else {
        Cow::Borrowed(input)
    }
}

/// Percent-decodes until the text stops changing (at most
/// [`MAX_DECODE_ROUNDS`] rounds), so double and triple encodings are undone.
/// `+` is never turned into a space here: a `+` that survived the first
/// decoding of a query value was sent as `%2B`.
pub(crate) fn decode_all(input: &str) -> Cow<'_, str> {
    let mut current = Cow::Borrowed(input);
    for _ in 0..MAX_DECODE_ROUNDS {
        match percent_decode(&current, false) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => current = Cow::Owned(next),
        }
    }
    current
}

/// NFKC plus the lookalike table; ASCII text is returned as is.
pub(crate) fn fold_unicode(input: &str) -> Cow<'_, str> {
    if input.is_ascii() {
        return Cow::Borrowed(input);
    }
    let normalized = matches!(is_nfkc_quick(input.chars()), IsNormalized::Yes);
    if normalized && !input.chars().any(|c| lookalike(c).is_some()) {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .nfkc()
            .map(|c| lookalike(c).unwrap_or(c))
            .collect::<String>(),
    )
}

/// The fully normalised form of a value (every decoding round, then
/// [`fold_unicode`]), or `None` when it equals the value as received.
pub(crate) fn normalised(raw: &str) -> Option<String> {
    let decoded = decode_all(raw);
    let folded = fold_unicode(&decoded);
    if folded.as_ref() == raw {
        None
    } else {
        Some(folded.into_owned())
    }
}

/// Characters that NFKC keeps but that some decoders, file systems or
/// databases ("best fit" code-page mappings) turn into ASCII syntax.
fn lookalike(c: char) -> Option<char> {
    match c {
        // DIVISION SLASH, FRACTION SLASH, BIG SOLIDUS
        '\u{2215}' | '\u{2044}' | '\u{29F8}' => Some('/'),
        // SET MINUS, REVERSE SOLIDUS OPERATOR, BIG REVERSE SOLIDUS
        '\u{2216}' | '\u{29F5}' | '\u{29F9}' => Some('\\'),
        // MODIFIER LETTER APOSTROPHE, curly single quotes, PRIME
        '\u{02BC}' | '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => Some('\''),
        // curly double quotes, DOUBLE PRIME
        '\u{201C}' | '\u{201D}' | '\u{2033}' => Some('"'),
        _ => None,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_byte(pair: Option<&[u8]>) -> Option<u8> {
    match pair? {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

fn hex_u16(quad: Option<&[u8]>) -> Option<u32> {
    quad?
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hex_digit(b)?)))
}

/// Bytes to text: valid UTF-8 as is, overlong sequences decoded to the
/// character they encode, anything else replaced by U+FFFD.
pub(crate) fn bytes_to_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => decode_lenient(err.as_bytes()),
    }
}

fn decode_lenient(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(text);
                break;
            }
            Err(err) => {
                let (valid, invalid) = rest.split_at(err.valid_up_to());
                if let Ok(text) = std::str::from_utf8(valid) {
                    out.push_str(text);
                }
                let (ch, used) = decode_overlong(invalid);
                out.push(ch);
                rest = invalid.get(used..).unwrap_or_default();
            }
        }
    }
    out
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Decodes an overlong UTF-8 sequence at the start of `bytes` (2, 3 or 4
/// bytes long); anything else is one replaced byte.
fn decode_overlong(bytes: &[u8]) -> (char, usize) {
    let decoded = match *bytes {
        [lead @ (0xC0 | 0xC1), c1, ..] if is_continuation(c1) => {
            Some(((u32::from(lead) & 0x1F) << 6 | (u32::from(c1) & 0x3F), 2))
        }
        [0xE0, c1 @ 0x80..=0x9F, c2, ..] if is_continuation(c2) => {
            Some(((u32::from(c1) & 0x3F) << 6 | (u32::from(c2) & 0x3F), 3))
        }
        [0xF0, c1 @ 0x80..=0x8F, c2, c3, ..] if is_continuation(c2) && is_continuation(c3) => {
            Some((
                (u32::from(c1) & 0x3F) << 12 | (u32::from(c2) & 0x3F) << 6 | (u32::from(c3) & 0x3F),
                4,
            ))
        }
        _ => None,
    };
    match decoded {
        Some((cp, used)) => (char::from_u32(cp).unwrap_or(REPLACEMENT), used),
        None => (REPLACEMENT, 1),
    }
}

/// Splits a raw query string (or form body) into decoded `(name, value)`
/// pairs: one round of percent-decoding with `+` as a space, as a server
/// framework would. Further rounds are the detectors' business.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(raw: &str) -> String {
        normalised(raw).unwrap_or_else(|| raw.to_owned())
    }

    #[test]
    fn single_percent_encoding() {
        assert_eq!(percent_decode("%2e%2E%2f", false), "../");
        assert_eq!(percent_decode("a%20b", false), "a b");
    }

    #[test]
    fn invalid_escapes_are_kept() {
        assert_eq!(percent_decode("50% off", false), "50% off");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert!(matches!(percent_decode("50% off", false), Cow::Borrowed(_)));
    }

    #[test]
    fn plus_is_a_space_only_in_query_context() {
        assert_eq!(percent_decode("drop+down", true), "drop down");
        assert_eq!(percent_decode("drop+down", false), "drop+down");
        // `%2B` is a literal plus and stays one in later rounds.
        assert_eq!(full(&percent_decode("1%2B1", true)), "1+1");
    }

    #[test]
    fn double_and_triple_encoding() {
        assert_eq!(full("%252e%252e%252f"), "../");
        assert_eq!(full("%25252e%25252e%25252f"), "../");
    }

    #[test]
    fn iis_percent_u() {
        assert_eq!(full("%u002e%u002e%u002f"), "../");
        assert_eq!(full("%U002E"), ".");
        // A lone surrogate cannot be a char.
        assert_eq!(full("%uD800"), "\u{FFFD}");
    }

    #[test]
    fn overlong_utf8() {
        assert_eq!(full("%c0%ae%c0%ae%c0%af"), "../");
        assert_eq!(full("%c1%9c"), "\\");
        assert_eq!(full("%e0%80%ae"), ".");
        assert_eq!(full("%f0%80%80%ae"), ".");
        // A stray continuation byte or truncated lead byte is replaced, not dropped.
        assert_eq!(full("a%80b%c0"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn nul_bytes_survive() {
        assert_eq!(full("passwd%00.png"), "passwd\0.png");
    }

    #[test]
    fn nfkc_full_width() {
        assert_eq!(full("．．／etc／passwd"), "../etc/passwd");
        assert_eq!(full("＇ ＯＲ １＝１"), "' OR 1=1");
    }

    #[test]
    fn lookalikes_nfkc_keeps() {
        assert_eq!(full("..\u{2215}..\u{2216}"), "../..\\");
        assert_eq!(full("\u{02BC} OR 1=1"), "' OR 1=1");
        assert_eq!(full("It\u{2019}s"), "It's");
    }

    #[test]
    fn unchanged_values_have_no_second_view() {
        assert_eq!(normalised("plain ascii"), None);
        assert_eq!(normalised("Zoë Saldaña"), None);
        assert_eq!(normalised("日本語"), None);
    }

    #[test]
    fn query_pairs_decode_once_with_plus() {
        let pairs: Vec<(String, String)> = query_pairs("a=1&b=x+y&&c&user%5B%24ne%5D=%2527")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), String::new()),
                ("user[$ne]".into(), "%27".into()),
            ]
        );
    }
}
