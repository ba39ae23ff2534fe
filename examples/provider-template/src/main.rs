//! The template provider as its own process on the lattice.
//!
//! A host runs this binary when told `trellis provider start HOST file:///abs/path/to/it ID`.
//! Everything else is the SDK's: [`trellis_provider_sdk::process::run`] reads the host's
//! connection data (one JSON line on stdin), connects to NATS, calls `init`, puts the links
//! the host already knows, serves capability calls and lifecycle messages, and calls
//! `shutdown` when the host says so, on SIGTERM/Ctrl-C, or when stdin closes (the host is
//! gone). The provider type is the same one a host runs in-process for `builtin://`.

use trellis_provider_template::FileKvProvider;

#[tokio::main]
async fn main() {
    // `process::main` sends logs to stderr, which the process shares with the host that
    // started it (stdin is the host's pipe, stdout is unused); `TRELLIS_LOG=debug` (an
    // `EnvFilter` directive) shows more. A lifecycle error (bad stdin, NATS unreachable, init
    // refused) is printed and the process exits 1; the host sees the exit and reports it.
    trellis_provider_sdk::process::main("trellis-provider-template", FileKvProvider::new()).await
}
