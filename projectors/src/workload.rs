//! Synthetic shop histories, for the tests and the benchmarks: products,
//! stock, customers, carts, wishlists, and orders that go through the whole
//! lifecycle (reserved, paid, confirmed, shipped, delivered) or are
//! cancelled out of stock, on a declined payment, or at the customer's
//! request — interleaved the way a busy shop interleaves them.
//!
//! The same seed gives the same history.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::{
    cart,
    catalogue::{CatalogueError, DomainEvent},
    customer,
    envelope::{EventMetadata, NewEvent, RecordedEvent},
    order::{self, CancellationReason, OrderLine},
    payment, product, shipment, stock,
    values::{
        Category, CustomerId, CustomerName, Description, Email, Money, OrderId, PaymentToken,
        Price, ProductName, Quantity, ShippingAddress, Sku, ValueError,
    },
    wishlist,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use uuid::Uuid;

/// The shape of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// At least this many events (the last order step may add a few more).
    pub events: usize,
    /// Products in the catalog.
    pub products: usize,
    /// Registered customers.
    pub customers: usize,
    /// Orders in flight at once.
    pub in_flight: usize,
    /// The random seed.
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        Self {
            events: 10_000,
            products: 200,
            customers: 500,
            in_flight: 64,
            seed: 7,
        }
    }
}

const NAMES: &[&str] = &[
    "Mug", "Kettle", "Teapot", "Lamp", "Chair", "Desk", "Notebook", "Pen", "Backpack", "Bottle",
    "Blanket", "Pillow", "Candle", "Plate", "Bowl", "Spoon", "Clock", "Frame", "Basket", "Vase",
];
const ADJECTIVES: &[&str] = &[
    "Blue", "Ceramic", "Wooden", "Steel", "Linen", "Vintage", "Compact", "Large", "Green", "Glass",
];
const CATEGORIES: &[&str] = &["kitchen", "office", "home", "outdoor", "decor"];

#[derive(Clone, Debug)]
struct Flight {
    order_id: OrderId,
    customer_id: CustomerId,
    lines: Vec<(Sku, Quantity)>,
    total: Money,
    reserved: usize,
    stage: Stage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Reserving,
    Paying,
    Confirming,
    Confirmed,
    Shipped,
}

struct Generator {
    rng: StdRng,
    now: DateTime<Utc>,
    out: Vec<DomainEvent>,
    skus: Vec<(Sku, Price)>,
    available: HashMap<Sku, u64>,
    customers: Vec<CustomerId>,
    carts: HashMap<CustomerId, Vec<(Sku, Quantity, Price)>>,
    flights: Vec<Flight>,
    next_id: u128,
}

impl Generator {
    fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::seconds(1);
        self.now
    }

    fn id(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }

    fn emit(&mut self, event: DomainEvent) {
        self.tick();
        self.out.push(event);
    }

    fn product(&mut self, index: usize) -> Result<(), ValueError> {
        let sku = Sku::parse(&format!("SKU-{index:05}"))?;
        let noun = NAMES[index % NAMES.len()];
        let adjective = ADJECTIVES[(index / NAMES.len()) % ADJECTIVES.len()];
        let category = CATEGORIES[index % CATEGORIES.len()];
        let price = Price::parse(self.rng.gen_range(199..20_000))?;
        self.emit(DomainEvent::Product(product::Event::ProductAdded {
            sku: sku.clone(),
            name: ProductName::parse(&format!("{adjective} {noun} {index}"))?,
            description: Description::parse(&format!(
                "A {} {} for the {category}, made to last.",
                adjective.to_lowercase(),
                noun.to_lowercase()
            ))?,
            price_cents: price,
            category: Category::parse(category)?,
        }));
        let quantity = Quantity::parse(self.rng.gen_range(50..500))?;
        self.emit(DomainEvent::Stock(stock::Event::StockRestocked {
            sku: sku.clone(),
            quantity,
        }));
        self.available
            .insert(sku.clone(), u64::from(quantity.get()));
        self.skus.push((sku, price));
        Ok(())
    }

    fn customer(&mut self, index: usize) -> Result<(), ValueError> {
        let customer_id = CustomerId::from_uuid(self.id());
        self.emit(DomainEvent::Customer(customer::Event::CustomerRegistered {
            customer_id,
            email: Email::parse(&format!("customer{index}@example.com"))?,
            name: CustomerName::parse(&format!("Customer {index}"))?,
        }));
        self.customers.push(customer_id);
        Ok(())
    }

    fn some_customer(&mut self) -> CustomerId {
        let index = self.rng.gen_range(0..self.customers.len());
        self.customers[index]
    }

    fn some_sku(&mut self) -> (Sku, Price) {
        let index = self.rng.gen_range(0..self.skus.len());
        self.skus[index].clone()
    }

    fn place_order(&mut self) -> Result<(), ValueError> {
        let customer_id = self.some_customer();
        let count = self.rng.gen_range(1..=4);
        let mut lines: Vec<OrderLine> = Vec::new();
        while lines.len() < count {
            let (sku, price) = self.some_sku();
            if lines.iter().any(|line| line.sku == sku) {
                continue;
            }
            lines.push(OrderLine {
                sku,
                quantity: Quantity::parse(self.rng.gen_range(1..=3))?,
                unit_price_cents: price,
            });
        }
        let subtotal = lines.iter().fold(Money::ZERO, |sum, line| {
            sum.saturating_add(line.line_total())
        });
        let items: u64 = lines
            .iter()
            .map(|line| u64::from(line.quantity.get()))
            .sum();
        let shipping = shipment::shipping_cost(subtotal, items);
        let total = subtotal.saturating_add(shipping);
        let order_id = OrderId::from_uuid(self.id());
        let placed_at = self.now;
        self.flights.push(Flight {
            order_id,
            customer_id,
            lines: lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect(),
            total,
            reserved: 0,
            stage: Stage::Reserving,
        });
        self.emit(DomainEvent::Order(order::Event::OrderPlaced {
            order_id,
            customer_id,
            lines,
            subtotal_cents: subtotal,
            shipping_cost_cents: shipping,
            total_cents: total,
            shipping_address: ShippingAddress::parse("1 Main Street, Springfield")?,
            payment_token: PaymentToken::parse("tok_visa")?,
            placed_at,
        }));
        Ok(())
    }

    fn release(&mut self, flight: &Flight) {
        for (sku, quantity) in flight.lines.iter().take(flight.reserved) {
            *self.available.entry(sku.clone()).or_insert(0) += u64::from(quantity.get());
            self.emit(DomainEvent::Stock(stock::Event::StockReleased {
                sku: sku.clone(),
                order_id: flight.order_id,
                quantity: *quantity,
            }));
        }
    }

    fn cancel(&mut self, flight: &Flight, reason: CancellationReason) {
        let at = self.now;
        self.emit(DomainEvent::Order(order::Event::OrderCancelled {
            order_id: flight.order_id,
            reason,
            at,
        }));
    }

    /// Moves one in-flight order one step; returns whether it is finished.
    fn advance(&mut self, index: usize) -> Result<bool, ValueError> {
        let mut flight = self.flights[index].clone();
        let done = match flight.stage {
            Stage::Reserving => {
                let (sku, quantity) = flight.lines[flight.reserved].clone();
                let available = self.available.get(&sku).copied().unwrap_or(0);
                let wanted = u64::from(quantity.get());
                if available >= wanted {
                    self.available.insert(sku.clone(), available - wanted);
                    self.emit(DomainEvent::Stock(stock::Event::StockReserved {
                        sku,
                        order_id: flight.order_id,
                        quantity,
                    }));
                    flight.reserved += 1;
                    if flight.reserved == flight.lines.len() {
                        flight.stage = Stage::Paying;
                    }
                    false
                } else {
                    self.emit(DomainEvent::Stock(stock::Event::StockReservationRejected {
                        sku,
                        order_id: flight.order_id,
                        requested: quantity,
                        available,
                    }));
                    self.release(&flight);
                    self.cancel(&flight, CancellationReason::OutOfStock);
                    true
                }
            }
            Stage::Paying => {
                if self.rng.gen_bool(0.9) {
                    let authorization_id = format!("auth_{}", self.id().simple());
                    self.emit(DomainEvent::Payment(payment::Event::PaymentAuthorized {
                        order_id: flight.order_id,
                        customer_id: flight.customer_id,
                        amount_cents: flight.total,
                        authorization_id,
                        attempt: 1,
                    }));
                    flight.stage = Stage::Confirming;
                    false
                } else {
                    self.emit(DomainEvent::Payment(payment::Event::PaymentDeclined {
                        order_id: flight.order_id,
                        customer_id: flight.customer_id,
                        amount_cents: flight.total,
                        attempt: 1,
                    }));
                    self.release(&flight);
                    self.cancel(&flight, CancellationReason::PaymentDeclined);
                    true
                }
            }
            Stage::Confirming => {
                let at = self.now;
                self.emit(DomainEvent::Order(order::Event::OrderConfirmed {
                    order_id: flight.order_id,
                    at,
                }));
                flight.stage = Stage::Confirmed;
                false
            }
            Stage::Confirmed => {
                if self.rng.gen_bool(0.05) {
                    self.emit(DomainEvent::Payment(payment::Event::PaymentVoided {
                        order_id: flight.order_id,
                        amount_cents: flight.total,
                    }));
                    self.release(&flight);
                    self.cancel(&flight, CancellationReason::CustomerRequest);
                    true
                } else {
                    for (sku, quantity) in flight.lines.clone() {
                        self.emit(DomainEvent::Stock(stock::Event::ReservationCommitted {
                            sku,
                            order_id: flight.order_id,
                            quantity,
                        }));
                    }
                    self.emit(DomainEvent::Payment(payment::Event::PaymentCaptured {
                        order_id: flight.order_id,
                        amount_cents: flight.total,
                    }));
                    self.emit(DomainEvent::Shipment(shipment::Event::ShipmentDispatched {
                        order_id: flight.order_id,
                    }));
                    let at = self.now;
                    self.emit(DomainEvent::Order(order::Event::OrderShipped {
                        order_id: flight.order_id,
                        at,
                    }));
                    flight.stage = Stage::Shipped;
                    false
                }
            }
            Stage::Shipped => {
                self.emit(DomainEvent::Shipment(shipment::Event::ShipmentDelivered {
                    order_id: flight.order_id,
                }));
                let at = self.now;
                self.emit(DomainEvent::Order(order::Event::OrderDelivered {
                    order_id: flight.order_id,
                    at,
                }));
                true
            }
        };
        self.flights[index] = flight;
        Ok(done)
    }

    fn cart_step(&mut self) -> Result<(), ValueError> {
        let customer_id = self.some_customer();
        let lines = self.carts.get(&customer_id).cloned().unwrap_or_default();
        let roll = self.rng.gen_range(0..10);
        if lines.is_empty() || roll < 6 {
            let (sku, price) = self.some_sku();
            let quantity = Quantity::parse(self.rng.gen_range(1..=2))?;
            self.emit(DomainEvent::Cart(cart::Event::CartItemAdded {
                customer_id,
                sku: sku.clone(),
                quantity,
                unit_price_cents: price,
            }));
            let lines = self.carts.entry(customer_id).or_default();
            match lines.iter_mut().find(|(s, _, _)| *s == sku) {
                Some(line) => {
                    line.1 = Quantity::parse(i64::from(line.1.get() + quantity.get()))?;
                    line.2 = price;
                }
                None => lines.push((sku, quantity, price)),
            }
        } else if roll < 8 {
            let (sku, _, _) = lines[self.rng.gen_range(0..lines.len())].clone();
            self.emit(DomainEvent::Cart(cart::Event::CartItemRemoved {
                customer_id,
                sku: sku.clone(),
            }));
            if let Some(lines) = self.carts.get_mut(&customer_id) {
                lines.retain(|(s, _, _)| *s != sku);
            }
        } else {
            let order_id = OrderId::from_uuid(self.id());
            self.emit(DomainEvent::Cart(cart::Event::CartCheckedOut {
                customer_id,
                order_id,
                lines: lines
                    .iter()
                    .map(|(sku, quantity, price)| cart::CartLine {
                        sku: sku.clone(),
                        quantity: *quantity,
                        unit_price_cents: *price,
                    })
                    .collect(),
            }));
            self.carts.remove(&customer_id);
        }
        Ok(())
    }

    fn wishlist_step(&mut self) {
        let customer_id = self.some_customer();
        let (sku, _) = self.some_sku();
        let event = if self.rng.gen_bool(0.7) {
            wishlist::Event::WishlistItemAdded { customer_id, sku }
        } else {
            wishlist::Event::WishlistItemRemoved { customer_id, sku }
        };
        self.emit(DomainEvent::Wishlist(event));
    }

    fn catalog_step(&mut self) -> Result<(), ValueError> {
        let (sku, old) = self.some_sku();
        if self.rng.gen_bool(0.5) {
            let price = Price::parse(self.rng.gen_range(199..20_000))?;
            self.emit(DomainEvent::Product(product::Event::ProductPriceChanged {
                sku: sku.clone(),
                old_price_cents: old,
                price_cents: price,
            }));
            if let Some(entry) = self.skus.iter_mut().find(|(s, _)| *s == sku) {
                entry.1 = price;
            }
        } else {
            let quantity = Quantity::parse(self.rng.gen_range(10..200))?;
            *self.available.entry(sku.clone()).or_insert(0) += u64::from(quantity.get());
            self.emit(DomainEvent::Stock(stock::Event::StockRestocked {
                sku,
                quantity,
            }));
        }
        Ok(())
    }
}

/// A history generated piece by piece, so that a long one need not be held
/// in memory at once.
pub struct Workload {
    generator: Generator,
    options: WorkloadOptions,
    emitted: usize,
    started: bool,
    finished: bool,
}

impl Workload {
    /// A history of at least `options.events` events.
    pub fn new(options: WorkloadOptions) -> Self {
        Self {
            generator: Generator {
                rng: StdRng::seed_from_u64(options.seed),
                now: Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default(),
                out: Vec::new(),
                skus: Vec::new(),
                available: HashMap::new(),
                customers: Vec::new(),
                carts: HashMap::new(),
                flights: Vec::new(),
                next_id: u128::from(options.seed) << 64,
            },
            options,
            emitted: 0,
            started: false,
            finished: false,
        }
    }

    /// The next events, about `max` of them (an order step may add a few
    /// more); empty once the history is complete.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<DomainEvent>, ValueError> {
        let generator = &mut self.generator;
        if !self.started {
            self.started = true;
            for index in 0..self.options.products.max(4) {
                generator.product(index)?;
            }
            for index in 0..self.options.customers.max(1) {
                generator.customer(index)?;
            }
        }
        while !self.finished
            && generator.out.len() < max
            && self.emitted + generator.out.len() < self.options.events
        {
            let roll = generator.rng.gen_range(0..100);
            if roll < 70 {
                if generator.flights.len() < self.options.in_flight.max(1)
                    && generator.rng.gen_bool(0.3)
                {
                    generator.place_order()?;
                } else if !generator.flights.is_empty() {
                    let index = generator.rng.gen_range(0..generator.flights.len());
                    if generator.advance(index)? {
                        generator.flights.swap_remove(index);
                    }
                } else {
                    generator.place_order()?;
                }
            } else if roll < 85 {
                generator.cart_step()?;
            } else if roll < 95 {
                generator.wishlist_step();
            } else {
                generator.catalog_step()?;
            }
        }
        if !self.finished && self.emitted + generator.out.len() >= self.options.events {
            self.finished = true;
            // A final product discontinuation, so that path is exercised.
            if let Some((sku, _)) = generator.skus.first().cloned() {
                generator.emit(DomainEvent::Product(product::Event::ProductDiscontinued {
                    sku,
                }));
            }
        }
        let chunk = std::mem::take(&mut generator.out);
        self.emitted += chunk.len();
        Ok(chunk)
    }
}

/// Generates a history of at least `options.events` domain events, in the
/// order a shop could have recorded them.
pub fn generate(options: WorkloadOptions) -> Result<Vec<DomainEvent>, ValueError> {
    let mut workload = Workload::new(options);
    let mut out = Vec::with_capacity(options.events + 16);
    loop {
        let chunk = workload.next_chunk(10_000)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend(chunk);
    }
}

/// The events as a store would hand them out: versions per stream, dense
/// positions, ids and times derived from the position.
pub fn record(events: &[DomainEvent]) -> Result<Vec<RecordedEvent>, CatalogueError> {
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for (position, event) in events.iter().enumerate() {
        let stream = event.stream();
        let version = versions
            .entry(stream.clone())
            .and_modify(|v| *v += 1)
            .or_insert(0);
        let new = event.try_to_new_event(
            Uuid::from_u128(position as u128 + 1),
            &EventMetadata::default(),
        )?;
        out.push(RecordedEvent {
            stream,
            version: *version,
            position: position as u64,
            event_id: new.event_id,
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: base + Duration::milliseconds(position as i64),
            data: new.data,
            metadata: new.metadata,
        });
    }
    Ok(out)
}

/// The events as appends: `(stream, event)` in order, with ids from `id_seed`.
pub fn new_events(
    events: &[DomainEvent],
    id_seed: u64,
) -> Result<Vec<(String, NewEvent)>, CatalogueError> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let id = Uuid::from_u128((u128::from(id_seed) << 64) | index as u128);
            Ok((
                event.stream(),
                event.try_to_new_event(id, &EventMetadata::default())?,
            ))
        })
        .collect()
}

/// Appends `events` to an open store, keeping each stream's order: events
/// are spread over `lanes` concurrent writers by stream, and consecutive
/// events of one stream go in one append. Returns how many were appended.
pub async fn append_to_store(
    store: &event_store::Store,
    events: Vec<(String, NewEvent)>,
    lanes: usize,
) -> Result<usize, event_store::AppendError> {
    let lanes = lanes.max(1);
    let mut per_lane: Vec<Vec<(String, Vec<NewEvent>)>> = vec![Vec::new(); lanes];
    for (stream, event) in events {
        let lane = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            stream.hash(&mut hasher);
            (hasher.finish() % lanes as u64) as usize
        };
        let appends = &mut per_lane[lane];
        match appends.last_mut() {
            Some((last, batch)) if *last == stream && batch.len() < 100 => batch.push(event),
            _ => appends.push((stream, vec![event])),
        }
    }
    let tasks = per_lane.into_iter().map(|appends| {
        let store = store.clone();
        async move {
            let mut count = 0usize;
            for (stream, batch) in appends {
                count += batch.len();
                store
                    .append(&stream, event_store::ExpectedVersion::Any, batch)
                    .await?;
            }
            Ok::<usize, event_store::AppendError>(count)
        }
    });
    let counts = futures::future::try_join_all(tasks).await?;
    Ok(counts.into_iter().sum())
}
