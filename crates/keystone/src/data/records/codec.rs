//! The primitives every record is written and read with: [`Enc`] appends fields, [`Dec`] reads
//! them back with bounds checks, and both know the V2 seal (a CRC32C of the record so far) and
//! a V3 manifest's (the same, its owner's bucket and key first).

use super::{FORMAT_V1, FORMAT_V2, FORMAT_V3, Owner};
use crate::error::{Error, Result};

#[cold]
pub(super) fn corrupt(what: &str) -> Error {
    Error::Corrupted { bucket: None, key: None, reason: what.to_owned() }
}

#[derive(Default)]
pub(crate) struct Enc(pub Vec<u8>);

impl Enc {
    pub(super) fn new() -> Self {
        Self::with_capacity(64)
    }
    pub(super) fn with_capacity(n: usize) -> Self {
        Self::versioned(n, FORMAT_V1)
    }
    pub(super) fn versioned(n: usize, version: u8) -> Self {
        let mut v = Vec::with_capacity(n);
        v.push(version);
        Enc(v)
    }
    /// Appends the CRC32C of everything written so far (a V2 record's check).
    pub(super) fn seal(&mut self) -> &mut Self {
        let crc = crate::data::crc::crc(&self.0);
        self.u32(crc)
    }
    /// Appends the CRC32C of `owner` and everything written so far (a V3 manifest's check).
    pub(super) fn seal_as(&mut self, owner: Owner<'_>) -> &mut Self {
        let crc = owner.seal(&self.0);
        self.u32(crc)
    }
    pub(super) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(super) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    pub(super) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub(super) fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
}

pub(crate) struct Dec<'a> {
    /// The whole record, for `check_sealed`.
    record: &'a [u8],
    /// `FORMAT_V1`, `FORMAT_V2` or (manifests) `FORMAT_V3`: whether the record carries a
    /// seal, and whether it covers the manifest's owner.
    version: u8,
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    /// A decoder of a record that is V1 only.
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Result<Self> {
        Self::of_versions(buf, what, &[FORMAT_V1])
    }
    /// A decoder of a record that is V1 or V2 (sealed).
    pub(super) fn versioned(buf: &'a [u8], what: &'static str) -> Result<Self> {
        Self::of_versions(buf, what, &[FORMAT_V1, FORMAT_V2])
    }
    /// A decoder of a manifest: V1, V2 or V3 (its seal checked with `check_sealed_as`).
    pub(super) fn manifest(buf: &'a [u8]) -> Result<Self> {
        Self::of_versions(buf, "object manifest", &[FORMAT_V1, FORMAT_V2, FORMAT_V3])
    }
    /// A decoder of a record whose version byte is one of `versions`.
    fn of_versions(buf: &'a [u8], what: &'static str, versions: &[u8]) -> Result<Self> {
        match buf.split_first() {
            Some((&version, rest)) if versions.contains(&version) => Ok(Dec { record: buf, version, buf: rest, what }),
            Some((v, _)) => Err(corrupt(&format!("{what} has unknown format version {v}"))),
            None => Err(corrupt(&format!("{what} is empty"))),
        }
    }
    /// Where a V2 or V3 record has its seal: reads its CRC32C and checks it against everything
    /// read before it (and a V3 manifest's owner). A V1 record has none: nothing to read or
    /// check.
    pub(super) fn check_sealed(&mut self) -> Result<()> {
        self.check_seal(None)
    }
    /// [`check_sealed`](Self::check_sealed) of `owner`'s manifest, which a V3 seal covers.
    pub(super) fn check_sealed_as(&mut self, owner: Owner<'_>) -> Result<()> {
        self.check_seal(Some(owner))
    }
    fn check_seal(&mut self, owner: Option<Owner<'_>>) -> Result<()> {
        let covered = self.record.len() - self.buf.len();
        let actual = match (self.version, owner) {
            (FORMAT_V2, _) => crate::data::crc::crc(&self.record[..covered]),
            (FORMAT_V3, Some(owner)) => owner.seal(&self.record[..covered]),
            (FORMAT_V3, None) => return Err(self.damaged("is a version 3 record where none is written")),
            _ => return Ok(()),
        };
        let stored = self.u32()?;
        if stored != actual {
            return Err(corrupt(&format!(
                "{} checksum mismatch (stored {stored:08x}, computed {actual:08x})",
                self.what
            )));
        }
        Ok(())
    }
    // The readers below run for every field of every record a get or a listing decodes: small
    // and inlined, with each error built out of line (`#[cold]`), they cost a few
    // instructions each instead of a call that moves a `Result` through memory.
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.buf.split_at_checked(n) {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(head)
            }
            None => Err(self.damaged("is truncated")),
        }
    }
    #[cold]
    #[inline(never)]
    fn damaged(&self, how: &str) -> Error {
        corrupt(&format!("{} {how}", self.what))
    }
    #[inline]
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    pub(super) fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    #[inline]
    pub(super) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    #[inline]
    pub(super) fn str(&mut self) -> Result<&'a str> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.damaged("holds a string that is not UTF-8"))
    }
    pub(super) fn string(&mut self) -> Result<String> {
        Ok(self.str()?.to_owned())
    }
    #[inline]
    pub(super) fn opt_str(&mut self) -> Result<Option<&'a str>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(self.damaged(&format!("has an invalid option tag {t}"))),
        }
    }
    pub(super) fn md5(&mut self) -> Result<[u8; 16]> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }
    pub(super) fn finish(&self) -> Result<()> {
        if self.buf.is_empty() { Ok(()) } else { Err(corrupt(&format!("{} has trailing bytes", self.what))) }
    }
}
