//! Hot-path crypto of `cullis-shared`, per core: `cargo bench -p cullis-shared`.
//! Criterion reports `thrpt` in elements/s = operations per second. The measured table and the
//! aims it is compared with live in `shared/README.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cullis_shared::envelope;
use cullis_shared::jose::access_token::{AccessTokenClaims, TokenSigner};
use cullis_shared::jose::dpop::{self, DpopKey, Expectations, IatWindow, ServerNonces};
use cullis_shared::keys::{KeyType, PrivateKey};
use cullis_shared::signature::{self, SignedFields};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const HTU: &str = "https://broker.example.com/v1/broker/sessions";

fn dpop_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpop_proof_verify");
    group.throughput(Throughput::Elements(1));
    for (name, key) in [
        ("ES256", DpopKey::generate().unwrap()),
        (
            "PS256",
            DpopKey::new(PrivateKey::generate(KeyType::Rsa2048).unwrap()).unwrap(),
        ),
    ] {
        let proof = key.proof("GET", HTU, Some("access-token"), Some("nonce-1"), now());
        let expect = Expectations {
            htm: "GET",
            htu: HTU,
            access_token: Some("access-token"),
            nonces: Some(ServerNonces {
                current: "nonce-1",
                previous: None,
            }),
            now: now() as f64,
            iat_window: IatWindow {
                max_age_secs: 3600.0,
                max_future_secs: 5.0,
            },
        };
        group.bench_function(name, |b| {
            b.iter(|| dpop::check(black_box(&proof), &expect).unwrap())
        });
    }
    group.finish();
}

fn access_token_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("access_token_verify");
    group.throughput(Throughput::Elements(1));
    for (name, key_type) in [("ES256", KeyType::EcP256), ("RS256", KeyType::Rsa2048)] {
        let signer = TokenSigner::new(PrivateKey::generate(key_type).unwrap()).unwrap();
        let claims = AccessTokenClaims {
            iss: "cullis-broker".into(),
            aud: "cullis".into(),
            sub: "spiffe://atn.local/acme/buyer".into(),
            agent_id: "acme::buyer".into(),
            org: "acme".into(),
            scope: vec!["order.read".into(), "order.write".into()],
            iat: now(),
            exp: now() + 3600,
            jti: uuid::Uuid::new_v4().to_string(),
            cnf: Some(
                json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        };
        let token = signer.sign(&claims).unwrap();
        let verifier = signer.verifier();
        group.bench_function(name, |b| {
            b.iter(|| verifier.verify(black_box(&token), now()).unwrap())
        });
    }
    group.finish();
}

fn fields() -> SignedFields<'static> {
    SignedFields {
        session_id: "0b7f6f1e-3c55-4a43-9d6e-6a4a3b1f2c11",
        sender_agent_id: "acme::buyer",
        nonce: "5d2f0c1a-9b8e-4d7c-a6f5-e4d3c2b1a090",
        timestamp: 1_700_000_000,
        client_seq: Some(42),
    }
}

fn kib_payload() -> Value {
    json!({"type": "purchase_order", "lines": (0..12).map(|i| json!({"sku": format!("SKU-{i:04}"), "qty": i, "price": 12.5, "note": "deliver to dock 4 before noon"})).collect::<Vec<_>>()})
}

fn message_signature_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("message_outer_signature_verify");
    group.throughput(Throughput::Elements(1));
    let blob = json!({"ciphertext": "A".repeat(1400), "iv": "AAECAwQFBgcICQoL", "encrypted_key": "B".repeat(344)});
    for (name, key_type) in [
        ("RSA-2048", KeyType::Rsa2048),
        ("P-256", KeyType::EcP256),
        ("P-384", KeyType::EcP384),
    ] {
        let key = PrivateKey::generate(key_type).unwrap();
        let sig = signature::sign(&key, &fields(), &blob).unwrap();
        let public = key.public_key().clone();
        group.bench_function(name, |b| {
            b.iter(|| signature::verify(&public, &fields(), black_box(&blob), &sig).unwrap())
        });
    }
    group.finish();
}

fn envelope_seal_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope_1KiB");
    group.throughput(Throughput::Elements(1));
    let payload = kib_payload();
    assert!((900..1300).contains(&payload.to_string().len()));
    let sender = PrivateKey::generate(KeyType::EcP256).unwrap();
    for (name, key_type) in [("RSA-2048", KeyType::Rsa2048), ("P-256", KeyType::EcP256)] {
        let recipient = PrivateKey::generate(key_type).unwrap();
        group.bench_with_input(
            BenchmarkId::new("seal", name),
            &recipient,
            |b, recipient| {
                b.iter(|| {
                    envelope::seal(
                        &sender,
                        recipient.public_key(),
                        &fields(),
                        black_box(&payload),
                    )
                    .unwrap()
                })
            },
        );
        let sealed = envelope::seal(&sender, recipient.public_key(), &fields(), &payload).unwrap();
        let f = fields();
        group.bench_with_input(
            BenchmarkId::new("open", name),
            &recipient,
            |b, recipient| {
                b.iter(|| {
                    envelope::open(
                        recipient,
                        f.session_id,
                        f.sender_agent_id,
                        f.client_seq,
                        black_box(&sealed.blob),
                        Some((f.nonce, f.timestamp)),
                        Some(sender.public_key()),
                    )
                    .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = dpop_verify, access_token_verify, message_signature_verify, envelope_seal_open
}
criterion_main!(benches);
