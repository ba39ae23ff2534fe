//! Test fixture: streams the request body back as the response body.
//!
//! The body is copied chunk by chunk from the incoming body stream to the
//! outgoing body stream, never buffered whole, so bodies of many MiB work
//! without large guest memory. Used to show that Trellis streams bodies and
//! does not cap their size.

use std::io::Write as _;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

/// Largest chunk requested from the incoming stream per read.
const CHUNK: u64 = 64 * 1024;

struct Echo;

wasi::http::proxy::export!(Echo);

impl Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let Ok(out_body) = response.body() else {
            return;
        };
        let Ok(in_body) = request.consume() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));

        // Returning early drops `out_body` without `finish`, which tells the
        // host the response is incomplete.
        if !copy(&in_body, &out_body) {
            return;
        }
        let _ = IncomingBody::finish(in_body);
        let _ = OutgoingBody::finish(out_body, None);
    }
}

/// Copies the whole body; `false` if either side failed. The streams are
/// children of the bodies and are dropped on return, before the bodies are
/// finished.
fn copy(in_body: &IncomingBody, out_body: &OutgoingBody) -> bool {
    let Ok(input) = in_body.stream() else {
        return false;
    };
    let Ok(mut output) = out_body.write() else {
        return false;
    };
    loop {
        match input.blocking_read(CHUNK) {
            Ok(chunk) => {
                // `io::Write` for `OutputStream` waits for write permission
                // (`check-write`) and writes as much as it allows each time.
                if output.write_all(&chunk).is_err() {
                    return false;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return false,
        }
    }
    output.blocking_flush().is_ok()
}
