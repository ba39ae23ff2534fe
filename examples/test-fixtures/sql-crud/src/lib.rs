//! Test fixture: `wasi:sql` over HTTP with JSON bodies; the test driver for the SQL capability.
//!
//! `POST /sql/query` and `POST /sql/exec` take
//!
//! ```json
//! {"connection": "default", "statement": "SELECT ... WHERE id = ?",
//!  "params": [{"int64": 5}, {"str": "x"}, {"null": null}]}
//! ```
//!
//! (`connection` defaults to `default`, `params` to `[]`). Each parameter is an object with one
//! key, the `wasi:sql` `data-type` case: `null` (value `null`), `boolean`, `int32`, `int64`,
//! `uint32`, `uint64`, `float`, `double` (JSON numbers), `str`, `date`, `time`, `timestamp`
//! (strings), `binary` (an array of byte values 0-255).
//!
//! Answers (`application/json`):
//! - query: `200`, a list with one object per row, `{"column": {"type": value}}` in select-list
//!   order, e.g. `[{"id": {"int64": 1}, "name": {"str": "x"}}]`;
//! - exec: `200`, `{"affected": n}`;
//! - a `wasi:sql` error (from `open`, `prepare`, `query` or `exec`): `422`,
//!   `{"error": {"kind": "syntax", "message": "..."}}`, kind being the WIT case name
//!   (`no-such-connection`, `connection-failed`, `syntax`, `constraint-violation`,
//!   `type-mismatch`, `other`);
//! - a body that is not valid JSON or not the shape above: `400`,
//!   `{"error": {"kind": "bad-request", "message": "..."}}`;
//! - another path: `404`; another method: `405` (same error shape).

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package trellis:fixtures;

            world sql-crud {
                import wasi:sql/types@0.2.0-draft;
                import wasi:sql/readwrite@0.2.0-draft;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        path: [
            "../../../interfaces/wasi-http",
            "../../../interfaces/wasi-sql",
        ],
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use bindings::wasi::io::streams::StreamError;
use bindings::wasi::sql::readwrite;
use bindings::wasi::sql::types::{Connection, DataType, Error as SqlError, Row, Statement};
use serde_json::{Map, Number, Value, json};

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 1024 * 1024;

struct SqlCrud;

bindings::export!(SqlCrud with_types_in bindings);

impl Guest for SqlCrud {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = handle(&request);
        respond(response_out, status, &body);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Query,
    Exec,
}

/// A parsed request body.
struct SqlRequest {
    connection: String,
    statement: String,
    params: Vec<DataType>,
}

fn handle(request: &IncomingRequest) -> (u16, Value) {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query
        .split_once('?')
        .map_or(path_with_query.as_str(), |(path, _query)| path);
    let kind = match path {
        "/sql/query" => Kind::Query,
        "/sql/exec" => Kind::Exec,
        _ => {
            return error_reply(
                404,
                "not-found",
                &format!("no route {path}; use POST /sql/query or POST /sql/exec"),
            );
        }
    };
    if !matches!(request.method(), Method::Post) {
        return error_reply(405, "method-not-allowed", &format!("{path} takes POST"));
    }

    let parsed = read_body(request).and_then(|body| parse_request(&body));
    let req = match parsed {
        Ok(req) => req,
        Err(msg) => return error_reply(400, "bad-request", &msg),
    };

    match run(kind, &req) {
        Ok(answer) => (200, answer),
        Err(err) => {
            let (kind, message) = sql_error(err);
            error_reply(422, kind, &message)
        }
    }
}

/// Runs the statement; the JSON answer on success.
fn run(kind: Kind, req: &SqlRequest) -> Result<Value, SqlError> {
    let connection = Connection::open(&req.connection)?;
    let statement = Statement::prepare(&req.statement, &req.params)?;
    match kind {
        Kind::Query => {
            let rows = readwrite::query(&connection, &statement)?;
            Ok(Value::Array(rows.into_iter().map(row_to_json).collect()))
        }
        Kind::Exec => {
            let affected = readwrite::exec(&connection, &statement)?;
            Ok(json!({ "affected": affected }))
        }
    }
}

fn error_reply(status: u16, kind: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({ "error": { "kind": kind, "message": message } }),
    )
}

/// The WIT case name and the message of a `wasi:sql` error.
fn sql_error(err: SqlError) -> (&'static str, String) {
    match err {
        SqlError::NoSuchConnection(msg) => ("no-such-connection", msg),
        SqlError::ConnectionFailed(msg) => ("connection-failed", msg),
        SqlError::Syntax(msg) => ("syntax", msg),
        SqlError::ConstraintViolation(msg) => ("constraint-violation", msg),
        SqlError::TypeMismatch(msg) => ("type-mismatch", msg),
        SqlError::Other(msg) => ("other", msg),
    }
}

fn parse_request(body: &[u8]) -> Result<SqlRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
    let Value::Object(mut obj) = value else {
        return Err("body must be a JSON object".to_string());
    };

    let statement = match obj.remove("statement") {
        Some(Value::String(statement)) => statement,
        Some(_) => return Err("`statement` must be a string".to_string()),
        None => return Err("missing `statement`".to_string()),
    };
    let connection = match obj.remove("connection") {
        Some(Value::String(connection)) => connection,
        None | Some(Value::Null) => "default".to_string(),
        Some(_) => return Err("`connection` must be a string".to_string()),
    };
    let params = match obj.remove("params") {
        Some(Value::Array(params)) => params
            .into_iter()
            .enumerate()
            .map(|(i, param)| parse_param(param).map_err(|msg| format!("params[{i}]: {msg}")))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("`params` must be an array".to_string()),
    };
    if let Some(key) = obj.keys().next() {
        return Err(format!(
            "unknown field `{key}` (expected `connection`, `statement`, `params`)"
        ));
    }
    Ok(SqlRequest {
        connection,
        statement,
        params,
    })
}

const TYPES: &str = "null, boolean, int32, int64, uint32, uint64, float, double, str, date, time, timestamp, binary";

/// One parameter: `{"type": value}`.
fn parse_param(param: Value) -> Result<DataType, String> {
    let Value::Object(obj) = param else {
        return Err(format!(
            "must be an object with one key, the type ({TYPES})"
        ));
    };
    if obj.len() != 1 {
        return Err(format!(
            "must have exactly one key, the type ({TYPES}); has {}",
            obj.len()
        ));
    }
    let Some((ty, value)) = obj.into_iter().next() else {
        unreachable!("checked: one entry");
    };
    let bad = |want: &str| format!("`{ty}` takes {want}, got {value}");
    let data = match ty.as_str() {
        "null" => match value {
            Value::Null => DataType::Null,
            _ => return Err(bad("null")),
        },
        "boolean" => DataType::Boolean(value.as_bool().ok_or_else(|| bad("true or false"))?),
        "int32" => DataType::Int32(
            value
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| bad("an integer in the i32 range"))?,
        ),
        "int64" => DataType::Int64(
            value
                .as_i64()
                .ok_or_else(|| bad("an integer in the i64 range"))?,
        ),
        "uint32" => DataType::Uint32(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("an integer in the u32 range"))?,
        ),
        "uint64" => DataType::Uint64(
            value
                .as_u64()
                .ok_or_else(|| bad("an integer in the u64 range"))?,
        ),
        // Narrowing to f32 is what `float` means.
        #[allow(clippy::cast_possible_truncation)]
        "float" => DataType::Float(value.as_f64().ok_or_else(|| bad("a number"))? as f32),
        "double" => DataType::Double(value.as_f64().ok_or_else(|| bad("a number"))?),
        "str" | "date" | "time" | "timestamp" => {
            let Value::String(text) = value else {
                return Err(bad("a string"));
            };
            match ty.as_str() {
                "str" => DataType::Str(text),
                "date" => DataType::Date(text),
                "time" => DataType::Time(text),
                _ => DataType::Timestamp(text),
            }
        }
        "binary" => {
            let bytes = value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect::<Option<Vec<u8>>>()
                })
                .ok_or_else(|| bad("an array of byte values 0-255"))?;
            DataType::Binary(bytes)
        }
        _ => return Err(format!("unknown type `{ty}` (expected one of {TYPES})")),
    };
    Ok(data)
}

/// `{"column": {"type": value}, ...}` in select-list order (a repeated column name keeps
/// the last value).
fn row_to_json(row: Row) -> Value {
    let mut obj = Map::new();
    for column in row.columns {
        obj.insert(column.name, value_to_json(column.value));
    }
    Value::Object(obj)
}

/// `{"type": value}`; the inverse of `parse_param`. NaN and infinities, which JSON cannot
/// hold, become strings.
fn value_to_json(value: DataType) -> Value {
    let (ty, value) = match value {
        DataType::Null => ("null", Value::Null),
        DataType::Boolean(b) => ("boolean", Value::Bool(b)),
        DataType::Int32(n) => ("int32", n.into()),
        DataType::Int64(n) => ("int64", n.into()),
        DataType::Uint32(n) => ("uint32", n.into()),
        DataType::Uint64(n) => ("uint64", n.into()),
        // Through the shortest decimal text of the f32, so 0.1f32 reads back as 0.1.
        DataType::Float(f) => (
            "float",
            float_json(f.to_string().parse().unwrap_or(f64::NAN)),
        ),
        DataType::Double(f) => ("double", float_json(f)),
        DataType::Str(s) => ("str", Value::String(s)),
        DataType::Date(s) => ("date", Value::String(s)),
        DataType::Time(s) => ("time", Value::String(s)),
        DataType::Timestamp(s) => ("timestamp", Value::String(s)),
        DataType::Binary(bytes) => ("binary", bytes.into()),
    };
    let mut obj = Map::new();
    obj.insert(ty.to_string(), value);
    Value::Object(obj)
}

fn float_json(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// Reads the whole request body (at most `MAX_BODY` bytes).
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "request body already consumed".to_string())?;
    let mut buf = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| "request body stream unavailable".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() > MAX_BODY {
                        return Err(format!("request body is larger than {MAX_BODY} bytes"));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(format!(
                        "reading the request body failed: {}",
                        err.to_debug_string()
                    ));
                }
            }
        }
        // `stream` is a child of `body` and must be dropped before `finish`.
    }
    drop(IncomingBody::finish(body));
    Ok(buf)
}

/// Sends `body` as an `application/json` response with a known length.
fn respond(response_out: ResponseOutparam, status: u16, body: &Value) {
    let mut text = body.to_string();
    text.push('\n');
    let bytes = text.as_bytes();

    let headers = Fields::new();
    // Cannot fail: the names and values are valid and not forbidden.
    let _ = headers.append("content-type", b"application/json");
    let _ = headers.append("content-length", bytes.len().to_string().as_bytes());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    {
        let Ok(stream) = out_body.write() else { return };
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // Client went away; no `finish` tells the host the body is incomplete.
                return;
            }
        }
        // `stream` is a child of `out_body` and must be dropped before `finish`.
    }
    let _ = OutgoingBody::finish(out_body, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_with_every_parameter_type() {
        let body = br#"{"connection":"db2","statement":"SELECT ?","params":[
            {"null":null},{"boolean":true},{"int32":-5},{"int64":9007199254740993},
            {"uint32":4294967295},{"uint64":18446744073709551615},{"float":0.5},{"double":-2.25},
            {"str":"'; DROP TABLE t; --"},{"date":"2024-02-29"},{"time":"12:34:56"},
            {"timestamp":"2024-02-29 12:34:56.5"},{"binary":[0,1,255]}]}"#;
        let req = parse_request(body).expect("valid request");
        assert_eq!(req.connection, "db2");
        assert_eq!(req.statement, "SELECT ?");
        let p = &req.params;
        assert_eq!(p.len(), 13);
        assert!(matches!(p[0], DataType::Null));
        assert!(matches!(p[1], DataType::Boolean(true)));
        assert!(matches!(p[2], DataType::Int32(-5)));
        assert!(matches!(p[3], DataType::Int64(9_007_199_254_740_993)));
        assert!(matches!(p[4], DataType::Uint32(u32::MAX)));
        assert!(matches!(p[5], DataType::Uint64(u64::MAX)));
        assert!(matches!(p[6], DataType::Float(f) if f == 0.5));
        assert!(matches!(p[7], DataType::Double(f) if f == -2.25));
        assert!(matches!(&p[8], DataType::Str(s) if s == "'; DROP TABLE t; --"));
        assert!(matches!(&p[9], DataType::Date(s) if s == "2024-02-29"));
        assert!(matches!(&p[10], DataType::Time(s) if s == "12:34:56"));
        assert!(matches!(&p[11], DataType::Timestamp(s) if s == "2024-02-29 12:34:56.5"));
        assert!(matches!(&p[12], DataType::Binary(b) if b == &[0, 1, 255]));
    }

    #[test]
    fn connection_and_params_are_optional() {
        let req = parse_request(br#"{"statement":"SELECT 1"}"#).expect("valid request");
        assert_eq!(req.connection, "default");
        assert!(req.params.is_empty());
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (br#"{"params":[]}"#, "missing `statement`"),
            (br#"{"statement":1}"#, "`statement` must be a string"),
            (
                br#"{"statement":"x","params":[{"int32":3000000000}]}"#,
                "params[0]",
            ),
            (
                br#"{"statement":"x","params":[{"nope":1}]}"#,
                "unknown type `nope`",
            ),
            (
                br#"{"statement":"x","params":[{"str":"a","int64":1}]}"#,
                "exactly one key",
            ),
            (br#"{"statement":"x","extra":1}"#, "unknown field `extra`"),
        ];
        for (body, want) in cases {
            let Err(msg) = parse_request(body) else {
                panic!("{} should be refused", String::from_utf8_lossy(body));
            };
            assert!(msg.contains(want), "{msg:?} should mention {want:?}");
        }
    }

    #[test]
    fn rows_are_objects_of_typed_values_in_select_order() {
        let row = Row {
            columns: vec![
                bindings::wasi::sql::types::Column {
                    name: "id".into(),
                    value: DataType::Int64(1),
                },
                bindings::wasi::sql::types::Column {
                    name: "name".into(),
                    value: DataType::Str("x".into()),
                },
                bindings::wasi::sql::types::Column {
                    name: "ratio".into(),
                    value: DataType::Float(0.1),
                },
                bindings::wasi::sql::types::Column {
                    name: "gone".into(),
                    value: DataType::Null,
                },
                bindings::wasi::sql::types::Column {
                    name: "raw".into(),
                    value: DataType::Binary(vec![7, 8]),
                },
            ],
        };
        assert_eq!(
            row_to_json(row).to_string(),
            r#"{"id":{"int64":1},"name":{"str":"x"},"ratio":{"float":0.1},"gone":{"null":null},"raw":{"binary":[7,8]}}"#
        );
    }

    #[test]
    fn sql_errors_keep_their_wit_case_name() {
        let (kind, message) = sql_error(SqlError::ConstraintViolation("dup".into()));
        assert_eq!((kind, message.as_str()), ("constraint-violation", "dup"));
        let (kind, _) = sql_error(SqlError::NoSuchConnection(String::new()));
        assert_eq!(kind, "no-such-connection");
    }
}
