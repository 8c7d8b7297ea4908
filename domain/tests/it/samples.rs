//! One sample event of every type, with fixed ids and timestamps.

use chrono::{DateTime, TimeZone, Utc};
use domain::cart::CartLine;
use domain::envelope::{EventMetadata, RecordedEvent};
use domain::order::{CancellationReason, OrderLine};
use domain::saga::SagaLine;
use domain::values::{
    Category, CustomerId, CustomerName, Description, Email, Money, OrderId, PaymentToken, Price,
    ProductName, Quantity, ShippingAddress, Sku,
};
use domain::DomainEvent;
use domain::{cart, customer, order, payment, product, saga, shipment, stock, wishlist};
use uuid::Uuid;

pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 15).unwrap()
        + chrono::Duration::nanoseconds(123_456_789)
}

pub fn sku() -> Sku {
    Sku::parse("MUG-01").unwrap()
}

pub fn customer_id() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111))
}

pub fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222))
}

fn trigger() -> Uuid {
    Uuid::from_u128(0x3333_3333_3333_4333_8333_3333_3333_3333)
}

fn qty(n: i64) -> Quantity {
    Quantity::parse(n).unwrap()
}

fn price(cents: i64) -> Price {
    Price::parse(cents).unwrap()
}

fn token() -> PaymentToken {
    PaymentToken::parse("tok_visa").unwrap()
}

fn address() -> ShippingAddress {
    ShippingAddress::parse("1 Main St, Springfield").unwrap()
}

/// One event of every type in the catalogue, in catalogue order.
pub fn all() -> Vec<DomainEvent> {
    use DomainEvent as D;
    let order_id = order_id();
    let trigger = trigger();
    vec![
        D::Product(product::Event::ProductAdded {
            sku: sku(),
            name: ProductName::parse("Blue mug").unwrap(),
            description: Description::parse("Holds 350 ml of coffee.").unwrap(),
            price_cents: price(1250),
            category: Category::parse("kitchen").unwrap(),
        }),
        D::Product(product::Event::ProductPriceChanged {
            sku: sku(),
            old_price_cents: price(1250),
            price_cents: price(990),
        }),
        D::Product(product::Event::ProductDiscontinued { sku: sku() }),
        D::Customer(customer::Event::CustomerRegistered {
            customer_id: customer_id(),
            email: Email::parse("ada@example.com").unwrap(),
            name: CustomerName::parse("Ada Lovelace").unwrap(),
        }),
        D::Cart(cart::Event::CartItemAdded {
            customer_id: customer_id(),
            sku: sku(),
            quantity: qty(2),
            unit_price_cents: price(1250),
        }),
        D::Cart(cart::Event::CartItemRemoved {
            customer_id: customer_id(),
            sku: sku(),
        }),
        D::Cart(cart::Event::CartCheckedOut {
            customer_id: customer_id(),
            order_id,
            lines: vec![CartLine {
                sku: sku(),
                quantity: qty(2),
                unit_price_cents: price(1250),
            }],
        }),
        D::Wishlist(wishlist::Event::WishlistItemAdded {
            customer_id: customer_id(),
            sku: sku(),
        }),
        D::Wishlist(wishlist::Event::WishlistItemRemoved {
            customer_id: customer_id(),
            sku: sku(),
        }),
        D::Order(order::Event::OrderPlaced {
            order_id,
            customer_id: customer_id(),
            lines: vec![OrderLine {
                sku: sku(),
                quantity: qty(2),
                unit_price_cents: price(1250),
            }],
            subtotal_cents: Money::from_cents(2500),
            shipping_cost_cents: Money::from_cents(499),
            total_cents: Money::from_cents(2999),
            shipping_address: address(),
            payment_token: token(),
            placed_at: at(),
        }),
        D::Order(order::Event::OrderConfirmed { order_id, at: at() }),
        D::Order(order::Event::OrderShipped { order_id, at: at() }),
        D::Order(order::Event::OrderDelivered { order_id, at: at() }),
        D::Order(order::Event::OrderCancelled {
            order_id,
            reason: CancellationReason::CustomerRequest,
            at: at(),
        }),
        D::Stock(stock::Event::StockRestocked {
            sku: sku(),
            quantity: qty(10),
        }),
        D::Stock(stock::Event::StockReserved {
            sku: sku(),
            order_id,
            quantity: qty(2),
        }),
        D::Stock(stock::Event::StockReservationRejected {
            sku: sku(),
            order_id,
            requested: qty(5),
            available: 3,
        }),
        D::Stock(stock::Event::StockReleased {
            sku: sku(),
            order_id,
            quantity: qty(2),
        }),
        D::Stock(stock::Event::ReservationCommitted {
            sku: sku(),
            order_id,
            quantity: qty(2),
        }),
        D::Payment(payment::Event::PaymentAuthorized {
            order_id,
            customer_id: customer_id(),
            amount_cents: Money::from_cents(2999),
            authorization_id: "auth_tok_visa_1".into(),
            attempt: 1,
        }),
        D::Payment(payment::Event::PaymentDeclined {
            order_id,
            customer_id: customer_id(),
            amount_cents: Money::from_cents(2999),
            attempt: 1,
        }),
        D::Payment(payment::Event::PaymentAttemptFailed {
            order_id,
            attempt: 2,
        }),
        D::Payment(payment::Event::PaymentCaptured {
            order_id,
            amount_cents: Money::from_cents(2999),
        }),
        D::Payment(payment::Event::PaymentVoided {
            order_id,
            amount_cents: Money::from_cents(2999),
        }),
        D::Payment(payment::Event::PaymentRefunded {
            order_id,
            amount_cents: Money::from_cents(2999),
        }),
        D::Shipment(shipment::Event::ShipmentCreated {
            order_id,
            address: address(),
            cost_cents: Money::from_cents(499),
        }),
        D::Shipment(shipment::Event::ShipmentDispatched { order_id }),
        D::Shipment(shipment::Event::ShipmentDelivered { order_id }),
        D::Shipment(shipment::Event::ShipmentCancelled { order_id }),
        D::Fulfillment(saga::Event::FulfillmentStarted {
            order_id,
            trigger,
            customer_id: customer_id(),
            lines: vec![SagaLine {
                sku: sku(),
                quantity: qty(2),
            }],
            amount_cents: Money::from_cents(2999),
            payment_token: token(),
            shipping_address: address(),
            shipping_cost_cents: Money::from_cents(499),
            at: at(),
        }),
        D::Fulfillment(saga::Event::ReservationNoted {
            order_id,
            trigger,
            sku: sku(),
            quantity: qty(2),
        }),
        D::Fulfillment(saga::Event::ReservationRejectionNoted {
            order_id,
            trigger,
            sku: sku(),
            requested: qty(5),
            available: 3,
        }),
        D::Fulfillment(saga::Event::ReleaseNoted {
            order_id,
            trigger,
            sku: sku(),
        }),
        D::Fulfillment(saga::Event::PaymentRequested {
            order_id,
            trigger,
            customer_id: customer_id(),
            amount_cents: Money::from_cents(2999),
            payment_token: token(),
            attempt: 1,
        }),
        D::Fulfillment(saga::Event::PaymentAuthorizationNoted {
            order_id,
            trigger,
            authorization_id: "auth_tok_visa_1".into(),
        }),
        D::Fulfillment(saga::Event::PaymentDeclineNoted {
            order_id,
            trigger,
            attempt: 1,
        }),
        D::Fulfillment(saga::Event::PaymentFailureNoted {
            order_id,
            trigger,
            attempt: 2,
        }),
        D::Fulfillment(saga::Event::PaymentCaptureNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::PaymentVoidNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::PaymentRefundNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::FulfillmentConfirmed {
            order_id,
            trigger,
            shipping_address: address(),
            shipping_cost_cents: Money::from_cents(499),
            at: at(),
        }),
        D::Fulfillment(saga::Event::ShipmentCreationNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::ShipmentCancellationNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::ShipmentDispatchNoted { order_id, trigger }),
        D::Fulfillment(saga::Event::FulfillmentDispatched {
            order_id,
            trigger,
            skus: vec![sku()],
            at: at(),
        }),
        D::Fulfillment(saga::Event::FulfillmentDelivered {
            order_id,
            trigger,
            at: at(),
        }),
        D::Fulfillment(saga::Event::FulfillmentAborted {
            order_id,
            trigger,
            reason: CancellationReason::OutOfStock,
            cancel_order: true,
            at: at(),
        }),
        D::Fulfillment(saga::Event::CompensationRequested {
            order_id,
            trigger,
            release: vec![sku()],
            void_payment: true,
            refund_payment: false,
            cancel_shipment: true,
        }),
    ]
}

/// The metadata of every sample.
pub fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Some(Uuid::from_u128(0x4444_4444_4444_4444_8444_4444_4444_4444)),
        causation_id: Some(Uuid::from_u128(0x5555_5555_5555_4555_8555_5555_5555_5555)),
        traceparent: None,
        actor: Some("admin".into()),
    }
}

/// A sample as the store would have recorded it (the `index`-th sample).
pub fn recorded(index: usize, event: &DomainEvent) -> RecordedEvent {
    let new = event.to_new_event(Uuid::from_u128(0x6666_0000 + index as u128), &metadata());
    RecordedEvent {
        stream: event.stream(),
        version: index as u64,
        position: 1000 + index as u64,
        event_id: new.event_id,
        event_type: new.event_type,
        schema_version: new.schema_version,
        recorded_at: at(),
        data: new.data,
        metadata: new.metadata,
    }
}
