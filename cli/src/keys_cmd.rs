//! `trellis keys gen <kind>`.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use trellis_protocol::keys::KeyKind;

use crate::GlobalArgs;
use crate::output::{OutputFormat, print_json};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a key pair: account, module, service, server or user.
    Gen {
        /// account | module | service | server | user
        kind: String,
    },
}

#[derive(Serialize)]
struct GeneratedKey {
    public_key: String,
    seed: String,
}

pub fn run(command: KeysCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let KeysCommand::Gen { kind } = command;
    let kind: KeyKind = kind.parse()?;
    let pair = kind.generate();
    let key = GeneratedKey {
        public_key: pair.public_key(),
        seed: pair
            .seed()
            .map_err(|e| anyhow::anyhow!("cannot encode the seed: {e}"))?,
    };
    match global.output {
        OutputFormat::Json => print_json(&key)?,
        OutputFormat::Human => {
            println!("public: {}", key.public_key);
            println!("seed: {}", key.seed);
        }
    }
    Ok(ExitCode::SUCCESS)
}
