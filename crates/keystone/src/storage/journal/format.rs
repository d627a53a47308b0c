//! The journal file's layout, and its replay.
//!
//! ```text
//! offset 0      header   magic "KSJRNL\0\x01" (8), identity (16), base sequence u64 LE,
//!                        CRC32C of the 32 bytes before it (u32 LE); 36 bytes in one sector
//! offset 4096   records, back to back:
//!                 sequence u64 LE, body length u32 LE,
//!                 body: operations in the order they were made, the last an END,
//!                 CRC32C of sequence, length and body (u32 LE)
//! operations    WRITE   1, offset u64, length u32, the bytes
//!               SET_LEN 2, length u64
//!               END     3, the store file's length at the sync, u64
//! ```
//!
//! The first record after the header has the header's base sequence, each next one the
//! sequence after it. Replay applies records from the first while each has the expected
//! sequence and a correct CRC, and stops at the first that does not: a record whose sync did
//! not finish, or the bytes of records older than the header (whose sequences are all lower,
//! since a header's base is always past every sequence written before it).

use std::io;

use redb::StorageBackend;

use crate::data::crc::crc_of;

/// What the header names: the store file the journal belongs to (its inode number and creation
/// time, `file.rs`), so that a journal left beside another file of the same name is not
/// replayed into it.
pub(crate) type Identity = [u8; 16];

const MAGIC: [u8; 8] = *b"KSJRNL\x00\x01";
/// Bytes of the header, all in its first sector (a sector's write is never torn in part).
pub(super) const HEADER_LEN: usize = 36;
const _: () = assert!(HEADER_LEN <= 512);
/// Where records begin.
pub(super) const START: u64 = 4096;
/// Sequence and body length.
pub(super) const RECORD_HEAD: usize = 12;
/// The CRC after the body.
pub(super) const RECORD_TAIL: usize = 4;
/// The END operation.
const END_LEN: usize = 9;
/// Largest body replay accepts (writers stay far below: `RECORD_MAX`).
const BODY_MAX: usize = 64 << 20;

const WRITE: u8 = 1;
const SET_LEN: u8 = 2;
const END: u8 = 3;

pub(super) fn encode_header(identity: &Identity, base: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..24].copy_from_slice(identity);
    h[24..32].copy_from_slice(&base.to_le_bytes());
    let crc = crc_of(&[&h[..32]]);
    h[32..36].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The identity and base sequence of a well-formed header.
fn decode_header(h: &[u8; HEADER_LEN]) -> Option<(Identity, u64)> {
    let crc = u32::from_le_bytes(h[32..36].try_into().ok()?);
    if h[..8] != MAGIC || crc != crc_of(&[&h[..32]]) {
        return None;
    }
    Some((h[8..24].try_into().ok()?, u64::from_le_bytes(h[24..32].try_into().ok()?)))
}

/// A record is built in place, in the buffer that is written: its head's place first (filled
/// in by [`seal`]), then each operation as it is made, with room kept for the END and the CRC,
/// so that sealing copies nothing.
fn make_room(rec: &mut Vec<u8>, op: usize) {
    if rec.is_empty() {
        rec.resize(RECORD_HEAD, 0);
    }
    rec.reserve(op + END_LEN + RECORD_TAIL);
}

/// Appends a write of `data` at `offset` to the record being built in `rec`.
pub(super) fn push_write(rec: &mut Vec<u8>, offset: u64, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| io::Error::other("a single write of 4 GiB or more"))?;
    make_room(rec, write_cost(data.len()));
    rec.push(WRITE);
    rec.extend_from_slice(&offset.to_le_bytes());
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(data);
    Ok(())
}

/// Bytes a write of `n` bytes adds to a record.
pub(super) const fn write_cost(n: usize) -> usize {
    13 + n
}

/// Appends a resize to `len` to the record being built in `rec`.
pub(super) fn push_set_len(rec: &mut Vec<u8>, len: u64) {
    make_room(rec, 9);
    rec.push(SET_LEN);
    rec.extend_from_slice(&len.to_le_bytes());
}

/// Bytes of the record being built in `rec` once sealed.
pub(super) fn sealed_len(rec: &[u8]) -> usize {
    rec.len().max(RECORD_HEAD) + END_LEN + RECORD_TAIL
}

/// Seals the record built in `rec` (ended with the store's length `store_len`) under sequence
/// `seq`: fills in its head, appends the END and the CRC.
pub(super) fn seal(seq: u64, mut rec: Vec<u8>, store_len: u64) -> io::Result<Vec<u8>> {
    make_room(&mut rec, 0);
    let body_len =
        u32::try_from(rec.len() - RECORD_HEAD + END_LEN).map_err(|_| io::Error::other("journal record too large"))?;
    rec[..8].copy_from_slice(&seq.to_le_bytes());
    rec[8..RECORD_HEAD].copy_from_slice(&body_len.to_le_bytes());
    rec.push(END);
    rec.extend_from_slice(&store_len.to_le_bytes());
    let crc = crc_of(&[&rec]);
    rec.extend_from_slice(&crc.to_le_bytes());
    Ok(rec)
}

/// What a journal held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Records applied to the store.
    pub records: u64,
    /// The sequence the emptied journal's header is to carry: past every one in the file.
    pub next_seq: u64,
    /// The journal had a header of another file, or none that could be read, and is to be
    /// emptied (cut to nothing) before it is used.
    pub foreign: bool,
}

fn malformed(seq: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("journal record {seq} passes its checksum but {what}: it was written by a different build"),
    )
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads `out` at `offset` if the journal holds all of it.
fn read_held(journal: &dyn StorageBackend, len: u64, offset: u64, out: &mut [u8]) -> io::Result<bool> {
    if offset.checked_add(out.len() as u64).is_none_or(|end| end > len) {
        return Ok(false);
    }
    journal.read(offset, out)?;
    Ok(true)
}

/// Applies one record's body to `store`, in the order its operations were made.
fn apply(store: &dyn StorageBackend, seq: u64, body: &[u8]) -> io::Result<()> {
    let mut at = 0;
    loop {
        let op = *body.get(at).ok_or_else(|| malformed(seq, "has no END"))?;
        match op {
            WRITE => {
                let offset = read_u64(body, at + 1).ok_or_else(|| malformed(seq, "ends inside a write"))?;
                let n = read_u32(body, at + 9).ok_or_else(|| malformed(seq, "ends inside a write"))? as usize;
                let data = body.get(at + 13..at + 13 + n).ok_or_else(|| malformed(seq, "ends inside a write"))?;
                store.write(offset, data)?;
                at += 13 + n;
            }
            SET_LEN => {
                let len = read_u64(body, at + 1).ok_or_else(|| malformed(seq, "ends inside a resize"))?;
                store.set_len(len)?;
                at += 9;
            }
            END => {
                let len = read_u64(body, at + 1).ok_or_else(|| malformed(seq, "ends inside its END"))?;
                if at + END_LEN != body.len() {
                    return Err(malformed(seq, "goes on past its END"));
                }
                if store.len()? != len {
                    store.set_len(len)?;
                }
                return Ok(());
            }
            other => return Err(malformed(seq, &format!("holds an operation {other}"))),
        }
    }
}

/// The journal's records, for `identity`'s store: calls `each` with every record that
/// replays, in order, while it returns `true`, and returns what it found. Nothing is written.
///
/// A journal that holds records of another store file, or that is not a journal at all (no
/// header that reads, yet longer than one), is refused (`InvalidData`): its records may be the
/// only copy of acknowledged writes — of a store file moved, copied or restored here, or of
/// this one under a name that changed — and it is never emptied unread.
fn scan(
    journal: &dyn StorageBackend,
    identity: &Identity,
    each: &mut dyn FnMut(u64, &[u8]) -> io::Result<bool>,
) -> io::Result<Replayed> {
    let len = journal.len()?;
    let mut header = [0u8; HEADER_LEN];
    if !read_held(journal, len, 0, &mut header)? {
        // An empty file, or one cut short in its first sector: never written by a journal
        // that held records (their header is synced first).
        return Ok(Replayed { records: 0, next_seq: 1, foreign: len > 0 });
    }
    let base = match decode_header(&header) {
        Some((id, base)) if id == *identity => base,
        Some((id, base)) => {
            let theirs = records_from(journal, len, base, &mut |_, _| Ok(false))?;
            if theirs.records > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "it holds commits of another store file ({}; this one is {}), which a crash left unreplayed: \
                         the store file was replaced, copied or restored here since. Move the journal away to open \
                         the file as it is, or put back the file it belongs to",
                        describe(&id),
                        describe(identity)
                    ),
                ));
            }
            return Ok(Replayed { records: 0, next_seq: 1, foreign: true });
        }
        // Longer than a header: a journal's header was synced before it grew, so this is not
        // a journal cut short while it was made.
        None if len > HEADER_LEN as u64 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is not a Keystone journal (its first bytes are not a journal's header): move it away",
            ));
        }
        None => return Ok(Replayed { records: 0, next_seq: 1, foreign: true }),
    };
    records_from(journal, len, base, each)
}

/// What an identity names, for messages (`file.rs`: the inode number, the creation time).
fn describe(id: &Identity) -> String {
    let ino = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
    let born = u64::from_le_bytes(id[8..].try_into().unwrap_or_default());
    format!("inode {ino}, created {}.{:09} s after 1970", born / 1_000_000_000, born % 1_000_000_000)
}

/// The records from `START` on, the first with sequence `base` (see [`scan`]).
fn records_from(
    journal: &dyn StorageBackend,
    len: u64,
    base: u64,
    each: &mut dyn FnMut(u64, &[u8]) -> io::Result<bool>,
) -> io::Result<Replayed> {
    let (mut seq, mut at, mut records) = (base, START, 0u64);
    loop {
        let mut head = [0u8; RECORD_HEAD];
        if !read_held(journal, len, at, &mut head)? {
            break;
        }
        let (Some(found), Some(body_len)) = (read_u64(&head, 0), read_u32(&head, 8)) else { break };
        let body_len = body_len as usize;
        if found != seq || body_len > BODY_MAX {
            break;
        }
        let mut rest = vec![0u8; body_len + RECORD_TAIL];
        if !read_held(journal, len, at + RECORD_HEAD as u64, &mut rest)? {
            break;
        }
        let (body, tail) = rest.split_at(body_len);
        let stored = read_u32(tail, 0).unwrap_or(0);
        if stored != crc_of(&[&head, body]) {
            break;
        }
        let more = each(seq, body)?;
        records += 1;
        if !more {
            break;
        }
        seq += 1;
        at += (RECORD_HEAD + body_len + RECORD_TAIL) as u64;
    }
    // One past the last sequence met, so that a record whose sync never finished (and that
    // failed its CRC here) can never be taken for a later one.
    Ok(Replayed { records, next_seq: seq + 1, foreign: false })
}

/// Applies `journal`'s records for `identity`'s store to `store`, then syncs the store if any
/// were applied. The journal itself is not changed.
pub(crate) fn replay(
    store: &dyn StorageBackend,
    journal: &dyn StorageBackend,
    identity: &Identity,
) -> io::Result<Replayed> {
    let found = scan(journal, identity, &mut |seq, body| apply(store, seq, body).map(|()| true))?;
    if found.records > 0 {
        store.sync_data()?;
    }
    Ok(found)
}

/// Whether `journal` holds records of `identity`'s store: the store was not closed cleanly.
pub(crate) fn holds_records(journal: &dyn StorageBackend, identity: &Identity) -> io::Result<bool> {
    Ok(scan(journal, identity, &mut |_, _| Ok(false))?.records > 0)
}
