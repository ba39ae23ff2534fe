//! Test fixture: an HTTP handler that allocates until memory runs out.
//!
//! It allocates 1 MiB chunks, writes to every byte of each, and keeps them all
//! alive, forever. The host caps linear memory, so `memory.grow` eventually
//! fails and the guest traps (panic -> `unreachable`). Used to test that
//! Trellis enforces per-instance memory limits.

use core::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const CHUNK: usize = 1024 * 1024;

struct MemoryHog;

wasi::http::proxy::export!(MemoryHog);

impl Guest for MemoryHog {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(CHUNK).is_err() {
                panic!("memory-hog: allocation failed after {} MiB", chunks.len());
            }
            // Touch every byte so the memory is really used.
            chunk.resize(CHUNK, 0xA5);
            chunks.push(black_box(chunk));
            black_box(&chunks);
        }
    }
}
