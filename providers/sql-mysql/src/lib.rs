//! `wasi:sql` for MySQL and MariaDB: a component runs statements with bound parameters against
//! the database its link names, and gets typed rows back.
//!
//! The provider keeps one [`mysql_async`] pool per link and connection name. Pools are made
//! when a link is put (from the link's target config, never from code), connect lazily, and are
//! closed when the link is deleted or the provider shuts down.
//!
//! # Link target config
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | URL of the connection named `default`: `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` | — |
//! | `url.NAME` | URL of the connection named `NAME` (what `connection.open("NAME")` reaches) | — |
//! | `pool_size` | most connections open at once, per connection name | `8` |
//! | `pool_size.NAME` | the same, for connection `NAME` only | `pool_size` |
//!
//! A link must set at least one `url` key. URL options are those of `mysql_async` (e.g.
//! `prefer_socket=false`, `stmt_cache_size=64`, `conn_ttl=300`); `pool_size` overrides
//! `pool_min`/`pool_max`. TLS is not built in: use a server on a trusted network or a local
//! socket. Every connection runs with `time_zone = '+00:00'` (so `TIMESTAMP` columns read and
//! write UTC) and with `CLIENT_FOUND_ROWS`, so an `UPDATE` counts the rows it matched, as
//! PostgreSQL does, even when a row already held the new values.
//!
//! # Statements
//!
//! Placeholders are `?`. Every statement runs as a prepared statement with its parameters
//! bound (never spliced into the text), so a parameter holding `'; DROP TABLE x; --` is stored
//! as data. One statement per call; `query` returns the rows of the first result set.
//!
//! # Parameters
//!
//! | `SqlValue` | sent as |
//! |---|---|
//! | `Null` | `NULL` |
//! | `Boolean` | integer `1` / `0` |
//! | `Int32`, `Int64` | signed `BIGINT` |
//! | `Uint32`, `Uint64` | unsigned `BIGINT` |
//! | `Float`, `Double` | `FLOAT`, `DOUBLE` |
//! | `Str` | string (utf8mb4); the server converts it to the column's type (e.g. `DECIMAL`) |
//! | `Date` `YYYY-MM-DD` | `DATE` |
//! | `Time` `[-]HH:MM:SS[.ffffff]` (hours up to 838) | `TIME` |
//! | `Timestamp` `YYYY-MM-DD HH:MM:SS[.ffffff]` (or a `T` separator) | `DATETIME` |
//! | `Binary` | bytes |
//!
//! A `Date`, `Time` or `Timestamp` that does not parse is refused with
//! [`SqlError::TypeMismatch`] before anything is sent.
//!
//! # Columns
//!
//! | column type | `SqlValue` |
//! |---|---|
//! | `TINYINT`, `SMALLINT`, `MEDIUMINT`, `INT`, `YEAR` | `Int32` |
//! | the same `UNSIGNED` | `Uint32` |
//! | `BIGINT` / `BIGINT UNSIGNED` | `Int64` / `Uint64` |
//! | `BOOLEAN` (an alias of `TINYINT(1)`) | `Int32` (`0`/`1`): the wire does not tell it from `TINYINT` |
//! | `BIT(1)` | `Boolean` |
//! | `BIT(n)`, n > 1 | `Uint64` |
//! | `FLOAT` / `DOUBLE` | `Float` / `Double` |
//! | `DECIMAL` | `Str` (exact, e.g. `"12345.67"`) |
//! | `CHAR`, `VARCHAR`, `TEXT`, `ENUM`, `SET`, `JSON` | `Str` |
//! | `BINARY`, `VARBINARY`, `BLOB`, `GEOMETRY` (and text that is not UTF-8) | `Binary` |
//! | `DATE` | `Date` `YYYY-MM-DD` |
//! | `TIME` | `Time` `[-]HH:MM:SS[.ffffff]` |
//! | `DATETIME`, `TIMESTAMP` | `Timestamp` `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC for `TIMESTAMP`) |
//! | `NULL` | `Null` |
//!
//! Fractions of a second are printed with six digits when they are not zero, and left out
//! when they are. MySQL's zero dates read back as `0000-00-00`.
//!
//! # Errors
//!
//! | database error | [`SqlError`] |
//! |---|---|
//! | 1064 `ER_PARSE_ERROR`, 1149 `ER_SYNTAX_ERROR` | `Syntax` |
//! | SQLSTATE class `23` (duplicate key, foreign key, not null, check) | `ConstraintViolation` |
//! | SQLSTATE class `22` (out of range, too long, bad value), wrong parameter count, unparsable date/time parameter | `TypeMismatch` |
//! | SQLSTATE class `08` and `28`, 1044/1045/1049 (access, unknown database), I/O, pool exhausted | `ConnectionFailed` |
//! | connection name not on the link, or no such link | `NoSuchConnection` |
//! | anything else | `Other` |
//!
//! Messages carry the server's text with its error code and SQLSTATE.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{
    Column, Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Value,
};
use trellis_provider_sdk::link::LinkKey;
use trellis_provider_sdk::sql::{self, Database, Row, Sql, SqlError, SqlValue};
use trellis_provider_sdk::{
    CallContext, Capabilities, HealthStatus, LinkConfig, LinkTable, Provider, ProviderError,
};

/// Connections per connection name when the link does not set `pool_size`, and the largest
/// `pool_size` accepted (the SDK's, shared by every SQL provider).
pub use trellis_provider_sdk::sql::{DEFAULT_POOL_SIZE, MAX_POOL_SIZE};
/// How this provider's messages name its database.
const MYSQL: Database = Database {
    name: "MySQL",
    scheme: "mysql",
    example_url: "mysql://user@host:3306/db",
};
/// How long a call waits for a connection (pool busy or server slow to answer).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a health check waits for a connection.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing a pool waits for the connections in use to come back.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The character set number MySQL uses for binary strings.
const BINARY_CHARSET: u16 = 63;

/// The MySQL / MariaDB SQL provider (`builtin://sql-mysql`).
#[derive(Default)]
pub struct MysqlProvider {
    links: LinkTable<LinkPools>,
}

impl MysqlProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The pools of one link, by connection name.
struct LinkPools {
    key: LinkKey,
    connections: BTreeMap<String, Connection>,
}

/// One configured connection: its pool and, for messages, where it points.
struct Connection {
    pool: Pool,
    /// The config key that set it (`url` or `url.NAME`).
    config_key: String,
    /// The URL without its password.
    display_url: String,
}

impl LinkPools {
    fn from_link(link: &LinkConfig) -> Result<Self, ProviderError> {
        let key = link.target_key();
        let mut connections = BTreeMap::new();
        for (name, settings) in sql::connection_settings(link, &MYSQL)? {
            let size = settings.pool_size;
            let opts =
                Opts::from_url(&settings.url).map_err(|e| settings.not_a_url(&key, &MYSQL, e))?;
            let constraints = PoolConstraints::new(0, size).ok_or_else(|| {
                ProviderError::new(format!("pool_size {size} is not a valid pool size"))
            })?;
            let pool_opts = PoolOpts::default().with_constraints(constraints);
            let builder = OptsBuilder::from_opts(opts)
                .pool_opts(pool_opts)
                .client_found_rows(true)
                .init(vec!["SET time_zone = '+00:00'"]);
            connections.insert(
                name,
                Connection {
                    pool: Pool::new(builder),
                    config_key: settings.config_key,
                    display_url: settings.display_url,
                },
            );
        }
        Ok(Self { key, connections })
    }

    fn connection(&self, name: &str) -> Result<&Connection, SqlError> {
        self.connections.get(name).ok_or_else(|| {
            let configured = self
                .connections
                .iter()
                .map(|(name, c)| (name.as_str(), c.config_key.as_str()));
            sql::no_such_connection(&self.key, name, configured)
        })
    }

    async fn close(&self) {
        for (name, connection) in &self.connections {
            let closing = connection.pool.clone().disconnect();
            match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(
                    link = %self.key.link_name, component = %self.key.component, connection = %name,
                    "closing MySQL pool: {e}"
                ),
                Err(_) => tracing::warn!(
                    link = %self.key.link_name, component = %self.key.component, connection = %name,
                    "MySQL pool still had connections in use after {CLOSE_TIMEOUT:?}; dropped it"
                ),
            }
        }
    }
}

impl Connection {
    async fn get(&self, name: &str, wait: Duration) -> Result<Conn, SqlError> {
        match tokio::time::timeout(wait, self.pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.context(name, map_error(e))),
            Err(_) => Err(SqlError::ConnectionFailed(format!(
                "connection '{name}' ({}): no connection free within {wait:?} (pool busy or \
                 server not answering); raise `pool_size` or check the server",
                self.display_url
            ))),
        }
    }

    /// A failure to connect, saying which connection and where it points.
    fn context(&self, name: &str, error: SqlError) -> SqlError {
        match error {
            SqlError::ConnectionFailed(m) | SqlError::Other(m) => SqlError::ConnectionFailed(
                format!("connection '{name}' ({}): {m}", self.display_url),
            ),
            other => other,
        }
    }
}

#[trellis_provider_sdk::async_trait]
impl Provider for MysqlProvider {
    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let pools = LinkPools::from_link(link)?;
        tracing::info!(
            link = %link.link_name, component = %link.source_id,
            connections = ?pools.connections.keys().collect::<Vec<_>>(),
            "MySQL link put"
        );
        if let Some(old) = self.links.insert(link.target_key(), pools) {
            old.close().await;
        }
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        if let Some(old) = self.links.remove(&link.target_key()) {
            old.close().await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let mut problems = Vec::new();
        for (_, pools) in self.links.all() {
            for (name, connection) in &pools.connections {
                let ping = async {
                    let mut conn = connection.get(name, HEALTH_TIMEOUT).await?;
                    conn.ping().await.map_err(map_error)
                };
                if let Err(e) = ping.await {
                    problems.push(format!(
                        "link '{}' from '{}': {e}",
                        pools.key.link_name, pools.key.component
                    ));
                }
            }
        }
        if problems.is_empty() {
            HealthStatus::healthy()
        } else {
            HealthStatus::unhealthy(problems.join("; "))
        }
    }

    async fn shutdown(&self) -> Result<(), ProviderError> {
        for (_, pools) in self.links.drain() {
            pools.close().await;
        }
        Ok(())
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities {
            sql: Some(self),
            ..Default::default()
        }
    }
}

impl MysqlProvider {
    /// A connection of the link the call came through.
    async fn conn(&self, cx: &CallContext, name: &str) -> Result<Conn, SqlError> {
        let pools = self.links.get(cx).ok_or_else(|| sql::no_link(cx, &MYSQL))?;
        let connection = pools.connection(name)?;
        connection.get(name, ACQUIRE_TIMEOUT).await
    }
}

#[trellis_provider_sdk::async_trait]
impl Sql for MysqlProvider {
    async fn open(&self, cx: &CallContext, name: &str) -> Result<(), SqlError> {
        let mut conn = self.conn(cx, name).await?;
        conn.ping().await.map_err(map_error)
    }

    async fn query(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Row>, SqlError> {
        let params = to_params(params)?;
        let mut conn = self.conn(cx, connection).await?;
        let result = conn.exec_iter(statement, params).await.map_err(map_error)?;
        let columns = result.columns();
        let rows: Vec<mysql_async::Row> = result.collect_and_drop().await.map_err(map_error)?;
        let Some(columns) = columns else {
            return Ok(Vec::new());
        };
        rows.into_iter()
            .map(|mut row| {
                let columns = columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        let value = row.take::<Value, usize>(i).unwrap_or(Value::NULL);
                        Ok(sql::Column {
                            name: column.name_str().into_owned(),
                            value: from_mysql(column, value)?,
                        })
                    })
                    .collect::<Result<Vec<_>, SqlError>>()?;
                Ok(Row { columns })
            })
            .collect()
    }

    async fn exec(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<u64, SqlError> {
        let params = to_params(params)?;
        let mut conn = self.conn(cx, connection).await?;
        conn.exec_drop(statement, params).await.map_err(map_error)?;
        Ok(conn.affected_rows())
    }
}

fn to_params(values: Vec<SqlValue>) -> Result<Params, SqlError> {
    if values.is_empty() {
        return Ok(Params::Empty);
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| to_mysql(i + 1, v))
        .collect::<Result<Vec<_>, _>>()
        .map(Params::Positional)
}

/// One parameter (numbered from 1) as a MySQL value.
fn to_mysql(position: usize, value: SqlValue) -> Result<Value, SqlError> {
    let bad = |kind: &str, text: &str, form: &str| {
        SqlError::TypeMismatch(format!(
            "parameter {position}: {kind} '{text}' is not of the form {form}"
        ))
    };
    Ok(match value {
        SqlValue::Null => Value::NULL,
        SqlValue::Boolean(b) => Value::Int(i64::from(b)),
        SqlValue::Int32(i) => Value::Int(i64::from(i)),
        SqlValue::Int64(i) => Value::Int(i),
        SqlValue::Uint32(u) => Value::UInt(u64::from(u)),
        SqlValue::Uint64(u) => Value::UInt(u),
        SqlValue::Float(f) => Value::Float(f),
        SqlValue::Double(d) => Value::Double(d),
        SqlValue::Str(s) => Value::Bytes(s.into_bytes()),
        SqlValue::Binary(b) => Value::Bytes(b),
        SqlValue::Date(text) => {
            let (y, m, d) = parse_date(&text).ok_or_else(|| bad("date", &text, "YYYY-MM-DD"))?;
            Value::Date(y, m, d, 0, 0, 0, 0)
        }
        SqlValue::Time(text) => {
            let t =
                parse_time(&text, 838).ok_or_else(|| bad("time", &text, "[-]HH:MM:SS[.ffffff]"))?;
            let days = t.hours / 24;
            // `hours % 24` is below 24.
            let hours = u8::try_from(t.hours % 24).unwrap_or(0);
            Value::Time(t.negative, days, hours, t.minutes, t.seconds, t.micros)
        }
        SqlValue::Timestamp(text) => {
            let form = "YYYY-MM-DD HH:MM:SS[.ffffff]";
            let (date, time) = text
                .split_once([' ', 'T'])
                .ok_or_else(|| bad("timestamp", &text, form))?;
            let (y, m, d) = parse_date(date).ok_or_else(|| bad("timestamp", &text, form))?;
            let t = parse_time(time, 23).ok_or_else(|| bad("timestamp", &text, form))?;
            if t.negative {
                return Err(bad("timestamp", &text, form));
            }
            let hours = u8::try_from(t.hours).unwrap_or(0);
            Value::Date(y, m, d, hours, t.minutes, t.seconds, t.micros)
        }
    })
}

/// `YYYY-MM-DD` (zero month/day allowed, as MySQL does).
fn parse_date(text: &str) -> Option<(u16, u8, u8)> {
    let mut parts = text.trim().split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (digits(y)?, digits(m)?, digits(d)?);
    if m > 12 || d > 31 {
        return None;
    }
    Some((
        u16::try_from(y).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(d).ok()?,
    ))
}

struct TimeOfDay {
    negative: bool,
    hours: u32,
    minutes: u8,
    seconds: u8,
    micros: u32,
}

/// `[-]H+:MM:SS[.f{1,6}]`, hours at most `max_hours`.
fn parse_time(text: &str, max_hours: u32) -> Option<TimeOfDay> {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || h.len() > 3 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (hours, minutes, seconds) = (digits(h)?, digits(m)?, digits(s)?);
    if hours > max_hours || minutes > 59 || seconds > 59 {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 => digits(f)? * 10u32.pow(6 - f.len() as u32),
        Some(_) => return None,
    };
    Some(TimeOfDay {
        negative,
        hours,
        minutes: u8::try_from(minutes).ok()?,
        seconds: u8::try_from(seconds).ok()?,
        micros,
    })
}

/// A run of ASCII digits (no sign) as a number.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

fn is_integer_type(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_YEAR
    )
}

/// An integer of a column, typed by the column's width and signedness.
fn integer(column: &Column, n: i128) -> SqlValue {
    // YEAR is flagged unsigned, but is a small year number: an Int32 like the other small ints.
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG)
        && column.column_type() != ColumnType::MYSQL_TYPE_YEAR;
    let wide = column.column_type() == ColumnType::MYSQL_TYPE_LONGLONG;
    if unsigned {
        match (wide, u32::try_from(n), u64::try_from(n)) {
            (false, Ok(u), _) => SqlValue::Uint32(u),
            (_, _, Ok(u)) => SqlValue::Uint64(u),
            // Cannot happen for an unsigned column; keep the value rather than fail.
            _ => SqlValue::Int64(i64::try_from(n).unwrap_or_default()),
        }
    } else {
        match (wide, i32::try_from(n), i64::try_from(n)) {
            (false, Ok(i), _) => SqlValue::Int32(i),
            (_, _, Ok(i)) => SqlValue::Int64(i),
            _ => SqlValue::Uint64(u64::try_from(n).unwrap_or_default()),
        }
    }
}

/// One column value as a `SqlValue` (see the crate docs for the mapping).
fn from_mysql(column: &Column, value: Value) -> Result<SqlValue, SqlError> {
    use ColumnType::*;
    let ty = column.column_type();
    Ok(match value {
        Value::NULL => SqlValue::Null,
        Value::Int(i) => integer(column, i128::from(i)),
        Value::UInt(u) => integer(column, i128::from(u)),
        Value::Float(f) => SqlValue::Float(f),
        Value::Double(d) => match ty {
            MYSQL_TYPE_FLOAT => SqlValue::Float(d as f32),
            _ => SqlValue::Double(d),
        },
        Value::Date(y, m, d, hh, mm, ss, us) => match ty {
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => SqlValue::Date(format!("{y:04}-{m:02}-{d:02}")),
            _ => SqlValue::Timestamp(format!(
                "{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}{}",
                fraction(us)
            )),
        },
        Value::Time(negative, days, h, m, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            SqlValue::Time(format!("{sign}{hours:02}:{m:02}:{s:02}{}", fraction(us)))
        }
        Value::Bytes(bytes) => from_mysql_bytes(column, bytes)?,
    })
}

/// A value the server sent as bytes (strings, decimals, bits; any type in the text protocol).
fn from_mysql_bytes(column: &Column, bytes: Vec<u8>) -> Result<SqlValue, SqlError> {
    use ColumnType::*;
    let ty = column.column_type();
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| {
            SqlError::TypeMismatch(format!(
                "column '{}' ({ty:?}) is not valid UTF-8",
                column.name_str()
            ))
        })
    };
    let parse_error = |what: &str| {
        SqlError::TypeMismatch(format!(
            "column '{}' ({ty:?}): cannot read {what}",
            column.name_str()
        ))
    };
    Ok(match ty {
        MYSQL_TYPE_BIT => {
            if bytes.len() > 8 {
                return Err(parse_error("a BIT value wider than 64 bits"));
            }
            let n = bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            if column.column_length() == 1 {
                SqlValue::Boolean(n != 0)
            } else {
                SqlValue::Uint64(n)
            }
        }
        _ if is_integer_type(ty) => {
            let s = text(bytes)?;
            let n = s
                .trim()
                .parse::<i128>()
                .map_err(|_| parse_error("an integer"))?;
            integer(column, n)
        }
        MYSQL_TYPE_FLOAT => SqlValue::Float(
            text(bytes)?
                .trim()
                .parse()
                .map_err(|_| parse_error("a float"))?,
        ),
        MYSQL_TYPE_DOUBLE => SqlValue::Double(
            text(bytes)?
                .trim()
                .parse()
                .map_err(|_| parse_error("a double"))?,
        ),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_JSON => SqlValue::Str(text(bytes)?),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => SqlValue::Date(text(bytes)?),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => SqlValue::Time(text(bytes)?),
        MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => SqlValue::Timestamp(text(bytes)?),
        MYSQL_TYPE_NULL => SqlValue::Null,
        MYSQL_TYPE_GEOMETRY => SqlValue::Binary(bytes),
        _ if column.character_set() == BINARY_CHARSET => SqlValue::Binary(bytes),
        _ => match String::from_utf8(bytes) {
            Ok(s) => SqlValue::Str(s),
            Err(e) => SqlValue::Binary(e.into_bytes()),
        },
    })
}

/// A `mysql_async` error as the typed `SqlError`, with the server's message.
fn map_error(error: mysql_async::Error) -> SqlError {
    use mysql_async::{DriverError, Error};
    match error {
        Error::Server(e) => {
            let message = format!("{} (error {}, SQLSTATE {})", e.message, e.code, e.state);
            match (e.code, e.state.get(..2).unwrap_or("")) {
                (1064 | 1149, _) => SqlError::Syntax(message),
                (_, "23") => SqlError::ConstraintViolation(message),
                // 1210: wrong arguments to a prepared statement.
                (1210, _) | (_, "22") => SqlError::TypeMismatch(message),
                (1040 | 1044 | 1045 | 1049 | 1129 | 1130 | 1203, _) | (_, "08" | "28") => {
                    SqlError::ConnectionFailed(message)
                }
                _ => SqlError::Other(message),
            }
        }
        Error::Driver(DriverError::StmtParamsMismatch { required, supplied }) => {
            SqlError::TypeMismatch(format!(
                "the statement has {required} placeholder(s) but {supplied} parameter(s) were given"
            ))
        }
        Error::Driver(
            e @ (DriverError::ConnectionClosed
            | DriverError::PoolDisconnected
            | DriverError::CantParseServerVersion { .. }),
        ) => SqlError::ConnectionFailed(e.to_string()),
        Error::Driver(e) => SqlError::Other(e.to_string()),
        Error::Io(e) => SqlError::ConnectionFailed(e.to_string()),
        Error::Url(e) => SqlError::ConnectionFailed(e.to_string()),
        Error::Other(e) => SqlError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_strictly() {
        assert!(matches!(
            to_mysql(1, SqlValue::Date("2024-02-29".into())),
            Ok(Value::Date(2024, 2, 29, 0, 0, 0, 0))
        ));
        assert!(matches!(
            to_mysql(1, SqlValue::Time("-100:02:03.5".into())),
            Ok(Value::Time(true, 4, 4, 2, 3, 500_000))
        ));
        assert!(matches!(
            to_mysql(1, SqlValue::Timestamp("2024-01-02T03:04:05.000001".into())),
            Ok(Value::Date(2024, 1, 2, 3, 4, 5, 1))
        ));
        for bad in [
            SqlValue::Date("2024-13-01".into()),
            SqlValue::Date("yesterday".into()),
            SqlValue::Time("12:60:00".into()),
            SqlValue::Time("12:00:00.1234567".into()),
            SqlValue::Timestamp("2024-01-02".into()),
            SqlValue::Timestamp("2024-01-02 24:00:00".into()),
        ] {
            assert!(
                matches!(to_mysql(2, bad.clone()), Err(SqlError::TypeMismatch(_))),
                "{bad:?}"
            );
        }
    }
}
