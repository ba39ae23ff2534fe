//! The API's data: an order, and the validation of what clients send (JSON bodies and the
//! list's query string). Pure functions, no I/O, so they are unit-tested on the build machine.

use serde_json::{Map, Value, json};

/// The fields a client sets, in the order the API lists them.
pub const FIELDS: [&str; 4] = ["customer", "item", "quantity", "price_cents"];
/// Fields the server sets; a body that gives them is refused with a message saying so.
const SERVER_FIELDS: [&str; 2] = ["id", "created_at"];
/// Longest `customer` / `item`, in characters (the columns are `VARCHAR(200)`).
pub const MAX_TEXT: usize = 200;
/// Largest `quantity` (the column is a 32-bit `INT`).
pub const MAX_QUANTITY: i64 = i32::MAX as i64;
/// Largest `price_cents` (the column is a `BIGINT`).
pub const MAX_PRICE_CENTS: i64 = i64::MAX;
/// `GET /orders` returns this many orders when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub customer: String,
    pub item: String,
    pub quantity: i64,
    pub price_cents: i64,
    /// ISO 8601 in UTC, e.g. `2025-01-31T12:00:00Z`.
    pub created_at: String,
}

impl Order {
    /// The JSON the API answers with.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "customer": self.customer,
            "item": self.item,
            "quantity": self.quantity,
            "price_cents": self.price_cents,
            "created_at": self.created_at,
        })
    }
}

/// What `POST /orders` creates: every field, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer: String,
    pub item: String,
    pub quantity: i32,
    pub price_cents: i64,
}

/// What `PUT /orders/{id}` changes: the fields given (at least one), validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderChanges {
    pub customer: Option<String>,
    pub item: Option<String>,
    pub quantity: Option<i32>,
    pub price_cents: Option<i64>,
}

impl OrderChanges {
    fn is_empty(&self) -> bool {
        self.customer.is_none()
            && self.item.is_none()
            && self.quantity.is_none()
            && self.price_cents.is_none()
    }
}

/// Parses and validates a `POST /orders` body. The error says everything that is wrong
/// (missing fields, wrong types, out-of-range values, unknown fields), separated by `; `.
pub fn parse_new(body: &[u8]) -> Result<NewOrder, String> {
    let object = parse_object(body)?;
    let mut problems = Vec::new();
    let changes = read_fields(&object, &mut problems);
    let missing: Vec<String> = FIELDS
        .iter()
        .filter(|f| !object.contains_key(**f))
        .map(|f| format!("`{f}`"))
        .collect();
    if !missing.is_empty() {
        let s = if missing.len() == 1 { "" } else { "s" };
        problems.insert(0, format!("missing field{s} {}", missing.join(", ")));
    }
    match changes {
        OrderChanges {
            customer: Some(customer),
            item: Some(item),
            quantity: Some(quantity),
            price_cents: Some(price_cents),
        } if problems.is_empty() => Ok(NewOrder {
            customer,
            item,
            quantity,
            price_cents,
        }),
        _ => Err(problems.join("; ")),
    }
}

/// Parses and validates a `PUT /orders/{id}` body: any non-empty subset of the fields.
pub fn parse_changes(body: &[u8]) -> Result<OrderChanges, String> {
    let object = parse_object(body)?;
    let mut problems = Vec::new();
    let changes = read_fields(&object, &mut problems);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if changes.is_empty() {
        return Err(format!(
            "nothing to update: give at least one of {}",
            field_list()
        ));
    }
    Ok(changes)
}

/// The body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "the body is empty; send a JSON object with {}",
            field_list()
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(format!(
            "the body must be a JSON object with {}, got {}",
            field_list(),
            describe(&other)
        )),
    }
}

/// Reads the fields present in `object`, recording each problem (unknown fields included).
fn read_fields(object: &Map<String, Value>, problems: &mut Vec<String>) -> OrderChanges {
    for key in object.keys() {
        if SERVER_FIELDS.contains(&key.as_str()) {
            problems.push(format!("`{key}` is set by the server and cannot be given"));
        } else if !FIELDS.contains(&key.as_str()) {
            problems.push(format!(
                "unknown field `{key}` (the fields are {})",
                field_list()
            ));
        }
    }
    OrderChanges {
        customer: object
            .get("customer")
            .and_then(|v| keep(problems, text("customer", v))),
        item: object
            .get("item")
            .and_then(|v| keep(problems, text("item", v))),
        quantity: object
            .get("quantity")
            .and_then(|v| keep(problems, integer("quantity", v, 1, MAX_QUANTITY)))
            // In range by the check above.
            .and_then(|n| i32::try_from(n).ok()),
        price_cents: object
            .get("price_cents")
            .and_then(|v| keep(problems, integer("price_cents", v, 0, MAX_PRICE_CENTS))),
    }
}

/// The value, or `None` with the problem recorded.
fn keep<T>(problems: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// A non-blank string of at most [`MAX_TEXT`] characters, trimmed.
fn text(name: &str, value: &Value) -> Result<String, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "`{name}` must be a string, got {}",
            describe(value)
        ));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("`{name}` must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT {
        return Err(format!(
            "`{name}` must be at most {MAX_TEXT} characters, got {chars}"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("`{name}` must not contain control characters"));
    }
    Ok(text.to_string())
}

/// A JSON integer (not `2.0`, not `"2"`) in `min..=max`.
fn integer(name: &str, value: &Value, min: i64, max: i64) -> Result<i64, String> {
    let Value::Number(number) = value else {
        return Err(format!(
            "`{name}` must be an integer, got {}",
            describe(value)
        ));
    };
    let out_of_range = |shown: &dyn std::fmt::Display, low: bool| {
        if low && min == 1 {
            format!("`{name}` must be greater than 0, got {shown}")
        } else if low {
            format!("`{name}` must be {min} or more, got {shown}")
        } else {
            format!("`{name}` must be at most {max}, got {shown}")
        }
    };
    match (number.as_i64(), number.as_u64()) {
        (Some(n), _) if n < min => Err(out_of_range(&n, true)),
        (Some(n), _) if n > max => Err(out_of_range(&n, false)),
        (Some(n), _) => Ok(n),
        // Positive, beyond i64.
        (None, Some(_)) => Err(out_of_range(number, false)),
        // A fraction or an exponent form.
        (None, None) => {
            let whole = number.as_f64().is_some_and(|f| f.fract() == 0.0);
            if whole && number.as_f64().is_some_and(|f| f < 0.0) {
                Err(out_of_range(number, true))
            } else {
                Err(format!("`{name}` must be an integer, got {number}"))
            }
        }
    }
}

/// How a JSON value is named in messages: its kind, and the value when it is short.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {value}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn field_list() -> String {
    FIELDS
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /orders`' paging: `?limit=N&offset=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// Parses the query string of `GET /orders` (`limit` 1 to [`MAX_LIMIT`], default
/// [`DEFAULT_LIMIT`]; `offset` 0 or more, default 0; an empty value means the default).
pub fn parse_page(query: Option<&str>) -> Result<Page, String> {
    let mut page = Page {
        limit: DEFAULT_LIMIT,
        offset: 0,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_empty() && (key == "limit" || key == "offset") {
            continue;
        }
        let number = |min: i64, max: i64| {
            value
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    format!("`{key}` must be an integer from {min} to {max}, got `{value}`")
                })
        };
        match key {
            "limit" => page.limit = number(1, MAX_LIMIT)?,
            "offset" => page.offset = number(0, i64::MAX)?,
            _ => {
                return Err(format!(
                    "unknown query parameter `{key}` (use `limit` and `offset`)"
                ));
            }
        }
    }
    Ok(page)
}

/// An order id in a path: a positive integer.
pub fn parse_id(segment: &str) -> Result<i64, String> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && segment.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            let shown: String = segment.chars().take(40).collect();
            format!("`{shown}` is not an order id (a positive integer)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_order_is_read_and_trimmed() {
        let order =
            parse_new(br#"{"customer":" Ada ","item":"tea","quantity":2,"price_cents":450}"#)
                .unwrap();
        assert_eq!(
            order,
            NewOrder {
                customer: "Ada".into(),
                item: "tea".into(),
                quantity: 2,
                price_cents: 450,
            }
        );
        let free = parse_new(br#"{"customer":"a","item":"b","quantity":1,"price_cents":0}"#);
        assert!(free.is_ok(), "{free:?}");
    }

    #[test]
    fn every_problem_is_named() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"", &["body is empty"]),
            (b"{nope", &["not valid JSON"]),
            (b"[1,2]", &["must be a JSON object", "an array"]),
            (
                br#"{"customer":"a"}"#,
                &["missing fields `item`, `quantity`, `price_cents`"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":"2","price_cents":1}"#,
                &["`quantity` must be an integer, got the string \"2\""],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":0,"price_cents":1}"#,
                &["`quantity` must be greater than 0, got 0"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":-3,"price_cents":1}"#,
                &["`quantity` must be greater than 0, got -3"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":2.5,"price_cents":1}"#,
                &["`quantity` must be an integer, got 2.5"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":2147483648,"price_cents":1}"#,
                &["`quantity` must be at most 2147483647"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":1,"price_cents":-1}"#,
                &["`price_cents` must be 0 or more, got -1"],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":1,"price_cents":18446744073709551615}"#,
                &["`price_cents` must be at most"],
            ),
            (
                br#"{"customer":"  ","item":null,"quantity":1,"price_cents":1}"#,
                &[
                    "`customer` must not be empty",
                    "`item` must be a string, got null",
                ],
            ),
            (
                br#"{"customer":"a","item":"b","quantity":1,"price_cents":1,"colour":"red"}"#,
                &["unknown field `colour`"],
            ),
            (
                br#"{"id":4,"customer":"a","item":"b","quantity":1,"price_cents":1}"#,
                &["`id` is set by the server"],
            ),
        ];
        for (body, wants) in cases {
            let err = parse_new(body).expect_err(&String::from_utf8_lossy(body));
            for want in *wants {
                assert!(err.contains(want), "{err:?} should mention {want:?}");
            }
        }
        let long = format!(
            r#"{{"customer":"{}","item":"b","quantity":1,"price_cents":1}}"#,
            "x".repeat(201)
        );
        let err = parse_new(long.as_bytes()).unwrap_err();
        assert!(err.contains("at most 200 characters, got 201"), "{err}");
    }

    #[test]
    fn changes_are_any_non_empty_subset() {
        assert_eq!(
            parse_changes(br#"{"quantity":5}"#).unwrap(),
            OrderChanges {
                quantity: Some(5),
                ..Default::default()
            }
        );
        let err = parse_changes(b"{}").unwrap_err();
        assert!(err.contains("nothing to update"), "{err}");
        let err = parse_changes(br#"{"quantity":0,"extra":1}"#).unwrap_err();
        assert!(
            err.contains("greater than 0") && err.contains("`extra`"),
            "{err}"
        );
    }

    #[test]
    fn pages_and_ids() {
        assert_eq!(
            parse_page(None).unwrap(),
            Page {
                limit: DEFAULT_LIMIT,
                offset: 0
            }
        );
        assert_eq!(
            parse_page(Some("limit=5&offset=10")).unwrap(),
            Page {
                limit: 5,
                offset: 10
            }
        );
        assert_eq!(
            parse_page(Some("limit=&offset=")).unwrap().limit,
            DEFAULT_LIMIT
        );
        for bad in ["limit=0", "limit=1001", "limit=x", "offset=-1", "sort=id"] {
            assert!(parse_page(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_id("42"), Ok(42));
        for bad in ["0", "-1", "+1", "abc", "1.0", "99999999999999999999", ""] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
