//! The crash test: a child process appends as fast as it can, is killed with
//! SIGKILL mid-flight, and every append it had acknowledged must be there.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use event_store::{Direction, Store, StoreOptions};
use uuid::Uuid;

use crate::fixtures::DEADLINE;

/// Acknowledged appends to wait for before the kill.
const ACKS: usize = 3000;
/// Concurrent writers in the child.
const WRITERS: &str = "64";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    position: u64,
    writer: u64,
    index: u64,
}

fn parse_ack(line: &str) -> Ack {
    let fields: Vec<u64> = line
        .strip_prefix("ack ")
        .unwrap_or_else(|| panic!("unexpected line from the child: {line:?}"))
        .split(' ')
        .map(|field| field.parse().unwrap())
        .collect();
    Ack {
        position: fields[0],
        writer: fields[1],
        index: fields[2],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_a_sigkill_and_the_log_has_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
        .arg(dir.path())
        .arg(WRITERS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the crash writer starts");
    let stdout = child.stdout.take().unwrap();

    // Read acks on a thread, so the wait for them has a deadline.
    let (lines, acks_in) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // Only whole lines count: the kill may cut the last one short.
        while stdout.read_line(&mut line).is_ok_and(|read| read > 0) && line.ends_with('\n') {
            if lines.send(line.trim_end().to_owned()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut acks = Vec::with_capacity(ACKS);
    while acks.len() < ACKS {
        let line = acks_in
            .recv_timeout(DEADLINE)
            .expect("the child keeps acknowledging appends");
        acks.push(parse_ack(&line));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    // Acks printed before the kill count too: they were acknowledged.
    reader.join().unwrap();
    while let Ok(line) = acks_in.try_recv() {
        acks.push(parse_ack(&line));
    }

    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .expect("the store recovers after the kill");
    let head = store.head();
    let highest = acks.iter().map(|ack| ack.position).max().unwrap();
    assert!(
        head > highest,
        "head {head} covers every ack up to {highest}"
    );

    // The whole log, in order and dense.
    let mut log = Vec::new();
    while (log.len() as u64) < head {
        let batch = store.read_all(log.len() as u64, 10_000).await.unwrap();
        assert!(!batch.is_empty());
        log.extend(batch);
    }
    for (position, event) in log.iter().enumerate() {
        assert_eq!(event.position, position as u64, "no gap in the log");
    }

    // Every acknowledged event, with its data, where the ack said.
    for ack in &acks {
        let event = &log[ack.position as usize];
        assert_eq!(
            event.event_id,
            Uuid::from_u128((u128::from(ack.writer) << 64) | u128::from(ack.index))
        );
        assert_eq!(event.stream, format!("crash-w{}", ack.writer));
        assert_eq!(event.version, ack.index);
        assert_eq!(
            event.data,
            format!(r#"{{"w":{},"i":{}}}"#, ack.writer, ack.index)
        );
    }

    // Each stream is dense from version 0 and agrees with the log.
    let mut per_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &log {
        per_stream
            .entry(event.stream.as_str())
            .or_default()
            .push(event.version);
    }
    for (stream, versions) in per_stream {
        assert!(versions.iter().enumerate().all(|(i, v)| *v == i as u64));
        let read = store
            .read_stream(stream, 0, 100_000, Direction::Forward)
            .await
            .unwrap();
        assert_eq!(
            read.len(),
            versions.len(),
            "the index of {stream} matches the log"
        );
    }
}
