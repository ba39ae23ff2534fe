//! A host on a real socket, for integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use trellis_host::http::{HttpServer, Router};
use trellis_host::{
    Component, ComponentLimits, LoadError, Runtime, RuntimeConfig, TrustPolicy, TrustedIssuers,
};
use trellis_testing::{Signer, repo_root};

pub struct TestHost {
    pub runtime: Runtime,
    pub router: Arc<Router<Arc<Component>>>,
    pub server: HttpServer,
    pub signer: Signer,
}

impl TestHost {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    pub async fn start_with(allow_unsigned: bool) -> Self {
        let signer = Signer::new();
        let config = RuntimeConfig {
            cache_dir: Some(repo_root().join("target").join("test-artifact-cache")),
            trust: TrustPolicy {
                issuers: TrustedIssuers::Only([signer.public_key()].into()),
                allow_unsigned,
            },
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::builder(config).build().unwrap();
        let router = Arc::new(Router::new());
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = HttpServer::bind(addr, router.clone()).await.unwrap();
        Self {
            runtime,
            router,
            server,
            signer,
        }
    }

    /// Loads raw bytes (already signed or deliberately broken).
    pub fn load_bytes(
        &self,
        id: &str,
        bytes: &[u8],
        limits: ComponentLimits,
    ) -> Result<Arc<Component>, LoadError> {
        self.runtime.load(id, bytes, limits)
    }

    /// Signs a built guest with the host's trusted account and loads it.
    pub fn load_guest(
        &self,
        guest: &str,
        grants: &[&str],
        limits: ComponentLimits,
    ) -> Arc<Component> {
        let wasm = trellis_testing::guest(guest).unwrap();
        let signed = self.signer.sign(&wasm, guest, grants).unwrap();
        self.runtime.load(guest, &signed, limits).unwrap()
    }

    pub fn route(&self, host: Option<&str>, prefix: &str, component: Arc<Component>) {
        self.router.insert(host, prefix, component);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }
}

/// GET `url` and return the body text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
