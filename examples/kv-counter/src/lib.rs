//! Example: a counter per name, kept in a `wasi:keyvalue` bucket.
//!
//! - `GET /counter/{name}` or `POST /increment/{name}`: adds 1 to the counter `{name}`
//!   (`wasi:keyvalue/atomics.increment`) and answers the new value, e.g. `3`.
//! - `GET /value/{name}`: answers the current value (`bucket.get`) without changing it, or
//!   `0` when the counter does not exist yet.
//!
//! The bucket is the `wasi:config` key `bucket`, or `default` when it is not set. Bodies are
//! `text/plain`. Any error (config, keyvalue) is a `500` whose body is the error text; the
//! component never traps on them.
//!
//! All bindings come from `wit-bindgen` against the repository's `interfaces/` folders, and
//! the key-value calls are written the way wasmCloud's own examples write them
//! (`wasi::keyvalue::store::open`, then `wasi::keyvalue::atomics::increment`).

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package trellis:examples;

            world kv-counter {
                import wasi:config/store@0.2.0-draft;
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasmcloud:bus/lattice@1.0.0;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        path: [
            "../../interfaces/wasi-http",
            "../../interfaces/wasi-keyvalue",
            "../../interfaces/wasi-config",
            "../../interfaces/wasmcloud-bus/v1.0.0",
        ],
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Bucket used when the config key `bucket` is absent.
const DEFAULT_BUCKET: &str = "default";

struct KvCounter;

bindings::export!(KvCounter with_types_in bindings);

impl Guest for KvCounter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = path_with_query
            .split_once('?')
            .map_or(path_with_query.as_str(), |(path, _query)| path);

        let reply = match route(&request.method(), path) {
            Ok(Action::Increment(name)) => increment(name),
            Ok(Action::Value(name)) => value(name),
            Err(reply) => reply,
        };
        respond(response_out, reply);
    }
}

/// What a request asks for.
enum Action<'a> {
    Increment(&'a str),
    Value(&'a str),
}

/// A response: status, extra headers, body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

const USAGE: &str = "use GET /counter/{name}, POST /increment/{name} or GET /value/{name}\n";

fn route<'a>(method: &Method, path: &'a str) -> Result<Action<'a>, Reply> {
    type Make<'a> = fn(&'a str) -> Action<'a>;
    let (name, allow, action): (&'a str, &'static str, Make<'a>) =
        if let Some(name) = path.strip_prefix("/counter/") {
            (name, "GET", Action::Increment)
        } else if let Some(name) = path.strip_prefix("/increment/") {
            (name, "POST", Action::Increment)
        } else if let Some(name) = path.strip_prefix("/value/") {
            (name, "GET", Action::Value)
        } else {
            return Err(Reply::new(404, format!("not found: {path}; {USAGE}")));
        };

    let method_ok = match allow {
        "POST" => matches!(method, Method::Post),
        _ => matches!(method, Method::Get),
    };
    if !method_ok {
        let mut reply = Reply::new(405, format!("method not allowed: {path} takes {allow}\n"));
        reply.headers.push(("allow", allow));
        return Err(reply);
    }
    if name.is_empty() {
        return Err(Reply::new(400, format!("missing counter name; {USAGE}")));
    }
    Ok(action(name))
}

/// Adds 1 to counter `name`; the body is the new value.
fn increment(name: &str) -> Reply {
    let bucket = match open_bucket() {
        Ok(bucket) => bucket,
        Err(reply) => return reply,
    };
    match wasi::keyvalue::atomics::increment(&bucket, name, 1) {
        Ok(count) => Reply::new(200, count.to_string()),
        Err(err) => Reply::new(
            500,
            format!("keyvalue error: increment `{name}`: {}\n", kv_error(&err)),
        ),
    }
}

/// The current value of counter `name` (`0` when absent); does not change it.
fn value(name: &str) -> Reply {
    let bucket = match open_bucket() {
        Ok(bucket) => bucket,
        Err(reply) => return reply,
    };
    match bucket.get(name) {
        Ok(Some(bytes)) => Reply::new(200, String::from_utf8_lossy(&bytes).trim().to_string()),
        Ok(None) => Reply::new(200, "0"),
        Err(err) => Reply::new(
            500,
            format!("keyvalue error: get `{name}`: {}\n", kv_error(&err)),
        ),
    }
}

/// Opens the bucket named by config key `bucket` (`default` when the key is absent).
fn open_bucket() -> Result<wasi::keyvalue::store::Bucket, Reply> {
    let identifier = match wasi::config::store::get("bucket") {
        // Present, even empty (some providers have a single bucket, named by the empty
        // string): used as is.
        Ok(Some(bucket)) => bucket,
        Ok(None) => DEFAULT_BUCKET.to_string(),
        Err(err) => {
            let msg = match err {
                wasi::config::store::Error::Upstream(msg) => format!("upstream: {msg}"),
                wasi::config::store::Error::Io(msg) => format!("io: {msg}"),
            };
            return Err(Reply::new(500, format!("config error: {msg}\n")));
        }
    };
    // Config key `link` picks a named link for the key-value calls that follow (wasmCloud's
    // `set-link-name`); without it they use the link named `default`.
    if let Ok(Some(link)) = wasi::config::store::get("link") {
        use bindings::wasmcloud::bus::lattice::{CallTargetInterface, set_link_name};
        set_link_name(
            &link,
            vec![
                CallTargetInterface::new("wasi", "keyvalue", "store"),
                CallTargetInterface::new("wasi", "keyvalue", "atomics"),
            ],
        );
    }
    wasi::keyvalue::store::open(&identifier).map_err(|err| {
        Reply::new(
            500,
            format!(
                "keyvalue error: open bucket `{identifier}`: {}\n",
                kv_error(&err)
            ),
        )
    })
}

fn kv_error(err: &wasi::keyvalue::store::Error) -> String {
    match err {
        wasi::keyvalue::store::Error::NoSuchStore => "no such store".to_string(),
        wasi::keyvalue::store::Error::AccessDenied => "access denied".to_string(),
        wasi::keyvalue::store::Error::Other(msg) => msg.clone(),
    }
}

/// Sends `reply` as a `text/plain` response with a known length.
fn respond(response_out: ResponseOutparam, reply: Reply) {
    let body = reply.body.as_bytes();
    let headers = Fields::new();
    // Cannot fail: the names and values are valid and not forbidden.
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let _ = headers.append("content-length", body.len().to_string().as_bytes());
    for (name, value) in &reply.headers {
        let _ = headers.append(name, value.as_bytes());
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
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // Client went away; no `finish` tells the host the body is incomplete.
                return;
            }
        }
        // `stream` is a child of `out_body` and must be dropped before `finish`.
    }
    let _ = OutgoingBody::finish(out_body, None);
}
