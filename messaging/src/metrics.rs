//! Metric names, recorded through the `metrics` facade (the process installs
//! the Prometheus exporter). Every counter has a `transport` label (`amqp`,
//! `memory`); consumer counters also have a `queue` label.

/// Messages sent to the broker.
pub const PUBLISHED: &str = "messaging_published_total";
/// Messages the broker confirmed.
pub const CONFIRMED: &str = "messaging_confirmed_total";
/// Messages the broker confirmed without routing them: no queue is bound
/// for their routing key.
pub const RETURNED: &str = "messaging_returned_total";
/// Messages the broker nacked.
pub const NACKED: &str = "messaging_nacked_total";
/// Messages delivered to consumers.
pub const CONSUMED: &str = "messaging_consumed_total";
/// Deliveries acknowledged.
pub const ACKED: &str = "messaging_acked_total";
/// Deliveries handed back for another attempt.
pub const RETRIED: &str = "messaging_retried_total";
/// Deliveries a consumer moved to its dead-letter queue.
pub const DEAD_LETTERED: &str = "messaging_dead_lettered_total";
/// Connections (re-)established after the first.
pub const RECONNECTS: &str = "messaging_reconnects_total";

/// Registers the descriptions shown in `/metrics`.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(PUBLISHED, "Messages sent to the broker");
    describe_counter!(CONFIRMED, "Messages confirmed by the broker");
    describe_counter!(
        RETURNED,
        "Messages confirmed without reaching a queue (none bound for their routing key)"
    );
    describe_counter!(NACKED, "Messages refused (nacked) by the broker");
    describe_counter!(CONSUMED, "Messages delivered to consumers");
    describe_counter!(ACKED, "Deliveries acknowledged");
    describe_counter!(RETRIED, "Deliveries handed back for another attempt");
    describe_counter!(DEAD_LETTERED, "Deliveries moved to a dead-letter queue");
    describe_counter!(RECONNECTS, "Broker connections re-established");
}
