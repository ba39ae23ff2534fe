//! Reading request bodies (bounded) and writing responses.

use crate::bindings::wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::StreamError;

/// A response: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `application/json`, the value followed by a newline.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// A `text/html` page.
    pub fn html(page: &str) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".into()),
                ("cache-control", "no-cache".into()),
            ],
            body: page.as_bytes().to_vec(),
        }
    }

    /// No body (`204 No Content`).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Why a body could not be read.
pub enum BodyError {
    /// Longer than the limit (413).
    TooLarge(usize),
    /// The stream failed (400).
    Broken(String),
}

/// Reads the whole request body, refusing more than `limit` bytes: at once when
/// `content-length` says so, else as soon as the stream goes past it.
pub fn read_body(request: &IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = request
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let body = request
        .consume()
        .map_err(|()| BodyError::Broken("the request body was already read".into()))?;
    let mut buf = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| BodyError::Broken("the request body cannot be read".into()))?;
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() > limit {
                        return Err(BodyError::TooLarge(limit));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(BodyError::Broken(format!(
                        "reading the request body failed: {}",
                        err.to_debug_string()
                    )));
                }
            }
        }
        // `stream` is a child of `body` and must be dropped before `finish`.
    }
    drop(IncomingBody::finish(body));
    Ok(buf)
}

/// Sends `reply` with a known length (none for a `204`).
pub fn respond(response_out: ResponseOutparam, reply: Reply) {
    let headers = Fields::new();
    // Cannot fail: the names and values are valid and not forbidden.
    for (name, value) in &reply.headers {
        let _ = headers.append(name, value.as_bytes());
    }
    if reply.status != 204 {
        let _ = headers.append("content-length", reply.body.len().to_string().as_bytes());
    }
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(out_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    {
        let Ok(stream) = out_body.write() else { return };
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in reply.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; no `finish` tells the host the body is incomplete.
                return;
            }
        }
        // `stream` is a child of `out_body` and must be dropped before `finish`.
    }
    let _ = OutgoingBody::finish(out_body, None);
}
