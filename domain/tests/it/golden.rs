//! Golden files: the encoded bytes of one event of every type (and of every
//! older schema version still read), checked in under `tests/golden/`.
//!
//! Each file must decode to the value built in code, and that value must
//! still encode to the same bytes, so an accidental change of the envelope's
//! encoding or of an event's payload fails here. To (re)write the files on
//! purpose, run `BLESS_GOLDEN=1 cargo test -p domain --test it golden` and
//! review the diff; a missing file is a failure, never written implicitly.

use std::collections::BTreeSet;
use std::path::PathBuf;

use domain::catalogue;
use domain::codec;
use domain::envelope::RecordedEvent;
use domain::product;
use domain::values::{Category, Description, Price, ProductName};
use domain::DomainEvent;
use uuid::Uuid;

use crate::samples;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn blessing() -> bool {
    std::env::var("BLESS_GOLDEN").is_ok_and(|v| v == "1")
}

fn file_name(recorded: &RecordedEvent) -> String {
    format!("{}.v{}.bin", recorded.event_type, recorded.schema_version)
}

/// Checks one golden file against the expected record and its decoded event.
fn check(expected: &RecordedEvent, expected_event: &DomainEvent) -> Result<(), String> {
    let name = file_name(expected);
    let path = golden_dir().join(&name);
    let encoded = codec::encode(expected).map_err(|e| format!("{name}: cannot encode: {e}"))?;
    if blessing() {
        std::fs::write(&path, &encoded).map_err(|e| format!("{name}: cannot write: {e}"))?;
    }
    let bytes = std::fs::read(&path).map_err(|e| {
        format!("{name}: cannot read ({e}); run with BLESS_GOLDEN=1 to write it on purpose")
    })?;
    let decoded: RecordedEvent =
        codec::decode(&bytes).map_err(|e| format!("{name}: no longer decodes: {e}"))?;
    if &decoded != expected {
        return Err(format!(
            "{name}: decodes to\n  {decoded:?}\nexpected\n  {expected:?}"
        ));
    }
    let event = catalogue::decode(&decoded)
        .map_err(|e| format!("{name}: catalogue cannot read it: {e}"))?;
    if &event != expected_event {
        return Err(format!(
            "{name}: reads as\n  {event:?}\nexpected\n  {expected_event:?}"
        ));
    }
    if encoded != bytes {
        return Err(format!(
            "{name}: the expected value now encodes to different bytes"
        ));
    }
    Ok(())
}

/// The v1 `ProductAdded` (before `category` existed) as it was stored.
fn product_added_v1() -> (RecordedEvent, DomainEvent) {
    let recorded = RecordedEvent {
        stream: "product-MUG-01".into(),
        version: 0,
        position: 7,
        event_id: Uuid::from_u128(0x7777_7777_7777_4777_8777_7777_7777_7777),
        event_type: "ProductAdded".into(),
        schema_version: 1,
        recorded_at: samples::at(),
        data: r#"{"description":"Holds 350 ml of coffee.","name":"Blue mug","price_cents":1250,"sku":"MUG-01"}"#.into(),
        metadata: "{}".into(),
    };
    let event = DomainEvent::Product(product::Event::ProductAdded {
        sku: samples::sku(),
        name: ProductName::parse("Blue mug").unwrap(),
        description: Description::parse("Holds 350 ml of coffee.").unwrap(),
        price_cents: Price::parse(1250).unwrap(),
        category: Category::uncategorized(),
    });
    (recorded, event)
}

#[test]
fn every_event_type_has_a_golden_file_that_still_decodes_to_the_same_value() {
    let failures: Vec<String> = samples::all()
        .iter()
        .enumerate()
        .filter_map(|(index, event)| check(&samples::recorded(index, event), event).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_stored_v1_product_added_is_read_as_v2_with_the_category_uncategorized() {
    let (recorded, event) = product_added_v1();
    if let Err(failure) = check(&recorded, &event) {
        panic!("{failure}");
    }
    assert_eq!(
        catalogue::schema_version("product", "ProductAdded"),
        Some(2)
    );
}

#[test]
fn every_catalogue_type_has_a_sample_and_every_golden_file_is_checked() {
    let samples = samples::all();
    let sampled: BTreeSet<(&str, &str, u32)> = samples
        .iter()
        .map(|e| (e.category(), e.event_type(), e.schema_version()))
        .collect();
    let catalogued: BTreeSet<(&str, &str, u32)> = catalogue::event_types()
        .into_iter()
        .map(|info| (info.category, info.event_type, info.schema_version))
        .collect();
    assert_eq!(sampled, catalogued);
    assert_eq!(samples.len(), catalogued.len(), "one sample per type");

    let mut checked: BTreeSet<String> = samples
        .iter()
        .enumerate()
        .map(|(index, event)| file_name(&samples::recorded(index, event)))
        .collect();
    checked.insert(file_name(&product_added_v1().0));
    let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let unchecked: Vec<_> = on_disk.difference(&checked).collect();
    assert!(
        unchecked.is_empty(),
        "golden files no test checks: {unchecked:?}"
    );
}
