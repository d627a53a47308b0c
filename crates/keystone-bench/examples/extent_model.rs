//! W4's proposed design change, modelled (BENCHMARKS.md, W4: "keep large chunks outside the
//! B-tree"): what a streamed put and get of a large object would cost if its chunks went to an
//! append-only extent file beside the store and only the manifest went through redb.
//!
//! - `extent` put: 1 MiB pieces read from the source, each one's CRC32C (the implementation the
//!   library picks for the CPU) and the XXH3-128 ETag computed as Keystone computes them,
//!   written with `pwrite` at the extent file's end; then `fdatasync` of the extent file and one
//!   durable redb commit of the manifest (offset, length and CRC32C of every chunk).
//! - `extent` get (warm): the manifest read in one read transaction, each chunk `pread` into one
//!   page-aligned 1 MiB buffer and its CRC32C checked there — one copy, as the plain file's
//!   read makes.
//! - `files`: the bench's plain file, done the same way as its `files` engine (a temporary
//!   file written in 1 MiB pieces, `fsync`, rename, `fsync` of the directory; read in 1 MiB
//!   pieces into a page-aligned buffer: `src/stream.rs` says why).
//!
//! The two alternate, a fresh directory (and store) for each put, ROUNDS times; the source is
//! W4's (a 1 MiB random pattern repeated). This is not the library's code and keeps no
//! crash-safety bookkeeping beyond the order of its syncs: it bounds what the design could
//! reach on this machine, the I/O and per-byte work it would do.
//!
//! `cargo run --release -p keystone-bench --example extent_model [-- MIB ROUNDS]` (defaults
//! 100 and 5)

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use redb::{ReadableDatabase, TableDefinition};
use twox_hash::XxHash3_128;

#[path = "shared/library_crc.rs"]
mod shared;
#[path = "../src/stream.rs"]
mod stream;
use shared::library_crc;
use stream::{PAGE, Pattern, page_aligned, read_pieces};

const PIECE: usize = 1 << 20;
const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// The extent design's put: returns the ETag, so that the hash is not optimised away.
fn extent_put(db: &redb::Database, extents: &File, src: &mut dyn Read) -> anyhow::Result<u128> {
    let mut etag = XxHash3_128::new();
    let mut manifest = Vec::new();
    let mut end = extents.metadata()?.len();
    read_pieces(src, PIECE, |piece| {
        let crc = library_crc(piece);
        etag.write(piece);
        extents.write_all_at(piece, end)?;
        manifest.extend_from_slice(&end.to_le_bytes());
        manifest.extend_from_slice(&(piece.len() as u32).to_le_bytes());
        manifest.extend_from_slice(&crc.to_le_bytes());
        end += piece.len() as u64;
        Ok(())
    })?;
    // The chunks are durable before the commit that publishes them.
    extents.sync_data()?;
    let w = db.begin_write()?;
    w.open_table(MANIFESTS)?.insert("large", manifest.as_slice())?;
    w.commit()?;
    Ok(etag.finish_128())
}

/// The extent design's get: every chunk read into one buffer and checked there.
fn extent_get(db: &redb::Database, extents: &File) -> anyhow::Result<u64> {
    let r = db.begin_read()?;
    let t = r.open_table(MANIFESTS)?;
    let manifest = t.get("large")?.ok_or_else(|| anyhow::anyhow!("no manifest"))?.value().to_vec();
    let mut storage = vec![0u8; PIECE + PAGE];
    let buf = page_aligned(&mut storage, PIECE);
    let mut total = 0;
    for entry in manifest.chunks_exact(16) {
        let at = u64::from_le_bytes(entry[..8].try_into()?);
        let len = u32::from_le_bytes(entry[8..12].try_into()?) as usize;
        let crc = u32::from_le_bytes(entry[12..16].try_into()?);
        let piece = buf.get_mut(..len).ok_or_else(|| anyhow::anyhow!("chunk of {len} bytes"))?;
        extents.read_exact_at(piece, at)?;
        anyhow::ensure!(library_crc(piece) == crc, "chunk at {at}: checksum mismatch");
        black_box(&*piece);
        total += len as u64;
    }
    Ok(total)
}

/// The bench's `files` engine's put.
fn file_put(dir: &Path, src: &mut dyn Read) -> anyhow::Result<u64> {
    let (tmp, path) = (dir.join("large.tmp"), dir.join("large"));
    let mut f = File::create(&tmp)?;
    let total = read_pieces(src, PIECE, |piece| Ok(f.write_all(piece)?))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(total)
}

/// The bench's `files` engine's get.
fn file_get(dir: &Path) -> anyhow::Result<u64> {
    let mut f = File::open(dir.join("large"))?;
    read_pieces(&mut f, PIECE, |piece| {
        black_box(piece);
        Ok(())
    })
}

fn mib_per_s(bytes: u64, t: Instant) -> f64 {
    bytes as f64 / f64::from(1u32 << 20) / t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let (mib, rounds) = (arg(1, 100) as u64, arg(2, 5).max(1));
    let bytes = mib << 20;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let pattern: Vec<u8> = (0..PIECE)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let source = || Pattern::new(pattern.clone(), bytes);
    let (mut ext_put, mut ext_get, mut f_put, mut f_get) = (vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        {
            let dir = tempfile::tempdir()?;
            let db = redb::Database::create(dir.path().join("store.redb"))?;
            let extents = File::options().read(true).write(true).create_new(true).open(dir.path().join("extents"))?;
            let t = Instant::now();
            black_box(extent_put(&db, &extents, &mut source())?);
            ext_put.push(mib_per_s(bytes, t));
            let t = Instant::now();
            anyhow::ensure!(extent_get(&db, &extents)? == bytes, "extent get: short");
            ext_get.push(mib_per_s(bytes, t));
        }
        {
            let dir = tempfile::tempdir()?;
            let t = Instant::now();
            file_put(dir.path(), &mut source())?;
            f_put.push(mib_per_s(bytes, t));
            let t = Instant::now();
            anyhow::ensure!(file_get(dir.path())? == bytes, "file get: short");
            f_get.push(mib_per_s(bytes, t));
        }
        let n = round - 1;
        println!(
            "round {round}: extent put {:.0} MiB/s, get {:.0}; file put {:.0}, get {:.0}",
            ext_put[n], ext_get[n], f_put[n], f_get[n]
        );
    }
    let (ep, eg, fp, fg) = (median(&mut ext_put), median(&mut ext_get), median(&mut f_put), median(&mut f_get));
    println!("median of {rounds} rounds, {mib} MiB: extent put {ep:.0} MiB/s, file put {fp:.0} ({:.2}×)", ep / fp);
    println!("median of {rounds} rounds, {mib} MiB: extent get {eg:.0} MiB/s, file get {fg:.0} ({:.2}×)", eg / fg);
    Ok(())
}
