//! Each read model, data-driven: events in, view out, compared with a
//! reviewed snapshot of the served documents.

use domain::{cart, catalogue::DomainEvent, order::CancellationReason, product, stock, wishlist};
use insta::assert_json_snapshot;
use projectors::{
    projection::projection_for,
    views::{catalog, recommendations, sales, search},
    ProjectorName,
};
use serde_json::{json, Value};

use crate::support::*;

fn served(
    name: ProjectorName,
    db: &projectors::viewdb::ViewDb,
    view: &str,
    keys: &[String],
) -> Value {
    let projection = projection_for(name);
    let mut out = serde_json::Map::new();
    for key in keys {
        out.insert(
            key.clone(),
            projection
                .document(db, view, key)
                .unwrap()
                .unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

#[test]
fn an_order_is_followed_from_placement_to_delivery_or_cancellation_with_its_timeline() {
    let events = [
        placed(1, 1, &[("MUG", 2, 1250), ("TEA", 1, 800)], 0),
        placed(2, 1, &[("LAMP", 1, 4000)], 1),
        confirmed(1, 2),
        cancelled(2, CancellationReason::OutOfStock, 3),
        shipped(1, 4),
        delivered(1, 5),
    ];
    let (db, _) = fold(ProjectorName::Orders, &events);
    let keys = [
        order_id(1).to_string(),
        order_id(2).to_string(),
        order_id(3).to_string(),
    ];
    assert_json_snapshot!(served(ProjectorName::Orders, &db, "orders", &keys));
}

#[test]
fn a_customers_history_lists_orders_newest_first_and_sums_what_confirmed_orders_cost() {
    let events = [
        // An order may reach the view before the registration: both land in one document.
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        registered(1, "Ada"),
        placed(2, 1, &[("TEA", 2, 500)], 5),
        placed(3, 1, &[("LAMP", 1, 3000)], 7),
        confirmed(1, 8),
        confirmed(2, 9),
        cancelled(2, CancellationReason::CustomerRequest, 10),
        cancelled(3, CancellationReason::PaymentDeclined, 11),
        delivered(1, 12),
        registered(2, "Grace"),
    ];
    let (db, _) = fold(ProjectorName::Customers, &events);
    let keys = [customer(1).to_string(), customer(2).to_string()];
    assert_json_snapshot!(served(ProjectorName::Customers, &db, "customers", &keys));
}

#[test]
fn a_customer_document_stays_small_however_many_orders_they_place() {
    // Layout 2: each order of the history is a document of its own, so an
    // event of one order rewrites that order's entry and a small customer
    // record, not the whole history.
    let mut events = vec![registered(1, "Ada")];
    for n in 1..=120u128 {
        // Three orders a minute: equal times are ordered by order id.
        let minute = u32::try_from(n / 3).unwrap();
        events.push(placed(n, 1, &[("MUG", 1, 1000)], minute));
        events.push(confirmed(n, minute));
    }
    let (db, _) = fold(ProjectorName::Customers, &events);
    let key = customer(1).to_string();
    let stored = db.get_raw("customers", &key).unwrap().expect("stored");
    assert!(
        stored.len() < 400,
        "the stored customer holds {} bytes",
        stored.len()
    );
    let served = projection_for(ProjectorName::Customers)
        .document(&db, "customers", &key)
        .unwrap()
        .expect("served");
    assert_eq!(served["orders_count"], 120);
    assert_eq!(served["spent_cents"], 120 * (1000 + 499));
    let orders = served["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 120);
    assert_eq!(orders[0]["order_id"], order_id(120).to_string());
    assert_eq!(orders[119]["order_id"], order_id(1).to_string());
    assert_eq!(served["order_ids"][0], order_id(120).to_string());
}

#[test]
fn the_catalog_joins_product_facts_with_stock_levels_and_pages_by_sku() {
    let events = [
        DomainEvent::Stock(stock::Event::StockRestocked {
            sku: sku("MUG"),
            quantity: quantity(10),
        }),
        product_added("MUG", "Blue Mug", "A mug", 1250, "Kitchen"),
        product_added("LAMP", "Desk Lamp", "A lamp", 4000, "office"),
        product_added("TEA", "Green Tea", "Loose leaves", 800, "kitchen"),
        DomainEvent::Product(product::Event::ProductPriceChanged {
            sku: sku("MUG"),
            old_price_cents: price(1250),
            price_cents: price(1400),
        }),
        DomainEvent::Stock(stock::Event::StockReserved {
            sku: sku("MUG"),
            order_id: order_id(1),
            quantity: quantity(3),
        }),
        DomainEvent::Stock(stock::Event::ReservationCommitted {
            sku: sku("MUG"),
            order_id: order_id(1),
            quantity: quantity(2),
        }),
        DomainEvent::Product(product::Event::ProductDiscontinued { sku: sku("LAMP") }),
    ];
    let (db, _) = fold(ProjectorName::Catalog, &events);
    let keys = [
        "MUG".to_owned(),
        "LAMP".to_owned(),
        "TEA".to_owned(),
        "NONE".to_owned(),
    ];
    let kitchen = catalog::list(&db, 1, None, Some("KITCHEN")).unwrap();
    let rest = catalog::list(&db, 10, Some("MUG"), None).unwrap();
    assert_json_snapshot!(json!({
        "documents": served(ProjectorName::Catalog, &db, "products", &keys),
        "kitchen_first_page": kitchen,
        "after_mug": rest,
    }));
}

#[test]
fn inventory_counts_available_reserved_and_shipped_units_and_ignores_refusals() {
    let events = [
        DomainEvent::Stock(stock::Event::StockRestocked {
            sku: sku("MUG"),
            quantity: quantity(10),
        }),
        DomainEvent::Stock(stock::Event::StockReserved {
            sku: sku("MUG"),
            order_id: order_id(1),
            quantity: quantity(4),
        }),
        DomainEvent::Stock(stock::Event::StockReserved {
            sku: sku("MUG"),
            order_id: order_id(2),
            quantity: quantity(3),
        }),
        DomainEvent::Stock(stock::Event::StockReleased {
            sku: sku("MUG"),
            order_id: order_id(2),
            quantity: quantity(3),
        }),
        DomainEvent::Stock(stock::Event::ReservationCommitted {
            sku: sku("MUG"),
            order_id: order_id(1),
            quantity: quantity(4),
        }),
        DomainEvent::Stock(stock::Event::StockReservationRejected {
            sku: sku("TEA"),
            order_id: order_id(3),
            requested: quantity(1),
            available: 0,
        }),
    ];
    let (db, _) = fold(ProjectorName::Inventory, &events);
    let keys = ["MUG".to_owned(), "TEA".to_owned()];
    assert_json_snapshot!(served(ProjectorName::Inventory, &db, "stock", &keys));
}

#[test]
fn search_ranks_name_matches_above_description_matches_and_finds_prefixes() {
    let events = [
        product_added("MUG", "Blue Mug", "A ceramic mug for tea", 1250, "kitchen"),
        product_added(
            "TEA",
            "Green Tea",
            "Loose leaves for a mug or a pot",
            800,
            "kitchen",
        ),
        product_added("LAMP", "Desk Lamp", "Warm light", 4000, "office"),
        product_added("OLD", "Old Mug", "Chipped", 100, "kitchen"),
        DomainEvent::Product(product::Event::ProductDiscontinued { sku: sku("OLD") }),
    ];
    let (db, _) = fold(ProjectorName::Search, &events);
    assert_json_snapshot!(json!({
        "mug": search::search(&db, "mug", 10).unwrap(),
        "prefix te": search::search(&db, "te", 10).unwrap(),
        "kitchen tea": search::search(&db, "Kitchen TEA", 10).unwrap(),
        "first 1 of kitchen": search::search(&db, "kitchen", 1).unwrap(),
        "nothing": search::search(&db, "sofa", 10).unwrap(),
        "punctuation only": search::search(&db, "?!", 10).unwrap(),
    }));
}

#[test]
fn recommendations_count_products_bought_together_in_confirmed_orders_only() {
    let events = [
        placed(1, 1, &[("MUG", 1, 1000), ("TEA", 1, 500)], 0),
        placed(
            2,
            2,
            &[("MUG", 1, 1000), ("TEA", 2, 500), ("LAMP", 1, 3000)],
            1,
        ),
        placed(3, 3, &[("MUG", 1, 1000), ("LAMP", 1, 3000)], 2),
        placed(4, 4, &[("MUG", 1, 1000), ("SPOON", 1, 100)], 3),
        confirmed(1, 4),
        confirmed(2, 5),
        confirmed(3, 6),
        // Cancelled after confirmation: taken back out.
        cancelled(3, CancellationReason::CustomerRequest, 7),
        // Never confirmed: never counted.
        cancelled(4, CancellationReason::OutOfStock, 8),
        delivered(1, 9),
    ];
    let (db, _) = fold(ProjectorName::Recommendations, &events);
    assert_json_snapshot!(json!({
        "MUG": recommendations::recommend(&db, "MUG", 5).unwrap(),
        "LAMP": recommendations::recommend(&db, "LAMP", 5).unwrap(),
        "MUG first 1": recommendations::recommend(&db, "MUG", 1).unwrap(),
        "SPOON": recommendations::recommend(&db, "SPOON", 5).unwrap(),
    }));
}

#[test]
fn notifications_hold_one_message_per_confirmation_dispatch_delivery_and_cancellation() {
    let events = [
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        placed(2, 1, &[("TEA", 1, 500)], 1),
        placed(3, 2, &[("LAMP", 1, 3000)], 2),
        confirmed(1, 3),
        cancelled(2, CancellationReason::PaymentDeclined, 4),
        shipped(1, 5),
        delivered(1, 6),
        cancelled(3, CancellationReason::OutOfStock, 7),
    ];
    let (db, _) = fold(ProjectorName::Notifications, &events);
    let keys = [customer(1).to_string(), customer(2).to_string()];
    assert_json_snapshot!(served(
        ProjectorName::Notifications,
        &db,
        "notifications",
        &keys
    ));
}

#[test]
fn sales_count_confirmed_orders_and_subtract_those_cancelled_after_confirmation() {
    let events = [
        placed(1, 1, &[("MUG", 2, 1000), ("TEA", 1, 500)], 0),
        placed(2, 2, &[("MUG", 1, 1000)], 1),
        placed(3, 3, &[("LAMP", 1, 3000)], 2),
        placed(4, 4, &[("TEA", 5, 500)], 3),
        confirmed(1, 4),
        confirmed(2, 5),
        confirmed(3, 6),
        cancelled(3, CancellationReason::CustomerRequest, 7),
        cancelled(4, CancellationReason::PaymentDeclined, 8),
        shipped(1, 9),
    ];
    let (db, _) = fold(ProjectorName::Sales, &events);
    assert_json_snapshot!(json!({
        "top 5": sales::stats(&db, 5).unwrap(),
        "top 1": sales::stats(&db, 1).unwrap(),
    }));
}

#[test]
fn a_cart_sums_added_units_drops_removed_lines_and_empties_on_checkout() {
    let c1 = customer(1);
    let c2 = customer(2);
    let add = |c, raw: &str, n: u32, cents: i64| {
        DomainEvent::Cart(cart::Event::CartItemAdded {
            customer_id: c,
            sku: sku(raw),
            quantity: quantity(n),
            unit_price_cents: price(cents),
        })
    };
    let events = [
        add(c1, "MUG", 1, 1000),
        add(c1, "TEA", 2, 500),
        add(c1, "MUG", 2, 1100),
        DomainEvent::Cart(cart::Event::CartItemRemoved {
            customer_id: c1,
            sku: sku("TEA"),
        }),
        add(c2, "LAMP", 1, 3000),
        DomainEvent::Cart(cart::Event::CartCheckedOut {
            customer_id: c2,
            order_id: order_id(9),
            lines: vec![cart::CartLine {
                sku: sku("LAMP"),
                quantity: quantity(1),
                unit_price_cents: price(3000),
            }],
        }),
    ];
    let (db, _) = fold(ProjectorName::Carts, &events);
    let keys = [c1.to_string(), c2.to_string()];
    assert_json_snapshot!(served(ProjectorName::Carts, &db, "carts", &keys));
}

#[test]
fn a_wishlist_keeps_each_product_once_in_the_order_it_was_added() {
    let c1 = customer(1);
    let added = |raw: &str| {
        DomainEvent::Wishlist(wishlist::Event::WishlistItemAdded {
            customer_id: c1,
            sku: sku(raw),
        })
    };
    let events = [
        added("MUG"),
        added("TEA"),
        added("MUG"),
        added("LAMP"),
        DomainEvent::Wishlist(wishlist::Event::WishlistItemRemoved {
            customer_id: c1,
            sku: sku("TEA"),
        }),
    ];
    let (db, _) = fold(ProjectorName::Wishlists, &events);
    let keys = [c1.to_string()];
    assert_json_snapshot!(served(ProjectorName::Wishlists, &db, "wishlists", &keys));
}
