//! A test world: the saga wired to the real aggregates, with the delivery
//! of events and the execution of commands under the test's control, so
//! that tests can interleave, delay and duplicate them.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{react, SagaCommand, TargetCommand, Trigger};
use crate::catalogue::DomainEvent;
use crate::order::{CancellationReason, PlaceLine};
use crate::values::{CustomerId, OrderId, PaymentToken, Price, Quantity, ShippingAddress, Sku};
use crate::{gateway, order, payment, saga, shipment, stock};

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).unwrap()
}

pub(crate) fn qty(n: i64) -> Quantity {
    Quantity::parse(n).unwrap()
}

pub(crate) fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x0de4))
}

pub(crate) fn customer_id() -> CustomerId {
    CustomerId::from_uuid(Uuid::from_u128(0xc5))
}

pub(crate) fn time(step: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(step as i64)
}

/// The saga and every aggregate it drives, for one order.
#[derive(Clone, Debug, Default)]
pub(crate) struct World {
    pub saga: saga::State,
    pub saga_log: Vec<saga::Event>,
    pub stock: BTreeMap<Sku, stock::State>,
    pub payment: payment::State,
    pub order: order::State,
    pub shipment: shipment::State,
    /// Domain events not yet delivered to the saga.
    pub inbox: VecDeque<Trigger>,
    /// Commands the saga sent, not yet executed.
    pub outbox: VecDeque<SagaCommand>,
    /// Every trigger ever delivered, to deliver again.
    pub delivered: Vec<Trigger>,
    /// Every command the saga sent, in order.
    pub sent: Vec<SagaCommand>,
    /// Commands the targets refused, with the error code.
    pub refusals: Vec<(SagaCommand, &'static str)>,
    /// The saga service as it runs: a command's events go to the saga as
    /// its answer, at once, and the broker brings only
    /// [`saga::OUTSIDE_TRIGGERS`] (docs/adr/0014).
    pub answers_only: bool,
    clock: u64,
}

impl World {
    /// A world with this much stock of each SKU.
    pub fn with_stock(stock: &[(&str, i64)]) -> Self {
        let mut world = World::default();
        for (raw, units) in stock {
            let events = stock::decide(
                &stock::State::default(),
                stock::Command::Restock {
                    sku: sku(raw),
                    quantity: qty(*units),
                },
            )
            .unwrap();
            let state = events.iter().fold(stock::State::default(), stock::evolve);
            world.stock.insert(sku(raw), state);
        }
        world
    }

    fn next_trigger(&mut self, event: DomainEvent) -> Trigger {
        self.clock += 1;
        Trigger {
            event_id: Uuid::from_u128(0xe000_0000 + u128::from(self.clock)),
            at: time(self.clock),
            event,
        }
    }

    fn record(&mut self, event: DomainEvent) {
        let trigger = self.next_trigger(event);
        self.inbox.push_back(trigger);
    }

    /// Records an event nobody's command to the saga caused (a customer's,
    /// an admin's): with `answers_only`, it must be one the saga is bound for.
    fn record_outside(&mut self, event: DomainEvent) {
        if self.answers_only {
            assert!(
                saga::OUTSIDE_TRIGGERS.contains(&(event.category(), event.event_type())),
                "{} is not among the saga's outside triggers",
                event.event_type()
            );
        }
        self.record(event);
    }

    /// Places the order (lines of `(sku, quantity)` at 10.00 each).
    pub fn place(&mut self, lines: &[(&str, i64)], token: &str) {
        let command = order::Command::Place {
            order_id: order_id(),
            customer_id: customer_id(),
            lines: lines
                .iter()
                .map(|(raw, n)| PlaceLine {
                    sku: sku(raw),
                    quantity: qty(*n),
                    unit_price: Price::parse(1000).unwrap(),
                    discontinued: false,
                })
                .collect(),
            shipping_address: ShippingAddress::parse("1 Main St").unwrap(),
            payment_token: PaymentToken::parse(token).unwrap(),
            placed_at: time(0),
        };
        let events = order::decide(&self.order, command).unwrap();
        self.apply_order(events, true);
    }

    fn apply_order(&mut self, events: Vec<order::Event>, outside: bool) {
        for event in events {
            self.order = order::evolve(std::mem::take(&mut self.order), &event);
            if outside {
                self.record_outside(DomainEvent::Order(event));
            } else {
                self.record(DomainEvent::Order(event));
            }
        }
    }

    /// The customer cancels; the order's answer.
    pub fn customer_cancels(&mut self) -> Result<(), order::Error> {
        let command = order::Command::Cancel {
            reason: CancellationReason::CustomerRequest,
            at: time(self.clock),
        };
        let events = order::decide(&self.order, command)?;
        self.apply_order(events, true);
        Ok(())
    }

    /// An admin runs a shipment command (dispatch, confirm delivery).
    pub fn admin_ships(&mut self, command: shipment::Command) -> Result<(), shipment::Error> {
        let events = shipment::decide(&self.shipment, command)?;
        self.apply_shipment(events, true);
        Ok(())
    }

    fn apply_shipment(&mut self, events: Vec<shipment::Event>, outside: bool) {
        for event in events {
            self.shipment = shipment::evolve(std::mem::take(&mut self.shipment), &event);
            if outside {
                self.record_outside(DomainEvent::Shipment(event));
            } else {
                self.record(DomainEvent::Shipment(event));
            }
        }
    }

    /// Delivers the next domain event to the saga; false if there was none.
    pub fn deliver_next(&mut self) -> bool {
        let Some(trigger) = self.inbox.pop_front() else {
            return false;
        };
        self.deliver(trigger);
        true
    }

    /// Delivers one trigger to the saga and queues the commands it sends.
    pub fn deliver(&mut self, trigger: Trigger) {
        let reaction = react(&self.saga, &trigger);
        assert!(
            saga::may_react_to(&trigger.event) || reaction.events.is_empty(),
            "the saga decided on {}, which may_react_to says it never does",
            trigger.event.event_type()
        );
        for event in &reaction.events {
            self.saga = saga::evolve(std::mem::take(&mut self.saga), event);
        }
        self.saga_log.extend(reaction.events);
        self.sent.extend(reaction.commands.iter().cloned());
        self.outbox.extend(reaction.commands);
        self.delivered.push(trigger);
    }

    /// Executes the next command the saga sent; false if there was none.
    pub fn execute_next(&mut self) -> bool {
        let Some(command) = self.outbox.pop_front() else {
            return false;
        };
        self.execute_command(command);
        true
    }

    /// Executes a queued command out of turn: the `choice`-th (modulo) of
    /// those that are first for their stream. Commands to different
    /// aggregates may overtake each other; commands to one aggregate arrive
    /// in the order the saga sent them (the saga service keeps that order).
    pub fn execute_any(&mut self, choice: usize) -> bool {
        let mut streams = std::collections::BTreeSet::new();
        let heads: Vec<usize> = (0..self.outbox.len())
            .filter(|&i| streams.insert(self.outbox[i].stream()))
            .collect();
        if heads.is_empty() {
            return false;
        }
        let Some(command) = self.outbox.remove(heads[choice % heads.len()]) else {
            return false;
        };
        self.execute_command(command);
        true
    }

    fn execute_command(&mut self, command: SagaCommand) {
        let before = self.inbox.len();
        self.run_command(command);
        if self.answers_only {
            let answered: Vec<Trigger> = self.inbox.drain(before..).collect();
            for trigger in answered {
                self.deliver(trigger);
            }
        }
    }

    fn run_command(&mut self, command: SagaCommand) {
        let refused = |error: &dyn crate::decider::DomainError| error.code();
        let outcome = match command.command.clone() {
            TargetCommand::Stock(stock_command) => {
                let sku = match &stock_command {
                    stock::Command::Restock { sku, .. }
                    | stock::Command::ReserveStock { sku, .. }
                    | stock::Command::ReleaseStock { sku, .. }
                    | stock::Command::CommitReservation { sku, .. } => sku.clone(),
                };
                let state = self.stock.get(&sku).cloned().unwrap_or_default();
                match stock::decide(&state, stock_command) {
                    Ok(events) => {
                        let state = events.iter().fold(state, stock::evolve);
                        self.stock.insert(sku, state);
                        for event in events {
                            self.record(DomainEvent::Stock(event));
                        }
                        Ok(())
                    }
                    Err(error) => Err(refused(&error)),
                }
            }
            TargetCommand::AuthorizePayment {
                order_id,
                customer_id,
                amount,
                token,
            } => {
                let outcome = gateway::simulate(&token, self.payment.attempts() + 1);
                let command = payment::Command::Authorize {
                    order_id,
                    customer_id,
                    amount,
                    token,
                    outcome,
                };
                self.run_payment(command)
            }
            TargetCommand::Payment(payment_command) => self.run_payment(payment_command),
            TargetCommand::Order(order_command) => {
                match order::decide(&self.order, order_command) {
                    Ok(events) => {
                        self.apply_order(events, false);
                        Ok(())
                    }
                    Err(error) => Err(refused(&error)),
                }
            }
            TargetCommand::Shipment(shipment_command) => {
                match shipment::decide(&self.shipment, shipment_command) {
                    Ok(events) => {
                        self.apply_shipment(events, false);
                        Ok(())
                    }
                    Err(error) => Err(refused(&error)),
                }
            }
        };
        if let Err(code) = outcome {
            self.refusals.push((command, code));
        }
    }

    /// Executes the next queued authorization as if the gateway failed transiently.
    pub fn authorization_fails_transiently(&mut self) -> bool {
        let Some(index) = self
            .outbox
            .iter()
            .position(|c| matches!(c.command, TargetCommand::AuthorizePayment { .. }))
        else {
            return false;
        };
        let Some(command) = self.outbox.remove(index) else {
            return false;
        };
        if let TargetCommand::AuthorizePayment {
            order_id,
            customer_id,
            amount,
            token,
        } = command.command
        {
            let _ = self.run_payment(payment::Command::Authorize {
                order_id,
                customer_id,
                amount,
                token,
                outcome: gateway::GatewayOutcome::TransientError,
            });
        }
        true
    }

    /// Runs until `done` holds or nothing is left; commands first.
    pub fn run_until(&mut self, done: impl Fn(&World) -> bool) {
        while !done(self) && (self.execute_next() || self.deliver_next()) {}
    }

    fn run_payment(&mut self, command: payment::Command) -> Result<(), &'static str> {
        match payment::decide(&self.payment, command) {
            Ok(events) => {
                for event in events {
                    self.payment = payment::evolve(std::mem::take(&mut self.payment), &event);
                    self.record(DomainEvent::Payment(event));
                }
                Ok(())
            }
            Err(error) => Err(crate::decider::DomainError::code(&error)),
        }
    }

    /// Runs commands and deliveries, commands first, until nothing is left.
    pub fn settle(&mut self) {
        while self.execute_next() || self.deliver_next() {}
    }

    /// Units reserved for any order, over every SKU.
    pub fn reserved_units(&self) -> u64 {
        self.stock.values().map(|state| state.reserved).sum()
    }

    /// Units available, over every SKU.
    pub fn available_units(&self) -> u64 {
        self.stock.values().map(|state| state.available).sum()
    }

    /// Money held or taken from the customer right now.
    pub fn charged_or_held(&self) -> u64 {
        match self.payment.status {
            payment::Status::Authorized => self.payment.authorized.cents(),
            payment::Status::Captured => self.payment.captured.cents(),
            _ => 0,
        }
    }

    /// The saga's event types, in order.
    pub fn saga_types(&self) -> Vec<&'static str> {
        self.saga_log.iter().map(saga::Event::event_type).collect()
    }

    /// Asserts a cancelled order left nothing reserved, held, charged or about to ship.
    #[track_caller]
    pub fn assert_cancelled_cleanly(&self, reason: CancellationReason) {
        assert_eq!(self.order.status(), Some(order::Status::Cancelled));
        assert_eq!(
            self.order
                .order
                .as_ref()
                .and_then(|o| o.cancellation_reason),
            Some(reason)
        );
        assert_eq!(self.reserved_units(), 0, "nothing stays reserved");
        assert_eq!(self.charged_or_held(), 0, "nothing is held or charged");
        assert!(
            self.shipment
                .shipment
                .as_ref()
                .is_none_or(|s| s.status == shipment::Status::Cancelled),
            "no shipment is pending: {:?}",
            self.shipment
        );
        assert!(self.saga.is_settled(), "saga settled: {:?}", self.saga);
        assert_eq!(self.saga.phase, super::Phase::Aborted(reason));
    }
}
