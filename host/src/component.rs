//! A loaded component: verified claims, one `InstancePre`, limits, live configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trellis_protocol::claims::{Claims, Verified};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentExportIndex, InstancePre, Type, Val};
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::InvocationState;
use crate::capabilities::provided::ProviderRouter;

/// Per-component resource limits.
#[derive(Debug, Clone, Copy)]
pub struct ComponentLimits {
    /// Linear memory one instance may grow to; growing past it traps the instance.
    pub memory_bytes: u64,
    /// Wall-clock time one invocation may take; past it the guest is interrupted.
    pub deadline: Duration,
    /// Instances that may run at once; further invocations wait (up to the deadline).
    pub max_concurrent: usize,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 << 20,
            deadline: Duration::from_secs(30),
            max_concurrent: 1000,
        }
    }
}

/// A verified, compiled, pre-linked component, ready for any number of invocations.
pub struct Component {
    id: Arc<str>,
    verified: Verified,
    engine: Engine,
    pre: InstancePre<InvocationState>,
    http: Option<ProxyPre<InvocationState>>,
    /// Exported functions by (`ns:pkg/iface` without version, function name).
    exports: BTreeMap<(String, String), ExportedFunction>,
    limits: ComponentLimits,
    permits: Arc<Semaphore>,
    config: RwLock<Arc<BTreeMap<String, String>>>,
    from_cache: bool,
    providers: Option<Arc<dyn ProviderRouter>>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("id", &self.id)
            .field("hash", &self.verified.hash)
            .finish_non_exhaustive()
    }
}

/// Why an invocation could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "component `{component}` is busy: all {max} instances stayed in use for {waited:?}; raise its concurrency limit or add hosts"
)]
pub struct Busy {
    pub component: String,
    pub max: usize,
    pub waited: Duration,
}

impl Component {
    pub(crate) fn new(
        id: &str,
        verified: Verified,
        engine: Engine,
        pre: InstancePre<InvocationState>,
        limits: ComponentLimits,
        from_cache: bool,
        providers: Option<Arc<dyn ProviderRouter>>,
    ) -> Self {
        Self {
            providers,
            id: Arc::from(id),
            verified,
            exports: exported_functions(&engine, &pre),
            engine,
            pre: pre.clone(),
            http: ProxyPre::new(pre)
                .inspect_err(|e| tracing::debug!(component = id, reason = %e, "no wasi:http/incoming-handler export"))
                .ok(),
            permits: Arc::new(Semaphore::new(limits.max_concurrent)),
            limits,
            config: RwLock::new(Arc::default()),
            from_cache,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The verified claims; `None` for an unsigned component allowed in development.
    pub fn claims(&self) -> Option<&Claims> {
        self.verified.claims.as_ref()
    }

    /// SHA-256 of the component's code (without its claims).
    pub fn hash(&self) -> &str {
        &self.verified.hash
    }

    pub fn limits(&self) -> ComponentLimits {
        self.limits
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// The `wasi:http/proxy` pre-instance, when the component exports
    /// `wasi:http/incoming-handler`.
    pub fn http(&self) -> Option<&ProxyPre<InvocationState>> {
        self.http.as_ref()
    }

    /// Replaces the configuration; invocations that start afterwards see it.
    pub fn set_config(&self, values: BTreeMap<String, String>) {
        let mut guard = self.config.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(values);
    }

    /// Waits for a free instance slot, at most for the deadline.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Busy> {
        let busy = || Busy {
            component: self.id.to_string(),
            max: self.limits.max_concurrent,
            waited: self.limits.deadline,
        };
        match tokio::time::timeout(self.limits.deadline, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }

    /// A fresh store for one invocation, with memory limits and the execution deadline armed.
    pub fn new_store(&self) -> Store<InvocationState> {
        self.new_store_until(Instant::now() + self.limits.deadline)
    }

    /// Like [`Component::new_store`], with the deadline at `deadline` (no later than the
    /// component's own deadline from now).
    pub fn new_store_until(&self, deadline: Instant) -> Store<InvocationState> {
        let deadline = deadline.min(Instant::now() + self.limits.deadline);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        let config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = InvocationState::new(
            self.id.clone(),
            config,
            limits,
            deadline,
            self.providers.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every epoch tick the guest yields to other tasks; past the deadline it is interrupted.
        // `tokio::task::yield_now` (not a plain self-wake) sends the task to the back of the
        // run queue, so a spinning guest cannot starve the requests queued behind it.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }
}

impl Component {
    /// The exported function `function` of interface `interface` (`ns:pkg/iface`, no version).
    pub fn exported_function(&self, interface: &str, function: &str) -> Option<&ExportedFunction> {
        self.exports
            .get(&(interface.to_string(), function.to_string()))
    }

    /// The interfaces this component exports, `ns:pkg/iface` without version.
    pub fn exported_interfaces(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.exports.keys().map(|(i, _)| i.as_str()).collect();
        names.dedup();
        names.into_iter()
    }

    /// Calls an exported function in a fresh instance, finishing by `deadline`.
    pub async fn call_export(
        &self,
        function: &ExportedFunction,
        args: Vec<Val>,
        deadline: Instant,
    ) -> Result<Vec<Val>, CallFailure> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await;
        let Ok(Ok(_permit)) = permit else {
            return Err(CallFailure::Busy(Busy {
                component: self.id.to_string(),
                max: self.limits.max_concurrent,
                waited: wait,
            }));
        };
        let mut store = self.new_store_until(deadline);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, function.index)
                .ok_or_else(|| wasmtime::Error::msg("the export vanished from the instance"))?;
            let mut results = vec![Val::Bool(false); function.results.len()];
            func.call_async(&mut store, &args, &mut results).await?;
            Ok::<_, wasmtime::Error>(results)
        };
        let grace = Duration::from_millis(250);
        match tokio::time::timeout_at((deadline + grace).into(), run).await {
            Ok(Ok(results)) => Ok(results),
            Ok(Err(e)) if is_deadline(&e) => Err(CallFailure::Timeout),
            Ok(Err(e)) => Err(CallFailure::Trapped(format!("{e:#}"))),
            Err(_) => Err(CallFailure::Timeout),
        }
    }
}

/// A function a component exports, with its types.
#[derive(Debug, Clone)]
pub struct ExportedFunction {
    index: ComponentExportIndex,
    pub params: Vec<Type>,
    pub results: Vec<Type>,
}

/// Why a call to an export failed.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    #[error(transparent)]
    Busy(Busy),
    #[error("the call ran past its deadline")]
    Timeout,
    #[error("the component trapped: {0}")]
    Trapped(String),
}

fn exported_functions(
    engine: &Engine,
    pre: &InstancePre<InvocationState>,
) -> BTreeMap<(String, String), ExportedFunction> {
    let component = pre.component();
    let mut out = BTreeMap::new();
    for (name, export) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(instance) = export.ty else {
            continue;
        };
        let Some(instance_index) = component.get_export_index(None, name) else {
            continue;
        };
        for (function, item) in instance.exports(engine) {
            let ComponentItem::ComponentFunc(func) = item.ty else {
                continue;
            };
            let Some(index) = component.get_export_index(Some(&instance_index), function) else {
                continue;
            };
            out.insert(
                (
                    crate::imports::unversioned(name).to_string(),
                    function.to_string(),
                ),
                ExportedFunction {
                    index,
                    params: func.params().map(|(_, ty)| ty).collect(),
                    results: func.results().collect(),
                },
            );
        }
    }
    out
}

/// Whether an invocation error is the execution deadline firing.
pub fn is_deadline(err: &wasmtime::Error) -> bool {
    matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt))
}
