//! What only a real broker can show: connection loss, topology arguments,
//! heartbeats.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use messaging::{
    amqp::baseline::{raw_consume_with_batched_acks, raw_publish_with_confirms},
    AmqpConfig, AmqpTransport, ConsumerSpec, OutgoingMessage, PublishError, Publisher, QueueRole,
    Transport, TransportError,
};
use parking_lot::Mutex;
use tokio::process::Command;

use crate::{
    amqp_transport, eventually, message, spec, unique_connection_name, unique_namespace,
    with_cleanup, AMQP_URI, DEADLINE,
};

/// `rabbitmqctl list_connections ITEMS… client_properties`: the `items`
/// of each connection whose name is `name`.
async fn connection_fields(name: &str, items: &[&str]) -> Vec<Vec<String>> {
    let output = Command::new("rabbitmqctl")
        .args(["--quiet", "list_connections"])
        .args(items)
        .arg("client_properties")
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl list_connections failed"
    );
    let quoted = format!("\"{name}\"");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&quoted))
        .map(|line| {
            line.split('\t')
                .take(items.len())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// (pid, heartbeat) of the connections whose name is `name`.
async fn connections_named(name: &str) -> Vec<(String, String)> {
    connection_fields(name, &["pid", "timeout"])
        .await
        .into_iter()
        .filter_map(|fields| {
            let mut fields = fields.into_iter();
            Some((fields.next()?, fields.next()?))
        })
        .collect()
}

/// Closes, from the broker's side, the connections named `name`; returns their pids.
async fn close_connections_named(name: &str) -> Vec<String> {
    let mut closed = Vec::new();
    for (pid, _) in connections_named(name).await {
        let status = Command::new("rabbitmqctl")
            .args([
                "--quiet",
                "close_connection",
                &pid,
                "messaging test: connection dropped",
            ])
            .status()
            .await
            .expect("rabbitmqctl runs");
        assert!(status.success(), "rabbitmqctl close_connection failed");
        closed.push(pid);
    }
    closed
}

/// Publishes `messages`, re-sending from the first unconfirmed one after
/// any error, as the relay does.
async fn publish_all(publisher: &mut Box<dyn Publisher>, messages: &[OutgoingMessage]) -> usize {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut next = 0;
    let mut errors = 0;
    while next < messages.len() {
        let end = (next + 100).min(messages.len());
        let report = publisher.publish_batch(&messages[next..end]).await;
        next += report.confirmed;
        if report.error.is_some() {
            errors += 1;
            assert!(
                tokio::time::Instant::now() < deadline,
                "publishing never recovered"
            );
        }
    }
    errors
}

#[tokio::test]
async fn publisher_and_consumer_carry_on_after_the_broker_drops_their_connection_and_nothing_is_lost(
) {
    let name = unique_connection_name("messaging reconnect test");
    let transport: Arc<dyn Transport> = Arc::new(amqp_transport(unique_namespace(), &name).await);
    let body = |transport: Arc<dyn Transport>| {
        let name = name.clone();
        async move {
            let orders = spec("orders", &["#"]);
            let mut consumer = transport.consumer(&orders).await.unwrap();
            let seen = Arc::new(Mutex::new(BTreeSet::new()));
            let order = Arc::new(Mutex::new(Vec::new()));
            let order_by_consumer = Arc::clone(&order);
            let seen_by_consumer = Arc::clone(&seen);
            let consuming = tokio::spawn(async move {
                loop {
                    let batch = consumer
                        .next_batch(200, Duration::from_millis(5))
                        .await
                        .expect("the consumer reconnects by itself");
                    let versions = batch.iter().filter_map(|d| d.headers.version);
                    order_by_consumer.lock().extend(versions.clone());
                    seen_by_consumer.lock().extend(versions);
                    if let Some(last) = batch.last() {
                        consumer.ack_up_to(last.tag).await.unwrap();
                    }
                }
            });
            let mut publisher = transport.publisher().await.unwrap();
            let first: Vec<_> = (0..500)
                .map(|v| message("order.Placed", "order-1", v))
                .collect();
            publish_all(&mut publisher, &first).await;
            eventually("the consumer to get going", || {
                let n = seen.lock().len();
                async move { n >= 100 }
            })
            .await;
            transport.ready().await.unwrap();
            let before = connections_named(&name).await;
            assert_eq!(
                before.len(),
                1,
                "one connection carries the publisher and the consumer"
            );

            // Drop the connection from the broker's side while publishing goes on.
            let closing = tokio::spawn({
                let name = name.clone();
                async move { close_connections_named(&name).await }
            });
            let mut version = 500u64;
            let mut errors = 0;
            while !closing.is_finished() || version < 1500 {
                let wave: Vec<_> = (version..version + 100)
                    .map(|v| message("order.Placed", "order-1", v))
                    .collect();
                errors += publish_all(&mut publisher, &wave).await;
                version += 100;
            }
            let closed = closing.await.unwrap();
            assert_eq!(closed.len(), 1);
            // The broker has closed the connection by now, so this wave can
            // only be confirmed over a new one (the waves before may all
            // have gone through before the client noticed the drop).
            let wave: Vec<_> = (version..version + 100)
                .map(|v| message("order.Placed", "order-1", v))
                .collect();
            errors += publish_all(&mut publisher, &wave).await;
            version += 100;

            let total = version;
            eventually("every message to be consumed at least once", || {
                let n = seen.lock().len() as u64;
                async move { n == total }
            })
            .await;
            assert_eq!(
                *seen.lock(),
                (0..total).collect::<BTreeSet<u64>>(),
                "nothing lost"
            );
            // In order: a message never arrives before every earlier one
            // has (repeats after a re-send are fine).
            let mut next_new = 0u64;
            for &version in order.lock().iter() {
                assert!(version <= next_new, "{version} arrived before {next_new}");
                if version == next_new {
                    next_new += 1;
                }
            }
            consuming.abort();
            transport.ready().await.unwrap();
            let after = connections_named(&name).await;
            assert_eq!(after.len(), 1, "reconnected");
            assert_ne!(after[0].0, before[0].0, "on a new connection");
            // Publishing may or may not have been caught mid-flight; either
            // way it went on. Log it for the curious.
            eprintln!("publish errors during the drop: {errors}");
        }
    };
    with_cleanup(transport, &body).await;
}

#[tokio::test]
async fn declaring_a_topology_twice_is_harmless_and_changing_its_arguments_is_refused() {
    let transport: Arc<dyn Transport> = Arc::new(
        amqp_transport(
            unique_namespace(),
            &unique_connection_name("messaging topology test"),
        )
        .await,
    );
    let body = |transport: Arc<dyn Transport>| async move {
        let orders = spec("orders", &["order.*"]);
        transport.declare_consumer(&orders).await.unwrap();
        transport.declare_consumer(&orders).await.unwrap();
        transport.declare_exchanges().await.unwrap();
        let changed: ConsumerSpec = orders.clone().with_delivery_limit(9);
        match transport.declare_consumer(&changed).await {
            Err(TransportError::Refused {
                operation, object, ..
            }) => {
                assert_eq!(operation, "queue.declare");
                assert!(object.ends_with(".orders"), "{object}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The transport is still usable after the broker closed that channel.
        transport.declare_consumer(&orders).await.unwrap();
    };
    with_cleanup(transport, &body).await;
}

#[tokio::test]
async fn a_broker_that_does_not_answer_is_reported_at_once() {
    let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:1/%2f", unique_namespace());
    let outcome = tokio::time::timeout(DEADLINE, AmqpTransport::connect(config))
        .await
        .expect("connect gives up at once");
    assert!(
        matches!(outcome, Err(TransportError::Connect { .. })),
        "{outcome:?}"
    );
    let config = AmqpConfig::new("http://nope", unique_namespace());
    assert!(matches!(
        AmqpTransport::connect(config).await,
        Err(TransportError::InvalidUri { .. })
    ));
}

#[tokio::test]
async fn the_connection_has_heartbeats_and_the_name_it_was_given() {
    let name = unique_connection_name("messaging heartbeat test");
    let config = AmqpConfig::new(AMQP_URI, unique_namespace()).with_connection_name(&name);
    let transport = AmqpTransport::connect(config).await.unwrap();
    let connections = connections_named(&name).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(
        connections[0].1,
        AmqpConfig::DEFAULT_HEARTBEAT.as_secs().to_string()
    );
    transport.ready().await.unwrap();
    transport.close().await;
    assert!(matches!(
        transport.ready().await,
        Err(TransportError::Closed)
    ));
    eventually("the connection to close", || {
        let name = name.clone();
        async move { connections_named(&name).await.is_empty() }
    })
    .await;
}

#[tokio::test]
async fn frames_are_small_by_default_and_a_message_larger_than_many_frames_arrives_whole() {
    let name = unique_connection_name("messaging frame test");
    let transport: Arc<dyn Transport> = Arc::new(amqp_transport(unique_namespace(), &name).await);
    let body = |transport: Arc<dyn Transport>| {
        let name = name.clone();
        async move {
            let frame_max = connection_fields(&name, &["frame_max"]).await;
            assert_eq!(
                frame_max,
                vec![vec![AmqpConfig::DEFAULT_FRAME_MAX.to_string()]],
                "the connection asked for the default frame size"
            );
            let sink = spec("sink", &["#"]);
            let mut consumer = transport.consumer(&sink).await.unwrap();
            // 1 byte, one frame exactly, one byte more, and 40 frames' worth.
            let frame = AmqpConfig::DEFAULT_FRAME_MAX as usize - 8;
            let sizes = [1, frame, frame + 1, 40 * frame + 123];
            let messages: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(version, &size)| {
                    let mut message = message("order.Placed", "order-1", version as u64);
                    message.body = (0..size).map(|i| (i % 251) as u8).collect();
                    message
                })
                .collect();
            let mut publisher = transport.publisher().await.unwrap();
            assert_eq!(publish_all(&mut publisher, &messages).await, 0);
            let mut received = Vec::new();
            let deadline = tokio::time::Instant::now() + DEADLINE;
            while received.len() < messages.len() {
                let batch = tokio::time::timeout_at(
                    deadline,
                    consumer.next_batch(10, Duration::from_millis(5)),
                )
                .await
                .expect("every message arrives in time")
                .unwrap();
                if let Some(last) = batch.last() {
                    consumer.ack_up_to(last.tag).await.unwrap();
                }
                received.extend(batch.into_iter().map(|delivery| delivery.body));
            }
            let sent: Vec<_> = messages.into_iter().map(|m| m.body).collect();
            assert_eq!(received, sent);
        }
    };
    with_cleanup(transport, &body).await;
}

#[tokio::test]
async fn a_frame_size_in_the_uri_is_kept() {
    let name = unique_connection_name("messaging frame uri test");
    let config = AmqpConfig::new(format!("{AMQP_URI}?frame_max=65536"), unique_namespace())
        .with_connection_name(&name);
    let transport = AmqpTransport::connect(config).await.unwrap();
    let frame_max = connection_fields(&name, &["frame_max"]).await;
    transport.close().await;
    assert_eq!(frame_max, vec![vec!["65536".to_owned()]]);
}

#[tokio::test]
async fn the_raw_baselines_publish_and_consume_every_message() {
    let namespace = unique_namespace();
    let name = unique_connection_name("messaging baseline test");
    let config = AmqpConfig::new(AMQP_URI, namespace.clone()).with_connection_name(&name);
    let transport: Arc<dyn Transport> = Arc::new(amqp_transport(namespace, &name).await);
    let body = |transport: Arc<dyn Transport>| {
        let config = config.clone();
        async move {
            let sink = spec("sink", &["#"]);
            transport.declare_consumer(&sink).await.unwrap();
            let messages: Vec<_> = (0..500)
                .map(|v| message("order.Placed", "order-1", v))
                .collect();
            raw_publish_with_confirms(&config, &messages, 64)
                .await
                .unwrap();
            eventually("all 500 to wait in the queue", || {
                let transport = Arc::clone(&transport);
                let name = sink.name.clone();
                async move {
                    transport
                        .ready_messages(&name, QueueRole::Main)
                        .await
                        .unwrap()
                        == 500
                }
            })
            .await;
            let queue = transport.namespace().queue(&sink.name);
            raw_consume_with_batched_acks(&config, &queue, 500, 100, 64)
                .await
                .unwrap();
            eventually("the queue to be empty", || {
                let transport = Arc::clone(&transport);
                let name = sink.name.clone();
                async move {
                    transport
                        .ready_messages(&name, QueueRole::Main)
                        .await
                        .unwrap()
                        == 0
                }
            })
            .await;
        }
    };
    with_cleanup(transport, &body).await;
}

#[tokio::test]
async fn a_nacked_message_ends_the_confirmed_prefix_and_an_unroutable_one_before_it_counts_as_confirmed(
) {
    use lapin::{
        options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions},
        types::{AMQPValue, FieldTable},
        Connection, ConnectionProperties,
    };

    let transport: Arc<dyn Transport> = Arc::new(
        amqp_transport(
            unique_namespace(),
            &unique_connection_name("messaging nack test"),
        )
        .await,
    );
    let body = |transport: Arc<dyn Transport>| async move {
        // A queue that takes one message and refuses (nacks) any more. It is
        // exclusive, so the broker deletes it with the connection whatever
        // happens to the test.
        transport.declare_exchanges().await.unwrap();
        let connection = Connection::connect(AMQP_URI, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.full", transport.namespace());
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongInt(1));
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                transport.namespace().events_exchange().into(),
                "full.*".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();

        let mut publisher = transport.publisher().await.unwrap();
        let messages = [
            message("nobody.Listens", "x-1", 0),
            message("full.First", "f-1", 0),
            message("full.Second", "f-1", 1),
            message("nobody.Else", "x-2", 0),
        ];
        let report = publisher.publish_batch(&messages).await;
        assert_eq!(report.confirmed, 2, "{:?}", report.error);
        assert_eq!(report.unroutable.len(), 1);
        assert_eq!(report.unroutable[0].index, 0);
        assert_eq!(report.unroutable[0].routing_key, "nobody.Listens");
        match report.error {
            Some(PublishError::Nacked { routing_key }) => assert_eq!(routing_key, "full.Second"),
            other => panic!("expected a nack, got {other:?}"),
        }
        assert_eq!(
            publisher.in_flight(),
            0,
            "what followed the nack is forgotten"
        );

        // Once the queue has room, sending again from the first unconfirmed
        // message goes through.
        channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
        let report = publisher.publish_batch(&messages[2..]).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.confirmed, 2);
        assert_eq!(report.unroutable.len(), 1);
        assert_eq!(report.unroutable[0].index, 1);
        assert_eq!(report.unroutable[0].routing_key, "nobody.Else");

        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        connection.close(200, "done".into()).await.unwrap();
    };
    with_cleanup(transport, &body).await;
}
