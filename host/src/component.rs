//! A loaded component: verified claims, one `InstancePre`, limits, live configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trellis_protocol::claims::{Claims, Verified};
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::InvocationState;

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
    http: Option<ProxyPre<InvocationState>>,
    limits: ComponentLimits,
    permits: Arc<Semaphore>,
    config: RwLock<Arc<BTreeMap<String, String>>>,
    from_cache: bool,
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
    ) -> Self {
        Self {
            id: Arc::from(id),
            verified,
            engine,
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
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        let config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = InvocationState::new(self.id.clone(), config, limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = Instant::now() + self.limits.deadline;
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

/// Whether an invocation error is the execution deadline firing.
pub fn is_deadline(err: &wasmtime::Error) -> bool {
    matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt))
}
