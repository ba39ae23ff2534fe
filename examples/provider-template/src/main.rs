//! The template provider as its own process on the lattice.
//!
//! A host runs this binary when told `trellis provider start HOST file:///abs/path/to/it ID`.
//! Everything else is the SDK's: [`trellis_provider_sdk::process::run`] reads the host's
//! connection data (one JSON line on stdin), connects to NATS, calls `init`, puts the links
//! the host already knows, serves capability calls and lifecycle messages, and calls
//! `shutdown` when the host says so, on SIGTERM/Ctrl-C, or when stdin closes (the host is
//! gone). The provider type is the same one a host runs in-process for `builtin://`.

use std::sync::Arc;

use trellis_provider_template::FileKvProvider;

#[tokio::main]
async fn main() {
    // Logs go to stderr, which the process shares with the host that started it (stdin is
    // the host's pipe, stdout is unused).
    // `TRELLIS_LOG=debug` (an `EnvFilter` directive) shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = trellis_provider_sdk::process::run(Arc::new(FileKvProvider::new())).await;
    // A lifecycle error (bad stdin, NATS unreachable, init refused) is printed and the process
    // exits 1; the host sees the exit and reports it. `exit` ends the process at once (see its
    // docs for why a provider should not just return from `main`).
    trellis_provider_sdk::process::exit("trellis-provider-template", result)
}
