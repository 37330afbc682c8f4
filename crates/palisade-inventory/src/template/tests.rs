use super::segment::{class, normalize, shape, split, Class};
use super::*;

fn paths(set: &TemplateSet) -> Vec<&str> {
    set.iter().map(Template::as_str).collect()
}

fn templater(word_threshold: usize, shape_threshold: usize) -> PathTemplater {
    let options = TemplaterOptions {
        word_threshold,
        shape_threshold,
        ..TemplaterOptions::default()
    };
    PathTemplater::with_options(options).unwrap()
}

#[test]
fn segment_kinds() {
    let kind = SegmentKind::of;
    assert_eq!(kind("42"), Some(SegmentKind::Integer));
    assert_eq!(kind("20240315"), Some(SegmentKind::Integer));
    assert_eq!(
        kind("0b7e1a52-3f0c-4d0e-9c64-2f1d8a7b6c5e"),
        Some(SegmentKind::Uuid)
    );
    assert_eq!(
        kind("0B7E1A52-3F0C-4D0E-9C64-2F1D8A7B6C5E"),
        Some(SegmentKind::Uuid)
    );
    assert_eq!(
        kind("0B7E1A52-3f0c-4D0E-9C64-2F1D8A7B6C5E"),
        Some(SegmentKind::Token),
        "mixed case: not a UUID, still opaque"
    );
    assert_eq!(kind("2024-03-15"), Some(SegmentKind::Date));
    assert_eq!(kind("2024-02-30"), None);
    assert_eq!(
        kind("9f86d081884c7d659a2feaa0c55ad015"),
        Some(SegmentKind::HexHash)
    );
    assert_eq!(kind("deadbeefcafebabe"), None, "no digit");
    assert_eq!(kind("9f86d081884c7d6"), None, "15 hex digits");
    assert_eq!(kind("ada@example.com"), Some(SegmentKind::Email));
    assert_eq!(kind("ada%40example.com"), Some(SegmentKind::Email));
    assert_eq!(kind("cus_NffrFeUfNV2Hib"), Some(SegmentKind::Token));
    assert_eq!(
        kind("pi_3MtwBwLkdIwHu7ix28a3tqPa"),
        Some(SegmentKind::Token)
    );
    assert_eq!(kind("v2AccountSettings"), None, "camel-case words");
    assert_eq!(kind("getUser2FactorAuthCode"), None, "camel-case words");
    assert_eq!(kind("k3j4h5g6f7d8s9a0"), Some(SegmentKind::Token));
    assert_eq!(kind("oauth2-authorization-callback"), None);
    assert_eq!(kind("users"), None);
    assert_eq!(kind(""), None);
    assert_eq!(SegmentKind::HexHash.to_string(), "hex_hash");
}

#[test]
fn segment_classes_and_shapes() {
    assert_eq!(class(""), Class::Reserved);
    assert_eq!(class(".."), Class::Reserved);
    assert_eq!(class("me"), Class::Reserved);
    assert_eq!(class("Search"), Class::Reserved);
    assert_eq!(class("octocat"), Class::Word);
    assert_eq!(class("hello-world"), Class::Word);
    assert!(matches!(class("AB-1234"), Class::Shaped(s) if s.as_str() == "A-9"));
    assert_eq!(shape("v1.2.3").as_str(), "a9.9.9");
    assert_eq!(shape("INV-2024-0042").as_str(), "A-9-9");
    assert_eq!(shape("réf-2024").as_str(), "aéa-9");
    assert_eq!(shape("report-2024-03-final.pdf").as_str(), "long");
    assert_eq!(shape("15-byte-seg-123").as_str(), "9-a-a-9");
    assert_eq!(class("42"), Class::Typed(SegmentKind::Integer));
}

#[test]
fn normalisation_and_splitting() {
    assert_eq!(normalize("%61da"), "ada");
    assert_eq!(normalize("a%2fb"), "a%2Fb");
    assert_eq!(normalize("100%"), "100%");
    assert_eq!(normalize("plain"), "plain");
    let segs = split("/a/%62/?q=1#f", 32).unwrap();
    assert_eq!(segs, ["a", "b", ""]);
    assert_eq!(split("/", 32).unwrap(), [""]);
    assert_eq!(split("users", 32), Err(ObserveError::NotAbsolute));
    assert_eq!(
        split("/a/b/c", 2),
        Err(ObserveError::TooManySegments { count: 3, max: 2 })
    );
    assert_eq!(split("/a/{id}", 32), Err(ObserveError::Brace { index: 1 }));
    let long = format!("/{}", "a".repeat(segment::MAX_PATH_BYTES));
    assert!(matches!(
        split(&long, 32),
        Err(ObserveError::TooLong { .. })
    ));
}

#[test]
fn typed_values_are_parameters_from_one_sample() {
    let mut t = PathTemplater::new();
    t.observe(Some("GET"), "/users/42").unwrap();
    t.observe(Some("GET"), "/files/9f86d081884c7d659a2feaa0c55ad015")
        .unwrap();
    t.observe(None, "/reports/2024-03-15").unwrap();
    let set = t.templates();
    assert_eq!(
        paths(&set),
        ["/files/{fileId}", "/reports/{reportId}", "/users/{userId}"]
    );
    let kinds: Vec<_> = set
        .iter()
        .flat_map(|t| {
            t.params()
                .flat_map(|p| p.accepts().kinds())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            SegmentKind::HexHash,
            SegmentKind::Date,
            SegmentKind::Integer
        ]
    );
}

#[test]
fn literal_words_stay_literal_below_the_word_threshold() {
    let mut t = templater(10, 8);
    let resources = [
        "users",
        "orders",
        "invoices",
        "products",
        "carts",
        "payments",
        "refunds",
        "shipments",
        "coupons",
    ];
    for r in resources {
        t.observe(Some("GET"), &format!("/v1/{r}")).unwrap();
        t.observe(Some("GET"), &format!("/v1/{r}/17")).unwrap();
    }
    let set = t.templates();
    assert_eq!(set.len(), 2 * resources.len());
    assert!(set.iter().all(|t| !t.as_str().starts_with("/v1/{")));
    // The tenth distinct word makes the position free-form.
    t.observe(Some("GET"), "/v1/customers").unwrap();
    let set = t.templates();
    assert_eq!(paths(&set), ["/v1/{param1}", "/v1/{param1}/{param2}"]);
}

#[test]
fn reserved_words_stay_literal_next_to_free_form_values() {
    let mut t = templater(4, 8);
    for name in ["ada", "grace", "alan", "edsger", "barbara"] {
        t.observe(Some("GET"), &format!("/users/{name}")).unwrap();
    }
    t.observe(Some("GET"), "/users/me").unwrap();
    t.observe(Some("GET"), "/users/search").unwrap();
    let set = t.templates();
    assert_eq!(
        paths(&set),
        ["/users/me", "/users/search", "/users/{userId}"]
    );
    let free = set.match_template("/users/linus").unwrap();
    assert_eq!(free.as_str(), "/users/{userId}");
    assert!(free.params().all(|p| p.accepts().is_free_form()));
    assert!(
        set.match_template("/users/export").is_none(),
        "reserved, never a value"
    );
    assert_eq!(
        set.match_template("/users/me").unwrap().as_str(),
        "/users/me"
    );
}

#[test]
fn values_of_one_shape_fold_at_the_shape_threshold() {
    let mut t = templater(64, 4);
    for sku in ["AB-1234", "CD-2345", "EF-3456"] {
        t.observe(Some("GET"), &format!("/products/{sku}")).unwrap();
    }
    t.observe(Some("GET"), "/products/featured").unwrap();
    assert_eq!(t.templates().len(), 4, "three SKUs are still literals");
    t.observe(Some("GET"), "/products/GH-4567").unwrap();
    let set = t.templates();
    assert_eq!(paths(&set), ["/products/featured", "/products/{productId}"]);
    let param = set.iter().nth(1).unwrap().params().next().unwrap();
    assert_eq!(param.accepts().shapes().collect::<Vec<_>>(), ["A-9"]);
    assert!(param.accepts().accepts("ZZ-0001"));
    assert!(!param.accepts().accepts("Z1"), "another shape");
    assert!(!param.accepts().accepts("42"), "another kind");
    assert_eq!(set.iter().nth(1).unwrap().count(), 4);
}

#[test]
fn every_position_has_at_most_one_parameter() {
    let mut t = PathTemplater::new();
    t.observe(None, "/items/42").unwrap();
    t.observe(None, "/items/0b7e1a52-3f0c-4d0e-9c64-2f1d8a7b6c5e")
        .unwrap();
    let set = t.templates();
    assert_eq!(paths(&set), ["/items/{itemId}"]);
    let kinds: Vec<_> = set
        .iter()
        .next()
        .unwrap()
        .params()
        .next()
        .unwrap()
        .accepts()
        .kinds()
        .collect();
    assert_eq!(kinds, [SegmentKind::Integer, SegmentKind::Uuid]);
}

#[test]
fn parameter_names_are_unique_within_a_template() {
    let mut t = PathTemplater::new();
    t.observe(None, "/users/1/users/2").unwrap();
    t.observe(None, "/42/7").unwrap();
    assert_eq!(
        paths(&t.templates()),
        ["/users/{userId}/users/{userId2}", "/{param1}/{param2}"]
    );
}

#[test]
fn methods_and_counts_are_per_template() {
    let mut t = PathTemplater::new();
    t.observe(Some("GET"), "/orders/1").unwrap();
    t.observe(Some("GET"), "/orders/2?expand=items").unwrap();
    t.observe(Some("DELETE"), "/orders/3").unwrap();
    t.observe(None, "/orders/4").unwrap();
    t.observe(Some("GET"), "/").unwrap();
    let set = t.templates();
    assert_eq!(paths(&set), ["/", "/orders/{orderId}"]);
    let orders = set.match_template("/orders/99").unwrap();
    assert_eq!(orders.count(), 4);
    assert_eq!(
        orders.methods().collect::<Vec<_>>(),
        [("DELETE", 1), ("GET", 2)]
    );
    assert_eq!(t.observations(), 5);
    assert_eq!(set.match_template("/").unwrap().count(), 1);
    assert!(
        set.match_template("/orders").is_none(),
        "never observed on its own"
    );
    assert!(set.match_template("orders/1").is_none());
    assert!(set.match_template("/orders/{x}").is_none());
}

#[test]
fn bad_input_is_refused_without_being_recorded() {
    let mut t = PathTemplater::new();
    assert_eq!(
        t.observe(Some("GE T"), "/a"),
        Err(ObserveError::InvalidMethod)
    );
    assert_eq!(t.observe(Some(""), "/a"), Err(ObserveError::InvalidMethod));
    assert_eq!(
        t.observe(None, "http://host/a"),
        Err(ObserveError::NotAbsolute)
    );
    assert_eq!(t.observations(), 0);
    assert!(t.templates().is_empty());
    assert!(!ObserveError::Brace { index: 0 }.to_string().contains('/'));
}

#[test]
fn options_are_validated() {
    let with = |f: fn(&mut TemplaterOptions)| {
        let mut o = TemplaterOptions::default();
        f(&mut o);
        PathTemplater::with_options(o).map(|_| ())
    };
    assert_eq!(
        with(|o| o.word_threshold = 1),
        Err(OptionsError::WordThreshold(1))
    );
    assert_eq!(
        with(|o| o.shape_threshold = 0),
        Err(OptionsError::ShapeThreshold(0))
    );
    assert_eq!(with(|o| o.max_segments = 0), Err(OptionsError::MaxSegments));
    assert_eq!(with(|o| o.max_nodes = 0), Err(OptionsError::MaxNodes));
    assert_eq!(with(|_| {}), Ok(()));
    assert_eq!(
        PathTemplater::default().options(),
        &TemplaterOptions::default()
    );
}

#[test]
fn a_full_templater_still_counts_known_shapes() {
    let options = TemplaterOptions {
        max_nodes: 8,
        ..TemplaterOptions::default()
    };
    let mut t = PathTemplater::with_options(options).unwrap();
    t.observe(None, "/a/1").unwrap();
    t.observe(None, "/b/2").unwrap();
    t.observe(None, "/c/3").unwrap();
    assert_eq!(t.observe(None, "/d/4"), Err(ObserveError::Full { max: 8 }));
    t.observe(None, "/a/99").unwrap();
    let set = t.templates();
    assert_eq!(paths(&set), ["/a/{aId}", "/b/{bId}", "/c/{cId}"]);
    assert_eq!(set.match_template("/a/5").unwrap().count(), 2);
}

#[test]
fn the_trie_does_not_grow_with_ids() {
    let mut t = PathTemplater::new();
    for i in 0..10_000u32 {
        t.observe(Some("GET"), &format!("/users/{i}/orders/{}", i * 7))
            .unwrap();
    }
    assert_eq!(t.nodes, 5, "root, users, {{id}}, orders, {{id}}");
    let mut t = templater(16, 8);
    for i in 0..10_000u32 {
        let name: String = format!("{i:x}")
            .chars()
            .map(|c| char::from(b'g' + c.to_digit(16).unwrap() as u8))
            .collect();
        t.observe(Some("GET"), &format!("/u/{name}")).unwrap();
    }
    assert!(
        t.nodes < 40,
        "{} nodes: words past the threshold share one node",
        t.nodes
    );
    assert_eq!(paths(&t.templates()), ["/u/{uId}"]);
}
