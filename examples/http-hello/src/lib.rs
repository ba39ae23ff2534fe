//! Minimal `wasi:http/incoming-handler` component for Trellis.
//!
//! Every request gets `200 OK`, `content-type: text/plain` and the body
//! `Hello from Trellis!\n`. Kept deliberately tiny: it is used as the
//! benchmark workload.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

const BODY: &[u8] = b"Hello from Trellis!\n";

struct HttpHello;

wasi::http::proxy::export!(HttpHello);

impl Guest for HttpHello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::new();
        // Cannot fail: the name and value are valid and not forbidden.
        let _ = headers.append("content-type", b"text/plain");
        // A known length lets the host send a plain body instead of chunked encoding.
        let _ = headers.append("content-length", BODY.len().to_string().as_bytes());

        // A new outgoing-response has status 200.
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));

        {
            let Ok(stream) = body.write() else { return };
            if stream.blocking_write_and_flush(BODY).is_err() {
                // Client went away; dropping the body without `finish`
                // tells the host the response is incomplete.
                return;
            }
            // `stream` is a child of `body` and must be dropped before `finish`.
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
