//! The wasmtime engine, linker and epoch ticker shared by every component of a host.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use trellis_protocol::claims::{self, TrustPolicy};
use trellis_protocol::wasm::WasmKind;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{ArtifactCache, CacheOutcome};
use crate::capabilities::{self, Capability};
use crate::component::{Component, ComponentLimits};
use crate::imports::{self, LatticeLinks};
use crate::{InvocationState, LoadError};

/// Host-wide engine settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Component instances that may be live at once across the host (pooling allocator slots).
    pub max_instances: u32,
    /// The largest linear memory any component may have; per-component limits must fit in it.
    pub max_memory_bytes: u64,
    /// How often the epoch advances; deadlines are checked (and long-running guests yield to
    /// other tasks) at this granularity.
    pub epoch_tick: Duration,
    /// Where compiled artifacts are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Which components are trusted.
    pub trust: TrustPolicy,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(10),
            cache_dir: None,
            trust: TrustPolicy {
                issuers: claims::TrustedIssuers::Only(Default::default()),
                allow_unsigned: false,
            },
        }
    }
}

/// Builds a [`Runtime`] from a config and a set of capabilities.
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    capabilities: Vec<Box<dyn Capability>>,
}

impl RuntimeBuilder {
    /// Adds a capability next to the defaults (WASI base, `wasi:http`, `wasi:config`,
    /// `wasi:logging`).
    pub fn capability(mut self, capability: impl Capability) -> Self {
        self.capabilities.push(Box::new(capability));
        self
    }

    pub fn build(self) -> anyhow::Result<Runtime> {
        if self.config.max_memory_bytes > MAX_MEMORY_BYTES {
            anyhow::bail!(
                "the memory limit of {} bytes exceeds 4 GiB, the most a 32-bit wasm memory can use",
                self.config.max_memory_bytes
            );
        }
        let engine = Engine::new(&engine_config(&self.config)).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the wasm engine for {} instances: {e} (each instance reserves about 4 GiB of virtual address space; lower --max-concurrent or raise `ulimit -v`)",
                self.config.max_instances
            )
        })?;
        let mut linker = Linker::new(&engine);
        for capability in &self.capabilities {
            capability.add_to_linker(&mut linker).map_err(|e| {
                anyhow::anyhow!("cannot add capability `{}`: {e}", capability.name())
            })?;
        }
        let ticker = EpochTicker::start(engine.clone(), self.config.epoch_tick).map_err(|e| {
            anyhow::anyhow!("cannot start the epoch thread that enforces deadlines: {e}")
        })?;
        let cache = self.config.cache_dir.as_ref().and_then(|dir| {
            ArtifactCache::open(dir)
                .inspect_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "compiled-artifact cache disabled")
                })
                .ok()
        });
        Ok(Runtime {
            inner: Arc::new(Inner {
                cache,
                engine,
                linker,
                capabilities: self.capabilities,
                config: self.config,
                _ticker: ticker,
            }),
        })
    }
}

/// Per released memory slot, how much is reset in place rather than returned to the kernel.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// A 32-bit wasm memory can address at most 4 GiB.
const MAX_MEMORY_BYTES: u64 = 4 << 30;

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let instances = config.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances)
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_core_instances_per_component(32)
        .max_memories_per_component(2)
        .max_tables_per_component(16)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        // Reset the low, hot pages of a released slot with memset instead of madvise: a
        // typical request touches little memory, and keeping it resident avoids both the
        // syscall and the page faults of the next instance in that slot.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES / 16)
        .pagemap_scan(Enabled::Auto);
    let mut cfg = Config::new();
    cfg.epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

/// A wasmtime engine configured for serving, plus the linker of its capabilities.
/// Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<InvocationState>,
    capabilities: Vec<Box<dyn Capability>>,
    cache: Option<ArtifactCache>,
    config: RuntimeConfig,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn builder(config: RuntimeConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            capabilities: capabilities::defaults(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Verifies, compiles (or loads from the cache) and pre-links a component.
    ///
    /// `id` names the component in logs and errors. This is CPU-heavy on a cache miss; call it
    /// from a blocking context (`tokio::task::spawn_blocking`) inside async code.
    pub fn load(
        &self,
        id: &str,
        bytes: &[u8],
        limits: ComponentLimits,
    ) -> Result<Arc<Component>, LoadError> {
        self.load_linked(id, bytes, limits, None)
    }

    /// Like [`Runtime::load`], on a lattice: imports that no capability serves are routed to
    /// linked components and provider capabilities to linked providers (see
    /// [`crate::imports`]); without a lattice, the former are refused.
    pub fn load_linked(
        &self,
        id: &str,
        bytes: &[u8],
        limits: ComponentLimits,
        lattice: Option<LatticeLinks>,
    ) -> Result<Arc<Component>, LoadError> {
        let _span = tracing::info_span!("host.load_component", component = id).entered();
        let inner = &self.inner;
        let verified =
            claims::verify(bytes, &inner.config.trust, claims::now_secs()).map_err(|source| {
                LoadError::Claims {
                    component: id.to_string(),
                    source,
                }
            })?;
        if verified.kind == WasmKind::CoreModule {
            return Err(LoadError::CoreModule {
                component: id.to_string(),
            });
        }
        if limits.memory_bytes > inner.config.max_memory_bytes {
            return Err(LoadError::Link {
                component: id.to_string(),
                reason: format!(
                    "its memory limit of {} bytes exceeds the host's maximum of {} bytes",
                    limits.memory_bytes, inner.config.max_memory_bytes
                ),
            });
        }
        match &verified.claims {
            Some(c) => tracing::info!(
                issuer = %c.iss, subject = %c.sub, hash = %verified.hash,
                "component claims verified"
            ),
            None => tracing::warn!(
                hash = %verified.hash,
                "RUNNING AN UNSIGNED COMPONENT: --allow-unsigned is for development only"
            ),
        }

        let compiled = match &inner.cache {
            Some(cache) => cache.load_or_compile(&inner.engine, bytes, &verified.hash),
            None => wasmtime::component::Component::new(&inner.engine, bytes)
                .map(|c| (c, CacheOutcome::Disabled)),
        };
        let (component, outcome) = compiled.map_err(|e| LoadError::Compile {
            component: id.to_string(),
            reason: format!("{e:#}"),
        })?;
        match outcome {
            CacheOutcome::Hit => tracing::info!("compiled artifact cache hit"),
            CacheOutcome::Miss => {
                tracing::info!("compiled artifact cache miss: compiled and stored")
            }
            CacheOutcome::Disabled => tracing::debug!("compiled without a cache"),
        }

        let linked =
            self.check_imports(id, &component, verified.claims.as_ref(), lattice.is_some())?;
        let mut own_linker;
        let linker = match &lattice {
            Some(lattice) if !linked.is_empty() => {
                own_linker = inner.linker.clone();
                for (import, functions) in &linked {
                    imports::define(&mut own_linker, import, functions, &lattice.imports).map_err(
                        |e| LoadError::Link {
                            component: id.to_string(),
                            reason: format!("cannot link `{import}`: {e:#}"),
                        },
                    )?;
                }
                &own_linker
            }
            _ => &inner.linker,
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                component: id.to_string(),
                reason: format!("{e:#}"),
            })?;
        Ok(Arc::new(Component::new(
            id,
            verified,
            inner.engine.clone(),
            pre,
            limits,
            outcome == CacheOutcome::Hit,
            lattice.map(|l| l.providers),
        )))
    }

    /// Every import must be served by a capability, and granted when it needs a grant. With
    /// `linkable`, an import no capability serves may instead be linked to another component
    /// (granted, and with types that can cross the lattice); those are returned.
    fn check_imports(
        &self,
        id: &str,
        component: &wasmtime::component::Component,
        claims: Option<&claims::Claims>,
        linkable: bool,
    ) -> Result<LinkedFunctions, LoadError> {
        let engine = &self.inner.engine;
        let mut linked = Vec::new();
        for (import, item) in component.component_type().imports(engine) {
            let Some(served) = capabilities::find_served(&self.inner.capabilities, import) else {
                if linkable {
                    if let Some(claims) = claims
                        && !claims.grants_interface(import)
                    {
                        return Err(LoadError::NotGranted {
                            component: id.to_string(),
                            interface: import.to_string(),
                            grant: claims::strip_version(import).to_string(),
                        });
                    }
                    let functions = imports::linkable_functions(engine, &item.ty).map_err(
                        |reason| LoadError::Link {
                            component: id.to_string(),
                            reason: format!("it imports `{import}`, which no capability serves and which cannot be linked: {reason}"),
                        },
                    )?;
                    linked.push((import.to_string(), functions));
                    continue;
                }
                let served: Vec<&str> = self
                    .inner
                    .capabilities
                    .iter()
                    .flat_map(|c| c.serves())
                    .map(|s| s.interface)
                    .collect();
                return Err(LoadError::Link {
                    component: id.to_string(),
                    reason: format!(
                        "it imports `{import}`, which this host does not provide (it serves {}; a lattice host, `trellis host`, can link it to another component)",
                        served.join(", ")
                    ),
                });
            };
            if let Some(claims) = claims
                && served.grant
                && !claims.grants_interface(import)
            {
                return Err(LoadError::NotGranted {
                    component: id.to_string(),
                    interface: import.to_string(),
                    grant: claims::strip_version(import).to_string(),
                });
            }
        }
        Ok(linked)
    }
}

/// Imports to link, each with its functions.
type LinkedFunctions = Vec<(
    String,
    Vec<(String, wasmtime::component::types::ComponentFunc)>,
)>;

/// Advances the engine's epoch every tick until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("trellis-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
