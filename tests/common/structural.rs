//! Validates a manifest against a CRD's structural OpenAPI schema the way the API server does
//! for the keywords our CRDs use, and refuses unknown fields (the server would prune them; a
//! typo in an example must fail instead). CEL rules are checked by the e2e suite and by kube's
//! client-side CEL evaluator in unit tests.

use serde_json::Value;

/// Every violation found, as `path: problem` lines.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check(schema, value, "", &mut problems);
    problems
}

fn check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            problems.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.push(format!("{path}: expected an integer or a string"));
        }
        return;
    }
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let type_ok = match expected {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        problems.push(format!(
            "{path}: expected {}, got {value}",
            expected.unwrap_or("?")
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {options:?}"));
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = required.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    problems.push(format!("{path}.{key}: required"));
                }
            }
            for (key, item) in map {
                let child = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    check(sub, item, &child, problems);
                } else if let Some(extra) =
                    schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    check(extra, item, &child, problems);
                } else if path.is_empty()
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    // Checked by the API server's own object schema.
                } else {
                    problems.push(format!("{child}: unknown field"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                problems.push(format!("{path}: more than {max} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{index}]"), problems);
                }
            }
        }
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|max| length > max)
            {
                problems.push(format!("{path}: longer than maxLength"));
            }
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|min| length < min)
            {
                problems.push(format!("{path}: shorter than minLength"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let regex = regex::Regex::new(pattern).expect("schema pattern compiles");
                if !regex.is_match(text) {
                    problems.push(format!("{path}: {text:?} does not match {pattern}"));
                }
            }
        }
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if schema
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|min| n < min)
            {
                problems.push(format!("{path}: below minimum"));
            }
            if schema
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|max| n > max)
            {
                problems.push(format!("{path}: above maximum"));
            }
        }
        _ => {}
    }
}
