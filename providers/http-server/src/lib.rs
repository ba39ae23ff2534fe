//! `http-server`: serves HTTP and hands each request to a component's
//! `wasi:http/incoming-handler`, chosen by links.
//!
//! This provider is the **source** of links to components (`trellis link put http COMPONENT
//! wasi:http --interface incoming-handler --source-config NAME`). Each link's source config
//! says where the component is reached:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `address` | `IP:PORT` to listen on (links may share one) | `0.0.0.0:8080` |
//! | `path` | path prefix, matched on `/` boundaries; the longest wins | `/` |
//! | `host` | only requests whose `Host` (port ignored) is this name | any host |
//!
//! A request no link matches gets 404 naming the host and path; a component that is not
//! running, or fails, gives 502/503/504 with the reason. Request bodies over `max_body`
//! (source config, default 16 MiB) get 413. Listeners open on the first link for an address
//! and close with the last one. Running in-process, a request for a component in the same
//! host is a direct call; otherwise it crosses NATS to a host that runs the component.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use trellis_provider_sdk::http::{ComponentInvoker, HttpRequest, HttpResponse};
use trellis_provider_sdk::{Capabilities, LinkConfig, Provider, ProviderError, async_trait};

const DEFAULT_ADDRESS: &str = "0.0.0.0:8080";
const DEFAULT_MAX_BODY: usize = 16 << 20;

/// One link: which requests reach which component.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    host: Option<String>,
    path: String,
    component: String,
    link_name: String,
    max_body: usize,
}

impl Route {
    fn from_link(link: &LinkConfig) -> Result<(SocketAddr, Self), ProviderError> {
        let config = &link.source_config;
        let address = config
            .get("address")
            .map_or(DEFAULT_ADDRESS, String::as_str);
        let address: SocketAddr = address.parse().map_err(|e| {
            ProviderError::new(format!(
                "link `{}` to `{}`: `address` = `{address}` is not IP:PORT ({e}); set e.g. \
                 address=0.0.0.0:8080 in the link's source config",
                link.link_name, link.target
            ))
        })?;
        let mut path = config.get("path").cloned().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        let max_body = match config.get("max_body") {
            None => DEFAULT_MAX_BODY,
            Some(v) => v.parse().map_err(|_| {
                ProviderError::new(format!("`max_body` = `{v}` is not a number of bytes"))
            })?,
        };
        let host = config
            .get("host")
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        Ok((
            address,
            Self {
                host,
                path,
                component: link.target.clone(),
                link_name: link.link_name.clone(),
                max_body,
            },
        ))
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want == got,
            (Some(_), None) => false,
        };
        let path_ok = self.path == "/"
            || path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
        host_ok && path_ok
    }
}

/// The routes of one address, and its accept loop.
struct Listener {
    routes: Arc<RwLock<Vec<Route>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The HTTP server provider.
#[derive(Default)]
pub struct HttpServerProvider {
    listeners: Mutex<BTreeMap<SocketAddr, Listener>>,
    invoker: OnceLock<Arc<dyn ComponentInvoker>>,
}

impl HttpServerProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, BTreeMap<SocketAddr, Listener>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Picks the route for a request: host routes before any-host ones, then the longest path.
fn resolve(routes: &[Route], host: Option<&str>, path: &str) -> Option<Route> {
    routes
        .iter()
        .filter(|r| r.matches(host, path))
        .max_by_key(|r| (r.host.is_some(), r.path.len()))
        .cloned()
}

fn respond(response: HttpResponse) -> http::Response<Full<Bytes>> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|e| text(502, format!("the component sent an invalid response: {e}")))
}

fn text(status: u16, message: String) -> http::Response<Full<Bytes>> {
    let body = HttpResponse::text(status, message);
    let mut response = http::Response::new(Full::new(Bytes::from(body.body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn serve_request(
    routes: Arc<RwLock<Vec<Route>>>,
    invoker: Option<Arc<dyn ComponentInvoker>>,
    request: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    let path = request.uri().path().to_string();
    let route = {
        let routes = routes.read().unwrap_or_else(|p| p.into_inner());
        resolve(&routes, host.as_deref(), &path)
    };
    let Some(route) = route else {
        return text(
            404,
            format!(
                "no link routes host `{}` path `{path}` here",
                host.as_deref().unwrap_or("-")
            ),
        );
    };
    let Some(invoker) = invoker else {
        return text(503, "the HTTP server provider is not initialized".into());
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, route.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return text(
                413,
                format!(
                    "request body refused ({e}); the limit is {} bytes",
                    route.max_body
                ),
            );
        }
    };
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        authority: host,
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    serde_bytes::ByteBuf::from(v.as_bytes().to_vec()),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    match invoker.handle_http(&route.component, request).await {
        Ok(response) => respond(response),
        Err(message) => {
            tracing::warn!(component = %route.component, link = %route.link_name, %message, "request failed");
            let status = if message.contains("not running") {
                503
            } else {
                502
            };
            text(status, message)
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    routes: Arc<RwLock<Vec<Route>>>,
    invoker: Option<Arc<dyn ComponentInvoker>>,
) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let invoker = invoker.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let routes = routes.clone();
                let invoker = invoker.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(serve_request(routes, invoker, request).await)
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

#[async_trait]
impl Provider for HttpServerProvider {
    fn set_invoker(&self, invoker: Arc<dyn ComponentInvoker>) {
        let _ = self.invoker.set(invoker);
    }

    async fn receive_link_config_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let (address, route) = Route::from_link(link)?;
        let existing = self.listeners().get(&address).map(|l| l.routes.clone());
        let routes = match existing {
            Some(routes) => routes,
            None => {
                let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    ProviderError::new(format!(
                        "cannot listen on {address} for link `{}` to `{}`: {e}; pick another \
                         `address` in the link's source config",
                        link.link_name, link.target
                    ))
                })?;
                let routes = Arc::new(RwLock::new(Vec::new()));
                let task = tokio::spawn(accept_loop(
                    listener,
                    routes.clone(),
                    self.invoker.get().cloned(),
                ));
                tracing::info!(%address, "HTTP server provider listening");
                self.listeners().insert(
                    address,
                    Listener {
                        routes: routes.clone(),
                        task,
                    },
                );
                routes
            }
        };
        let mut routes = routes.write().unwrap_or_else(|p| p.into_inner());
        routes.retain(|r| !(r.component == route.component && r.link_name == route.link_name));
        routes.push(route);
        Ok(())
    }

    async fn delete_link_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let mut listeners = self.listeners();
        listeners.retain(|address, listener| {
            let mut routes = listener.routes.write().unwrap_or_else(|p| p.into_inner());
            routes.retain(|r| !(r.component == link.target && r.link_name == link.link_name));
            if routes.is_empty() {
                listener.task.abort();
                tracing::info!(%address, "HTTP server provider stopped listening (no links left)");
                false
            } else {
                true
            }
        });
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ProviderError> {
        for (_, listener) in std::mem::take(&mut *self.listeners()) {
            listener.task.abort();
        }
        Ok(())
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, component: &str) -> Route {
        Route {
            host: host.map(str::to_string),
            path: path.into(),
            component: component.into(),
            link_name: "default".into(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = vec![
            route(None, "/", "root"),
            route(None, "/api", "api"),
            route(Some("shop.example"), "/", "shop"),
        ];
        let pick = |host, path| resolve(&routes, host, path).map(|r| r.component);
        assert_eq!(pick(None, "/x").as_deref(), Some("root"));
        assert_eq!(pick(None, "/api").as_deref(), Some("api"));
        assert_eq!(pick(None, "/api/orders").as_deref(), Some("api"));
        assert_eq!(pick(None, "/apis").as_deref(), Some("root"));
        assert_eq!(pick(Some("shop.example"), "/api").as_deref(), Some("shop"));
        let only_api = vec![route(None, "/api", "api")];
        assert!(resolve(&only_api, None, "/").is_none());
    }

    #[test]
    fn link_config_is_checked() {
        let mut link = LinkConfig {
            source_id: "http".into(),
            target: "hello".into(),
            link_name: "default".into(),
            ..LinkConfig::default()
        };
        let (address, r) = Route::from_link(&link).unwrap();
        assert_eq!(address.to_string(), DEFAULT_ADDRESS);
        assert_eq!(r.path, "/");
        link.source_config
            .insert("address".into(), "nowhere".into());
        let e = Route::from_link(&link).unwrap_err();
        assert!(e.0.contains("`address`"), "{e}");
        link.source_config
            .insert("address".into(), "127.0.0.1:0".into());
        link.source_config.insert("path".into(), "api/".into());
        link.source_config
            .insert("host".into(), "Shop.Example".into());
        let (_, r) = Route::from_link(&link).unwrap();
        assert_eq!(
            (r.path.as_str(), r.host.as_deref()),
            ("/api", Some("shop.example"))
        );
    }
}
