//! Binary record formats. Every record starts with a format version byte; integers are
//! little-endian, strings and byte strings are prefixed with their u32 length. The formats are
//! documented in docs/design.md; a record that does not decode is reported as corruption.

use crate::error::Result;
use crate::types::ObjectMeta;

mod codec;
mod done;
use codec::{Dec, Enc, corrupt};
pub(crate) use done::DoneRecord;

/// Version byte of the records that carry no checksum of their own: bucket, upload and
/// completed-upload records, queued frees, chunks (whose payload has its CRC32C), and the
/// manifests, parts and staging records of earlier releases.
pub(crate) const FORMAT_V1: u8 = 1;
/// Version byte of the records that name segments — manifests, part records, staging records
/// — as this release writes them: the V1 layout plus a CRC32C of the record (a manifest's
/// inline body excepted: the object's CRC32C, inside the checked part, covers it). The segments
/// a record names are the chunks an overwrite, a delete or a recovery frees: an id damaged
/// into another live segment's would otherwise free that object's chunks, and a ranged read
/// return its bytes.
pub(crate) const FORMAT_V2: u8 = 2;
/// Version byte of a manifest as this release writes it: the V2 layout, its seal also covering
/// the bucket and key it belongs to ([`Owner`]). A manifest is stored under its key, or inside a
/// pack under the pack's; a key damaged in a redb page or in a pack's framing would hand one
/// object's manifest to another key, and its V2 seal, over the value alone, holds there.
pub(crate) const FORMAT_V3: u8 = 3;

/// The object a manifest belongs to, which a V3 manifest's seal covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
}

impl Owner<'_> {
    /// The seal of `record` (the bytes before the seal) as this object's: the CRC32C of
    /// `bucket NUL key` followed by the record — the object's record key, then its value.
    pub(crate) fn seal(&self, record: &[u8]) -> u32 {
        crate::data::crc::crc_of(&[self.bucket.as_bytes(), b"\0", self.key.as_bytes(), record])
    }
}
/// Bytes in front of a chunk's payload: version byte and CRC32C of the payload.
pub(crate) const CHUNK_HEADER: usize = 5;

/// A bucket's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketRecord {
    pub created: u64,
}

impl BucketRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u64(self.created);
        e.0
    }
    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::new(buf, "bucket record")?;
        let r = BucketRecord { created: d.u64()? };
        d.finish()?;
        Ok(r)
    }
}

/// A run of chunks written under one id: a whole single-put object, or one multipart part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub id: u64,
    pub len: u64,
    /// Payload bytes per chunk (the last may be shorter).
    pub chunk_size: u32,
}

impl Segment {
    fn encode(&self, e: &mut Enc) {
        e.u64(self.id).u64(self.len).u32(self.chunk_size);
    }
    fn decode(d: &mut Dec<'_>) -> Result<Self> {
        let s = Segment { id: d.u64()?, len: d.u64()?, chunk_size: d.u32()? };
        if s.chunk_size == 0 && s.len > 0 {
            return Err(corrupt("segment has chunk size 0"));
        }
        // Chunks are numbered with a u32 in their keys.
        if s.chunks() > u64::from(u32::MAX) + 1 {
            return Err(corrupt("segment has more chunks than a chunk index can number"));
        }
        Ok(s)
    }
    /// Number of chunks.
    pub(crate) fn chunks(&self) -> u64 {
        super::chunking::chunk_count(self.len, self.chunk_size)
    }
}

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Small objects live in the manifest itself: one lookup per read.
    Inline(Vec<u8>),
    /// Larger ones in chunks, segment after segment.
    Segments(Vec<Segment>),
}

/// A body as decoded in place: an inline body borrowed from its record, or the segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyRef<'a> {
    Inline(&'a [u8]),
    Segments(Vec<Segment>),
}

/// What a read needs from a manifest: the object's size and CRC32C, and where its bytes are.
/// An inline body stays in the record, so a read copies only the bytes it returns. The ETag
/// and metadata are checked as [`Manifest::decode`] checks them (a read accepts exactly the
/// records it accepts) but not copied: a get allocates nothing for them.
#[derive(Debug)]
pub(crate) struct ReadPlan<'a> {
    pub size: u64,
    pub crc: u32,
    pub body: BodyRef<'a>,
}

impl<'a> ReadPlan<'a> {
    pub(crate) fn decode(buf: &'a [u8], owner: Owner<'_>) -> Result<Self> {
        let (m, body) = Manifest::parse(buf, false, owner)?;
        Ok(ReadPlan { size: m.size, crc: m.crc, body })
    }
}

/// An object's manifest: everything about it but (for chunked objects) its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub size: u64,
    pub etag: String,
    pub crc: u32,
    pub created: u64,
    pub modified: u64,
    pub parts: u32,
    pub meta: ObjectMeta,
    pub body: Body,
}

pub(crate) fn encode_meta(e: &mut Enc, m: &ObjectMeta) {
    e.opt_str(m.content_type.as_deref())
        .opt_str(m.cache_control.as_deref())
        .opt_str(m.content_disposition.as_deref())
        .opt_str(m.content_encoding.as_deref())
        .opt_str(m.content_language.as_deref())
        .opt_str(m.expires.as_deref());
    e.u32(m.user.len() as u32);
    for (k, v) in &m.user {
        e.str(k).str(v);
    }
}

/// Bytes `encode_meta` writes for `m`, near enough to size a buffer.
fn meta_len(m: &ObjectMeta) -> usize {
    let fields = [
        &m.content_type,
        &m.cache_control,
        &m.content_disposition,
        &m.content_encoding,
        &m.content_language,
        &m.expires,
    ];
    let opt: usize = fields.iter().map(|f| 5 + f.as_ref().map_or(0, String::len)).sum();
    opt + 4 + m.user.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>()
}

/// Decodes the metadata; with `keep` false only checks it (a read needs none of it) and returns
/// it empty, without allocating.
fn decode_meta(d: &mut Dec<'_>, keep: bool) -> Result<ObjectMeta> {
    let mut opt = || -> Result<Option<String>> { Ok(d.opt_str()?.filter(|_| keep).map(str::to_owned)) };
    let mut m = ObjectMeta {
        content_type: opt()?,
        cache_control: opt()?,
        content_disposition: opt()?,
        content_encoding: opt()?,
        content_language: opt()?,
        expires: opt()?,
        user: std::collections::BTreeMap::new(),
    };
    let n = d.u32()?;
    for _ in 0..n {
        let (k, v) = (d.str()?, d.str()?);
        if keep {
            m.user.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(m)
}

const BODY_INLINE: u8 = 0;
const BODY_SEGMENTS: u8 = 1;

/// A body to encode, borrowed: a new small object's bytes go from the caller's buffer straight
/// into its record, with no owned copy in between.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodySlice<'a> {
    Inline(&'a [u8]),
    Segments(&'a [Segment]),
}

/// A manifest of an earlier release (version 1 or 2) as this release writes it — version 3,
/// sealed with `owner`, every field the same; `None` for one already of version 3, or one that
/// does not decode (left as it is, for `verify` to report).
pub(crate) fn reseal(buf: &[u8], owner: Owner<'_>) -> Option<Vec<u8>> {
    if buf.first() == Some(&FORMAT_V3) {
        return None;
    }
    Manifest::decode(buf, owner).ok().map(|m| m.encode(owner))
}

/// A version 3 manifest as the releases before wrote it: `version` 2 (sealed without its owner)
/// or 1 (no seal). `body`: the length of an inline body, which follows the seal.
#[cfg(test)]
pub(crate) fn as_version(v3: &[u8], body: usize, version: u8) -> Vec<u8> {
    let at = v3.len() - body - 4;
    let mut v2 = v3.to_vec();
    v2[0] = FORMAT_V2;
    let seal = crate::data::crc::crc(&v2[..at]);
    v2[at..at + 4].copy_from_slice(&seal.to_le_bytes());
    if version == FORMAT_V2 {
        return v2;
    }
    let mut v1 = [&v2[..at], &v2[at + 4..]].concat();
    v1[0] = FORMAT_V1;
    v1
}

impl Manifest {
    pub(crate) fn encode(&self, owner: Owner<'_>) -> Vec<u8> {
        self.encode_with(
            match &self.body {
                Body::Inline(data) => BodySlice::Inline(data),
                Body::Segments(segs) => BodySlice::Segments(segs),
            },
            owner,
        )
    }

    /// The record of this manifest with `body` in place of `self.body`, as `owner`'s.
    pub(crate) fn encode_with(&self, body: BodySlice<'_>, owner: Owner<'_>) -> Vec<u8> {
        // Sized up front: an inline body would otherwise regrow the buffer several times.
        let inline = match body {
            BodySlice::Inline(data) => data.len(),
            BodySlice::Segments(segs) => segs.len() * 24,
        };
        let mut e = Enc::versioned(132 + self.etag.len() + meta_len(&self.meta) + inline, FORMAT_V3);
        e.u64(self.size).str(&self.etag).u32(self.crc).u64(self.created).u64(self.modified).u32(self.parts);
        encode_meta(&mut e, &self.meta);
        // The body comes last: the fixed fields and metadata decode the same whatever it is.
        // The record's CRC32C follows everything but an inline body's bytes, which the
        // object's CRC32C covers: a get does not pass over them twice.
        match body {
            BodySlice::Inline(data) => {
                e.u8(BODY_INLINE).u32(data.len() as u32).seal_as(owner);
                e.0.extend_from_slice(data);
            }
            BodySlice::Segments(segs) => {
                e.u8(BODY_SEGMENTS).u32(segs.len() as u32);
                for s in segs {
                    s.encode(&mut e);
                }
                e.seal_as(owner);
            }
        }
        e.0
    }

    /// Decodes the whole manifest, body included.
    pub(crate) fn decode(buf: &[u8], owner: Owner<'_>) -> Result<Self> {
        let (mut m, body) = Self::parse(buf, true, owner)?;
        m.body = match body {
            BodyRef::Inline(data) => Body::Inline(data.to_vec()),
            BodyRef::Segments(segs) => Body::Segments(segs),
        };
        Ok(m)
    }

    /// Decodes everything but an inline body (left empty): what listings and `head` need.
    pub(crate) fn decode_head(buf: &[u8], owner: Owner<'_>) -> Result<Self> {
        let (mut m, body) = Self::parse(buf, true, owner)?;
        if let BodyRef::Segments(segs) = body {
            m.body = Body::Segments(segs);
        }
        Ok(m)
    }

    /// The one decoder of the three views above: checks the whole record and returns its
    /// fields with the body left empty (the caller fills it from the `BodyRef`), the ETag and
    /// metadata copied only with `keep`.
    fn parse<'b>(buf: &'b [u8], keep: bool, owner: Owner<'_>) -> Result<(Self, BodyRef<'b>)> {
        let mut d = Dec::manifest(buf)?;
        let size = d.u64()?;
        let etag = d.str()?;
        let etag = if keep { etag.to_owned() } else { String::new() };
        let crc = d.u32()?;
        let created = d.u64()?;
        let modified = d.u64()?;
        let parts = d.u32()?;
        let meta = decode_meta(&mut d, keep)?;
        let body = match d.u8()? {
            BODY_INLINE => {
                let n = d.u32()? as usize;
                d.check_sealed_as(owner)?;
                let data = d.take(n)?;
                if data.len() as u64 != size {
                    return Err(corrupt("inline body length differs from the object size"));
                }
                BodyRef::Inline(data)
            }
            BODY_SEGMENTS => {
                let n = d.u32()?;
                let mut segs = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    segs.push(Segment::decode(&mut d)?);
                }
                // Checked: lengths from a damaged record may overflow when added up.
                let total = segs.iter().try_fold(0u64, |acc, s| acc.checked_add(s.len));
                d.check_sealed_as(owner)?;
                if total != Some(size) {
                    return Err(corrupt("segment lengths do not add up to the object size"));
                }
                BodyRef::Segments(segs)
            }
            t => return Err(corrupt(&format!("object manifest has an unknown body kind {t}"))),
        };
        d.finish()?;
        let m = Manifest { size, etag, crc, created, modified, parts, meta, body: Body::Inline(Vec::new()) };
        Ok((m, body))
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        match &self.body {
            Body::Segments(s) => s,
            Body::Inline(_) => &[],
        }
    }
}

/// Why a segment is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StagePurpose {
    Put = 0,
    Part = 1,
}

/// An upload or copy in flight. Its segments are freed if it never completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StageRecord {
    pub purpose: StagePurpose,
    pub key: String,
    pub started: u64,
    pub segs: Vec<u64>,
}

impl StageRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::versioned(64, FORMAT_V2);
        e.u8(self.purpose as u8).str(&self.key).u64(self.started).u32(self.segs.len() as u32);
        for s in &self.segs {
            e.u64(*s);
        }
        e.seal();
        e.0
    }
    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::versioned(buf, "staging record")?;
        let purpose = match d.u8()? {
            0 => StagePurpose::Put,
            1 => StagePurpose::Part,
            t => return Err(corrupt(&format!("staging record has an unknown purpose {t}"))),
        };
        let key = d.string()?;
        let started = d.u64()?;
        let n = d.u32()?;
        let mut segs = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            segs.push(d.u64()?);
        }
        d.check_sealed()?;
        d.finish()?;
        Ok(StageRecord { purpose, key, started, segs })
    }
}

/// A multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MpuRecord {
    pub key: String,
    pub initiated: u64,
    pub meta: ObjectMeta,
}

impl MpuRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.str(&self.key).u64(self.initiated);
        encode_meta(&mut e, &self.meta);
        e.0
    }
    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::new(buf, "multipart upload record")?;
        let r = MpuRecord { key: d.string()?, initiated: d.u64()?, meta: decode_meta(&mut d, true)? };
        d.finish()?;
        Ok(r)
    }
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartRecord {
    pub seg: Segment,
    pub md5: [u8; 16],
    pub crc: u32,
    pub modified: u64,
}

impl PartRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::versioned(64, FORMAT_V2);
        self.seg.encode(&mut e);
        e.0.extend_from_slice(&self.md5);
        e.u32(self.crc).u64(self.modified).seal();
        e.0
    }
    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::versioned(buf, "part record")?;
        let r = PartRecord { seg: Segment::decode(&mut d)?, md5: d.md5()?, crc: d.u32()?, modified: d.u64()? };
        d.check_sealed()?;
        d.finish()?;
        Ok(r)
    }
}

/// The id counter's record: the counter (u64 big-endian) and the CRC32C of those 8 bytes. The
/// counter says which ids no segment has used yet; one damaged lower would hand out ids of live
/// segments again, and new chunks would be written over old ones. Earlier releases wrote the 8
/// bytes alone, which are still read.
pub(crate) fn encode_idgen(hi: u64) -> Vec<u8> {
    let b = hi.to_be_bytes();
    [&b[..], &crate::data::crc::crc(&b).to_le_bytes()].concat()
}

/// The counter in an id counter record (see [`encode_idgen`]).
pub(crate) fn decode_idgen(v: &[u8]) -> Result<u64> {
    let (b, seal) = match v.len() {
        8 => (v, None),
        12 => (&v[..8], Some(&v[8..])),
        n => return Err(corrupt(&format!("id counter record is {n} bytes long"))),
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    if let Some(s) = seal
        && u32::from_le_bytes([s[0], s[1], s[2], s[3]]) != crate::data::crc::crc(&a)
    {
        return Err(corrupt("id counter record checksum mismatch"));
    }
    Ok(u64::from_be_bytes(a))
}

/// The value of a gc record: the segment's chunks are to be deleted.
pub(crate) fn gc_record() -> Vec<u8> {
    vec![FORMAT_V1]
}

/// Starts a chunk record: header space followed by room for `capacity` payload bytes.
pub(crate) fn chunk_buffer(capacity: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(CHUNK_HEADER + capacity);
    v.extend_from_slice(&[FORMAT_V1, 0, 0, 0, 0]);
    v
}

/// Seals a chunk record built with [`chunk_buffer`]: writes the payload's CRC32C into the
/// header and returns it.
pub(crate) fn seal_chunk(record: &mut [u8]) -> u32 {
    let crc = crate::data::crc::crc(&record[CHUNK_HEADER..]);
    record[1..CHUNK_HEADER].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// The payload of a chunk record, after checking its version and CRC.
pub(crate) fn open_chunk(record: &[u8]) -> Result<&[u8]> {
    if record.len() < CHUNK_HEADER {
        return Err(corrupt("chunk record is truncated"));
    }
    if record[0] != FORMAT_V1 {
        return Err(corrupt(&format!("chunk has unknown format version {}", record[0])));
    }
    let stored = u32::from_le_bytes([record[1], record[2], record[3], record[4]]);
    let payload = &record[CHUNK_HEADER..];
    let actual = crate::data::crc::crc(payload);
    if stored != actual {
        return Err(corrupt(&format!("chunk checksum mismatch (stored {stored:08x}, computed {actual:08x})")));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests;
