//! The per-invocation store state.
//!
//! Every invocation gets a fresh [`InvocationState`] inside a fresh `Store`: its own WASI
//! context (no preopened directories, no network, empty environment, stdout/stderr into the
//! host's log), its own resource table, its own memory limits, and a snapshot of the
//! component's configuration.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;

use crate::capabilities::provided::{ProviderAccess, ProviderRouter};
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of one store: everything a single invocation of a component can reach.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The component's id, for logs.
    pub(crate) component_id: Arc<str>,
    /// The component's configuration as of the start of this invocation.
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// Who calls providers, through which links, until when; also the `wasi:http` hooks
    /// that send outgoing requests through an `http-client` provider.
    pub(crate) access: ProviderAccess,
}

impl InvocationState {
    pub(crate) fn new(
        component_id: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        limits: StoreLimits,
        deadline: Instant,
        providers: Option<Arc<dyn ProviderRouter>>,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(GuestLog::new(component_id.clone(), "stdout"))
            .stderr(GuestLog::new(component_id.clone(), "stderr"))
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
            access: ProviderAccess {
                component: component_id.clone(),
                router: providers,
                link_names: BTreeMap::new(),
                deadline,
            },
            component_id,
            config,
        }
    }

    /// The id of the component this invocation belongs to.
    pub fn component_id(&self) -> &str {
        &self.component_id
    }

    /// The link name in force for `interface` (`ns:pkg/iface`).
    pub(crate) fn link_name(&self, interface: &str) -> String {
        crate::capabilities::provided::link_name_in(&self.access.link_names, interface)
    }

    /// What provider calls of this invocation need, borrowed beside the resource table.
    pub(crate) fn routing(
        &mut self,
    ) -> (
        &mut ResourceTable,
        crate::capabilities::provided::Routing<'_>,
    ) {
        (&mut self.table, self.access.routing())
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.access,
        }
    }
}

/// A guest's stdout or stderr, written line by line into the host's `tracing` log.
#[derive(Clone)]
struct GuestLog {
    component: Arc<str>,
    stream: &'static str,
}

impl GuestLog {
    fn new(component: Arc<str>, stream: &'static str) -> Self {
        Self { component, stream }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(
                target: "trellis::component",
                component = %self.component,
                stream = self.stream,
                "{line}"
            );
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
