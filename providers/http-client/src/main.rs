//! The `http-client` provider as its own process on the lattice: a host starts it with
//! `provider.start` (a `file://` reference to this binary) and hands it the lattice's
//! connection data on stdin; see `trellis_provider_sdk::process`.

use std::sync::Arc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = trellis_provider_sdk::process::run(Arc::new(
        trellis_provider_http_client::HttpClientProvider::new(),
    ))
    .await;
    trellis_provider_sdk::process::exit("http-client", result)
}
