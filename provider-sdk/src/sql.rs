//! The SQL capability: `wasi:sql@0.2.0-draft` (Trellis' draft in `interfaces/wasi-sql`, in the
//! shape of the WASI SQL proposal, with typed parameters).
//!
//! A component opens a connection by name, then runs statements with positional parameters
//! (`?` for MySQL/MariaDB, `$1…` for PostgreSQL — the provider passes the text through):
//! `query` returns typed rows, `exec` the number of affected rows. Parameters are always sent
//! to the database as bound values, never spliced into the statement text, so a parameter
//! holding `'; DROP TABLE x; --` is stored as data.
//!
//! Which database a connection name reaches comes from the link's target config: `url` is the
//! connection named `default`, `url.NAME` the connection `NAME`; `pool_size` bounds the pool.
//! Errors are [`SqlError`], the WIT `error` variant, returned to the component (not a trap).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::link::CallContext;

/// The interfaces a SQL provider serves.
pub const INTERFACES: [&str; 2] = ["wasi:sql/types", "wasi:sql/readwrite"];

/// The connection name used when a component asks for `default`.
pub const DEFAULT_CONNECTION: &str = "default";

/// `wasi:sql/types.data-type`: one typed value, as a parameter or a column of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Null,
    Boolean(bool),
    Int32(i32),
    Int64(i64),
    Uint32(u32),
    Uint64(u64),
    Float(f32),
    Double(f64),
    Str(String),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `HH:MM:SS[.ffffff]`.
    Time(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC for time-zone aware columns).
    Timestamp(String),
    Binary(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// `wasi:sql/types.row`: the columns of one row, in select order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub columns: Vec<Column>,
}

/// One column of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub value: SqlValue,
}

impl Row {
    /// The value of the column named `name`.
    pub fn get(&self, name: &str) -> Option<&SqlValue> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.value)
    }
}

/// `wasi:sql/types.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SqlError {
    /// The connection name is not configured on the link (message says which keys are).
    #[error("no such connection: {0}")]
    NoSuchConnection(String),
    /// The database cannot be reached, or refused the credentials.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// The statement is not valid SQL for this database.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A unique, foreign-key, not-null or check constraint refused the change.
    #[error("constraint violation: {0}")]
    ConstraintViolation(String),
    /// A parameter or column value does not fit (wrong count, type, or range).
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// Anything else the database reported.
    #[error("{0}")]
    Other(String),
}

/// A SQL provider.
#[async_trait]
pub trait Sql: Send + Sync + 'static {
    /// `connection.open`: checks that `name` is configured on the calling link and reachable.
    async fn open(&self, cx: &CallContext, name: &str) -> Result<(), SqlError>;

    /// `readwrite.query`: runs a statement that returns rows.
    async fn query(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Row>, SqlError>;

    /// `readwrite.exec`: runs a statement and returns the number of affected rows.
    async fn exec(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<u64, SqlError>;
}

/// The config key that holds the URL of connection `name`.
pub fn url_key(name: &str) -> String {
    if name == DEFAULT_CONNECTION {
        "url".to_string()
    } else {
        format!("url.{name}")
    }
}
