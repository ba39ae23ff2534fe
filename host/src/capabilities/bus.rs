//! `wasmcloud:bus/lattice` (`@1.0.0` and `@2.0.0`): a component picks which named link its
//! next calls use.
//!
//! `set-link-name("analytics", [call-target-interface("wasi", "keyvalue", "store")])` makes
//! the calls that follow, in this invocation, to `wasi:keyvalue/store` go through the
//! component's link named `analytics` instead of `default` (links are per source, name and
//! interface: see the lattice's link table). The choice lasts for the invocation: every
//! invocation starts with `default`, as each has a fresh store. Components built with the
//! `wasmcloud-component` crate import this interface even when they never call it, so it
//! needs no grant. `set-target-component` (`@2.0.0`) is refused with a message: Trellis
//! routes by link only.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::{Capability, Served};
use crate::InvocationState;

mod v1 {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasmcloud-bus/v1.0.0",
        world: "wasmcloud:bus/imports",
        imports: { default: trappable },
        with: { "wasmcloud:bus/lattice.call-target-interface": super::CallTargetInterface },
    });
}

mod v2 {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasmcloud-bus/v2.0.0",
        world: "wasmcloud:bus/imports",
        imports: { default: trappable },
        with: { "wasmcloud:bus/lattice.call-target-interface": super::CallTargetInterface },
    });
}

/// `ns:pkg/iface` named by a component.
pub struct CallTargetInterface(String);

/// The `wasmcloud:bus` capability.
pub struct WasmcloudBus;

struct BusData;

impl HasData for BusData {
    type Data<'a> = BusView<'a>;
}

struct BusView<'a> {
    table: &'a mut ResourceTable,
    link_names: &'a mut std::collections::BTreeMap<String, String>,
}

impl BusView<'_> {
    fn target(
        &mut self,
        namespace: String,
        package: String,
        interface: String,
    ) -> wasmtime::Result<Resource<CallTargetInterface>> {
        Ok(self.table.push(CallTargetInterface(format!(
            "{namespace}:{package}/{interface}"
        )))?)
    }

    /// Records `name` for each interface (the list owns the resources: they end here).
    fn set(
        &mut self,
        name: &str,
        targets: Vec<Resource<CallTargetInterface>>,
    ) -> wasmtime::Result<()> {
        for target in targets {
            let interface = self.table.delete(target)?.0;
            self.link_names.insert(interface, name.to_string());
        }
        Ok(())
    }
}

impl v1::wasmcloud::bus::lattice::Host for BusView<'_> {
    fn set_link_name(
        &mut self,
        name: String,
        interfaces: Vec<Resource<CallTargetInterface>>,
    ) -> wasmtime::Result<()> {
        self.set(&name, interfaces)
    }
}

impl v1::wasmcloud::bus::lattice::HostCallTargetInterface for BusView<'_> {
    fn new(
        &mut self,
        namespace: String,
        package: String,
        interface: String,
    ) -> wasmtime::Result<Resource<CallTargetInterface>> {
        self.target(namespace, package, interface)
    }

    fn drop(&mut self, target: Resource<CallTargetInterface>) -> wasmtime::Result<()> {
        self.table.delete(target)?;
        Ok(())
    }
}

impl v2::wasmcloud::bus::lattice::Host for BusView<'_> {
    fn set_link_name(
        &mut self,
        name: String,
        interfaces: Vec<Resource<CallTargetInterface>>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.set(&name, interfaces)?;
        Ok(Ok(()))
    }

    fn set_target_component(
        &mut self,
        target: String,
        interface: Resource<CallTargetInterface>,
        _expected_version: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let named = self.table.delete(interface)?.0;
        Ok(Err(format!(
            "set-target-component({target}, {named}) is not supported: Trellis routes calls \
             by link; put a link with its own name to `{target}` and use set-link-name"
        )))
    }
}

impl v2::wasmcloud::bus::lattice::HostCallTargetInterface for BusView<'_> {
    fn new(
        &mut self,
        namespace: String,
        package: String,
        interface: String,
    ) -> wasmtime::Result<Resource<CallTargetInterface>> {
        self.target(namespace, package, interface)
    }

    fn drop(&mut self, target: Resource<CallTargetInterface>) -> wasmtime::Result<()> {
        self.table.delete(target)?;
        Ok(())
    }
}

impl Capability for WasmcloudBus {
    fn name(&self) -> &'static str {
        "wasmcloud:bus"
    }

    fn serves(&self) -> &'static [Served] {
        &[Served {
            interface: "wasmcloud:bus/lattice",
            grant: false,
        }]
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        fn view(state: &mut InvocationState) -> BusView<'_> {
            BusView {
                table: &mut state.table,
                link_names: &mut state.access.link_names,
            }
        }
        v1::wasmcloud::bus::lattice::add_to_linker::<InvocationState, BusData>(linker, view)?;
        v2::wasmcloud::bus::lattice::add_to_linker::<InvocationState, BusData>(linker, view)
    }
}
