//! `wasi:sql@0.2.0-draft` (`types`, `readwrite`; `interfaces/wasi-sql`), served by SQL
//! providers.
//!
//! `connection.open(name)` resolves the calling component's link for `wasi:sql/readwrite`
//! (see [`super::provided`]) and asks the provider whether connection `name` is configured on
//! that link; the connection resource keeps the provider. `statement.prepare` only records the
//! text and typed parameters (the provider binds them when the statement runs), so `query` and
//! `exec` are one provider call each. Every provider error, a missing link included, reaches
//! the guest as the typed WIT `error`, never as a trap.

use std::sync::Arc;

use trellis_provider_sdk::CallContext;
use trellis_provider_sdk::sql::{Column, Row, Sql, SqlError, SqlValue};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::provided::Routing;
use super::{Capability, Served};
use crate::InvocationState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasi-sql",
        world: "wasi:sql/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:sql/types.connection": super::Connection,
            "wasi:sql/types.statement": super::Statement,
        },
    });
}

use bindings::wasi::sql::{readwrite, types};

const READWRITE: &str = "wasi:sql/readwrite";

/// An open connection: the provider behind the component's link, and the connection name.
pub struct Connection {
    name: String,
    cx: CallContext,
    provider: Arc<dyn Sql>,
}

/// A prepared statement: its text and bound parameters.
pub struct Statement {
    text: String,
    params: Vec<SqlValue>,
}

/// The `wasi:sql` capability.
pub struct WasiSql;

struct SqlData;

impl HasData for SqlData {
    type Data<'a> = SqlView<'a>;
}

struct SqlView<'a> {
    table: &'a mut ResourceTable,
    routing: Routing<'a>,
}

fn to_wit(error: SqlError) -> types::Error {
    match error {
        SqlError::NoSuchConnection(m) => types::Error::NoSuchConnection(m),
        SqlError::ConnectionFailed(m) => types::Error::ConnectionFailed(m),
        SqlError::Syntax(m) => types::Error::Syntax(m),
        SqlError::ConstraintViolation(m) => types::Error::ConstraintViolation(m),
        SqlError::TypeMismatch(m) => types::Error::TypeMismatch(m),
        SqlError::Other(m) => types::Error::Other(m),
    }
}

fn from_wit(value: types::DataType) -> SqlValue {
    use types::DataType as D;
    match value {
        D::Null => SqlValue::Null,
        D::Boolean(v) => SqlValue::Boolean(v),
        D::Int32(v) => SqlValue::Int32(v),
        D::Int64(v) => SqlValue::Int64(v),
        D::Uint32(v) => SqlValue::Uint32(v),
        D::Uint64(v) => SqlValue::Uint64(v),
        D::Float(v) => SqlValue::Float(v),
        D::Double(v) => SqlValue::Double(v),
        D::Str(v) => SqlValue::Str(v),
        D::Date(v) => SqlValue::Date(v),
        D::Time(v) => SqlValue::Time(v),
        D::Timestamp(v) => SqlValue::Timestamp(v),
        D::Binary(v) => SqlValue::Binary(v),
    }
}

fn to_wit_value(value: SqlValue) -> types::DataType {
    use types::DataType as D;
    match value {
        SqlValue::Null => D::Null,
        SqlValue::Boolean(v) => D::Boolean(v),
        SqlValue::Int32(v) => D::Int32(v),
        SqlValue::Int64(v) => D::Int64(v),
        SqlValue::Uint32(v) => D::Uint32(v),
        SqlValue::Uint64(v) => D::Uint64(v),
        SqlValue::Float(v) => D::Float(v),
        SqlValue::Double(v) => D::Double(v),
        SqlValue::Str(v) => D::Str(v),
        SqlValue::Date(v) => D::Date(v),
        SqlValue::Time(v) => D::Time(v),
        SqlValue::Timestamp(v) => D::Timestamp(v),
        SqlValue::Binary(v) => D::Binary(v),
    }
}

fn to_wit_row(row: Row) -> types::Row {
    types::Row {
        columns: row
            .columns
            .into_iter()
            .map(|Column { name, value }| types::Column {
                name,
                value: to_wit_value(value),
            })
            .collect(),
    }
}

impl types::Host for SqlView<'_> {}

impl types::HostConnection for SqlView<'_> {
    async fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, types::Error>> {
        let (provider, cx) = match self.routing.provider(READWRITE, "SQL", |c| c.sql) {
            Ok(found) => found,
            Err(message) => return Ok(Err(types::Error::Other(message))),
        };
        if let Err(e) = provider.open(&cx, &name).await {
            return Ok(Err(to_wit(e)));
        }
        let connection = Connection { name, cx, provider };
        Ok(Ok(self.table.push(connection)?))
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl types::HostStatement for SqlView<'_> {
    async fn prepare(
        &mut self,
        query: String,
        params: Vec<types::DataType>,
    ) -> wasmtime::Result<Result<Resource<Statement>, types::Error>> {
        let statement = Statement {
            text: query,
            params: params.into_iter().map(from_wit).collect(),
        };
        Ok(Ok(self.table.push(statement)?))
    }

    async fn drop(&mut self, statement: Resource<Statement>) -> wasmtime::Result<()> {
        self.table.delete(statement)?;
        Ok(())
    }
}

/// Everything one `query` / `exec` needs, copied out of the resource table.
struct Run {
    sql: Arc<dyn Sql>,
    cx: CallContext,
    connection: String,
    text: String,
    params: Vec<SqlValue>,
}

impl SqlView<'_> {
    fn parts(
        &self,
        connection: &Resource<Connection>,
        statement: &Resource<Statement>,
    ) -> wasmtime::Result<Run> {
        let c = self.table.get(connection)?;
        let s = self.table.get(statement)?;
        Ok(Run {
            sql: c.provider.clone(),
            cx: c.cx.clone(),
            connection: c.name.clone(),
            text: s.text.clone(),
            params: s.params.clone(),
        })
    }
}

impl readwrite::Host for SqlView<'_> {
    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: Resource<Statement>,
    ) -> wasmtime::Result<Result<Vec<types::Row>, types::Error>> {
        let run = self.parts(&connection, &statement)?;
        Ok(run
            .sql
            .query(&run.cx, &run.connection, &run.text, run.params)
            .await
            .map(|rows| rows.into_iter().map(to_wit_row).collect())
            .map_err(to_wit))
    }

    async fn exec(
        &mut self,
        connection: Resource<Connection>,
        statement: Resource<Statement>,
    ) -> wasmtime::Result<Result<u64, types::Error>> {
        let run = self.parts(&connection, &statement)?;
        Ok(run
            .sql
            .exec(&run.cx, &run.connection, &run.text, run.params)
            .await
            .map_err(to_wit))
    }
}

impl Capability for WasiSql {
    fn name(&self) -> &'static str {
        "wasi:sql"
    }

    fn serves(&self) -> &'static [Served] {
        &[
            Served {
                interface: "wasi:sql/types",
                grant: true,
            },
            Served {
                interface: "wasi:sql/readwrite",
                grant: true,
            },
        ]
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        fn view(state: &mut InvocationState) -> SqlView<'_> {
            let (table, routing) = state.routing();
            SqlView { table, routing }
        }
        types::add_to_linker::<InvocationState, SqlData>(linker, view)?;
        readwrite::add_to_linker::<InvocationState, SqlData>(linker, view)
    }
}
