//! Evaluating [`Expectation`]s against a step's result.

use serde_json::Value;

use crate::format::{Check, Expectation};
use crate::variables::{abbreviate, lookup, InterpolationError, Vars};

/// An expectation that does not hold: which field, what was expected, what was there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: expected {expected}, got {got}")]
pub struct ExpectationFailure {
    /// The path of the field.
    pub field: String,
    /// The check, as written (`equals "DELIVERED"`, `>= 10`, `count 10 where "CONFIRMED"`).
    pub expected: String,
    /// What the field held (compact JSON, abbreviated).
    pub got: String,
}

/// Checks one expectation against `doc`, interpolating its path and
/// expected values with `vars`. `Ok(None)` when it holds.
pub fn evaluate(
    expectation: &Expectation,
    doc: &Value,
    vars: &Vars,
) -> Result<Option<ExpectationFailure>, InterpolationError> {
    let path = vars.interpolate_str(&expectation.path)?;
    let filter = expectation
        .filter
        .as_ref()
        .map(|f| vars.interpolate(f))
        .transpose()?;
    let found = lookup(doc, &path);
    let found = match (&filter, found) {
        (Some(filter), Some(Value::Array(items))) => Some(Value::Array(
            items
                .into_iter()
                .filter(|item| matches(item, filter))
                .collect(),
        )),
        (_, found) => found,
    };
    let filter_note = filter
        .as_ref()
        .map(|f| format!(" where {}", abbreviate(f)))
        .unwrap_or_default();
    for check in &expectation.checks {
        let check = interpolate_check(check, vars)?;
        if !holds(&check, found.as_ref()) {
            return Ok(Some(ExpectationFailure {
                field: path,
                expected: format!("{}{filter_note}", describe(&check)),
                got: describe_found(&check, found.as_ref()),
            }));
        }
    }
    Ok(None)
}

/// Checks every expectation; the first that fails is returned.
pub fn evaluate_all(
    expectations: &[Expectation],
    doc: &Value,
    vars: &Vars,
) -> Result<Option<ExpectationFailure>, InterpolationError> {
    for expectation in expectations {
        if let Some(failure) = evaluate(expectation, doc, vars)? {
            return Ok(Some(failure));
        }
    }
    Ok(None)
}

fn interpolate_check(check: &Check, vars: &Vars) -> Result<Check, InterpolationError> {
    let i = |v: &Value| vars.interpolate(v);
    Ok(match check {
        Check::Equals(v) => Check::Equals(i(v)?),
        Check::NotEquals(v) => Check::NotEquals(i(v)?),
        Check::Contains(v) => Check::Contains(i(v)?),
        Check::NotContains(v) => Check::NotContains(i(v)?),
        Check::OneOf(vs) => Check::OneOf(vs.iter().map(i).collect::<Result<_, _>>()?),
        Check::Gte(v) => Check::Gte(i(v)?),
        Check::Gt(v) => Check::Gt(i(v)?),
        Check::Lte(v) => Check::Lte(i(v)?),
        Check::Lt(v) => Check::Lt(i(v)?),
        Check::Count(v) => Check::Count(i(v)?),
        Check::CountGte(v) => Check::CountGte(i(v)?),
        Check::CountLte(v) => Check::CountLte(i(v)?),
        Check::Exists(b) => Check::Exists(*b),
    })
}

fn holds(check: &Check, found: Option<&Value>) -> bool {
    if let Check::Exists(expected) = check {
        let exists = found.is_some_and(|v| !v.is_null());
        return exists == *expected;
    }
    let Some(found) = found else {
        return false;
    };
    let compare =
        |expected: &Value, ok: fn(f64, f64) -> bool| match (number(found), number(expected)) {
            (Some(a), Some(b)) => ok(a, b),
            _ => false,
        };
    let count = |expected: &Value, ok: fn(f64, f64) -> bool| match (found, number(expected)) {
        (Value::Array(items), Some(n)) => ok(items.len() as f64, n),
        _ => false,
    };
    match check {
        Check::Equals(expected) => equal(found, expected),
        Check::NotEquals(expected) => !equal(found, expected),
        Check::Contains(expected) => contains(found, expected),
        Check::NotContains(expected) => !contains(found, expected),
        Check::OneOf(options) => options.iter().any(|o| equal(found, o)),
        Check::Gte(expected) => compare(expected, |a, b| a >= b),
        Check::Gt(expected) => compare(expected, |a, b| a > b),
        Check::Lte(expected) => compare(expected, |a, b| a <= b),
        Check::Lt(expected) => compare(expected, |a, b| a < b),
        Check::Count(expected) => count(expected, |a, b| a == b),
        Check::CountGte(expected) => count(expected, |a, b| a >= b),
        Check::CountLte(expected) => count(expected, |a, b| a <= b),
        Check::Exists(_) => true,
    }
}

/// A number, or a string holding one (GraphQL hands out big integers as strings).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| equal(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| equal(x, y)))
        }
        _ => a == b,
    }
}

/// `element` matches `pattern` when equal, or, for objects, when every key
/// of the pattern matches the element's value under that key.
fn matches(element: &Value, pattern: &Value) -> bool {
    match (element, pattern) {
        (Value::Object(e), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| e.get(k).is_some_and(|ev| matches(ev, pv))),
        _ => equal(element, pattern),
    }
}

fn contains(found: &Value, expected: &Value) -> bool {
    match (found, expected) {
        (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
        (Value::Array(items), _) => items.iter().any(|item| matches(item, expected)),
        (Value::Object(_), Value::Object(_)) => matches(found, expected),
        _ => false,
    }
}

fn describe(check: &Check) -> String {
    match check {
        Check::OneOf(options) => format!("one of {}", abbreviate(&Value::Array(options.clone()))),
        Check::Exists(true) => "a value".to_owned(),
        Check::Exists(false) => "nothing (absent or null)".to_owned(),
        Check::Equals(v)
        | Check::NotEquals(v)
        | Check::Contains(v)
        | Check::NotContains(v)
        | Check::Gte(v)
        | Check::Gt(v)
        | Check::Lte(v)
        | Check::Lt(v)
        | Check::Count(v)
        | Check::CountGte(v)
        | Check::CountLte(v) => format!("{} {}", check.keyword(), abbreviate(v)),
    }
}

fn describe_found(check: &Check, found: Option<&Value>) -> String {
    let Some(found) = found else {
        return "nothing (no such field)".to_owned();
    };
    match (check, found) {
        (Check::Count(_) | Check::CountGte(_) | Check::CountLte(_), Value::Array(items)) => {
            format!("count {} in {}", items.len(), abbreviate(found))
        }
        (Check::Count(_) | Check::CountGte(_) | Check::CountLte(_), _) => {
            format!("{} (not an array)", abbreviate(found))
        }
        (Check::Gte(_) | Check::Gt(_) | Check::Lte(_) | Check::Lt(_), _)
            if number(found).is_none() =>
        {
            format!("{} (not a number)", abbreviate(found))
        }
        _ => abbreviate(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expectation(path: &str, checks: Vec<Check>) -> Expectation {
        Expectation {
            path: path.to_owned(),
            filter: None,
            checks,
        }
    }

    fn failure(exp: &Expectation, doc: &Value) -> Option<String> {
        let mut vars = Vars::new();
        vars.set("before", json!(5));
        vars.set("sku", json!("MUG-1"));
        evaluate(exp, doc, &vars).unwrap().map(|f| f.to_string())
    }

    #[test]
    fn equals_names_field_expected_and_got_when_it_fails() {
        let doc = json!({"order": {"status": "SHIPPED"}});
        let exp = expectation("order.status", vec![Check::Equals(json!("DELIVERED"))]);
        assert_eq!(
            failure(&exp, &doc).as_deref(),
            Some(r#"order.status: expected equals "DELIVERED", got "SHIPPED""#)
        );
        let exp = expectation("order.status", vec![Check::Equals(json!("SHIPPED"))]);
        assert_eq!(failure(&exp, &doc), None);
    }

    #[test]
    fn numbers_compare_by_value_and_against_interpolated_variables() {
        let doc = json!({"inventory": {"available": 5.0, "reserved": "3"}});
        assert_eq!(
            failure(
                &expectation("inventory.available", vec![Check::Equals(json!(5))]),
                &doc
            ),
            None
        );
        assert_eq!(
            failure(
                &expectation("inventory.available", vec![Check::Gte(json!("${before}"))]),
                &doc
            ),
            None
        );
        assert_eq!(
            failure(
                &expectation("inventory.reserved", vec![Check::Lt(json!(3))]),
                &doc
            )
            .as_deref(),
            Some(r#"inventory.reserved: expected < 3, got "3""#)
        );
    }

    #[test]
    fn contains_looks_into_strings_arrays_and_objects() {
        let doc = json!({
            "text": "order confirmed",
            "items": [{"sku": "MUG-1", "count": 3}, {"sku": "CUP"}],
        });
        let holds = |path: &str, value: Value| {
            failure(&expectation(path, vec![Check::Contains(value)]), &doc).is_none()
        };
        assert!(holds("text", json!("confirmed")));
        assert!(holds("items", json!({"sku": "${sku}"})));
        assert!(holds("items.0", json!({"count": 3})));
        assert!(!holds("items", json!({"sku": "PLATE"})));
        assert!(!holds("text", json!("shipped")));
    }

    #[test]
    fn count_with_where_counts_matching_elements() {
        let doc = json!({"statuses": ["CONFIRMED", "CANCELLED", "CONFIRMED"]});
        let exp = Expectation {
            path: "statuses".to_owned(),
            filter: Some(json!("CONFIRMED")),
            checks: vec![Check::Count(json!(3))],
        };
        assert_eq!(
            failure(&exp, &doc).as_deref(),
            Some(
                r#"statuses: expected count 3 where "CONFIRMED", got count 2 in ["CONFIRMED","CONFIRMED"]"#
            )
        );
        let exp = Expectation {
            checks: vec![Check::Count(json!(2)), Check::CountLte(json!(2))],
            ..exp
        };
        assert_eq!(failure(&exp, &doc), None);
    }

    #[test]
    fn a_missing_field_is_reported_as_such_and_exists_checks_presence() {
        let doc = json!({"order": {"cancellationReason": null}});
        assert_eq!(
            failure(
                &expectation("order.status", vec![Check::Equals(json!("X"))]),
                &doc
            )
            .as_deref(),
            Some(r#"order.status: expected equals "X", got nothing (no such field)"#)
        );
        assert_eq!(
            failure(
                &expectation("order.cancellationReason", vec![Check::Exists(false)]),
                &doc
            ),
            None
        );
        assert!(failure(
            &expectation("order.cancellationReason", vec![Check::Exists(true)]),
            &doc
        )
        .is_some());
    }

    #[test]
    fn one_of_and_not_equals() {
        let doc = json!({"s": "CANCELLED"});
        assert_eq!(
            failure(
                &expectation(
                    "s",
                    vec![Check::OneOf(vec![json!("CONFIRMED"), json!("CANCELLED")])]
                ),
                &doc
            ),
            None
        );
        assert_eq!(
            failure(
                &expectation("s", vec![Check::NotEquals(json!("CANCELLED"))]),
                &doc
            )
            .as_deref(),
            Some(r#"s: expected not_equals "CANCELLED", got "CANCELLED""#)
        );
    }

    #[test]
    fn comparing_a_non_number_says_so() {
        let doc = json!({"n": "many"});
        assert_eq!(
            failure(&expectation("n", vec![Check::Gte(json!(1))]), &doc).as_deref(),
            Some(r#"n: expected >= 1, got "many" (not a number)"#)
        );
    }
}
