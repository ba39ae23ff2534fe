//! `wasi:logging/logging@0.1.0-draft`, served in-process.
//!
//! Each `log(level, context, message)` becomes a `tracing` event with target
//! `trellis::component` and the fields `component` (the component's id) and `context`, so guest
//! logs land in the host's log with everything else. `critical` is logged at `ERROR`.

use wasmtime::component::{HasData, Linker};

use super::{Capability, Served};
use crate::InvocationState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasi-logging",
        world: "wasi:logging/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// The `wasi:logging` capability.
pub struct WasiLogging;

struct LoggingData;

impl HasData for LoggingData {
    type Data<'a> = &'a str;
}

impl logging::Host for &str {
    fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let component: &str = self;
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(
                    target: "trellis::component",
                    $lvl,
                    component,
                    context = %context,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error | Level::Critical => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

impl Capability for WasiLogging {
    fn name(&self) -> &'static str {
        "wasi:logging"
    }

    fn serves(&self) -> &'static [Served] {
        &[Served {
            interface: "wasi:logging/logging",
            grant: true,
        }]
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        logging::add_to_linker::<InvocationState, LoggingData>(linker, |state| &state.component_id)
    }
}
