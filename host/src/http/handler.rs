//! One HTTP request through one fresh component instance.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::Component;
use crate::component::is_deadline;

/// The body of every response the host sends.
pub type ResponseBody = HyperOutgoingBody;

/// Extra time after the deadline before the host stops waiting for a guest blocked on I/O
/// (a guest running code is interrupted by the epoch deadline itself).
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// A plain-text response, used for every error the host itself produces.
pub fn text_response(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    let mut body = message.into();
    body.push('\n');
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Runs `request` through a fresh instance of `component` and returns its response (whose
/// body keeps streaming from the instance after this returns).
pub async fn handle(
    component: Arc<Component>,
    request: http::Request<Incoming>,
) -> Response<ResponseBody> {
    let id = component.id().to_string();
    if component.http().is_none() {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{id}` does not export wasi:http/incoming-handler"),
        );
    }
    let permit = match component.acquire().await {
        Ok(permit) => permit,
        Err(busy) => return text_response(StatusCode::SERVICE_UNAVAILABLE, busy.to_string()),
    };
    let deadline = component.limits().deadline;
    let mut store = component.new_store();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = (|| -> wasmtime::Result<_> {
        let mut http = store.data_mut().http();
        let req = http.new_incoming_request(Scheme::Http, request)?;
        let out = http.new_response_outparam(sender)?;
        Ok((req, out))
    })();
    let (req, out) = match prepared {
        Ok(handles) => handles,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
    };

    let task_component = component.clone();
    let task = tokio::spawn(async move {
        let _permit = permit;
        let Some(pre) = task_component.http() else {
            return Ok(());
        };
        let result = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        }
        .await;
        if let Err(e) = &result {
            let id = task_component.id();
            if is_deadline(e) {
                tracing::warn!(
                    component = id,
                    ?deadline,
                    "invocation exceeded its deadline"
                );
            } else {
                tracing::warn!(component = id, error = %format!("{e:#}"), "invocation trapped");
            }
        }
        result
    });

    match tokio::time::timeout(deadline + DEADLINE_GRACE, receiver).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(code))) => error_code_response(&id, code),
        Ok(Err(_no_response)) => match task.await {
            Ok(Err(e)) if is_deadline(&e) => deadline_response(&id, deadline),
            Ok(Err(e)) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` trapped: {}", root_cause(&e)),
            ),
            Ok(Ok(())) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` returned without setting a response"),
            ),
            Err(join) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` invocation failed: {join}"),
            ),
        },
        Err(_elapsed) => {
            task.abort();
            deadline_response(&id, deadline)
        }
    }
}

fn deadline_response(id: &str, deadline: Duration) -> Response<ResponseBody> {
    text_response(
        StatusCode::GATEWAY_TIMEOUT,
        format!("component `{id}` exceeded its execution deadline of {deadline:?}"),
    )
}

fn error_code_response(id: &str, code: ErrorCode) -> Response<ResponseBody> {
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("component `{id}` answered with an error: {code:?}"),
    )
}

fn root_cause(e: &wasmtime::Error) -> String {
    let full = format!("{e:#}");
    full.lines().next().unwrap_or_default().to_string()
}
