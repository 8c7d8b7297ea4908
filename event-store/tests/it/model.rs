//! A model-based property test: random appends, reads and restarts against a
//! real store and an in-memory model of what it must hold.

use std::collections::HashMap;

use domain::envelope::{NewEvent, RecordedEvent};
use event_store::{AppendError, AppendResult, Direction, ExpectedVersion, Store, StoreOptions};
use proptest::prelude::*;
use uuid::Uuid;

const STREAMS: [&str; 4] = ["alpha-1", "alpha-2", "beta-1", "beta-x.y"];

#[derive(Debug, Clone)]
enum Expected {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expected: Expected,
        count: usize,
    },
    /// Appends again the batch of an earlier successful append (any index wraps).
    Reappend {
        batch: usize,
        expected: Expected,
    },
    ReadStream {
        stream: usize,
        from: u64,
        limit: usize,
        backward: bool,
    },
    ReadAll {
        from: u64,
        limit: usize,
    },
    ReadCategory {
        beta: bool,
        from: u64,
        limit: usize,
    },
    Reopen,
}

fn expected() -> impl Strategy<Value = Expected> {
    prop_oneof![
        Just(Expected::Any),
        Just(Expected::NoStream),
        Just(Expected::StreamExists),
        (0u64..6).prop_map(Expected::Exact),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..STREAMS.len(), expected(), 1usize..4)
            .prop_map(|(stream, expected, count)| Op::Append { stream, expected, count }),
        1 => (any::<usize>(), expected()).prop_map(|(batch, expected)| Op::Reappend { batch, expected }),
        2 => (0..STREAMS.len(), 0u64..8, 1usize..6, any::<bool>())
            .prop_map(|(stream, from, limit, backward)| Op::ReadStream { stream, from, limit, backward }),
        2 => (0u64..40, 1usize..20).prop_map(|(from, limit)| Op::ReadAll { from, limit }),
        1 => (any::<bool>(), 0u64..40, 1usize..20)
            .prop_map(|(beta, from, limit)| Op::ReadCategory { beta, from, limit }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    /// The log: (stream, version, event).
    log: Vec<(String, u64, NewEvent)>,
    heads: HashMap<String, u64>,
    batches: Vec<(String, Vec<NewEvent>, AppendResult)>,
}

impl Model {
    fn expected(&self, stream: &str, expected: &Expected) -> (ExpectedVersion, bool) {
        let current = self.heads.get(stream).copied();
        match expected {
            Expected::Any => (ExpectedVersion::Any, true),
            Expected::NoStream => (ExpectedVersion::NoStream, current.is_none()),
            Expected::StreamExists => (ExpectedVersion::StreamExists, current.is_some()),
            Expected::Exact(v) => (ExpectedVersion::Exact(*v), current == Some(*v)),
        }
    }

    fn append(&mut self, stream: &str, events: &[NewEvent]) -> AppendResult {
        let first_position = self.log.len() as u64;
        let first_version = self.heads.get(stream).map_or(0, |v| v + 1);
        for (i, event) in events.iter().enumerate() {
            self.log
                .push((stream.to_owned(), first_version + i as u64, event.clone()));
        }
        let last_version = first_version + events.len() as u64 - 1;
        self.heads.insert(stream.to_owned(), last_version);
        let result = AppendResult {
            first_position,
            last_position: first_position + events.len() as u64 - 1,
            next_expected_version: last_version,
            repeat: false,
            recorded_at: None,
        };
        self.batches
            .push((stream.to_owned(), events.to_vec(), result));
        result
    }

    fn check(&self, position: u64, event: &RecordedEvent) {
        let (stream, version, expected) = &self.log[position as usize];
        assert_eq!(event.position, position);
        assert_eq!(&event.stream, stream);
        assert_eq!(event.version, *version);
        assert_eq!(event.event_id, expected.event_id);
        assert_eq!(event.event_type, expected.event_type);
        assert_eq!(event.data, expected.data);
        assert_eq!(event.metadata, expected.metadata);
    }

    fn positions_of_stream(&self, stream: &str) -> Vec<u64> {
        (0..self.log.len() as u64)
            .filter(|p| self.log[*p as usize].0 == stream)
            .collect()
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let mut model = Model::default();
    let mut counter = 0u64;
    for op in ops {
        match op {
            Op::Append {
                stream,
                expected,
                count,
            } => {
                let stream = STREAMS[stream];
                let events: Vec<NewEvent> = (0..count)
                    .map(|_| {
                        counter += 1;
                        NewEvent {
                            event_id: Uuid::new_v4(),
                            event_type: "Modelled".into(),
                            schema_version: 1,
                            data: format!(r#"{{"n":{counter}}}"#),
                            metadata: "{}".into(),
                        }
                    })
                    .collect();
                let (expected, accepted) = model.expected(stream, &expected);
                let result = store.append(stream, expected, events.clone()).await;
                if accepted {
                    let result = result.unwrap();
                    assert!(
                        result.recorded_at.is_some(),
                        "a write says when it was recorded"
                    );
                    let result = AppendResult {
                        recorded_at: None,
                        ..result
                    };
                    assert_eq!(result, model.append(stream, &events));
                } else {
                    match result {
                        Err(AppendError::WrongExpectedVersion { current, .. }) => {
                            assert_eq!(current, model.heads.get(stream).copied())
                        }
                        other => panic!("expected a conflict, got {other:?}"),
                    }
                }
            }
            Op::Reappend { batch, expected } => {
                if model.batches.is_empty() {
                    continue;
                }
                let (stream, events, first) = model.batches[batch % model.batches.len()].clone();
                let (expected, _) = model.expected(&stream, &expected);
                assert_eq!(
                    store.append(&stream, expected, events).await.unwrap(),
                    AppendResult {
                        repeat: true,
                        ..first
                    }
                );
            }
            Op::ReadStream {
                stream,
                from,
                limit,
                backward,
            } => {
                let stream = STREAMS[stream];
                let direction = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let result = store.read_stream(stream, from, limit, direction).await;
                let positions = model.positions_of_stream(stream);
                if positions.is_empty() {
                    assert!(result.is_err(), "a missing stream is not found");
                    continue;
                }
                let mut expected: Vec<u64> = if backward {
                    positions.iter().rev().copied().collect()
                } else {
                    positions
                };
                expected.retain(|p| {
                    let version = model.log[*p as usize].1;
                    if backward {
                        version <= from
                    } else {
                        version >= from
                    }
                });
                expected.truncate(limit);
                let events = result.unwrap();
                assert_eq!(
                    events.iter().map(|e| e.position).collect::<Vec<_>>(),
                    expected
                );
                for event in &events {
                    model.check(event.position, event);
                }
            }
            Op::ReadAll { from, limit } => {
                let events = store.read_all(from, limit).await.unwrap();
                let expected: Vec<u64> = (from..model.log.len() as u64).take(limit).collect();
                assert_eq!(
                    events.iter().map(|e| e.position).collect::<Vec<_>>(),
                    expected
                );
                for event in &events {
                    model.check(event.position, event);
                }
            }
            Op::ReadCategory { beta, from, limit } => {
                let category = if beta { "beta" } else { "alpha" };
                let events = store.read_category(category, from, limit).await.unwrap();
                let expected: Vec<u64> = (from..model.log.len() as u64)
                    .filter(|p| model.log[*p as usize].0.starts_with(category))
                    .take(limit)
                    .collect();
                assert_eq!(
                    events.iter().map(|e| e.position).collect::<Vec<_>>(),
                    expected
                );
            }
            Op::Reopen => {
                store.shutdown().await.unwrap();
                drop(store);
                store = Store::open(dir.path(), StoreOptions::default())
                    .await
                    .unwrap();
            }
        }
        assert_eq!(store.head(), model.log.len() as u64);
    }
    for (stream, head) in &model.heads {
        assert_eq!(store.stream_version(stream).await.unwrap(), Some(*head));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn appends_reads_and_restarts_match_an_in_memory_model(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops));
    }
}
