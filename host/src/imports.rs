//! Linked imports: interfaces that no capability serves, carried to another component.
//!
//! A component may import an interface that another component exports (say
//! `trellis:example/greet`). No capability of the host serves it; on a lattice host, each of
//! its functions is defined in the component's own linker as a dynamic host function that
//! hands the call to a [`LinkedImports`] router, which follows the component's link to the
//! target (in-process when the target runs on the same host, over NATS otherwise). Such an
//! import must be granted in the component's claims like any capability, and its types must be
//! able to cross the lattice (no resources, futures or streams): both are checked at load, so
//! a component that could never make such a call is refused up front.
//!
//! Without a router (`trellis run`, one component, no lattice) these imports are refused.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Linker, Type, Val};

use crate::InvocationState;

/// One call a component makes through a linked import.
pub struct ImportCall {
    /// The calling component's id.
    pub caller: Arc<str>,
    /// `ns:pkg/iface`, without version.
    pub interface: Arc<str>,
    pub function: Arc<str>,
    pub args: Vec<Val>,
    /// The types the results must have.
    pub result_types: Vec<Type>,
    /// When the caller's own invocation runs out of time.
    pub deadline: Instant,
    /// The link to follow (`default` unless the caller set another name with
    /// `wasmcloud:bus/lattice.set-link-name`).
    pub link_name: String,
}

/// How a component loaded on a lattice host reaches what it is linked to: other components
/// (imports no capability serves) and providers (`wasi:keyvalue`, `wasi:sql`).
#[derive(Clone)]
pub struct LatticeLinks {
    pub imports: Arc<dyn LinkedImports>,
    pub providers: Arc<dyn crate::capabilities::provided::ProviderRouter>,
}

/// Routes calls made through linked imports (implemented by the lattice).
pub trait LinkedImports: Send + Sync + 'static {
    /// Performs the call; an error traps the caller with its message.
    fn call(&self, call: ImportCall) -> BoxFuture<'static, anyhow::Result<Vec<Val>>>;
}

/// `ns:pkg/iface` of `ns:pkg/iface@version`.
pub fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(base, _)| base)
}

/// The functions of an imported instance, or why it cannot be linked.
pub(crate) fn linkable_functions(
    engine: &Engine,
    item: &ComponentItem,
) -> Result<Vec<(String, ComponentFunc)>, String> {
    let ComponentItem::ComponentInstance(instance) = item else {
        return Err("only imported interfaces (instances of functions) can be linked".into());
    };
    let mut functions = Vec::new();
    for (name, export) in instance.exports(engine) {
        match export.ty {
            ComponentItem::ComponentFunc(func) => {
                if !trellis_protocol::rpc::is_subject_token(name) {
                    return Err(format!(
                        "function `{name}` is a resource method; resources cannot cross the lattice"
                    ));
                }
                let portable = func.params().all(|(_, ty)| crate::values::is_portable(&ty))
                    && func.results().all(|ty| crate::values::is_portable(&ty));
                if !portable {
                    return Err(format!(
                        "function `{name}` passes resources, futures or streams, which cannot cross the lattice"
                    ));
                }
                functions.push((name.to_string(), func));
            }
            ComponentItem::Type(_) => {}
            _ => {
                return Err(format!(
                    "`{name}` is a resource; resources cannot cross the lattice"
                ));
            }
        }
    }
    Ok(functions)
}

/// Defines every function of the imported instance `import` in `linker`, routed to `router`.
pub(crate) fn define(
    linker: &mut Linker<InvocationState>,
    import: &str,
    functions: &[(String, ComponentFunc)],
    router: &Arc<dyn LinkedImports>,
) -> wasmtime::Result<()> {
    let interface: Arc<str> = Arc::from(unversioned(import));
    let mut instance = linker.instance(import)?;
    for (name, _) in functions {
        let function: Arc<str> = Arc::from(name.as_str());
        let interface = interface.clone();
        let router = router.clone();
        instance.func_new_async(name, move |store, ty, params, results| {
            let state = store.data();
            let call = ImportCall {
                caller: state.component_id.clone(),
                interface: interface.clone(),
                function: function.clone(),
                args: params.to_vec(),
                result_types: ty.results().collect(),
                deadline: state.access.deadline,
                link_name: state.link_name(&interface),
            };
            let pending = router.call(call);
            Box::new(async move {
                let values = pending
                    .await
                    .map_err(|e| wasmtime::Error::msg(format!("{e:#}")))?;
                if values.len() != results.len() {
                    return Err(wasmtime::Error::msg(format!(
                        "the call returned {} result(s), the import expects {}",
                        values.len(),
                        results.len()
                    )));
                }
                for (slot, value) in results.iter_mut().zip(values) {
                    *slot = value;
                }
                Ok(())
            })
        })?;
    }
    Ok(())
}
