//! Example: the `orders` microservice. A JSON API over HTTP and a small web page, storing
//! orders in SQL through `wasi:sql` (MariaDB through the `sql-mysql` provider; PostgreSQL
//! with config `dialect=postgres`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the web page (create, list, delete orders; plain JS, no external assets) |
//! | `POST /orders` `{"customer","item","quantity","price_cents"}` | `201` the created order, `location: /orders/{id}` |
//! | `GET /orders[?limit=100&offset=0]` | `200` a list of orders, by id (`limit` 1–1000) |
//! | `GET /orders/{id}` | `200` the order, or `404` |
//! | `PUT /orders/{id}` (or `PATCH`) with any of the four fields | `200` the updated order, or `404` |
//! | `DELETE /orders/{id}` | `204`, or `404` |
//!
//! An order is `{"id", "customer", "item", "quantity", "price_cents", "created_at"}`; `id`
//! is assigned by the database (auto-increment), `created_at` is ISO 8601 UTC. `customer`
//! and `item` are non-blank strings of at most 200 characters (trimmed), `quantity` an
//! integer > 0, `price_cents` an integer ≥ 0.
//!
//! Errors are JSON `{"error": "..."}` saying what is wrong: `400` for a body that is not JSON
//! or not a valid order (every problem named: missing fields, wrong types, out-of-range
//! values, unknown fields), a bad id or query; `404` for an unknown id or path; `405` for a
//! wrong method (with `allow`); `413` for a body over 64 KiB; `503` when the database is
//! unreachable or not linked, `500` for any other `wasi:sql` error, with its message. The
//! component never traps on them.
//!
//! The table is created on first use (see [`db`]); `wasi:config` keys `table`,
//! `connection` and `dialect` are optional.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package trellis:examples;

            world orders {
                import wasi:config/store@0.2.0-draft;
                import wasi:sql/types@0.2.0-draft;
                import wasi:sql/readwrite@0.2.0-draft;
                export wasi:http/incoming-handler@0.2.12;
            }
        "#,
        path: [
            "../../interfaces/wasi-http",
            "../../interfaces/wasi-sql",
            "../../interfaces/wasi-config",
        ],
        generate_all,
    });
}

mod db;
mod http;
mod order;

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{IncomingRequest, Method, ResponseOutparam};
use db::{DbError, Orders, Settings};
use http::{BodyError, Reply};
use serde_json::Value;

/// Request bodies larger than this get `413`.
const MAX_BODY: usize = 64 * 1024;
/// The web page served at `/`.
const INDEX_HTML: &str = include_str!("index.html");

struct OrdersApi;

bindings::export!(OrdersApi with_types_in bindings);

impl Guest for OrdersApi {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let reply = handle(&request);
        http::respond(response_out, reply);
    }
}

/// Which resource a path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Page,
    Collection,
    Item(&'a str),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match path {
        "" | "/" | "/index.html" => Route::Page,
        "/orders" => Route::Collection,
        _ => match path.strip_prefix("/orders/") {
            Some(id) if !id.contains('/') => Route::Item(id),
            _ => Route::NotFound,
        },
    }
}

const API: &str = "GET /, GET|POST /orders, GET|PUT|DELETE /orders/{id}";

fn handle(request: &IncomingRequest) -> Reply {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_with_query.as_str(), None),
    };
    let method = request.method();
    match route(path) {
        Route::Page => match method {
            Method::Get => Reply::html(INDEX_HTML),
            _ => not_allowed(path, "GET"),
        },
        Route::Collection => match method {
            Method::Get => list(query),
            Method::Post => create(request),
            _ => not_allowed(path, "GET, POST"),
        },
        Route::Item(segment) => {
            let allow = "GET, PUT, PATCH, DELETE";
            if !matches!(
                method,
                Method::Get | Method::Put | Method::Patch | Method::Delete
            ) {
                return not_allowed(path, allow);
            }
            let id = match order::parse_id(segment) {
                Ok(id) => id,
                Err(message) => return Reply::error(400, message),
            };
            match method {
                Method::Get => get(id),
                Method::Delete => delete(id),
                _ => update(request, id),
            }
        }
        Route::NotFound => Reply::error(404, format!("no such path `{path}`; the API is {API}")),
    }
}

fn not_allowed(path: &str, allow: &'static str) -> Reply {
    Reply::error(405, format!("method not allowed: `{path}` takes {allow}"))
        .with_header("allow", allow)
}

fn not_found(id: i64) -> Reply {
    Reply::error(404, format!("no order with id {id}"))
}

/// The orders table, or the reply that says why it cannot be reached.
fn orders() -> Result<Orders, Reply> {
    let settings = Settings::from_config().map_err(|message| Reply::error(500, message))?;
    Orders::open(settings).map_err(db_error)
}

fn db_error(error: DbError) -> Reply {
    match error {
        DbError::Unavailable(message) => Reply::error(503, message),
        DbError::Failed(message) => Reply::error(500, message),
    }
}

fn body(request: &IncomingRequest) -> Result<Vec<u8>, Reply> {
    http::read_body(request, MAX_BODY).map_err(|e| match e {
        BodyError::TooLarge(limit) => Reply::error(
            413,
            format!("the request body is larger than {limit} bytes"),
        ),
        BodyError::Broken(message) => Reply::error(400, message),
    })
}

/// Runs `op` on the table; its `Ok` value becomes the reply.
fn with_orders(op: impl FnOnce(&Orders) -> Result<Reply, DbError>) -> Reply {
    match orders() {
        Ok(orders) => op(&orders).unwrap_or_else(db_error),
        Err(reply) => reply,
    }
}

fn create(request: &IncomingRequest) -> Reply {
    let new = match body(request).and_then(|b| order::parse_new(&b).map_err(bad_request)) {
        Ok(new) => new,
        Err(reply) => return reply,
    };
    with_orders(|orders| {
        let created = orders.create(&new)?;
        Ok(Reply::json(201, &created.to_json())
            .with_header("location", format!("/orders/{}", created.id)))
    })
}

fn list(query: Option<&str>) -> Reply {
    let page = match order::parse_page(query) {
        Ok(page) => page,
        Err(message) => return Reply::error(400, message),
    };
    with_orders(|orders| {
        let list: Vec<Value> = orders.list(page)?.iter().map(|o| o.to_json()).collect();
        Ok(Reply::json(200, &Value::Array(list)))
    })
}

fn get(id: i64) -> Reply {
    with_orders(|orders| {
        Ok(match orders.get(id)? {
            Some(order) => Reply::json(200, &order.to_json()),
            None => not_found(id),
        })
    })
}

fn update(request: &IncomingRequest, id: i64) -> Reply {
    let changes = match body(request).and_then(|b| order::parse_changes(&b).map_err(bad_request)) {
        Ok(changes) => changes,
        Err(reply) => return reply,
    };
    with_orders(|orders| {
        Ok(match orders.update(id, &changes)? {
            Some(order) => Reply::json(200, &order.to_json()),
            None => not_found(id),
        })
    })
}

fn delete(id: i64) -> Reply {
    with_orders(|orders| {
        Ok(if orders.delete(id)? {
            Reply::empty(204)
        } else {
            not_found(id)
        })
    })
}

fn bad_request(message: String) -> Reply {
    Reply::error(400, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Route::Page);
        assert_eq!(route("/index.html"), Route::Page);
        assert_eq!(route("/orders"), Route::Collection);
        assert_eq!(route("/orders/"), Route::Collection);
        assert_eq!(route("/orders/12"), Route::Item("12"));
        assert_eq!(route("/orders/12/"), Route::Item("12"));
        assert_eq!(route("/orders/abc"), Route::Item("abc"));
        assert_eq!(route("/orders/1/2"), Route::NotFound);
        assert_eq!(route("/order"), Route::NotFound);
        assert_eq!(route("/ordersx"), Route::NotFound);
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(INDEX_HTML.contains("<form"));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }
}
