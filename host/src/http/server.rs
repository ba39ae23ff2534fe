//! The listener: accepts connections (HTTP/1.1 and HTTP/2) and dispatches through a router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{Router, handle, text_response};
use crate::Component;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A running HTTP listener. Dropping it stops accepting; [`HttpServer::shutdown`] also drains
/// in-flight requests.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` and serves the components `router` points at.
    pub async fn bind(
        addr: SocketAddr,
        router: Arc<Router<Arc<Component>>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, router, stopped));
        tracing::info!(%local_addr, "HTTP server listening");
        Ok(Self {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits up to `grace` for in-flight requests to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Arc<Router<Arc<Component>>>,
    mut stopped: oneshot::Receiver<Duration>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper enforces no header-read timeout (slow-loris connections).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let grace = loop {
        let (stream, peer) = tokio::select! {
            grace = &mut stopped => break grace.unwrap_or_default(),
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req| dispatch(router.clone(), req));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    };
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
}

async fn dispatch(
    router: Arc<Router<Arc<Component>>>,
    request: http::Request<Incoming>,
) -> Result<http::Response<super::ResponseBody>, Infallible> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_string);
    let path = request.uri().path().to_string();
    let Some(component) = router.resolve(host.as_deref(), &path) else {
        return Ok(text_response(
            StatusCode::NOT_FOUND,
            format!(
                "no component is routed for host {} and path {path}",
                host.as_deref().unwrap_or("(none)")
            ),
        ));
    };
    let span = tracing::debug_span!(
        "host.http_request",
        component = component.id(),
        method = %request.method(),
        path = %path,
    );
    Ok(handle(component, request).instrument(span).await)
}
