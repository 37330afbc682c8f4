//! Value detectors. Each answers whether a whole (trimmed) value is one kind
//! of data; none allocates except [`jwt`] for a header too large for its
//! stack buffer.

use std::borrow::Cow;
use std::net::Ipv6Addr;

// ---------------------------------------------------------------- e-mail

/// "Extensions" that look like a top-level domain but name a file type:
/// `logo@2x.png` is an image, not an address. None is a delegated TLD.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "css", "js", "ts",
    "json", "yaml", "yml", "xml", "txt", "pdf", "html", "htm", "lock", "log", "tsx", "jsx", "java",
    "csv", "gz", "tar", "heic", "avif", "woff", "woff2", "map", "wasm",
];

/// `local@domain.tld`, or `Display Name <local@domain.tld>`.
///
/// The local part is dot-atom text (RFC 5322, no quoted strings), at most 64
/// bytes; the domain has at least two labels of letters, digits and inner
/// hyphens, and its last label is alphabetic (or an `xn--` IDN label) and not
/// a file extension. At most 254 bytes in all.
pub(crate) fn email(s: &str) -> bool {
    let s = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => s,
    };
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    local_ok && domain_name(domain)
}

fn domain_name(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return false;
        }
        labels += 1;
        last = label;
    }
    let idn = last.len() > 4 && last[..4].eq_ignore_ascii_case("xn--");
    let alphabetic = last.len() >= 2
        && last.bytes().all(|b| b.is_ascii_alphabetic())
        && !FILE_EXTENSIONS.iter().any(|e| last.eq_ignore_ascii_case(e));
    labels >= 2 && (idn || alphabetic)
}

// ---------------------------------------------------------------- phone

/// Digit groups of a phone-like value: `+44 (0)20 7946-0958`.
#[derive(Default)]
struct Groups {
    plus: bool,
    /// Length and first digit of each group, and whether it was in parentheses.
    groups: [(u8, u8, bool); 8],
    count: usize,
    digits: usize,
    /// Separators seen: bit 0 space, bit 1 `-`, bit 2 `.`.
    separators: u8,
    /// Whether the first group has a digit other than 0.
    first_nonzero: bool,
}

impl Groups {
    fn parse(s: &str) -> Option<Groups> {
        let mut g = Groups::default();
        let mut b = s.as_bytes();
        if let Some(rest) = b.strip_prefix(b"+") {
            g.plus = true;
            b = rest;
        }
        // What the previous token was: 0 start, 1 digits, 2 separator, 3 closing parenthesis.
        let mut prev = 0u8;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b'0'..=b'9' | b'(' => {
                    if prev == 1 || prev == 3 && c == b'(' {
                        return None;
                    }
                    let paren = c == b'(';
                    let start = if paren { i + 1 } else { i };
                    let mut end = start;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                    let len = end - start;
                    if len == 0 || g.count == g.groups.len() {
                        return None;
                    }
                    if paren {
                        if b.get(end) != Some(&b')') {
                            return None;
                        }
                        i = end + 1;
                        prev = 3;
                    } else {
                        i = end;
                        prev = 1;
                    }
                    if g.count == 0 {
                        g.first_nonzero = b[start..end].iter().any(|&d| d != b'0');
                    }
                    g.groups[g.count] = (u8::try_from(len).ok()?, b[start] - b'0', paren);
                    g.count += 1;
                    g.digits += len;
                }
                b' ' | b'-' | b'.' => {
                    if prev == 0 || prev == 2 {
                        return None;
                    }
                    if prev != 3 {
                        g.separators |= match c {
                            b' ' => 1,
                            b'-' => 2,
                            _ => 4,
                        };
                    }
                    prev = 2;
                    i += 1;
                }
                _ => return None,
            }
        }
        (prev == 1 || prev == 3).then_some(g)
    }

    fn len(&self, i: usize) -> usize {
        usize::from(self.groups[i].0)
    }

    fn first_digit(&self, i: usize) -> u8 {
        self.groups[i].1
    }
}

/// Removes an extension suffix: ` x12`, ` ext. 12`, ` ext 12`, `;ext=12`.
fn strip_extension(s: &str) -> &str {
    let (head, tail) = match s.rfind([' ', ';']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => return s,
    };
    fn is_ext(t: &str) -> Option<&str> {
        ["ext.", "ext=", "ext", "x"].iter().find_map(|p| {
            let head = t.get(..p.len())?;
            head.eq_ignore_ascii_case(p).then(|| &t[p.len()..])
        })
    }
    let digits = |t: &str| (1..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    // `... x12`, `... ext.12`, `...;ext=12`
    if let Some(rest) = is_ext(tail) {
        if digits(rest) {
            return head.trim_end();
        }
    }
    // `... ext. 12`
    if digits(tail) {
        if let Some(j) = head.rfind(' ') {
            if is_ext(&head[j + 1..]).is_some_and(str::is_empty) {
                return head[..j].trim_end();
            }
        }
    }
    s
}

/// A telephone number, written the way people write them:
///
/// - E.164: `+`, a country code not starting with 0, 8 to 15 digits in all,
///   any grouping (`+14155552671`, `+44 20 7946 0958`, `+1 (555) 123-4567`,
///   `+44 (0)20 7946 0958`); two groups joined by a lone `.` read as a
///   decimal number and are refused;
/// - North American: `(NXX) NXX-XXXX`, `NXX-NXX-XXXX`, `NXX.NXX.XXXX`,
///   `NXX NXX XXXX`, optionally after `1 `; the area code N is 2-9 (the
///   exchange is not checked: `555-123-4567` is how examples are written);
/// - national with a trunk `0`: a first group of 2-5 digits starting with 0
///   (maybe in parentheses) and not all zeros, then more groups, 9 to 12
///   digits in all (`020 7946 0958`, `06 12 34 56 78`, `(02) 9876 5432`);
///   not the SSN shape `ddd-dd-dddd`;
/// - bare digits only in a field named like a phone (`hinted`): 10 to 15.
///
/// An extension (` x12`, ` ext. 12`) may follow. Bare digits without a hint
/// are never phones: they are ids, amounts and timestamps far more often.
pub(crate) fn phone(s: &str, hinted: bool) -> bool {
    let s = strip_extension(s);
    let b = s.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return hinted && (10..=15).contains(&b.len()) && !b.iter().all(|&d| d == b[0]);
    }
    let Some(g) = Groups::parse(s) else {
        return false;
    };
    if g.plus {
        let mut digits = g.digits;
        // `+44 (0)20 …`: the parenthesised trunk prefix is not dialled.
        if g.count > 2 && g.groups[1] == (1, 0, true) {
            digits -= 1;
        }
        let decimal = g.count == 2 && g.separators == 4;
        return g.count > 0 && g.first_digit(0) != 0 && (8..=15).contains(&digits) && !decimal;
    }
    nanp(&g) || trunk_national(&g)
}

fn nanp(g: &Groups) -> bool {
    let skip = match g.count {
        3 => 0,
        4 if g.groups[0] == (1, 1, false) => 1,
        _ => return false,
    };
    let area_ok = g.len(skip) == 3 && g.first_digit(skip) >= 2;
    let exchange_ok = g.len(skip + 1) == 3 && !g.groups[skip + 1].2;
    let line_ok = g.len(skip + 2) == 4 && !g.groups[skip + 2].2;
    area_ok && exchange_ok && line_ok
}

fn trunk_national(g: &Groups) -> bool {
    if g.count < 2 || g.first_digit(0) != 0 || !g.first_nonzero || !(2..=5).contains(&g.len(0)) {
        return false;
    }
    let rest_ok = (1..g.count).all(|i| (2..=8).contains(&g.len(i)) && !g.groups[i].2);
    let ssn_shape = g.count == 3 && g.len(0) == 3 && g.len(1) == 2 && g.len(2) == 4;
    rest_ok && (9..=12).contains(&g.digits) && !ssn_shape
}

// ---------------------------------------------------------------- US SSN

/// `AAA-GG-SSSS` (or with spaces), or 9 bare digits in a field named like an
/// SSN (`hinted`). Area 000, 666 and 900-999, group 00 and serial 0000 are
/// never issued; 078-05-1120 and 219-09-9999 are famous advertising numbers.
pub(crate) fn us_ssn(s: &str, hinted: bool) -> bool {
    let b = s.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let parts = if b.len() == 11 && b[3] == b[6] && (b[3] == b'-' || b[3] == b' ') {
        (number(0..3), number(4..6), number(7..11))
    } else if hinted && b.len() == 9 {
        (number(0..3), number(3..5), number(5..9))
    } else {
        return false;
    };
    match parts {
        (Some(area), Some(group), Some(serial)) => ssn_parts(area, group, serial),
        _ => false,
    }
}

/// A JSON number in a field named like an SSN (leading zeros lost: padded).
pub(crate) fn us_ssn_number(n: u64) -> bool {
    n < 1_000_000_000
        && ssn_parts(
            (n / 1_000_000) as u32,
            (n / 10_000 % 100) as u32,
            (n % 10_000) as u32,
        )
}

fn ssn_parts(area: u32, group: u32, serial: u32) -> bool {
    let advertising = matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !advertising
}

// ---------------------------------------------------------------- payment card

/// A card number as a string: 13 to 19 digits, either bare or in groups
/// separated by one kind of separator (space or `-`), the first group of 4
/// and the others of 3 to 6 digits (`4111 1111 1111 1111`,
/// `3782 822463 10005`), passing [`card_number`].
///
/// Bare digit strings are refused in a field named like another identifier
/// (`not_card`: `order_id`, `tracking_number`…): one random number in ten
/// passes Luhn, and long numeric ids are common. A separated number is a
/// card wherever it appears: nothing else is written that way.
pub(crate) fn payment_card(s: &str, not_card: bool) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut groups = 0;
    let mut group_len = 0;
    let mut first_group = 0;
    let mut separator = None;
    for &c in s.as_bytes() {
        match c {
            b'0'..=b'9' => {
                if n == digits.len() {
                    return false;
                }
                digits[n] = c - b'0';
                n += 1;
                group_len += 1;
            }
            b' ' | b'-' => {
                if group_len == 0 || separator.is_some_and(|sep| sep != c) {
                    return false;
                }
                separator = Some(c);
                if groups == 0 {
                    first_group = group_len;
                } else if !(3..=6).contains(&group_len) {
                    return false;
                }
                groups += 1;
                group_len = 0;
            }
            _ => return false,
        }
    }
    if group_len == 0 {
        return false;
    }
    if separator.is_some() {
        if first_group != 4 || !(3..=6).contains(&group_len) || groups < 2 {
            return false;
        }
    } else if not_card {
        return false;
    }
    card_number(&digits[..n])
}

/// A JSON number as card digits (used only in fields named like a card).
pub(crate) fn card_number_u64(mut n: u64) -> bool {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    card_number(&digits[i..])
}

/// 13-19 digits, not all the same, a length the issuer uses for its prefix,
/// and a valid Luhn check digit. Prefixes: Visa `4` (13, 16, 19 digits);
/// Mastercard `51-55`, `2221-2720` (16); American Express `34`, `37` (15);
/// Discover `6011`, `644-649`, `65` (16-19); JCB `3528-3589` (16-19); Diners
/// Club `300-305`, `3095`, `36`, `38`, `39` (14-19); UnionPay `62` (16-19);
/// Maestro `5018`, `5020`, `5038`, `5893`, `6304`, `6759`, `6761-6763`
/// (13-19); Mir `2200-2204` (16-19).
pub(crate) fn card_number(d: &[u8]) -> bool {
    let len = d.len();
    if !(13..=19).contains(&len) || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let prefix = |k: usize| d[..k].iter().fold(0u32, |n, &x| n * 10 + u32::from(x));
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let lengths_ok = if p1 == 4 {
        matches!(len, 13 | 16 | 19)
    } else if p2 == 34 || p2 == 37 {
        len == 15
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        len == 16
    } else if (2200..=2204).contains(&p4)
        || p4 == 6011
        || (644..=649).contains(&p3)
        || p2 == 65
        || (3528..=3589).contains(&p4)
        || p2 == 62
    {
        len >= 16
    } else if (300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39) {
        len >= 14
    } else {
        matches!(
            p4,
            5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
        )
    };
    lengths_ok && luhn(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let doubled = x * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

// ---------------------------------------------------------------- IBAN

/// IBAN lengths per country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// Countries whose BBAN is digits only (SWIFT IBAN registry). A
/// hexadecimal id that happens to start with `BE12` or `de34` fails here
/// long before its mod-97 check could pass by chance.
const NUMERIC_BBAN: &[&[u8; 2]] = &[
    b"AE", b"AT", b"BA", b"BE", b"CZ", b"DE", b"DK", b"EE", b"ES", b"FI", b"FO", b"GL", b"HR",
    b"IL", b"LT", b"ME", b"NO", b"PL", b"PT", b"RS", b"SE", b"SI", b"SK", b"TN", b"XK",
];

/// An IBAN, compact (`GB82WEST12345698765432`) or in the print format with a
/// space after every 4 characters: a registered country code, the length
/// that country uses, two check digits and an alphanumeric BBAN (digits only
/// for the [`NUMERIC_BBAN`] countries) whose ISO 7064 mod-97-10 remainder
/// is 1. Upper or lower case, not mixed.
pub(crate) fn iban(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 15 || b.len() > 42 {
        return false;
    }
    if b.contains(&b' ') {
        let mut groups = s.split(' ').peekable();
        while let Some(group) = groups.next() {
            let last = groups.peek().is_none();
            if !(group.len() == 4 || last && (1..=4).contains(&group.len())) {
                return false;
            }
        }
    }
    let (upper, lower) = b.iter().fold((false, false), |(u, l), c| {
        (u || c.is_ascii_uppercase(), l || c.is_ascii_lowercase())
    });
    if upper && lower {
        return false;
    }
    let mut chars = [0u8; 34];
    let mut n = 0;
    for &c in b {
        if c == b' ' {
            continue;
        }
        if !c.is_ascii_alphanumeric() || n == chars.len() {
            return false;
        }
        chars[n] = c.to_ascii_uppercase();
        n += 1;
    }
    if n < 15 {
        return false;
    }
    let chars = &chars[..n];
    let country = [chars[0], chars[1]];
    let shape_ok = country.iter().all(u8::is_ascii_uppercase)
        && chars[2].is_ascii_digit()
        && chars[3].is_ascii_digit();
    let length_ok = IBAN_LENGTHS
        .iter()
        .any(|(code, len)| **code == country && usize::from(*len) == n);
    let bban_ok = !NUMERIC_BBAN.contains(&&country) || chars[4..].iter().all(u8::is_ascii_digit);
    if !shape_ok || !length_ok || !bban_ok {
        return false;
    }
    let remainder = chars[4..].iter().chain(&chars[..4]).fold(0u32, |r, &c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    remainder == 1
}

// ---------------------------------------------------------------- IP

fn port(p: &str) -> bool {
    (1..=5).contains(&p.len())
        && !p.starts_with('0')
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
}

/// A dotted quad of decimal octets (0-255, no leading zeros), optionally
/// with a `:port`. `1.2.3.4` is an address; whether it is a version instead
/// is for the caller to decide from the field name.
pub(crate) fn ipv4(s: &str) -> bool {
    let addr = match s.split_once(':') {
        Some((addr, p)) if port(p) => addr,
        Some(_) => return false,
        None => s,
    };
    let mut parts = 0;
    for part in addr.split('.') {
        parts += 1;
        let ok = parts <= 4
            && (1..=3).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !ok {
            return false;
        }
    }
    parts == 4
}

/// An IPv6 address as `std` parses it (compressed forms and embedded IPv4
/// included), optionally `[bracketed]` with a `:port` or with a `%zone`. It
/// must contain a decimal digit: `cafe::babe` and `a::b` are more likely
/// code than addresses.
pub(crate) fn ipv6(s: &str) -> bool {
    let s = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, after)) if after.strip_prefix(':').is_some_and(port) => inside,
            _ => return false,
        },
        None => s,
    };
    let s = match s.split_once('%') {
        Some((addr, zone))
            if !zone.is_empty()
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') =>
        {
            addr
        }
        Some(_) => return false,
        None => s,
    };
    s.len() <= 45
        && s.bytes().filter(|&b| b == b':').count() >= 2
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.parse::<Ipv6Addr>().is_ok()
}

// ---------------------------------------------------------------- JWT

fn b64url_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes unpadded base64url into `out`; `None` on a character outside the
/// alphabet, an impossible length, or when `out` is too small.
pub(crate) fn decode_b64url(input: &[u8], out: &mut [u8]) -> Option<usize> {
    if input.len() % 4 == 1 || input.len() / 4 * 3 + (input.len() % 4).saturating_sub(1) > out.len()
    {
        return None;
    }
    let mut acc = 0u32;
    let mut bits = 0;
    let mut n = 0;
    for &c in input {
        acc = (acc << 6) | b64url_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Some(n)
}

fn is_b64url(part: &str) -> bool {
    part.bytes().all(|c| b64url_value(c).is_some())
}

/// Headers longer than this (a long `x5c` chain) are decoded on the heap.
const JWT_HEADER_STACK: usize = 512;

#[derive(serde::Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

/// A JWS in compact serialization: three base64url parts; the header decodes
/// to a JSON object with a string `alg`; the payload starts with `{` (a
/// claims set); the signature is non-empty unless `alg` is `none`.
pub(crate) fn jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if header.len() < 4
        || payload.len() < 2
        || !is_b64url(header)
        || !is_b64url(payload)
        || !is_b64url(signature)
    {
        return false;
    }
    let mut first = [0u8; 3];
    let head = &payload.as_bytes()[..payload.len().min(4)];
    if decode_b64url(head, &mut first).is_none() || first[0] != b'{' {
        return false;
    }
    let alg_ok = |json: &[u8]| match serde_json::from_slice::<JoseHeader<'_>>(json) {
        Ok(h) => !h.alg.is_empty() && (!signature.is_empty() || h.alg == "none"),
        Err(_) => false,
    };
    let mut stack = [0u8; JWT_HEADER_STACK];
    match decode_b64url(header.as_bytes(), &mut stack) {
        Some(n) => alg_ok(&stack[..n]),
        None => {
            let mut heap = vec![0u8; header.len()];
            decode_b64url(header.as_bytes(), &mut heap).is_some_and(|n| alg_ok(&heap[..n]))
        }
    }
}

// ---------------------------------------------------------------- secrets

/// Case-insensitive substring search (ASCII), no allocation.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Text standing in for a value: `YOUR_API_KEY`, `<token>`, `${SECRET}`,
/// `[REDACTED]`, `xxxx…`, `changeme`.
pub(crate) fn placeholder(s: &str) -> bool {
    const MARKERS: &[&str] = &[
        "example",
        "placeholder",
        "redacted",
        "changeme",
        "change_me",
        "change-me",
        "xxxx",
        "****",
        "your_",
        "your-",
        "yourkey",
        "yourtoken",
        "yoursecret",
        "<",
        ">",
        "${",
        "{{",
        "dummy",
        "sample",
        "replace",
        "insert_",
        "_here",
        "-here",
        "notset",
        "not_set",
        "undefined",
        "masked",
        "hidden",
    ];
    MARKERS.iter().any(|m| contains_ci(s, m))
}

/// How many distinct bytes `s` has (ASCII only; others count as one).
fn distinct(s: &[u8]) -> u32 {
    let mut seen = 0u128;
    for &b in s {
        seen |= 1u128 << (b & 0x7f);
    }
    seen.count_ones()
}

/// A random-looking body of a known token format: `min..=max` bytes from
/// `charset`, at least 8 distinct characters, no placeholder text.
fn token_body(body: &str, min: usize, max: usize, charset: fn(u8) -> bool) -> bool {
    (min..=max).contains(&body.len())
        && body.bytes().all(charset)
        && distinct(body.as_bytes()) >= 8
        && !contains_ci(body, "example")
        && !contains_ci(body, "xxxx")
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A credential of a well-known format, matched as the whole value:
/// AWS access key ids (`AKIA`/`ASIA` + 16), GitHub tokens (`ghp_`, `gho_`,
/// `ghu_`, `ghs_`, `ghr_` + 36; `github_pat_` + 50 or more), Slack tokens
/// (`xoxb-`, `xoxp-`, `xoxa-`, `xoxs-` with at least three dash-separated
/// parts), Stripe secret and restricted keys (`sk_live_`, `sk_test_`,
/// `rk_live_`, `rk_test_`) and webhook secrets (`whsec_`), Google API keys
/// (`AIza` + 35), GitLab personal tokens (`glpat-` + 20 or more), npm
/// (`npm_` + 36), PyPI (`pypi-` + 50 or more), SendGrid (`SG.` 22 `.` 43),
/// OpenAI (`sk-proj-`) and Anthropic (`sk-ant-`) keys, and PEM private keys.
/// Publishable keys (`pk_live_`) are not secrets.
pub(crate) fn known_secret(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(b'A') => {
            let aws = (s.starts_with("AKIA") || s.starts_with("ASIA"))
                && token_body(&s[4..], 16, 16, upper_alnum);
            let google = s
                .strip_prefix("AIza")
                .is_some_and(|body| token_body(body, 35, 35, b64url));
            aws || google
        }
        Some(b'g') => {
            let classic = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].iter().any(|p| {
                s.strip_prefix(p)
                    .is_some_and(|body| token_body(body, 36, 36, alnum))
            });
            let fine = s
                .strip_prefix("github_pat_")
                .is_some_and(|body| token_body(body, 50, 255, alnum_underscore));
            let gitlab = s
                .strip_prefix("glpat-")
                .is_some_and(|body| token_body(body, 20, 255, b64url));
            classic || fine || gitlab
        }
        Some(b'x') => ["xoxb-", "xoxp-", "xoxa-", "xoxs-"].iter().any(|p| {
            s.strip_prefix(p).is_some_and(|body| {
                body.split('-').count() >= 3
                    && body.split('-').all(|part| !part.is_empty())
                    && body.bytes().any(|c| c.is_ascii_digit())
                    && token_body(body, 20, 255, |c| alnum(c) || c == b'-')
            })
        }),
        Some(b's' | b'r' | b'w') => {
            let stripe = ["sk_live_", "sk_test_", "rk_live_", "rk_test_"]
                .iter()
                .any(|p| {
                    s.strip_prefix(p)
                        .is_some_and(|body| token_body(body, 16, 247, alnum))
                });
            let webhook = s
                .strip_prefix("whsec_")
                .is_some_and(|body| token_body(body, 24, 255, alnum));
            let llm = ["sk-proj-", "sk-ant-"].iter().any(|p| {
                s.strip_prefix(p)
                    .is_some_and(|body| token_body(body, 32, 255, b64url))
            });
            stripe || webhook || llm
        }
        Some(b'n') => s
            .strip_prefix("npm_")
            .is_some_and(|body| token_body(body, 36, 36, alnum)),
        Some(b'p') => s
            .strip_prefix("pypi-")
            .is_some_and(|body| token_body(body, 50, 4096, b64url)),
        Some(b'S') => s.strip_prefix("SG.").is_some_and(|body| {
            body.split_once('.').is_some_and(|(id, key)| {
                token_body(id, 22, 22, b64url) && token_body(key, 43, 43, b64url)
            })
        }),
        Some(b'-') => private_key(s),
        _ => false,
    }
}

/// A PEM private key: `-----BEGIN … PRIVATE KEY-----` (RSA, EC, DSA,
/// OPENSSH, ENCRYPTED or plain PKCS#8) or `-----BEGIN PGP PRIVATE KEY
/// BLOCK-----`, followed by some base64. Certificates and public keys are
/// not secrets.
pub(crate) fn private_key(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some(end) = rest.find("-----") else {
        return false;
    };
    let label = &rest[..end];
    let body = &rest[end + 5..];
    let base64_chars = body
        .bytes()
        .take(256)
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .count();
    (label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK")) && base64_chars >= 16
}

/// Shannon entropy of the bytes of `s`, in bits per byte.
fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u16; 256];
    for &b in s {
        counts[usize::from(b)] = counts[usize::from(b)].saturating_add(1);
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A value that looks machine-generated: 16 to 1024 printable ASCII
/// characters without spaces, letters and digits both, at least 3 bits of
/// entropy per character, not a URL and not a placeholder.
pub(crate) fn high_entropy(s: &str) -> bool {
    let b = s.as_bytes();
    (16..=1024).contains(&b.len())
        && b.iter().all(u8::is_ascii_graphic)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        && !s.contains("://")
        && !placeholder(s)
        && entropy(b) >= 3.0
}

/// A value that could be a real password: 8 to 256 characters, at least two
/// of lower case, upper case, digits and other characters, at least 2.5 bits
/// of entropy per character, not a placeholder or a mask (`********`).
pub(crate) fn plausible_password(s: &str) -> bool {
    let b = s.as_bytes();
    if !(8..=256).contains(&s.chars().count()) || s.chars().any(char::is_control) {
        return false;
    }
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for &c in b {
        match c {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            _ => other = true,
        }
    }
    let classes = [lower, upper, digit, other].iter().filter(|&&x| x).count();
    classes >= 2 && entropy(b) >= 2.5 && !placeholder(s)
}

// ---------------------------------------------------------------- dates

fn leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2099).contains(&year) && (1..=days).contains(&day)
}

fn digits_value(s: &str, lens: std::ops::RangeInclusive<usize>) -> Option<u32> {
    (lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_name(s: &str) -> Option<u32> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            s.len() <= m.len() && m.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
        })
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// A calendar date between 1900 and 2099: ISO `YYYY-MM-DD` (a time may
/// follow after `T` or a space), `YYYY/MM/DD`, `YYYY.MM.DD`, `DD/MM/YYYY` or
/// `MM/DD/YYYY` (also with `.` or `-`, one or two digit day and month),
/// `YYYYMMDD`, `17 May 1990`, `May 17, 1990`.
pub(crate) fn date(s: &str) -> bool {
    if let Some(n) = digits_value(s, 8..=8) {
        return valid_date(n / 10_000, n / 100 % 100, n % 100);
    }
    let b = s.as_bytes();
    // ISO with a time: `1990-05-17T00:00:00Z`, `1990-05-17 00:00`.
    if b.len() > 10 && b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b' ') {
        return b.get(11).is_some_and(u8::is_ascii_digit) && date(&s[..10]);
    }
    if let Some(sep) = b.iter().copied().find(|c| matches!(c, b'-' | b'/' | b'.')) {
        let mut parts = s.split(sep as char);
        if let (Some(a), Some(m), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            if let (Some(y), Some(m), Some(d)) = (
                digits_value(a, 4..=4),
                digits_value(m, 1..=2),
                digits_value(c, 1..=2),
            ) {
                return valid_date(y, m, d);
            }
            if let (Some(x), Some(z), Some(y)) = (
                digits_value(a, 1..=2),
                digits_value(m, 1..=2),
                digits_value(c, 4..=4),
            ) {
                return valid_date(y, z, x) || valid_date(y, x, z);
            }
            // `17-May-1990`
            if let (Some(d), Some(m), Some(y)) = (
                digits_value(a, 1..=2),
                month_name(m),
                digits_value(c, 4..=4),
            ) {
                return valid_date(y, m, d);
            }
        }
        return false;
    }
    let mut words = s.split([' ', ',']).filter(|w| !w.is_empty());
    let (Some(a), Some(m), Some(c), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    if let (Some(d), Some(m), Some(y)) = (
        digits_value(a, 1..=2),
        month_name(m),
        digits_value(c, 4..=4),
    ) {
        return valid_date(y, m, d);
    }
    if let (Some(m), Some(d), Some(y)) = (
        month_name(a),
        digits_value(m, 1..=2),
        digits_value(c, 4..=4),
    ) {
        return valid_date(y, m, d);
    }
    false
}

/// `YYYYMMDD` as a JSON number.
pub(crate) fn date_number(n: u64) -> bool {
    (10_000_000..=99_999_999).contains(&n) && {
        let n = n as u32;
        valid_date(n / 10_000, n / 100 % 100, n % 100)
    }
}

// ---------------------------------------------------------------- names and addresses

/// Values that say "no value".
fn no_value(s: &str) -> bool {
    const NONE: &[&str] = &[
        "unknown",
        "none",
        "null",
        "nil",
        "n/a",
        "na",
        "anonymous",
        "undefined",
        "-",
        "tbd",
        "not provided",
        "not available",
        "redacted",
    ];
    NONE.iter().any(|n| s.eq_ignore_ascii_case(n)) || placeholder(s)
}

/// A person's name: at most 100 characters, letters (any script), spaces,
/// apostrophes, hyphens, dots and commas only, at least one letter.
pub(crate) fn person_name(s: &str) -> bool {
    s.len() <= 400
        && s.chars().count() <= 100
        && s.chars().any(char::is_alphabetic)
        && s.chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '\'' | '\u{2019}' | '-' | '.' | ','))
        && !no_value(s)
}

/// A street line: 3 to 200 characters with a letter, no `@`, no URL.
pub(crate) fn street(s: &str) -> bool {
    (3..=200).contains(&s.len())
        && s.chars().any(char::is_alphabetic)
        && !s.contains('@')
        && !s.contains("://")
        && !s.chars().any(char::is_control)
        && !no_value(s)
}

/// A whole address in one string: a street line with a space and a digit
/// (a house number or a postal code).
pub(crate) fn address(s: &str) -> bool {
    street(s) && s.contains(' ') && s.bytes().any(|b| b.is_ascii_digit())
}

/// A postal code: 3 to 10 letters, digits, spaces or hyphens, with a digit.
pub(crate) fn postal_code(s: &str) -> bool {
    (3..=10).contains(&s.len())
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
}

/// A place name: at most 60 characters, letters, spaces, `-`, `'` and `.`.
pub(crate) fn city(s: &str) -> bool {
    s.chars().count() <= 60
        && s.chars().any(char::is_alphabetic)
        && s.chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.' | '\u{2019}'))
        && !no_value(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_addresses_and_refuses_look_alikes() {
        for ok in [
            "alice@example.com",
            "first.last+tag@mail.example.co.uk",
            "Bob Smith <bob@example.org>",
            "x@xn--bcher-kva.example",
        ] {
            assert!(email(ok), "{ok}");
        }
        for no in [
            "user@localhost",
            "logo@2x.png",
            "@scope/pkg",
            "pkg@1.2.3",
            "a..b@example.com",
            "git@github.com:org/repo.git",
            "a@b.c",
            "user@exa_mple.com",
        ] {
            assert!(!email(no), "{no}");
        }
    }

    #[test]
    fn phone_needs_a_plus_or_a_national_format() {
        for ok in [
            "+14155552671",
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "+44 (0)20 7946 0958",
            "(555) 123-4567",
            "555-123-4567",
            "1-555-123-4567",
            "020 7946 0958",
            "06 12 34 56 78",
            "555.123.4567 x204",
            "+49 30 1234567 ext. 12",
        ] {
            assert!(phone(ok, false), "{ok}");
        }
        for no in [
            "1234567890",
            "+1234567",
            "+1234567.89",
            "123-456-7890",
            "2024-01-15",
            "01.02.2024",
            "0-306-40615-2",
            "012-34-5678",
            "555-1234",
            "(555)) 123-4567",
        ] {
            assert!(!phone(no, false), "{no}");
        }
        assert!(phone("4155552671", true));
        assert!(!phone("415555267", true));
    }

    #[test]
    fn ssn_checks_the_never_issued_ranges() {
        assert!(us_ssn("123-45-6789", false));
        assert!(us_ssn("123 45 6789", false));
        assert!(!us_ssn("123456789", false));
        assert!(us_ssn("123456789", true));
        for no in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "123-45 6789",
        ] {
            assert!(!us_ssn(no, true), "{no}");
        }
        assert!(us_ssn_number(12_345_678));
        assert!(!us_ssn_number(1_234_567_890));
    }

    #[test]
    fn cards_need_luhn_an_issuer_and_its_length() {
        for ok in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
        ] {
            assert!(payment_card(ok, false), "{ok}");
        }
        for no in [
            "4111111111111112",
            "4111 1111 1111 111",
            "1234567812345670",
            "0000000000000000",
            "4111-1111 1111-1111",
            "41111 111 1111 1111",
            "37828224631000",
        ] {
            assert!(!payment_card(no, false), "{no}");
        }
        assert!(
            !payment_card("4111111111111111", true),
            "bare digits in an id field"
        );
        assert!(
            payment_card("4111 1111 1111 1111", true),
            "separated digits are a card anywhere"
        );
        assert!(card_number_u64(4_111_111_111_111_111));
        assert!(!card_number_u64(4_111_111_111_111_112));
    }

    #[test]
    fn iban_checks_country_length_and_mod_97() {
        for ok in [
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "de89370400440532013000",
            "NO9386011117947",
        ] {
            assert!(iban(ok), "{ok}");
        }
        for no in [
            "GB82WEST12345698765433",
            "GB82WEST1234569876543",
            "XX82WEST12345698765432",
            "GB82 WEST12345698765432",
            "Gb82WEST12345698765432",
        ] {
            assert!(!iban(no), "{no}");
        }
    }

    #[test]
    fn ip_addresses() {
        assert!(ipv4("192.168.1.10"));
        assert!(ipv4("10.0.0.1:8080"));
        for no in [
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4:0",
            "1.2.3.4/24",
        ] {
            assert!(!ipv4(no), "{no}");
        }
        for ok in [
            "2001:db8::1",
            "::1",
            "fe80::1%eth0",
            "[2001:db8::1]:443",
            "::ffff:192.0.2.1",
        ] {
            assert!(ipv6(ok), "{ok}");
        }
        for no in [
            "::",
            "cafe::babe",
            "12:30:45",
            "00:1a:2b:3c:4d:5e",
            "std::vec",
            "2001:db8::/32",
            "[::1]x",
        ] {
            assert!(!ipv6(no), "{no}");
        }
    }

    #[test]
    fn base64url_decoding() {
        let mut out = [0u8; 16];
        let n = decode_b64url(b"eyJhbGciOiJub25lIn0", &mut out).unwrap();
        assert_eq!(&out[..n], br#"{"alg":"none"}"#);
        assert_eq!(decode_b64url(b"abcde", &mut out), None, "length 4n+1");
        assert_eq!(decode_b64url(b"ab+d", &mut out), None, "standard alphabet");
        assert_eq!(
            decode_b64url(b"AAAAAAAAAAAAAAAAAAAAAAAA", &mut out),
            None,
            "too long for out"
        );
    }

    #[test]
    fn jwt_needs_a_header_with_alg() {
        let hs256 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"; // palisade:allow (fake credential, test data)
        assert!(jwt(hs256));
        assert!(
            jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            "alg none, empty signature"
        );
        assert!(
            !jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0."),
            "signed alg, empty signature"
        );
        assert!(!jwt("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln"), "no alg");
        assert!(!jwt("www.example.com"));
        assert!(!jwt("1.2.3"));
        let long_header = format!("{{\"alg\":\"RS256\",\"x5c\":[\"{}\"]}}", "A".repeat(900));
        let mut encoded = String::new();
        for chunk in long_header.as_bytes().chunks(3) {
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let n =
                chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                encoded.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        assert!(
            jwt(&format!("{encoded}.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")),
            "header decoded on the heap"
        );
    }

    #[test]
    fn known_secret_formats() {
        for ok in [
            "AKIAZ3MSJV4WWNKWW5FQ", // palisade:allow (fake credential, test data)
            "ghp_R2d9TqLw8XvB3nK7mYpZ1cF6hJ4sA0eU5iOx",
            "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1", // palisade:allow (fake credential, test data)
            "sk_live_51H8xYzKp3QwErTy7uIoPaSd", // palisade:allow (fake credential, test data)
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", // palisade:allow (fake credential, test data)
            "glpat-x7Rk2Mq9Zt4Bn8Vw1Lp3", // palisade:allow (fake credential, test data)
            "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        ] {
            assert!(known_secret(ok), "{ok}");
        }
        for no in [
            "AKIAIOSFODNN7EXAMPLE",
            "pk_live_51H8xYzKp3QwErTy7uIoPaSd",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "sk_live_",
            "AKIA1234",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUeXl6\n-----END CERTIFICATE-----",
        ] {
            assert!(!known_secret(no), "{no}");
        }
        assert!(known_secret("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx3n9Kq2\n-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn entropy_rules() {
        assert!(high_entropy("q8X2v9LmR4tZ7wKp3NcB"));
        assert!(!high_entropy("thisisnotasecretatall"), "no digit");
        assert!(!high_entropy("aaaaaaaaaaaaaaaa1111"), "low entropy");
        assert!(!high_entropy("YOUR_API_KEY_12345678"), "placeholder");
        assert!(!high_entropy("https://example.com/a1"), "url");
        assert!(plausible_password("Tr0ub4dor&3"));
        assert!(!plausible_password("password"), "one class");
        assert!(!plausible_password("********"));
        assert!(!plausible_password("hunter2"), "too short");
    }

    #[test]
    fn dates_in_common_formats() {
        for ok in [
            "1990-05-17",
            "1990-05-17T00:00:00Z",
            "17/05/1990",
            "05/17/1990",
            "17.05.1990",
            "19900517",
            "17 May 1990",
            "May 17, 1990",
            "17-May-1990",
            "2000-02-29",
        ] {
            assert!(date(ok), "{ok}");
        }
        for no in [
            "1990-13-01",
            "1900-02-29",
            "31/04/1990",
            "1990",
            "May 1990",
            "1990-05-17Tx",
            "12345678",
            "1850-01-01",
        ] {
            assert!(!date(no), "{no}");
        }
        assert!(date_number(19_900_517));
        assert!(!date_number(1_700_000_000));
    }

    #[test]
    fn names_and_addresses() {
        assert!(person_name("Siobhán O'Brien"));
        assert!(person_name("José María García-López"));
        assert!(!person_name("Widget 3000"));
        assert!(!person_name("unknown"));
        assert!(street("221B Baker Street"));
        assert!(!street("me@example.com"));
        assert!(address("1600 Amphitheatre Parkway, Mountain View"));
        assert!(!address("0x71C7656EC7ab88b098defB751B7401B5f6d8976F"));
        assert!(postal_code("SW1A 1AA"));
        assert!(postal_code("94105-1234"));
        assert!(!postal_code("true"));
        assert!(city("Saint-Étienne"));
        assert!(!city("Berlin 10115"));
    }
}
