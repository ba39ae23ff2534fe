//! Capabilities: what a component can import, composed through one small trait.
//!
//! A [`Capability`] says which WIT interfaces it serves and adds their host functions to the
//! runtime's linker. Which ones a component may import is decided at load time: an interface
//! marked `grant: true` must be granted by the component's signed claims, or the component is
//! refused with a message that names the interface. The WASI 0.2 base interfaces need no grant:
//! every Rust component imports them, and they are sandboxed (see [`wasi`]).
//!
//! | capability | interfaces | grant |
//! |---|---|---|
//! | [`wasi::WasiBase`] | `wasi:cli`, `wasi:clocks`, `wasi:io`, `wasi:random`, `wasi:filesystem`, `wasi:sockets` | no |
//! | [`wasi::WasiHttp`] | `wasi:http/types` / `wasi:http/outgoing-handler` (sent by a linked `http-client` provider on a lattice, see [`outgoing_http`]) | no / yes |
//! | [`config::WasiConfig`] | `wasi:config/store` | yes |
//! | [`logging::WasiLogging`] | `wasi:logging/logging` | yes |
//! | [`keyvalue::WasiKeyValue`] | `wasi:keyvalue/store`, `atomics`, `batch` (by a linked provider, see [`provided`]) | yes |
//! | [`bus::WasmcloudBus`] | `wasmcloud:bus/lattice` `@1.0.0`/`@2.0.0` (`set-link-name`) | no |
//! | [`sql::WasiSql`] | `wasi:sql/types`, `readwrite` (by a linked provider) | yes |

pub mod bus;
pub mod config;
pub mod keyvalue;
pub mod logging;
pub mod outgoing_http;
pub mod provided;
pub mod sql;
pub mod wasi;

use trellis_protocol::claims::grant_covers;
use wasmtime::component::Linker;

use crate::InvocationState;

/// One interface a capability serves.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// `ns:pkg/iface` without version, or `ns:pkg/*` for a whole package.
    pub interface: &'static str,
    /// Whether a component must be granted this interface in its claims to import it.
    pub grant: bool,
}

/// A capability the host serves in-process.
pub trait Capability: Send + Sync + 'static {
    /// A short name for logs, e.g. `wasi:config`.
    fn name(&self) -> &'static str;
    /// The interfaces served.
    fn serves(&self) -> &'static [Served];
    /// Adds the host functions to the linker.
    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()>;
}

/// Finds which served interface covers `import` (a versioned import name).
pub(crate) fn find_served<'a>(
    capabilities: &'a [Box<dyn Capability>],
    import: &str,
) -> Option<&'a Served> {
    capabilities
        .iter()
        .flat_map(|c| c.serves())
        .find(|s| grant_covers(s.interface, import))
}

/// The capabilities every runtime starts with.
pub(crate) fn defaults() -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(wasi::WasiBase),
        Box::new(wasi::WasiHttp),
        Box::new(config::WasiConfig),
        Box::new(logging::WasiLogging),
        Box::new(keyvalue::WasiKeyValue),
        Box::new(sql::WasiSql),
        Box::new(bus::WasmcloudBus),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_find_the_interface_that_serves_them() {
        let caps = defaults();
        let found = |i| find_served(&caps, i).map(|s| (s.interface, s.grant));
        assert_eq!(
            found("wasi:cli/environment@0.2.6"),
            Some(("wasi:cli/*", false))
        );
        assert_eq!(
            found("wasi:http/types@0.2.2"),
            Some(("wasi:http/types", false))
        );
        assert_eq!(
            found("wasi:http/outgoing-handler@0.2.0"),
            Some(("wasi:http/outgoing-handler", true))
        );
        assert_eq!(
            found("wasi:config/store@0.2.0-draft"),
            Some(("wasi:config/store", true))
        );
        assert_eq!(
            found("wasi:keyvalue/atomics@0.2.0-draft"),
            Some(("wasi:keyvalue/atomics", true))
        );
        assert_eq!(
            found("wasmcloud:bus/lattice@1.0.0"),
            Some(("wasmcloud:bus/lattice", false))
        );
        assert_eq!(found("wasi:blobstore/container@0.2.0-draft"), None);
    }
}
