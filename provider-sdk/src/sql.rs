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
//! connection named `default`, `url.NAME` the connection `NAME`; `pool_size` bounds the pool
//! (`pool_size.NAME` for one connection). [`connection_settings`] reads them all, with the
//! messages every SQL provider gives.
//! Errors are [`SqlError`], the WIT `error` variant, returned to the component (not a trap).

use std::collections::BTreeMap;
use std::fmt::Display;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::link::{CallContext, LinkConfig, LinkKey};
use crate::provider::ProviderError;

/// The interfaces a SQL provider serves.
pub const INTERFACES: [&str; 2] = ["wasi:sql/types", "wasi:sql/readwrite"];

/// The connection name used when a component asks for `default`.
pub const DEFAULT_CONNECTION: &str = "default";

/// Connections per connection name when the link does not set `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// The largest `pool_size` accepted.
pub const MAX_POOL_SIZE: usize = 1024;

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

/// Which database a SQL provider reaches, as its messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Database {
    /// `"MySQL"`, `"PostgreSQL"`.
    pub name: &'static str,
    /// The URL scheme: `"mysql"`, `"postgres"`.
    pub scheme: &'static str,
    /// A URL to show in the fix of an unknown link: `"mysql://user@host:3306/db"`.
    pub example_url: &'static str,
}

impl Database {
    /// The shape of a URL, for messages: `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    pub fn url_form(&self) -> String {
        format!("{}://USER[:PASSWORD]@HOST[:PORT]/DATABASE", self.scheme)
    }
}

/// One connection a link configures, read from its target config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The config key that set it (`url` or `url.NAME`).
    pub config_key: String,
    /// The URL, trimmed (it may hold a password: log [`ConnectionSettings::display_url`]).
    pub url: String,
    /// The URL without its password ([`redact_url`]).
    pub display_url: String,
    /// `pool_size.NAME`, else `pool_size`, else [`DEFAULT_POOL_SIZE`].
    pub pool_size: usize,
}

impl ConnectionSettings {
    /// The error for a URL the database driver refused, naming the key and the link.
    pub fn not_a_url(
        &self,
        link: &LinkKey,
        database: &Database,
        error: impl Display,
    ) -> ProviderError {
        link_error(
            link,
            format!(
                "target config `{}` = {} is not a {} URL ({error}); expected {}",
                self.config_key,
                self.display_url,
                database.name,
                database.url_form()
            ),
        )
    }
}

/// The connections a link's target config names, by connection name: `url` is
/// [`DEFAULT_CONNECTION`], `url.NAME` is `NAME`. A link must set at least one; errors say which
/// key to fix and name the link.
pub fn connection_settings(
    link: &LinkConfig,
    database: &Database,
) -> Result<BTreeMap<String, ConnectionSettings>, ProviderError> {
    let key = link.target_key();
    let config = &link.target_config;
    let mut connections = BTreeMap::new();
    for (config_key, value) in config {
        let name = if config_key == "url" {
            DEFAULT_CONNECTION
        } else if let Some(name) = config_key.strip_prefix("url.") {
            if name.is_empty() {
                return Err(link_error(
                    &key,
                    "target config key `url.` names no connection; use `url.NAME`",
                ));
            }
            name
        } else {
            continue;
        };
        let url = value.trim();
        if url.is_empty() {
            return Err(link_error(
                &key,
                format!(
                    "target config `{config_key}` is empty; set it to a {}:// URL",
                    database.scheme
                ),
            ));
        }
        let pool_size = pool_size(config, name).map_err(|e| link_error(&key, e))?;
        connections.insert(
            name.to_string(),
            ConnectionSettings {
                config_key: config_key.clone(),
                url: url.to_string(),
                display_url: redact_url(url),
                pool_size,
            },
        );
    }
    if connections.is_empty() {
        return Err(link_error(
            &key,
            format!(
                "no database URL in the link's target config; set `url` (connection 'default') \
                 or `url.NAME` to {}",
                database.url_form()
            ),
        ));
    }
    Ok(connections)
}

/// `pool_size.NAME`, else `pool_size`, else [`DEFAULT_POOL_SIZE`].
fn pool_size(config: &BTreeMap<String, String>, name: &str) -> Result<usize, String> {
    let specific = format!("pool_size.{name}");
    let (key, value) = match config.get(&specific) {
        Some(v) => (specific.as_str(), v),
        None => match config.get("pool_size") {
            Some(v) => ("pool_size", v),
            None => return Ok(DEFAULT_POOL_SIZE),
        },
    };
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_POOL_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "target config `{key}` = '{value}' is not a pool size; use a whole number from 1 \
             to {MAX_POOL_SIZE}"
        )),
    }
}

/// A link put refused: `message`, prefixed with the link and its component.
pub fn link_error(link: &LinkKey, message: impl Display) -> ProviderError {
    ProviderError::new(format!(
        "link '{}' from '{}': {message}",
        link.link_name, link.component
    ))
}

/// The error for a call through a link the provider was not given.
pub fn no_link(cx: &CallContext, database: &Database) -> SqlError {
    SqlError::NoSuchConnection(format!(
        "no link named '{}' from component '{}' targets this SQL provider; put one with \
         target config `url` (e.g. {})",
        cx.link_name, cx.source_id, database.example_url
    ))
}

/// The error for a connection name the calling link does not configure: it lists the
/// `configured` connections (name, config key) and the key to set.
pub fn no_such_connection<'a>(
    link: &LinkKey,
    name: &str,
    configured: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> SqlError {
    let configured = configured
        .into_iter()
        .map(|(name, config_key)| format!("'{name}' (`{config_key}`)"))
        .collect::<Vec<_>>()
        .join(", ");
    SqlError::NoSuchConnection(format!(
        "connection '{name}' is not configured on link '{}' from '{}'; configured: {configured}; \
         set target config key `{}` to reach it",
        link.link_name,
        link.component,
        url_key(name)
    ))
}

/// A connection URL with its password replaced by `***`, for messages and logs: the user stays
/// (`mysql://app:***@db/shop`). A libpq `key=value` string (no `://`) has its `password=`
/// hidden instead.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &authority[..colon],
                &url[scheme_end + 3 + at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MYSQL: Database = Database {
        name: "MySQL",
        scheme: "mysql",
        example_url: "mysql://user@host:3306/db",
    };

    fn link(pairs: &[(&str, &str)]) -> LinkConfig {
        LinkConfig {
            source_id: "app".into(),
            link_name: "db".into(),
            target_config: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..LinkConfig::default()
        }
    }

    #[test]
    fn connection_names_come_from_url_keys() {
        let settings = connection_settings(
            &link(&[
                ("url", " mysql://app:pw@a/b "),
                ("url.reports", "mysql://c/d"),
                ("pool_size", "3"),
                ("pool_size.reports", "2"),
                ("other", "x"),
            ]),
            &MYSQL,
        )
        .unwrap();
        assert_eq!(settings.keys().collect::<Vec<_>>(), ["default", "reports"]);
        let default = &settings["default"];
        assert_eq!(default.config_key, "url");
        assert_eq!(default.url, "mysql://app:pw@a/b");
        assert_eq!(default.display_url, "mysql://app:***@a/b");
        assert_eq!(default.pool_size, 3);
        assert_eq!(settings["reports"].config_key, "url.reports");
        assert_eq!(settings["reports"].pool_size, 2);
        let unset = connection_settings(&link(&[("url", "mysql://a/b")]), &MYSQL).unwrap();
        assert_eq!(unset["default"].pool_size, DEFAULT_POOL_SIZE);
    }

    #[test]
    fn bad_connection_settings_name_the_link_and_the_key() {
        let refused =
            |pairs: &[(&str, &str)]| connection_settings(&link(pairs), &MYSQL).unwrap_err().0;
        assert_eq!(
            refused(&[]),
            "link 'db' from 'app': no database URL in the link's target config; set `url` \
             (connection 'default') or `url.NAME` to mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        );
        assert_eq!(
            refused(&[("url.", "mysql://a/b")]),
            "link 'db' from 'app': target config key `url.` names no connection; use `url.NAME`"
        );
        assert_eq!(
            refused(&[("url.x", " ")]),
            "link 'db' from 'app': target config `url.x` is empty; set it to a mysql:// URL"
        );
        for bad in ["0", "1025", "many"] {
            let message = refused(&[("url", "mysql://a/b"), ("pool_size", bad)]);
            assert!(
                message.contains(&format!("`pool_size` = '{bad}'")),
                "{message}"
            );
        }
        let message = refused(&[("url.r", "mysql://a/b"), ("pool_size.r", "0")]);
        assert!(message.contains("`pool_size.r` = '0'"), "{message}");
    }

    #[test]
    fn unknown_links_and_connections_say_what_to_set() {
        let cx = CallContext::new("app", "other");
        assert_eq!(
            no_link(&cx, &MYSQL),
            SqlError::NoSuchConnection(
                "no link named 'other' from component 'app' targets this SQL provider; put one \
                 with target config `url` (e.g. mysql://user@host:3306/db)"
                    .into()
            )
        );
        let key = link(&[]).target_key();
        let SqlError::NoSuchConnection(message) = no_such_connection(
            &key,
            "third",
            [("default", "url"), ("second", "url.second")],
        ) else {
            panic!("not NoSuchConnection");
        };
        assert_eq!(
            message,
            "connection 'third' is not configured on link 'db' from 'app'; configured: \
             'default' (`url`), 'second' (`url.second`); set target config key `url.third` to \
             reach it"
        );
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("mysql://app:s3cret@db:3306/shop?x=1"),
            "mysql://app:***@db:3306/shop?x=1"
        );
        assert_eq!(redact_url("mysql://root@db/shop"), "mysql://root@db/shop");
        assert_eq!(
            redact_url("host=db user=app password=s3cret dbname=shop"),
            "host=db user=app password=*** dbname=shop"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
