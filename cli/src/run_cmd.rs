//! `trellis run COMPONENT.wasm --http ADDR`: one component behind HTTP, no NATS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use trellis_host::http::{HttpServer, Router};
use trellis_host::{ComponentLimits, Runtime, RuntimeConfig};
use trellis_protocol::claims;

use crate::GlobalArgs;
use crate::signals::wait_for_shutdown_signal;
use crate::trust::TrustArgs;

/// How long Ctrl-C waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The component: a path or `file:///abs/path.wasm`.
    component: String,
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "TRELLIS_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    #[command(flatten)]
    trust: TrustArgs,
    /// A `key=value` the component reads through `wasi:config`; repeatable.
    #[arg(long = "config", env = "TRELLIS_CONFIG", value_delimiter = ',')]
    config: Vec<String>,
    /// Linear memory limit per instance (e.g. `128MiB`).
    #[arg(long, env = "TRELLIS_MAX_MEMORY", default_value = "128MiB", value_parser = parse_bytes)]
    max_memory: u64,
    /// Execution deadline per request (e.g. `30s`, `500ms`).
    #[arg(long, env = "TRELLIS_DEADLINE", default_value = "30s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// Instances that may run at once; more requests wait for a free one.
    #[arg(long, env = "TRELLIS_MAX_CONCURRENT", default_value_t = 1000)]
    max_concurrent: u32,
}

pub fn run(args: RunArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let path = trellis_host::reference::resolve(&args.component)?;
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let config = parse_config(&args.config)?;
    let runtime_config = RuntimeConfig {
        max_instances: args.max_concurrent.max(1),
        max_memory_bytes: args.max_memory,
        ..args.trust.runtime_config()?
    };
    let limits = ComponentLimits {
        memory_bytes: args.max_memory,
        deadline: args.deadline,
        max_concurrent: args.max_concurrent.max(1) as usize,
    };
    let id = component_id(&path, &bytes);

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let runtime = Runtime::builder(runtime_config).build()?;
        let loader = runtime.clone();
        let component = tokio::task::spawn_blocking(move || loader.load(&id, &bytes, limits))
            .await
            .context("the component loader panicked")??;
        if component.http().is_none() {
            anyhow::bail!(
                "component `{}` does not export wasi:http/incoming-handler@0.2.x, so `trellis run` cannot serve it over HTTP",
                component.id()
            );
        }
        component.set_config(config);
        let router = Arc::new(Router::new());
        router.insert(None, "/", component.clone());
        let server = HttpServer::bind(args.http, router)
            .await
            .with_context(|| format!("cannot listen on {}", args.http))?;
        println!(
            "serving `{}` on http://{}",
            component.id(),
            server.local_addr()
        );
        wait_for_shutdown_signal().await;
        tracing::info!(grace = ?SHUTDOWN_GRACE, "shutting down: draining in-flight requests");
        server.shutdown(SHUTDOWN_GRACE).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The claims' name when the file carries one (for logs only; verification comes later),
/// otherwise the file stem.
fn component_id(path: &Path, bytes: &[u8]) -> String {
    claims::read(bytes)
        .ok()
        .flatten()
        .and_then(|(_, c)| c.wascap.name)
        .unwrap_or_else(|| {
            path.file_stem()
                .map_or("component".into(), |s| s.to_string_lossy().into_owned())
        })
}

fn parse_config(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--config `{pair}` must be `key=value`"))
        })
        .collect()
}

/// `128MiB`, `64M`, `1GiB`, `4096`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size like `128MiB`"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}`: use KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("1gib"), Ok(1 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn config_pairs() {
        assert_eq!(parse_config(&["a=b=c".into()]).unwrap()["a"], "b=c");
        assert!(parse_config(&["novalue".into()]).is_err());
        assert!(parse_config(&["=v".into()]).is_err());
    }
}
