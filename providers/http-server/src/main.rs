//! The `http-server` provider as its own process on the lattice: a host starts it with
//! `provider.start` (a `file://` reference to this binary) and hands it the lattice's
//! connection data on stdin; see `trellis_provider_sdk::process`.

#[tokio::main]
async fn main() {
    trellis_provider_sdk::process::main(
        "http-server",
        trellis_provider_http_server::HttpServerProvider::new(),
    )
    .await
}
