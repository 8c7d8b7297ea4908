//! Helpers shared by the tests: events built from the domain's types, and
//! views folded from them.

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc,
};

use chrono::{DateTime, TimeZone, Utc};
use domain::{
    catalogue::DomainEvent,
    envelope::RecordedEvent,
    order::{self, CancellationReason, OrderLine},
    values::{
        Category, CustomerId, CustomerName, Description, Email, Money, OrderId, PaymentToken,
        Price, ProductName, Quantity, ShippingAddress, Sku,
    },
};
use projectors::{
    applier::{decode, Applier, OnPoison},
    projection::projection_for,
    source::{CategoryRead, SourceError},
    viewdb::ViewDb,
    workload, ProjectorName,
};
use uuid::Uuid;

pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).unwrap()
}

pub fn customer(n: u128) -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xC000 + n))
}

pub fn order_id(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x0D00 + n))
}

pub fn sku(raw: &str) -> Sku {
    Sku::parse(raw).unwrap()
}

pub fn product_added(
    raw_sku: &str,
    name: &str,
    description: &str,
    cents: i64,
    category: &str,
) -> DomainEvent {
    DomainEvent::Product(domain::product::Event::ProductAdded {
        sku: sku(raw_sku),
        name: ProductName::parse(name).unwrap(),
        description: Description::parse(description).unwrap(),
        price_cents: Price::parse(cents).unwrap(),
        category: Category::parse(category).unwrap(),
    })
}

pub fn registered(n: u128, name: &str) -> DomainEvent {
    DomainEvent::Customer(domain::customer::Event::CustomerRegistered {
        customer_id: customer(n),
        email: Email::parse(&format!("{}@example.com", name.to_lowercase())).unwrap(),
        name: CustomerName::parse(name).unwrap(),
    })
}

/// `OrderPlaced` for order `n` of customer `c` with `(sku, quantity, unit cents)` lines.
pub fn placed(n: u128, c: u128, lines: &[(&str, u32, i64)], minute: u32) -> DomainEvent {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(raw, quantity, cents)| OrderLine {
            sku: sku(raw),
            quantity: Quantity::parse(i64::from(*quantity)).unwrap(),
            unit_price_cents: Price::parse(*cents).unwrap(),
        })
        .collect();
    let subtotal = lines.iter().fold(Money::ZERO, |sum, line| {
        sum.saturating_add(line.line_total())
    });
    let shipping = Money::from_cents(499);
    DomainEvent::Order(order::Event::OrderPlaced {
        order_id: order_id(n),
        customer_id: customer(c),
        lines,
        subtotal_cents: subtotal,
        shipping_cost_cents: shipping,
        total_cents: subtotal.saturating_add(shipping),
        shipping_address: ShippingAddress::parse("1 Main Street").unwrap(),
        payment_token: PaymentToken::parse("tok_visa").unwrap(),
        placed_at: at(minute),
    })
}

pub fn confirmed(n: u128, minute: u32) -> DomainEvent {
    DomainEvent::Order(order::Event::OrderConfirmed {
        order_id: order_id(n),
        at: at(minute),
    })
}

pub fn shipped(n: u128, minute: u32) -> DomainEvent {
    DomainEvent::Order(order::Event::OrderShipped {
        order_id: order_id(n),
        at: at(minute),
    })
}

pub fn delivered(n: u128, minute: u32) -> DomainEvent {
    DomainEvent::Order(order::Event::OrderDelivered {
        order_id: order_id(n),
        at: at(minute),
    })
}

pub fn cancelled(n: u128, reason: CancellationReason, minute: u32) -> DomainEvent {
    DomainEvent::Order(order::Event::OrderCancelled {
        order_id: order_id(n),
        reason,
        at: at(minute),
    })
}

pub fn quantity(n: u32) -> Quantity {
    Quantity::parse(i64::from(n)).unwrap()
}

pub fn price(cents: i64) -> Price {
    Price::parse(cents).unwrap()
}

/// Records `events` (versions, positions) and folds them into a fresh view.
pub fn fold(name: ProjectorName, events: &[DomainEvent]) -> (Arc<ViewDb>, Vec<RecordedEvent>) {
    let recorded = workload::record(events).unwrap();
    let db = Arc::new(ViewDb::temporary().unwrap());
    fold_into(name, &db, &recorded);
    (db, recorded)
}

/// Folds recorded events, in order, into `db`.
pub fn fold_into(name: ProjectorName, db: &Arc<ViewDb>, recorded: &[RecordedEvent]) {
    let applier = Applier::new(projection_for(name));
    let mut tx = db.begin().unwrap();
    for event in recorded {
        applier
            .apply_in_order(&mut tx, event, &decode(event), OnPoison::Skip)
            .unwrap();
    }
    tx.commit().unwrap();
}

/// An event source that counts what each kind of read returns or is asked.
#[derive(Debug)]
pub struct CountingSource {
    inner: Arc<dyn projectors::source::EventSource>,
    /// Stream reads asked.
    pub stream_reads: AtomicUsize,
    /// Events returned by reads of the whole log.
    pub from_log: AtomicU64,
    /// Events returned by category reads.
    pub from_categories: AtomicU64,
}

impl CountingSource {
    /// Counts the reads of `inner`.
    pub fn new(inner: Arc<dyn projectors::source::EventSource>) -> Self {
        Self {
            inner,
            stream_reads: AtomicUsize::new(0),
            from_log: AtomicU64::new(0),
            from_categories: AtomicU64::new(0),
        }
    }
}

#[async_trait::async_trait]
impl projectors::source::EventSource for CountingSource {
    async fn store_id(&self) -> Result<Uuid, SourceError> {
        self.inner.store_id().await
    }

    async fn head(&self) -> Result<u64, SourceError> {
        self.inner.head().await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        let events = self.inner.read_all(from, limit).await?;
        self.from_log
            .fetch_add(events.len() as u64, Ordering::SeqCst);
        Ok(events)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(stream, from, limit).await
    }

    async fn read_categories(
        &self,
        categories: &[&str],
        from: u64,
        until: u64,
        limit: usize,
    ) -> Result<CategoryRead, SourceError> {
        let read = self
            .inner
            .read_categories(categories, from, until, limit)
            .await?;
        self.from_categories
            .fetch_add(read.events.len() as u64, Ordering::SeqCst);
        Ok(read)
    }
}

/// A real event store in `<data>`'s store directory, holding the workload `options` generate.
pub async fn store_with(
    data: &std::path::Path,
    options: workload::WorkloadOptions,
) -> event_store::Store {
    let store = event_store::Store::open(
        projectors::replay::store_dir(data),
        event_store::StoreOptions::default(),
    )
    .await
    .unwrap();
    let seed = options.seed;
    let history = workload::generate(options).unwrap();
    let appends = workload::new_events(&history, seed).unwrap();
    workload::append_to_store(&store, appends, 16)
        .await
        .unwrap();
    store
}
