//! `check_body` (pre-scan, parse, schema) of a realistic ~1 KiB order against
//! the compiled `POST /orders` schema of the orders fixture (OpenAPI 3.0,
//! `allOf`, `$ref`s, nullable fields, strict mode).

// A benchmark with a broken fixture has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_openapi::{ApiSpec, ValidationOptions};
use serde_json::json;

fn order() -> Vec<u8> {
    let item = |sku: &str, quantity: u32, cents: u32| {
        json!({
            "sku": sku,
            "quantity": quantity,
            "color": "blue",
            "unit_price": {"amount_cents": cents, "currency": "EUR"}
        })
    };
    json!({
        "note": "Please leave the parcel with the neighbour at number 12 if nobody is home.",
        "customer": {
            "email": "ada.lovelace@example.com",
            "name": "Ada Lovelace",
            "address": {
                "line1": "12 St James's Square",
                "line2": null,
                "city": "London",
                "postcode": "SW1Y 4JH",
                "country": "GB"
            }
        },
        "items": [
            item("BOOK-0001", 1, 2450),
            item("PEN-0022", 3, 399),
            item("MUG-0007", 2, 1250),
            item("LAMP-0101", 1, 4999),
            item("CABLE-USB-C", 4, 899)
        ],
        "shipping": {
            "line1": "Analytical Engine Works, Unit 4",
            "city": "Manchester",
            "postcode": "M1 1AE",
            "country": "GB"
        },
        "discount_code": "SPRING25",
        "priority": "express",
        "gift_wrap": {"message": "Happy birthday!", "paper": "gold"},
        "metadata": {"campaign": "spring-sale", "channel": "web", "ab_bucket": "b"}
    })
    .to_string()
    .into_bytes()
}

fn check_body(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders.yaml");
    let validator = ApiSpec::load(&path)
        .expect("fixture loads")
        .compile_validator(ValidationOptions::default())
        .expect("fixture compiles");
    let route = validator
        .check_route("POST", "/orders")
        .expect("POST /orders is a route");
    let body = order();
    validator
        .check_body(&route, &body)
        .expect("the benchmark body is valid");

    let mut group = c.benchmark_group("check_body");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("order_{}_bytes", body.len()), |b| {
        b.iter(|| validator.check_body(black_box(&route), black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, check_body);
criterion_main!(benches);
