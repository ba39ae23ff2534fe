//! The first-party providers a `trellis host` can run in-process (`builtin://NAME`).
//!
//! The CLI is the one place that wires crates together, so the registry lives here: the
//! host crate knows providers only through `trellis-provider-sdk`.

use std::sync::Arc;

use trellis_host::lattice::{BuiltinProviders, ProviderFactory};
use trellis_provider_sdk::Provider;

fn factory<P: Provider>(make: fn() -> P) -> ProviderFactory {
    Arc::new(move || Arc::new(make()) as Arc<dyn Provider>)
}

/// Every first-party provider, by the name `builtin://NAME` uses.
pub(crate) fn providers() -> BuiltinProviders {
    BuiltinProviders(std::collections::BTreeMap::from([
        (
            "keyvalue-memory".to_string(),
            factory(trellis_provider_keyvalue_memory::MemoryProvider::new),
        ),
        (
            "keyvalue-redis".to_string(),
            factory(trellis_provider_keyvalue_redis::RedisProvider::new),
        ),
        (
            "keyvalue-nats".to_string(),
            factory(trellis_provider_keyvalue_nats::NatsKvProvider::new),
        ),
        (
            "sql-mysql".to_string(),
            factory(trellis_provider_sql_mysql::MysqlProvider::new),
        ),
        (
            "sql-postgres".to_string(),
            factory(trellis_provider_sql_postgres::PostgresProvider::new),
        ),
        (
            "http-server".to_string(),
            factory(trellis_provider_http_server::HttpServerProvider::new),
        ),
        (
            "http-client".to_string(),
            factory(trellis_provider_http_client::HttpClientProvider::new),
        ),
    ]))
}
