//! `trellis`: the one binary people use. See DESIGN.md §5 for the contract of names and flags.

mod app_cmd;
mod builtin;
mod claims_cmd;
mod host_cmd;
mod keys_cmd;
mod lattice_cmd;
mod nats_args;
mod output;
mod provider_cmd;
mod run_cmd;
mod signals;
mod state_cmd;
mod trust;
mod up_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::OutputFormat;

#[derive(Parser, Debug)]
#[command(
    name = "trellis",
    version,
    about = "A distributed WebAssembly application host"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// NATS server of the lattice.
    #[arg(
        long,
        global = true,
        env = "TRELLIS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Lattice name.
    #[arg(
        long,
        global = true,
        env = "TRELLIS_LATTICE",
        default_value = "default"
    )]
    pub lattice: String,
    /// Output format.
    #[arg(long, global = true, env = "TRELLIS_OUTPUT", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Credentials and TLS for the NATS connection.
    #[command(flatten)]
    pub nats: nats_args::NatsArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate nkeys.
    Keys {
        #[command(subcommand)]
        command: keys_cmd::KeysCommand,
    },
    /// Sign and inspect component claims.
    Claims {
        #[command(subcommand)]
        command: claims_cmd::ClaimsCommand,
    },
    /// Serve one component over HTTP in this process, without NATS (like `wasmtime serve`).
    Run(run_cmd::RunArgs),
    /// Run a host joined to the lattice.
    Host(host_cmd::HostArgs),
    /// Scale a component on a host (0 stops it).
    Scale(lattice_cmd::ScaleArgs),
    /// Set or remove host labels.
    Label {
        #[command(subcommand)]
        command: lattice_cmd::LabelCommand,
    },
    /// Link components (and providers) for an interface package.
    Link {
        #[command(subcommand)]
        command: state_cmd::LinkCommand,
    },
    /// Named configuration maps, shared across the lattice.
    Config {
        #[command(subcommand)]
        command: state_cmd::ConfigCommand,
    },
    /// Start or stop capability providers on a host.
    Provider {
        #[command(subcommand)]
        command: provider_cmd::ProviderCommand,
    },
    /// Call a component's exported function across the lattice.
    Call(state_cmd::CallArgs),
    /// Query the lattice.
    Get {
        #[command(subcommand)]
        command: lattice_cmd::GetCommand,
    },
    /// A whole lattice on this machine: nats-server, hosts, wadm, and a manifest deployed.
    Up(up_cmd::UpArgs),
    /// The manifest manager: serves the wadm API and keeps deployed applications running.
    Wadm(app_cmd::WadmArgs),
    /// Applications (wadm manifests): deploy, list, status, versions, undeploy, delete.
    App {
        #[command(subcommand)]
        command: app_cmd::AppCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `trellis up` prints its own progress; its log shows only warnings unless asked.
    init_tracing(if matches!(cli.command, Command::Up(_)) {
        "warn"
    } else {
        "info,wasmtime=warn,cranelift=warn"
    });
    let result = match cli.command {
        Command::Keys { command } => keys_cmd::run(command, &cli.global),
        Command::Claims { command } => claims_cmd::run(command, &cli.global),
        Command::Run(args) => run_cmd::run(args, &cli.global),
        Command::Host(args) => host_cmd::run(args, &cli.global),
        Command::Get { command } => lattice_cmd::run(command, &cli.global),
        Command::Scale(args) => lattice_cmd::scale(args, &cli.global),
        Command::Label { command } => lattice_cmd::label(command, &cli.global),
        Command::Link { command } => state_cmd::link(command, &cli.global),
        Command::Config { command } => state_cmd::config(command, &cli.global),
        Command::Call(args) => state_cmd::call(args, &cli.global),
        Command::Provider { command } => provider_cmd::provider(command, &cli.global),
        Command::Wadm(args) => app_cmd::serve(args, &cli.global),
        Command::Up(args) => up_cmd::run(args, &cli.global),
        Command::App { command } => app_cmd::app(command, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
}
