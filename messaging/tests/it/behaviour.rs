//! Behaviour every transport has, checked on RabbitMQ and on the memory transport.

use std::{collections::BTreeSet, time::Duration};

use messaging::{
    headers::names, ConsumerName, MessageHeaders, OutgoingMessage, Published, QueueRole,
};
use uuid::Uuid;

use crate::{body, consume_until, message, on_both, spec};

#[tokio::test]
async fn a_published_message_is_confirmed_and_consumed_with_its_headers() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let headers = MessageHeaders {
            event_id: Some(Uuid::from_u128(11)),
            stream: Some("order-1".into()),
            version: Some(4),
            position: Some(1_000_000_000_000),
            event_type: Some("OrderPlaced".into()),
            schema_version: Some(2),
            correlation_id: Some(Uuid::from_u128(12)),
            causation_id: Some(Uuid::from_u128(13)),
            store_id: Some(Uuid::from_u128(14)),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            extra: [("tenant".to_owned(), "acme".to_owned())].into(),
        };
        let sent = OutgoingMessage {
            routing_key: "order.OrderPlaced".into(),
            body: vec![0, 1, 2, 255],
            headers: headers.clone(),
        };
        publisher.publish(&sent).await.unwrap();
        assert_eq!(publisher.in_flight(), 0);

        let got = consume_until(&mut consumer, |seen| !seen.is_empty()).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].routing_key, "order.OrderPlaced");
        assert_eq!(got[0].body, sent.body);
        assert_eq!(got[0].headers, headers);
        assert!(!got[0].redelivered);
        assert_eq!(got[0].delivery_count, 0);
    })
    .await;
}

#[tokio::test]
async fn a_window_of_messages_is_confirmed_in_order_and_consumed_in_order() {
    on_both(|transport| async move {
        let all = spec("all", &["#"]);
        let mut consumer = transport.consumer(&all).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let messages: Vec<OutgoingMessage> = (0..2000)
            .map(|v| message("stock.Reserved", "stock-A", v))
            .collect();
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.confirmed, 2000);

        let got = consume_until(&mut consumer, |seen| seen.len() >= 2000).await;
        let versions: Vec<u64> = got.iter().filter_map(|d| d.headers.version).collect();
        assert_eq!(versions, (0..2000).collect::<Vec<u64>>());
    })
    .await;
}

#[tokio::test]
async fn messages_reach_only_the_queues_whose_patterns_match() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let placed = spec("placed", &["*.OrderPlaced", "payment.#"]);
        let everything = spec("everything", &["#"]);
        let mut orders_consumer = transport.consumer(&orders).await.unwrap();
        let mut placed_consumer = transport.consumer(&placed).await.unwrap();
        let mut everything_consumer = transport.consumer(&everything).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let keys = [
            "order.OrderPlaced",
            "order.OrderCancelled",
            "stock.OrderPlaced",
            "payment.Authorized",
            "payment.x.y",
            "cart.ItemAdded",
        ];
        let messages: Vec<OutgoingMessage> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| message(key, "s-1", i as u64))
            .collect();
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);

        let keys_of = |deliveries: Vec<messaging::Delivery>| -> BTreeSet<String> {
            deliveries.into_iter().map(|d| d.routing_key).collect()
        };
        let got = consume_until(&mut everything_consumer, |seen| seen.len() >= 6).await;
        assert_eq!(keys_of(got), keys.iter().map(|k| k.to_string()).collect());
        let got = consume_until(&mut orders_consumer, |seen| seen.len() >= 2).await;
        assert_eq!(
            keys_of(got),
            BTreeSet::from(["order.OrderPlaced".into(), "order.OrderCancelled".into()])
        );
        let got = consume_until(&mut placed_consumer, |seen| seen.len() >= 4).await;
        assert_eq!(
            keys_of(got),
            BTreeSet::from([
                "order.OrderPlaced".into(),
                "stock.OrderPlaced".into(),
                "payment.Authorized".into(),
                "payment.x.y".into()
            ])
        );
        // Nothing else is waiting in the narrower queues.
        for name in ["orders", "placed"] {
            let consumer = ConsumerName::parse(name).unwrap();
            assert_eq!(
                transport
                    .ready_messages(&consumer, QueueRole::Main)
                    .await
                    .unwrap(),
                0
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_unroutable_message_is_confirmed_as_unroutable_and_the_messages_after_it_are_confirmed_and_delivered(
) {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let messages = [
            message("order.OrderPlaced", "order-1", 0),
            message("nobody.Listens", "x-1", 0),
            message("order.OrderPaid", "order-1", 1),
            message("nobody.Else", "x-2", 0),
            message("order.OrderShipped", "order-1", 2),
        ];
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.confirmed, 5, "every message is settled");
        let unroutable: Vec<(usize, &str, u16)> = report
            .unroutable
            .iter()
            .map(|u| (u.index, u.routing_key.as_str(), u.reply_code))
            .collect();
        assert_eq!(
            unroutable,
            [(1, "nobody.Listens", 312), (3, "nobody.Else", 312)]
        );
        assert_eq!(publisher.in_flight(), 0);

        // The routed ones reach their queue, in order.
        let got = consume_until(&mut consumer, |seen| seen.len() >= 3).await;
        let bodies: Vec<String> = got.iter().map(body).collect();
        assert_eq!(bodies, ["order-1@0", "order-1@1", "order-1@2"]);

        // One at a time, the outcome says whether it reached a queue.
        assert_eq!(
            publisher
                .publish(&message("order.OrderPlaced", "order-2", 0))
                .await
                .unwrap(),
            Published::Routed
        );
        match publisher
            .publish(&message("nobody.Listens", "x-3", 0))
            .await
            .unwrap()
        {
            Published::Unroutable(unroutable) => {
                assert_eq!(unroutable.index, 0);
                assert_eq!(unroutable.routing_key, "nobody.Listens");
                assert_eq!(unroutable.reply_code, 312);
            }
            Published::Routed => panic!("nothing is bound for nobody.Listens"),
        }
    })
    .await;
}

#[tokio::test]
async fn unroutable_messages_among_many_sent_together_are_reported_at_their_own_index() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        // More than one pipelined chunk, with unroutable ones on its edges.
        let lost = |n: u64| n % 7 == 0 || n == 29 || n == 30;
        let messages: Vec<OutgoingMessage> = (0..100u64)
            .map(|n| {
                if lost(n) {
                    message("nobody.Listens", "x-1", n)
                } else {
                    message("order.OrderPlaced", "order-1", n)
                }
            })
            .collect();
        publisher.send_all(&messages).await.unwrap();
        assert_eq!(publisher.in_flight(), 100);
        let mut confirmed = 0;
        let mut unroutable = Vec::new();
        while publisher.in_flight() > 0 {
            let report = publisher.confirmed().await;
            assert!(report.error.is_none(), "{:?}", report.error);
            unroutable.extend(report.unroutable.iter().map(|u| confirmed + u.index));
            confirmed += report.confirmed;
        }
        assert_eq!(confirmed, 100);
        let expected: Vec<usize> = (0..100u64)
            .filter(|n| lost(*n))
            .map(|n| n as usize)
            .collect();
        assert_eq!(unroutable, expected);

        let routed = 100 - expected.len();
        let got = consume_until(&mut consumer, |seen| seen.len() >= routed).await;
        let versions: Vec<u64> = got.iter().filter_map(|d| d.headers.version).collect();
        assert_eq!(
            versions,
            (0..100u64).filter(|n| !lost(*n)).collect::<Vec<u64>>()
        );
    })
    .await;
}

#[tokio::test]
async fn a_message_retried_past_the_delivery_limit_lands_in_the_dead_letter_queue() {
    on_both(|transport| async move {
        let limit = 2;
        let flaky = spec("flaky", &["order.*"]).with_delivery_limit(limit);
        let mut consumer = transport.consumer(&flaky).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        publisher
            .publish(&message("order.OrderPlaced", "order-9", 0))
            .await
            .unwrap();

        let mut counts = Vec::new();
        let name = flaky.name.clone();
        let deadline = tokio::time::Instant::now() + crate::DEADLINE;
        while transport
            .ready_messages(&name, QueueRole::DeadLetter)
            .await
            .unwrap()
            == 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never dead-lettered"
            );
            if let Ok(batch) = tokio::time::timeout(
                Duration::from_millis(100),
                consumer.next_batch(10, Duration::ZERO),
            )
            .await
            {
                for delivery in batch.unwrap() {
                    counts.push(delivery.delivery_count);
                    consumer.retry(delivery.tag).await.unwrap();
                }
            }
        }
        // Handed out once, then handed back `limit` times.
        assert_eq!(counts, (0..=limit).collect::<Vec<u32>>());

        let mut dead = transport.dead_letter_consumer(&flaky).await.unwrap();
        let got = consume_until(&mut dead, |seen| !seen.is_empty()).await;
        assert_eq!(body(&got[0]), "order-9@0");
        assert_eq!(got[0].headers.dead_letter_reason(), Some("delivery_limit"));
        assert_eq!(
            got[0]
                .headers
                .extra
                .get(names::ORIGINAL_ROUTING_KEY)
                .map(String::as_str),
            Some("order.OrderPlaced")
        );
        assert_eq!(
            transport
                .ready_messages(&name, QueueRole::Main)
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_with_its_reason_and_the_next_is_consumed() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let report = publisher
            .publish_batch(&[
                message("order.OrderPlaced", "order-1", 0),
                message("order.Garbage", "order-2", 0),
                message("order.OrderPlaced", "order-3", 0),
            ])
            .await;
        assert!(report.error.is_none(), "{:?}", report.error);

        let mut applied = Vec::new();
        let deadline = tokio::time::Instant::now() + crate::DEADLINE;
        while !applied.contains(&"order-3@0".to_owned()) {
            let batch = tokio::time::timeout_at(
                deadline,
                consumer.next_batch(10, Duration::from_millis(10)),
            )
            .await
            .expect("deliveries before the deadline")
            .unwrap();
            for delivery in batch {
                if delivery.routing_key == "order.Garbage" {
                    consumer
                        .dead_letter(&delivery, "cannot decode: unknown event type Garbage")
                        .await
                        .unwrap();
                } else {
                    applied.push(body(&delivery));
                    consumer.ack(delivery.tag).await.unwrap();
                }
            }
        }
        assert_eq!(applied, ["order-1@0", "order-3@0"]);

        let mut dead = transport.dead_letter_consumer(&orders).await.unwrap();
        let got = consume_until(&mut dead, |seen| !seen.is_empty()).await;
        assert_eq!(got.len(), 1);
        assert_eq!(body(&got[0]), "order-2@0");
        assert_eq!(
            got[0].headers.dead_letter_reason(),
            Some("cannot decode: unknown event type Garbage")
        );
        assert_eq!(
            got[0]
                .headers
                .extra
                .get(names::ORIGINAL_ROUTING_KEY)
                .map(String::as_str),
            Some("order.Garbage")
        );
        assert_eq!(got[0].headers.stream.as_deref(), Some("order-2"));
        let name = orders.name.clone();
        assert_eq!(
            transport
                .ready_messages(&name, QueueRole::Main)
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn unacknowledged_messages_come_back_with_a_delivery_count_when_their_consumer_goes_away() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]).with_prefetch(3);
        let mut first = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let messages: Vec<_> = (0..5)
            .map(|v| message("order.OrderPlaced", "order-1", v))
            .collect();
        assert!(publisher.publish_batch(&messages).await.error.is_none());

        // The prefetch caps what one consumer holds unacknowledged.
        let mut batch = Vec::new();
        while batch.len() < 3 {
            let more = tokio::time::timeout(
                crate::DEADLINE,
                first.next_batch(10, Duration::from_millis(20)),
            )
            .await
            .expect("the prefetch window arrives")
            .unwrap();
            batch.extend(more);
        }
        assert_eq!(batch.len(), 3);
        // Go away holding them.
        drop(first);

        let mut second = transport.consumer(&orders).await.unwrap();
        let got = consume_until(&mut second, |seen| seen.len() >= 5).await;
        assert_eq!(got.len(), 5);
        let held: BTreeSet<u64> = batch.iter().filter_map(|d| d.headers.version).collect();
        for delivery in &got {
            let version = delivery.headers.version.unwrap();
            if held.contains(&version) {
                assert!(delivery.redelivered, "{version} was handed out before");
                assert_eq!(delivery.delivery_count, 1, "{version}");
            } else {
                assert!(!delivery.redelivered, "{version} is new");
                assert_eq!(delivery.delivery_count, 0, "{version}");
            }
        }
        let versions: BTreeSet<u64> = got.iter().filter_map(|d| d.headers.version).collect();
        assert_eq!(versions, (0..5).collect());
    })
    .await;
}

#[tokio::test]
async fn acknowledging_up_to_a_tag_settles_the_whole_batch_and_frees_the_prefetch_window() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]).with_prefetch(50);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        let messages: Vec<_> = (0..100)
            .map(|v| message("order.OrderPlaced", "order-1", v))
            .collect();
        assert!(publisher.publish_batch(&messages).await.error.is_none());

        // The broker hands out exactly the prefetch window...
        let mut first = Vec::new();
        while first.len() < 50 {
            let batch = tokio::time::timeout(
                crate::DEADLINE,
                consumer.next_batch(100, Duration::from_millis(20)),
            )
            .await
            .expect("the first window arrives")
            .unwrap();
            first.extend(batch);
        }
        assert_eq!(first.len(), 50);
        // ...and the next window only once one `multiple` ack settled all 50.
        consumer.ack_up_to(first[49].tag).await.unwrap();
        let mut second = Vec::new();
        while second.len() < 50 {
            let batch = tokio::time::timeout(
                crate::DEADLINE,
                consumer.next_batch(100, Duration::from_millis(20)),
            )
            .await
            .expect("the second window arrives after the batch ack")
            .unwrap();
            second.extend(batch);
        }
        let versions: Vec<u64> = first
            .iter()
            .chain(&second)
            .filter_map(|d| d.headers.version)
            .collect();
        assert_eq!(versions, (0..100).collect::<Vec<u64>>());
        consumer.ack_up_to(second[49].tag).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_batch_is_handed_out_as_soon_as_nothing_more_is_waiting_however_long_the_linger() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();

        // One message, ten wanted, a minute of linger: it comes at once.
        publisher
            .publish(&message("order.OrderPlaced", "order-1", 0))
            .await
            .unwrap();
        let lone = tokio::time::timeout(
            Duration::from_secs(10),
            consumer.next_batch(10, Duration::from_secs(60)),
        )
        .await
        .expect("a lone message does not wait out the linger")
        .unwrap();
        assert_eq!(lone.len(), 1);
        consumer.ack_up_to(lone[0].tag).await.unwrap();

        // Five, ten wanted: however they are split into batches, no call
        // waits for the five that never come.
        let messages: Vec<_> = (1..6)
            .map(|v| message("order.OrderPlaced", "order-1", v))
            .collect();
        assert!(publisher.publish_batch(&messages).await.error.is_none());
        let mut got = Vec::new();
        while got.len() < 5 {
            let batch = tokio::time::timeout(
                Duration::from_secs(10),
                consumer.next_batch(10, Duration::from_secs(60)),
            )
            .await
            .expect("a short batch does not wait out the linger")
            .unwrap();
            consumer.ack_up_to(batch.last().unwrap().tag).await.unwrap();
            got.extend(batch);
        }
        let versions: Vec<u64> = got.iter().filter_map(|d| d.headers.version).collect();
        assert_eq!(versions, [1, 2, 3, 4, 5]);
    })
    .await;
}

#[tokio::test]
async fn a_call_given_up_while_it_waits_loses_nothing() {
    on_both(|transport| async move {
        let orders = spec("orders", &["order.*"]);
        let mut consumer = transport.consumer(&orders).await.unwrap();
        let mut publisher = transport.publisher().await.unwrap();

        // Nothing is there: the call waits, and is given up.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(100),
            consumer.next_batch(10, Duration::ZERO),
        )
        .await;
        assert!(abandoned.is_err(), "the call was still waiting");

        let messages: Vec<_> = (0..5)
            .map(|v| message("order.OrderPlaced", "order-1", v))
            .collect();
        assert!(publisher.publish_batch(&messages).await.error.is_none());
        let got = consume_until(&mut consumer, |seen| seen.len() >= 5).await;
        let versions: Vec<u64> = got.iter().filter_map(|d| d.headers.version).collect();
        assert_eq!(versions, vec![0, 1, 2, 3, 4]);
        assert!(got.iter().all(|d| !d.redelivered));
    })
    .await;
}
