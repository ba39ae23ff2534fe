//! Component-model values on the wire: [`Val`] to MessagePack and back, guided by WIT types.
//!
//! A call across the lattice carries its arguments and results as MessagePack values (see
//! `trellis_protocol::rpc`). Encoding needs no types (a `Val` carries its field and case
//! names); decoding is driven by the type the receiving function expects, which makes it
//! strict (an out-of-range integer, a missing field or an unknown case is an error naming the
//! path to the bad value) and lets lattice clients send plain JSON-like values: `5` becomes a
//! `u32` where a `u32` is expected, `{"name": "x"}` a record, `"red"` an enum case.
//!
//! | WIT | MessagePack |
//! |---|---|
//! | bool, integers, floats, string | the same |
//! | char | a one-character string |
//! | `list<u8>` | binary (an array of integers is accepted too) |
//! | other lists, tuples, fixed-length lists | arrays |
//! | record | map from field name to value |
//! | variant | `{case: payload}` (`nil` payload for a case without one); a bare string for a case without payload is accepted |
//! | enum | the case name |
//! | option | `nil` or the value; `[value]` when the payload is itself an option |
//! | result | `{"ok": v}` or `{"err": v}` |
//! | flags | array of the names set |
//! | map | array of `[key, value]` pairs |
//!
//! Resources, futures and streams cannot cross the lattice: they are refused by name.

use rmpv::Value;
use wasmtime::component::{Type, Val};

/// Why a value could not be converted; `path` says where (e.g. `arg 0.items[3].name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {reason}")]
pub struct ValueError {
    pub path: String,
    pub reason: String,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError {
        path: path.to_string(),
        reason: reason.into(),
    })
}

/// Encodes a value for the wire.
pub fn encode(val: &Val, path: &str) -> Result<Value, ValueError> {
    Ok(match val {
        Val::Bool(b) => Value::Boolean(*b),
        Val::S8(v) => Value::from(*v),
        Val::U8(v) => Value::from(*v),
        Val::S16(v) => Value::from(*v),
        Val::U16(v) => Value::from(*v),
        Val::S32(v) => Value::from(*v),
        Val::U32(v) => Value::from(*v),
        Val::S64(v) => Value::from(*v),
        Val::U64(v) => Value::from(*v),
        Val::Float32(v) => Value::F32(*v),
        Val::Float64(v) => Value::F64(*v),
        Val::Char(c) => Value::from(c.to_string()),
        Val::String(s) => Value::from(s.as_str()),
        Val::List(items) | Val::FixedLengthList(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|v| match v {
                    Val::U8(b) => Some(*b),
                    _ => None,
                })
                .collect();
            match bytes {
                Some(bytes) if !items.is_empty() => Value::Binary(bytes),
                _ => Value::Array(encode_all(items, path)?),
            }
        }
        Val::Tuple(items) => Value::Array(encode_all(items, path)?),
        Val::Map(pairs) => Value::Array(
            pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let at = format!("{path}[{i}]");
                    Ok(Value::Array(vec![encode(k, &at)?, encode(v, &at)?]))
                })
                .collect::<Result<_, _>>()?,
        ),
        Val::Record(fields) => Value::Map(
            fields
                .iter()
                .map(|(name, v)| {
                    Ok((
                        Value::from(name.as_str()),
                        encode(v, &format!("{path}.{name}"))?,
                    ))
                })
                .collect::<Result<_, _>>()?,
        ),
        Val::Variant(case, payload) => {
            let payload = match payload {
                Some(v) => encode(v, &format!("{path}.{case}"))?,
                None => Value::Nil,
            };
            Value::Map(vec![(Value::from(case.as_str()), payload)])
        }
        Val::Enum(case) => Value::from(case.as_str()),
        Val::Option(None) => Value::Nil,
        Val::Option(Some(v)) => match v.as_ref() {
            Val::Option(_) => Value::Array(vec![encode(v, path)?]),
            other => encode(other, path)?,
        },
        Val::Result(result) => {
            let (case, payload) = match result {
                Ok(v) => ("ok", v),
                Err(v) => ("err", v),
            };
            let payload = match payload {
                Some(v) => encode(v, &format!("{path}.{case}"))?,
                None => Value::Nil,
            };
            Value::Map(vec![(Value::from(case), payload)])
        }
        Val::Flags(names) => Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            return err(
                path,
                "resources, futures and streams cannot be passed across the lattice",
            );
        }
    })
}

fn encode_all(items: &[Val], path: &str) -> Result<Vec<Value>, ValueError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| encode(v, &format!("{path}[{i}]")))
        .collect()
}

/// Decodes a wire value as type `ty`.
pub fn decode(value: &Value, ty: &Type, path: &str) -> Result<Val, ValueError> {
    macro_rules! int {
        ($variant:ident, $t:ty) => {{
            let n = match value {
                Value::Integer(n) => n
                    .as_i64()
                    .and_then(|n| <$t>::try_from(n).ok())
                    .or_else(|| n.as_u64().and_then(|n| <$t>::try_from(n).ok())),
                _ => None,
            };
            match n {
                Some(n) => Val::$variant(n),
                None => {
                    return err(
                        path,
                        format!("expected {}, found {}", stringify!($t), describe(value)),
                    );
                }
            }
        }};
    }
    Ok(match ty {
        Type::Bool => match value {
            Value::Boolean(b) => Val::Bool(*b),
            _ => return err(path, format!("expected bool, found {}", describe(value))),
        },
        Type::S8 => int!(S8, i8),
        Type::U8 => int!(U8, u8),
        Type::S16 => int!(S16, i16),
        Type::U16 => int!(U16, u16),
        Type::S32 => int!(S32, i32),
        Type::U32 => int!(U32, u32),
        Type::S64 => int!(S64, i64),
        Type::U64 => int!(U64, u64),
        Type::Float32 => Val::Float32(float(value, path)? as f32),
        Type::Float64 => Val::Float64(float(value, path)?),
        Type::Char => {
            let s = string(value, path)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return err(path, format!("expected one character, found {s:?}")),
            }
        }
        Type::String => Val::String(string(value, path)?.to_string()),
        Type::List(list) => {
            let item = list.ty();
            match value {
                Value::Binary(bytes) if matches!(item, Type::U8) => {
                    Val::List(bytes.iter().map(|b| Val::U8(*b)).collect())
                }
                _ => Val::List(decode_items(array(value, path)?, &item, path)?),
            }
        }
        Type::FixedLengthList(list) => {
            let items = match value {
                Value::Binary(bytes) => bytes.iter().map(|b| Value::from(*b)).collect(),
                _ => array(value, path)?.to_vec(),
            };
            let expected = usize::try_from(list.len()).unwrap_or(usize::MAX);
            if items.len() != expected {
                return err(
                    path,
                    format!("expected {expected} items, found {}", items.len()),
                );
            }
            Val::FixedLengthList(decode_items(&items, &list.ty(), path)?)
        }
        Type::Tuple(tuple) => {
            let items = array(value, path)?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return err(
                    path,
                    format!(
                        "expected a {}-tuple, found {} items",
                        types.len(),
                        items.len()
                    ),
                );
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (v, t))| decode(v, t, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(map) => {
            let (key_ty, value_ty) = (map.key(), map.value());
            let pairs = array(value, path)?;
            let mut out = Vec::with_capacity(pairs.len());
            for (i, pair) in pairs.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match array(pair, &at)? {
                    [k, v] => out.push((decode(k, &key_ty, &at)?, decode(v, &value_ty, &at)?)),
                    _ => return err(&at, "expected a [key, value] pair"),
                }
            }
            Val::Map(out)
        }
        Type::Record(record) => {
            let entries = map(value, path)?;
            let mut fields = Vec::new();
            for field in record.fields() {
                let at = format!("{path}.{}", field.name);
                let found = entries.iter().find(|(k, _)| k.as_str() == Some(field.name));
                let val = match (found, &field.ty) {
                    (Some((_, v)), ty) => decode(v, ty, &at)?,
                    (None, Type::Option(_)) => Val::Option(None),
                    (None, _) => return err(&at, "missing field"),
                };
                fields.push((field.name.to_string(), val));
            }
            if let Some((unknown, _)) = entries
                .iter()
                .find(|(k, _)| !record.fields().any(|f| k.as_str() == Some(f.name)))
            {
                return err(path, format!("unknown field {unknown}"));
            }
            Val::Record(fields)
        }
        Type::Variant(variant) => {
            let (case, payload) = tagged(value, path)?;
            let Some(found) = variant.cases().find(|c| c.name == case) else {
                let cases: Vec<&str> = variant.cases().map(|c| c.name).collect();
                return err(
                    path,
                    format!(
                        "unknown case `{case}` (expected one of {})",
                        cases.join(", ")
                    ),
                );
            };
            let payload = match (&found.ty, payload) {
                (Some(ty), Some(v)) => Some(Box::new(decode(v, ty, &format!("{path}.{case}"))?)),
                (Some(_), None) => return err(path, format!("case `{case}` needs a payload")),
                (None, None | Some(Value::Nil)) => None,
                (None, Some(_)) => return err(path, format!("case `{case}` has no payload")),
            };
            Val::Variant(case.to_string(), payload)
        }
        Type::Enum(cases) => {
            let case = string(value, path)?;
            if !cases.names().any(|n| n == case) {
                let names: Vec<&str> = cases.names().collect();
                return err(
                    path,
                    format!(
                        "unknown case `{case}` (expected one of {})",
                        names.join(", ")
                    ),
                );
            }
            Val::Enum(case.to_string())
        }
        Type::Option(option) => {
            let inner = option.ty();
            match (value, &inner) {
                (Value::Nil, _) => Val::Option(None),
                (_, Type::Option(_)) => match array(value, path)? {
                    [v] => Val::Option(Some(Box::new(decode(v, &inner, path)?))),
                    _ => return err(path, "expected nil or [value] for a nested option"),
                },
                _ => Val::Option(Some(Box::new(decode(value, &inner, path)?))),
            }
        }
        Type::Result(result) => {
            let (case, payload) = tagged(value, path)?;
            let ty = match case {
                "ok" => result.ok(),
                "err" => result.err(),
                _ => {
                    return err(
                        path,
                        format!("expected {{\"ok\": …}} or {{\"err\": …}}, found case `{case}`"),
                    );
                }
            };
            let at = format!("{path}.{case}");
            let payload = match (ty, payload) {
                (Some(ty), Some(v)) => Some(Box::new(decode(v, &ty, &at)?)),
                (Some(_), None) => return err(&at, "missing payload"),
                (None, None | Some(Value::Nil)) => None,
                (None, Some(_)) => return err(&at, "this result case has no payload"),
            };
            Val::Result(if case == "ok" {
                Ok(payload)
            } else {
                Err(payload)
            })
        }
        Type::Flags(flags) => {
            let mut set = Vec::new();
            for (i, item) in array(value, path)?.iter().enumerate() {
                let name = string(item, &format!("{path}[{i}]"))?;
                if !flags.names().any(|n| n == name) {
                    return err(path, format!("unknown flag `{name}`"));
                }
                set.push(name.to_string());
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return err(
                path,
                "resources, futures and streams cannot be passed across the lattice",
            );
        }
    })
}

/// Whether values of this type can cross the lattice (no resources, futures or streams).
pub fn is_portable(ty: &Type) -> bool {
    match ty {
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            false
        }
        Type::List(l) => is_portable(&l.ty()),
        Type::FixedLengthList(l) => is_portable(&l.ty()),
        Type::Map(m) => is_portable(&m.key()) && is_portable(&m.value()),
        Type::Record(r) => r.fields().all(|f| is_portable(&f.ty)),
        Type::Tuple(t) => t.types().all(|t| is_portable(&t)),
        Type::Variant(v) => v.cases().all(|c| c.ty.as_ref().is_none_or(is_portable)),
        Type::Option(o) => is_portable(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_none_or(is_portable) && r.err().as_ref().is_none_or(is_portable)
        }
        _ => true,
    }
}

fn decode_items(items: &[Value], ty: &Type, path: &str) -> Result<Vec<Val>, ValueError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| decode(v, ty, &format!("{path}[{i}]")))
        .collect()
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "a bool",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
    }
}

fn float(value: &Value, path: &str) -> Result<f64, ValueError> {
    match value {
        Value::F32(f) => Ok(f64::from(*f)),
        Value::F64(f) => Ok(*f),
        Value::Integer(n) => n.as_f64().ok_or_else(|| ValueError {
            path: path.into(),
            reason: "integer out of range".into(),
        }),
        _ => err(
            path,
            format!("expected a number, found {}", describe(value)),
        ),
    }
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, ValueError> {
    match value {
        Value::String(s) => match s.as_str() {
            Some(s) => Ok(s),
            None => err(path, "string is not valid UTF-8"),
        },
        _ => err(
            path,
            format!("expected a string, found {}", describe(value)),
        ),
    }
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], ValueError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => err(
            path,
            format!("expected an array, found {}", describe(value)),
        ),
    }
}

fn map<'a>(value: &'a Value, path: &str) -> Result<&'a [(Value, Value)], ValueError> {
    match value {
        Value::Map(entries) => Ok(entries),
        _ => err(path, format!("expected a map, found {}", describe(value))),
    }
}

/// `{case: payload}` or a bare `"case"`.
fn tagged<'a>(value: &'a Value, path: &str) -> Result<(&'a str, Option<&'a Value>), ValueError> {
    match value {
        Value::String(_) => Ok((string(value, path)?, None)),
        Value::Map(entries) if entries.len() == 1 => {
            let (k, v) = &entries[0];
            Ok((string(k, path)?, Some(v)))
        }
        _ => err(
            path,
            format!(
                "expected {{case: payload}} or a case name, found {}",
                describe(value)
            ),
        ),
    }
}
