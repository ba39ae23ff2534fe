//! Test fixture: sends a 200 response head and part of a chunked body, then traps.
//!
//! The host must not let this look like a complete response: the client has to see the body
//! end in an error.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct TrapMidBody;

wasi::http::proxy::export!(TrapMidBody);

impl Guest for TrapMidBody {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(b"the first half of a body");
        }
        core::arch::wasm32::unreachable()
    }
}
