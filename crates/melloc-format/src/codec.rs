//! End-to-end `compress` / `decompress`.
//!
//! Compression: validate the input length, checksum the original bytes, cut the field into
//! chunks (whole slices, row bands or row pieces, about `chunk_bytes` each), encode chunks in
//! parallel, each with the smallest of its candidate routes, **decode every chunk again and
//! compare bits** (a route that fails this is dropped for that chunk; raw always works), then
//! write header, chunk table and chunks. Decompression verifies every checksum and the content
//! checksum of the rebuilt bytes. Output bytes never depend on the thread count.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use melloc_core::{BlockDims, DType, Float, Shape};
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::backend::{backend_name, encode_section, packed_len};
use crate::config::{CompressConfig, DecompressConfig, RouteSpec};
use crate::container::{
    header_len, max_section_len, read_header, write_header, ChunkGeometry, Chunking, Header,
    StoredChunk, StoredSection, TableEntry,
};
use crate::error::{corrupt, FormatError, Result};
use crate::route::{self, RouteConfig, RouteId, RouteInfo};

/// A decoded file: its element type, shape and the original little-endian bytes.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Element type.
    pub dtype: DType,
    /// Shape, slowest dimension first.
    pub shape: Shape,
    /// The original bytes (little-endian values, C order), verified against the content checksum.
    pub bytes: Vec<u8>,
}

/// Everything `melloc info` shows about a file, without decoding values.
#[derive(Clone, Debug, Serialize)]
pub struct FileInfo {
    /// Format version `major.minor`.
    pub version: (u16, u16),
    /// Element type name.
    pub dtype: String,
    /// Shape, slowest first.
    pub shape: Vec<u64>,
    /// Original size in bytes.
    pub original_bytes: u64,
    /// Compressed file size in bytes.
    pub compressed_bytes: u64,
    /// Content checksum (xxh3-64 of the original bytes).
    pub content_checksum: u64,
    /// Per-chunk facts.
    pub chunks: Vec<ChunkInfo>,
}

/// Facts about one chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkInfo {
    /// First slice of the chunk.
    pub first_slice: u64,
    /// Slices in the chunk.
    pub n_slices: u64,
    /// First row (non-zero only for row bands of one slice).
    pub first_row: u64,
    /// Rows per slice in the chunk.
    pub n_rows: u64,
    /// Route that encoded the chunk.
    pub route: RouteId,
    /// Per-section (kind, back end name, raw bytes, stored bytes).
    pub sections: Vec<SectionInfo>,
    /// What the route learned and chose.
    pub route_info: RouteInfo,
}

/// Facts about one stored section.
#[derive(Clone, Debug, Serialize)]
pub struct SectionInfo {
    /// Route-defined kind.
    pub kind: u8,
    /// Back end name.
    pub backend: String,
    /// Raw length.
    pub raw_bytes: u64,
    /// Stored length.
    pub stored_bytes: u64,
}

/// A decoded file as the decoded values of its chunks, in order: what [`decompress_bytes`]
/// concatenates into one byte buffer. Writing it out ([`DecodedValues::write_le`]) needs no
/// second copy of the data: decompressing TREFHT (3.6 MB, one chunk) held the output bytes, the
/// chunk's values and their bytes at once (12.5 MB heap); this holds the values only (5.3 MB).
#[derive(Clone, Debug)]
pub struct DecodedValues {
    /// Element type.
    pub dtype: DType,
    /// Shape, slowest dimension first.
    pub shape: Shape,
    chunks: ChunkValues,
}

#[derive(Clone, Debug)]
enum ChunkValues {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
}

/// Values are turned into little-endian bytes this many bytes at a time (to hash or write
/// them), so no byte copy of a whole chunk is ever made.
const LE_BLOCK_BYTES: usize = 64 << 10;

/// Calls `f` on the little-endian bytes of `parts`, in order, in blocks of at most
/// [`LE_BLOCK_BYTES`] (`buf` is the block buffer).
fn for_each_le_block<'a, T: Float, E>(
    parts: impl IntoIterator<Item = &'a [T]>,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    for part in parts {
        for block in part.chunks(LE_BLOCK_BYTES / T::N_BYTES) {
            // Little-endian hosts pass the values' own bytes: converting them first was 40% of
            // the serial work of decompressing PrecipRate-mrms (49M of 117M instructions).
            if let Some(b) = T::as_le_bytes(block) {
                f(b)?;
                continue;
            }
            buf.clear();
            T::extend_le_bytes(block, buf);
            f(buf)?;
        }
    }
    Ok(())
}

/// xxh3-64 of the little-endian bytes of `parts` (the same as [`xxh3_64`] of their
/// concatenation), without building them.
fn xxh3_of_values<'a, T: Float>(parts: impl IntoIterator<Item = &'a [T]>) -> u64 {
    let mut h = Xxh3::new();
    let mut buf = Vec::new();
    let done: std::result::Result<(), std::convert::Infallible> =
        for_each_le_block(parts, &mut buf, |b| {
            h.update(b);
            Ok(())
        });
    let Ok(()) = done;
    h.digest()
}

impl DecodedValues {
    /// Size of the original data in bytes.
    pub fn n_bytes(&self) -> u64 {
        let n_values: usize = match &self.chunks {
            ChunkValues::F32(c) => c.iter().map(Vec::len).sum(),
            ChunkValues::F64(c) => c.iter().map(Vec::len).sum(),
        };
        n_values as u64 * self.dtype.n_bytes() as u64
    }

    /// Calls `f` on the original bytes in order, in blocks of at most 64 KiB.
    fn for_each_block<E>(
        &self,
        f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut buf = Vec::new();
        match &self.chunks {
            ChunkValues::F32(c) => for_each_le_block(c.iter().map(Vec::as_slice), &mut buf, f),
            ChunkValues::F64(c) => for_each_le_block(c.iter().map(Vec::as_slice), &mut buf, f),
        }
    }

    /// xxh3-64 of the original bytes.
    fn checksum(&self) -> u64 {
        match &self.chunks {
            ChunkValues::F32(c) => xxh3_of_values(c.iter().map(Vec::as_slice)),
            ChunkValues::F64(c) => xxh3_of_values(c.iter().map(Vec::as_slice)),
        }
    }

    /// Writes the original bytes (little-endian values, C order) to `w`, 64 KiB at a time.
    pub fn write_le<W: std::io::Write + ?Sized>(&self, w: &mut W) -> std::io::Result<()> {
        self.for_each_block(|b| w.write_all(b))
    }

    /// The original bytes as one buffer; each chunk's values are freed once copied.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.n_bytes()).unwrap_or(0));
        match self.chunks {
            ChunkValues::F32(c) => c
                .into_iter()
                .for_each(|v| f32::extend_le_bytes(&v, &mut out)),
            ChunkValues::F64(c) => c
                .into_iter()
                .for_each(|v| f64::extend_le_bytes(&v, &mut out)),
        }
        out
    }
}

/// The values to compress: little-endian bytes (converted one chunk at a time), or typed values
/// (chunks are borrowed, not copied).
#[derive(Clone, Copy)]
enum Input<'a, T> {
    Bytes(&'a [u8]),
    Values(&'a [T]),
}

/// The length check of the `compress` entry points, in bytes.
fn check_input_len(shape: &Shape, dtype: DType, n_bytes: usize) -> Result<()> {
    let expected = shape.n_elements().checked_mul(dtype.n_bytes() as u64);
    if expected != Some(n_bytes as u64) {
        return Err(FormatError::LengthMismatch {
            expected: expected.unwrap_or(u64::MAX),
            actual: n_bytes as u64,
        });
    }
    Ok(())
}

/// Compresses little-endian bytes of `dtype` values with `shape`. Each chunk is converted to
/// values while it is encoded: [`compress`] on values already in memory avoids that copy.
pub fn compress_bytes(
    input: &[u8],
    dtype: DType,
    shape: &Shape,
    cfg: &CompressConfig,
) -> Result<Vec<u8>> {
    check_input_len(shape, dtype, input.len())?;
    match dtype {
        DType::F32 => compress_typed::<f32>(Input::Bytes(input), shape, cfg),
        DType::F64 => compress_typed::<f64>(Input::Bytes(input), shape, cfg),
    }
}

/// Compresses typed values with `shape`; the same bytes as [`compress_bytes`] on their
/// little-endian bytes, without copying them.
pub fn compress<T: Float>(values: &[T], shape: &Shape, cfg: &CompressConfig) -> Result<Vec<u8>> {
    check_input_len(shape, T::DTYPE, values.len().saturating_mul(T::N_BYTES))?;
    compress_typed::<T>(Input::Values(values), shape, cfg)
}

/// Runs `f` on a rayon pool of `threads` workers (0 = all cores).
fn with_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            FormatError::InvalidArgument(format!("cannot start {threads} threads: {e}"))
        })?;
    Ok(pool.install(f))
}

/// Runs `f` on every index of `order`, each taken by the next free worker of a pool of
/// `threads`, and returns the results by index (`None` where `order` lacks one). A worker
/// takes the next index when it is done with one, so put expensive items first.
fn run_queue<R: Send + Sync>(
    threads: usize,
    n: usize,
    order: &[usize],
    f: impl Fn(usize) -> R + Sync,
) -> Result<Vec<Option<R>>> {
    let slots: Vec<OnceLock<R>> = (0..n).map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    with_pool(threads, || {
        rayon::scope(|sc| {
            for _ in 0..rayon::current_num_threads().min(order.len()) {
                sc.spawn(|_| {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Some(slot) = slots.get(i) {
                            let _ = slot.set(f(i));
                        }
                    }
                });
            }
        });
    })?;
    Ok(slots.into_iter().map(OnceLock::into_inner).collect())
}

fn block_dims(g: &ChunkGeometry) -> BlockDims {
    BlockDims::new(g.n_slices as usize, g.n_rows as usize, g.n_cols as usize)
}

fn compress_typed<T: Float>(
    input: Input<'_, T>,
    shape: &Shape,
    cfg: &CompressConfig,
) -> Result<Vec<u8>> {
    let layout = shape.slices();
    let chunking = Chunking::for_target(layout, (cfg.chunk_bytes / T::N_BYTES).max(1) as u64);
    let n_chunks = chunking.n_chunks(layout);
    let route_cfg = RouteConfig { effort: cfg.effort };
    // Chunks in order, each to the next free worker: a range split in halves left one
    // thread with the dense chunks of a radar file (PrecipRate-mrms, 2 threads: 1.54x).
    let n = usize::try_from(n_chunks)
        .map_err(|_| FormatError::InvalidArgument("too many chunks".into()))?;
    let order: Vec<usize> = (0..n).collect();
    let chunks = run_queue(cfg.threads, n, &order, |i| {
        let g = chunking.geometry(layout, i as u64);
        let start = g.first_value as usize;
        let end = start + g.n_values() as usize;
        let values: Cow<'_, [T]> = match input {
            Input::Bytes(b) => Cow::Owned(T::vec_from_le_bytes(
                &b[start * T::N_BYTES..end * T::N_BYTES],
            )),
            Input::Values(v) => Cow::Borrowed(&v[start..end]),
        };
        encode_chunk(&values, block_dims(&g), cfg, &route_cfg)
            .map_err(|e| FormatError::Corrupt(format!("encoding chunk {i}: {e}")))
    })?;
    let chunks: Vec<Vec<u8>> = chunks
        .into_iter()
        .map(|c| c.unwrap_or_else(|| Err(FormatError::Corrupt("a chunk was not encoded".into()))))
        .collect::<Result<_>>()?;
    let mut offset = header_len(shape, n_chunks);
    let table: Vec<TableEntry> = chunks
        .iter()
        .map(|c| {
            let e = TableEntry {
                offset,
                length: c.len() as u64,
                checksum: xxh3_64(c),
            };
            offset += c.len() as u64;
            e
        })
        .collect();
    let header = Header {
        minor: crate::wire::MINOR,
        dtype: T::DTYPE,
        shape: shape.clone(),
        chunking,
        n_chunks,
        content_checksum: match input {
            Input::Bytes(b) => xxh3_64(b),
            Input::Values(v) => xxh3_of_values([v]),
        },
    };
    let mut out = write_header(&header, &table);
    out.reserve(chunks.iter().map(Vec::len).sum());
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// The routes tried for a chunk, in order of preference on ties.
fn candidate_routes(spec: RouteSpec, effort: u8) -> Vec<RouteId> {
    match spec {
        RouteSpec::Raw => vec![RouteId::Raw],
        RouteSpec::Paper => vec![RouteId::Paper, RouteId::Raw],
        RouteSpec::Causal => vec![RouteId::Causal, RouteId::Raw],
        RouteSpec::Auto if effort >= 8 => vec![RouteId::Causal, RouteId::Paper, RouteId::Raw],
        RouteSpec::Auto => vec![RouteId::Causal, RouteId::Raw],
    }
}

/// Encodes one chunk with every candidate route, keeps the smallest that decodes bit-exactly
/// (when `verify` is on), and serialises it. Raw is the last resort and always succeeds.
///
/// Under `Auto`, the raw route (bytes through the back end) is only worth running in full when
/// it could beat the modelled routes; running zstd over every chunk capped compression at
/// ~55 MB/s. So a probe of 32 windows of 4 KiB estimates the raw size first, and raw is encoded
/// in full only when that estimate is within 25% of the best modelled result (it always is
/// encoded when nothing else succeeded, and for chunks under 256 KiB, where it is cheap).
fn encode_chunk<T: Float>(
    values: &[T],
    dims: BlockDims,
    cfg: &CompressConfig,
    route_cfg: &RouteConfig,
) -> Result<Vec<u8>> {
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for id in candidate_routes(cfg.route, cfg.effort) {
        if id == RouteId::Raw && cfg.route == RouteSpec::Auto {
            let best = encoded.iter().map(Vec::len).min();
            if let Some(best) = best {
                if !raw_could_win(values, best, cfg.backend)? {
                    continue;
                }
            }
        }
        // A route that fails to encode (e.g. unsupported input) is simply not a candidate.
        let Ok(sections) = route::encode(id, values, dims, route_cfg) else {
            continue;
        };
        let mut stored = Vec::with_capacity(sections.len());
        for s in sections {
            let (backend, data) = encode_section(&s.data, cfg.backend)?;
            stored.push(StoredSection {
                kind: s.kind,
                backend,
                raw_len: s.data.len() as u64,
                data,
            });
        }
        let bytes = StoredChunk {
            route: id,
            sections: stored,
        }
        .to_bytes()?;
        encoded.push(bytes);
    }
    encoded.sort_by_key(Vec::len);
    for bytes in &encoded {
        if !cfg.verify || decode_chunk::<T>(bytes, dims).is_ok_and(|back| same_bits(&back, values))
        {
            return Ok(bytes.clone());
        }
    }
    // Every candidate failed verification (or none ran): the raw route always round-trips.
    let sections = route::encode(RouteId::Raw, values, dims, route_cfg)?;
    let stored = sections
        .into_iter()
        .map(|s| {
            let (backend, data) = encode_section(&s.data, cfg.backend)?;
            Ok(StoredSection {
                kind: s.kind,
                backend,
                raw_len: s.data.len() as u64,
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    StoredChunk {
        route: RouteId::Raw,
        sections: stored,
    }
    .to_bytes()
}

/// Whether the raw route might beat `best` bytes: the back end is run on `RAW_PROBE_WINDOWS`
/// windows of the value bytes, evenly spaced from the first to the last value and compressed
/// together, and the ratio extrapolated, with a 25% margin for the estimate's error.
///
/// Three 32 KiB windows (start, middle, end) underestimated radar-like and masked fields, whose
/// edges are empty (estimate / real zstd size: RATE-rmi 0.55, FR-LAND 0.59, V-foam 0.70, fice
/// 0.87), so raw was encoded in full for nothing there; 32 windows of 4 KiB: RATE-rmi 1.07,
/// FR-LAND 1.02, V-foam 1.01, fice 1.05; over the 40 files 0.98..1.72 (three windows:
/// 0.55..4.38). Raw still runs wherever it is within 25% of the best (urot-pop,
/// surface-pressure, W-wrf, TS-lens, QCLOUD) and on v1-geoflow, where it wins (estimate 0.77
/// of the modelled size). Compress CPU, median of 7: FR-LAND 33.6 -> 24.5 ms, RATE-rmi 41.9 ->
/// 29.7, V-foam 73.8 -> 56.6, fice 88.1 -> 66.6 (the probe itself: ~0.1-1.8 ms); all 80
/// outputs byte-identical. Rejected: 16 windows of 8 KiB (fice 1.47, PrecipRate 1.23), 8 of
/// 12 KiB (fice 0.72), 12 of 16 KiB (the same choices, twice the probe time); each window
/// compressed alone (16 of 8 KiB: 0.94..1.82).
fn raw_could_win<T: Float>(
    values: &[T],
    best: usize,
    backend: crate::config::BackendSpec,
) -> Result<bool> {
    const RAW_PROBE_WINDOWS: usize = 32;
    const WINDOW_VALUES_BYTES: usize = 4 << 10;
    let n_bytes = values.len() * T::N_BYTES;
    if n_bytes <= 256 << 10 {
        return Ok(true);
    }
    let per_window = WINDOW_VALUES_BYTES / T::N_BYTES;
    let last_start = values.len() - per_window;
    let mut sample = Vec::with_capacity(RAW_PROBE_WINDOWS * WINDOW_VALUES_BYTES);
    for i in 0..RAW_PROBE_WINDOWS {
        let start = i * last_start / (RAW_PROBE_WINDOWS - 1);
        T::extend_le_bytes(&values[start..start + per_window], &mut sample);
    }
    let packed = packed_len(&sample, backend)?;
    let estimate = packed as f64 * n_bytes as f64 / sample.len() as f64;
    Ok(estimate < 1.25 * best as f64)
}

fn same_bits<T: Float>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits_u64() == y.to_bits_u64())
}

/// Parses, back-end-decodes and route-decodes one chunk.
fn decode_chunk<T: Float>(bytes: &[u8], dims: BlockDims) -> Result<Vec<T>> {
    let chunk = StoredChunk::parse(bytes, max_section_len(dims.len() as u64))?;
    let route = chunk.route;
    let sections = chunk.into_decoded_sections()?;
    let values = route::decode::<T>(route, &sections, dims)?;
    if values.len() != dims.len() {
        return Err(FormatError::LengthMismatch {
            expected: dims.len() as u64,
            actual: values.len() as u64,
        });
    }
    Ok(values)
}

/// Wraps an error with the chunk it came from.
fn in_chunk(i: u64, e: FormatError) -> FormatError {
    match e {
        FormatError::ChecksumMismatch { section } => FormatError::ChecksumMismatch {
            section: format!("chunk {i}, {section}"),
        },
        FormatError::Truncated(m) => FormatError::Truncated(format!("chunk {i}: {m}")),
        other => FormatError::Corrupt(format!("chunk {i}: {other}")),
    }
}

/// Decompresses a melloc file, verifying every checksum, into one byte buffer
/// ([`decompress_values`] keeps the values by chunk, without this copy).
pub fn decompress_bytes(input: &[u8], cfg: &DecompressConfig) -> Result<Decoded> {
    let d = decompress_values(input, cfg)?;
    let (dtype, shape) = (d.dtype, d.shape.clone());
    Ok(Decoded {
        dtype,
        shape,
        bytes: d.into_bytes(),
    })
}

/// Decompresses a melloc file, verifying every checksum, into the values of its chunks.
pub fn decompress_values(input: &[u8], cfg: &DecompressConfig) -> Result<DecodedValues> {
    let (header, table) = read_header(input)?;
    let n_bytes = header.original_bytes();
    if n_bytes > cfg.memory_limit {
        return Err(FormatError::LimitExceeded {
            declared: n_bytes,
            limit: cfg.memory_limit,
        });
    }
    if usize::try_from(n_bytes).is_err() {
        return Err(FormatError::LimitExceeded {
            declared: n_bytes,
            limit: usize::MAX as u64,
        });
    }
    let chunks = match header.dtype {
        DType::F32 => ChunkValues::F32(decode_chunks(input, &header, &table, cfg.threads)?),
        DType::F64 => ChunkValues::F64(decode_chunks(input, &header, &table, cfg.threads)?),
    };
    let out = DecodedValues {
        dtype: header.dtype,
        shape: header.shape,
        chunks,
    };
    if out.checksum() != header.content_checksum {
        return Err(FormatError::ChecksumMismatch {
            section: "content (the decoded data)".into(),
        });
    }
    Ok(out)
}

/// Checks and decodes every chunk of a file (in parallel), in order.
fn decode_chunks<T: Float>(
    input: &[u8],
    header: &Header,
    table: &[TableEntry],
    threads: usize,
) -> Result<Vec<Vec<T>>> {
    let layout = header.shape.slices();
    let decode_one = |i: usize| -> Result<Vec<T>> {
        let e = table[i];
        let bytes = &input[e.offset as usize..(e.offset + e.length) as usize];
        if xxh3_64(bytes) != e.checksum {
            return Err(FormatError::ChecksumMismatch {
                section: format!("chunk {i}"),
            });
        }
        let dims = block_dims(&header.chunking.geometry(layout, i as u64));
        decode_chunk::<T>(bytes, dims).map_err(|err| in_chunk(i as u64, err))
    };
    // Largest stored chunks first, each to the next free worker (longest processing time
    // first): radar files have a few dense chunks among cheap ones, and splitting the chunk
    // range in halves left one thread with most of the work (PrecipRate-mrms, 6 chunks:
    // 2 threads decoded 1.39x faster than 1). Chunks decode independently, so the values do
    // not depend on the order or the thread count; the first failing chunk is reported.
    let n = table.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(table[i].length));
    run_queue(threads, n, &order, decode_one)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| Err(in_chunk(i as u64, corrupt!("chunk was not decoded"))))
        })
        .collect()
}

/// Reads the header, chunk table and route facts without decoding values.
pub fn inspect(input: &[u8]) -> Result<FileInfo> {
    let (header, table) = read_header(input)?;
    let layout = header.shape.slices();
    let mut chunks = Vec::with_capacity(table.len());
    for (i, e) in table.iter().enumerate() {
        let bytes = &input[e.offset as usize..(e.offset + e.length) as usize];
        if xxh3_64(bytes) != e.checksum {
            return Err(FormatError::ChecksumMismatch {
                section: format!("chunk {i}"),
            });
        }
        let g = header.chunking.geometry(layout, i as u64);
        let dims = block_dims(&g);
        let chunk = StoredChunk::parse(bytes, max_section_len(g.n_values()))
            .map_err(|err| in_chunk(i as u64, err))?;
        let sections = chunk
            .decode_sections()
            .map_err(|err| in_chunk(i as u64, err))?;
        let route_info = route::describe(chunk.route, &sections, dims, header.dtype)
            .map_err(|err| in_chunk(i as u64, err))?;
        chunks.push(ChunkInfo {
            first_slice: g.first_slice,
            n_slices: g.n_slices,
            first_row: g.first_row,
            n_rows: g.n_rows,
            route: chunk.route,
            sections: chunk
                .sections
                .iter()
                .map(|s| SectionInfo {
                    kind: s.kind,
                    backend: backend_name(s.backend).to_string(),
                    raw_bytes: s.raw_len,
                    stored_bytes: s.data.len() as u64,
                })
                .collect(),
            route_info,
        });
    }
    Ok(FileInfo {
        version: (crate::wire::MAJOR, header.minor),
        dtype: header.dtype.name().to_string(),
        shape: header.shape.dims().to_vec(),
        original_bytes: header.original_bytes(),
        compressed_bytes: input.len() as u64,
        content_checksum: header.content_checksum,
        chunks,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn streamed_checksum_is_xxh3_of_the_bytes() {
        let v: Vec<f64> = (0..40_000).map(|i| (i as f64).sqrt()).collect();
        let mut bytes = Vec::new();
        f64::extend_le_bytes(&v, &mut bytes);
        assert_eq!(xxh3_of_values([&v[..]]), xxh3_64(&bytes));
        let (a, b) = v.split_at(12_345);
        assert_eq!(xxh3_of_values([a, b]), xxh3_64(&bytes));
        assert_eq!(xxh3_of_values::<f32>([]), xxh3_64(&[]));
    }

    #[test]
    fn typed_and_byte_input_give_the_same_file_and_values() {
        let v: Vec<f32> = (0..30_000).map(|i| (i as f32 * 0.01).sin()).collect();
        let shape = Shape::new(&[3, 100, 100]).unwrap();
        let cfg = CompressConfig::default().with_chunk_bytes(40_000);
        let mut bytes = Vec::new();
        f32::extend_le_bytes(&v, &mut bytes);
        let a = compress(&v, &shape, &cfg).unwrap();
        assert_eq!(a, compress_bytes(&bytes, DType::F32, &shape, &cfg).unwrap());
        let d = decompress_values(&a, &DecompressConfig::default()).unwrap();
        assert_eq!(d.n_bytes(), bytes.len() as u64);
        let mut written = Vec::new();
        d.write_le(&mut written).unwrap();
        assert_eq!(written, bytes);
        assert_eq!(d.into_bytes(), bytes);
        assert!(compress(&v[1..], &shape, &cfg).is_err());
    }
}
