//! The cost of observing one exchange for the API inventory: a 1 KiB JSON request and a
//! 1 KiB JSON response (plus a query), split into what the request path pays (the sampling
//! decision and the tee of both bodies) and what the record stage pays (parse, classify,
//! build the shape, in a task spawned for it). A ~50 KiB response, near the default 64 KiB
//! limit, bounds the record stage.
//!
//! `cargo bench -p palisade-proxy --bench observe`

// A benchmark with a broken fixture has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::HeaderMap;
use palisade_config::InventorySettings;
use palisade_proxy::observe::{BodyTap, Observation, Observer};
use serde_json::json;

const QUERY: &str = "email=ada%40example.com&expand=items&page=2";

/// A ~1 KiB customer order carrying an e-mail, a phone, a card, an SSN, names, an address.
fn request() -> Bytes {
    let item = |sku: &str, quantity: u32, cents: u32| json!({"sku": sku, "quantity": quantity, "unit_price": {"amount_cents": cents, "currency": "EUR"}});
    let body = json!({
        "customer": {
            "full_name": "Ada Lovelace",
            "email": "ada.lovelace@example.com",
            "phone": "+44 20 7946 0958",
            "ssn": "536-22-8145",
            "address": {"line1": "12 St James's Square", "city": "London", "postcode": "SW1Y 4JH", "country": "GB"}
        },
        "payment": {"card_number": "4012 8888 8888 1881", "expiry": "12/27"},
        "items": [
            item("BOOK-0001", 1, 2450), item("PEN-0022", 3, 399), item("MUG-0007", 2, 1250),
            item("LAMP-0101", 1, 4999), item("CABLE-USB-C", 4, 899)
        ],
        "note": "Please leave the parcel with the neighbour at number 12 if nobody is home.",
        "gift_wrap": {"message": "Happy birthday!", "paper": "gold"},
        "metadata": {"campaign": "spring-sale", "channel": "web", "ab_bucket": "b"}
    });
    Bytes::from(body.to_string())
}

/// The app's ~1 KiB answer: the order with ids, states and timestamps.
fn response() -> Bytes {
    let line = |n: u32| json!({"line_id": n, "sku": format!("SKU-{n:04}"), "status": "reserved", "warehouse": "LHR-2"});
    let body = json!({
        "order_id": "0193a3f0-5c1e-7d35-b0a4-3f5c2b8e9d10",
        "status": "accepted",
        "created_at": "2024-03-15T14:30:00.123Z",
        "customer": {"id": 42, "email": "ada.lovelace@example.com", "full_name": "Ada Lovelace"},
        "lines": (1..=9).map(line).collect::<Vec<_>>(),
        "totals": {"net_cents": 17194, "vat_cents": 3439, "currency": "EUR"},
        "links": {"self": "https://orders.example.com/v1/orders/0193a3f0", "invoice": null}
    });
    Bytes::from(body.to_string())
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    headers
}

/// The request path's share: sample, tee the request body (two chunks) and the response.
fn on_the_request_path(
    observer: &Observer,
    request: &[Bytes; 2],
    response: &Bytes,
    headers: &HeaderMap,
) -> (Observation, BodyTap) {
    let mut observation = observer.sample(Some(QUERY)).unwrap();
    let mut tap = observation.tap_request(None).unwrap();
    for chunk in request {
        tap.push(chunk);
    }
    tap.end();
    let mut response_tap = observation.tap_response(headers).unwrap();
    response_tap.push(response);
    response_tap.end();
    (observation, response_tap)
}

fn bench(c: &mut Criterion) {
    let observer = Observer::new(&InventorySettings::default()).unwrap();
    let body = request();
    let answer = response();
    for (what, len) in [("request", body.len()), ("response", answer.len())] {
        assert!(
            (900..=1300).contains(&len),
            "the {what} is {len} bytes, not ~1 KiB"
        );
    }
    let half = body.len() / 2;
    let chunks = [body.slice(..half), body.slice(half..)];
    let headers = json_headers();
    let (observation, tap) = on_the_request_path(&observer, &chunks, &answer, &headers);
    let (shape, classes) = observation.finish(Some(tap));
    assert_eq!(
        classes.to_string(),
        "email, phone, us_ssn, payment_card, person_name, address"
    );
    assert!(!shape.truncated && shape.request.len() > 20 && shape.response.len() > 15);

    let mut group = c.benchmark_group("observe");
    group.bench_function("request_path_1k_request_1k_response", |b| {
        b.iter(|| {
            black_box(on_the_request_path(
                &observer,
                black_box(&chunks),
                black_box(&answer),
                &headers,
            ))
        })
    });
    group.bench_function("record_stage_1k_request_1k_response", |b| {
        b.iter_batched(
            || on_the_request_path(&observer, &chunks, &answer, &headers),
            |(observation, tap)| black_box(observation.finish(Some(tap))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("total_1k_request_1k_response", |b| {
        b.iter(|| {
            let (observation, tap) =
                on_the_request_path(&observer, black_box(&chunks), black_box(&answer), &headers);
            black_box(observation.finish(Some(tap)))
        })
    });
    // What the request path pays to hand the record stage to a task of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    group.bench_function("request_path_spawn_record_task", |b| {
        b.iter_batched(
            || on_the_request_path(&observer, &chunks, &answer, &headers),
            |pending| {
                runtime.spawn(async move { black_box(pending) });
            },
            BatchSize::SmallInput,
        )
    });
    // A stage (validate, inspect) already parsed the request: its JSON is reused.
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    group.bench_function("record_stage_1k_request_parsed_by_a_stage", |b| {
        b.iter_batched(
            || {
                let mut observation = observer.sample(Some(QUERY)).unwrap();
                observation.buffered_request(&body, Some(parsed.clone()), false);
                observation
            },
            |observation| black_box(observation.finish(None)),
            BatchSize::SmallInput,
        )
    });
    // The default limit: the most a record stage parses per body.
    let big = {
        let lines: Vec<_> = (0..400)
            .map(|n| json!({"line_id": n, "sku": format!("SKU-{n:04}"), "email": "ada@example.com", "status": "reserved", "warehouse": "LHR-2", "note": "left at the depot"}))
            .collect();
        Bytes::from(json!({"lines": lines}).to_string())
    };
    assert!(big.len() > 40_000 && big.len() <= 65_536, "{}", big.len());
    group.bench_function(format!("record_stage_{}_byte_response", big.len()), |b| {
        b.iter_batched(
            || {
                let mut observation = observer.sample(None).unwrap();
                let mut tap = observation.tap_response(&headers).unwrap();
                tap.push(&big);
                tap.end();
                (observation, tap)
            },
            |(observation, tap)| black_box(observation.finish(Some(tap))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
