//! The codec per GenerateAPIKey call: build the request envelope and read the
//! response. Prints time per call and heap allocations per call.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ecgridos::operations::{GenerateApiKey, Operation};
use ecgridos::wire::{read_response, read_response_in_full, write_request, Reply, SoapVersion};
use ecgridos::{ApiKey, SessionId, SessionRef, UserId};

#[path = "alloc_counter.rs"]
mod alloc_counter;

#[global_allocator]
static ALLOC: alloc_counter::Counting = alloc_counter::Counting;

const NS: &str = "https://os.ecgrid.io/";
const RESPONSE: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"#;

fn build(session: &SessionId) -> Vec<u8> {
    let op = GenerateApiKey {
        session_id: SessionRef::from(session),
        user_id: UserId::from(1002),
    };
    let mut body = Vec::with_capacity(512);
    if op.check().is_ok() {
        write_request(&mut body, SoapVersion::V11, NS, "GenerateAPIKey", |w| {
            op.write_params(w)
        });
    }
    body
}

fn read() -> ApiKey {
    match read_response::<ApiKey>(RESPONSE, NS, "GenerateAPIKey", 64) {
        Ok(Reply::Result(key)) => key,
        other => panic!("bench input must read: {other:?}"),
    }
}

/// The namespace-resolving reader, as every non-canonical response is read.
fn read_in_full() -> ApiKey {
    match read_response_in_full::<ApiKey>(RESPONSE, NS, "GenerateAPIKey", 64) {
        Ok(Reply::Result(key)) => key,
        other => panic!("bench input must read: {other:?}"),
    }
}

fn figures(label: &str, mut call: impl FnMut()) {
    const N: u64 = 200_000;
    let before = alloc_counter::allocations();
    let started = Instant::now();
    for _ in 0..N {
        call();
    }
    let elapsed = started.elapsed();
    let allocs = alloc_counter::allocations() - before;
    println!(
        "codec figures, {label}: {:.0} ns per call, {:.2} heap allocations per call",
        elapsed.as_nanos() as f64 / N as f64,
        allocs as f64 / N as f64
    );
}

fn per_call(c: &mut Criterion) {
    let session = SessionId::new("0f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0");
    let mut group = c.benchmark_group("codec");
    group.bench_function("build GenerateAPIKey", |b| {
        b.iter(|| black_box(build(black_box(&session))))
    });
    group.bench_function("read GenerateAPIKeyResponse", |b| {
        b.iter(|| black_box(read()))
    });
    group.bench_function("build + read", |b| {
        b.iter(|| {
            black_box(build(black_box(&session)));
            black_box(read())
        })
    });
    group.finish();

    // Allocations and a plain timing of the same loops, printed as figures.
    figures("build + read (canonical response)", || {
        black_box(build(black_box(&session)));
        black_box(read());
    });
    figures("build + full reader", || {
        black_box(build(black_box(&session)));
        black_box(read_in_full());
    });
}

criterion_group!(benches, per_call);
criterion_main!(benches);
