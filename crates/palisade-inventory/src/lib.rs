//! Palisade's live API inventory: what sensitive data a request carries
//! ([data classification](#data-classification)), which route it was when
//! the service has no OpenAPI spec ([path templating](#path-templating)),
//! and the inventory built from audit records on top of both
//! ([the inventory](#the-inventory)): every endpoint with its callers,
//! statuses, fields and data classes, the flags shadow, zombie, unused,
//! orphan and drift, a [risk score](#risk-score) with its reasons,
//! versioned [snapshots](#snapshots-and-diffs) and their diff, and
//! [reconstructed OpenAPI 3.1 documents](#reconstructed-openapi).
//!
//! Classification and templating do no I/O and keep no global state; the
//! inventory has no clock (snapshots are stamped by the caller) and reads
//! the audit store only through [`Inventory::read_sqlite`]. The sidecar's
//! observation capture, `palisade inventory` and the control plane sit on
//! top.
//!
//! ```text
//!  request ──► path ───────────► PathTemplater::observe ──► templates() ──► TemplateSet
//!     │                                                                      │ match_template
//!     └──► JSON body / query ──► classify_json / classify_str ──► DataClasses (audit `data_classes`)
//!                                  (per field path: JSON types + classes, never values)
//!
//!  audit records ──► Inventory::observe ──► per (service, method, template) counts
//!  (SQLite, streamed)      │ route, else spec match, else PathTemplater
//!                          ▼
//!  owners, specs, ──► Inventory::snapshot ──► Snapshot ──► render_table / to_json / reconstruct
//!  retired routes         (flags, drift, risk)    │
//!                                                 └──► diff(old, new) ──► SnapshotDiff
//! ```
//!
//! # Data classification
//!
//! [`classify_str`] (a query parameter or any string), [`classify_value`] (a
//! JSON value in a named member) and [`classify_json`] (a whole document, per
//! field path such as `/user/email` or `/items/*/card`) answer which
//! [`DataClass`]es a value carries. Values are never stored or returned.
//!
//! **Precision comes before recall.** A value is classified only when the
//! whole of it (trimmed) has the shape of the class; free text is not
//! searched for embedded values. Each string gets at most one class, the
//! first that applies in the order below. The field name is a hint: it
//! enables some classes and disables others. Names are compared by their
//! words (`dateOfBirth`, `date_of_birth` and `Date-Of-Birth` are the same),
//! and the member holding an object names it (`name` inside `customers` is a
//! person's name).
//!
//! | class | category | rule |
//! |---|---|---|
//! | `jwt` | secret | a JWS in compact form: three base64url parts, the header a JSON object with a non-empty string `alg`, the payload a JSON object, the signature non-empty unless `alg` is `none`; also after `Bearer ` |
//! | `secret` | secret | a known credential format as the whole value: AWS `AKIA`/`ASIA` + 16, GitHub `ghp_` `gho_` `ghu_` `ghs_` `ghr_` + 36 and `github_pat_`, Slack `xoxb-` `xoxp-` `xoxa-` `xoxs-`, Stripe `sk_live_` `sk_test_` `rk_live_` `rk_test_` `whsec_`, Google `AIza` + 35, GitLab `glpat-`, npm `npm_` + 36, PyPI `pypi-`, SendGrid `SG.`, OpenAI `sk-proj-`, Anthropic `sk-ant-`, a PEM private key (not a certificate or public key); or, in a field named like a secret (`api_key`, `client_secret`, `access_token`, `authorization`…; not pagination tokens), a value of 16+ printable characters with letters and digits and ≥ 3 bits of entropy per character; or, in a field named like a password (`password`, `passwd`, `passphrase`, `pwd`; not `password_hint`), 8+ characters of at least two kinds (lower, upper, digit, other) with ≥ 2.5 bits of entropy per character. Placeholders (`YOUR_API_KEY`, `${…}`, `<…>`, `xxxx`, `[REDACTED]`, AWS's `…EXAMPLE`) never are |
//! | `email` | pii | dot-atom local part (≤ 64), a domain of ≥ 2 labels whose last is alphabetic (or `xn--`) and not a file extension (`logo@2x.png`); `Name <addr>` too |
//! | `date_of_birth` | pii | only in a field named like a birth date (`dob`, `birth_date`, `birthdate`, `dateOfBirth`, `birthday`, `born`…): a valid date between 1900 and 2099 as `YYYY-MM-DD` (a time may follow), `YYYY/MM/DD`, `DD/MM/YYYY` or `MM/DD/YYYY` (also with `.` or `-`), `YYYYMMDD` (string or number), `17 May 1990`, `May 17, 1990`. Dates elsewhere are not personal |
//! | `iban` | pii | a registered country, that country's length, check digits, an alphanumeric BBAN (digits only where the country says so), ISO 13616 mod-97 remainder 1; compact or in groups of four; one case |
//! | `us_ssn` | pii | `AAA-GG-SSSS` (or with spaces) with area ≠ 000, 666, 900-999, group ≠ 00, serial ≠ 0000, not an advertising number; 9 bare digits (string or number) only in a field named `ssn`/`social_security_number` |
//! | `payment_card` | pci | 13-19 digits, bare or grouped with one separator (space or `-`, first group of 4), a known issuer prefix with one of its lengths (Visa, Mastercard incl. 2-series, Amex, Discover, JCB, Diners, UnionPay, Maestro, Mir), valid Luhn digit, not one repeated digit. Bare digits are refused in fields named like another number (`order_id`, `invoice_number`, `tracking_number`, `reference`, `ts`…); a JSON number only counts in a field named like a card (`card_number`, `pan`, `cc`) |
//! | `ipv4` | network | a dotted quad of decimal octets without leading zeros, optionally `:port`. **`1.2.3.4` is an address**, except in a field named like a version (`version`, `app_version`, `build`, `release`, `firmware`, `oid`…). `v1.2.3`, `1.2.3`, `10.0.0-beta`, five parts and CIDR blocks never are |
//! | `ipv6` | network | what `std` parses as an IPv6 address (compressed, IPv4-embedded), optionally `[…]:port` or `%zone`, containing a decimal digit (`cafe::babe` is not) |
//! | `phone` | pii | E.164 (`+`, country code not starting with 0, 8-15 digits, any grouping, `(0)` trunk allowed); North American `(NXX) NXX-XXXX`, `NXX-NXX-XXXX`, `NXX.NXX.XXXX`, `NXX NXX XXXX` (area code 2-9); national with a trunk `0` (`020 7946 0958`, `06 12 34 56 78`: 9-12 digits in ≥ 2 groups); an extension may follow. **Bare digits are not phones** — unless the field is named like a phone (`phone`, `mobile`, `msisdn`…) and the string has 10-15 digits; a JSON number never is |
//! | `person_name` | pii | by field name only: `first_name`, `last_name`, `given_name`, `family_name`, `middle_name`, `full_name`, `surname`, `fname`, `cardholder_name`, `customer_name`…, or `name` inside a person-like object (`user`, `customer`, `contact`, `employee`, `patient`, `member`, `author`, `recipient`, `billing_details`…); the value letters (any script), spaces, `'`, `-`, `.`, `,` only |
//! | `address` | pii | by field name only: `street`, `address_line1`, `address1`, `line1` inside an address object, `postal_code`/`postcode`/`zip` (3-10 characters with a digit, or a 3-5 digit number), `city`/`town` (a place name without digits), or a bare `address`/`home_address`/`shipping_address` holding a street with a number. `email_address`, `ip_address`, `remote_address`, wallet addresses are not |
//!
//! The category ([`Category`]: `pii`, `pci`, `secret`, `network`) is for
//! risk scoring. The set type [`DataClasses`] is a `Copy` bit set that
//! serializes as the audit record's `data_classes` array. Classifying a
//! string does not allocate; [`classify_json`] allocates one `String` per
//! distinct field path.
//!
//! Not done, on purpose: searching free text for embedded values, names and
//! addresses recognised from their values alone (there is no reliable
//! shape), quoted or internationalised e-mail local parts, weak passwords
//! (`hunter2`), dates of birth as Unix time, secrets in fields with neutral
//! names unless their format is known.
//!
//! The labelled corpus in `testdata/classify/corpus.jsonl` (written by
//! `make_corpus.py`) pins these rules: precision must be 1.0 and recall at
//! least 0.9 for every class.
//!
//! # Path templating
//!
//! [`PathTemplater`] learns route templates from request paths:
//! `/users/123/orders/9f1c0e2a-…` → `/users/{userId}/orders/{orderId}`, in
//! OpenAPI syntax, with a count (and per-method counts) of the requests each
//! template covers. [`TemplateSet::match_template`] finds the template of a
//! new path.
//!
//! **Segments.** A path is cut at `/` after the leading one; the query and
//! fragment are ignored, percent-escapes of unreserved characters decoded
//! (RFC 3986 §6.2.2). Each segment is one of:
//!
//! - *typed* ([`SegmentKind`]): an integer, a UUID, a `YYYY-MM-DD` date, a
//!   hex hash (≥ 16 hex digits with a digit and a letter), an e-mail address,
//!   an opaque token (≥ 16 characters of short runs of digits, capitals and
//!   lower case, such as `cus_NffrFeUfNV2Hib`). A typed segment is a
//!   parameter from its first sample;
//! - *reserved*: empty, without letters or digits, or one of
//!   [`RESERVED_WORDS`] (`me`, `self`, `search`, `export`, `new`, `count`,
//!   `batch`…). Always literal;
//! - *a word*: letters, no digits (`users`, `octocat`, `hello-world`);
//! - *shaped*: letters and digits (`AB-1234`, `v2`, `v1.2.3`), whose shape
//!   maps runs of capitals to `A`, of lower case to `a`, of digits to `9`
//!   (`AB-1234` → `A-9`); all such segments of 16 bytes or more share one
//!   shape.
//!
//! **Folding.** Position by position, the concrete children of a parent
//! (the children of all values a parameter stands for taken together) fold
//! into at most one parameter:
//!
//! - every typed segment folds;
//! - a shape folds when [`shape_threshold`](TemplaterOptions::shape_threshold)
//!   (default **8**) distinct segments of that shape sit under the parent
//!   (`/products/{sku}`, `/releases/{tag}`);
//! - when [`word_threshold`](TemplaterOptions::word_threshold) (default
//!   **64**) distinct words sit under the parent, the position is
//!   *free-form* (`/repos/{owner}/{repo}`) and every non-reserved segment
//!   folds. The threshold is high because route names are words too: an API
//!   with 64 or more sibling routes under one parent, all seen in traffic,
//!   would be folded — give such a service a spec;
//! - everything else stays literal: `/users/me` and `/users/export` beside
//!   `/users/{userId}`, fewer than 64 resource names under `/v1`.
//!
//! So distinct literal routes are never merged below the thresholds, and
//! two parameters never share a position (which OpenAPI forbids).
//!
//! **Names.** A parameter is named after the literal segment before it,
//! singular and in lower camel case, plus `Id`: `users` → `userId`,
//! `categories` → `categoryId`, `api-keys` → `apiKeyId`. When the previous
//! segment is a parameter, has digits, or there is none, the name is
//! `param<N>`, N counting the template's parameters from 1
//! (`/repos/{repoId}/{param2}`). A name taken earlier in the template gets
//! `2`, `3`, … appended.
//!
//! **Guarantees.** The templates depend only on the multiset of observed
//! paths, never on their order. Observing more paths of shapes already
//! templated (new ids of the same kinds, repeats) never changes the
//! templates, only their counts: [`TemplateSet::match_template`] returns
//! `Some` exactly for such paths, and `None` for a new route or a new kind
//! of value. Memory grows with the number of path shapes, not requests:
//! typed values are stored by kind, and values past a threshold share one
//! node; [`max_nodes`](TemplaterOptions::max_nodes) bounds it (past it, new
//! shapes are refused with [`ObserveError::Full`], which makes the result
//! depend on order from then on).
//!
//! ```
//! use palisade_inventory::{classify_json, DataClass, PathTemplater};
//! use serde_json::json;
//!
//! let mut templater = PathTemplater::new();
//! templater.observe(Some("POST"), "/users/42/orders").unwrap();
//! templater.observe(Some("GET"), "/users/me").unwrap();
//! let templates = templater.templates();
//! assert_eq!(templates.match_template("/users/7/orders").unwrap().as_str(), "/users/{userId}/orders");
//!
//! let body = json!({"card": "4111 1111 1111 1111", "email": "ada@example.com"});
//! let profile = classify_json(&body);
//! assert!(profile.classes().contains(DataClass::PaymentCard));
//! assert_eq!(
//!     serde_json::to_string(&profile.classes()).unwrap(),
//!     r#"["email","payment_card"]"#
//! );
//! ```

//!
//! # The inventory
//!
//! [`Inventory`] is built incrementally: [`observe`](Inventory::observe) one
//! [`AuditRecord`](palisade_audit::AuditRecord) at a time (nothing per record
//! is kept, so a log of millions streams through in constant memory, and the
//! control plane can keep one `Inventory` current), then take a [`Snapshot`]
//! whenever one is wanted. [`Inventory::read_sqlite`] streams a SQLite audit
//! database into it. What it knows besides traffic comes in
//! [`InventoryInputs`]: per service an owner, a spec and retired routes, and
//! the `since` bound of the window.
//!
//! **Which records count.** Inbound records (the callee's sidecar) that
//! reached routing: with a method and a path, at or after `since`. Outbound
//! records, refusals in the TLS handshake and older records are only counted
//! in [`RecordCounts`]. Refused calls count (toward `denied` and the denied
//! ratio).
//!
//! **The endpoint of a record** is (service, method, template), the template
//! being, in order:
//!
//! 1. the record's `route`, when the sidecar matched its spec;
//! 2. the template of the service's spec (when the inventory is given one)
//!    that matches the path, also when the method is not in it (a shadow
//!    method on a documented path);
//! 3. otherwise the [path templater](#path-templating) over the service's
//!    other paths. A learned template with the shape of a known route (the
//!    spec's, or one the sidecar named) takes that route's name, so
//!    `/users/{userId}` does not stand beside `/users/{id}`.
//!
//! Templates are only known once enough paths are seen; until then paths are
//! counted under a *pending key* (typed segments such as integers and UUIDs
//! already folded, which never unfold), and every
//! [`compact_after`](InventoryOptions::compact_after) (20 000) distinct keys
//! of a service the keys that fall under one learned template are merged.
//! Templates only get coarser as paths arrive, so merging early never changes
//! the result (a test pins this).
//!
//! **Per endpoint**: first and last call, calls, denied calls, callers with
//! their calls, calls per status, the query parameters and JSON request and
//! response fields seen (from the records' `shape`: types, data classes, and
//! in how many complete samples each appeared), data classes, owner, flags,
//! zombie details, drift and risk.
//!
//! ## Flags
//!
//! | flag | raised when |
//! |---|---|
//! | `shadow` | called, and the service has a spec that lacks the operation (path or method) |
//! | `zombie` | called, and the operation is `deprecated` in the spec or its (method, route) is retired in the configuration (method `*` retires every method; parameter names do not matter). [`Zombie::answered_2xx`] counts allowed calls the application answered with 2xx: the endpoint still works |
//! | `unused` | in the spec, and no call in the window |
//! | `orphan` | the service has no owner in the inputs |
//! | `drift` | in the spec, called, and the calls used what the spec does not declare: a query parameter (`name[...]` counts as `name`; exploded `form` objects declare their properties), a request body field, a response body field of the response declared for that status (code, then `NXX`, then `default`), or a status the application answered (refusals are the sidecar's answers and are not compared) |
//!
//! A spec's declarations are read with `$ref`s resolved in `components`;
//! `allOf`/`anyOf`/`oneOf` declare the union of their branches; a schema that
//! allows any member (`additionalProperties`, `patternProperties`, a bare
//! `type: object`, `{}`, a recursive `$ref`) declares everything below it.
//!
//! ## Risk score
//!
//! The sum of these points, capped at 100; each is listed as a
//! [`RiskReason`] so a reviewer can check it against the endpoint's data:
//!
//! | what | points |
//! |---|---|
//! | data classes of category `secret` seen (`jwt`, `secret`) | [`SECRET_POINTS`] = 30 |
//! | `pci` (`payment_card`) | [`PCI_POINTS`] = 25 |
//! | `pii` (e-mail, names, addresses, phone, date of birth, IBAN, SSN) | [`PII_POINTS`] = 15 |
//! | `network` (IP addresses) | [`NETWORK_POINTS`] = 5 |
//! | a method that changes state (not GET, HEAD, OPTIONS, TRACE) | [`WRITE_POINTS`] = 10 |
//! | distinct callers: 2-4 / 5-9 / 10 or more | [`caller_points`]: 5 / 10 / 15 |
//! | shadow | [`SHADOW_POINTS`] = 20 |
//! | zombie | [`ZOMBIE_POINTS`] = 15, and [`ZOMBIE_2XX_POINTS`] = 10 more when it still answers 2xx |
//! | denied calls: at least 10 % / at least 50 % of calls | [`denied_points`]: 10 / 20 |
//!
//! [`RiskLevel`]: `low` 0-24, `medium` 25-49, `high` 50-74, `critical` 75-100.
//!
//! ## Snapshots and diffs
//!
//! A [`Snapshot`] serialises as JSON ([`Snapshot::to_json`]) with
//! `"format": 1` ([`SNAPSHOT_FORMAT`]); [`Snapshot::from_json`] refuses other
//! versions. Lists have a fixed order (services by name, endpoints by template
//! then method, callers and fields by name), so equal inventories give equal
//! bytes. [`diff`] compares two snapshots by (service, template, method):
//! endpoints that appeared or disappeared, and for the others what changed
//! among `called`, `source`, `owner`, `risk` (values) and `flags`, `callers`,
//! `data_classes`, `query`, `request`, `response`, `statuses`, `drift` (sets).
//! [`render_table`] and [`render_diff`] are the terminal renderings.
//!
//! ## Reconstructed OpenAPI
//!
//! [`reconstruct`] writes one OpenAPI 3.1 document per service with called
//! endpoints: its paths and methods (methods OpenAPI has no field for as
//! `x-palisade-method-<METHOD>`), path parameters (typed from what the
//! templater saw: `integer`, `uuid`, `date`, `email` formats), query
//! parameters, JSON request and response schemas inferred from the field paths
//! (types, nested objects, array items; `required`: the members present in
//! every complete sample in which their parent was), one response per observed
//! status, and `x-palisade-calls`, `-denied`, `-first-seen`, `-last-seen`,
//! `-callers`, `-data-classes` (also on each field), `-flags`, `-drift` and
//! `-risk`. The documents load back with `palisade_openapi::ApiSpec`.
//!
//! ```
//! use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
//! use palisade_inventory::{diff, Flag, Inventory, InventoryInputs, InventoryOptions, ServiceInputs};
//! use time::macros::datetime;
//!
//! let call = |path: &str, status| AuditRecord {
//!     ts: datetime!(2026-05-01 12:00 UTC),
//!     request_id: "r1".into(),
//!     caller: Some("spiffe://example.org/ns/prod/sa/orders".into()),
//!     auth: AuthMethod::Mtls,
//!     service: "billing".into(),
//!     method: Some("DELETE".into()),
//!     path: Some(path.into()),
//!     route: None,
//!     decision: Decision::Allow,
//!     code: None,
//!     policies: vec![],
//!     status: Some(status),
//!     latency_us: 700,
//!     bytes_in: 0,
//!     bytes_out: 0,
//!     data_classes: vec![],
//!     peer: None,
//!     direction: Direction::Inbound,
//!     detail: None,
//!     findings: vec![],
//!     ratelimit_degraded: false,
//!     shape: None,
//! };
//! let mut inputs = InventoryInputs::default();
//! inputs.services.insert(
//!     "billing".into(),
//!     ServiceInputs { owner: Some("team-billing".into()), ..ServiceInputs::default() },
//! );
//! let before = Inventory::new(inputs.clone(), InventoryOptions::default())
//!     .snapshot(datetime!(2026-05-01 13:00 UTC));
//! let mut inventory = Inventory::new(inputs, InventoryOptions::default());
//! inventory.observe(&call("/invoices/7", 204));
//! let after = inventory.snapshot(datetime!(2026-05-01 13:00 UTC));
//!
//! let endpoint = after.endpoint("billing", "DELETE", "/invoices/{invoiceId}").unwrap();
//! assert!(endpoint.flags.is_empty());
//! assert_eq!(endpoint.risk.score, 10);
//! assert_eq!(endpoint.risk.reasons[0].reason, "changes state (DELETE)");
//! assert_eq!(diff(&before, &after).appeared.len(), 1);
//! ```

mod classify;
mod diff;
mod error;
mod inventory;
mod reconstruct;
mod render;
mod risk;
mod snapshot;
mod template;

pub use classify::{
    classify_json, classify_str, classify_value, Category, DataClass, DataClasses, DataClassesIter,
    FieldProfile, JsonProfile, JsonType, JsonTypes, MAX_DEPTH,
};
pub use diff::{diff, Change, EndpointChange, EndpointRef, SnapshotDiff};
pub use error::{
    InventoryError, ObserveError, OptionsError, SnapshotError, UnknownCategory, UnknownDataClass,
};
pub use inventory::{
    Inventory, InventoryInputs, InventoryOptions, RetiredRoute, ServiceInputs, SpecInput,
    DEFAULT_COMPACT_AFTER,
};
pub use reconstruct::{reconstruct, ReconstructedSpec, OPENAPI_VERSION};
pub use render::{render_diff, render_table};
pub use risk::{
    assess, caller_points, denied_points, is_write, NETWORK_POINTS, PCI_POINTS, PII_POINTS,
    SECRET_POINTS, SHADOW_POINTS, WRITE_POINTS, ZOMBIE_2XX_POINTS, ZOMBIE_POINTS,
};
pub use snapshot::{
    BodySnapshot, CallerCount, Drift, DriftLocation, EndpointSnapshot, EndpointSource,
    FieldSnapshot, Flag, PathParam, RecordCounts, ResponseSnapshot, Risk, RiskLevel, RiskReason,
    ServiceSnapshot, Snapshot, Zombie, SNAPSHOT_FORMAT,
};
pub use template::{
    Accepts, Param, PathTemplater, SegmentKind, Template, TemplateSegment, TemplateSet,
    TemplaterOptions, DEFAULT_MAX_NODES, DEFAULT_MAX_SEGMENTS, DEFAULT_SHAPE_THRESHOLD,
    DEFAULT_WORD_THRESHOLD, RESERVED_WORDS,
};
