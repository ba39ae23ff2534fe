//! Running a provider as its own process on the lattice.
//!
//! A provider binary's `main` is one call: `trellis_provider_sdk::process::run(provider)`.
//! The host that starts it (`provider.start`) writes one line of JSON, [`HostData`], to its
//! stdin and keeps the pipe open. The process then:
//!
//! 1. connects to NATS with the host's connection settings (URL, credentials, TLS);
//! 2. calls [`Provider::init`], then puts every link in `HostData::links`;
//! 3. serves `wasmbus.rpc.{lattice}.{provider_id}.>` in the queue group
//!    `{lattice}.{provider_id}`: capability calls (see [`crate::wire`]) from any host, signed
//!    by that host's key; and lifecycle messages (link put/delete, health, shutdown) on its
//!    own subject ([`wire::lifecycle_target`]), only from the host that started it;
//! 4. stops — [`Provider::shutdown`], drain NATS, exit — on a `shutdown` message, SIGTERM,
//!    Ctrl-C, or when its stdin closes. The last one means the host is gone (even killed with
//!    SIGKILL), so a provider never outlives its host as an orphan.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;
use trellis_protocol::nats::NatsConnect;
use trellis_protocol::rpc::{self, CallError, CallErrorKind, CallReply, CallRequest};

use crate::http::{ComponentInvoker, HANDLE, HttpRequest, HttpResponse, INCOMING_HANDLER};
use crate::link::{CallContext, LinkConfig};
use crate::provider::{Capabilities, InitContext, Provider, ProviderError};
use crate::wire;

/// What the host tells a provider process on stdin (one JSON line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostData {
    pub lattice: String,
    /// The starting host's public key (`N…`); only it may send lifecycle messages.
    pub host_id: String,
    pub provider_id: String,
    pub nats_url: String,
    #[serde(default)]
    pub nats_creds_file: Option<PathBuf>,
    #[serde(default)]
    pub nats_nkey_seed: Option<String>,
    #[serde(default)]
    pub nats_tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub nats_tls_client_cert: Option<PathBuf>,
    #[serde(default)]
    pub nats_tls_client_key: Option<PathBuf>,
    /// The provider's named configs, merged.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Every link that names this provider as source or target, configs resolved.
    #[serde(default)]
    pub links: Vec<LinkConfig>,
}

impl HostData {
    fn nats(&self) -> NatsConnect {
        let mut connect =
            NatsConnect::new(&self.nats_url, format!("provider {}", self.provider_id));
        connect.creds_file = self.nats_creds_file.clone();
        connect.nkey_seed = self.nats_nkey_seed.clone();
        connect.tls_ca_file = self.nats_tls_ca_file.clone();
        connect.tls_client_cert = self.nats_tls_client_cert.clone();
        connect.tls_client_key = self.nats_tls_client_key.clone();
        connect
    }
}

/// Reads [`HostData`], serves the lattice until told to stop, then shuts the provider down.
pub async fn run<P: Provider>(provider: Arc<P>) -> Result<(), ProviderError> {
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .await
        .map_err(|e| ProviderError::new(format!("cannot read host data from stdin: {e}")))?;
    let host: HostData = serde_json::from_str(line.trim()).map_err(|e| {
        ProviderError::new(format!(
            "stdin must start with one line of host data (JSON) from the Trellis host that \
             starts this provider (`provider.start`); got {} bytes that do not parse: {e}",
            line.len()
        ))
    })?;
    // The host keeps stdin open for as long as it lives.
    let host_gone = async move {
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut rest).await;
    };
    serve(provider, host, host_gone).await
}

/// Ends the process with `result` (a provider binary's last step, after [`run`]).
///
/// Exits at once rather than returning from `main`: tokio's stdin reader may still be blocked
/// in a read when the provider stops for another reason (SIGTERM, a shutdown message), and
/// dropping the runtime would wait for it.
pub fn exit(name: &str, result: Result<(), ProviderError>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{name} provider: {e}");
            std::process::exit(1)
        }
    }
}

/// The whole `main` of a provider executable: logs to stderr (an `EnvFilter` from
/// `TRELLIS_LOG`, default `info`; stdin is the host's pipe and stdout is unused), [`run`]s the
/// provider until the host stops it, and [`exit`]s with its outcome.
///
/// ```no_run
/// # struct MyProvider;
/// # #[trellis_provider_sdk::async_trait]
/// # impl trellis_provider_sdk::Provider for MyProvider {
/// #     fn capabilities(self: std::sync::Arc<Self>) -> trellis_provider_sdk::Capabilities {
/// #         Default::default()
/// #     }
/// # }
/// #[tokio::main]
/// async fn main() {
///     trellis_provider_sdk::process::main("my-provider", MyProvider).await
/// }
/// ```
pub async fn main<P: Provider>(name: &str, provider: P) -> ! {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    exit(name, run(Arc::new(provider)).await)
}

/// Serves the lattice for `provider` until `stop` completes or a stop signal arrives.
pub async fn serve<P: Provider>(
    provider: Arc<P>,
    host: HostData,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ProviderError> {
    let client = host
        .nats()
        .connect()
        .await
        .map_err(|e| ProviderError::new(e.to_string()))?;
    provider.set_invoker(Arc::new(NatsInvoker {
        client: client.clone(),
        lattice: host.lattice.clone(),
        key: Arc::new(nkeys::KeyPair::new_user()),
    }));
    provider
        .init(&InitContext {
            provider_id: host.provider_id.clone(),
            lattice: host.lattice.clone(),
            host_id: host.host_id.clone(),
            config: host.config.clone(),
        })
        .await?;
    for link in &host.links {
        if let Err(e) = put_link(&*provider, &host.provider_id, link).await {
            tracing::warn!(source = %link.source_id, target = %link.target, error = %e, "link refused");
        }
    }
    let subject = rpc::target_wildcard(&host.lattice, &host.provider_id);
    let group = rpc::queue_group(&host.lattice, &host.provider_id);
    let shared = client
        .queue_subscribe(subject, group)
        .await
        .map_err(|e| ProviderError::new(format!("cannot subscribe to calls: {e}")))?;
    let own = rpc::target_wildcard(
        &host.lattice,
        &wire::lifecycle_target(&host.provider_id, &host.host_id),
    );
    let lifecycle = client
        .subscribe(own)
        .await
        .map_err(|e| ProviderError::new(format!("cannot subscribe to lifecycle messages: {e}")))?;
    let mut calls = futures::stream::select(shared, lifecycle);
    tracing::info!(provider = %host.provider_id, lattice = %host.lattice, "provider serving");
    let capabilities = provider.clone().capabilities();
    let host = Arc::new(host);
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                tracing::info!("the host closed stdin (it is gone)");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted");
                break;
            }
            _ = shutdown_rx.changed() => {
                tracing::info!("the host asked this provider to shut down");
                break;
            }
            () = terminated() => {
                tracing::info!("SIGTERM");
                break;
            }
            message = calls.next() => {
                let Some(message) = message else { break };
                let provider = provider.clone();
                let capabilities = capabilities.clone();
                let client = client.clone();
                let host = host.clone();
                let shutdown = shutdown_tx.clone();
                tokio::spawn(async move {
                    let (reply, stop) = answer(&*provider, &capabilities, &host, &message.payload).await;
                    if let Some(inbox) = message.reply {
                        let _ = client.publish(inbox, rpc::encode_reply(&reply).into()).await;
                    }
                    if stop {
                        let _ = shutdown.send(true);
                    }
                });
            }
        }
    }
    tracing::info!(provider = %host.provider_id, "provider stopping");
    drop(calls);
    // Each step is bounded: the host, NATS or the backend may already be gone (a killed host
    // takes its NATS server and databases down with it in tests), and a provider must exit
    // rather than wait for them forever.
    let result = match tokio::time::timeout(SHUTDOWN_GRACE, provider.shutdown()).await {
        Ok(result) => result,
        Err(_) => Err(ProviderError::new(format!(
            "shutdown did not finish within {SHUTDOWN_GRACE:?}"
        ))),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
    result
}

/// How long [`Provider::shutdown`] may take when the process stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs components' HTTP handlers over NATS, signed with this process's own user key
/// (a provider calls components without a link of theirs, like `trellis call`).
struct NatsInvoker {
    client: async_nats::Client,
    lattice: String,
    key: Arc<nkeys::KeyPair>,
}

/// How long a component may take to answer an HTTP request sent over NATS.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[async_trait::async_trait]
impl ComponentInvoker for NatsInvoker {
    async fn handle_http(
        &self,
        component: &str,
        request: HttpRequest,
    ) -> Result<HttpResponse, String> {
        let call = CallRequest::new(
            rpc::Caller::new(
                self.key.public_key(),
                None,
                trellis_protocol::ctl::DEFAULT_LINK_NAME,
            ),
            &self.lattice,
            component,
            INCOMING_HANDLER,
            HANDLE,
            HTTP_TIMEOUT,
            vec![wire::arg(&request)],
        );
        let frame = rpc::sign(&call, &self.key).map_err(|e| e.to_string())?;
        let subject = rpc::call_subject(&self.lattice, component, INCOMING_HANDLER, HANDLE);
        let reply =
            match tokio::time::timeout(HTTP_TIMEOUT, self.client.request(subject, frame.into()))
                .await
            {
                Err(_) => {
                    return Err(format!(
                        "component `{component}` did not answer within {HTTP_TIMEOUT:?}"
                    ));
                }
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    return Err(format!(
                        "component `{component}` is not running in lattice `{}`",
                        self.lattice
                    ));
                }
                Ok(Err(e)) => {
                    return Err(format!("request to component `{component}` failed: {e}"));
                }
                Ok(Ok(reply)) => reply,
            };
        match rpc::decode_reply(&reply.payload).map_err(|e| e.to_string())? {
            CallReply::Ok(values) => {
                let value = values.into_iter().next().unwrap_or(rmpv::Value::Nil);
                rmpv::ext::from_value(value)
                    .map_err(|e| format!("malformed response from component `{component}`: {e}"))
            }
            CallReply::Err(e) => Err(format!("component `{component}`: {e}")),
        }
    }
}

#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}

async fn put_link(
    provider: &dyn Provider,
    provider_id: &str,
    link: &LinkConfig,
) -> Result<(), ProviderError> {
    if link.target == provider_id {
        provider.receive_link_config_as_target(link).await?;
    }
    if link.source_id == provider_id {
        provider.receive_link_config_as_source(link).await?;
    }
    Ok(())
}

async fn delete_link(
    provider: &dyn Provider,
    provider_id: &str,
    link: &LinkConfig,
) -> Result<(), ProviderError> {
    if link.target == provider_id {
        provider.delete_link_as_target(link).await?;
    }
    if link.source_id == provider_id {
        provider.delete_link_as_source(link).await?;
    }
    Ok(())
}

fn refused(kind: CallErrorKind, message: impl Into<String>) -> CallReply {
    CallReply::Err(CallError {
        kind,
        message: message.into(),
    })
}

/// The reply to one frame, and whether the provider should stop.
async fn answer(
    provider: &dyn Provider,
    capabilities: &Capabilities,
    host: &HostData,
    frame: &[u8],
) -> (CallReply, bool) {
    let request: CallRequest = match rpc::open(frame) {
        Ok(request) => request,
        Err(e) => return (refused(CallErrorKind::BadRequest, e.to_string()), false),
    };
    let timeout = Duration::from_millis(request.timeout_ms.max(1));
    if request.interface == wire::LIFECYCLE {
        if request.caller.key != host.host_id {
            let message = format!(
                "lifecycle messages are accepted only from host {}, not {}",
                host.host_id, request.caller.key
            );
            return (refused(CallErrorKind::Forbidden, message), false);
        }
        return lifecycle(provider, host, request).await;
    }
    let Some(component) = request.caller.component_id.clone() else {
        let message = "capability calls must come from a component through a link";
        return (refused(CallErrorKind::Forbidden, message), false);
    };
    let cx = CallContext::new(component, request.caller.link_name.clone());
    let call = wire::dispatch(
        capabilities,
        &cx,
        &request.interface,
        &request.function,
        request.args,
    );
    let reply = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(values)) => CallReply::Ok(values),
        Ok(Err(e)) => CallReply::Err(e),
        Err(_) => refused(
            CallErrorKind::Timeout,
            format!(
                "provider {} did not finish `{}.{}` within {timeout:?}",
                host.provider_id, request.interface, request.function
            ),
        ),
    };
    (reply, false)
}

async fn lifecycle(
    provider: &dyn Provider,
    host: &HostData,
    request: CallRequest,
) -> (CallReply, bool) {
    let link = || -> Result<LinkConfig, CallReply> {
        let value = request.args.first().cloned().unwrap_or(rmpv::Value::Nil);
        rmpv::ext::from_value(value)
            .map_err(|e| refused(CallErrorKind::BadRequest, format!("malformed link: {e}")))
    };
    let done = |result: Result<(), ProviderError>| CallReply::Ok(vec![wire::arg(&result)]);
    match request.function.as_str() {
        wire::LINK_PUT => match link() {
            Ok(link) => (
                done(put_link(provider, &host.provider_id, &link).await),
                false,
            ),
            Err(reply) => (reply, false),
        },
        wire::LINK_DEL => match link() {
            Ok(link) => (
                done(delete_link(provider, &host.provider_id, &link).await),
                false,
            ),
            Err(reply) => (reply, false),
        },
        wire::CONFIG_UPDATE => {
            let value = request.args.first().cloned().unwrap_or(rmpv::Value::Nil);
            match rmpv::ext::from_value::<BTreeMap<String, String>>(value) {
                Ok(config) => (done(provider.update_config(&config).await), false),
                Err(e) => (
                    refused(CallErrorKind::BadRequest, format!("malformed config: {e}")),
                    false,
                ),
            }
        }
        wire::HEALTH => (
            CallReply::Ok(vec![wire::arg(&provider.health().await)]),
            false,
        ),
        wire::SHUTDOWN => (done(Ok(())), true),
        other => (
            refused(
                CallErrorKind::NoSuchFunction,
                format!("unknown lifecycle message `{other}`"),
            ),
            false,
        ),
    }
}
