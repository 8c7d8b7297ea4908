//! A child process for the crash test: appends as fast as it can with many
//! concurrent writers and prints one line per acknowledged append, until it is
//! killed.
//!
//! Usage: `store-crash-writer DIR WRITERS`. Writer `w` appends its `i`-th event
//! to stream `crash-w{w}` with id `(w << 64) | i` and data `{"w":w,"i":i}`, and
//! prints `ack POSITION w i` once the store has acknowledged it (so it is durable).

use std::io::Write;

use anyhow::Context;
use domain::envelope::NewEvent;
use event_store::{ExpectedVersion, Store, StoreOptions};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .context("usage: store-crash-writer DIR WRITERS")?;
    let writers: u64 = args
        .next()
        .context("usage: store-crash-writer DIR WRITERS")?
        .parse()
        .context("WRITERS must be a number")?;
    let options = StoreOptions {
        // Small segments, so the crash also exercises segment rolls.
        segment_size: 256 * 1024,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir, options)
        .await
        .context("failed to open the store")?;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let stream = format!("crash-w{w}");
            for i in 0u64.. {
                let event = NewEvent {
                    event_id: Uuid::from_u128((u128::from(w) << 64) | u128::from(i)),
                    event_type: "CrashTested".into(),
                    schema_version: 1,
                    data: format!(r#"{{"w":{w},"i":{i}}}"#),
                    metadata: "{}".into(),
                };
                let expected = if i == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(i - 1)
                };
                let result = store
                    .append(&stream, expected, vec![event])
                    .await
                    .context("append failed")?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {} {w} {i}", result.first_position)
                    .and_then(|()| out.flush())
                    .context("failed to print an ack")?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a writer panicked")??;
    }
    Ok(())
}
