//! The classifier on a realistic 1 KiB JSON body (an order with a customer,
//! an address, a card, line items and notes), and on single query values.
//!
//! `cargo bench -p palisade-inventory --bench classify`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_inventory::{classify_json, classify_str, classify_value, DataClass};

/// Every kind of value a 1 KiB business payload carries: ids, an e-mail, a
/// phone, names, an address, a card, dates, amounts, a URL, free text.
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
    "dob": "1984-07-21"
  },
  "shipping_address": {
    "line1": "Flat 3/2, 17 O'Connell Street",
    "city": "Dublin",
    "postcode": "D01 F5P2",
    "country": "IE"
  },
  "payment": {"card": "4111 1111 1111 1111", "expiry": "12/27", "amount": 371.49},
  "items": [
    {"sku": "FLAG-UJ-90150", "name": "Union Jack flag, 90 x 150 cm", "qty": 2, "unit_price": 12.5},
    {"sku": "MUG-WBB-01", "name": "Mug 'World's Best Boss'", "qty": 1, "unit_price": 9.99},
    {"sku": "TBL-DL-OAK", "name": "Drop-leaf table in solid oak", "qty": 1, "unit_price": 349.0}
  ],
  "notes": "Please leave the parcel at the back door; ring twice.",
  "client_ip": "203.0.113.195",
  "tracking_url": "https://track.example.com/parcels/JD014600003828?lang=en",
  "tags": ["gift", "priority", "fragile"]
}"#;

fn bench(c: &mut Criterion) {
    let body: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(
        (900..=1200).contains(&size),
        "the body is {size} bytes, not ~1 KiB"
    );
    let profile = classify_json(&body);
    assert_eq!(
        profile.classes().to_string(),
        "email, phone, payment_card, ipv4, date_of_birth, person_name, address"
    );

    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("classify_json_1k", |b| {
        b.iter(|| black_box(classify_json(black_box(&body))))
    });
    group.bench_function("classify_value_1k", |b| {
        b.iter(|| black_box(classify_value(None, black_box(&body))))
    });
    group.finish();

    let mut group = c.benchmark_group("classify");
    let query = [
        ("q", "red shoes size 42"),
        ("email", "ada@example.com"),
        ("page", "3"),
        ("since", "2024-03-15T14:30:00Z"),
        ("id", "550e8400-e29b-41d4-a716-446655440000"),
        (
            "token",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ", // palisade:allow (fake credential, test data)
        ),
    ];
    assert!(classify_str(Some("token"), query[5].1).contains(DataClass::Jwt));
    group.throughput(Throughput::Elements(query.len() as u64));
    group.bench_function("classify_str_query6", |b| {
        b.iter(|| {
            for (name, value) in &query {
                black_box(classify_str(Some(name), black_box(value)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
