//! Checks a JSON value against a schema of an OpenAPI 3.1 document: the
//! subset our generator emits (`$ref`, `type` with `null`, `properties`,
//! `required`, `items`, `additionalProperties`, `enum`, `oneOf`/`anyOf`/
//! `allOf`, `minimum`). Stricter than JSON Schema on one point, to catch
//! drift: an object may not carry a property its schema does not name
//! unless the schema allows additional properties.
#![allow(dead_code)]

use serde_json::Value;

/// `Ok` if `value` fits `schema`; otherwise where and why it does not.
pub fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unsupported $ref {r}"))?;
        let target = doc
            .pointer(&format!("/components/schemas/{name}"))
            .ok_or_else(|| format!("{at}: dangling $ref {r}"))?;
        return check(doc, target, value, at);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array)
            && !any.iter().any(|s| check(doc, s, value, at).is_ok())
        {
            return Err(format!("{at}: {value} fits none of {key}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        // No type given: any type, but properties and items still apply.
        _ => vec!["null", "boolean", "number", "string", "array", "object"],
    };
    let fits = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.iter().any(|t| fits(t)) {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        return Err(format!("{at}: {n} is below the minimum {min}"));
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: required property {name} missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (name, v) in object {
            let place = format!("{at}.{name}");
            match (properties.and_then(|p| p.get(name)), extra) {
                (Some(s), _) => check(doc, s, v, &place)?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(s)) if s.is_object() => check(doc, s, v, &place)?,
                (None, _) => return Err(format!("{place}: not in the schema")),
            }
        }
    }
    Ok(())
}
