//! A store file cut short: told from one that was not closed cleanly, and read for `salvage`.
//!
//! redb refuses to open a file whose length differs from the layout its header records; read
//! only, it calls that a needed repair, as it does an unclean close. A file closed cleanly and
//! shorter than its layout was cut short after it was written (a copy or download that
//! stopped, a file system that lost its tail): what lay past the cut is lost, and an open for
//! writing fails the same way. So that is `Corrupted`, naming both lengths; and `salvage` reads
//! such a file through [`ZeroPadded`], as long as its layout with zeros past the cut, so that
//! what lies before the cut can be copied (pages past it read as damaged pages do).

use std::ops::Bound;
use std::path::Path;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::error::Error;
use crate::storage::prefill::forward_locks;

/// What redb's backend methods fail with (with std).
type BackendIoError = std::io::Error;

/// redb's magic number, the first bytes of its header.
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// Offsets in redb's header (file format 3 on; redb 4.6's `header.rs`): the flags byte, then
/// after two bytes of padding the page size and the region geometry, u32 each.
const GOD_BYTE: usize = 9;
const PAGE_SIZE: usize = 12;
/// The flags a writer sets while it has the store open (`RECOVERY_REQUIRED`), or between a
/// commit's header write and its flush (`PRIMARY_UNFLUSHED`).
const UNCLEAN_FLAGS: u8 = 2 | 8;

/// A file closed cleanly and shorter than its header's layout: its length and the layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CutShort {
    pub len: u64,
    pub layout: u64,
}

/// Whether the file at `path` is a store cut short (see the module). `None` when its header
/// cannot be read, says the store was not closed cleanly (recovery is then the answer), or
/// records a layout no longer than the file (an open for writing repairs a longer file).
pub(crate) fn measure(path: &Path) -> Option<CutShort> {
    let mut head = [0u8; 32];
    let len = std::fs::metadata(path).ok()?.len();
    std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut head).ok()?;
    if head[..MAGIC.len()] != MAGIC || head[GOD_BYTE] & UNCLEAN_FLAGS != 0 {
        return None;
    }
    let layout = layout_len(&head)?;
    (len < layout).then_some(CutShort { len, layout })
}

/// The error for a store cut short, in place of redb's refusal (`NeedsRecovery`).
pub(crate) fn cut_short(path: &Path, label: &str) -> Option<Error> {
    let CutShort { len, layout } = measure(path)?;
    Some(Error::Corrupted {
        bucket: None,
        key: None,
        reason: format!(
            "{label} is cut short: {len} bytes of the {layout} its header records (it was closed cleanly; \
             what lay past the cut is lost, and `salvage` copies what lies before it)"
        ),
    })
}

/// The file length redb's header records: a header page, the full regions, and the trailing
/// partial region if any (`DatabaseLayout::len`). `None` if a field is out of the range redb
/// accepts (a damaged header: the region counts are not checksummed) or the sum overflows.
fn layout_len(head: &[u8; 32]) -> Option<u64> {
    /// Most pages in a region, and most regions (redb's page and region indexes are 20 bits).
    const MAX_REGION_PAGES: u64 = 1 << 20;
    let field = |at: usize| u64::from(u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]));
    let (page, region_header, region_data) = (field(PAGE_SIZE), field(PAGE_SIZE + 4), field(PAGE_SIZE + 8));
    let (full_regions, trailing_data) = (field(PAGE_SIZE + 12), field(PAGE_SIZE + 16));
    let sane = page == 4096
        && (1..=MAX_REGION_PAGES).contains(&region_data)
        && region_header <= MAX_REGION_PAGES
        && trailing_data <= region_data
        && (1..=MAX_REGION_PAGES).contains(&(full_regions + u64::from(trailing_data > 0)));
    if !sane {
        return None;
    }
    let full = full_regions.checked_mul(region_header.checked_add(region_data)?)?;
    let trailing = if trailing_data > 0 { region_header.checked_add(trailing_data)? } else { 0 };
    page.checked_mul(full.checked_add(trailing)?.checked_add(1)?)
}

/// A file read as if it were `layout` bytes long, zeros past its end; never written. redb's
/// read-only open then accepts a store cut short.
#[derive(Debug)]
pub(crate) struct ZeroPadded {
    inner: FileBackend,
    len: u64,
    layout: u64,
}

impl ZeroPadded {
    pub(crate) fn new(file: std::fs::File, cut: CutShort) -> Result<Self, redb::DatabaseError> {
        Ok(ZeroPadded { inner: FileBackend::new(file)?, len: cut.len, layout: cut.layout })
    }
}

fn read_only() -> BackendIoError {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, "a store cut short is read for salvage only")
}

impl StorageBackend for ZeroPadded {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.layout)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let end = offset.saturating_add(out.len() as u64);
        if end > self.layout {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the store's layout"));
        }
        // Bytes of `out` that the file holds.
        let held = usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX).min(out.len());
        let (file, zeros) = out.split_at_mut(held);
        if !file.is_empty() {
            self.inner.read(offset, file)?;
        }
        zeros.fill(0);
        Ok(())
    }

    fn set_len(&self, _len: u64) -> Result<(), BackendIoError> {
        Err(read_only())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        Err(read_only())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), BackendIoError> {
        Err(read_only())
    }

    fn close(&self) -> Result<(), BackendIoError> {
        self.inner.close()
    }

    forward_locks!(inner);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(page: u32, region_header: u32, region_data: u32, full: u32, trailing: u32) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[..9].copy_from_slice(&MAGIC);
        for (i, v) in [page, region_header, region_data, full, trailing].into_iter().enumerate() {
            h[PAGE_SIZE + 4 * i..PAGE_SIZE + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    #[test]
    fn the_layout_is_a_header_page_the_full_regions_and_the_trailing_one() {
        // A small store: no full region, 640 pages in the trailing one (2,625,536 bytes).
        assert_eq!(layout_len(&header(4096, 0, 1 << 20, 0, 640)), Some(4096 * 641));
        // Two full regions with 2 header pages each, and a trailing region of 10 pages.
        let full = 2 * (2 + (1 << 20));
        assert_eq!(layout_len(&header(4096, 2, 1 << 20, 2, 10)), Some(4096 * (1 + full + 12)));
        assert_eq!(layout_len(&header(4096, 0, 1 << 20, 3, 0)), Some(4096 * (1 + 3 * (1 << 20))));
        // Fields redb would refuse: not a layout.
        assert_eq!(layout_len(&header(4097, 0, 1 << 20, 0, 640)), None);
        assert_eq!(layout_len(&header(4096, 0, 0, 0, 640)), None);
        assert_eq!(layout_len(&header(4096, 0, 1 << 20, u32::MAX, 640)), None);
        assert_eq!(layout_len(&header(4096, 0, 1 << 20, 0, 0)), None, "no region at all");
        assert_eq!(layout_len(&header(4096, 0, 100, 0, 101)), None, "a trailing region larger than a full one");
    }

    #[test]
    fn reads_are_zero_past_the_cut_and_refused_past_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 10]).unwrap();
        let b = ZeroPadded::new(std::fs::File::open(&path).unwrap(), CutShort { len: 10, layout: 16 }).unwrap();
        assert_eq!(b.len().unwrap(), 16);
        let mut out = [1u8; 8];
        b.read(6, &mut out).unwrap();
        assert_eq!(out, [7, 7, 7, 7, 0, 0, 0, 0]);
        b.read(12, &mut out[..4]).unwrap();
        assert_eq!(out[..4], [0; 4]);
        assert!(b.read(12, &mut out).is_err());
        assert!(b.write(0, b"x").is_err() && b.set_len(20).is_err());
    }
}
