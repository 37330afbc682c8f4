//! `inspect_json` on a realistic 1 KiB JSON body (an order with a customer,
//! an address, line items and free-text notes), plus the request target and
//! an attack body for comparison.
//!
//! `cargo bench -p palisade-inspect`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_inspect::{InspectOptions, Inspector};

/// The benchmark body: every kind of value a 1 KiB business payload carries
/// (identifiers, e-mail, dates, names with apostrophes, an address, product
/// names with SQL words, prose notes with punctuation, a URL, a SKU list).
const ORDER: &str = r#"{
  "order_id": "0193a3f0-5c1e-7d35-b0a4-3f5c2b8e9d10",
  "created_at": "2024-03-15T14:30:00.123+01:00",
  "status": "pending",
  "currency": "EUR",
  "customer": {
    "id": "550e8400-e29b-41d4-a716-446655440000",
    "name": "Siobhán O'Brien",
    "email": "siobhan.obrien+orders@example.ie",
    "phone": "+353 1 555 0142",
    "loyalty_tier": "gold"
  },
  "shipping_address": {
    "line1": "Flat 3/2, 17 O'Connell Street",
    "line2": "c/o Reception, Floor 2",
    "city": "Dublin",
    "postcode": "D01 F5P2",
    "country": "IE"
  },
  "items": [
    {"sku": "FLAG-UJ-90150", "name": "Union Jack flag, 90 x 150 cm", "qty": 2, "unit_price": 12.5},
    {"sku": "MUG-WBB-01", "name": "Mug 'World's Best Boss'", "qty": 1, "unit_price": 9.99},
    {"sku": "TBL-DL-OAK", "name": "Drop-leaf table in solid oak", "qty": 1, "unit_price": 349.0}
  ],
  "notes": "Please leave the parcel at the back door; ring twice. If nobody's home, try no. 19.",
  "gift_message": "Happy birthday, Dad! Don't eat all the chocolate at once :)",
  "coupon": "SPRING-20",
  "tracking_url": "https://track.example.com/parcels/JD014600003828?lang=en",
  "tags": ["gift", "priority", "fragile"],
  "consent": {"marketing": false, "terms_version": "2024-01"}
}"#;

fn bench(c: &mut Criterion) {
    let inspector = Inspector::new(InspectOptions::default());
    let body: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(
        (900..=1200).contains(&size),
        "the body is {size} bytes, not ~1 KiB"
    );
    assert_eq!(
        inspector.inspect_json(&body),
        None,
        "the benchmark body must be clean"
    );

    c.bench_function("inspect_json/order_1KiB", |b| {
        b.iter(|| inspector.inspect_json(black_box(&body)))
    });

    let mut attack = body.clone();
    attack["notes"] = serde_json::json!("x' UNION SELECT password FROM users--");
    c.bench_function("inspect_json/order_1KiB_with_sqli", |b| {
        b.iter(|| inspector.inspect_json(black_box(&attack)))
    });

    c.bench_function("inspect_target/typical", |b| {
        b.iter(|| {
            inspector.inspect_target(
                black_box("/api/v1/customers/550e8400-e29b-41d4-a716-446655440000/orders"),
                black_box(Some("status=pending&sort=-created_at&q=O%27Brien&page=2")),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
