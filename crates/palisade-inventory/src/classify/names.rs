//! Field names as hints: `billingAddress.line1`, `date_of_birth`, `API-Key`.
//!
//! A name is cut into words at every ASCII character that is not a letter or
//! a digit and at camel-case boundaries (`firstName` → `first`, `Name`;
//! `HTTPServer` → `HTTP`, `Server`); letters and the digits after them stay
//! together (`line1`, `address2`), and non-ASCII characters belong to words.
//! Words compare ignoring ASCII case. The *joined* form is the words run
//! together in lower case (`first_name` and `firstName` both join to
//! `firstname`), so `customer_first_name` is recognised by its joined form
//! ending in `firstname`.
//!
//! This runs for every value classified, so words are compared as integers:
//! a word of up to 16 bytes is packed into a `u128` once, and every list it
//! is compared with is packed at compile time.

use std::cell::OnceCell;

/// At most this many words of a name are kept (the last ones: they carry the
/// meaning, `shipping_address_postal_code` is about a postal code).
const MAX_WORDS: usize = 8;

/// At most this many bytes of a name are looked at (the last ones).
const MAX_NAME: usize = 64;

/// Longest word (or suffix) compared as a packed integer.
const PACKED: usize = 16;

/// `bytes` (at most [`PACKED`] of them) as one integer, byte `i` in bits
/// `8i..8i+8`. A list word has no zero byte, so no packing of a different
/// word (or of a longer one, see [`Words::push`]) equals it.
const fn pack(bytes: &[u8]) -> u128 {
    let mut value = 0u128;
    let mut i = 0;
    while i < bytes.len() && i < PACKED {
        value |= (bytes[i] as u128) << (8 * i);
        i += 1;
    }
    value
}

/// A list of lower-case words, packed.
const fn pack_all<const N: usize>(words: [&str; N]) -> [u128; N] {
    let mut out = [0u128; N];
    let mut i = 0;
    while i < N {
        assert!(words[i].len() <= PACKED, "list words are at most 16 bytes");
        out[i] = pack(words[i].as_bytes());
        i += 1;
    }
    out
}

/// `words!["dob", "bday"]`: a `&'static [u128]` packed at compile time.
macro_rules! words {
    ($($word:literal),+ $(,)?) => {{
        const LIST: &[u128] = &pack_all([$($word),+]);
        LIST
    }};
}

/// A lower-case suffix the joined form may end with.
#[derive(Debug, Clone, Copy)]
struct Suffix {
    bytes: &'static [u8],
    packed: u128,
}

impl Suffix {
    const fn new(s: &'static str) -> Suffix {
        Suffix {
            bytes: s.as_bytes(),
            packed: pack(s.as_bytes()),
        }
    }
}

/// `suffixes!["firstname", "surname"]`: a `&'static [Suffix]`.
macro_rules! suffixes {
    ($($suffix:literal),+ $(,)?) => {{
        const LIST: &[Suffix] = &[$(Suffix::new($suffix)),+];
        LIST
    }};
}

/// The words of a field name, lower-cased into a stack buffer: no allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words {
    /// The joined form: the words, lower case, one after the other.
    joined: [u8; MAX_NAME],
    len: usize,
    /// Each kept word, packed (a word over 16 bytes: its first 16 bytes and
    /// a 0 byte cannot be told apart from nothing, so it is `u128::MAX`).
    words: [u128; MAX_WORDS],
    count: usize,
    /// The last 16 bytes of `joined`, packed so that the last byte is the
    /// top one: `tail >> 8 * (16 - n)` is the packed last `n` bytes.
    tail: u128,
}

impl Words {
    pub(crate) fn new(name: &str) -> Words {
        let mut out = Words {
            joined: [0; MAX_NAME],
            len: 0,
            words: [0; MAX_WORDS],
            count: 0,
            tail: 0,
        };
        let b = name.as_bytes();
        let b = &b[b.len().saturating_sub(MAX_NAME)..];
        let mut start = None;
        for i in 0..=b.len() {
            let c = b.get(i).copied();
            if !c.is_some_and(|c| c.is_ascii_alphanumeric() || !c.is_ascii()) {
                if let Some(from) = start.take() {
                    out.push(&b[from..i]);
                }
                continue;
            }
            let Some(from) = start else {
                start = Some(i);
                continue;
            };
            let (prev, cur) = (b[i - 1], b[i]);
            let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            let camel =
                (prev.is_ascii_lowercase() || prev.is_ascii_digit()) && cur.is_ascii_uppercase();
            let acronym_end = prev.is_ascii_uppercase() && cur.is_ascii_uppercase() && next_lower;
            if camel || acronym_end {
                out.push(&b[from..i]);
                start = Some(i);
            }
        }
        let n = out.len.min(PACKED);
        if n > 0 {
            out.tail = pack(&out.joined[out.len - n..out.len]) << (8 * (PACKED - n));
        }
        out
    }

    fn push(&mut self, word: &[u8]) {
        let start = self.len;
        for &b in word {
            self.joined[self.len] = b.to_ascii_lowercase();
            self.len += 1;
        }
        if self.count == MAX_WORDS {
            self.words.copy_within(1.., 0);
            self.count -= 1;
        }
        self.words[self.count] = if word.len() <= PACKED {
            pack(&self.joined[start..self.len])
        } else {
            u128::MAX
        };
        self.count += 1;
    }

    fn joined(&self) -> &[u8] {
        &self.joined[..self.len]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether one of the words is in `list`.
    pub(crate) fn has(&self, list: &[u128]) -> bool {
        self.words[..self.count].iter().any(|w| list.contains(w))
    }

    /// Whether the last word is in `list`.
    pub(crate) fn last_is(&self, list: &[u128]) -> bool {
        self.count > 0 && list.contains(&self.words[self.count - 1])
    }

    fn ends_with(&self, suffix: &Suffix) -> bool {
        let n = suffix.bytes.len();
        if n == 0 || n > self.len {
            return n == 0;
        }
        if n <= PACKED {
            self.tail >> (8 * (PACKED - n)) == suffix.packed
        } else {
            self.joined().ends_with(suffix.bytes)
        }
    }

    /// Whether the joined form is exactly `target` (lower case).
    pub(crate) fn joined_is(&self, target: &str) -> bool {
        self.len == target.len() && self.joined() == target.as_bytes()
    }

    /// Whether the joined form ends with one of `suffixes`.
    fn joined_ends_with(&self, suffixes: &[Suffix]) -> bool {
        suffixes.iter().any(|s| self.ends_with(s))
    }

    /// Whether the joined form contains `target` (lower case, non-empty).
    pub(crate) fn joined_contains(&self, target: &str) -> bool {
        let (t, j) = (target.as_bytes(), self.joined());
        let Some((&first, rest)) = t.split_first() else {
            return false;
        };
        j.len() >= t.len()
            && (0..=j.len() - t.len()).any(|i| j[i] == first && &j[i + 1..i + t.len()] == rest)
    }

    /// The joined form, or it with a plural `s` removed, is one of `targets`.
    fn joined_is_singular_of(&self, targets: &[&str]) -> bool {
        let joined = self.joined();
        let singular = joined.strip_suffix(b"s").unwrap_or(joined);
        targets
            .iter()
            .any(|t| t.as_bytes() == joined || t.as_bytes() == singular)
    }
}

/// What a field name (and the name of the object holding it) suggests about
/// its value. The names are cut into words on first use, and each hint is
/// worked out when asked for: most values need few of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hints<'a> {
    name: Option<&'a str>,
    parent: Option<&'a str>,
    words: OnceCell<Option<Words>>,
    parent_words: OnceCell<Words>,
}

/// Last words that make a name an identifier or an attribute of a thing
/// rather than the thing (`card_id`, `city_code`, `card_brand`).
const ID_WORDS: &[u128] = words![
    "id",
    "ids",
    "uuid",
    "guid",
    "key",
    "no",
    "nr",
    "num",
    "ref",
    "reference",
    "type",
    "brand",
    "fingerprint",
    "last4",
    "bin",
    "exp",
    "expiry",
    "expires",
    "count",
    "hash",
    "token",
];

/// Objects whose `name` is a person's name (singular; a plural `s` is ignored).
const PERSON_OBJECTS: &[&str] = &[
    "user",
    "customer",
    "person",
    "contact",
    "employee",
    "patient",
    "member",
    "author",
    "recipient",
    "sender",
    "holder",
    "cardholder",
    "accountholder",
    "beneficiary",
    "buyer",
    "passenger",
    "guest",
    "applicant",
    "driver",
    "student",
    "traveler",
    "traveller",
    "payer",
    "payee",
    "signer",
    "attendee",
    "shopper",
    "subscriber",
    "billingdetails",
    "shippingdetails",
    "profile",
];

/// Objects whose `line1`, `line2`, `line3` are street lines.
const ADDRESS_OBJECTS: &[&str] = &[
    "address",
    "billingaddress",
    "shippingaddress",
    "homeaddress",
    "mailingaddress",
    "postaladdress",
    "deliveryaddress",
    "residentialaddress",
];

impl<'a> Hints<'a> {
    /// The hints of a field called `name` inside an object held by a field
    /// called `parent` (array levels skipped).
    pub(crate) fn new(name: Option<&'a str>, parent: Option<&'a str>) -> Hints<'a> {
        Hints {
            name,
            parent,
            words: OnceCell::new(),
            parent_words: OnceCell::new(),
        }
    }

    /// The words of the name; `None` without a name (or one without words).
    fn words(&self) -> Option<&Words> {
        self.words
            .get_or_init(|| Some(Words::new(self.name?)).filter(|w| !w.is_empty()))
            .as_ref()
    }

    /// The words of the parent's name (few hints need them).
    fn parent_words(&self) -> &Words {
        self.parent_words
            .get_or_init(|| Words::new(self.parent.unwrap_or("")))
    }

    fn name(&self, f: impl FnOnce(&Words) -> bool) -> bool {
        self.words().is_some_and(f)
    }

    /// `dob`, `birth_date`, `dateOfBirth`, `birthday`…
    pub(crate) fn birth(&self) -> bool {
        self.name(|w| {
            w.has(words!["dob", "bday", "born", "birthday", "birthdate"])
                || w.joined_contains("birth")
        })
    }

    /// `version`, `app_version`, `build`, `release`, `oid`…: a dotted quad is
    /// a version or an object identifier, not an address.
    pub(crate) fn version(&self) -> bool {
        self.name(|w| {
            w.has(words![
                "version", "ver", "vsn", "build", "release", "revision", "rev", "firmware", "fw",
                "semver", "tag", "oid",
            ]) || w.joined_ends_with(suffixes!["version"])
        })
    }

    /// `card_number`, `pan`, `cc`…
    pub(crate) fn card(&self) -> bool {
        self.name(|w| {
            let card_word = w.has(words![
                "card",
                "cc",
                "pan",
                "ccnum",
                "ccnumber",
                "creditcard"
            ]) || w.joined_contains("cardnumber")
                || w.joined_contains("creditcard");
            card_word && !w.last_is(ID_WORDS)
        })
    }

    /// An identifier, counter or number that is not a card: `order_id`,
    /// `invoice_number`, `ts`, `phone`…
    pub(crate) fn not_card(&self) -> bool {
        self.name(|w| {
            w.last_is(ID_WORDS)
                || w.has(words![
                    "order",
                    "orders",
                    "invoice",
                    "tracking",
                    "reference",
                    "ref",
                    "sku",
                    "serial",
                    "transaction",
                    "txn",
                    "account",
                    "timestamp",
                    "ts",
                    "time",
                    "epoch",
                    "seq",
                    "sequence",
                    "total",
                    "amount",
                    "phone",
                    "isbn",
                    "ean",
                    "upc",
                    "gtin",
                    "imei",
                    "nonce",
                ])
        })
    }

    /// `phone`, `mobile`, `msisdn`…
    pub(crate) fn phone(&self) -> bool {
        self.name(|w| {
            w.has(words![
                "phone",
                "mobile",
                "cell",
                "cellphone",
                "tel",
                "telephone",
                "msisdn",
                "fax",
                "phonenumber",
                "mobilenumber",
                "whatsapp",
            ]) && !w.last_is(words![
                "id",
                "type",
                "verified",
                "confirmed",
                "country",
                "code",
                "ext",
                "extension",
                "prefix",
                "enabled",
                "consent",
                "count",
            ])
        })
    }

    /// `ssn`, `social_security_number`.
    pub(crate) fn ssn(&self) -> bool {
        self.name(|w| {
            (w.has(words!["ssn"]) || w.joined_contains("socialsecurity"))
                && !w.last_is(words!["id", "type", "last4", "verified", "hash"])
        })
    }

    /// `api_key`, `client_secret`, `access_token`…; not pagination tokens.
    pub(crate) fn secret(&self) -> bool {
        self.name(|w| {
            w.joined_ends_with(suffixes![
                "secret",
                "token",
                "apikey",
                "accesskey",
                "secretkey",
                "privatekey",
                "signingkey",
                "encryptionkey",
                "masterkey",
                "authkey",
                "sessionkey",
                "hmackey",
                "credential",
                "credentials",
                "authorization",
            ]) && !w.has(words![
                "page",
                "cursor",
                "next",
                "continuation",
                "pagination"
            ])
        })
    }

    /// `password`, `passphrase`…; not `password_hint` or `password_updated_at`.
    pub(crate) fn password(&self) -> bool {
        self.name(|w| {
            (w.joined_contains("passw") || w.joined_contains("passphrase") || w.has(words!["pwd"]))
                && !w.last_is(words![
                    "hint", "policy", "strength", "length", "required", "reset", "expires",
                    "expiry", "expired", "changed", "updated", "set", "enabled", "last", "age",
                    "rules", "url", "link", "type", "id", "count", "attempts", "min", "max", "at",
                    "date", "score",
                ])
        })
    }

    /// `first_name`, `surname`, a person's `name`…
    pub(crate) fn person_name(&self) -> bool {
        self.words().is_some_and(|w| {
            w.joined_ends_with(suffixes![
                "firstname",
                "lastname",
                "givenname",
                "familyname",
                "middlename",
                "fullname",
                "surname",
                "forename",
                "maidenname",
                "legalname",
                "holdername",
                "customername",
                "contactname",
                "patientname",
                "employeename",
                "authorname",
                "recipientname",
                "sendername",
                "personname",
                "beneficiaryname",
                "payername",
                "payeename",
                "passengername",
                "guestname",
            ]) || w.has(words!["fname", "lname"])
                || (w.joined_is("name") && {
                    let p = self.parent_words();
                    p.joined_is_singular_of(PERSON_OBJECTS) || p.joined_is("people")
                })
        })
    }

    /// `street`, `address_line1`, an address's `line1`…
    pub(crate) fn street(&self) -> bool {
        self.words().is_some_and(|w| {
            !w.last_is(ID_WORDS)
                && (w.joined_ends_with(suffixes![
                    "street",
                    "streetaddress",
                    "streetname",
                    "addressline1",
                    "addressline2",
                    "addressline3",
                    "address1",
                    "address2",
                    "address3",
                    "addr1",
                    "addr2",
                ]) || (w.has(words!["line1", "line2", "line3"])
                    && w.count == 1
                    && self.parent_words().joined_is_singular_of(ADDRESS_OBJECTS)))
        })
    }

    /// A whole address in one field: `address`, `home_address`,
    /// `shipping_address`…; not `email_address`, `ip_address`, `remote_address`.
    pub(crate) fn address(&self) -> bool {
        self.name(|w| {
            let whole = w.joined_is("address")
                || w.joined_ends_with(suffixes![
                    "homeaddress",
                    "billingaddress",
                    "shippingaddress",
                    "mailingaddress",
                    "postaladdress",
                    "deliveryaddress",
                    "residentialaddress",
                ]);
            whole
                && !w.last_is(ID_WORDS)
                && !w.has(words![
                    "email",
                    "ip",
                    "mac",
                    "wallet",
                    "remote",
                    "local",
                    "server",
                    "host",
                    "bind",
                    "listen",
                    "web",
                    "url",
                    "contract",
                    "eth",
                    "ethereum",
                    "btc",
                    "bitcoin",
                    "node",
                    "peer",
                    "socket",
                    "broadcast",
                    "gateway",
                    "network",
                    "net",
                    "multicast",
                    "memory",
                    "mem",
                    "return",
                    "reply",
                    "sender",
                    "from",
                    "to",
                    "cc",
                    "bcc",
                ])
        })
    }

    /// `postal_code`, `zip`…
    pub(crate) fn postal_code(&self) -> bool {
        self.name(|w| {
            w.joined_ends_with(suffixes!["postalcode", "postcode", "zipcode", "zip", "plz"])
        })
    }

    /// `city`, `town`.
    pub(crate) fn city(&self) -> bool {
        self.name(|w| w.last_is(words!["city", "town"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept words, decoded from the end of the joined form (earlier
    /// words may have been dropped from the list but not from the buffer).
    fn words(name: &str) -> Vec<String> {
        let w = Words::new(name);
        let mut out = Vec::new();
        let mut end = w.len;
        for &packed in w.words[..w.count].iter().rev() {
            let len = (0..PACKED)
                .take_while(|i| packed >> (8 * i) & 0xff != 0)
                .count();
            out.push(String::from_utf8(w.joined[end - len..end].to_vec()).unwrap());
            end -= len;
        }
        out.reverse();
        out
    }

    #[test]
    fn cuts_names_at_separators_and_camel_case() {
        assert_eq!(words("date_of_birth"), ["date", "of", "birth"]);
        assert_eq!(words("dateOfBirth"), ["date", "of", "birth"]);
        assert_eq!(words("HTTPServerName"), ["http", "server", "name"]);
        assert_eq!(
            words("billing.address-line1"),
            ["billing", "address", "line1"]
        );
        assert_eq!(words("addressLine1"), ["address", "line1"]);
        assert_eq!(words("user[email]"), ["user", "email"]);
        assert_eq!(words("__"), Vec::<String>::new());
        assert_eq!(words("prénom_Ünïcode"), ["prénom", "Ünïcode"]);
        assert_eq!(words("a_b_c_d_e_f_g_h_i_j").len(), MAX_WORDS);
        assert_eq!(words("a_b_c_d_e_f_g_h_i_j").last().unwrap(), "j");
    }

    #[test]
    fn joined_forms_ignore_case_and_separators() {
        let w = Words::new("Customer_First-Name");
        assert!(w.joined_is("customerfirstname"));
        assert!(w.joined_ends_with(suffixes!["firstname"]));
        assert!(!w.joined_ends_with(suffixes!["lastname", "xcustomerfirstname"]));
        assert!(
            w.joined_ends_with(suffixes!["customerfirstname"]),
            "over 16 bytes"
        );
        assert!(w.joined_contains("tomerfir"));
        assert!(!w.joined_contains("lastname"));
        assert!(Words::new("customers").joined_is_singular_of(&["customer"]));
        assert!(!Words::new("customerss").joined_is_singular_of(&["customer"]));
        let long = format!("{}_postal_code", "x".repeat(100));
        assert!(
            Words::new(&long).joined_ends_with(suffixes!["postalcode"]),
            "the tail of a long name"
        );
        assert!(Words::new("zip").joined_ends_with(suffixes!["zip"]));
        assert!(!Words::new("ip").joined_ends_with(suffixes!["zip"]));
        assert!(Words::new("prénom_x").joined_contains("prénom"));
        let long_word = Words::new("averyveryverylongwordindeed");
        assert!(
            !long_word.has(words!["averyveryverylon"]),
            "not a prefix match"
        );
    }

    #[test]
    fn hints_follow_the_documented_names() {
        assert!(Hints::new(Some("dateOfBirth"), None).birth());
        assert!(Hints::new(Some("dob"), None).birth());
        assert!(!Hints::new(Some("created_at"), None).birth());
        assert!(Hints::new(Some("app_version"), None).version());
        assert!(Hints::new(Some("card_number"), None).card());
        assert!(!Hints::new(Some("card_id"), None).card());
        assert!(Hints::new(Some("order_number"), None).not_card());
        assert!(Hints::new(Some("mobilePhone"), None).phone());
        assert!(!Hints::new(Some("phone_verified"), None).phone());
        assert!(Hints::new(Some("ssn"), None).ssn());
        assert!(Hints::new(Some("social_security_number"), None).ssn());
        assert!(Hints::new(Some("client_secret"), None).secret());
        assert!(Hints::new(Some("X-Api-Key"), None).secret());
        assert!(!Hints::new(Some("next_page_token"), None).secret());
        assert!(!Hints::new(Some("token_type"), None).secret());
        assert!(Hints::new(Some("new_password"), None).password());
        assert!(Hints::new(Some("passwd"), None).password());
        assert!(!Hints::new(Some("password_hint"), None).password());
        assert!(!Hints::new(Some("passport"), None).password());
        assert!(Hints::new(Some("lastName"), None).person_name());
        assert!(Hints::new(Some("name"), Some("customers")).person_name());
        assert!(!Hints::new(Some("name"), Some("product")).person_name());
        assert!(!Hints::new(Some("username"), None).person_name());
        assert!(!Hints::new(Some("filename"), None).person_name());
        assert!(Hints::new(Some("line1"), Some("shipping_address")).street());
        assert!(!Hints::new(Some("line1"), Some("invoice")).street());
        assert!(Hints::new(Some("address"), None).address());
        assert!(Hints::new(Some("delivery_address"), None).address());
        assert!(!Hints::new(Some("email_address"), None).address());
        assert!(!Hints::new(Some("remoteAddress"), None).address());
        assert!(Hints::new(Some("zip"), None).postal_code());
        assert!(Hints::new(Some("billingCity"), None).city());
        assert!(!Hints::new(Some("city_id"), None).city());
        let none = Hints::new(None, Some("user"));
        assert!(!none.person_name() && !none.secret() && !none.birth() && !none.city());
    }
}
