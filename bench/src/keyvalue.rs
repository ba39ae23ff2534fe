//! Key-value `get`/`set` through providers vs the backend's own client (docs/BENCHMARKS.md,
//! "Key-value through providers").
//!
//! One process, a private `redis-server` and a private `nats-server -js` on loopback. For each
//! backend, three paths to the same data (bucket `bench`, 16-byte keys, 64-byte values):
//! - **raw**: the backend's client crate called directly — `redis` (the version and connection
//!   type the Redis provider uses: a `ConnectionManager`) or `async_nats::jetstream` KV;
//! - **in-process**: the provider crate (`RedisProvider`, `NatsKvProvider`) called through an
//!   `Arc<dyn KeyValue>` after `init` and `receive_link_config_as_target`, as a host serves
//!   `builtin://keyvalue-redis` / `builtin://keyvalue-nats`;
//! - **out-of-process**: the provider executable, started as the host's supervisor starts it
//!   (one line of `HostData` JSON on stdin, stdin held open, ready once it answers a `health`
//!   lifecycle message signed by the host key), called through the SDK's `RemoteKeyValue` over
//!   a NATS transport that sends signed `CallRequest`s like a host does.
//!
//! Each figure is measured in the same run: `CALLS` sequential calls for p50/p99, then
//! `CONCURRENCY` callers for `SECONDS` for ops/s; `get` first (of keys written beforehand),
//! then `set`.
//!
//! The out-of-process rows use the provider executables found next to this benchmark's own
//! executable (`target/release/trellis-provider-keyvalue-{redis,nats}` after
//! `cargo build --release -p trellis-provider-keyvalue-redis -p trellis-provider-keyvalue-nats`);
//! when one is missing, `trellis_testing::provider_binary` builds a debug one, and the output
//! says so.
//!
//! Usage: `cargo run --release -p trellis-bench --bin keyvalue [CALLS] [SECONDS]`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, kv};
use redis::AsyncCommands as _;
use tokio::io::AsyncWriteExt as _;
use trellis_protocol::keys::KeyPair;
use trellis_protocol::rpc::{self, CallReply, CallRequest, Caller};
use trellis_provider_keyvalue_nats::NatsKvProvider;
use trellis_provider_keyvalue_redis::{RedisProvider, redis_key};
use trellis_provider_sdk::keyvalue::KeyValue;
use trellis_provider_sdk::process::HostData;
use trellis_provider_sdk::wire::{self, RemoteKeyValue, Transport, TransportError};
use trellis_provider_sdk::{CallContext, HealthStatus, InitContext, LinkConfig, Provider};

const LATTICE: &str = "bench";
const CONCURRENCY: usize = 32;
/// The component the calls come from (the link's source).
const COMPONENT: &str = "kv-bench";
const LINK_NAME: &str = "default";
/// The bucket a component would `store::open`.
const BUCKET: &str = "bench";
/// How many distinct keys the calls cycle through (all written before the `get` runs).
const KEYS: usize = 1000;
const VALUE_LEN: usize = 64;
/// How long one call may take before the benchmark gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider process may take to answer its first health check.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Key `i`: 16 bytes, valid for Redis and JetStream KV alike.
fn key(i: usize) -> String {
    format!("key-{:012}", i % KEYS)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("CALLS must be a whole number")?
        .unwrap_or(5000);
    let seconds: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("SECONDS must be a whole number")?
        .unwrap_or(5);
    anyhow::ensure!(
        calls > 0 && seconds > 0,
        "CALLS and SECONDS must be above 0"
    );

    let redis_server =
        trellis_testing::redis::RedisServer::start().context("cannot start redis-server")?;
    let nats_server =
        trellis_testing::nats::NatsServer::start().context("cannot start nats-server")?;
    let redis_exe = provider_executable("keyvalue-redis")?;
    let nats_exe = provider_executable("keyvalue-nats")?;
    eprintln!("out-of-process providers: {}", redis_exe.display());
    eprintln!("                          {}", nats_exe.display());

    // The "host": a server key and a NATS connection, as a Trellis host has.
    let host_key = Arc::new(KeyPair::new_server());
    let client = async_nats::connect(nats_server.url())
        .await
        .context("cannot connect to the private nats-server")?;
    let cx = CallContext::new(COMPONENT, LINK_NAME);
    let value = vec![b'v'; VALUE_LEN];

    let mut rows = Vec::new();

    // ---- Redis ----
    let redis_config = config([("url", redis_server.url())]);
    let raw_redis = redis::Client::open(redis_server.url())
        .context("bad redis URL")?
        .get_connection_manager()
        .await
        .context("cannot connect to the private redis-server")?;
    for i in 0..KEYS {
        let mut conn = raw_redis.clone();
        let _: () = conn
            .set(redis_key(BUCKET, &key(i)), value.as_slice())
            .await
            .context("cannot write the keys the get runs read")?;
    }
    let raw = Arc::new(Path::RawRedis(raw_redis));
    rows.push((
        "raw Redis (`redis` 1.x ConnectionManager)",
        measure_both(calls, seconds, raw.clone()).await?,
    ));
    let provider = Arc::new(RedisProvider::new());
    let kv = in_process(provider, "kv-redis-builtin", &redis_config).await?;
    let inproc = Arc::new(Path::Provider(kv, cx.clone()));
    rows.push((
        "in-process RedisProvider (KeyValue trait)",
        measure_both(calls, seconds, inproc.clone()).await?,
    ));
    let mut alternated = vec![("Redis", interleaved(calls, &raw, &inproc).await?)];
    let (process, kv) = out_of_process(
        &redis_exe,
        "kv-redis-process",
        &redis_config,
        &nats_server.url(),
        &client,
        &host_key,
    )
    .await?;
    rows.push((
        "out-of-process keyvalue-redis over NATS",
        measure_both(calls, seconds, Arc::new(Path::Provider(kv, cx.clone()))).await?,
    ));
    process.stop().await;

    // ---- NATS JetStream KV ----
    let nats_config = config([("cluster_uri", nats_server.url())]);
    let js = jetstream::new(client.clone());
    let store = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            history: 1,
            ..Default::default()
        })
        .await
        .context("cannot create the JetStream KV bucket")?;
    for i in 0..KEYS {
        store
            .put(key(i), value.clone().into())
            .await
            .context("cannot write the keys the get runs read")?;
    }
    let raw = Arc::new(Path::RawNats(Box::new(store)));
    rows.push((
        "raw JetStream KV (`async_nats::jetstream`)",
        measure_both(calls, seconds, raw.clone()).await?,
    ));
    let provider = Arc::new(NatsKvProvider::new());
    let kv = in_process(provider, "kv-nats-builtin", &nats_config).await?;
    let inproc = Arc::new(Path::Provider(kv, cx.clone()));
    rows.push((
        "in-process NatsKvProvider (KeyValue trait)",
        measure_both(calls, seconds, inproc.clone()).await?,
    ));
    alternated.push(("JetStream KV", interleaved(calls, &raw, &inproc).await?));
    let (process, kv) = out_of_process(
        &nats_exe,
        "kv-nats-process",
        &nats_config,
        &nats_server.url(),
        &client,
        &host_key,
    )
    .await?;
    rows.push((
        "out-of-process keyvalue-nats over NATS",
        measure_both(calls, seconds, Arc::new(Path::Provider(kv, cx.clone()))).await?,
    ));
    process.stop().await;

    println!(
        "{calls} sequential calls for p50/p99; {CONCURRENCY} concurrent callers for {seconds} s \
         for ops/s; {}-byte keys, {VALUE_LEN}-byte values",
        key(0).len()
    );
    println!();
    println!("| path | get p50 | get p99 | set p50 | set p99 | get ops/s | set ops/s |");
    println!("|---|---|---|---|---|---|---|");
    for (name, figures) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {:.0} |",
            micros(figures.get.p50),
            micros(figures.get.p99),
            micros(figures.set.p50),
            micros(figures.set.p99),
            figures.get.per_second,
            figures.set.per_second,
        );
    }
    println!();
    println!("Ratios (> 1 = slower: latency a / b, throughput b ops/s / a ops/s):");
    println!();
    for (backend, base) in [("Redis", 0), ("JetStream KV", 3)] {
        let [raw, inproc, outproc] = [&rows[base].1, &rows[base + 1].1, &rows[base + 2].1];
        let within = slowdowns(inproc, raw).iter().all(|r| *r <= 1.3);
        println!(
            "- {backend}, in-process / raw: {} — within 1.3x (p50 and ops/s): {}",
            ratios(inproc, raw),
            if within { "yes" } else { "NO" }
        );
        println!(
            "- {backend}, out-of-process / in-process: {}",
            ratios(outproc, inproc)
        );
    }
    println!();
    println!(
        "Interleaved sequential latency ({calls} calls each, raw and in-process alternating, so \
         both see the same machine state):"
    );
    println!();
    println!(
        "| backend | raw get p50 | in-process get p50 | ratio | raw set p50 | in-process set p50 | ratio | within 1.3x |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (backend, [(raw_get, in_get), (raw_set, in_set)]) in &alternated {
        let get = in_get.as_secs_f64() / raw_get.as_secs_f64();
        let set = in_set.as_secs_f64() / raw_set.as_secs_f64();
        println!(
            "| {backend} | {} | {} | {get:.2}x | {} | {} | {set:.2}x | {} |",
            micros(*raw_get),
            micros(*in_get),
            micros(*raw_set),
            micros(*in_set),
            if get <= 1.3 && set <= 1.3 {
                "yes"
            } else {
                "NO"
            }
        );
    }
    drop(client);
    drop(nats_server);
    drop(redis_server);
    Ok(())
}

fn config<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The link from the benchmark's component to `provider_id`.
fn link(provider_id: &str, target_config: &BTreeMap<String, String>) -> LinkConfig {
    LinkConfig {
        source_id: COMPONENT.into(),
        target: provider_id.into(),
        link_name: LINK_NAME.into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
        source_config: BTreeMap::new(),
        target_config: target_config.clone(),
    }
}

/// A provider set up as a host sets up a builtin one, as the host calls it.
async fn in_process<P: Provider>(
    provider: Arc<P>,
    provider_id: &str,
    target_config: &BTreeMap<String, String>,
) -> anyhow::Result<Arc<dyn KeyValue>> {
    provider
        .init(&InitContext {
            provider_id: provider_id.into(),
            lattice: LATTICE.into(),
            host_id: "bench".into(),
            config: BTreeMap::new(),
        })
        .await
        .with_context(|| format!("{provider_id}: init failed"))?;
    provider
        .receive_link_config_as_target(&link(provider_id, target_config))
        .await
        .with_context(|| format!("{provider_id}: the link was refused"))?;
    provider
        .capabilities()
        .keyvalue
        .with_context(|| format!("{provider_id} serves no key-value capability"))
}

/// Where the provider executable `trellis-provider-{name}` is: next to this benchmark (the
/// same profile), else a debug build from `trellis_testing::provider_binary`.
fn provider_executable(name: &str) -> anyhow::Result<PathBuf> {
    let file = format!("trellis-provider-{name}");
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(&file)))
        .filter(|p| p.is_file());
    if let Some(path) = beside {
        return Ok(path);
    }
    eprintln!(
        "warning: no {file} next to this benchmark; using a DEBUG build (build it with `cargo \
         build --release -p {file}` for a fair figure)"
    );
    trellis_testing::provider_binary(name).with_context(|| format!("cannot build {file}"))
}

/// A provider process started as the host's supervisor starts one; killed when dropped.
struct ProviderProcess {
    id: String,
    child: tokio::process::Child,
    /// Held open for the life of the process: a closed stdin tells it the host is gone.
    stdin: Option<tokio::process::ChildStdin>,
}

impl ProviderProcess {
    /// Closes stdin (the provider then shuts down by itself); kills it if it lingers.
    async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("provider {} did not stop within 5 s; killing it", self.id);
            let _ = self.child.kill().await;
        }
    }
}

/// Starts `path` as provider `provider_id` with one link, waits until it answers a health
/// check, and returns it with a `KeyValue` that calls it over NATS.
async fn out_of_process(
    path: &std::path::Path,
    provider_id: &str,
    target_config: &BTreeMap<String, String>,
    nats_url: &str,
    client: &async_nats::Client,
    host_key: &Arc<KeyPair>,
) -> anyhow::Result<(ProviderProcess, Arc<dyn KeyValue>)> {
    let host_id = host_key.public_key();
    let data = HostData {
        lattice: LATTICE.into(),
        host_id: host_id.clone(),
        provider_id: provider_id.into(),
        nats_url: nats_url.into(),
        links: vec![link(provider_id, target_config)],
        ..HostData::default()
    };
    let mut line = serde_json::to_vec(&data).context("cannot encode host data")?;
    line.push(b'\n');
    let mut child = tokio::process::Command::new(path)
        .env("TRELLIS_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", path.display()))?;
    let mut stdin = child
        .stdin
        .take()
        .context("the provider's stdin is not a pipe")?;
    stdin
        .write_all(&line)
        .await
        .with_context(|| format!("cannot hand host data to {}", path.display()))?;
    stdin.flush().await.context("cannot flush host data")?;
    let mut process = ProviderProcess {
        id: provider_id.into(),
        child,
        stdin: Some(stdin),
    };

    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            bail!("provider {provider_id} exited before it was ready: {status}");
        }
        let request = CallRequest {
            caller: Caller {
                key: host_id.clone(),
                component_id: None,
                link_name: LINK_NAME.into(),
            },
            lattice: LATTICE.into(),
            target: wire::lifecycle_target(provider_id, &host_id),
            interface: wire::LIFECYCLE.into(),
            function: wire::HEALTH.into(),
            timeout_ms: 500,
            sent_at_ms: rpc::now_ms(),
            args: vec![],
        };
        let health = match exchange(client, host_key, &request, Duration::from_millis(500)).await {
            Ok(CallReply::Ok(values)) => values
                .into_iter()
                .next()
                .and_then(|v| rmpv::ext::from_value::<HealthStatus>(v).ok()),
            _ => None,
        };
        match health {
            Some(status) if status.healthy => break,
            Some(status) if Instant::now() > deadline => {
                bail!("provider {provider_id} is unhealthy: {}", status.message)
            }
            _ if Instant::now() > deadline => {
                bail!("provider {provider_id} did not answer within {READY_WITHIN:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let transport = NatsTransport {
        client: client.clone(),
        key: host_key.clone(),
        host_id,
        target: provider_id.into(),
    };
    Ok((process, Arc::new(RemoteKeyValue(Arc::new(transport)))))
}

/// Signs `request` with the host key, sends it, and decodes the reply.
async fn exchange(
    client: &async_nats::Client,
    key: &KeyPair,
    request: &CallRequest,
    timeout: Duration,
) -> anyhow::Result<CallReply> {
    let frame = rpc::sign(request, key).context("cannot sign the call")?;
    let subject = rpc::call_subject(
        &request.lattice,
        &request.target,
        &request.interface,
        &request.function,
    );
    let reply = tokio::time::timeout(timeout, client.request(subject, frame.into()))
        .await
        .with_context(|| format!("no reply within {timeout:?}"))?
        .context("NATS request failed")?;
    rpc::decode_reply(&reply.payload).context("malformed reply")
}

/// Capability calls to a provider process, as a host sends them.
struct NatsTransport {
    client: async_nats::Client,
    key: Arc<KeyPair>,
    host_id: String,
    target: String,
}

#[trellis_provider_sdk::async_trait]
impl Transport for NatsTransport {
    async fn call(
        &self,
        cx: &CallContext,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<Vec<rmpv::Value>, TransportError> {
        let request = CallRequest {
            caller: Caller {
                key: self.host_id.clone(),
                component_id: Some(cx.source_id.clone()),
                link_name: cx.link_name.clone(),
            },
            lattice: LATTICE.into(),
            target: self.target.clone(),
            interface: interface.into(),
            function: function.into(),
            timeout_ms: u64::try_from(CALL_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            sent_at_ms: rpc::now_ms(),
            args,
        };
        match exchange(&self.client, &self.key, &request, CALL_TIMEOUT).await {
            Ok(CallReply::Ok(values)) => Ok(values),
            Ok(CallReply::Err(e)) => Err(TransportError(format!(
                "provider `{}` refused `{interface}.{function}`: {e}",
                self.target
            ))),
            Err(e) => Err(TransportError(format!(
                "call to provider `{}` ({interface}.{function}): {e:#}",
                self.target
            ))),
        }
    }
}

/// One way to reach the key-value data (shared by the callers behind an `Arc`, so that a call
/// clones nothing but what the client itself needs).
enum Path {
    RawRedis(redis::aio::ConnectionManager),
    RawNats(Box<kv::Store>),
    Provider(Arc<dyn KeyValue>, CallContext),
}

impl Path {
    async fn get(&self, i: usize) -> anyhow::Result<()> {
        let key = key(i);
        let value = match self {
            Path::RawRedis(conn) => {
                let mut conn = conn.clone();
                let value: Option<Vec<u8>> = conn
                    .get(redis_key(BUCKET, &key))
                    .await
                    .with_context(|| format!("GET {key}"))?;
                value.map(|v| v.len())
            }
            Path::RawNats(store) => store
                .get(&key)
                .await
                .with_context(|| format!("kv get {key}"))?
                .map(|v| v.len()),
            Path::Provider(kv, cx) => kv
                .get(cx, BUCKET, &key)
                .await
                .with_context(|| format!("get {key}"))?
                .map(|v| v.len()),
        };
        anyhow::ensure!(
            value == Some(VALUE_LEN),
            "get {key}: expected {VALUE_LEN} bytes, got {value:?}"
        );
        Ok(())
    }

    async fn set(&self, i: usize) -> anyhow::Result<()> {
        let key = key(i);
        match self {
            Path::RawRedis(conn) => {
                let mut conn = conn.clone();
                let value = [b's'; VALUE_LEN];
                let _: () = conn
                    .set(redis_key(BUCKET, &key), value.as_slice())
                    .await
                    .with_context(|| format!("SET {key}"))?;
            }
            Path::RawNats(store) => {
                store
                    .put(&key, bytes::Bytes::from(vec![b's'; VALUE_LEN]))
                    .await
                    .with_context(|| format!("kv put {key}"))?;
            }
            Path::Provider(kv, cx) => kv
                .set(cx, BUCKET, &key, vec![b's'; VALUE_LEN])
                .await
                .with_context(|| format!("set {key}"))?,
        }
        Ok(())
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

struct GetSet {
    get: Figures,
    set: Figures,
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// How much slower `a` is than `b`: get p50, set p50, get ops/s, set ops/s.
fn slowdowns(a: &GetSet, b: &GetSet) -> [f64; 4] {
    [
        a.get.p50.as_secs_f64() / b.get.p50.as_secs_f64(),
        a.set.p50.as_secs_f64() / b.set.p50.as_secs_f64(),
        b.get.per_second / a.get.per_second,
        b.set.per_second / a.set.per_second,
    ]
}

fn ratios(a: &GetSet, b: &GetSet) -> String {
    let [get, set, get_ops, set_ops] = slowdowns(a, b);
    let get_p99 = a.get.p99.as_secs_f64() / b.get.p99.as_secs_f64();
    let set_p99 = a.set.p99.as_secs_f64() / b.set.p99.as_secs_f64();
    format!(
        "get p50 {get:.2}x, set p50 {set:.2}x, get p99 {get_p99:.2}x, set p99 {set_p99:.2}x, \
         get ops/s {get_ops:.2}x, set ops/s {set_ops:.2}x"
    )
}

async fn measure_both(calls: usize, seconds: u64, path: Arc<Path>) -> anyhow::Result<GetSet> {
    let get = {
        let path = path.clone();
        measure(calls, seconds, move |i| {
            let path = path.clone();
            async move { path.get(i).await }
        })
        .await
        .context("get")?
    };
    let set = measure(calls, seconds, move |i| {
        let path = path.clone();
        async move { path.set(i).await }
    })
    .await
    .context("set")?;
    Ok(GetSet { get, set })
}

/// Sequential p50s of `a` and `b` called alternately (a, b, a, b, …): `[(a get, b get),
/// (a set, b set)]`. Alternating cancels the drift (a parked worker, a noisy neighbour) that
/// makes two back-to-back runs disagree by more than the difference being measured.
async fn interleaved(
    calls: usize,
    a: &Path,
    b: &Path,
) -> anyhow::Result<[(Duration, Duration); 2]> {
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut out = [(Duration::ZERO, Duration::ZERO); 2];
    for (slot, set) in [(0, false), (1, true)] {
        let (mut ta, mut tb) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..calls {
            for (path, times) in [(a, &mut ta), (b, &mut tb)] {
                let started = Instant::now();
                if set {
                    path.set(i).await?;
                } else {
                    path.get(i).await?;
                }
                times.push(started.elapsed());
            }
        }
        out[slot] = (median(ta), median(tb));
    }
    Ok(out)
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
                op(w + done * CONCURRENCY).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.context("a caller task panicked")??;
    }
    Ok(Figures {
        p50: at(0.50),
        p99: at(0.99),
        per_second: total as f64 / seconds as f64,
    })
}
