//! Where an order's time goes: the step from each event of its flow to the
//! next, from the store's own timestamps.
//!
//! Every event an order's checkout causes — the order's, the saga's
//! decisions, the services' answers — carries the checkout request's
//! correlation id. Grouped by it and sorted by position, each flow is the
//! order's path through the system, and the time between two consecutive
//! events is one hop: through the relay, RabbitMQ and the saga (an event →
//! the saga's decision on it), or through a command (a decision → the
//! service's event).

use std::collections::HashMap;
use std::time::Duration;

use domain::envelope::RecordedEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::load::percentile;

/// One step of the flows: from an event type to the next.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hop {
    /// The earlier event's type.
    pub from: String,
    /// The next event's type.
    pub to: String,
    /// How many flows took this step.
    pub count: usize,
    /// Median time between the two events' timestamps.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// The hops of every flow (events sharing a correlation id) that holds an
/// event of type `first`, in the order the flows take them.
pub fn hops(events: &[RecordedEvent], first: &str) -> Vec<Hop> {
    let mut flows: HashMap<Uuid, Vec<&RecordedEvent>> = HashMap::new();
    for event in events {
        if let Some(correlation) = event.parsed_metadata().correlation_id {
            flows.entry(correlation).or_default().push(event);
        }
    }
    // Per step: the spans, and the sum of its index in its flows (to order
    // the steps as the flows take them).
    let mut steps: HashMap<(&str, &str), (Vec<Duration>, usize)> = HashMap::new();
    for flow in flows.values_mut() {
        if !flow.iter().any(|event| event.event_type == first) {
            continue;
        }
        flow.sort_by_key(|event| event.position);
        for (index, pair) in flow.windows(2).enumerate() {
            let span = (pair[1].recorded_at - pair[0].recorded_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            let step = steps
                .entry((pair[0].event_type.as_str(), pair[1].event_type.as_str()))
                .or_default();
            step.0.push(span);
            step.1 += index;
        }
    }
    let mut hops: Vec<(f64, Hop)> = steps
        .into_iter()
        .map(|((from, to), (mut spans, index_sum))| {
            spans.sort_unstable();
            let ms = |q: f64| {
                percentile(&spans, q).map_or(0.0, |d| (d.as_secs_f64() * 10_000.0).round() / 10.0)
            };
            let place = index_sum as f64 / spans.len() as f64;
            (
                place,
                Hop {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    count: spans.len(),
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                },
            )
        })
        .collect();
    hops.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.count.cmp(&a.1.count)));
    hops.into_iter().map(|(_, hop)| hop).collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn event(position: u64, event_type: &str, correlation: u128, at_ms: i64) -> RecordedEvent {
        RecordedEvent {
            stream: format!("s-{position}"),
            version: 0,
            position,
            event_id: Uuid::from_u128(u128::from(position)),
            event_type: event_type.to_owned(),
            schema_version: 1,
            recorded_at: Utc.timestamp_millis_opt(1_000_000 + at_ms).unwrap(),
            data: "{}".to_owned(),
            metadata: format!(r#"{{"correlation_id":"{}"}}"#, Uuid::from_u128(correlation)),
        }
    }

    #[test]
    fn each_flow_gives_its_steps_in_order_and_other_flows_are_left_out() {
        let events = vec![
            event(0, "Placed", 1, 0),
            event(1, "Placed", 2, 5),
            event(2, "Started", 1, 10),
            event(3, "Registered", 3, 11),
            event(4, "Started", 2, 35),
            event(5, "Reserved", 1, 40),
            event(6, "Reserved", 2, 45),
            event(7, "Noted", 3, 50),
        ];
        let hops = hops(&events, "Placed");
        assert_eq!(
            hops,
            vec![
                Hop {
                    from: "Placed".into(),
                    to: "Started".into(),
                    count: 2,
                    p50_ms: 10.0,
                    p99_ms: 30.0,
                },
                Hop {
                    from: "Started".into(),
                    to: "Reserved".into(),
                    count: 2,
                    p50_ms: 10.0,
                    p99_ms: 30.0,
                },
            ],
            "flow 3 has no Placed and is not an order's"
        );
    }

    #[test]
    fn events_without_a_correlation_are_ignored() {
        let mut lone = event(0, "Placed", 1, 0);
        lone.metadata = "{}".to_owned();
        assert!(hops(&[lone], "Placed").is_empty());
    }
}
