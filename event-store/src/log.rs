//! The append-only log on disk: segment files of framed records.
//!
//! A segment is named after the global position of its first record
//! (`00000000000000000042.seg`) and holds records back to back, each framed as
//!
//! ```text
//! +----------+----------+----------------------------------------------+
//! | len: u32 | crc: u32 | payload: `len` bytes = codec(RecordedEvent)   |
//! +----------+----------+----------------------------------------------+
//! ```
//!
//! both little-endian. `crc` is the CRC32C of the four length bytes followed by
//! the payload, so a damaged length is caught as well as a damaged payload.
//! This module only frames and unframes bytes; what a damaged frame means
//! (a torn tail or corruption) is decided by recovery in [`crate::store`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes before the payload: length and checksum.
pub(crate) const HEADER_LEN: usize = 8;

/// The largest payload a frame may carry (the codec's own decoding limit).
pub(crate) const MAX_PAYLOAD_LEN: u32 = 64 * 1024 * 1024;

/// The file extension of segment files.
const SEGMENT_EXTENSION: &str = "seg";

/// Appends one framed record holding `payload` to `out`.
pub(crate) fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    // Payloads are bounded by the append limits, far below 4 GiB.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The file name of the segment whose first record is at `first_position`.
pub(crate) fn segment_file_name(first_position: u64) -> String {
    format!("{first_position:020}.{SEGMENT_EXTENSION}")
}

/// The first position encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The segment files in `dir`, ordered by first position. Files that are not
/// segments are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(parse_segment_file_name) {
            segments.push((first, entry.path()));
        }
    }
    segments.sort_by_key(|(first, _)| *first);
    Ok(segments)
}

/// What is wrong with a frame that could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Fewer than [`HEADER_LEN`] bytes are left in the file.
    ShortHeader {
        /// Bytes left.
        available: usize,
    },
    /// The length field is zero (no record is empty; zeros are unwritten space).
    ZeroLength,
    /// The length field exceeds [`MAX_PAYLOAD_LEN`].
    TooLong {
        /// The length read.
        len: u32,
    },
    /// The file ends inside the payload.
    ShortPayload {
        /// The length read.
        len: u32,
        /// Payload bytes present.
        available: usize,
    },
    /// The checksum does not match.
    ChecksumMismatch {
        /// The length read.
        len: u32,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShortHeader { available } => {
                write!(
                    f,
                    "only {available} bytes left for an {HEADER_LEN}-byte header"
                )
            }
            Self::ZeroLength => write!(f, "zero length"),
            Self::TooLong { len } => write!(f, "length {len} exceeds {MAX_PAYLOAD_LEN}"),
            Self::ShortPayload { len, available } => {
                write!(f, "length {len} but only {available} payload bytes left")
            }
            Self::ChecksumMismatch { len } => write!(f, "CRC32C mismatch (length {len})"),
        }
    }
}

/// One step of a [`FrameReader`].
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A whole record whose checksum matched (or was not checked).
    Record {
        /// Offset of its header in the file.
        offset: u64,
        /// The payload.
        payload: &'a [u8],
    },
    /// The file ends exactly here.
    End,
    /// The frame at `offset` is damaged; reading cannot go on past it.
    Damaged {
        /// Offset of the damaged frame's header.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
}

/// Reads frames sequentially from a file through a buffer, with positioned reads
/// (`pread`), so many readers can share one file handle with the writer.
pub(crate) struct FrameReader<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    start: usize,
    end: usize,
    eof: bool,
}

impl<'f> FrameReader<'f> {
    /// A reader starting at `offset`, reading ahead `chunk` bytes at a time.
    pub(crate) fn new(file: &'f File, offset: u64, chunk: usize) -> Self {
        Self {
            file,
            buf: vec![0; chunk.max(HEADER_LEN * 2)],
            buf_offset: offset,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The file offset of the next frame.
    pub(crate) fn offset(&self) -> u64 {
        self.buf_offset + self.start as u64
    }

    /// Makes at least `need` unread bytes available if the file has them;
    /// returns how many are available.
    fn fill(&mut self, need: usize) -> io::Result<usize> {
        while self.end - self.start < need && !self.eof {
            if self.buf.len() - self.start < need {
                // Move the unread bytes to the front, growing the buffer if one frame needs it.
                self.buf.copy_within(self.start..self.end, 0);
                self.buf_offset += self.start as u64;
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < need {
                    self.buf.resize(need, 0);
                }
            }
            let read = self
                .file
                .read_at(&mut self.buf[self.end..], self.buf_offset + self.end as u64)?;
            if read == 0 {
                self.eof = true;
            }
            self.end += read;
        }
        Ok(self.end - self.start)
    }

    /// Reads the next frame; checks its CRC when `verify` is set.
    pub(crate) fn next_frame(&mut self, verify: bool) -> io::Result<Frame<'_>> {
        let offset = self.offset();
        let available = self.fill(HEADER_LEN)?;
        if available == 0 {
            return Ok(Frame::End);
        }
        if available < HEADER_LEN {
            return Ok(Frame::Damaged {
                offset,
                damage: Damage::ShortHeader { available },
            });
        }
        let header = &self.buf[self.start..self.start + HEADER_LEN];
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 {
            return Ok(Frame::Damaged {
                offset,
                damage: Damage::ZeroLength,
            });
        }
        if len > MAX_PAYLOAD_LEN {
            return Ok(Frame::Damaged {
                offset,
                damage: Damage::TooLong { len },
            });
        }
        let total = HEADER_LEN + len as usize;
        let available = self.fill(total)?;
        if available < total {
            return Ok(Frame::Damaged {
                offset,
                damage: Damage::ShortPayload {
                    len,
                    available: available - HEADER_LEN,
                },
            });
        }
        let payload_start = self.start + HEADER_LEN;
        let payload_end = self.start + total;
        if verify {
            let actual = crc32c::crc32c_append(
                crc32c::crc32c(&len_bytes),
                &self.buf[payload_start..payload_end],
            );
            if actual != crc {
                return Ok(Frame::Damaged {
                    offset,
                    damage: Damage::ChecksumMismatch { len },
                });
            }
        }
        self.start = payload_end;
        Ok(Frame::Record {
            offset,
            payload: &self.buf[payload_start..payload_end],
        })
    }
}

/// Reads the one record whose header is at `offset`, checking its CRC.
pub(crate) fn read_frame_at(file: &File, offset: u64) -> io::Result<Result<Vec<u8>, Damage>> {
    // Most events are small: one read of a few hundred bytes usually gets all of it.
    let mut reader = FrameReader::new(file, offset, 1024);
    Ok(match reader.next_frame(true)? {
        Frame::Record { payload, .. } => Ok(payload.to_vec()),
        Frame::End => Err(Damage::ShortHeader { available: 0 }),
        Frame::Damaged { damage, .. } => Err(damage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_file_name(0));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, File::open(&path).unwrap())
    }

    #[test]
    fn frames_round_trip_through_a_small_read_buffer() {
        let mut bytes = Vec::new();
        let payloads: Vec<Vec<u8>> = (1..50u8).map(|n| vec![n; n as usize * 7]).collect();
        for payload in &payloads {
            append_frame(&mut bytes, payload);
        }
        let (_dir, file) = file_with(&bytes);
        // A 16-byte buffer forces the reader to grow and refill for most frames.
        let mut reader = FrameReader::new(&file, 0, 16);
        for expected in &payloads {
            match reader.next_frame(true).unwrap() {
                Frame::Record { payload, .. } => assert_eq!(payload, &expected[..]),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(matches!(reader.next_frame(true).unwrap(), Frame::End));
        assert_eq!(reader.offset(), bytes.len() as u64);
    }

    #[test]
    fn damaged_frames_are_reported_with_their_offset_and_kind() {
        let mut bytes = Vec::new();
        append_frame(&mut bytes, b"first");
        let second_offset = bytes.len() as u64;
        append_frame(&mut bytes, b"second");

        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let (_dir, file) = file_with(&flipped);
        let mut reader = FrameReader::new(&file, 0, 64);
        assert!(matches!(
            reader.next_frame(true).unwrap(),
            Frame::Record { .. }
        ));
        match reader.next_frame(true).unwrap() {
            Frame::Damaged { offset, damage } => {
                assert_eq!(offset, second_offset);
                assert_eq!(damage, Damage::ChecksumMismatch { len: 6 });
            }
            other => panic!("unexpected {other:?}"),
        }

        let (_dir, file) = file_with(&bytes[..bytes.len() - 2]);
        let mut reader = FrameReader::new(&file, second_offset, 64);
        assert!(matches!(
            reader.next_frame(true).unwrap(),
            Frame::Damaged {
                damage: Damage::ShortPayload {
                    len: 6,
                    available: 4
                },
                ..
            }
        ));

        let (_dir, file) = file_with(&bytes[..second_offset as usize + 3]);
        let mut reader = FrameReader::new(&file, second_offset, 64);
        assert!(matches!(
            reader.next_frame(true).unwrap(),
            Frame::Damaged {
                damage: Damage::ShortHeader { available: 3 },
                ..
            }
        ));

        let (_dir, file) = file_with(&[0; 32]);
        let mut reader = FrameReader::new(&file, 0, 64);
        assert!(matches!(
            reader.next_frame(true).unwrap(),
            Frame::Damaged {
                damage: Damage::ZeroLength,
                ..
            }
        ));
    }

    #[test]
    fn segment_names_sort_by_position_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.tmp"), None);
    }
}
