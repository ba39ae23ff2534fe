//! `trellis get hosts`: lattice queries.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use futures::StreamExt as _;
use trellis_protocol::ctl::{CtlResponse, Host, subjects};

use crate::GlobalArgs;
use crate::output::{OutputFormat, print_json};

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// Every host of the lattice (answers to `host.ping`).
    Hosts {
        /// How long to collect answers.
        #[arg(long, env = "TRELLIS_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

pub fn run(command: GetCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        GetCommand::Hosts { timeout } => tokio.block_on(get_hosts(global, timeout)),
    }
}

async fn connect(global: &GlobalArgs) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("trellis-cli")
        .connection_timeout(Duration::from_secs(5))
        .connect(global.nats_url.as_str())
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {}; is the lattice up? (--nats-url, env TRELLIS_NATS_URL)",
                global.nats_url
            )
        })
}

async fn get_hosts(global: &GlobalArgs, timeout: Duration) -> anyhow::Result<ExitCode> {
    let client = connect(global).await?;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subjects::host_ping(&global.lattice), inbox, "".into())
        .await?;
    client.flush().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut hosts: Vec<Host> = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        match serde_json::from_slice::<CtlResponse<Host>>(&message.payload) {
            Ok(CtlResponse {
                response: Some(host),
                ..
            }) => hosts.push(host),
            Ok(reply) => {
                tracing::warn!(message = %reply.message, "a host answered the ping without a host")
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed ping reply"),
        }
    }
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    match global.output {
        OutputFormat::Json => print_json(&hosts)?,
        OutputFormat::Human => {
            if hosts.is_empty() {
                println!(
                    "no hosts answered in lattice `{}` within {timeout:?}",
                    global.lattice
                );
            }
            for host in &hosts {
                let labels: Vec<String> = host
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{}  {}  up {}  {}",
                    host.id,
                    host.friendly_name,
                    host.uptime_human.as_deref().unwrap_or("?"),
                    labels.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
