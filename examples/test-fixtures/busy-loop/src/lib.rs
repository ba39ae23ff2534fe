//! Test fixture: an HTTP handler that never returns.
//!
//! It spins in a pure CPU loop (no host calls, no yields), so the only way
//! out is the host's execution deadline (epoch interruption / fuel). Used to
//! test that Trellis enforces per-invocation deadlines.

use core::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct BusyLoop;

wasi::http::proxy::export!(BusyLoop);

impl Guest for BusyLoop {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut counter: u64 = 0;
        loop {
            // `black_box` keeps the optimiser from proving the loop is
            // side-effect free and deleting (or collapsing) it.
            counter = black_box(counter.wrapping_add(1));
        }
    }
}
