//! Reconstructing route lists from traffic.
//!
//! Each fixture is a small OpenAPI-like route list whose parameters say
//! what kind of value they take (`{orderId:uuid}`). The test generates
//! traffic from it with deterministic pseudo-random values, hides the list,
//! feeds the traffic to a `PathTemplater` with the default options, and
//! requires the exact same set of templates back. Parameter names are
//! compared after normalising every `{name}` to `{}`: names are derived from
//! the previous segment (see the crate docs), not guessed from intent, so
//! GitHub's `{owner}` comes back as `{repoId}`. One test checks the derived
//! names of the shop fixture exactly.
//!
//! Free-form parameters (`word`) need 64 distinct values per position (the
//! default `word_threshold`), shaped ones (`sku`, `invoice`, `semver`) 8 (the
//! default `shape_threshold`); the generators draw from pools larger than
//! that and the traffic volume is high enough to cover them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use palisade_inventory::{PathTemplater, SegmentKind, TemplateSet, RESERVED_WORDS};

/// Knuth's MMIX LCG; the high bits are good enough for test data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }
}

const HEX: &[u8] = b"0123456789abcdef";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "ba", "de", "fo", "gu", "ha", "jo", "pe", "so",
    "wu", "xa", "yo", "qui", "bri", "clo", "dra", "fle", "gro", "pla", "sti", "tru",
];

/// A value of `kind`; checked to have the segment kind (or none) the
/// templater is documented to give it, so a fixture cannot pass by luck.
fn value(kind: &str, rng: &mut Lcg) -> String {
    loop {
        let (v, expected) = match kind {
            "int" => (
                format!("{}", 1 + rng.below(5_000_000)),
                Some(SegmentKind::Integer),
            ),
            "uuid" => {
                let h = rng.chars(HEX, 32);
                (
                    format!(
                        "{}-{}-4{}-a{}-{}",
                        &h[..8],
                        &h[8..12],
                        &h[13..16],
                        &h[17..20],
                        &h[20..]
                    ),
                    Some(SegmentKind::Uuid),
                )
            }
            "date" => (
                format!(
                    "20{:02}-{:02}-{:02}",
                    10 + rng.below(16),
                    1 + rng.below(12),
                    1 + rng.below(28)
                ),
                Some(SegmentKind::Date),
            ),
            "sha256" => (rng.chars(HEX, 64), Some(SegmentKind::HexHash)),
            "sha1" => (rng.chars(HEX, 40), Some(SegmentKind::HexHash)),
            "hex32" => (rng.chars(HEX, 32), Some(SegmentKind::HexHash)),
            "token" => {
                let prefix = rng.pick(&["cus_", "cart_", "tok_"]);
                (
                    format!("{prefix}{}", rng.chars(BASE62, 20)),
                    Some(SegmentKind::Token),
                )
            }
            "email" => {
                let name = format!("{}{}", rng.pick(SYLLABLES), rng.pick(SYLLABLES));
                let domain = rng.pick(&["example.com", "example.org", "mail.example.net"]);
                (
                    format!("{name}.{}@{domain}", rng.pick(SYLLABLES)),
                    Some(SegmentKind::Email),
                )
            }
            "sku" => {
                let letters = rng.chars(b"ABCDEFGHJKLMNPRSTUVWXYZ", 2);
                (format!("{letters}-{:04}", rng.below(10_000)), None)
            }
            "invoice" => (
                format!("INV-{}-{:06}", 2020 + rng.below(6), rng.below(1_000_000)),
                None,
            ),
            "semver" => (
                format!("v{}.{}.{}", rng.below(4), rng.below(20), rng.below(30)),
                None,
            ),
            "word" => {
                let mut name: String = (0..2 + rng.below(2)).map(|_| rng.pick(SYLLABLES)).collect();
                match rng.below(6) {
                    0 => name = format!("{name}-{}", rng.pick(SYLLABLES)),
                    1 => name = format!("{name}{}", rng.below(100)),
                    2 => name = format!("{name}_{}{}", rng.pick(SYLLABLES), rng.pick(SYLLABLES)),
                    _ => {}
                }
                (name, None)
            }
            other => panic!("unknown fixture kind {other}"),
        };
        let reserved = RESERVED_WORDS.iter().any(|r| v.eq_ignore_ascii_case(r));
        if SegmentKind::of(&v) == expected && !reserved {
            return v;
        }
    }
}

/// A fixture route: method and template with `{name:kind}` parameters.
struct Route {
    method: &'static str,
    template: &'static str,
}

fn routes(spec: &'static str) -> Vec<Route> {
    spec.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (method, template) = l.split_once(' ').unwrap();
            Route { method, template }
        })
        .collect()
}

/// `/users/{userId:int}` → `/users/{}`.
fn normalised(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Values are drawn from per-parameter pools (so ids repeat, as in real
/// traffic); pools are shared by parameters of the same name.
struct Traffic {
    rng: Lcg,
    pools: BTreeMap<String, Vec<String>>,
}

impl Traffic {
    fn new(seed: u64) -> Traffic {
        Traffic {
            rng: Lcg(seed),
            pools: BTreeMap::new(),
        }
    }

    /// One concrete path of `route`.
    fn path(&mut self, route: &Route) -> String {
        let mut out = String::new();
        for segment in route.template.split('/').skip(1) {
            out.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => {
                    let (name, kind) = param.split_once(':').unwrap();
                    let pool = self.pools.entry(name.to_owned()).or_default();
                    // Pools grow to 300 values; after that, values repeat.
                    let fresh = pool.is_empty() || pool.len() < 300 && self.rng.below(3) > 0;
                    let v = if fresh {
                        let v = value(kind, &mut self.rng);
                        pool.push(v.clone());
                        v
                    } else {
                        pool[self.rng.below(pool.len() as u64) as usize].clone()
                    };
                    out.push_str(&v);
                }
                None => out.push_str(segment),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// `n` requests spread over the routes, each with its route's index.
    fn requests(&mut self, routes: &[Route], n: usize) -> Vec<(usize, String)> {
        (0..n)
            .map(|_| {
                let i = self.rng.below(routes.len() as u64) as usize;
                (i, self.path(&routes[i]))
            })
            .collect()
    }
}

fn learn(routes: &[Route], requests: &[(usize, String)]) -> TemplateSet {
    let mut templater = PathTemplater::new();
    for (i, path) in requests {
        templater.observe(Some(routes[*i].method), path).unwrap();
    }
    templater.templates()
}

/// Reconstructs `spec` from `n` requests and checks the exact template set,
/// the methods of each template, and that every request matches the
/// template of its own route.
fn reconstructs(spec: &'static str, seed: u64, n: usize) -> TemplateSet {
    let routes = routes(spec);
    let requests = Traffic::new(seed).requests(&routes, n);
    let set = learn(&routes, &requests);

    let expected: BTreeSet<String> = routes.iter().map(|r| normalised(r.template)).collect();
    let actual: BTreeSet<String> = set.iter().map(|t| normalised(t.as_str())).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing (first 20: {:?}), {} extra (first 20: {:?})",
        missing.len(),
        &missing[..missing.len().min(20)],
        extra.len(),
        &extra[..extra.len().min(20)],
    );

    let mut methods: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for r in &routes {
        methods
            .entry(normalised(r.template))
            .or_default()
            .insert(r.method);
    }
    for t in &set {
        let seen: BTreeSet<&str> = t.methods().map(|(m, _)| m).collect();
        assert_eq!(seen, methods[&normalised(t.as_str())], "{t}");
    }

    for (i, path) in &requests {
        let matched = set
            .match_template(path)
            .unwrap_or_else(|| panic!("{path} matches nothing"));
        assert_eq!(
            normalised(matched.as_str()),
            normalised(routes[*i].template),
            "{path}"
        );
    }
    let total: u64 = set.iter().map(|t| t.count()).sum();
    assert_eq!(total, n as u64);
    set
}

const SHOP: &str = "
    GET /users
    POST /users
    GET /users/me
    GET /users/{userId:int}
    PUT /users/{userId:int}
    GET /users/{userId:int}/orders
    GET /users/{userId:int}/orders/{orderId:uuid}
    GET /products
    GET /products/search
    GET /products/{sku:sku}
    GET /products/{sku:sku}/reviews
    GET /reports/{date:date}
    GET /files/{sha256:sha256}
    POST /carts/{cartId:token}/items
    GET /health
";

const PAYMENTS: &str = "
    POST /v1/payments
    GET /v1/payments/{paymentId:uuid}
    POST /v1/payments/{paymentId:uuid}/capture
    POST /v1/payments/{paymentId:uuid}/refunds
    GET /v1/payments/{paymentId:uuid}/refunds/{refundId:uuid}
    GET /v1/customers/{customerId:token}
    GET /v1/customers/{customerId:token}/payment-methods
    GET /v1/merchants/{merchantId:uuid}/balance
    GET /v1/merchants/{merchantId:uuid}/payouts/{payoutId:int}
    GET /v1/invoices/{invoiceNumber:invoice}
    GET /v1/exchange-rates/{day:date}
    POST /v1/webhooks/{webhookId:hex32}/test
    GET /v1/accounts/{account:email}
    GET /v1/accounts/{account:email}/statements/{month:date}
";

const GITHUB: &str = "
    GET /repos/{owner:word}/{repo:word}
    GET /repos/{owner:word}/{repo:word}/issues
    POST /repos/{owner:word}/{repo:word}/issues
    GET /repos/{owner:word}/{repo:word}/issues/{number:int}
    GET /repos/{owner:word}/{repo:word}/issues/{number:int}/comments
    GET /repos/{owner:word}/{repo:word}/pulls/{number:int}
    GET /repos/{owner:word}/{repo:word}/commits/{sha:sha1}
    GET /repos/{owner:word}/{repo:word}/releases/{tag:semver}
    GET /users/{username:word}
    GET /users/{username:word}/repos
    GET /orgs/{org:word}/members
    GET /search/repositories
    GET /user
    GET /rate_limit
";

#[test]
fn reconstructs_a_shop_api() {
    reconstructs(SHOP, 1, 3_000);
}

#[test]
fn reconstructs_a_payments_api() {
    reconstructs(PAYMENTS, 2, 3_000);
}

#[test]
fn reconstructs_a_github_like_api_with_free_form_owner_and_repo() {
    let set = reconstructs(GITHUB, 3, 12_000);
    let issue = set
        .match_template("/repos/some-owner/some-repo/issues/7")
        .unwrap();
    let params: Vec<_> = issue.params().collect();
    assert!(params[0].accepts().is_free_form() && params[1].accepts().is_free_form());
    assert_eq!(
        params[2].accepts().kinds().collect::<Vec<_>>(),
        [SegmentKind::Integer]
    );
}

#[test]
fn shop_parameter_names_follow_the_documented_rule() {
    let routes = routes(SHOP);
    let set = learn(&routes, &Traffic::new(1).requests(&routes, 3_000));
    let names: Vec<&str> = set.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "/carts/{cartId}/items",
            "/files/{fileId}",
            "/health",
            "/products",
            "/products/search",
            "/products/{productId}",
            "/products/{productId}/reviews",
            "/reports/{reportId}",
            "/users",
            "/users/me",
            "/users/{userId}",
            "/users/{userId}/orders",
            "/users/{userId}/orders/{orderId}",
        ]
    );
}

/// Fisher-Yates with the test LCG.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut rng = Lcg(seed);
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

#[test]
fn the_result_does_not_depend_on_the_order_of_observations() {
    for (spec, seed) in [(SHOP, 11), (PAYMENTS, 12), (GITHUB, 13)] {
        let routes = routes(spec);
        let requests = Traffic::new(seed).requests(&routes, 6_000);
        let reference: Vec<_> = learn(&routes, &requests).iter().cloned().collect();
        for shuffle in 0..3 {
            let again: Vec<_> = learn(&routes, &shuffled(&requests, 100 + shuffle))
                .iter()
                .cloned()
                .collect();
            assert_eq!(again, reference, "shuffle {shuffle}");
        }
        let mut reversed = requests.clone();
        reversed.reverse();
        let again: Vec<_> = learn(&routes, &reversed).iter().cloned().collect();
        assert_eq!(again, reference);
    }
}

#[test]
fn more_traffic_of_known_shapes_never_changes_the_templates() {
    for (spec, seed) in [(SHOP, 21), (PAYMENTS, 22), (GITHUB, 23)] {
        let routes = routes(spec);
        let mut traffic = Traffic::new(seed);
        let first = traffic.requests(&routes, 6_000);
        let mut templater = PathTemplater::new();
        for (i, path) in &first {
            templater.observe(Some(routes[*i].method), path).unwrap();
        }
        let before = templater.templates();
        // New ids of the same kinds, and repeats of old ones.
        let shape = |set: &TemplateSet| {
            set.iter()
                .map(|t| {
                    (
                        t.as_str().to_owned(),
                        t.params().cloned().collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let more = traffic.requests(&routes, 6_000);
        for (n, (i, path)) in more.iter().enumerate() {
            assert!(
                before.match_template(path).is_some(),
                "{path} has a known shape but matches nothing"
            );
            templater.observe(Some(routes[*i].method), path).unwrap();
            // Folding after every observation would be quadratic; every 500th is enough.
            if n % 500 == 0 {
                assert_eq!(
                    shape(&templater.templates()),
                    shape(&before),
                    "after {path}"
                );
            }
        }
        let after = templater.templates();
        assert_eq!(shape(&after), shape(&before));
        let total: u64 = after.iter().map(|t| t.count()).sum();
        assert_eq!(total, 12_000);
    }
}

#[test]
fn users_me_stays_literal_next_to_ids_and_next_to_free_form_names() {
    let mut templater = PathTemplater::new();
    let mut rng = Lcg(5);
    for _ in 0..500 {
        templater
            .observe(Some("GET"), &format!("/users/{}", value("int", &mut rng)))
            .unwrap();
        templater
            .observe(Some("GET"), &format!("/people/{}", value("word", &mut rng)))
            .unwrap();
    }
    for _ in 0..500 {
        templater.observe(Some("GET"), "/users/me").unwrap();
        templater.observe(Some("GET"), "/people/me").unwrap();
    }
    let set = templater.templates();
    let paths: Vec<&str> = set.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/people/me",
            "/people/{peopleId}",
            "/users/me",
            "/users/{userId}"
        ]
    );
    assert_eq!(set.match_template("/users/me").unwrap().count(), 500);
}

#[test]
fn distinct_literal_routes_are_never_merged() {
    // 40 resources under one parent, each with ids below it: well under the
    // word threshold, so each stays its own route however much traffic.
    const RESOURCES: &[&str] = &[
        "accounts",
        "addresses",
        "alerts",
        "audits",
        "balances",
        "batches",
        "branches",
        "budgets",
        "campaigns",
        "cards",
        "carts",
        "categories",
        "charges",
        "checks",
        "claims",
        "contracts",
        "coupons",
        "customers",
        "deliveries",
        "devices",
        "discounts",
        "disputes",
        "documents",
        "events",
        "files",
        "groups",
        "invoices",
        "items",
        "jobs",
        "ledgers",
        "mandates",
        "notes",
        "orders",
        "payouts",
        "plans",
        "prices",
        "products",
        "quotes",
        "refunds",
        "reviews",
    ];
    let mut templater = PathTemplater::new();
    let mut rng = Lcg(9);
    for _ in 0..20_000 {
        let resource = rng.pick(RESOURCES);
        let path = match rng.below(3) {
            0 => format!("/api/v2/{resource}"),
            1 => format!("/api/v2/{resource}/{}", value("int", &mut rng)),
            _ => format!("/api/v2/{resource}/{}/history", value("uuid", &mut rng)),
        };
        templater.observe(Some("GET"), &path).unwrap();
    }
    let set = templater.templates();
    assert_eq!(set.len(), 3 * RESOURCES.len());
    for resource in RESOURCES {
        assert!(set.match_template(&format!("/api/v2/{resource}")).is_some());
    }
    assert!(set.match_template("/api/v2/unknown-resource").is_none());
}
