//! Test fixture: uses the host's `wasi:config/store` and `wasi:logging/logging`.
//!
//! On each request it reads the config key `greeting` (missing -> `none`),
//! logs `handled request for <path>` at info level with context
//! `config-logging`, and answers `200` with the body `greeting=<value>\n`.
//! If the config store returns an error it answers `500` instead.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    // Only the two draft interfaces; wasi:http comes from the `wasi` crate.
    // The WIT is read from the repository's interfaces/ directory.
    wit_bindgen::generate!({
        inline: r#"
            package trellis:fixtures;

            world config-logging {
                import wasi:config/store@0.2.0-draft;
                import wasi:logging/logging@0.1.0-draft;
            }
        "#,
        path: [
            "../../../interfaces/wasi-config",
            "../../../interfaces/wasi-logging",
        ],
        // The interfaces live in packages other than the inline one; generate
        // bindings for them here rather than mapping them with `with`.
        generate_all,
    });
}

use bindings::wasi::config::store;
use bindings::wasi::logging::logging::{Level, log};

const CONTEXT: &str = "config-logging";

struct ConfigLogging;

wasi::http::proxy::export!(ConfigLogging);

impl Guest for ConfigLogging {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = match path_with_query.split_once('?') {
            Some((path, _query)) => path,
            None => path_with_query.as_str(),
        };

        let (status, body) = match store::get("greeting") {
            Ok(value) => {
                let value = value.unwrap_or_else(|| "none".to_string());
                (200, format!("greeting={value}\n"))
            }
            Err(err) => {
                let msg = match err {
                    store::Error::Upstream(msg) => format!("upstream: {msg}"),
                    store::Error::Io(msg) => format!("io: {msg}"),
                };
                log(Level::Error, CONTEXT, &format!("config error: {msg}"));
                (500, format!("config error: {msg}\n"))
            }
        };
        log(Level::Info, CONTEXT, &format!("handled request for {path}"));

        let headers = Fields::new();
        let _ = headers.append("content-type", b"text/plain");
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(out_body) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        {
            let Ok(stream) = out_body.write() else { return };
            // Bodies here are far below the 4096-byte limit of this call.
            if stream.blocking_write_and_flush(body.as_bytes()).is_err() {
                return;
            }
        }
        let _ = OutgoingBody::finish(out_body, None);
    }
}
