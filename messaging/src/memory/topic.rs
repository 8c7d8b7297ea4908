//! AMQP topic matching: words separated by `.`, `*` matches exactly one
//! word, `#` matches zero or more.

/// Whether `routing_key` matches the binding `pattern`.
pub(crate) fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches_words(&pattern, &key)
}

fn matches_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_words(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && matches_words(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && matches_words(rest, &key[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_matches_exactly_one_word_and_hash_any_number() {
        assert!(matches("order.*", "order.OrderPlaced"));
        assert!(!matches("order.*", "order.a.b"));
        assert!(!matches("order.*", "order"));
        assert!(matches("#", "order.OrderPlaced"));
        assert!(matches("#", ""));
        assert!(matches("order.#", "order"));
        assert!(matches("order.#", "order.a.b"));
        assert!(matches("*.OrderPlaced", "order.OrderPlaced"));
        assert!(!matches("*.OrderPlaced", "order.OrderCancelled"));
        assert!(matches("#.Cancelled", "a.b.Cancelled"));
        assert!(matches("a.#.z", "a.z"));
        assert!(matches("a.#.z", "a.b.c.z"));
        assert!(!matches("a.#.z", "a.b.c"));
        assert!(matches("order.OrderPlaced", "order.OrderPlaced"));
        assert!(!matches("order.OrderPlaced", "stock.OrderPlaced"));
    }
}
