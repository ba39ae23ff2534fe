//! `trellis host`: one host joined to the lattice.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use trellis_host::lattice::{self, LatticeConfig};

use std::sync::Arc;
use trellis_host::Runtime;
use trellis_host::http::{HttpServer, Router};

use crate::GlobalArgs;
use crate::signals::wait_for_shutdown_signal;
use crate::trust::TrustArgs;

#[derive(clap::Args, Debug)]
pub struct HostArgs {
    /// A label `key=value` for placement; repeatable.
    #[arg(long = "label", env = "TRELLIS_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// How often to publish a heartbeat with the inventory.
    #[arg(long, env = "TRELLIS_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    #[command(flatten)]
    trust: TrustArgs,
    /// Serve HTTP for the components on this host that export `wasi:http/incoming-handler`,
    /// routed by Host header = component id (e.g. `curl -H 'Host: hello' ADDR`).
    #[arg(long, env = "TRELLIS_HTTP")]
    http: Option<std::net::SocketAddr>,
    /// How long to wait for NATS at start-up.
    #[arg(long, env = "TRELLIS_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// The JetStream domain holding the lattice state: a host on a leaf `nats-server` names
    /// the hub's domain (`jetstream { domain: hub }` on the hub) to reach its JetStream.
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,
    /// Component instances that may be live at once on this host. Each is a slot of the
    /// pooling allocator that reserves about 4 GiB of address space up front: lower it where
    /// address space is scarce (aarch64 kernels with 39-bit virtual addresses, qemu-user).
    #[arg(long, env = "TRELLIS_MAX_INSTANCES", default_value_t = trellis_host::RuntimeConfig::default().max_instances, value_parser = clap::value_parser!(u32).range(1..))]
    max_instances: u32,
}

pub fn run(args: HostArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let labels = parse_labels(&args.labels)?;
    let config = LatticeConfig {
        nats: global
            .nats
            .connect_options(&global.nats_url, args.connect_timeout, "trellis-host"),
        lattice: global.lattice.clone(),
        labels,
        heartbeat_interval: args.heartbeat_interval,
        http_router: args.http.map(|_| Arc::new(Router::new())),
        builtin_providers: crate::builtin::providers(),
    };
    let runtime_config = trellis_host::RuntimeConfig {
        max_instances: args.max_instances,
        ..args.trust.runtime_config()?
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let runtime = Runtime::builder(runtime_config).build()?;
        let router = config.http_router.clone();
        let mut handle = lattice::join_in_domain(runtime, config, args.js_domain).await?;
        let http = match (args.http, router) {
            (Some(addr), Some(router)) => Some(
                HttpServer::bind(addr, router)
                    .await
                    .with_context(|| format!("cannot listen for HTTP on {addr}"))?,
            ),
            _ => None,
        };
        if let Some(http) = &http {
            println!("serving HTTP on http://{}", http.local_addr());
        }
        println!(
            "host {} joined lattice `{}`",
            handle.host_id(),
            global.lattice
        );
        tokio::select! {
            _ = wait_for_shutdown_signal() => {
                tracing::info!("shutting down: leaving the lattice");
                handle.shutdown().await;
            }
            _ = handle.stopped() => {}
        }
        if let Some(http) = http {
            http.shutdown(Duration::from_secs(10)).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `k=v` pairs; keys non-empty.
pub fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--label `{pair}` must be `key=value`"))
        })
        .collect()
}
