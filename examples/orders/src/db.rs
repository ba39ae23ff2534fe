//! The orders table through `wasi:sql`: settings from `wasi:config`, the schema (created on
//! first use), and one statement per operation.
//!
//! Every write is a single statement, so nothing is ever half-written: `INSERT … RETURNING`
//! creates an order and reads back the id the database assigned (MariaDB ≥ 10.5 and
//! PostgreSQL; MySQL has no `RETURNING`), `UPDATE … WHERE id = ?` changes only the fields
//! given, `DELETE … WHERE id = ?` removes one order.
//!
//! **Schema on first use.** A statement that fails because the table does not exist
//! (SQLSTATE `42S02` on MariaDB/MySQL, `42P01` on PostgreSQL) runs `CREATE TABLE IF NOT
//! EXISTS` and is run once more. Creating is idempotent, so any number of concurrent first
//! requests, on any number of hosts, end with one table and every statement applied once (a
//! statement that failed on a missing table changed nothing). On PostgreSQL two concurrent
//! `CREATE TABLE IF NOT EXISTS` can collide; the loser's error is ignored when the retried
//! statement then succeeds. Once the table exists, no request pays for this.

use crate::bindings::wasi::config::store as config;
use crate::bindings::wasi::sql::readwrite;
use crate::bindings::wasi::sql::types::{Connection, DataType, Error as SqlError, Row, Statement};
use crate::order::{NewOrder, Order, OrderChanges, Page};

/// The SQL dialect: placeholders and the `CREATE TABLE` statement differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB (and MySQL for everything but `RETURNING`): `?` placeholders.
    Mysql,
    /// PostgreSQL: `$1`, `$2`, … placeholders.
    Postgres,
}

/// Where the orders live, from the component's `wasi:config` (every key optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Config `connection`: the `wasi:sql` connection name (`default`; the link's `url`).
    pub connection: String,
    /// Config `table`: the table name (`orders`).
    pub table: String,
    /// Config `dialect`: `mysql` / `mariadb` (default) or `postgres`.
    pub dialect: Dialect,
}

impl Settings {
    /// Reads the settings through `wasi:config/store`.
    pub fn from_config() -> Result<Self, String> {
        Self::from_lookup(|key| {
            config::get(key).map_err(|e| match e {
                config::Error::Upstream(msg) | config::Error::Io(msg) => {
                    format!("reading config `{key}` failed: {msg}")
                }
            })
        })
    }

    /// The settings from `lookup(key)`, validated (the table name goes into SQL text, so it
    /// must be a plain identifier).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Result<Option<String>, String>,
    ) -> Result<Self, String> {
        let get = |key: &str, default: &str| -> Result<String, String> {
            Ok(lookup(key)?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()))
        };
        let table = get("table", "orders")?;
        let identifier = table.len() <= 64
            && table.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(format!(
                "config `table` = `{table}` is not a table name (letters, digits and `_`, \
                 starting with a letter or `_`, at most 64)"
            ));
        }
        let dialect = match get("dialect", "mysql")?.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Dialect::Mysql,
            "postgres" | "postgresql" => Dialect::Postgres,
            other => {
                return Err(format!(
                    "config `dialect` = `{other}` is not `mysql`, `mariadb` or `postgres`"
                ));
            }
        };
        Ok(Self {
            connection: get("connection", "default")?,
            table,
            dialect,
        })
    }
}

/// A failed database operation, sorted by the HTTP status it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The database cannot be reached or is not linked (503).
    Unavailable(String),
    /// Anything else (500).
    Failed(String),
}

impl From<SqlError> for DbError {
    fn from(error: SqlError) -> Self {
        match error {
            SqlError::NoSuchConnection(msg) => {
                DbError::Unavailable(format!("no such database connection: {msg}"))
            }
            SqlError::ConnectionFailed(msg) => {
                DbError::Unavailable(format!("cannot reach the database: {msg}"))
            }
            SqlError::Syntax(msg) => DbError::Failed(format!("database syntax error: {msg}")),
            SqlError::ConstraintViolation(msg) => {
                DbError::Failed(format!("database constraint violated: {msg}"))
            }
            SqlError::TypeMismatch(msg) => {
                DbError::Failed(format!("database type mismatch: {msg}"))
            }
            SqlError::Other(msg) => DbError::Failed(format!("database error: {msg}")),
        }
    }
}

/// The columns every `SELECT` and `RETURNING` lists, in this order.
const COLUMNS: &str = "id, customer, item, quantity, price_cents, created_at";

/// The orders table on one connection.
pub struct Orders {
    connection: Connection,
    settings: Settings,
}

impl Orders {
    /// Opens the connection the settings name.
    pub fn open(settings: Settings) -> Result<Self, DbError> {
        let connection = Connection::open(&settings.connection)?;
        Ok(Self {
            connection,
            settings,
        })
    }

    /// Inserts `order`; the stored order with its new id.
    pub fn create(&self, order: &NewOrder) -> Result<Order, DbError> {
        let sql = format!(
            "INSERT INTO {} (customer, item, quantity, price_cents) VALUES (?, ?, ?, ?) \
             RETURNING {COLUMNS}",
            self.settings.table
        );
        let params = [
            DataType::Str(order.customer.clone()),
            DataType::Str(order.item.clone()),
            DataType::Int32(order.quantity),
            DataType::Int64(order.price_cents),
        ];
        let rows = self.query(&sql, &params)?;
        match rows.into_iter().next() {
            Some(row) => row_to_order(row).map_err(DbError::Failed),
            None => Err(DbError::Failed(
                "the database returned no row for the inserted order".into(),
            )),
        }
    }

    /// One page of orders, by id.
    pub fn list(&self, page: Page) -> Result<Vec<Order>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} ORDER BY id LIMIT ? OFFSET ?",
            self.settings.table
        );
        let params = [DataType::Int64(page.limit), DataType::Int64(page.offset)];
        self.query(&sql, &params)?
            .into_iter()
            .map(|row| row_to_order(row).map_err(DbError::Failed))
            .collect()
    }

    /// The order `id`, if it exists.
    pub fn get(&self, id: i64) -> Result<Option<Order>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = ?", self.settings.table);
        match self.query(&sql, &[DataType::Int64(id)])?.into_iter().next() {
            Some(row) => row_to_order(row).map(Some).map_err(DbError::Failed),
            None => Ok(None),
        }
    }

    /// Sets the given fields of order `id`; the order as it is afterwards, or `None` when
    /// there is no such order.
    pub fn update(&self, id: i64, changes: &OrderChanges) -> Result<Option<Order>, DbError> {
        let mut set = Vec::new();
        let mut params = Vec::new();
        if let Some(customer) = &changes.customer {
            set.push("customer = ?");
            params.push(DataType::Str(customer.clone()));
        }
        if let Some(item) = &changes.item {
            set.push("item = ?");
            params.push(DataType::Str(item.clone()));
        }
        if let Some(quantity) = changes.quantity {
            set.push("quantity = ?");
            params.push(DataType::Int32(quantity));
        }
        if let Some(price_cents) = changes.price_cents {
            set.push("price_cents = ?");
            params.push(DataType::Int64(price_cents));
        }
        params.push(DataType::Int64(id));
        let sql = format!(
            "UPDATE {} SET {} WHERE id = ?",
            self.settings.table,
            set.join(", ")
        );
        // Rows *matched* (the provider asks MySQL for found rows, as PostgreSQL counts), so
        // an update to the values an order already has still counts.
        if self.exec(&sql, &params)? == 0 {
            return Ok(None);
        }
        // A concurrent delete between the two statements reads as "no such order".
        self.get(id)
    }

    /// Deletes order `id`; whether it existed.
    pub fn delete(&self, id: i64) -> Result<bool, DbError> {
        let sql = format!("DELETE FROM {} WHERE id = ?", self.settings.table);
        Ok(self.exec(&sql, &[DataType::Int64(id)])? > 0)
    }

    fn query(&self, sql: &str, params: &[DataType]) -> Result<Vec<Row>, SqlError> {
        let sql = placeholders(self.settings.dialect, sql);
        self.with_schema(|| {
            let statement = Statement::prepare(&sql, params)?;
            readwrite::query(&self.connection, &statement)
        })
    }

    fn exec(&self, sql: &str, params: &[DataType]) -> Result<u64, SqlError> {
        let sql = placeholders(self.settings.dialect, sql);
        self.with_schema(|| {
            let statement = Statement::prepare(&sql, params)?;
            readwrite::exec(&self.connection, &statement)
        })
    }

    /// Runs `op`; when it fails because the table is missing, creates it and runs `op` again.
    fn with_schema<T>(&self, op: impl Fn() -> Result<T, SqlError>) -> Result<T, SqlError> {
        match op() {
            Err(error) if missing_table(&error) => {
                let created = self.create_table();
                match op() {
                    // Still missing: why creating it failed says more (e.g. no privilege).
                    Err(error) if missing_table(&error) => Err(created.err().unwrap_or(error)),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn create_table(&self) -> Result<(), SqlError> {
        let sql = create_table_sql(self.settings.dialect, &self.settings.table);
        let statement = Statement::prepare(&sql, &[])?;
        readwrite::exec(&self.connection, &statement).map(drop)
    }
}

/// `CREATE TABLE IF NOT EXISTS` for `dialect`. The checks repeat the API's rules, so that
/// rows written by other clients keep to them too.
pub fn create_table_sql(dialect: Dialect, table: &str) -> String {
    match dialect {
        Dialect::Mysql => format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             customer VARCHAR(200) NOT NULL, \
             item VARCHAR(200) NOT NULL, \
             quantity INT NOT NULL CHECK (quantity > 0), \
             price_cents BIGINT NOT NULL CHECK (price_cents >= 0), \
             created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        Dialect::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             customer VARCHAR(200) NOT NULL, \
             item VARCHAR(200) NOT NULL, \
             quantity INTEGER NOT NULL CHECK (quantity > 0), \
             price_cents BIGINT NOT NULL CHECK (price_cents >= 0), \
             created_at TIMESTAMPTZ(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0))"
        ),
    }
}

/// `sql` with its `?` placeholders in `dialect`'s style (the statements here have no
/// quoted text, so every `?` is a placeholder).
pub fn placeholders(dialect: Dialect, sql: &str) -> String {
    match dialect {
        Dialect::Mysql => sql.to_string(),
        Dialect::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

/// Whether `error` says the table does not exist (MariaDB/MySQL 1146, SQLSTATE `42S02`;
/// PostgreSQL SQLSTATE `42P01`). The providers put the SQLSTATE in the message.
fn missing_table(error: &SqlError) -> bool {
    let message = match error {
        SqlError::NoSuchConnection(_) | SqlError::ConnectionFailed(_) => return false,
        SqlError::Syntax(m)
        | SqlError::ConstraintViolation(m)
        | SqlError::TypeMismatch(m)
        | SqlError::Other(m) => m,
    };
    message.contains("42S02") || message.contains("42P01")
}

/// A row of [`COLUMNS`] as an order.
fn row_to_order(row: Row) -> Result<Order, String> {
    let mut id = None;
    let mut customer = None;
    let mut item = None;
    let mut quantity = None;
    let mut price_cents = None;
    let mut created_at = None;
    for column in row.columns {
        let name = column.name.to_ascii_lowercase();
        let value = column.value;
        match name.as_str() {
            "id" => id = Some(integer(&name, value)?),
            "customer" => customer = Some(text(&name, value)?),
            "item" => item = Some(text(&name, value)?),
            "quantity" => quantity = Some(integer(&name, value)?),
            "price_cents" => price_cents = Some(integer(&name, value)?),
            "created_at" => created_at = Some(timestamp(&name, value)?),
            _ => {}
        }
    }
    let missing = |name: &str| format!("the database row has no column `{name}`");
    Ok(Order {
        id: id.ok_or_else(|| missing("id"))?,
        customer: customer.ok_or_else(|| missing("customer"))?,
        item: item.ok_or_else(|| missing("item"))?,
        quantity: quantity.ok_or_else(|| missing("quantity"))?,
        price_cents: price_cents.ok_or_else(|| missing("price_cents"))?,
        created_at: created_at.ok_or_else(|| missing("created_at"))?,
    })
}

fn integer(name: &str, value: DataType) -> Result<i64, String> {
    match value {
        DataType::Int32(n) => Ok(i64::from(n)),
        DataType::Int64(n) => Ok(n),
        DataType::Uint32(n) => Ok(i64::from(n)),
        DataType::Uint64(n) => {
            i64::try_from(n).map_err(|_| format!("column `{name}` = {n} is out of range"))
        }
        // DECIMAL columns come back as their exact text.
        DataType::Str(s) => s
            .parse()
            .map_err(|_| format!("column `{name}` = `{s}` is not an integer")),
        other => Err(format!("column `{name}` is not an integer: {other:?}")),
    }
}

fn text(name: &str, value: DataType) -> Result<String, String> {
    match value {
        DataType::Str(s) => Ok(s),
        DataType::Binary(bytes) => {
            String::from_utf8(bytes).map_err(|_| format!("column `{name}` is not UTF-8 text"))
        }
        other => Err(format!("column `{name}` is not text: {other:?}")),
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) as ISO 8601: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
fn timestamp(name: &str, value: DataType) -> Result<String, String> {
    match value {
        DataType::Timestamp(s) | DataType::Str(s) => Ok(iso8601(&s)),
        DataType::Null => Ok(String::new()),
        other => Err(format!("column `{name}` is not a timestamp: {other:?}")),
    }
}

fn iso8601(text: &str) -> String {
    let mut out = text.trim().replacen(' ', "T", 1);
    if !out.ends_with('Z') && !out.contains('+') {
        out.push('Z');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wasi::sql::types::Column;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|key| {
            Ok(pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
        })
    }

    #[test]
    fn settings_default_and_validate() {
        assert_eq!(
            settings(&[]).unwrap(),
            Settings {
                connection: "default".into(),
                table: "orders".into(),
                dialect: Dialect::Mysql,
            }
        );
        let s = settings(&[
            ("table", "shop_orders"),
            ("dialect", "PostgreSQL"),
            ("connection", "db"),
        ])
        .unwrap();
        assert_eq!(
            (s.table.as_str(), s.dialect, s.connection.as_str()),
            ("shop_orders", Dialect::Postgres, "db")
        );
        for bad in ["orders; DROP TABLE x", "1orders", "a.b", "o`rders"] {
            let err = settings(&[("table", bad)]).unwrap_err();
            assert!(err.contains("not a table name"), "{err}");
        }
        assert!(settings(&[("dialect", "sqlite")]).is_err());
    }

    #[test]
    fn placeholders_per_dialect() {
        let sql = "UPDATE t SET a = ?, b = ? WHERE id = ?";
        assert_eq!(placeholders(Dialect::Mysql, sql), sql);
        assert_eq!(
            placeholders(Dialect::Postgres, sql),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3"
        );
    }

    #[test]
    fn missing_tables_are_recognised_in_both_dialects() {
        let mysql =
            SqlError::Other("Table 'db.orders' doesn't exist (error 1146, SQLSTATE 42S02)".into());
        let postgres =
            SqlError::Other("relation \"orders\" does not exist (SQLSTATE 42P01)".into());
        assert!(missing_table(&mysql) && missing_table(&postgres));
        assert!(!missing_table(&SqlError::Syntax(
            "near x (SQLSTATE 42000)".into()
        )));
        assert!(!missing_table(&SqlError::ConnectionFailed("42S02".into())));
    }

    #[test]
    fn rows_become_orders() {
        let column = |name: &str, value: DataType| Column {
            name: name.into(),
            value,
        };
        let row = Row {
            columns: vec![
                column("id", DataType::Int64(7)),
                column("customer", DataType::Str("Ada".into())),
                column("item", DataType::Str("tea".into())),
                column("quantity", DataType::Int32(2)),
                column("price_cents", DataType::Int64(450)),
                column(
                    "created_at",
                    DataType::Timestamp("2025-01-31 12:00:00".into()),
                ),
            ],
        };
        assert_eq!(
            row_to_order(row).unwrap(),
            Order {
                id: 7,
                customer: "Ada".into(),
                item: "tea".into(),
                quantity: 2,
                price_cents: 450,
                created_at: "2025-01-31T12:00:00Z".into(),
            }
        );
        let short = Row {
            columns: vec![column("id", DataType::Int64(7))],
        };
        assert!(
            row_to_order(short)
                .unwrap_err()
                .contains("no column `customer`")
        );
    }

    #[test]
    fn create_table_is_idempotent_text() {
        for dialect in [Dialect::Mysql, Dialect::Postgres] {
            let sql = create_table_sql(dialect, "orders");
            assert!(
                sql.starts_with("CREATE TABLE IF NOT EXISTS orders ("),
                "{sql}"
            );
        }
    }
}
