//! The WASI 0.2 base interfaces and `wasi:http`, from `wasmtime-wasi` and `wasmtime-wasi-http`.
//!
//! The sandbox comes from the per-invocation context built in `state.rs`: no preopened
//! directories (filesystem calls find nothing), no socket address is allowed (network calls are
//! refused), the environment is empty, stdout and stderr go to the host's log.

use wasmtime::component::Linker;

use super::{Capability, Served};
use crate::InvocationState;

/// `wasi:cli`, `wasi:clocks`, `wasi:io`, `wasi:random`, `wasi:filesystem`, `wasi:sockets`.
pub struct WasiBase;

impl Capability for WasiBase {
    fn name(&self) -> &'static str {
        "wasi"
    }

    fn serves(&self) -> &'static [Served] {
        const BASE: &[Served] = &[
            Served {
                interface: "wasi:cli/*",
                grant: false,
            },
            Served {
                interface: "wasi:clocks/*",
                grant: false,
            },
            Served {
                interface: "wasi:io/*",
                grant: false,
            },
            Served {
                interface: "wasi:random/*",
                grant: false,
            },
            Served {
                interface: "wasi:filesystem/*",
                grant: false,
            },
            Served {
                interface: "wasi:sockets/*",
                grant: false,
            },
        ];
        BASE
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }
}

/// `wasi:http/types` (no grant) and `wasi:http/outgoing-handler` (granted).
pub struct WasiHttp;

impl Capability for WasiHttp {
    fn name(&self) -> &'static str {
        "wasi:http"
    }

    fn serves(&self) -> &'static [Served] {
        const HTTP: &[Served] = &[
            Served {
                interface: "wasi:http/types",
                grant: false,
            },
            Served {
                interface: "wasi:http/outgoing-handler",
                grant: true,
            },
        ];
        HTTP
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }
}
