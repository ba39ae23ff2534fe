//! `trellis provider start|stop`: capability providers on a host (control interface
//! `provider.start.{host}` / `provider.stop.{host}`).

use std::process::ExitCode;

use trellis_protocol::ctl::subjects;

use crate::GlobalArgs;
use crate::lattice_cmd::control;
use crate::output::{OutputFormat, print_json};

#[derive(clap::Subcommand, Debug)]
pub enum ProviderCommand {
    /// Start a provider on a host: `builtin://keyvalue-nats`, `builtin://sql-mysql`, … run
    /// inside the host; links then route components' imports to it by its id.
    Start {
        /// The host's id (`N…`).
        host: String,
        /// `builtin://NAME` (keyvalue-memory, keyvalue-redis, keyvalue-nats, sql-mysql,
        /// sql-postgres) or a wasmCloud provider image such as
        /// `ghcr.io/wasmcloud/keyvalue-redis:0.28`.
        provider_ref: String,
        /// The provider's id in the lattice (the target of links).
        provider_id: String,
        /// A named config for the provider itself; repeatable.
        #[arg(long = "config", env = "TRELLIS_CONFIG_NAMES", value_delimiter = ',')]
        config: Vec<String>,
    },
    /// Stop a provider on a host.
    Stop {
        /// The host's id (`N…`).
        host: String,
        /// The provider's id.
        provider_id: String,
    },
}

pub fn provider(command: ProviderCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (host, id, verb) = match command {
        ProviderCommand::Start {
            host,
            provider_ref,
            provider_id,
            config,
        } => {
            let body = serde_json::json!({
                "provider_id": provider_id, "provider_ref": provider_ref,
                "host_id": host, "config": config,
            });
            let subject = subjects::provider_start(&global.lattice, &host);
            control(global, &host, subject, serde_json::to_vec(&body)?)?;
            (host, provider_id, "starting")
        }
        ProviderCommand::Stop { host, provider_id } => {
            let body = serde_json::json!({"provider_id": provider_id, "host_id": host});
            let subject = subjects::provider_stop(&global.lattice, &host);
            control(global, &host, subject, serde_json::to_vec(&body)?)?;
            (host, provider_id, "stopping")
        }
    };
    match global.output {
        OutputFormat::Json => print_json(&serde_json::json!({"accepted": true}))?,
        OutputFormat::Human => println!(
            "host {host} accepted: {verb} provider {id} (watch `trellis get inventory {host}`)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
