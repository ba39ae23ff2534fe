//! Calls between components across the lattice (DESIGN.md §2).
//!
//! **Calling** ([`LatticeCalls`], the host's [`LinkedImports`] router): a component's call
//! through a linked import looks up the caller's link for that interface (link `default`),
//! and then
//! - when the target runs on this host, calls it in-process: no serialization, no NATS;
//! - otherwise sends one NATS request to `wasmbus.rpc.{lattice}.{target}.{iface}.{func}`
//!   with a [`trellis_protocol::rpc`] frame signed by this host's key, and a timeout equal to
//!   what is left of the caller's own deadline. No link, no running target (NATS "no
//!   responders") and timeouts fail at once with an error that names what is missing.
//!
//! **Serving** ([`serve`]): each component running here queue-subscribes to its subject in
//! the group `{lattice}.{id}`, so instances on several hosts share the calls. A call is
//! admitted when its signature verifies, it is not stale, and (when it comes from a
//! component) a link from the caller to this component carries the interface.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use tracing::Instrument as _;
use trellis_protocol::ctl::DEFAULT_LINK_NAME;
use trellis_protocol::rpc::{self, CallError, CallErrorKind, CallReply, CallRequest, Caller};
use wasmtime::component::Val;

use super::HostCore;
use crate::imports::{ImportCall, LinkedImports};
use crate::{CallFailure, Component, values};

/// How far a call's send time may lie in the past beyond its timeout (clock skew allowance).
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The host's router for linked imports.
pub(crate) struct LatticeCalls {
    pub(crate) core: Weak<HostCore>,
}

impl LinkedImports for LatticeCalls {
    fn call(&self, call: ImportCall) -> BoxFuture<'static, anyhow::Result<Vec<Val>>> {
        let core = self.core.clone();
        Box::pin(async move {
            let core = core
                .upgrade()
                .ok_or_else(|| anyhow::anyhow!("the host is shutting down"))?;
            let span = tracing::info_span!("host.call", caller = %call.caller, interface = %call.interface, function = %call.function);
            route(&core, call).instrument(span).await
        })
    }
}

async fn route(core: &Arc<HostCore>, call: ImportCall) -> anyhow::Result<Vec<Val>> {
    let interface = call.interface.as_ref();
    let (namespace, package, name) = split_interface(interface)
        .ok_or_else(|| anyhow::anyhow!("`{interface}` is not a `ns:pkg/iface` name"))?;
    let link_name = call.link_name.as_str();
    let Some(link) = core
        .shared
        .link_for(&call.caller, namespace, package, name, link_name)
    else {
        anyhow::bail!(
            "component `{}` has no link `{link_name}` for `{interface}`: create one with `trellis link put {} TARGET {namespace}:{package} --interface {name}`",
            call.caller,
            call.caller
        );
    };
    let target = link.target;
    let local = core.components().get(&target).map(|r| r.component.clone());
    if let Some(component) = local {
        return call_local(&component, &call, &target).await;
    }
    let link_name = link_name.to_string();
    call_remote(core, call, &target, &link_name).await
}

/// `(ns, pkg, iface)` of `ns:pkg/iface`.
pub(crate) fn split_interface(interface: &str) -> Option<(&str, &str, &str)> {
    let (ns_pkg, name) = interface.split_once('/')?;
    let (ns, pkg) = ns_pkg.split_once(':')?;
    Some((ns, pkg, name))
}

/// The fast path: the target runs in this process.
async fn call_local(
    component: &Component,
    call: &ImportCall,
    target: &str,
) -> anyhow::Result<Vec<Val>> {
    let Some(function) = component.exported_function(&call.interface, &call.function) else {
        anyhow::bail!(
            "component `{target}` does not export `{}.{}`",
            call.interface,
            call.function
        );
    };
    let function = function.clone();
    component
        .call_export(&function, call.args.clone(), call.deadline)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "call to `{target}` ({}.{}) failed: {e}",
                call.interface,
                call.function
            )
        })
}

async fn call_remote(
    core: &HostCore,
    call: ImportCall,
    target: &str,
    link_name: &str,
) -> anyhow::Result<Vec<Val>> {
    let what = format!("`{target}` ({}.{})", call.interface, call.function);
    let args = call
        .args
        .iter()
        .enumerate()
        .map(|(i, v)| values::encode(v, &format!("arg {i}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("cannot send the arguments of the call to {what}: {e}"))?;
    let remaining = call.deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        anyhow::bail!("no time left to call {what}: the caller's deadline has passed");
    }
    let request = CallRequest::new(
        Caller::new(&core.identity.host_id, Some(&call.caller), link_name),
        &core.identity.lattice,
        target,
        &call.interface,
        &call.function,
        remaining,
        args,
    );
    let reply = exchange(core, &request, remaining).await.map_err(|e| match e {
        Exchange::NoResponders => anyhow::anyhow!(
            "no instance of component `{target}` is running in lattice `{}` (the link from `{}` names it for `{}`); scale it onto a host with `trellis scale`",
            core.identity.lattice,
            call.caller,
            call.interface
        ),
        Exchange::Failed(message) => anyhow::anyhow!("call to {what} {message}"),
    })?;
    match reply {
        CallReply::Ok(results) => {
            if results.len() != call.result_types.len() {
                anyhow::bail!(
                    "{what} returned {} result(s), the import expects {}",
                    results.len(),
                    call.result_types.len()
                );
            }
            results
                .iter()
                .zip(&call.result_types)
                .enumerate()
                .map(|(i, (v, ty))| values::decode(v, ty, &format!("result {i}")))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("the result of {what} does not fit the import: {e}"))
        }
        CallReply::Err(e) => anyhow::bail!("call to {what} failed: {e}"),
    }
}

/// Why a signed request got no usable reply.
pub(crate) enum Exchange {
    /// Nothing serves the target (NATS "no responders").
    NoResponders,
    /// Timed out, NATS failed, or the reply is unreadable; the text completes "call to X …".
    Failed(String),
}

/// Signs `request` with the host key, sends it to its target and decodes the reply, within
/// `remaining` (the caller's own deadline).
pub(crate) async fn exchange(
    core: &HostCore,
    request: &CallRequest,
    remaining: Duration,
) -> Result<CallReply, Exchange> {
    let frame = rpc::sign(request, &core.identity.key)
        .map_err(|e| Exchange::Failed(format!("cannot be signed: {e}")))?;
    let subject = rpc::call_subject(
        &request.lattice,
        &request.target,
        &request.interface,
        &request.function,
    );
    let reply =
        match tokio::time::timeout(remaining, core.client.request(subject, frame.into())).await {
            Err(_) => {
                return Err(Exchange::Failed(format!(
                    "timed out after {remaining:?} (the caller's deadline)"
                )));
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(Exchange::NoResponders);
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                return Err(Exchange::Failed(
                    "timed out (no reply from its host)".into(),
                ));
            }
            Ok(Err(e)) => return Err(Exchange::Failed(format!("failed: NATS: {e}"))),
            Ok(Ok(reply)) => reply,
        };
    rpc::decode_reply(&reply.payload)
        .map_err(|e| Exchange::Failed(format!("got a malformed reply: {e}")))
}

/// Serves calls to `component` until the returned task is aborted.
pub(crate) fn serve(
    core: &Arc<HostCore>,
    component: Arc<Component>,
) -> tokio::task::JoinHandle<()> {
    let lattice = core.identity.lattice.clone();
    let id = component.id().to_string();
    let core = Arc::downgrade(core);
    tokio::spawn(async move {
        let subscription = {
            let Some(core) = core.upgrade() else { return };
            core.client
                .queue_subscribe(
                    rpc::target_wildcard(&lattice, &id),
                    rpc::queue_group(&lattice, &id),
                )
                .await
        };
        let mut calls = match subscription {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(component = %id, error = %e, "cannot subscribe to calls; this instance will not serve lattice calls");
                return;
            }
        };
        while let Some(message) = calls.next().await {
            let Some(core) = core.upgrade() else { return };
            let Some(inbox) = message.reply.clone() else {
                continue;
            };
            let component = component.clone();
            tokio::spawn(async move {
                let reply = answer(&core, &component, &message.payload).await;
                if let Err(e) = core
                    .client
                    .publish(inbox, rpc::encode_reply(&reply).into())
                    .await
                {
                    tracing::warn!(error = %e, "cannot send a call reply");
                }
            });
        }
    })
}

fn failure(kind: CallErrorKind, message: impl Into<String>) -> CallReply {
    CallReply::Err(CallError {
        kind,
        message: message.into(),
    })
}

/// Verifies, authorizes and runs one call.
async fn answer(core: &HostCore, component: &Arc<Component>, frame: &[u8]) -> CallReply {
    let request = match rpc::open(frame) {
        Ok(r) => r,
        Err(e) => return failure(CallErrorKind::BadRequest, e.to_string()),
    };
    let span = tracing::info_span!("host.serve_call", target = %request.target, interface = %request.interface, function = %request.function, caller = ?request.caller.component_id);
    async {
        if request.lattice != core.identity.lattice || request.target != component.id() {
            return failure(
                CallErrorKind::BadRequest,
                format!(
                    "the call is addressed to `{}` in lattice `{}`, not to `{}` in `{}`",
                    request.target,
                    request.lattice,
                    component.id(),
                    core.identity.lattice
                ),
            );
        }
        let timeout = Duration::from_millis(request.timeout_ms);
        let age = Duration::from_millis(rpc::now_ms().saturating_sub(request.sent_at_ms));
        if age > timeout + STALE_AFTER {
            return failure(
                CallErrorKind::BadRequest,
                format!("the call was sent {age:?} ago, longer than its timeout allows; check the clocks"),
            );
        }
        if let Some(source) = &request.caller.component_id
            && !core.shared.is_linked(source, component.id(), &request.interface)
        {
            return failure(
                CallErrorKind::Forbidden,
                format!(
                    "component `{source}` has no link to `{}` for `{}`",
                    component.id(),
                    request.interface
                ),
            );
        }
        if request.interface == trellis_provider_sdk::http::INCOMING_HANDLER
            && request.function == trellis_provider_sdk::http::HANDLE
        {
            return super::http_calls::serve_http(component.clone(), request).await;
        }
        let Some(function) = component.exported_function(&request.interface, &request.function)
        else {
            let exported: Vec<&str> = component.exported_interfaces().collect();
            return failure(
                CallErrorKind::NoSuchFunction,
                format!(
                    "component `{}` does not export `{}.{}` (it exports: {})",
                    component.id(),
                    request.interface,
                    request.function,
                    if exported.is_empty() { "no interfaces".into() } else { exported.join(", ") }
                ),
            );
        };
        if request.args.len() != function.params.len() {
            return failure(
                CallErrorKind::NoSuchFunction,
                format!(
                    "`{}.{}` takes {} argument(s), the call passed {}",
                    request.interface,
                    request.function,
                    function.params.len(),
                    request.args.len()
                ),
            );
        }
        let args: Result<Vec<Val>, _> = request
            .args
            .iter()
            .zip(&function.params)
            .enumerate()
            .map(|(i, (v, ty))| values::decode(v, ty, &format!("arg {i}")))
            .collect();
        let args = match args {
            Ok(args) => args,
            Err(e) => return failure(CallErrorKind::NoSuchFunction, format!("bad argument: {e}")),
        };
        let deadline = Instant::now() + timeout;
        match component.call_export(function, args, deadline).await {
            Ok(results) => {
                let encoded: Result<Vec<_>, _> = results
                    .iter()
                    .enumerate()
                    .map(|(i, v)| values::encode(v, &format!("result {i}")))
                    .collect();
                match encoded {
                    Ok(results) => CallReply::Ok(results),
                    Err(e) => failure(CallErrorKind::Trapped, e.to_string()),
                }
            }
            Err(CallFailure::Busy(busy)) => failure(CallErrorKind::Busy, busy.to_string()),
            Err(CallFailure::Timeout) => failure(
                CallErrorKind::Timeout,
                format!("`{}` ran past the call's deadline of {timeout:?}", component.id()),
            ),
            Err(e @ CallFailure::Trapped(_)) => failure(
                CallErrorKind::Trapped,
                format!("`{}` on host {}: {e}", component.id(), core.identity.host_id),
            ),
        }
    }
    .instrument(span)
    .await
}

/// Sends a call as a lattice client (as `trellis call` does): `args` are JSON-like values,
/// converted by the target with the function's types.
pub async fn call_as_client(
    client: &async_nats::Client,
    lattice: &str,
    target: &str,
    interface: &str,
    function: &str,
    args: Vec<rmpv::Value>,
    timeout: Duration,
) -> anyhow::Result<Vec<rmpv::Value>> {
    let key = trellis_protocol::keys::KeyKind::User.generate();
    let request = CallRequest::new(
        Caller::new(key.public_key(), None, DEFAULT_LINK_NAME),
        lattice,
        target,
        interface,
        function,
        timeout,
        args,
    );
    let frame = rpc::sign(&request, &key)?;
    let subject = rpc::call_subject(lattice, target, interface, function);
    let reply = match tokio::time::timeout(timeout, client.request(subject, frame.into())).await {
        Err(_) => anyhow::bail!("no answer from `{target}` within {timeout:?}"),
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => anyhow::bail!(
            "no instance of component `{target}` is running in lattice `{lattice}`; `trellis get inventory HOST` shows what runs where"
        ),
        Ok(Err(e)) => anyhow::bail!("the call to `{target}` failed: {e}"),
        Ok(Ok(reply)) => reply,
    };
    match rpc::decode_reply(&reply.payload)? {
        CallReply::Ok(results) => Ok(results),
        CallReply::Err(e) => anyhow::bail!("`{target}` refused or failed the call: {e}"),
    }
}
