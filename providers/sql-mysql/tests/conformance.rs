//! The shared `wasi:sql` conformance body against the local MariaDB/MySQL
//! (`TRELLIS_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`), in a throw-away database.

use std::sync::Arc;

use trellis_provider_sql_mysql::MysqlProvider;
use trellis_testing::sql::{Dialect, mysql_database, provider_conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_provider_conforms() {
    let db = mysql_database().await;
    provider_conformance(
        Arc::new(MysqlProvider::new()),
        db.url(),
        "mysql://root@127.0.0.1:1/nothing",
        Dialect::Mysql,
    )
    .await;
    db.drop().await;
}
