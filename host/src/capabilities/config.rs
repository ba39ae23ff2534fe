//! `wasi:config/store@0.2.0-draft`, served in-process.
//!
//! A component reads its configuration with `store::get(key)` and `store::get-all()`. Values
//! are the component's config map (e.g. `trellis run --config greeting=hello`); each
//! invocation sees a snapshot taken when it started, so an update made with
//! [`Component::set_config`](crate::Component::set_config) is visible on the next invocation
//! and never changes under a running one.

use std::collections::BTreeMap;

use wasmtime::component::{HasData, Linker};

use super::{Capability, Served};
use crate::InvocationState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasi-config",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::config::store;

/// The `wasi:config` capability.
pub struct WasiConfig;

struct ConfigData;

impl HasData for ConfigData {
    type Data<'a> = ConfigView<'a>;
}

struct ConfigView<'a> {
    values: &'a BTreeMap<String, String>,
}

impl store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.values.get(&key).cloned()))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}

impl Capability for WasiConfig {
    fn name(&self) -> &'static str {
        "wasi:config"
    }

    fn serves(&self) -> &'static [Served] {
        &[Served {
            interface: "wasi:config/store",
            grant: true,
        }]
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        store::add_to_linker::<InvocationState, ConfigData>(linker, |state| ConfigView {
            values: &state.config,
        })
    }
}
