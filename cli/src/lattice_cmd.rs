//! Lattice queries and control commands: `trellis get hosts|inventory`, `trellis scale`,
//! `trellis label put|del`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use futures::StreamExt as _;
use trellis_protocol::ctl::{CtlResponse, Host, HostInventory, ScaleComponentCommand, subjects};

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
    /// What runs on one host.
    Inventory {
        /// The host's id (`N…`), as listed by `trellis get hosts`.
        host: String,
    },
    /// Every link of the lattice.
    Links,
    /// A named config map.
    Config { name: String },
}

/// `trellis label put|del`.
#[derive(Subcommand, Debug)]
pub enum LabelCommand {
    /// Set a label on a host.
    Put {
        host: String,
        key: String,
        value: String,
    },
    /// Remove a label from a host.
    Del { host: String, key: String },
}

pub fn label(command: LabelCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (subject, body, host) = match &command {
        LabelCommand::Put { host, key, value } => (
            subjects::label_put(&global.lattice, host),
            serde_json::json!({"key": key, "value": value}),
            host,
        ),
        LabelCommand::Del { host, key } => (
            subjects::label_del(&global.lattice, host),
            serde_json::json!({"key": key}),
            host,
        ),
    };
    let reply = control(global, host, subject, serde_json::to_vec(&body)?)?;
    match global.output {
        OutputFormat::Json => print_json(&serde_json::json!({"message": reply.message}))?,
        OutputFormat::Human => println!("{}", reply.message),
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends one control command to `host` and fails unless it succeeded.
pub(crate) fn control(
    global: &GlobalArgs,
    host: &str,
    subject: String,
    body: Vec<u8>,
) -> anyhow::Result<CtlResponse<()>> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reply: CtlResponse<()> = tokio.block_on(async {
        let client = connect(global).await?;
        request(&client, subject, body).await
    })?;
    if !reply.success {
        anyhow::bail!("host {host} refused: {}", reply.message);
    }
    Ok(reply)
}

/// `trellis scale HOST COMPONENT_REF COMPONENT_ID --count N`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// The host's id (`N…`).
    host: String,
    /// The component: a path or file:///abs/path.wasm, readable by the host.
    component_ref: String,
    /// The component's id in the lattice.
    component_id: String,
    /// Most instances at once; 0 stops the component.
    #[arg(long, env = "TRELLIS_COUNT")]
    count: u32,
    /// An annotation `key=value`; repeatable.
    #[arg(
        long = "annotation",
        env = "TRELLIS_ANNOTATIONS",
        value_delimiter = ','
    )]
    annotations: Vec<String>,
    /// A named config (see `trellis config put`) for the component; repeatable, later names'
    /// keys win.
    #[arg(long = "config", env = "TRELLIS_CONFIG_NAMES", value_delimiter = ',')]
    config: Vec<String>,
}

pub fn run(command: GetCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        GetCommand::Hosts { timeout } => tokio.block_on(get_hosts(global, timeout)),
        GetCommand::Inventory { host } => tokio.block_on(get_inventory(global, &host)),
        GetCommand::Links => tokio
            .block_on(crate::state_cmd::get_links(global))
            .map(|()| ExitCode::SUCCESS),
        GetCommand::Config { name } => tokio.block_on(crate::state_cmd::get_config(global, &name)),
    }
}

/// Sends one control request and returns the decoded envelope.
pub(crate) async fn request<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: String,
    body: Vec<u8>,
) -> anyhow::Result<CtlResponse<T>> {
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(subject.clone(), body.into()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer on `{subject}` within 5 s"))?
    .map_err(|e| {
        anyhow::anyhow!(
            "request on `{subject}` failed: {e} (is that host in the lattice? `trellis get hosts`)"
        )
    })?;
    serde_json::from_slice(&reply.payload)
        .with_context(|| format!("malformed reply on `{subject}`"))
}

async fn get_inventory(global: &GlobalArgs, host: &str) -> anyhow::Result<ExitCode> {
    let client = connect(global).await?;
    let reply: CtlResponse<HostInventory> = request(
        &client,
        subjects::host_get(&global.lattice, host),
        Vec::new(),
    )
    .await?;
    let Some(inventory) = reply.response.filter(|_| reply.success) else {
        anyhow::bail!("host {host} answered with an error: {}", reply.message);
    };
    match global.output {
        OutputFormat::Json => print_json(&inventory)?,
        OutputFormat::Human => {
            println!("{} ({})", inventory.host_id, inventory.friendly_name);
            if inventory.components.is_empty() {
                println!("  no components");
            }
            for c in &inventory.components {
                println!("  {}  {}  max {}", c.id, c.image_ref, c.max_instances);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scale(args: ScaleArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let annotations = crate::host_cmd::parse_labels(&args.annotations)?;
    let command = ScaleComponentCommand {
        component_ref: args.component_ref,
        component_id: args.component_id,
        annotations,
        max_instances: args.count,
        host_id: args.host.clone(),
        config: args.config,
        allow_update: false,
    };
    control(
        global,
        &args.host,
        subjects::component_scale(&global.lattice, &args.host),
        serde_json::to_vec(&command)?,
    )?;
    match global.output {
        OutputFormat::Json => print_json(&serde_json::json!({"accepted": true}))?,
        OutputFormat::Human => println!(
            "host {} accepted: {} -> {} instances (watch `trellis get inventory {}`)",
            args.host, command.component_id, command.max_instances, args.host
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn connect(global: &GlobalArgs) -> anyhow::Result<async_nats::Client> {
    let nats = global
        .nats
        .connect_options(&global.nats_url, Duration::from_secs(5), "trellis-cli");
    Ok(nats.connect().await?)
}

/// Every host that answers `host.ping` within `timeout`.
pub(crate) async fn ping_hosts(
    client: &async_nats::Client,
    lattice: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<Host>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subjects::host_ping(lattice), inbox, "".into())
        .await?;
    client.flush().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut hosts: Vec<Host> = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if message.status.is_some() {
            // "no responders": no host is listening yet.
            continue;
        }
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
    Ok(hosts)
}

async fn get_hosts(global: &GlobalArgs, timeout: Duration) -> anyhow::Result<ExitCode> {
    let client = connect(global).await?;
    let mut hosts = ping_hosts(&client, &global.lattice, timeout).await?;
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
