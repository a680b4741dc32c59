//! API-key check latency: parse the name, HMAC the key, constant-time compare (the per-request
//! work besides the O(1) store lookup). Aim: < 10 µs.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use cullis_proxy::api_key::{self, ApiKeyHasher};

fn api_key_check(c: &mut Criterion) {
    let hasher = ApiKeyHasher::new(ApiKeyHasher::generate_key());
    let key = api_key::generate("buyer");
    let stored = hasher.hash(&key);
    c.bench_function("api_key_check", |b| {
        b.iter(|| {
            let name = api_key::name_of(black_box(&key)).expect("well-formed");
            assert!(hasher.verify(black_box(&key), black_box(&stored)));
            name.len()
        })
    });
    let wrong = api_key::generate("buyer");
    c.bench_function("api_key_check_wrong_key", |b| {
        b.iter(|| hasher.verify(black_box(&wrong), black_box(&stored)))
    });
}

criterion_group!(benches, api_key_check);
criterion_main!(benches);
