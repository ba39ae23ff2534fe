//! `trellis wadm` (the manifest manager) and `trellis app …` (its API).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trellis_wadm::api::{
    DeleteResult, DeployResult, GetResult, PutResult, StatusResult, StatusType,
};
use trellis_wadm::client::WadmClient;
use trellis_wadm::manifest::Manifest;
use trellis_wadm::reconciler::ReconcileOptions;
use trellis_wadm::server::Wadm;

use crate::GlobalArgs;
use crate::lattice_cmd::connect;
use crate::output::{OutputFormat, print_json};
use crate::signals::wait_for_shutdown_signal;

#[derive(clap::Args, Debug)]
pub struct WadmArgs {
    /// A full reconcile pass at least this often.
    #[arg(long, env = "TRELLIS_WADM_RESYNC", default_value = "5s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// A host whose heartbeat stops for this long is treated as gone and its instances are
    /// placed elsewhere (hosts heartbeat every 2 s by default).
    #[arg(long, env = "TRELLIS_WADM_HOST_EXPIRY", default_value = "5s", value_parser = humantime::parse_duration)]
    host_expiry: Duration,
}

#[derive(clap::Subcommand, Debug)]
pub enum AppCommand {
    /// Store a manifest as a new version and deploy it.
    Deploy {
        /// The manifest (wadm/OAM YAML or JSON).
        file: PathBuf,
        /// Wait until the application is deployed or failed, showing progress.
        #[arg(long, env = "TRELLIS_APP_WAIT")]
        wait: bool,
        /// How long `--wait` waits.
        #[arg(long, env = "TRELLIS_APP_WAIT_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Store a manifest as a new version without deploying it.
    Put { file: PathBuf },
    /// Deploy a stored version (the newest by default; an older one rolls back).
    DeployVersion {
        name: String,
        version: Option<String>,
        #[arg(long, env = "TRELLIS_APP_WAIT")]
        wait: bool,
        #[arg(long, env = "TRELLIS_APP_WAIT_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Every application, its newest and deployed versions and status.
    List,
    /// An application's status, overall and per scaler.
    Status { name: String },
    /// An application's versions.
    Versions { name: String },
    /// Stop what an application runs (its versions stay stored).
    Undeploy { name: String },
    /// Delete an application (undeploying it), or one version with `--version`.
    Delete {
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `trellis wadm`: serves the API and reconciles until Ctrl-C / SIGTERM.
pub fn serve(args: WadmArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let nats = connect(global).await?;
        let id = format!(
            "wadm-{}-{}",
            std::process::id(),
            nats.server_info().client_id
        );
        let options = ReconcileOptions {
            resync: args.resync,
            host_expiry: args.host_expiry,
            ..ReconcileOptions::default()
        };
        let wadm = Wadm::start(nats, &global.lattice, &id, options)
            .await
            .context("cannot start wadm")?;
        println!("wadm {id} serving lattice `{}`", global.lattice);
        wait_for_shutdown_signal().await;
        tracing::info!("wadm shutting down");
        wadm.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn app(command: AppCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let client = WadmClient::new(connect(global).await?, &global.lattice);
        match command {
            AppCommand::Deploy {
                file,
                wait,
                timeout,
            } => {
                let (name, version) = put(&client, &file, global).await?;
                deploy(&client, &name, Some(&version), wait, timeout, global).await
            }
            AppCommand::Put { file } => {
                put(&client, &file, global).await.map(|_| ExitCode::SUCCESS)
            }
            AppCommand::DeployVersion {
                name,
                version,
                wait,
                timeout,
            } => deploy(&client, &name, version.as_deref(), wait, timeout, global).await,
            AppCommand::List => list(&client, global).await,
            AppCommand::Status { name } => status(&client, &name, global).await,
            AppCommand::Versions { name } => {
                let reply = client.versions(&name).await?;
                if reply.result != GetResult::Success {
                    bail!("{}", reply.message);
                }
                match global.output {
                    OutputFormat::Json => print_json(&reply)?,
                    OutputFormat::Human => {
                        for v in &reply.versions {
                            let mark = if v.deployed { "  (deployed)" } else { "" };
                            println!("{}{mark}", v.version);
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::Undeploy { name } => {
                let reply = client.undeploy(&name).await?;
                if reply.result != DeployResult::Acknowledged {
                    bail!("{}", reply.message);
                }
                done(global, &reply, &reply.message)
            }
            AppCommand::Delete { name, version } => {
                let reply = client.delete(&name, version.as_deref()).await?;
                match reply.result {
                    DeleteResult::Deleted => done(global, &reply, &reply.message),
                    _ => bail!("{}", reply.message),
                }
            }
        }
    })
}

fn done(
    global: &GlobalArgs,
    reply: &impl serde::Serialize,
    message: &str,
) -> anyhow::Result<ExitCode> {
    match global.output {
        OutputFormat::Json => print_json(reply)?,
        OutputFormat::Human => println!("{message}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a manifest file with `${VAR}` replaced from the environment, and validates it
/// locally (errors name the file, line and field).
pub(crate) fn read_manifest(file: &Path) -> anyhow::Result<(Manifest, String)> {
    let raw = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the manifest {}", file.display()))?;
    let text = trellis_wadm::manifest::env::from_env(&raw)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let source = file.display().to_string();
    let (manifest, warnings) =
        Manifest::parse_with_warnings(&text, Some(&source)).map_err(|e| anyhow::anyhow!("{e}"))?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok((manifest, text))
}

/// Validates the file locally, then stores it; `(name, version)` as stored.
pub(crate) async fn put(
    client: &WadmClient,
    file: &Path,
    global: &GlobalArgs,
) -> anyhow::Result<(String, String)> {
    let (_, text) = read_manifest(file)?;
    let reply = client.put(&text).await?;
    if reply.result == PutResult::Error {
        bail!("wadm refused {}: {}", file.display(), reply.message);
    }
    if global.output == OutputFormat::Human {
        println!("{}", reply.message);
    }
    Ok((reply.name, reply.current_version))
}

pub(crate) async fn deploy(
    client: &WadmClient,
    name: &str,
    version: Option<&str>,
    wait: bool,
    timeout: Duration,
    global: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let reply = client.deploy(name, version).await?;
    if reply.result != DeployResult::Acknowledged {
        bail!("{}", reply.message);
    }
    let version = reply.version.clone().unwrap_or_default();
    if !wait {
        return done(global, &reply, &reply.message);
    }
    if global.output == OutputFormat::Human {
        println!("{}", reply.message);
    }
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let status = client.status(name).await?;
        if let Some(s) = status.status.filter(|s| s.version == version) {
            let line = format!("{}: {}", s.info.status_type, s.info.message);
            if line != last && global.output == OutputFormat::Human {
                println!("  {line}");
            }
            last = line;
            match s.info.status_type {
                StatusType::Deployed => {
                    if global.output == OutputFormat::Json {
                        print_json(&s)?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                StatusType::Failed => bail!(
                    "application `{name}` version `{version}` failed: {}",
                    s.info.message
                ),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!(
                "application `{name}` version `{version}` is not deployed after {}: last status \
                 `{last}`; see `trellis app status {name}`",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn list(client: &WadmClient, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let apps = client.list().await?;
    match global.output {
        OutputFormat::Json => print_json(&apps)?,
        OutputFormat::Human => {
            println!("{:<24} {:<12} {:<12} STATUS", "NAME", "LATEST", "DEPLOYED");
            for app in apps {
                println!(
                    "{:<24} {:<12} {:<12} {}",
                    app.name,
                    app.version,
                    app.deployed_version.as_deref().unwrap_or("-"),
                    app.status
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &WadmClient, name: &str, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let reply = client.status(name).await?;
    if reply.result != StatusResult::Ok {
        bail!("{}", reply.message);
    }
    let Some(status) = reply.status else {
        bail!("wadm sent no status for `{name}`");
    };
    match global.output {
        OutputFormat::Json => print_json(&status)?,
        OutputFormat::Human => {
            println!(
                "{name} {}: {} {}",
                status.version, status.info.status_type, status.info.message
            );
            for scaler in &status.scalers {
                println!(
                    "  {:<14} {:<28} {} {}",
                    scaler.kind, scaler.id, scaler.info.status_type, scaler.info.message
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
