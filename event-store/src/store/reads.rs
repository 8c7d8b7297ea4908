//! Reading: straight from the segment files, guided by the index, never past
//! the published head (so never anything that is not yet durable).
//!
//! These functions block (file reads, sled); the async methods of
//! [`super::Store`] run them on tokio's blocking pool.

use std::sync::Arc;

use domain::codec;
use domain::envelope::RecordedEvent;

use super::{Direction, ReadError, Segment, Shared, StorageError, SPARSE_STRIDE};
use crate::log::{self, Frame, FrameReader};

/// The segment holding `position`, and the position where the next segment starts.
fn segment_for(shared: &Shared, position: u64) -> Result<(Arc<Segment>, u64), StorageError> {
    let segments = shared.segments.read();
    let index = segments.partition_point(|segment| segment.first_position <= position);
    let segment = index
        .checked_sub(1)
        .and_then(|i| segments.get(i))
        .ok_or(StorageError::MissingSegment { position })?;
    let end = segments
        .get(index)
        .map_or(u64::MAX, |next| next.first_position);
    Ok((segment.clone(), end))
}

fn decode_at(
    segment: &Segment,
    position: u64,
    offset: u64,
    payload: &[u8],
) -> Result<RecordedEvent, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        position,
        segment: segment.path.clone(),
        offset,
        reason,
    };
    let event: RecordedEvent =
        codec::decode(payload).map_err(|error| corrupt(format!("undecodable: {error}")))?;
    if event.position != position {
        return Err(corrupt(format!(
            "the record says position {}",
            event.position
        )));
    }
    Ok(event)
}

/// Reads the event at `position`, whose frame starts at `offset` in its segment.
fn read_one(shared: &Shared, position: u64, offset: u64) -> Result<RecordedEvent, StorageError> {
    let (segment, _) = segment_for(shared, position)?;
    let payload = log::read_frame_at(&segment.file, offset)
        .map_err(StorageError::io("cannot read a segment"))?
        .map_err(|damage| StorageError::Corrupt {
            position,
            segment: segment.path.clone(),
            offset,
            reason: damage.to_string(),
        })?;
    decode_at(&segment, position, offset, &payload)
}

pub(super) fn read_all(
    shared: &Shared,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let head = shared.head();
    let end = head.min(from.saturating_add(limit as u64));
    let mut events = Vec::with_capacity(end.saturating_sub(from) as usize);
    let mut position = from;
    while position < end {
        let (segment, segment_end) = segment_for(shared, position)?;
        let stop = end.min(segment_end);
        let slot = (position - segment.first_position) / SPARSE_STRIDE;
        let start_offset = segment
            .sparse
            .read()
            .get(slot as usize)
            .copied()
            .ok_or(StorageError::MissingSegment { position })?;
        let mut at = segment.first_position + slot * SPARSE_STRIDE;
        // Read ahead roughly what the wanted records take, within sane bounds.
        let chunk = ((stop - at) as usize)
            .saturating_mul(512)
            .clamp(16 * 1024, 4 * 1024 * 1024);
        let mut reader = FrameReader::new(&segment.file, start_offset, chunk);
        while at < stop {
            let wanted = at >= position;
            match reader
                .next_frame(wanted)
                .map_err(StorageError::io("cannot read a segment"))?
            {
                Frame::Record { offset, payload } => {
                    if wanted {
                        events.push(decode_at(&segment, at, offset, payload)?);
                    }
                }
                Frame::End => {
                    return Err(StorageError::Corrupt {
                        position: at,
                        segment: segment.path.clone(),
                        offset: reader.offset(),
                        reason: "the segment ends before the head".into(),
                    }
                    .into())
                }
                Frame::Damaged { offset, damage } => {
                    return Err(StorageError::Corrupt {
                        position: at,
                        segment: segment.path.clone(),
                        offset,
                        reason: damage.to_string(),
                    }
                    .into())
                }
            }
            at += 1;
        }
        position = stop;
    }
    Ok(events)
}

pub(super) fn read_stream(
    shared: &Shared,
    stream: &str,
    from: u64,
    limit: usize,
    direction: Direction,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let head = shared.head();
    let forward = direction == Direction::Forward;
    let mut events = Vec::new();
    if limit > 0 {
        for entry in shared.index.stream_entries(stream, from, forward) {
            let entry = entry?;
            if entry.position >= head {
                // Indexed but not yet published: not durable as far as readers know.
                if forward {
                    break;
                }
                continue;
            }
            events.push(read_one(shared, entry.position, entry.offset)?);
            if events.len() >= limit {
                break;
            }
        }
    }
    if events.is_empty() && !stream_exists(shared, stream, head)? {
        return Err(ReadError::StreamNotFound {
            stream: stream.to_owned(),
        });
    }
    Ok(events)
}

fn stream_exists(shared: &Shared, stream: &str, head: u64) -> Result<bool, ReadError> {
    Ok(shared
        .index
        .stream_entry(stream, 0)?
        .is_some_and(|entry| entry.position < head))
}

pub(super) fn stream_version(shared: &Shared, stream: &str) -> Result<Option<u64>, ReadError> {
    let head = shared.head();
    for entry in shared.index.stream_entries(stream, u64::MAX, false) {
        let entry = entry?;
        if entry.position < head {
            return Ok(Some(entry.version));
        }
    }
    Ok(None)
}

pub(super) fn read_category(
    shared: &Shared,
    category: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let head = shared.head();
    let mut events = Vec::new();
    if limit == 0 {
        return Ok(events);
    }
    for entry in shared.index.category_entries(category, from)? {
        let entry = entry?;
        if entry.position >= head {
            break;
        }
        events.push(read_one(shared, entry.position, entry.offset)?);
        if events.len() >= limit {
            break;
        }
    }
    Ok(events)
}
