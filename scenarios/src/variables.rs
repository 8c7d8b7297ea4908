//! Variables, `${..}` interpolation, and dot paths into JSON documents.
//!
//! A variable holds any JSON value. `${name}` is replaced by the value (a
//! string as is, anything else as compact JSON); `${name.path}` reaches into
//! it. A string that is exactly one `${..}` becomes the value itself, so
//! `gte = "${before}"` compares numbers with numbers. `$${` writes a literal
//! `${`; a `$` not followed by `{` (GraphQL's `$input`) is left alone.

use std::collections::BTreeMap;

use serde_json::Value;

/// A `${..}` that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// No variable of that name is set.
    #[error("unknown variable ${{{name}}} (known: {known})")]
    Unknown {
        /// The variable.
        name: String,
        /// The names that are set, comma-separated.
        known: String,
    },
    /// The variable is set but the path does not lead anywhere.
    #[error("${{{name}}}: no field {path:?} in {value}")]
    MissingField {
        /// The variable.
        name: String,
        /// The path after the variable name.
        path: String,
        /// The variable's value, abbreviated.
        value: String,
    },
    /// A `${` without its `}`.
    #[error("unclosed ${{ in {text:?}")]
    Unclosed {
        /// The text.
        text: String,
    },
}

/// The variables of one scenario run (or of one parallel iteration).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vars {
    values: BTreeMap<String, Value>,
}

impl Vars {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.values.insert(name.into(), value);
    }

    /// Unsets a variable.
    pub fn remove(&mut self, name: &str) {
        self.values.remove(name);
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Every variable as one JSON object (what `check` steps look at).
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.clone().into_iter().collect())
    }

    /// Replaces every `${..}` in `text`; the result is always a string.
    pub fn interpolate_str(&self, text: &str) -> Result<String, InterpolationError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at..];
            if let Some(literal) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = literal;
            } else if let Some(inner) = after.strip_prefix("${") {
                let end = inner
                    .find('}')
                    .ok_or_else(|| InterpolationError::Unclosed {
                        text: text.to_owned(),
                    })?;
                match self.resolve(&inner[..end])? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                }
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Interpolates every string inside `value`; a string that is exactly one
    /// `${..}` takes the variable's JSON value and type.
    pub fn interpolate(&self, value: &Value) -> Result<Value, InterpolationError> {
        Ok(match value {
            Value::String(text) => match whole_reference(text) {
                Some(reference) => self.resolve(reference)?,
                None => Value::String(self.interpolate_str(text)?),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.interpolate(item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((self.interpolate_str(k)?, self.interpolate(v)?)))
                    .collect::<Result<_, InterpolationError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn resolve(&self, reference: &str) -> Result<Value, InterpolationError> {
        let reference = reference.trim();
        let (name, path) = reference.split_once('.').unwrap_or((reference, ""));
        let value = self
            .values
            .get(name)
            .ok_or_else(|| InterpolationError::Unknown {
                name: name.to_owned(),
                known: self.values.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        lookup(value, path).ok_or_else(|| InterpolationError::MissingField {
            name: name.to_owned(),
            path: path.to_owned(),
            value: abbreviate(value),
        })
    }

    /// Sets each of `raw` (a file's `[vars]`), interpolating them against the
    /// variables already set and each other, whatever their order.
    pub fn define_all(&mut self, raw: &BTreeMap<String, Value>) -> Result<(), InterpolationError> {
        let mut pending: Vec<(&String, &Value)> = raw.iter().collect();
        loop {
            let mut still_pending = Vec::new();
            let mut last_error = None;
            for (name, value) in pending.iter().copied() {
                match self.interpolate(value) {
                    Ok(resolved) => self.set(name.clone(), resolved),
                    Err(error) => {
                        last_error = Some(error);
                        still_pending.push((name, value));
                    }
                }
            }
            match last_error {
                None => return Ok(()),
                Some(error) if still_pending.len() == pending.len() => return Err(error),
                Some(_) => pending = still_pending,
            }
        }
    }
}

/// The variable names `text` refers to with `${..}` (without their paths).
pub fn references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at..];
        if let Some(literal) = after.strip_prefix("$${") {
            rest = literal;
        } else if let Some(inner) = after.strip_prefix("${") {
            let Some(end) = inner.find('}') else { break };
            let reference = inner[..end].trim();
            let name = reference.split_once('.').map_or(reference, |(n, _)| n);
            names.push(name.to_owned());
            rest = &inner[end + 1..];
        } else {
            rest = &after[1..];
        }
    }
    names
}

fn whole_reference(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}') && !inner.contains("${")).then_some(inner)
}

/// Follows a dot path into `doc`: object keys, array indices (`-1` is the
/// last element), and `*` to map the rest of the path over an array. The
/// empty path is the document itself. `None` when the path leads nowhere.
pub fn lookup(doc: &Value, path: &str) -> Option<Value> {
    let segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').collect()
    };
    lookup_segments(doc, &segments)
}

fn lookup_segments(doc: &Value, segments: &[&str]) -> Option<Value> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(doc.clone());
    };
    match doc {
        Value::Array(items) if *first == "*" => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| lookup_segments(item, rest))
                .collect(),
        )),
        Value::Array(items) => {
            let index: i64 = first.parse().ok()?;
            let index = if index < 0 {
                i64::try_from(items.len()).ok()? + index
            } else {
                index
            };
            let item = items.get(usize::try_from(index).ok()?)?;
            lookup_segments(item, rest)
        }
        Value::Object(map) => lookup_segments(map.get(*first)?, rest),
        _ => None,
    }
}

/// Compact JSON, cut at 300 characters, for messages.
pub fn abbreviate(value: &Value) -> String {
    const MAX: usize = 300;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut vars = Vars::new();
        vars.set("run_id", json!("A1B2"));
        vars.set("count", json!(7));
        vars.set(
            "order",
            json!({"id": "o-1", "lines": [{"sku": "X"}, {"sku": "Y"}]}),
        );
        vars
    }

    #[test]
    fn references_inside_text_become_text() {
        let vars = vars();
        assert_eq!(vars.interpolate_str("MUG-${run_id}").unwrap(), "MUG-A1B2");
        assert_eq!(vars.interpolate_str("n=${count}").unwrap(), "n=7");
        assert_eq!(vars.interpolate_str("${order.lines.1.sku}").unwrap(), "Y");
        assert_eq!(vars.interpolate_str("${order.lines.-1.sku}").unwrap(), "Y");
    }

    #[test]
    fn graphql_variables_and_escaped_dollars_are_left_alone() {
        let vars = vars();
        assert_eq!(
            vars.interpolate_str("mutation($input: X!) { a(input: $input) } $${x}")
                .unwrap(),
            "mutation($input: X!) { a(input: $input) } ${x}"
        );
    }

    #[test]
    fn a_whole_reference_keeps_its_json_type() {
        let vars = vars();
        let value = vars
            .interpolate(&json!({"n": "${count}", "s": "${count}!", "l": ["${order.lines}"]}))
            .unwrap();
        assert_eq!(
            value,
            json!({"n": 7, "s": "7!", "l": [[{"sku": "X"}, {"sku": "Y"}]]})
        );
    }

    #[test]
    fn unknown_variables_and_missing_fields_are_named() {
        let vars = vars();
        let err = vars.interpolate_str("${nope}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown variable ${nope} (known: count, order, run_id)"
        );
        let err = vars.interpolate_str("${order.total}").unwrap_err();
        assert!(
            err.to_string().starts_with("${order}: no field \"total\""),
            "{err}"
        );
        assert!(matches!(
            vars.interpolate_str("${run_id"),
            Err(InterpolationError::Unclosed { .. })
        ));
    }

    #[test]
    fn file_variables_may_refer_to_each_other_in_any_order() {
        let mut vars = vars();
        let raw: BTreeMap<String, Value> = [
            ("a".to_owned(), json!("${b}-a")),
            ("b".to_owned(), json!("B-${run_id}")),
        ]
        .into_iter()
        .collect();
        vars.define_all(&raw).unwrap();
        assert_eq!(vars.get("a"), Some(&json!("B-A1B2-a")));
        let cyclic: BTreeMap<String, Value> = [
            ("x".to_owned(), json!("${y}")),
            ("y".to_owned(), json!("${x}")),
        ]
        .into_iter()
        .collect();
        assert!(vars.define_all(&cyclic).is_err());
    }

    #[test]
    fn references_are_listed_without_paths_or_escapes() {
        assert_eq!(
            references("a ${x} $${y} ${z.w.0} $input"),
            vec!["x".to_owned(), "z".to_owned()]
        );
    }

    #[test]
    fn paths_map_over_arrays_with_a_star() {
        let doc = json!({"me": {"orders": [{"status": "A"}, {"status": "B"}, {}]}});
        assert_eq!(lookup(&doc, "me.orders.*.status"), Some(json!(["A", "B"])));
        assert_eq!(lookup(&doc, "me.orders.5"), None);
        assert_eq!(lookup(&doc, ""), Some(doc.clone()));
        assert_eq!(lookup(&doc, "me.nothing"), None);
    }
}
