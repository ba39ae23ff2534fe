//! `wasi:sql` for PostgreSQL: a component runs statements with bound parameters against the
//! database its link names, and gets typed rows back.
//!
//! The provider keeps one small pool of [`tokio_postgres`] connections per link and connection
//! name. Pools are made when a link is put (from the link's target config, never from code),
//! connect lazily, and are closed when the link is deleted or the provider shuts down.
//!
//! # Link target config
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | the connection named `default`: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` or `host=… user=… dbname=…` | — |
//! | `url.NAME` | the connection named `NAME` (what `connection.open("NAME")` reaches) | — |
//! | `pool_size` | most connections open at once, per connection name | `8` |
//! | `pool_size.NAME` | the same, for connection `NAME` only | `pool_size` |
//!
//! A link must set at least one `url` key. Options are libpq's as `tokio-postgres` reads them
//! (`connect_timeout`, `application_name`, `options`, …; a missing user is the OS user). TLS
//! is not built in (`sslmode=prefer`, the default, falls back to plain TCP; `sslmode=require`
//! fails). Every connection runs with `TimeZone = 'UTC'`, so `timestamptz` values are read
//! and written in UTC.
//!
//! # Statements
//!
//! Placeholders are `$1`, `$2`, …. Every statement is prepared and its parameters bound (never
//! spliced into the text), so a parameter holding `'; DROP TABLE x; --` is stored as data. One
//! statement per call. Each call takes any connection of the pool, so a transaction cannot span
//! calls (`BEGIN` in one call and `COMMIT` in the next may reach different connections).
//!
//! # Parameters
//!
//! The server says which type each placeholder has; the value is sent in that type.
//!
//! | `SqlValue` | placeholder type | sent as |
//! |---|---|---|
//! | `Null` | any | `NULL` |
//! | `Boolean` | `boolean` | binary; other types get the text `true`/`false` |
//! | `Int32`, `Int64`, `Uint32`, `Uint64` | `smallint`, `integer`, `bigint`, `oid` | binary, range-checked ([`SqlError::TypeMismatch`] when it does not fit) |
//! | the same | `real`, `double precision` | binary, converted |
//! | the same | anything else (`numeric`, `text`, …) | the decimal text, parsed by the server |
//! | `Float`, `Double` | `real`, `double precision` | binary |
//! | the same | anything else (`numeric`, …) | the text (`NaN`, `Infinity` for those) |
//! | `Str`, `Date`, `Time`, `Timestamp` | any | the text, parsed by the server as that type (so `Str` fills `numeric`, `uuid`, `json`, enums, …) |
//! | `Binary` | `bytea` | binary; for text types it must be UTF-8, other types refuse it |
//!
//! A text the type does not accept comes back as the server's `22xxx` error, a
//! [`SqlError::TypeMismatch`].
//!
//! # Columns
//!
//! | column type | `SqlValue` |
//! |---|---|
//! | `boolean` | `Boolean` |
//! | `smallint`, `integer` | `Int32` |
//! | `bigint` | `Int64` |
//! | `oid` | `Uint32` |
//! | `real` / `double precision` | `Float` / `Double` |
//! | `numeric` | `Str` (exact, e.g. `"12345.67"`, `"NaN"`) |
//! | `text`, `varchar`, `char(n)`, `name`, `json`, `jsonb`, `xml`, `uuid`, enums | `Str` |
//! | `timetz` | `Str` `HH:MM:SS[.ffffff]+HH[:MM]` |
//! | `bytea` | `Binary` |
//! | `date` | `Date` `YYYY-MM-DD` |
//! | `time` | `Time` `HH:MM:SS[.ffffff]` |
//! | `timestamp`, `timestamptz` | `Timestamp` `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC for `timestamptz`) |
//! | a domain | as its base type |
//! | `NULL` | `Null` |
//!
//! Fractions of a second are printed with six digits when they are not zero, and left out
//! when they are; `infinity`, `-infinity` and BC dates read as PostgreSQL prints them. Other
//! types (arrays, `interval`, `inet`, `money`, composites, …) are refused with
//! [`SqlError::TypeMismatch`]: cast them in the statement, e.g. `SELECT tags::text`.
//!
//! # Errors
//!
//! | database error | [`SqlError`] |
//! |---|---|
//! | SQLSTATE `42601` (syntax error) | `Syntax` |
//! | SQLSTATE class `23` (unique, foreign key, not null, check, exclusion) | `ConstraintViolation` |
//! | SQLSTATE class `22`, `42804`, `42P18`, `42846`; wrong parameter count; a value out of range of its placeholder | `TypeMismatch` |
//! | SQLSTATE class `08`, `28`, `3D000`, `53300`, `57P0x`; I/O; pool exhausted | `ConnectionFailed` |
//! | connection name not on the link, or no such link | `NoSuchConnection` |
//! | anything else | `Other` |
//!
//! Messages carry the server's text, its SQLSTATE, and its detail and hint when it gives them.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls};
use trellis_provider_sdk::link::LinkKey;
use trellis_provider_sdk::sql::{self, Database, Row, Sql, SqlError, SqlValue};
use trellis_provider_sdk::{
    CallContext, Capabilities, HealthStatus, LinkConfig, LinkTable, Provider, ProviderError,
};

/// Connections per connection name when the link does not set `pool_size`, and the largest
/// `pool_size` accepted (the SDK's, shared by every SQL provider).
pub use trellis_provider_sdk::sql::{DEFAULT_POOL_SIZE, MAX_POOL_SIZE};
/// How this provider's messages name its database.
const POSTGRES: Database = Database {
    name: "PostgreSQL",
    scheme: "postgres",
    example_url: "postgres://user@host:5432/db",
};
/// How long a call waits for a connection (pool busy or server slow to answer).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a health check waits for a connection.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL SQL provider (`builtin://sql-postgres`).
#[derive(Default)]
pub struct PostgresProvider {
    links: LinkTable<LinkPools>,
}

impl PostgresProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The pools of one link, by connection name.
struct LinkPools {
    key: LinkKey,
    connections: BTreeMap<String, Pool>,
}

/// A bounded set of connections to one database: at most `size` leased at once, idle ones
/// kept for the next call, closed ones replaced.
struct Pool {
    config: Config,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    /// The config key that set it (`url` or `url.NAME`).
    config_key: String,
    /// The URL without its password.
    display_url: String,
}

/// A connection taken from a pool; it goes back when dropped, unless it broke or the pool was
/// closed meanwhile.
struct Lease<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Set in `Pool::get`, taken only in `drop`.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a lease holds its client until dropped"),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
            && !self.pool.permits.is_closed()
        {
            self.pool.idle_list().push(client);
        }
    }
}

impl Pool {
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, name: &str, wait: Duration) -> Result<Lease<'_>, SqlError> {
        let permit = match tokio::time::timeout(wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(SqlError::ConnectionFailed(format!(
                    "connection '{name}' ({}) was closed (its link was deleted or replaced)",
                    self.display_url
                )));
            }
            Err(_) => {
                return Err(SqlError::ConnectionFailed(format!(
                    "connection '{name}' ({}): no connection free within {wait:?}; raise \
                     `pool_size` or make statements shorter",
                    self.display_url
                )));
            }
        };
        let idle = {
            let mut idle = self.idle_list();
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match idle {
            Some(client) => client,
            None => self.connect().await.map_err(|e| match e {
                SqlError::ConnectionFailed(m) | SqlError::Other(m) => SqlError::ConnectionFailed(
                    format!("connection '{name}' ({}): {m}", self.display_url),
                ),
                other => other,
            })?,
        };
        Ok(Lease {
            pool: self,
            client: Some(client),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client, SqlError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(map_error)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(map_error)?;
        Ok(client)
    }

    fn close(&self) {
        self.permits.close();
        self.idle_list().clear();
    }
}

impl LinkPools {
    fn from_link(link: &LinkConfig) -> Result<Self, ProviderError> {
        let key = link.target_key();
        let mut connections = BTreeMap::new();
        for (name, settings) in sql::connection_settings(link, &POSTGRES)? {
            let mut config = settings
                .url
                .parse::<Config>()
                .map_err(|e| settings.not_a_url(&key, &POSTGRES, e))?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(CONNECT_TIMEOUT);
            }
            connections.insert(
                name,
                Pool {
                    config,
                    idle: Mutex::new(Vec::new()),
                    permits: Semaphore::new(settings.pool_size),
                    config_key: settings.config_key,
                    display_url: settings.display_url,
                },
            );
        }
        Ok(Self { key, connections })
    }

    fn pool(&self, name: &str) -> Result<&Pool, SqlError> {
        self.connections.get(name).ok_or_else(|| {
            let configured = self
                .connections
                .iter()
                .map(|(name, p)| (name.as_str(), p.config_key.as_str()));
            sql::no_such_connection(&self.key, name, configured)
        })
    }

    fn close(&self) {
        for pool in self.connections.values() {
            pool.close();
        }
    }
}

#[trellis_provider_sdk::async_trait]
impl Provider for PostgresProvider {
    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let pools = LinkPools::from_link(link)?;
        tracing::info!(
            link = %link.link_name, component = %link.source_id,
            connections = ?pools.connections.keys().collect::<Vec<_>>(),
            "PostgreSQL link put"
        );
        if let Some(old) = self.links.insert(link.target_key(), pools) {
            old.close();
        }
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        if let Some(old) = self.links.remove(&link.target_key()) {
            old.close();
        }
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let mut problems = Vec::new();
        for (_, pools) in self.links.all() {
            for (name, pool) in &pools.connections {
                let ping = async {
                    let client = pool.get(name, HEALTH_TIMEOUT).await?;
                    client.batch_execute("SELECT 1").await.map_err(map_error)
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
            pools.close();
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

impl PostgresProvider {
    fn link(&self, cx: &CallContext) -> Result<Arc<LinkPools>, SqlError> {
        self.links
            .get(cx)
            .ok_or_else(|| sql::no_link(cx, &POSTGRES))
    }
}

/// Prepares `statement` and encodes `params` for its placeholders.
async fn prepare(
    client: &Client,
    statement: &str,
    params: Vec<SqlValue>,
) -> Result<(tokio_postgres::Statement, Vec<Param>), SqlError> {
    let prepared = client.prepare(statement).await.map_err(map_error)?;
    let types = prepared.params();
    if types.len() != params.len() {
        return Err(SqlError::TypeMismatch(format!(
            "the statement has {} placeholder(s) but {} parameter(s) were given",
            types.len(),
            params.len()
        )));
    }
    let encoded = params
        .into_iter()
        .zip(types)
        .enumerate()
        .map(|(i, (value, ty))| encode(i + 1, value, ty))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prepared, encoded))
}

fn as_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

#[trellis_provider_sdk::async_trait]
impl Sql for PostgresProvider {
    async fn open(&self, cx: &CallContext, name: &str) -> Result<(), SqlError> {
        let link = self.link(cx)?;
        let client = link.pool(name)?.get(name, ACQUIRE_TIMEOUT).await?;
        client.batch_execute("SELECT 1").await.map_err(map_error)
    }

    async fn query(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Row>, SqlError> {
        let link = self.link(cx)?;
        let client = link
            .pool(connection)?
            .get(connection, ACQUIRE_TIMEOUT)
            .await?;
        let (prepared, params) = prepare(&client, statement, params).await?;
        let rows = client
            .query(&prepared, &as_refs(&params))
            .await
            .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                let columns = row
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        let Raw(raw) = row.try_get::<usize, Raw>(i).map_err(map_error)?;
                        let value = match raw {
                            None => SqlValue::Null,
                            Some(raw) => decode(column.type_(), raw).map_err(|e| {
                                SqlError::TypeMismatch(format!("column '{}': {e}", column.name()))
                            })?,
                        };
                        Ok(sql::Column {
                            name: column.name().to_string(),
                            value,
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
        let link = self.link(cx)?;
        let client = link
            .pool(connection)?
            .get(connection, ACQUIRE_TIMEOUT)
            .await?;
        let (prepared, params) = prepare(&client, statement, params).await?;
        client
            .execute(&prepared, &as_refs(&params))
            .await
            .map_err(map_error)
    }
}

/// A parameter, already checked against its placeholder's type.
#[derive(Debug)]
enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    Oid(u32),
    F32(f32),
    F64(f64),
    Bytes(Vec<u8>),
    /// Sent in text format: the server parses it as the placeholder's type.
    Text(String),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Param::Null => return Ok(IsNull::Yes),
            Param::Bool(b) => out.put_u8(u8::from(*b)),
            Param::I16(v) => out.put_i16(*v),
            Param::I32(v) => out.put_i32(*v),
            Param::I64(v) => out.put_i64(*v),
            Param::Oid(v) => out.put_u32(*v),
            Param::F32(v) => out.put_f32(*v),
            Param::F64(v) => out.put_f64(*v),
            Param::Bytes(b) => out.put_slice(b),
            Param::Text(s) => out.put_slice(s.as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            Param::Text(_) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

/// The type a value of `ty` is sent and received as (a domain's base type).
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// One parameter (numbered from 1) for a placeholder of type `ty`.
fn encode(position: usize, value: SqlValue, ty: &Type) -> Result<Param, SqlError> {
    let base = base_type(ty);
    let out_of_range = |n: i128| {
        SqlError::TypeMismatch(format!(
            "parameter ${position}: {n} is out of range for type {}",
            ty.name()
        ))
    };
    let integer = |n: i128| -> Result<Param, SqlError> {
        Ok(match *base {
            Type::INT2 => Param::I16(i16::try_from(n).map_err(|_| out_of_range(n))?),
            Type::INT4 => Param::I32(i32::try_from(n).map_err(|_| out_of_range(n))?),
            Type::INT8 => Param::I64(i64::try_from(n).map_err(|_| out_of_range(n))?),
            Type::OID => Param::Oid(u32::try_from(n).map_err(|_| out_of_range(n))?),
            Type::FLOAT4 => Param::F32(n as f32),
            Type::FLOAT8 => Param::F64(n as f64),
            _ => Param::Text(n.to_string()),
        })
    };
    Ok(match value {
        SqlValue::Null => Param::Null,
        SqlValue::Boolean(b) => match *base {
            Type::BOOL => Param::Bool(b),
            _ => Param::Text(b.to_string()),
        },
        SqlValue::Int32(n) => integer(i128::from(n))?,
        SqlValue::Int64(n) => integer(i128::from(n))?,
        SqlValue::Uint32(n) => integer(i128::from(n))?,
        SqlValue::Uint64(n) => integer(i128::from(n))?,
        SqlValue::Float(f) => match *base {
            Type::FLOAT4 => Param::F32(f),
            Type::FLOAT8 => Param::F64(f64::from(f)),
            _ => Param::Text(float_text(f64::from(f))),
        },
        SqlValue::Double(d) => match *base {
            Type::FLOAT4 => Param::F32(d as f32),
            Type::FLOAT8 => Param::F64(d),
            _ => Param::Text(float_text(d)),
        },
        SqlValue::Str(s) | SqlValue::Date(s) | SqlValue::Time(s) | SqlValue::Timestamp(s) => {
            Param::Text(s)
        }
        SqlValue::Binary(b) => match *base {
            Type::BYTEA => Param::Bytes(b),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Param::Text(String::from_utf8(b).map_err(|_| {
                    SqlError::TypeMismatch(format!(
                        "parameter ${position}: binary data that is not UTF-8 cannot fill type {}",
                        ty.name()
                    ))
                })?)
            }
            _ => {
                return Err(SqlError::TypeMismatch(format!(
                    "parameter ${position}: binary data cannot fill type {}; use a bytea \
                     column or pass a string",
                    ty.name()
                )));
            }
        },
    })
}

/// A column's bytes as the server sent them (binary format), or `None` for NULL.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn fixed<const N: usize>(raw: &[u8], ty: &Type) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("{} value of {} bytes, expected {N}", ty.name(), raw.len()))
}

fn utf8(raw: &[u8], ty: &Type) -> Result<String, String> {
    String::from_utf8(raw.to_vec()).map_err(|_| format!("{} value is not UTF-8", ty.name()))
}

/// A binary-format column value as a `SqlValue` (see the crate docs for the mapping).
fn decode(ty: &Type, raw: &[u8]) -> Result<SqlValue, String> {
    let base = base_type(ty);
    Ok(match *base {
        Type::BOOL => SqlValue::Boolean(fixed::<1>(raw, base)?[0] != 0),
        Type::INT2 => SqlValue::Int32(i32::from(i16::from_be_bytes(fixed(raw, base)?))),
        Type::INT4 => SqlValue::Int32(i32::from_be_bytes(fixed(raw, base)?)),
        Type::INT8 => SqlValue::Int64(i64::from_be_bytes(fixed(raw, base)?)),
        Type::OID => SqlValue::Uint32(u32::from_be_bytes(fixed(raw, base)?)),
        Type::FLOAT4 => SqlValue::Float(f32::from_be_bytes(fixed(raw, base)?)),
        Type::FLOAT8 => SqlValue::Double(f64::from_be_bytes(fixed(raw, base)?)),
        Type::NUMERIC => SqlValue::Str(numeric_text(raw)?),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::CHAR
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML => SqlValue::Str(utf8(raw, base)?),
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => SqlValue::Str(utf8(json, base)?),
            _ => return Err("jsonb value of an unknown version".into()),
        },
        Type::UUID => {
            let b: [u8; 16] = fixed(raw, base)?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            SqlValue::Str(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        Type::BYTEA => SqlValue::Binary(raw.to_vec()),
        Type::DATE => SqlValue::Date(date_text(i32::from_be_bytes(fixed(raw, base)?))),
        Type::TIME => SqlValue::Time(time_text(i64::from_be_bytes(fixed(raw, base)?))),
        Type::TIMETZ => {
            let b: [u8; 12] = fixed(raw, base)?;
            let (micros, zone) = b.split_at(8);
            let micros = i64::from_be_bytes(fixed(micros, base)?);
            // PostgreSQL stores the offset in seconds west of UTC.
            let east = -i32::from_be_bytes(fixed(zone, base)?);
            let sign = if east < 0 { '-' } else { '+' };
            let (h, m, s) = (east.abs() / 3600, east.abs() / 60 % 60, east.abs() % 60);
            let mut zone = format!("{sign}{h:02}");
            if m != 0 || s != 0 {
                zone.push_str(&format!(":{m:02}"));
            }
            if s != 0 {
                zone.push_str(&format!(":{s:02}"));
            }
            SqlValue::Str(format!("{}{zone}", time_text(micros)))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            SqlValue::Timestamp(timestamp_text(i64::from_be_bytes(fixed(raw, base)?)))
        }
        _ => match base.kind() {
            Kind::Enum(_) => SqlValue::Str(utf8(raw, base)?),
            _ => {
                return Err(format!(
                    "type {} has no wasi:sql value; cast it in the statement (e.g. `col::text`)",
                    ty.name()
                ));
            }
        },
    })
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

/// (year, month, day) of a day counted from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`, and whether the date is BC (written as PostgreSQL does, with a ` BC` suffix).
fn ymd(days_since_pg_epoch: i64) -> (String, bool) {
    let (year, month, day) = civil_from_days(days_since_pg_epoch + PG_EPOCH_DAYS);
    if year <= 0 {
        (format!("{:04}-{month:02}-{day:02}", 1 - year), true)
    } else {
        (format!("{year:04}-{month:02}-{day:02}"), false)
    }
}

fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => match ymd(i64::from(days)) {
            (date, false) => date,
            (date, true) => format!("{date} BC"),
        },
    }
}

fn time_text(micros: i64) -> String {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac:06}")
    }
}

fn timestamp_text(micros: i64) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            let time = time_text(micros.rem_euclid(MICROS_PER_DAY));
            match ymd(days) {
                (date, false) => format!("{date} {time}"),
                (date, true) => format!("{date} {time} BC"),
            }
        }
    }
}

/// PostgreSQL's binary `numeric` as its exact decimal text.
fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "numeric value is truncated".to_string())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("numeric value with unknown sign {other:#x}")),
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<_>, _>>()?;
    // Digit `i` (base 10000) is worth 10000^(weight - i).
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                text.push_str(&digit(i).to_string());
            } else {
                text.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let groups = dscale.div_ceil(4);
        let mut fraction = String::with_capacity(groups * 4);
        for j in 0..groups {
            fraction.push_str(&format!("{:04}", digit(weight + 1 + j as i64)));
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// A `tokio_postgres` error as the typed `SqlError`, with the server's message.
fn map_error(error: tokio_postgres::Error) -> SqlError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let mut message = format!("{} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            message.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!("; hint: {hint}"));
        }
        return match code {
            "42601" => SqlError::Syntax(message),
            c if c.starts_with("23") => SqlError::ConstraintViolation(message),
            "42804" | "42P18" | "42846" => SqlError::TypeMismatch(message),
            c if c.starts_with("22") => SqlError::TypeMismatch(message),
            "3D000" | "53300" | "57P01" | "57P02" | "57P03" => SqlError::ConnectionFailed(message),
            c if c.starts_with("08") || c.starts_with("28") => SqlError::ConnectionFailed(message),
            _ => SqlError::Other(message),
        };
    }
    let io = error
        .source()
        .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
    if error.is_closed() || io {
        SqlError::ConnectionFailed(error.to_string())
    } else {
        SqlError::Other(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_as_postgres_prints_them() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(8825), "2024-02-29");
        assert_eq!(date_text(-10_957), "1970-01-01");
        assert_eq!(date_text(-730_119), "0001-01-01");
        assert_eq!(date_text(-730_120), "0001-12-31 BC");
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(time_text(0), "00:00:00");
        assert_eq!(time_text(49_530_123_456), "13:45:30.123456");
        assert_eq!(time_text(MICROS_PER_DAY), "24:00:00");
        assert_eq!(timestamp_text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(
            timestamp_text(8825 * MICROS_PER_DAY + 49_530_000_000),
            "2024-02-29 13:45:30"
        );
        assert_eq!(timestamp_text(i64::MIN), "-infinity");
    }

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_read_exactly() {
        let cases: [(Vec<u8>, &str); 8] = [
            (numeric(0, 0, 0, 0, &[]), "0"),
            (numeric(0, 0, 0, 2, &[]), "0.00"),
            (numeric(2, 1, 0, 2, &[1, 2345]), "12345.00"),
            (numeric(3, 1, 0, 2, &[1, 2345, 6700]), "12345.67"),
            (numeric(1, -1, 0x4000, 2, &[500]), "-0.05"),
            (numeric(1, -2, 0, 6, &[1200]), "0.000012"),
            (numeric(1, 2, 0, 0, &[7]), "700000000"),
            (numeric(0, 0, 0xC000, 0, &[]), "NaN"),
        ];
        for (raw, text) in cases {
            assert_eq!(numeric_text(&raw).as_deref(), Ok(text));
        }
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn parameters_are_range_checked_for_their_placeholder() {
        assert!(matches!(
            encode(1, SqlValue::Int64(70_000), &Type::INT2),
            Err(SqlError::TypeMismatch(_))
        ));
        assert!(matches!(
            encode(1, SqlValue::Uint64(u64::MAX), &Type::INT8),
            Err(SqlError::TypeMismatch(_))
        ));
        assert!(matches!(
            encode(1, SqlValue::Uint32(7), &Type::INT4),
            Ok(Param::I32(7))
        ));
        assert!(matches!(
            encode(1, SqlValue::Int32(7), &Type::NUMERIC),
            Ok(Param::Text(t)) if t == "7"
        ));
        assert!(matches!(
            encode(1, SqlValue::Double(f64::INFINITY), &Type::NUMERIC),
            Ok(Param::Text(t)) if t == "Infinity"
        ));
        assert!(matches!(
            encode(1, SqlValue::Binary(vec![0xff]), &Type::INT4),
            Err(SqlError::TypeMismatch(_))
        ));
    }
}
