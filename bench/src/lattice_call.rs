//! Cross-host call latency and throughput (docs/BENCHMARKS.md, "Calls across the lattice").
//!
//! One process, one private `nats-server -js` on loopback, two hosts with their own NATS
//! connections and runtimes. Component `relay` (host 1) calls `greeter` through its link:
//! - **in-process**: `greeter` runs on host 1 too (the local fast path, no NATS);
//! - **cross-host**: `greeter` runs only on host 2 (signed MessagePack frame over NATS);
//! - **raw NATS**: a plain request-reply with payloads of the same sizes, no components.
//!
//! Each figure is measured in the same run: sequential calls for p50/p99, then `CONCURRENCY`
//! callers for calls/s.
//!
//! Usage: `cargo run --release -p trellis-bench --bin lattice-call [CALLS] [SECONDS]`

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use trellis_host::lattice::{self, LatticeConfig, LatticeHandle};
use trellis_host::{Runtime, RuntimeConfig, TrustPolicy, TrustedIssuers};
use trellis_protocol::ctl::{Link, ScaleComponentCommand, subjects};
use trellis_protocol::nats::NatsConnect;
use wasmtime::component::Val;

const LATTICE: &str = "bench";
const CONCURRENCY: usize = 32;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);

    let nats = trellis_testing::nats::NatsServer::start()?;
    let signer = trellis_testing::Signer::new();
    let dir = tempfile::tempdir()?;
    let write = |name: &str, grants: &[&str]| -> anyhow::Result<String> {
        let wasm = trellis_testing::guest(name)?;
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, signer.sign(&wasm, name, grants)?)?;
        Ok(format!("file://{}", path.display()))
    };
    let greeter = write("greeter", &["wasi:config/store"])?;
    let relay = write("relay", &["trellis:test/greet"])?;

    let host1 = join(&nats.url(), &signer.public_key(), "one").await?;
    let host2 = join(&nats.url(), &signer.public_key(), "two").await?;
    let client = async_nats::connect(nats.url()).await?;
    let link = Link {
        source_id: "relay".into(),
        target: "greeter".into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "test".into(),
        interfaces: vec!["greet".into()],
        source_config: vec![],
        target_config: vec![],
    };
    control(
        &client,
        subjects::link_put(LATTICE),
        serde_json::to_vec(&link)?,
    )
    .await?;
    scale(&client, &host1, &relay, "relay", 1000).await?;
    scale(&client, &host2, &greeter, "greeter", 1000).await?;
    let greet = |name: &str| vec![Val::String(name.into())];
    wait_until_answers(&host1, greet("warm")).await?;

    println!("| path | p50 | p99 | calls/s ({CONCURRENCY} callers) |");
    println!("|---|---|---|---|");
    let host1 = Arc::new(host1);
    let cross = measure(calls, seconds, {
        let host1 = host1.clone();
        move |i| {
            let host1 = host1.clone();
            async move { relay_call(&host1, format!("caller {i}")).await }
        }
    })
    .await?;
    print_row(
        "cross-host: relay (host 1) -> greeter (host 2) over NATS",
        &cross,
    );

    // Raw NATS request-reply, request and reply sized like the call frame and its reply.
    let request_size = 260;
    let reply_size = 40;
    let mut responder = client.subscribe("bench.echo").await?;
    let responder_client = client.clone();
    tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![b'r'; reply_size]);
        while let Some(message) = responder.next().await {
            if let Some(reply) = message.reply {
                let _ = responder_client.publish(reply, payload.clone()).await;
            }
        }
    });
    client.flush().await?;
    let requester = async_nats::connect(nats.url()).await?;
    let raw = measure(calls, seconds, move |_| {
        let requester = requester.clone();
        async move {
            requester
                .request("bench.echo", bytes::Bytes::from(vec![b'q'; request_size]))
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    print_row(
        &format!("raw NATS request-reply ({request_size} B -> {reply_size} B)"),
        &raw,
    );

    // In-process: greeter on host 1 as well; the link now resolves locally.
    scale_on(&client, host1.host_id(), &greeter, "greeter", 1000).await?;
    wait_for_local_greeter(&host1).await?;
    let local = measure(calls, seconds, {
        let host1 = host1.clone();
        move |i| {
            let host1 = host1.clone();
            async move { relay_call(&host1, format!("caller {i}")).await }
        }
    })
    .await?;
    print_row("in-process: relay -> greeter on the same host", &local);
    println!();
    println!(
        "cross-host p50 / raw NATS p50 = {:.2}x; cross-host p50 - in-process p50 (the lattice hop) = {:?}",
        cross.p50.as_secs_f64() / raw.p50.as_secs_f64(),
        cross.p50.saturating_sub(local.p50)
    );
    Ok(())
}

async fn relay_call(host: &LatticeHandle, name: String) -> anyhow::Result<()> {
    let out = host
        .call(
            "relay",
            "trellis:test/relay",
            "relay",
            vec![Val::String(name)],
            Duration::from_secs(5),
        )
        .await?;
    match out.first() {
        Some(Val::String(s)) if s.starts_with("hello ") => Ok(()),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

async fn join(url: &str, issuer: &str, zone: &str) -> anyhow::Result<LatticeHandle> {
    let config = RuntimeConfig {
        trust: TrustPolicy {
            issuers: TrustedIssuers::Only(BTreeSet::from([issuer.to_string()])),
            allow_unsigned: false,
        },
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::builder(config).build()?;
    let lattice_config = LatticeConfig {
        nats: NatsConnect::new(url, "trellis-bench"),
        lattice: LATTICE.into(),
        labels: [("zone".to_string(), zone.to_string())].into(),
        heartbeat_interval: Duration::from_secs(2),
        http_router: None,
        builtin_providers: Default::default(),
    };
    Ok(lattice::join(runtime, lattice_config).await?)
}

async fn control(
    client: &async_nats::Client,
    subject: String,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let reply = client.request(subject.clone(), body.into()).await?;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    anyhow::ensure!(reply["success"] == true, "{subject}: {}", reply["message"]);
    Ok(())
}

async fn scale(
    client: &async_nats::Client,
    host: &LatticeHandle,
    reference: &str,
    id: &str,
    count: u32,
) -> anyhow::Result<()> {
    scale_on(client, host.host_id(), reference, id, count).await
}

async fn scale_on(
    client: &async_nats::Client,
    host_id: &str,
    reference: &str,
    id: &str,
    count: u32,
) -> anyhow::Result<()> {
    let command = ScaleComponentCommand {
        component_ref: reference.into(),
        component_id: id.into(),
        annotations: Default::default(),
        max_instances: count,
        host_id: host_id.into(),
        config: vec![],
        allow_update: false,
    };
    control(
        client,
        subjects::component_scale(LATTICE, host_id),
        serde_json::to_vec(&command)?,
    )
    .await
}

async fn wait_until_answers(host: &LatticeHandle, args: Vec<Val>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = host
            .call(
                "relay",
                "trellis:test/relay",
                "relay",
                args.clone(),
                Duration::from_secs(5),
            )
            .await;
        match answer {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e).context("relay never answered"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn wait_for_local_greeter(host: &LatticeHandle) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while host
        .call(
            "greeter",
            "trellis:test/greet",
            "greet",
            vec![Val::String("local".into())],
            Duration::from_secs(5),
        )
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "greeter never ran on host 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn print_row(what: &str, f: &Figures) {
    println!(
        "| {what} | {:.1} µs | {:.1} µs | {:.0} |",
        f.p50.as_secs_f64() * 1e6,
        f.p99.as_secs_f64() * 1e6,
        f.per_second
    );
}

/// Sequential latencies over `calls`, then throughput of `CONCURRENCY` callers for `seconds`.
async fn measure<F, Fut>(calls: usize, seconds: u64, op: F) -> anyhow::Result<Figures>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    for i in 0..calls / 10 {
        op(i).await?;
    }
    let mut latencies = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        op(i).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < until {
                op(w).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    Ok(Figures {
        p50: at(0.50),
        p99: at(0.99),
        per_second: total as f64 / seconds as f64,
    })
}
