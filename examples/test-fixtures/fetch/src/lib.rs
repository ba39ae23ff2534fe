//! Test fixture: the outgoing-HTTP driver.
//!
//! `GET /fetch?url=http://HOST:PORT/PATH` sends `GET` to that URL with
//! `wasi:http/outgoing-handler` and answers
//! - `200` with `{upstream status}\n{upstream body}` when a response came back;
//! - `502` with `error: {error-code}` when the request failed (e.g.
//!   `error: ErrorCode::HttpRequestDenied` for a host the link does not allow);
//! - `400` for a missing or unparsable `url`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

struct Fetch;

wasi::http::proxy::export!(Fetch);

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    {
        let Ok(stream) = outgoing.write() else { return };
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// `(scheme, authority, path and query)` of an `http://` or `https://` URL.
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        (Scheme::Https, url.strip_prefix("https://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((scheme, authority, path))
}

/// Sends `GET url`; the upstream status and body, or the error code's name.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, authority, path) = split_url(url).ok_or("not an http(s) URL")?;
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body taken")?;
    let stream = body.stream().map_err(|()| "stream taken")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    Ok((status, bytes))
}

impl Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let Some(url) = path.strip_prefix("/fetch?url=") else {
            return respond(out, 400, b"expected /fetch?url=http://HOST/PATH");
        };
        match fetch(url) {
            Ok((status, body)) => {
                let mut text = format!("{status}\n").into_bytes();
                text.extend(body);
                respond(out, 200, &text);
            }
            Err(e) => respond(out, 502, format!("error: {e}").as_bytes()),
        }
    }
}
