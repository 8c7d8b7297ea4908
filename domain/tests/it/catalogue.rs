//! The catalogue, through its public API: every event survives the trip
//! through the store's envelope, and the listing matches what is written.

use domain::catalogue::{self, CatalogueError};
use domain::envelope::stream_category;
use domain::saga::Trigger;

use crate::samples;

#[test]
fn every_event_round_trips_through_the_envelope_with_its_type_and_version() {
    for (index, event) in samples::all().iter().enumerate() {
        let recorded = samples::recorded(index, event);
        assert_eq!(recorded.event_type, event.event_type());
        assert_eq!(recorded.category(), event.category());
        assert_eq!(
            catalogue::schema_version(event.category(), event.event_type()),
            Some(event.schema_version())
        );
        assert_eq!(catalogue::decode(&recorded).unwrap(), *event);
        assert_eq!(recorded.parsed_metadata(), samples::metadata());
    }
}

#[test]
fn the_payload_is_the_variants_fields_only() {
    let placed = &samples::all()[9];
    assert_eq!(placed.event_type(), "OrderPlaced");
    let data = placed.data().unwrap();
    assert_eq!(data["total_cents"], 2999);
    assert_eq!(data["lines"][0]["sku"], "MUG-01");
    assert!(data.get("OrderPlaced").is_none());
    assert_eq!(
        catalogue::encode(placed).unwrap(),
        ("OrderPlaced", 1, data.to_string())
    );
}

#[test]
fn every_event_knows_its_stream_and_the_stream_its_category() {
    for event in samples::all() {
        assert_eq!(stream_category(&event.stream()), event.category());
    }
    assert_eq!(
        samples::all()[9].stream(),
        format!("order-{}", samples::order_id())
    );
}

#[test]
fn the_listing_gives_routing_keys_for_every_type() {
    let keys: Vec<String> = catalogue::event_types()
        .iter()
        .map(|info| info.routing_key())
        .collect();
    assert!(keys.contains(&"order.OrderPlaced".to_owned()));
    assert!(keys.contains(&"fulfillment.FulfillmentStarted".to_owned()));
    assert_eq!(keys.len(), samples::all().len());
}

#[test]
fn a_payload_with_an_invalid_value_is_refused_not_accepted() {
    let mut recorded = samples::recorded(14, &samples::all()[14]);
    assert_eq!(recorded.event_type, "StockRestocked");
    recorded.data = r#"{"sku":"MUG-01","quantity":0}"#.into();
    assert!(matches!(
        catalogue::decode(&recorded),
        Err(CatalogueError::InvalidPayload { .. })
    ));
}

#[test]
fn a_recorded_event_becomes_a_saga_trigger_with_its_id_and_time() {
    let recorded = samples::recorded(9, &samples::all()[9]);
    let trigger = Trigger::from_recorded(&recorded).unwrap();
    assert_eq!(trigger.event_id, recorded.event_id);
    assert_eq!(trigger.at, recorded.recorded_at);
    assert_eq!(
        domain::saga::order_id_of(&trigger.event),
        Some(samples::order_id())
    );
}
