//! SQL test support: throw-away databases on the local servers, and one conformance test body
//! that every SQL provider passes.
//!
//! - [`mysql_database`] / [`postgres_database`] create a uniquely named database
//!   (`trellis_test_<unix secs>_<pid>_<n>`) on the MariaDB at `TRELLIS_TEST_MYSQL_URL` (default
//!   `mysql://root@127.0.0.1:3306`) or the PostgreSQL at `TRELLIS_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432`). [`TestDb::drop`] removes it; a `TestDb` dropped
//!   without it removes its database from a helper thread, and every creation also removes
//!   `trellis_test_*` databases older than an hour (left by killed test runs).
//! - [`conformance`] runs the whole `wasi:sql` contract through an `Arc<dyn Sql>` whose link
//!   points at an empty database: typed round trips of every value, affected-row counts,
//!   parameters as data, typed errors, concurrent calls.
//! - [`provider_conformance`] drives a provider through its lifecycle (link put, replace,
//!   delete, health, shutdown) around [`conformance`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use trellis_provider_sdk::sql::{Row, Sql, SqlError, SqlValue};
use trellis_provider_sdk::{CallContext, InitContext, LinkConfig, Provider};

/// The env var naming the MariaDB/MySQL server for tests.
pub const MYSQL_URL_ENV: &str = "TRELLIS_TEST_MYSQL_URL";
/// The env var naming the PostgreSQL server for tests.
pub const POSTGRES_URL_ENV: &str = "TRELLIS_TEST_POSTGRES_URL";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
const PREFIX: &str = "trellis_test_";
/// Test databases older than this are left-overs of killed runs.
const STALE_AFTER: Duration = Duration::from_secs(3600);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Which database a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL / MariaDB: `?` placeholders, unsigned integers, `BOOLEAN` reads as `Int32`.
    Mysql,
    /// PostgreSQL: `$1…` placeholders, no unsigned integers.
    Postgres,
}

impl Dialect {
    /// `stmt` with each `?` outside quotes turned into this dialect's placeholder.
    pub fn sql(self, stmt: &str) -> String {
        if self == Dialect::Mysql {
            return stmt.to_string();
        }
        let mut out = String::with_capacity(stmt.len() + 8);
        let (mut n, mut quoted) = (0, false);
        for c in stmt.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    out.push(c);
                }
                '?' if !quoted => {
                    n += 1;
                    out.push_str(&format!("${n}"));
                }
                _ => out.push(c),
            }
        }
        out
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Mysql => "MariaDB/MySQL",
            Dialect::Postgres => "PostgreSQL",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throw-away databases
// ---------------------------------------------------------------------------------------------

/// A database made for one test. Call [`TestDb::drop`] at the end; dropping it without that
/// still removes the database, from a helper thread.
pub struct TestDb {
    dialect: Dialect,
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDb {
    /// The URL of the new database (what a link's `url` holds).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the database (closing other sessions on it, for PostgreSQL).
    pub async fn drop(mut self) {
        self.dropped = true;
        if let Err(e) = drop_database(self.dialect, &self.admin_url, &self.name).await {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (dialect, admin_url, name) = (self.dialect, self.admin_url.clone(), self.name.clone());
        // Its own thread and runtime: this may run inside (or outside) any runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                match tokio::time::timeout(ADMIN_TIMEOUT, drop_database(dialect, &admin_url, &name))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("warning: could not drop test database {name}: {e}"),
                    Err(_) => eprintln!("warning: dropping test database {name} timed out"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A new empty database (utf8mb4) on the MariaDB/MySQL at `TRELLIS_TEST_MYSQL_URL`.
///
/// Panics, saying how to get a server, when none answers.
pub async fn mysql_database() -> TestDb {
    let admin_url = std::env::var(MYSQL_URL_ENV).unwrap_or_else(|_| DEFAULT_MYSQL_URL.into());
    create_database(Dialect::Mysql, admin_url).await
}

/// A new empty database (UTF8) on the PostgreSQL at `TRELLIS_TEST_POSTGRES_URL`.
///
/// Panics, saying how to get a server, when none answers.
pub async fn postgres_database() -> TestDb {
    let admin_url = std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    create_database(Dialect::Postgres, admin_url).await
}

async fn create_database(dialect: Dialect, admin_url: String) -> TestDb {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = unix_secs();
    let name = format!(
        "{PREFIX}{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let created = tokio::time::timeout(ADMIN_TIMEOUT, async {
        match dialect {
            Dialect::Mysql => create_mysql(&admin_url, &name, now).await,
            Dialect::Postgres => create_postgres(&admin_url, &name, now).await,
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {ADMIN_TIMEOUT:?}")));
    if let Err(e) = created {
        let (env, install) = match dialect {
            Dialect::Mysql => (
                MYSQL_URL_ENV,
                "apt-get install -y mariadb-server && service mariadb start \
                 (root connects from 127.0.0.1 without a password)",
            ),
            Dialect::Postgres => (
                POSTGRES_URL_ENV,
                "apt-get install -y postgresql && service postgresql start, with `trust` \
                 auth for 127.0.0.1 in pg_hba.conf",
            ),
        };
        panic!(
            "cannot create a test database on the {} server at {admin_url} (from env {env} or \
             its default): {e}\nInstall and start one: {install}; or set {env} to a server \
             where this user may create databases.",
            dialect.name()
        );
    }
    let url = with_database(&admin_url, &name);
    TestDb {
        dialect,
        admin_url,
        name,
        url,
        dropped: false,
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Whether `name` is a test database created over an hour before `now`.
fn is_stale(name: &str, now: u64) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|created| now.saturating_sub(created) > STALE_AFTER.as_secs())
}

/// `base` (a server URL, maybe with a database and options) pointing at database `name`.
fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (base, None),
    };
    let authority_start = main.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = main[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(main.len());
    let mut url = format!("{}/{name}", &main[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn mysql_admin(admin_url: &str) -> Result<mysql_async::Conn, String> {
    let opts = mysql_async::Opts::from_url(admin_url).map_err(|e| e.to_string())?;
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| e.to_string())
}

async fn create_mysql(admin_url: &str, name: &str, now: u64) -> Result<(), String> {
    let mut conn = mysql_admin(admin_url).await?;
    let existing: Vec<String> = conn
        .query("SHOW DATABASES LIKE 'trellis\\_test\\_%'")
        .await
        .map_err(|e| e.to_string())?;
    for stale in existing.iter().filter(|n| is_stale(n, now)) {
        let _ = conn
            .query_drop(format!("DROP DATABASE IF EXISTS `{stale}`"))
            .await;
    }
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(())
}

async fn postgres_admin(admin_url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn create_postgres(admin_url: &str, name: &str, now: u64) -> Result<(), String> {
    let client = postgres_admin(admin_url).await?;
    let existing = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'trellis\\_test\\_%'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    for row in existing {
        let Ok(stale) = row.try_get::<_, String>(0) else {
            continue;
        };
        if is_stale(&stale, now) {
            let _ = drop_postgres(&client, &stale).await;
        }
    }
    client
        .batch_execute(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' \
             LC_CTYPE 'C'"
        ))
        .await
        .map_err(|e| e.to_string())
}

async fn drop_postgres(client: &tokio_postgres::Client, name: &str) -> Result<(), String> {
    // WITH (FORCE) (PostgreSQL 13+) ends the sessions still on it, e.g. a provider's pool.
    let forced = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    match forced {
        Ok(()) => Ok(()),
        Err(_) => client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await
            .map_err(|e| e.to_string()),
    }
}

async fn drop_database(dialect: Dialect, admin_url: &str, name: &str) -> Result<(), String> {
    match dialect {
        Dialect::Mysql => {
            let mut conn = mysql_admin(admin_url).await?;
            conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.disconnect().await;
            Ok(())
        }
        Dialect::Postgres => drop_postgres(&postgres_admin(admin_url).await?, name).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance
// ---------------------------------------------------------------------------------------------

fn ok<T>(result: Result<T, SqlError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

fn expect_err<T: std::fmt::Debug>(result: Result<T, SqlError>, what: &str) -> SqlError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(e) => e,
    }
}

/// A link from `source` named `link_name` whose target config holds `config`.
pub fn link(source: &str, link_name: &str, config: &[(&str, &str)]) -> LinkConfig {
    LinkConfig {
        source_id: source.into(),
        target: "sql".into(),
        link_name: link_name.into(),
        wit_namespace: "wasi".into(),
        wit_package: "sql".into(),
        interfaces: vec!["readwrite".into()],
        source_config: BTreeMap::new(),
        target_config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

const COLUMNS: [&str; 15] = [
    "id", "small", "big", "usmall", "ubig", "f", "d", "s", "bin", "flag", "day", "tod", "ts",
    "tsz", "amount",
];

fn create_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Mysql => {
            "CREATE TABLE things (id INT NOT NULL PRIMARY KEY, small INT NULL, big BIGINT NULL, \
             usmall INT UNSIGNED NULL, ubig BIGINT UNSIGNED NULL, f FLOAT NULL, d DOUBLE NULL, \
             s VARCHAR(200) NULL, bin VARBINARY(100) NULL, flag BOOLEAN NULL, day DATE NULL, \
             tod TIME(6) NULL, ts DATETIME(6) NULL, tsz TIMESTAMP(6) NULL, \
             amount DECIMAL(10,2) NULL)"
        }
        Dialect::Postgres => {
            "CREATE TABLE things (id INTEGER PRIMARY KEY, small INTEGER, big BIGINT, \
             usmall BIGINT, ubig NUMERIC(20,0), f REAL, d DOUBLE PRECISION, s VARCHAR(200), \
             bin BYTEA, flag BOOLEAN, day DATE, tod TIME(6), ts TIMESTAMP(6), \
             tsz TIMESTAMPTZ(6), amount NUMERIC(10,2))"
        }
    }
}

/// A row to insert and the values it reads back as, column by column.
struct Sample {
    params: Vec<SqlValue>,
    expected: Vec<SqlValue>,
}

fn samples(dialect: Dialect) -> Vec<Sample> {
    use SqlValue::*;
    let mysql = dialect == Dialect::Mysql;
    let text = "héllo wörld — 日本語 🎉 'single' \"double\" \\ back\tslash";
    let full = vec![
        Int32(1),
        Int32(i32::MIN),
        Int64(i64::MAX),
        Uint32(u32::MAX),
        Uint64(u64::MAX),
        Float(1.5),
        Double(std::f64::consts::PI),
        Str(text.into()),
        Binary(vec![0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 0]),
        Boolean(true),
        Date("2024-02-29".into()),
        Time("13:45:30.123456".into()),
        Timestamp("2024-02-29 13:45:30.123456".into()),
        Timestamp("2024-06-30 23:59:59.000001".into()),
        Str("12345.67".into()),
    ];
    let mut full_back = full.clone();
    if !mysql {
        full_back[3] = Int64(i64::from(u32::MAX));
        full_back[4] = Str(u64::MAX.to_string());
    } else {
        full_back[9] = Int32(1);
    }
    let mut nulls = vec![Null; COLUMNS.len()];
    nulls[0] = Int32(2);
    let other = vec![
        Int32(3),
        Int32(i32::MAX),
        Int64(i64::MIN),
        Uint32(0),
        Uint64(0),
        Float(-0.25),
        Double(-1e300),
        Str(String::new()),
        Binary(Vec::new()),
        Boolean(false),
        Date("1970-01-01".into()),
        Time("00:00:00".into()),
        Timestamp("1999-12-31 23:59:59".into()),
        Timestamp("2001-02-03 04:05:06".into()),
        Str("-0.05".into()),
    ];
    let mut other_back = other.clone();
    if !mysql {
        other_back[3] = Int64(0);
        other_back[4] = Str("0".into());
    } else {
        other_back[9] = Int32(0);
    }
    vec![
        Sample {
            params: full,
            expected: full_back,
        },
        Sample {
            params: nulls.clone(),
            expected: nulls,
        },
        Sample {
            params: other,
            expected: other_back,
        },
    ]
}

fn row_values(row: &Row) -> Vec<(String, SqlValue)> {
    row.columns
        .iter()
        .map(|c| (c.name.clone(), c.value.clone()))
        .collect()
}

/// The whole `wasi:sql` contract, through `sql`, for calls through the link `cx`, whose
/// target config points `url` at an empty (throw-away) database of `dialect`.
///
/// Panics with what differs from the contract.
pub async fn conformance(sql: Arc<dyn Sql>, cx: &CallContext, dialect: Dialect) {
    let d = dialect;
    let conn = "default";

    ok(sql.open(cx, conn).await, "open the default connection");

    // DDL through exec.
    ok(
        sql.exec(cx, conn, "DROP TABLE IF EXISTS things", vec![])
            .await,
        "drop table if exists",
    );
    let created = ok(
        sql.exec(cx, conn, create_table(d), vec![]).await,
        "create table",
    );
    assert_eq!(created, 0, "CREATE TABLE affects no rows");

    // Every value type in, the same typed values out.
    let insert = d.sql(&format!(
        "INSERT INTO things ({}) VALUES ({})",
        COLUMNS.join(", "),
        vec!["?"; COLUMNS.len()].join(", ")
    ));
    let select_one = d.sql(&format!(
        "SELECT {} FROM things WHERE id = ?",
        COLUMNS.join(", ")
    ));
    for sample in samples(d) {
        let id = sample.params[0].clone();
        let inserted = ok(
            sql.exec(cx, conn, &insert, sample.params.clone()).await,
            &format!("insert {:?}", sample.params),
        );
        assert_eq!(inserted, 1, "one row inserted");
        let rows = ok(
            sql.query(cx, conn, &select_one, vec![id.clone()]).await,
            "select the row back",
        );
        assert_eq!(rows.len(), 1, "one row for id {id:?}: {rows:?}");
        let expected: Vec<(String, SqlValue)> = COLUMNS
            .iter()
            .map(|c| c.to_string())
            .zip(sample.expected)
            .collect();
        assert_eq!(
            row_values(&rows[0]),
            expected,
            "values read back (column names in select order)"
        );
        assert_eq!(rows[0].get("id"), Some(&id), "Row::get by column name");
    }

    // Row order and no rows.
    let ids = ok(
        sql.query(cx, conn, "SELECT id FROM things ORDER BY id", vec![])
            .await,
        "select all ids",
    );
    let ids: Vec<_> = ids.iter().filter_map(|r| r.get("id").cloned()).collect();
    assert_eq!(
        ids,
        [SqlValue::Int32(1), SqlValue::Int32(2), SqlValue::Int32(3)]
    );
    let none = ok(
        sql.query(
            cx,
            conn,
            &d.sql("SELECT id FROM things WHERE id = ?"),
            vec![SqlValue::Int64(999)],
        )
        .await,
        "select nothing",
    );
    assert!(none.is_empty(), "no rows: {none:?}");

    // Update and delete report the rows they changed.
    let updated = ok(
        sql.exec(
            cx,
            conn,
            &d.sql("UPDATE things SET s = ? WHERE id >= ?"),
            vec![SqlValue::Str("updated".into()), SqlValue::Int32(2)],
        )
        .await,
        "update",
    );
    assert_eq!(updated, 2, "UPDATE counts the rows it changed");
    assert_eq!(count(&sql, cx, d, "s = 'updated'").await, 2);
    let deleted = ok(
        sql.exec(
            cx,
            conn,
            &d.sql("DELETE FROM things WHERE id = ? OR id = ?"),
            vec![SqlValue::Int32(2), SqlValue::Uint32(3)],
        )
        .await,
        "delete",
    );
    assert_eq!(deleted, 2, "DELETE counts the rows it removed");
    assert_eq!(count(&sql, cx, d, "1 = 1").await, 1);

    // Parameters are data, never SQL.
    let evil = "'; DROP TABLE things; --";
    ok(
        sql.exec(
            cx,
            conn,
            &d.sql("INSERT INTO things (id, s) VALUES (?, ?)"),
            vec![SqlValue::Int32(10), SqlValue::Str(evil.into())],
        )
        .await,
        "insert an injection attempt",
    );
    let found = ok(
        sql.query(
            cx,
            conn,
            &d.sql("SELECT id, s FROM things WHERE s = ?"),
            vec![SqlValue::Str(evil.into())],
        )
        .await,
        "find it by value",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].get("s"), Some(&SqlValue::Str(evil.into())));
    assert_eq!(
        count(&sql, cx, d, "1 = 1").await,
        2,
        "the table is still there"
    );

    // Typed errors.
    let e = expect_err(
        sql.exec(cx, conn, "SELEC * FROM things", vec![]).await,
        "a syntax error",
    );
    assert!(
        matches!(e, SqlError::Syntax(ref m) if !m.is_empty()),
        "{e:?}"
    );
    let e = expect_err(
        sql.query(cx, conn, "SELECT FROM WHERE", vec![]).await,
        "a syntax error in a query",
    );
    assert!(matches!(e, SqlError::Syntax(_)), "{e:?}");
    let e = expect_err(
        sql.exec(
            cx,
            conn,
            &d.sql("INSERT INTO things (id, s) VALUES (?, ?)"),
            vec![SqlValue::Int32(1), SqlValue::Str("again".into())],
        )
        .await,
        "a duplicate primary key",
    );
    assert!(
        matches!(e, SqlError::ConstraintViolation(ref m) if !m.is_empty()),
        "{e:?}"
    );
    let e = expect_err(
        sql.query(
            cx,
            conn,
            &d.sql("SELECT id FROM things WHERE id = ?"),
            vec![SqlValue::Int32(1), SqlValue::Int32(2)],
        )
        .await,
        "too many parameters",
    );
    assert!(matches!(e, SqlError::TypeMismatch(_)), "{e:?}");
    let e = expect_err(
        sql.exec(cx, conn, &d.sql("DELETE FROM things WHERE id = ?"), vec![])
            .await,
        "too few parameters",
    );
    assert!(matches!(e, SqlError::TypeMismatch(_)), "{e:?}");
    let e = expect_err(
        sql.exec(
            cx,
            conn,
            &d.sql("INSERT INTO things (id, small) VALUES (?, ?)"),
            vec![SqlValue::Int32(20), SqlValue::Str("not a number".into())],
        )
        .await,
        "a string for an integer column",
    );
    assert!(matches!(e, SqlError::TypeMismatch(_)), "{e:?}");
    let e = expect_err(
        sql.exec(
            cx,
            conn,
            &d.sql("INSERT INTO things (id, small) VALUES (?, ?)"),
            vec![SqlValue::Int32(21), SqlValue::Int64(i64::MAX)],
        )
        .await,
        "an integer out of the column's range",
    );
    assert!(matches!(e, SqlError::TypeMismatch(_)), "{e:?}");
    assert_eq!(
        count(&sql, cx, d, "1 = 1").await,
        2,
        "failed statements changed nothing"
    );

    // Unknown connection names and links.
    for result in [
        sql.open(cx, "nope").await,
        sql.exec(cx, "nope", "SELECT 1", vec![]).await.map(|_| ()),
    ] {
        let e = expect_err(result, "an unknown connection name");
        match e {
            SqlError::NoSuchConnection(m) => assert!(
                m.contains("nope") && m.contains("`url`"),
                "the message names the connection and the configured keys: {m}"
            ),
            other => panic!("expected NoSuchConnection, got {other:?}"),
        }
    }
    let stranger = CallContext::new(cx.source_id.clone(), "no-such-link");
    let e = expect_err(
        sql.query(&stranger, conn, "SELECT 1", vec![]).await,
        "a call through an unknown link",
    );
    match e {
        SqlError::NoSuchConnection(m) => assert!(m.contains("no-such-link"), "{m}"),
        other => panic!("expected NoSuchConnection for an unknown link, got {other:?}"),
    }

    // Many tasks share the pool.
    const TASKS: i32 = 24;
    const EACH: i32 = 5;
    let insert_s = d.sql("INSERT INTO things (id, s) VALUES (?, ?)");
    let select_s = d.sql("SELECT s FROM things WHERE id = ?");
    let tasks = (0..TASKS).map(|t| {
        let (sql, cx, insert_s, select_s) =
            (sql.clone(), cx.clone(), insert_s.clone(), select_s.clone());
        tokio::spawn(async move {
            for i in 0..EACH {
                let id = 1000 + t * EACH + i;
                let s = format!("task {t} op {i}");
                let n = sql
                    .exec(
                        &cx,
                        "default",
                        &insert_s,
                        vec![SqlValue::Int32(id), SqlValue::Str(s.clone())],
                    )
                    .await?;
                let rows = sql
                    .query(&cx, "default", &select_s, vec![SqlValue::Int32(id)])
                    .await?;
                let back = rows.first().and_then(|r| r.get("s")).cloned();
                if n != 1 || back != Some(SqlValue::Str(s.clone())) {
                    return Err(SqlError::Other(format!(
                        "row {id}: inserted {n}, read back {back:?}, wanted {s:?}"
                    )));
                }
            }
            Ok::<(), SqlError>(())
        })
    });
    for (t, joined) in futures::future::join_all(tasks)
        .await
        .into_iter()
        .enumerate()
    {
        match joined {
            Ok(result) => ok(result, &format!("concurrent task {t}")),
            Err(e) => panic!("concurrent task {t} panicked: {e}"),
        }
    }
    assert_eq!(
        count(&sql, cx, d, "id >= 1000").await,
        i64::from(TASKS * EACH)
    );
}

/// `SELECT COUNT(*) FROM things WHERE <condition>`.
async fn count(sql: &Arc<dyn Sql>, cx: &CallContext, d: Dialect, condition: &str) -> i64 {
    let stmt = d.sql(&format!(
        "SELECT COUNT(*) AS n FROM things WHERE {condition}"
    ));
    let rows = ok(sql.query(cx, "default", &stmt, vec![]).await, &stmt);
    match rows.first().and_then(|r| r.get("n")) {
        Some(SqlValue::Int64(n)) => *n,
        other => panic!("{stmt}: expected one Int64, got {other:?}"),
    }
}

/// Drives `provider` through its lifecycle around [`conformance`], with links to the
/// database at `url` (an empty throw-away database of `dialect`) and to a server that does
/// not answer (`down_url`, e.g. port 1 on 127.0.0.1).
pub async fn provider_conformance(
    provider: Arc<dyn Provider>,
    url: &str,
    down_url: &str,
    dialect: Dialect,
) {
    let init = InitContext {
        provider_id: "sql".into(),
        lattice: "default".into(),
        host_id: "test-host".into(),
        config: BTreeMap::new(),
    };
    provider
        .init(&init)
        .await
        .unwrap_or_else(|e| panic!("init: {e}"));
    let caps = provider.clone().capabilities();
    assert_eq!(caps.interfaces(), ["wasi:sql/types", "wasi:sql/readwrite"]);
    let Some(sql) = caps.sql else {
        panic!("the provider serves no SQL capability")
    };

    // Links that cannot work are refused when put.
    for (why, config) in [
        ("no url", vec![("pool_size", "2")]),
        (
            "a url of another scheme",
            vec![("url", "http://127.0.0.1/x")],
        ),
        ("a pool size of 0", vec![("url", url), ("pool_size", "0")]),
        ("an empty connection name", vec![("url.", url)]),
    ] {
        let refused = provider
            .receive_link_config_as_target(&link("app", "bad", &config))
            .await;
        assert!(refused.is_err(), "a link with {why} is refused");
    }

    // The main link: two connection names to the same database, a small pool.
    let main = link(
        "app",
        "default",
        &[("url", url), ("url.second", url), ("pool_size", "4")],
    );
    provider
        .receive_link_config_as_target(&main)
        .await
        .unwrap_or_else(|e| panic!("link put: {e}"));
    let cx = CallContext::new("app", "default");
    let health = provider.health().await;
    assert!(health.healthy, "healthy with a working link: {health:?}");

    conformance(sql.clone(), &cx, dialect).await;

    ok(sql.open(&cx, "second").await, "open the second connection");
    let n = ok(
        sql.query(&cx, "second", "SELECT COUNT(*) AS n FROM things", vec![])
            .await,
        "query through the second connection",
    );
    assert_eq!(n.len(), 1);
    match expect_err(sql.open(&cx, "third").await, "open an unconfigured name") {
        SqlError::NoSuchConnection(m) => assert!(
            m.contains("`url`") && m.contains("`url.second`") && m.contains("`url.third`"),
            "the message names the configured keys and the one to set: {m}"
        ),
        other => panic!("expected NoSuchConnection, got {other:?}"),
    }

    // A link to a server that does not answer: put succeeds (pools connect lazily), calls and
    // health say the connection failed.
    let down = link("app", "down", &[("url", down_url)]);
    provider
        .receive_link_config_as_target(&down)
        .await
        .unwrap_or_else(|e| panic!("link put (down): {e}"));
    let down_cx = CallContext::new("app", "down");
    let e = expect_err(
        sql.query(&down_cx, "default", "SELECT 1", vec![]).await,
        "a query to a server that does not answer",
    );
    assert!(matches!(e, SqlError::ConnectionFailed(_)), "{e:?}");
    let health = provider.health().await;
    assert!(
        !health.healthy && health.message.contains("down"),
        "unhealthy, naming the link: {health:?}"
    );
    provider
        .delete_link_as_target(&down)
        .await
        .unwrap_or_else(|e| panic!("link delete (down): {e}"));
    assert!(provider.health().await.healthy);

    // Putting the link again replaces its pools; calls go on working.
    provider
        .receive_link_config_as_target(&main)
        .await
        .unwrap_or_else(|e| panic!("link put again: {e}"));
    assert_eq!(count(&sql, &cx, dialect, "1 = 1").await, 122);

    // A deleted link serves no more calls.
    provider
        .delete_link_as_target(&main)
        .await
        .unwrap_or_else(|e| panic!("link delete: {e}"));
    let e = expect_err(
        sql.query(&cx, "default", "SELECT 1", vec![]).await,
        "a call through a deleted link",
    );
    assert!(matches!(e, SqlError::NoSuchConnection(_)), "{e:?}");

    provider
        .receive_link_config_as_target(&main)
        .await
        .unwrap_or_else(|e| panic!("link put after delete: {e}"));
    provider
        .shutdown()
        .await
        .unwrap_or_else(|e| panic!("shutdown: {e}"));
    let e = expect_err(
        sql.query(&cx, "default", "SELECT 1", vec![]).await,
        "a call after shutdown",
    );
    assert!(matches!(e, SqlError::NoSuchConnection(_)), "{e:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let stmt = "SELECT '?' AS q, a FROM t WHERE a = ? AND b = ?";
        assert_eq!(Dialect::Mysql.sql(stmt), stmt);
        assert_eq!(
            Dialect::Postgres.sql(stmt),
            "SELECT '?' AS q, a FROM t WHERE a = $1 AND b = $2"
        );
    }

    #[test]
    fn database_urls_and_stale_names() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert!(is_stale("trellis_test_100_1_0", 100 + 3601));
        assert!(!is_stale("trellis_test_100_1_0", 100 + 60));
        assert!(!is_stale("other_100", 1_000_000));
    }
}
