//! One HTTP request through one fresh component instance.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
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

/// How an invocation ended.
#[derive(Debug, Clone)]
enum Outcome {
    Completed,
    Deadline,
    /// The host-wide instance pool had no free slot.
    PoolExhausted,
    Trapped(String),
}

/// Runs `request` through a fresh instance of `component` and returns its response (whose
/// body keeps streaming from the instance after this returns).
///
/// The deadline covers the whole invocation, body streaming included. The instance's task
/// always ends by `deadline + 250 ms`, dropping its store and its concurrency permit, even
/// when the guest is blocked on I/O or the client stops reading. If the guest traps after
/// sending the response head, the body ends with an error (the client sees a broken
/// response, never a truncated one that looks complete).
pub async fn handle<B>(
    component: Arc<Component>,
    request: http::Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let id = component.id().to_string();
    let Some(pre) = component.http().cloned() else {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{id}` does not export wasi:http/incoming-handler"),
        );
    };
    let permit = match component.acquire().await {
        Ok(permit) => permit,
        Err(busy) => return text_response(StatusCode::SERVICE_UNAVAILABLE, busy.to_string()),
    };
    let deadline = component.limits().deadline;
    let mut store = component.new_store();
    let (sender, receiver) = oneshot::channel();
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

    let (outcome_tx, outcome_rx) = oneshot::channel();
    let task_id = id.clone();
    let task = tokio::spawn(async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let outcome = match tokio::time::timeout(deadline + DEADLINE_GRACE, run).await {
            Ok(Ok(())) => Outcome::Completed,
            Ok(Err(e)) if is_deadline(&e) => Outcome::Deadline,
            Ok(Err(e)) if is_pool_exhausted(&e) => Outcome::PoolExhausted,
            Ok(Err(e)) => Outcome::Trapped(root_cause(&e)),
            Err(_blocked_past_deadline) => Outcome::Deadline,
        };
        match &outcome {
            Outcome::Completed => {}
            Outcome::Deadline => {
                tracing::warn!(component = %task_id, ?deadline, "invocation exceeded its deadline")
            }
            Outcome::Trapped(reason) => {
                tracing::warn!(component = %task_id, %reason, "invocation trapped")
            }
            Outcome::PoolExhausted => {
                tracing::warn!(component = %task_id, "no free instance slot in the host's pool")
            }
        }
        // Free the pool slot before the permit, so the next waiter finds a slot.
        drop(store);
        drop(permit);
        let _ = outcome_tx.send(outcome.clone());
        outcome
    });
    let mut task = AbortOnDrop(Some(task));

    // Bounded: the task ends within the deadline and its store holds the sender.
    match receiver.await {
        Ok(Ok(response)) => {
            task.detach();
            response.map(|body| {
                InvocationBody {
                    inner: body,
                    outcome: Some(outcome_rx),
                }
                .boxed_unsync()
            })
        }
        Ok(Err(code)) => error_code_response(&id, code),
        Err(_no_response) => match task.join().await {
            Some(Outcome::Deadline) => deadline_response(&id, deadline),
            Some(Outcome::Trapped(reason)) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` trapped: {reason}"),
            ),
            Some(Outcome::PoolExhausted) => text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "component `{id}` could not start: every instance slot of this host is in use; try again or raise --max-concurrent"
                ),
            ),
            Some(Outcome::Completed) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` returned without setting a response"),
            ),
            None => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{id}` invocation task failed"),
            ),
        },
    }
}

/// Aborts the invocation task if the request is dropped before a response (client gone).
struct AbortOnDrop(Option<JoinHandle<Outcome>>);

impl AbortOnDrop {
    /// Lets the task run on by itself (it is streaming the response body).
    fn detach(&mut self) {
        self.0 = None;
    }

    async fn join(&mut self) -> Option<Outcome> {
        match self.0.take() {
            Some(handle) => handle.await.ok(),
            None => None,
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

/// The guest's response body, which ends in an error instead of a clean end of stream when
/// the invocation did not complete.
struct InvocationBody {
    inner: ResponseBody,
    outcome: Option<oneshot::Receiver<Outcome>>,
}

impl Body for InvocationBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            return Poll::Ready(Some(frame));
        }
        let Some(outcome) = this.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = ready!(Pin::new(outcome).poll(cx));
        this.outcome = None;
        match outcome {
            Ok(Outcome::Completed) => Poll::Ready(None),
            _ => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

fn is_pool_exhausted(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
}

fn root_cause(e: &wasmtime::Error) -> String {
    let full = format!("{e:#}");
    full.lines().next().unwrap_or_default().to_string()
}
