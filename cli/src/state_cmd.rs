//! Lattice-wide state and calls: `trellis link put|del|get`, `trellis config put|get|del`,
//! `trellis get links|config`, `trellis call`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_protocol::ctl::{CtlResponse, DeleteLinkRequest, Link, subjects};

use crate::GlobalArgs;
use crate::lattice_cmd::{connect, request};
use crate::output::{OutputFormat, print_json};

/// `trellis link put|del|get`.
#[derive(Subcommand, Debug)]
pub enum LinkCommand {
    /// Link calls from SOURCE to TARGET for interfaces of the package NS:PKG.
    Put {
        /// The calling component (or provider) id.
        source: String,
        /// The component (or provider) id that serves the interfaces.
        target: String,
        /// The WIT package, `namespace:package` (e.g. `wasi:keyvalue`).
        package: String,
        /// An interface of the package (e.g. `store`); repeatable.
        #[arg(
            long = "interface",
            env = "TRELLIS_LINK_INTERFACES",
            value_delimiter = ',',
            required = true
        )]
        interfaces: Vec<String>,
        /// The link's name, for components that use several links to one package.
        #[arg(long, env = "TRELLIS_LINK_NAME", default_value = "default")]
        link_name: String,
        /// A config name for the source side; repeatable.
        #[arg(long, env = "TRELLIS_LINK_SOURCE_CONFIG", value_delimiter = ',')]
        source_config: Vec<String>,
        /// A config name for the target side; repeatable.
        #[arg(long, env = "TRELLIS_LINK_TARGET_CONFIG", value_delimiter = ',')]
        target_config: Vec<String>,
    },
    /// Remove the link of SOURCE for the package NS:PKG.
    Del {
        source: String,
        package: String,
        #[arg(long, env = "TRELLIS_LINK_NAME", default_value = "default")]
        link_name: String,
    },
    /// List every link of the lattice.
    Get,
}

/// `trellis config put|get|del`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Create or replace the named config with `key=value` pairs.
    Put { name: String, values: Vec<String> },
    /// Show a named config.
    Get { name: String },
    /// Delete a named config.
    Del { name: String },
}

/// `trellis call COMPONENT_ID ns:pkg/iface.func [ARGS]...`.
#[derive(clap::Args, Debug)]
pub struct CallArgs {
    /// The component to call.
    component_id: String,
    /// The exported function, `ns:pkg/iface.function`.
    function: String,
    /// Arguments as JSON values (`'"text"'`, `5`, `'{"field": 1}'`); a word that is not
    /// JSON is taken as a string.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// How long to wait for the result.
    #[arg(long, env = "TRELLIS_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Sends a lattice-wide request; fails with the host's message unless it succeeded.
async fn lattice_request<T: serde::de::DeserializeOwned>(
    global: &GlobalArgs,
    subject: String,
    body: Vec<u8>,
) -> anyhow::Result<CtlResponse<T>> {
    let client = connect(global).await?;
    let reply: CtlResponse<T> = request(&client, subject, body).await?;
    if !reply.success {
        anyhow::bail!("refused: {}", reply.message);
    }
    Ok(reply)
}

fn split_package(package: &str) -> anyhow::Result<(String, String)> {
    package
        .split_once(':')
        .filter(|(ns, pkg)| !ns.is_empty() && !pkg.is_empty() && !pkg.contains('/'))
        .map(|(ns, pkg)| (ns.to_string(), pkg.to_string()))
        .ok_or_else(|| {
            anyhow::anyhow!("package `{package}` must be `namespace:package`, e.g. `wasi:keyvalue`")
        })
}

fn print_message(global: &GlobalArgs, message: &str) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => print_json(&serde_json::json!({"message": message})),
        OutputFormat::Human => {
            println!("{message}");
            Ok(())
        }
    }
}

pub fn link(command: LinkCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let lattice = &global.lattice;
    runtime()?.block_on(async {
        match command {
            LinkCommand::Put {
                source,
                target,
                package,
                interfaces,
                link_name,
                source_config,
                target_config,
            } => {
                let (wit_namespace, wit_package) = split_package(&package)?;
                let link = Link {
                    source_id: source,
                    target,
                    name: link_name,
                    wit_namespace,
                    wit_package,
                    interfaces,
                    source_config,
                    target_config,
                };
                let reply: CtlResponse<()> = lattice_request(
                    global,
                    subjects::link_put(lattice),
                    serde_json::to_vec(&link)?,
                )
                .await?;
                print_message(global, &reply.message)?;
            }
            LinkCommand::Del {
                source,
                package,
                link_name,
            } => {
                let (wit_namespace, wit_package) = split_package(&package)?;
                let body = DeleteLinkRequest {
                    source_id: source,
                    name: link_name,
                    wit_namespace,
                    wit_package,
                };
                let reply: CtlResponse<()> = lattice_request(
                    global,
                    subjects::link_del(lattice),
                    serde_json::to_vec(&body)?,
                )
                .await?;
                print_message(global, &reply.message)?;
            }
            LinkCommand::Get => get_links(global).await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `trellis get links` / `trellis link get`.
pub async fn get_links(global: &GlobalArgs) -> anyhow::Result<()> {
    let reply: CtlResponse<Vec<Link>> =
        lattice_request(global, subjects::link_get(&global.lattice), Vec::new()).await?;
    let mut links = reply.response.unwrap_or_default();
    links.sort_by(|a, b| {
        (&a.source_id, &a.name, &a.target).cmp(&(&b.source_id, &b.name, &b.target))
    });
    match global.output {
        OutputFormat::Json => print_json(&links)?,
        OutputFormat::Human => {
            if links.is_empty() {
                println!("no links in lattice `{}`", global.lattice);
            }
            for l in &links {
                println!(
                    "{} -> {}  {}:{}/{{{}}}  name={}",
                    l.source_id,
                    l.target,
                    l.wit_namespace,
                    l.wit_package,
                    l.interfaces.join(","),
                    l.name
                );
            }
        }
    }
    Ok(())
}

pub fn config(command: ConfigCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let lattice = &global.lattice;
    runtime()?.block_on(async {
        match command {
            ConfigCommand::Put { name, values } => {
                let values: BTreeMap<String, String> = crate::host_cmd::parse_labels(&values)
                    .context("config values are `key=value` pairs")?;
                let reply: CtlResponse<()> = lattice_request(
                    global,
                    subjects::config_put(lattice, &name),
                    serde_json::to_vec(&values)?,
                )
                .await?;
                print_message(global, &reply.message)?;
            }
            ConfigCommand::Get { name } => return get_config(global, &name).await,
            ConfigCommand::Del { name } => {
                let reply: CtlResponse<()> =
                    lattice_request(global, subjects::config_del(lattice, &name), Vec::new())
                        .await?;
                print_message(global, &reply.message)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `trellis get config NAME`: exits non-zero when there is no such config.
pub async fn get_config(global: &GlobalArgs, name: &str) -> anyhow::Result<ExitCode> {
    let reply: CtlResponse<BTreeMap<String, String>> = lattice_request(
        global,
        subjects::config_get(&global.lattice, name),
        Vec::new(),
    )
    .await?;
    let Some(values) = reply.response else {
        anyhow::bail!("no config named `{name}` in lattice `{}`", global.lattice);
    };
    match global.output {
        OutputFormat::Json => print_json(&values)?,
        OutputFormat::Human => {
            for (k, v) in &values {
                println!("{k}={v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn call(args: CallArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (interface, function) = args
        .function
        .rsplit_once('.')
        .filter(|(i, f)| i.contains(':') && i.contains('/') && !f.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` must be `namespace:package/interface.function`, e.g. `trellis:example/greet.greet`",
                args.function
            )
        })?;
    let values: Vec<rmpv::Value> = args
        .args
        .iter()
        .map(|a| {
            json_to_value(
                &serde_json::from_str(a).unwrap_or_else(|_| serde_json::Value::String(a.clone())),
            )
        })
        .collect();
    let results = runtime()?.block_on(async {
        let client = connect(global).await?;
        trellis_host::lattice::call_as_client(
            &client,
            &global.lattice,
            &args.component_id,
            interface,
            function,
            values,
            args.timeout,
        )
        .await
    })?;
    let results: Vec<serde_json::Value> = results.iter().map(value_to_json).collect();
    match global.output {
        OutputFormat::Json => print_json(&results)?,
        OutputFormat::Human => {
            for r in &results {
                match r {
                    serde_json::Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_to_value(json: &serde_json::Value) -> rmpv::Value {
    use serde_json::Value as J;
    match json {
        J::Null => rmpv::Value::Nil,
        J::Bool(b) => rmpv::Value::Boolean(*b),
        J::Number(n) => n
            .as_u64()
            .map(rmpv::Value::from)
            .or_else(|| n.as_i64().map(rmpv::Value::from))
            .unwrap_or_else(|| rmpv::Value::F64(n.as_f64().unwrap_or_default())),
        J::String(s) => rmpv::Value::from(s.as_str()),
        J::Array(items) => rmpv::Value::Array(items.iter().map(json_to_value).collect()),
        J::Object(map) => rmpv::Value::Map(
            map.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), json_to_value(v)))
                .collect(),
        ),
    }
}

fn value_to_json(value: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value as V;
    match value {
        V::Nil => serde_json::Value::Null,
        V::Boolean(b) => (*b).into(),
        V::Integer(n) => n
            .as_u64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_i64().map(serde_json::Value::from))
            .unwrap_or_default(),
        V::F32(f) => serde_json::Value::from(f64::from(*f)),
        V::F64(f) => serde_json::Value::from(*f),
        V::String(s) => s.as_str().unwrap_or_default().into(),
        V::Binary(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
        V::Array(items) => items.iter().map(value_to_json).collect(),
        V::Map(entries) => {
            let all_strings = entries.iter().all(|(k, _)| k.is_str());
            if all_strings {
                serde_json::Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().unwrap_or_default().to_string(), value_to_json(v))
                        })
                        .collect(),
                )
            } else {
                entries
                    .iter()
                    .map(|(k, v)| serde_json::json!([value_to_json(k), value_to_json(v)]))
                    .collect()
            }
        }
        V::Ext(..) => serde_json::Value::Null,
    }
}
