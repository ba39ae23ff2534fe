//! Errors at the host crate's boundary.

use trellis_protocol::claims::ClaimsError;

/// Why a component was refused. Every message names the component and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("component `{component}` refused: {source}")]
    Claims {
        component: String,
        #[source]
        source: ClaimsError,
    },
    #[error(
        "component `{component}` refused: it is a core WebAssembly module, not a component; build it for `wasm32-wasip2`, or adapt it with `wasm-tools component new`"
    )]
    CoreModule { component: String },
    #[error(
        "component `{component}` refused: it imports `{interface}`, which its signed claims do not grant; re-sign it with `trellis claims sign ... --grant {grant}`"
    )]
    NotGranted {
        component: String,
        interface: String,
        grant: String,
    },
    #[error("component `{component}` refused: it is not valid WebAssembly: {reason}")]
    Compile { component: String, reason: String },
    #[error("component `{component}` refused: {reason}")]
    Link { component: String, reason: String },
}
