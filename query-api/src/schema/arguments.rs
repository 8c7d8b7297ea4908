//! GraphQL arguments parsed into the domain's values, so the gateway reads
//! and writes the same form the services store (SKUs are upper-cased,
//! e-mails lower-cased); a value that does not parse is `INVALID_INPUT` on
//! its argument.

use domain::values::Sku;
use uuid::Uuid;

use crate::error::GatewayError;

/// A SKU in the services' form (trimmed, upper-cased).
pub(crate) fn sku(field: &str, raw: &str) -> Result<String, GatewayError> {
    Sku::parse(raw)
        .map(|sku| sku.as_str().to_owned())
        .map_err(|error| GatewayError::invalid(field, error.to_string()))
}

/// An order id.
pub(crate) fn order_id(field: &str, raw: &str) -> Result<Uuid, GatewayError> {
    Uuid::parse_str(raw.trim()).map_err(|_| GatewayError::invalid(field, "an order id is a UUID"))
}

/// An e-mail address in the services' form (trimmed, lower-cased).
pub(crate) fn email(raw: &str) -> Result<String, GatewayError> {
    crate::auth::normalise_email(raw)
}

/// The longest `waitMs` a query may ask for.
pub(crate) const MAX_WAIT_MS: i32 = 30_000;

/// A wait in milliseconds, 0 to [`MAX_WAIT_MS`].
pub(crate) fn wait_ms(field: &str, raw: i32) -> Result<std::time::Duration, GatewayError> {
    if !(0..=MAX_WAIT_MS).contains(&raw) {
        return Err(GatewayError::invalid(
            field,
            format!("must be between 0 and {MAX_WAIT_MS} milliseconds, got {raw}"),
        ));
    }
    Ok(std::time::Duration::from_millis(u64::from(
        raw.unsigned_abs(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_and_emails_take_the_services_form() {
        assert_eq!(sku("sku", " sku-1 ").unwrap(), "SKU-1");
        assert_eq!(sku("sku", "a/b").unwrap_err().code(), "INVALID_INPUT");
        assert_eq!(email(" Ann@Example.COM").unwrap(), "ann@example.com");
        assert!(email("ann@example").is_err());
        assert!(order_id("id", "42").is_err());
    }
}
