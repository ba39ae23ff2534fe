//! The shared `wasi:sql` conformance body against the local PostgreSQL
//! (`TRELLIS_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`), in a
//! throw-away database.

use std::sync::Arc;

use trellis_provider_sql_postgres::PostgresProvider;
use trellis_testing::sql::{Dialect, postgres_database, provider_conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_provider_conforms() {
    let db = postgres_database().await;
    provider_conformance(
        Arc::new(PostgresProvider::new()),
        db.url(),
        "postgres://postgres@127.0.0.1:1/nothing",
        Dialect::Postgres,
    )
    .await;
    db.drop().await;
}
