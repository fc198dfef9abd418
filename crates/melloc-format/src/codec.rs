//! End-to-end `compress` / `decompress`.
//!
//! Compression: validate the input length, checksum the original bytes, cut the field into
//! chunks (whole slices, row bands or row pieces, about `chunk_bytes` each), encode chunks in
//! parallel, each with the smallest of its candidate routes, **decode every chunk again and
//! compare bits** (a route that fails this is dropped for that chunk; raw always works), then
//! write header, chunk table and chunks. Decompression verifies every checksum and the content
//! checksum of the rebuilt bytes. Output bytes never depend on the thread count.
//!
//! Every entry point runs on `run_ordered`: chunks go to the next free worker and come out
//! in order, so [`compress_stream`] reads its input and writes its output one chunk at a time
//! (the header and table, written last, are sought back to), and [`decompress_stream`] writes
//! each chunk's values once those before it are written. The in-memory functions are the same
//! code over a slice and a `Cursor<Vec<u8>>`.

use std::borrow::Cow;
use std::collections::hash_map::{Entry, HashMap};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use melloc_core::{BlockDims, DType, Float, Shape};
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::backend::{backend_name, encode_section, packed_len};
use crate::config::{BackendSpec, CompressConfig, DecompressConfig, RouteSpec};
use crate::container::{
    header_len, max_section_len, read_header, write_header, ChunkGeometry, Chunking, Header,
    StoredChunk, StoredSection, TableEntry,
};
use crate::error::{FormatError, Result};
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

/// Adds the little-endian bytes of `values` to `h`, without building them.
fn hash_values<T: Float>(h: &mut Xxh3, values: &[T], buf: &mut Vec<u8>) {
    let done: std::result::Result<(), std::convert::Infallible> =
        for_each_le_block([values], buf, |b| {
            h.update(b);
            Ok(())
        });
    let Ok(()) = done;
}

/// xxh3-64 of the little-endian bytes of `parts` (the same as [`xxh3_64`] of their
/// concatenation), without building them.
#[cfg(test)]
fn xxh3_of_values<'a, T: Float>(parts: impl IntoIterator<Item = &'a [T]>) -> u64 {
    let mut h = Xxh3::new();
    let mut buf = Vec::new();
    for part in parts {
        hash_values(&mut h, part, &mut buf);
    }
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

/// The values to compress, handed out one chunk at a time in order (chunks tile the field in
/// C order), each added to the content checksum as it is taken.
trait Source<'a, T: Float>: Send {
    /// The next `n` values (those of chunk `chunk`), their bytes added to `hash`.
    fn take(&mut self, chunk: usize, n: usize, hash: &mut Xxh3) -> Result<Cow<'a, [T]>>;
    /// Checks, once every chunk was taken, that the input has nothing left.
    fn finish(&mut self) -> Result<()>;
}

/// Typed values in memory: chunks are borrowed, not copied.
struct SliceSource<'a, T> {
    rest: &'a [T],
    buf: Vec<u8>,
}

impl<'a, T: Float> Source<'a, T> for SliceSource<'a, T> {
    fn take(&mut self, chunk: usize, n: usize, hash: &mut Xxh3) -> Result<Cow<'a, [T]>> {
        if n > self.rest.len() {
            return Err(FormatError::Input(format!(
                "chunk {chunk} needs {n} values, only {} left",
                self.rest.len()
            )));
        }
        let (values, rest) = self.rest.split_at(n);
        self.rest = rest;
        hash_values(hash, values, &mut self.buf);
        Ok(Cow::Borrowed(values))
    }
    fn finish(&mut self) -> Result<()> {
        match self.rest.len() {
            0 => Ok(()),
            k => Err(FormatError::Input(format!(
                "{k} values left after the last chunk"
            ))),
        }
    }
}

/// Little-endian bytes in memory: each chunk is converted to values when it is taken.
struct BytesSource<'a> {
    rest: &'a [u8],
}

impl<'a, T: Float> Source<'a, T> for BytesSource<'a> {
    fn take(&mut self, chunk: usize, n: usize, hash: &mut Xxh3) -> Result<Cow<'a, [T]>> {
        let n_bytes = n.saturating_mul(T::N_BYTES);
        if n_bytes > self.rest.len() {
            return Err(FormatError::Input(format!(
                "chunk {chunk} needs {n_bytes} bytes, only {} left",
                self.rest.len()
            )));
        }
        let (bytes, rest) = self.rest.split_at(n_bytes);
        self.rest = rest;
        hash.update(bytes);
        Ok(Cow::Owned(T::vec_from_le_bytes(bytes)))
    }
    fn finish(&mut self) -> Result<()> {
        match self.rest.len() {
            0 => Ok(()),
            k => Err(FormatError::Input(format!(
                "{k} bytes left after the last chunk"
            ))),
        }
    }
}

/// Bytes read from a reader at a time (and converted to values).
const READ_BLOCK: usize = 64 << 10;

/// A reader of little-endian bytes, read strictly in order, one chunk when a worker starts it:
/// at most the chunks being encoded are in memory, never the whole input.
struct ReadSource<R> {
    reader: R,
    /// Bytes read so far.
    pos: u64,
    /// Bytes the shape needs.
    total: u64,
    buf: Vec<u8>,
}

impl<R: Read> ReadSource<R> {
    /// Fills `self.buf[..k]` from the reader; returns how many bytes it got (fewer than `k`
    /// only at the end of the input).
    fn fill(&mut self, k: usize) -> Result<usize> {
        let mut got = 0;
        while got < k {
            match self.reader.read(&mut self.buf[got..k]) {
                Ok(0) => break,
                Ok(m) => got += m,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(FormatError::Input(format!(
                        "at byte {} of {}: {e}",
                        self.pos + got as u64,
                        self.total
                    )))
                }
            }
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl<'a, T: Float, R: Read + Send> Source<'a, T> for ReadSource<R> {
    fn take(&mut self, chunk: usize, n: usize, hash: &mut Xxh3) -> Result<Cow<'a, [T]>> {
        let mut values = Vec::with_capacity(n);
        // Chunks hold whole values and blocks are a multiple of 8 bytes: every block converts
        // to whole values.
        let mut left = n.saturating_mul(T::N_BYTES);
        while left > 0 {
            let k = left.min(READ_BLOCK);
            let got = self.fill(k)?;
            hash.update(&self.buf[..got]);
            if got < k {
                return Err(FormatError::Input(format!(
                    "the data ended after {} bytes, in chunk {chunk}; the shape needs {} bytes",
                    self.pos, self.total
                )));
            }
            T::extend_from_le_bytes(&self.buf[..k], &mut values);
            left -= k;
        }
        Ok(Cow::Owned(values))
    }
    fn finish(&mut self) -> Result<()> {
        if self.fill(1)? == 0 {
            return Ok(());
        }
        Err(FormatError::Input(format!(
            "the data is longer than the {} bytes the shape needs",
            self.total
        )))
    }
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
    let mut out = Cursor::new(Vec::new());
    let source = BytesSource { rest: input };
    match dtype {
        DType::F32 => compress_typed::<f32, _, _>(source, shape, cfg, &mut out)?,
        DType::F64 => compress_typed::<f64, _, _>(source, shape, cfg, &mut out)?,
    };
    Ok(out.into_inner())
}

/// Compresses typed values with `shape`; the same bytes as [`compress_bytes`] on their
/// little-endian bytes, without copying them.
pub fn compress<T: Float>(values: &[T], shape: &Shape, cfg: &CompressConfig) -> Result<Vec<u8>> {
    check_input_len(shape, T::DTYPE, values.len().saturating_mul(T::N_BYTES))?;
    let mut out = Cursor::new(Vec::new());
    let source = SliceSource {
        rest: values,
        buf: Vec::new(),
    };
    compress_typed::<T, _, _>(source, shape, cfg, &mut out)?;
    Ok(out.into_inner())
}

/// What [`compress_stream`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compressed {
    /// Size of the compressed file in bytes.
    pub n_bytes: u64,
    /// The route of every chunk, in order.
    pub routes: Vec<RouteId>,
}

/// Compresses `shape` values of `dtype`, read as little-endian bytes (C order) from `input`,
/// into `output`: the same bytes as [`compress_bytes`] on the whole input, with neither the
/// input nor the output ever whole in memory.
///
/// The input is read strictly in order, one chunk when a worker starts on it, and hashed as it
/// is read; finished chunks are written in order as soon as those before them are (workers
/// stay within a few chunks of the oldest unwritten one, so few wait in memory). The header
/// and chunk table, which come first but depend on every chunk, are written last: `output`
/// gets zeros in their place first, then is sought back (its position on entry is the start of
/// the file). A sink that cannot seek can be a `Cursor<Vec<u8>>` copied out afterwards.
///
/// Fails with [`FormatError::Input`] when `input` fails, ends early or holds more than the
/// shape, and [`FormatError::Output`] when writing fails; `output` then holds a partial file.
pub fn compress_stream<R: Read + Send, W: Write + Seek + Send + ?Sized>(
    input: R,
    dtype: DType,
    shape: &Shape,
    cfg: &CompressConfig,
    output: &mut W,
) -> Result<Compressed> {
    let total = shape
        .n_elements()
        .checked_mul(dtype.n_bytes() as u64)
        .ok_or_else(|| FormatError::InvalidArgument(format!("shape {shape} is too large")))?;
    let source = ReadSource {
        reader: input,
        pos: 0,
        total,
        buf: vec![0u8; READ_BLOCK],
    };
    match dtype {
        DType::F32 => compress_typed::<f32, _, _>(source, shape, cfg, output),
        DType::F64 => compress_typed::<f64, _, _>(source, shape, cfg, output),
    }
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

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared state of [`run_ordered`].
struct Queue<Take, Emit, R> {
    take: Take,
    emit: Emit,
    /// Position in `order` of the next index to take.
    next: usize,
    /// Every index below this one was emitted.
    emitted: usize,
    /// Results by index, from `take` until `emit` (finished ones wait for those before them).
    ready: Vec<Option<R>>,
    /// The failure of the lowest index so far.
    error: Option<(usize, FormatError)>,
}

impl<Take, Emit, R> Queue<Take, Emit, R> {
    fn fail(&mut self, i: usize, e: FormatError) {
        if self.error.as_ref().is_none_or(|(j, _)| i < *j) {
            self.error = Some((i, e));
        }
    }
}

/// `f()`, with a panic turned into [`FormatError::Internal`] for chunk `i`: a worker that
/// panicked would otherwise leave the others waiting for its chunk forever (`rayon::scope`
/// waits for every worker before it passes a panic on).
fn guarded<X>(i: usize, stage: &str, f: impl FnOnce() -> Result<X>) -> Result<X> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(FormatError::Internal(format!(
            "chunk {i}: a worker panicked while {stage}: {what}"
        )))
    })
}

/// Runs every index of `order` (a permutation of `0..order.len()`) on a pool of `threads`
/// workers (0 = all cores). A worker takes the next index of `order` when it is free and, under
/// a lock, calls `take` on it (so `take` sees the indices in the order of `order`, one at a
/// time); it runs `work` on what `take` returned without the lock; results are passed to
/// `emit`, under the lock, in index order (results that finish early wait for those before
/// them). With `bounded`, `order` must be increasing and a worker does not take an index
/// `2 x workers` or more past the oldest one not yet emitted, which bounds both the waiting
/// results and what `take` has handed out. After a failure, indices above the failed one are
/// skipped (in increasing order: nothing more is taken) and lower ones still run, so the
/// failure returned is always that of the lowest failing index, whatever the timing.
fn run_ordered<P, R: Send>(
    threads: usize,
    order: &[usize],
    bounded: bool,
    take: impl FnMut(usize) -> Result<P> + Send,
    work: impl Fn(usize, P) -> Result<R> + Sync,
    emit: impl FnMut(usize, R) -> Result<()> + Send,
) -> Result<()> {
    let queue = Mutex::new(Queue {
        take,
        emit,
        next: 0,
        emitted: 0,
        ready: (0..order.len()).map(|_| None).collect(),
        error: None,
    });
    let changed = Condvar::new();
    with_pool(threads, || {
        let workers = rayon::current_num_threads().min(order.len());
        let window = if bounded {
            2 * workers.max(1)
        } else {
            usize::MAX
        };
        let worker = || {
            let mut guard = lock(&queue);
            loop {
                let (i, taken) = loop {
                    let q = &mut *guard;
                    let Some(&i) = order.get(q.next) else {
                        return;
                    };
                    // Past a failure, only lower indices still run (one of them may fail too).
                    if q.error.as_ref().is_some_and(|(j, _)| i > *j) {
                        q.next += 1;
                        continue;
                    }
                    // Indices below `emitted` were all taken, so `i >= emitted`.
                    if i.saturating_sub(q.emitted) < window {
                        q.next += 1;
                        match guarded(i, "reading its input", || (q.take)(i)) {
                            Ok(p) => break (i, p),
                            Err(e) => {
                                q.fail(i, e);
                                changed.notify_all();
                                continue;
                            }
                        }
                    }
                    guard = changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
                };
                drop(guard);
                let result = guarded(i, "encoding or decoding it", || work(i, taken));
                guard = lock(&queue);
                let q = &mut *guard;
                match result {
                    Ok(r) => {
                        if let Some(slot) = q.ready.get_mut(i) {
                            *slot = Some(r);
                        }
                        while let Some(r) = q.ready.get_mut(q.emitted).and_then(Option::take) {
                            let k = q.emitted;
                            if let Err(e) = guarded(k, "writing it", || (q.emit)(k, r)) {
                                q.fail(q.emitted, e);
                                break;
                            }
                            q.emitted += 1;
                        }
                    }
                    Err(e) => q.fail(i, e),
                }
                changed.notify_all();
            }
        };
        rayon::scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|_| worker());
            }
        });
    })?;
    let q = queue.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, e)) = q.error {
        return Err(e);
    }
    if q.emitted != order.len() {
        return Err(FormatError::Corrupt(format!(
            "{} of {} chunks were processed",
            q.emitted,
            order.len()
        )));
    }
    Ok(())
}

fn block_dims(g: &ChunkGeometry) -> BlockDims {
    BlockDims::new(g.n_slices as usize, g.n_rows as usize, g.n_cols as usize)
}

/// Compresses the values of `source` into `out` (see [`compress_stream`]); returns what was
/// written. Every `compress` entry point is this function.
fn compress_typed<'a, T: Float, S: Source<'a, T>, W: Write + Seek + Send + ?Sized>(
    mut source: S,
    shape: &Shape,
    cfg: &CompressConfig,
    out: &mut W,
) -> Result<Compressed> {
    let layout = shape.slices();
    let chunking = Chunking::for_target(layout, (cfg.chunk_bytes / T::N_BYTES).max(1) as u64);
    let n_chunks = chunking.n_chunks(layout);
    let route_cfg = RouteConfig { effort: cfg.effort };
    let n = usize::try_from(n_chunks)
        .map_err(|_| FormatError::InvalidArgument("too many chunks".into()))?;
    let n_values = |i: usize| {
        usize::try_from(chunking.geometry(layout, i as u64).n_values())
            .map_err(|_| FormatError::InvalidArgument("chunk too large".into()))
    };
    // The header and table are written last, over these zeros.
    let start = out.stream_position().map_err(FormatError::Output)?;
    let head_len = header_len(shape, n_chunks);
    let zeros = usize::try_from(head_len)
        .map(|k| vec![0u8; k])
        .map_err(|_| FormatError::InvalidArgument("too many chunks".into()))?;
    out.write_all(&zeros).map_err(FormatError::Output)?;
    let mut hash = Xxh3::new();
    let mut table: Vec<TableEntry> = Vec::with_capacity(n);
    let mut routes = Vec::with_capacity(n);
    let mut offset = head_len;
    // Chunks in order, each to the next free worker: a range split in halves left one
    // thread with the dense chunks of a radar file (PrecipRate-mrms, 2 threads: 1.54x).
    let order: Vec<usize> = (0..n).collect();
    run_ordered(
        cfg.threads,
        &order,
        true,
        |i| source.take(i, n_values(i)?, &mut hash),
        |i, values: Cow<'a, [T]>| {
            let g = chunking.geometry(layout, i as u64);
            let (route, bytes) = encode_chunk(&values, block_dims(&g), cfg, &route_cfg)
                .map_err(|e| FormatError::Corrupt(format!("encoding chunk {i}: {e}")))?;
            let checksum = xxh3_64(&bytes);
            Ok((route, bytes, checksum))
        },
        |_, (route, bytes, checksum): (RouteId, Vec<u8>, u64)| {
            out.write_all(&bytes).map_err(FormatError::Output)?;
            table.push(TableEntry {
                offset,
                length: bytes.len() as u64,
                checksum,
            });
            routes.push(route);
            offset += bytes.len() as u64;
            Ok(())
        },
    )?;
    source.finish()?;
    let header = Header {
        minor: crate::wire::MINOR,
        dtype: T::DTYPE,
        shape: shape.clone(),
        chunking,
        n_chunks,
        content_checksum: hash.digest(),
    };
    let head = write_header(&header, &table);
    if head.len() as u64 != head_len {
        return Err(FormatError::InvalidArgument(format!(
            "header of {} bytes, {head_len} expected",
            head.len()
        )));
    }
    let written = (|| {
        out.seek(SeekFrom::Start(start))?;
        out.write_all(&head)?;
        out.seek(SeekFrom::Start(start + offset))?;
        out.flush()
    })();
    written.map_err(FormatError::Output)?;
    Ok(Compressed {
        n_bytes: offset,
        routes,
    })
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
/// ~55 MB/s. So `raw_could_win` decides first for chunks over 256 KiB: a probe of 32 windows
/// of 4 KiB, then (inside the probe's 25% margin, at zstd levels up to 9) zstd level 1 over the
/// whole chunk, scaled by the level's gain on the probe. Raw is always encoded when nothing
/// else succeeded.
fn encode_chunk<T: Float>(
    values: &[T],
    dims: BlockDims,
    cfg: &CompressConfig,
    route_cfg: &RouteConfig,
) -> Result<(RouteId, Vec<u8>)> {
    let mut encoded: Vec<(RouteId, Vec<u8>)> = Vec::new();
    for id in candidate_routes(cfg.route, cfg.effort) {
        if id == RouteId::Raw && cfg.route == RouteSpec::Auto {
            let best = encoded.iter().map(|(_, b)| b.len()).min();
            if let Some(best) = best {
                if !raw_could_win(values, dims, best, cfg.backend)? {
                    continue;
                }
            }
        }
        // A route that fails to encode (e.g. unsupported input) is simply not a candidate.
        let Ok(sections) = route::encode(id, values, dims, route_cfg) else {
            continue;
        };
        encoded.push((id, store_chunk(id, sections, cfg.backend)?));
    }
    encoded.sort_by_key(|(_, b)| b.len());
    for (id, bytes) in encoded {
        if !cfg.verify || decode_chunk::<T>(&bytes, dims).is_ok_and(|back| same_bits(&back, values))
        {
            return Ok((id, bytes));
        }
    }
    // Every candidate failed verification (or none ran): the raw route always round-trips.
    let sections = route::encode(RouteId::Raw, values, dims, route_cfg)?;
    Ok((
        RouteId::Raw,
        store_chunk(RouteId::Raw, sections, cfg.backend)?,
    ))
}

/// Serialises a chunk of route `id`: each section through the back end (sections the route
/// has entropy-coded itself go as they are, see [`route::backend_may_help`]).
fn store_chunk(
    id: RouteId,
    sections: Vec<crate::section::Section>,
    backend: BackendSpec,
) -> Result<Vec<u8>> {
    let stored = sections
        .into_iter()
        .map(|s| {
            let raw_len = s.data.len() as u64;
            let (backend, data) = if route::backend_may_help(id, s.kind, s.data.len()) {
                encode_section(s.data, backend)?
            } else {
                (crate::wire::BACKEND_NONE, s.data)
            };
            Ok(StoredSection {
                kind: s.kind,
                backend,
                raw_len,
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    StoredChunk {
        route: id,
        sections: stored,
    }
    .to_bytes()
}

/// Whether the raw route might beat `best` bytes. Chunks of 256 KiB or less always run it
/// (it is cheap there, and zstd level 1 misjudges their short repeats: a 30x30 block of
/// `-0.0` took 22 bytes at level 9 and 42 at level 1). Larger chunks are probed: the back end
/// is run on `RAW_PROBE_WINDOWS` windows of the value bytes, evenly spaced from the first to
/// the last value and compressed together, and the ratio extrapolated, with a 25% margin for
/// the estimate's error. Inside that margin (and not below `best`), for zstd levels 2 to
/// [`LEVEL_1_DECIDES_UP_TO`], zstd level 1 over the whole chunk decides (see below).
///
/// Three 32 KiB windows (start, middle, end) underestimated radar-like and masked fields, whose
/// edges are empty (estimate / real zstd size: RATE-rmi 0.55, FR-LAND 0.59, V-foam 0.70, fice
/// 0.87), so raw was encoded in full for nothing there; 32 windows of 4 KiB: RATE-rmi 1.07,
/// FR-LAND 1.02, V-foam 1.01, fice 1.05; over the 40 files 0.98..1.72 (three windows:
/// 0.55..4.38). The probe alone still ran raw wherever it was within 25% of the best
/// (surface-pressure, W-wrf, TS-lens, QCLOUD) and on v1-geoflow, where it wins (estimate 0.77
/// of the modelled size). Compress CPU, median of 7: FR-LAND 33.6 -> 24.5 ms, RATE-rmi 41.9 ->
/// 29.7, V-foam 73.8 -> 56.6, fice 88.1 -> 66.6 (the probe itself: ~0.1-1.8 ms); all 80
/// outputs byte-identical. Rejected: 16 windows of 8 KiB (fice 1.47, PrecipRate 1.23), 8 of
/// 12 KiB (fice 0.72), 12 of 16 KiB (the same choices, twice the probe time); each window
/// compressed alone (16 of 8 KiB: 0.94..1.82).
///
/// The windows cannot see repetition at longer distances: rows repeating a row 84 KB back
/// (7 random rows of 3000 values in turn) compressed 22x smaller raw than modelled, and the
/// probe estimated raw above the margin. So the estimate counts the rows that repeat an
/// earlier row bit for bit (see [`repeated_row_share`]) as free.
fn raw_could_win<T: Float>(
    values: &[T],
    dims: BlockDims,
    best: usize,
    backend: BackendSpec,
) -> Result<bool> {
    const RAW_PROBE_WINDOWS: usize = 32;
    const WINDOW_VALUES_BYTES: usize = 4 << 10;
    let n_bytes = values.len() * T::N_BYTES;
    if n_bytes <= 256 << 10 {
        return Ok(true);
    }
    let best = best as f64;
    let per_window = WINDOW_VALUES_BYTES / T::N_BYTES;
    let last_start = values.len() - per_window;
    let mut sample = Vec::with_capacity(RAW_PROBE_WINDOWS * WINDOW_VALUES_BYTES);
    for i in 0..RAW_PROBE_WINDOWS {
        let start = i * last_start / (RAW_PROBE_WINDOWS - 1);
        T::extend_le_bytes(&values[start..start + per_window], &mut sample);
    }
    let packed = packed_len(&sample, backend)?;
    let mut estimate = packed as f64 * n_bytes as f64 / sample.len() as f64;
    if estimate >= best {
        estimate *= 1.0 - repeated_row_share(values, dims);
    }
    if estimate >= 1.25 * best {
        return Ok(false);
    }
    if estimate < best {
        return Ok(true);
    }
    // Inside the margin: zstd level 1 over the whole chunk, scaled by the configured level's
    // gain over level 1 on the probe's sample, predicts raw's size; raw runs when that comes
    // within 10% of `best`. On the floats of the 40 files level 1 is within a few percent of
    // level 9 (level 1 / level 9: TS-lens6h 0.99, W-wrf 1.00, surface-pressure 1.00, QCLOUD
    // 1.02, v1-geoflow 1.01) at ~10x its speed (TS-lens6h: 944 vs 86 MB/s); this skips the
    // four full raw encodings that lost (QCLOUD, W-wrf, surface-pressure, TS-lens6h: raw
    // 1.14-1.23x the modelled size). On byte-repetitive data level 9 gains more (level 1 /
    // level 9 up to 1.2 on mixtures of noisy rows and repeated patterns, NaN-payload fields):
    // level 1 alone skipped raw where it won by up to 1.9%; the sample's gain (predicted /
    // true level-9 size 1.00-1.18 there, 1.00-1.01 on the real files) keeps those. Above
    // level 9 (`--preset max`, zstd 19) the gain varies more (level 1 / level 19 up to 1.7)
    // and raw runs whenever the probe is inside its margin.
    if let BackendSpec::Zstd(level) = backend {
        if (2..=LEVEL_1_DECIDES_UP_TO).contains(&level) {
            let sample_fast = packed_len(&sample, BackendSpec::Zstd(1))?;
            let mut all = Vec::with_capacity(n_bytes);
            T::extend_le_bytes(values, &mut all);
            let fast = packed_len(&all, BackendSpec::Zstd(1))?;
            let predicted = fast as f64 * packed as f64 / sample_fast.max(1) as f64;
            return Ok(predicted < 1.1 * best);
        }
    }
    Ok(true)
}

/// The highest zstd level at which [`raw_could_win`] lets level 1 decide (the default level).
const LEVEL_1_DECIDES_UP_TO: i32 = 9;

/// The share of `values` in rows that repeat an earlier row bit for bit (constant rows left
/// out: the probe sees those). Rows are keyed by `PROBE` values at their start, middle and end
/// (masked rows often share a start), then compared in full with the first earlier row of
/// that key.
///
/// On the 40 shared files (whole files): THETA-levitus 46% of its non-constant rows repeat
/// (the same row 15 slices back, which copy mode codes too), SHwet 7.5%, QCLOUD 6%, THETA-dc
/// 5%, v1-geoflow 15% (where raw wins anyway), RATE-opera and V-foam under 1%: all 80 outputs
/// byte-identical; SHwet now encodes raw in full to find it loses (+2 ms). With `--preset
/// fast` THETA-levitus goes raw (-0.8%). Leaving copy mode's rows out instead missed that.
fn repeated_row_share<T: Float>(values: &[T], dims: BlockDims) -> f64 {
    const PROBE: usize = 8;
    let n_cols = dims.n_cols;
    if n_cols < 2 || values.len() < 2 * n_cols {
        return 0.0;
    }
    let k = PROBE.min(n_cols);
    let (mid_start, end_start) = ((n_cols - k) / 2, n_cols - k);
    let mut first: HashMap<[u64; 3 * PROBE], usize> = HashMap::with_capacity(values.len() / n_cols);
    let mut repeated = 0usize;
    for (r, row) in values.chunks_exact(n_cols).enumerate() {
        let mut key = [0u64; 3 * PROBE];
        let probed = row[..k]
            .iter()
            .chain(&row[mid_start..mid_start + k])
            .chain(&row[end_start..]);
        for (slot, v) in key.iter_mut().zip(probed) {
            *slot = v.to_bits_u64();
        }
        match first.entry(key) {
            Entry::Vacant(e) => {
                e.insert(r);
            }
            Entry::Occupied(e) => {
                let q = *e.get();
                let earlier = &values[q * n_cols..(q + 1) * n_cols];
                // Constant rows are checked only when they repeat (a scan of the row).
                let constant = || {
                    let b0 = row[0].to_bits_u64();
                    row.iter().all(|v| v.to_bits_u64() == b0)
                };
                if same_bits(earlier, row) && !constant() {
                    repeated += 1;
                }
            }
        }
    }
    (repeated * n_cols) as f64 / values.len() as f64
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

/// Reads the header and table of a file and checks its size against the limit.
fn open_file(input: &[u8], cfg: &DecompressConfig) -> Result<(Header, Vec<TableEntry>)> {
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
    Ok((header, table))
}

/// Decompresses a melloc file, verifying every checksum, into the values of its chunks.
pub fn decompress_values(input: &[u8], cfg: &DecompressConfig) -> Result<DecodedValues> {
    let (header, table) = open_file(input, cfg)?;
    let chunks = match header.dtype {
        DType::F32 => ChunkValues::F32(collect_chunks(input, &header, &table, cfg.threads)?),
        DType::F64 => ChunkValues::F64(collect_chunks(input, &header, &table, cfg.threads)?),
    };
    Ok(DecodedValues {
        dtype: header.dtype,
        shape: header.shape,
        chunks,
    })
}

/// Decompresses a melloc file into `output` (the original bytes: little-endian values, C
/// order), one chunk at a time: chunks are decoded in order and written as soon as those
/// before them are, so only the chunks being decoded (a few per worker) are in memory, not the
/// whole output. Returns the element type and shape.
///
/// Every chunk's checksum is verified before it is decoded, but the content checksum only
/// after the last chunk was written: on an error `output` holds part of the data, so write to
/// a temporary file and keep it only on success ([`decompress_values`] verifies everything
/// before returning anything). Write errors are [`FormatError::Output`].
pub fn decompress_stream<W: Write + Send + ?Sized>(
    input: &[u8],
    cfg: &DecompressConfig,
    output: &mut W,
) -> Result<(DType, Shape)> {
    let (header, table) = open_file(input, cfg)?;
    let mut buf = Vec::new();
    match header.dtype {
        DType::F32 => decode_chunks::<f32>(input, &header, &table, cfg.threads, false, |v| {
            for_each_le_block([&v[..]], &mut buf, |b| output.write_all(b))
                .map_err(FormatError::Output)
        })?,
        DType::F64 => decode_chunks::<f64>(input, &header, &table, cfg.threads, false, |v| {
            for_each_le_block([&v[..]], &mut buf, |b| output.write_all(b))
                .map_err(FormatError::Output)
        })?,
    }
    output.flush().map_err(FormatError::Output)?;
    Ok((header.dtype, header.shape))
}

/// Checks and decodes chunk `i` of a file.
fn decode_stored_chunk<T: Float>(
    input: &[u8],
    header: &Header,
    table: &[TableEntry],
    i: usize,
) -> Result<Vec<T>> {
    let e = table[i];
    let bytes = &input[e.offset as usize..(e.offset + e.length) as usize];
    if xxh3_64(bytes) != e.checksum {
        return Err(FormatError::ChecksumMismatch {
            section: format!("chunk {i}"),
        });
    }
    let dims = block_dims(&header.chunking.geometry(header.shape.slices(), i as u64));
    decode_chunk::<T>(bytes, dims).map_err(|err| in_chunk(i as u64, err))
}

/// The content checksum check, after the last chunk.
fn check_content(hash: &Xxh3, header: &Header) -> Result<()> {
    if hash.digest() != header.content_checksum {
        return Err(FormatError::ChecksumMismatch {
            section: "content (the decoded data)".into(),
        });
    }
    Ok(())
}

/// Checks and decodes every chunk of a file (in parallel), and returns their values in order,
/// verified against the content checksum.
fn collect_chunks<T: Float>(
    input: &[u8],
    header: &Header,
    table: &[TableEntry],
    threads: usize,
) -> Result<Vec<Vec<T>>> {
    let mut chunks = Vec::with_capacity(table.len());
    decode_chunks(input, header, table, threads, true, |v| {
        chunks.push(v);
        Ok(())
    })?;
    Ok(chunks)
}

/// Checks and decodes every chunk of a file (in parallel), passes each chunk's values to
/// `emit` in chunk order, then verifies the content checksum.
///
/// With `largest_first`, the largest stored chunks go first, each to the next free worker
/// (longest processing time first): radar files have a few dense chunks among cheap ones, and
/// splitting the chunk range in halves left one thread with most of the work (PrecipRate-mrms,
/// 6 chunks: 2 threads decoded 1.39x faster than 1); results that finish early wait for those
/// before them. Without it, chunks are taken in order, a few ahead of the oldest one not yet
/// passed on, so only those are in memory. Chunks decode independently, so the values do not
/// depend on the order or the thread count; the first failing chunk is reported.
fn decode_chunks<T: Float>(
    input: &[u8],
    header: &Header,
    table: &[TableEntry],
    threads: usize,
    largest_first: bool,
    mut emit: impl FnMut(Vec<T>) -> Result<()> + Send,
) -> Result<()> {
    let mut order: Vec<usize> = (0..table.len()).collect();
    if largest_first {
        order.sort_by_key(|&i| std::cmp::Reverse(table[i].length));
    }
    let mut hash = Xxh3::new();
    let mut buf = Vec::new();
    run_ordered(
        threads,
        &order,
        !largest_first,
        |_| Ok(()),
        |i, ()| decode_stored_chunk::<T>(input, header, table, i),
        |_, v: Vec<T>| {
            hash_values(&mut hash, &v, &mut buf);
            emit(v)
        },
    )?;
    check_content(&hash, header)
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

    /// Little-endian bytes of `values`.
    fn le_bytes(values: &[f32]) -> Vec<u8> {
        let mut all = Vec::new();
        f32::extend_le_bytes(values, &mut all);
        all
    }

    /// `n` values `f(x)` of a xorshift sequence `x` from `seed`.
    fn xorshift_values(seed: u64, n: usize, mut f: impl FnMut(u64) -> f32) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f(x)
            })
            .collect()
    }

    /// The raw route is tried when it could win and skipped, inside the probe's 25% margin,
    /// when it would lose by more than 10%; small chunks, levels above 9 and lz4 always try it.
    #[test]
    fn raw_route_runs_only_when_it_could_win() {
        // 2^17 values from 16 patterns: uniform, so the probe estimates the whole well.
        let values = xorshift_values(0x2545_F491_4F6C_DD1Du64, 1 << 17, |x| {
            (x >> 60) as f32 * 0.37 + 100.0
        });
        let dims = BlockDims::new(1, 128, 1024);
        let all = le_bytes(&values);
        let (l9, l19) = (BackendSpec::Zstd(9), BackendSpec::Zstd(19));
        let raw9 = packed_len(&all, l9).unwrap() as f64;
        let raw19 = packed_len(&all, l19).unwrap() as f64;
        let could = |best: f64, spec| raw_could_win(&values, dims, best as usize, spec).unwrap();
        assert!(could(raw9 * 2.0, l9));
        assert!(could(raw9 * 1.02, l9));
        assert!(
            !could(raw9 / 1.2, l9),
            "inside the probe's margin, lost by 20%"
        );
        assert!(!could(raw9 / 2.0, l9));
        // Above the default level only the probe decides.
        assert!(could(raw19 / 1.2, l19));
        assert!(!could(raw19 / 2.0, l19));
        let lz4 = packed_len(&all, BackendSpec::Lz4).unwrap() as f64;
        assert!(could(lz4 / 1.1, BackendSpec::Lz4));
        // Chunks of 256 KiB or less always run raw.
        let small = &values[..1 << 16];
        assert!(raw_could_win(small, BlockDims::new(1, 1, small.len()), 1, l9).unwrap());
    }

    /// Where level 9 gains much more than level 1 (NaNs with random 10-bit payloads: level 1
    /// / level 9 = 1.17), raw still runs when it wins narrowly: level 1 alone would skip it.
    #[test]
    fn raw_route_runs_where_higher_levels_gain_more() {
        let values = xorshift_values(0x9E37_79B9_7F4A_7C15u64, 1 << 18, |x| {
            f32::from_bits(0x7fc0_0000 | (x % 1000) as u32)
        });
        let dims = BlockDims::new(1, 256, 1024);
        let all = le_bytes(&values);
        let l9 = BackendSpec::Zstd(9);
        let raw9 = packed_len(&all, l9).unwrap() as f64;
        let raw1 = packed_len(&all, BackendSpec::Zstd(1)).unwrap() as f64;
        assert!(raw1 > 1.1 * raw9, "level 1 / level 9 = {}", raw1 / raw9);
        assert!(raw_could_win(&values, dims, (raw9 * 1.01) as usize, l9).unwrap());
        assert!(!raw_could_win(&values, dims, (raw9 / 1.2) as usize, l9).unwrap());
    }

    /// Random numbers from `seed`, in [-0.5, 0.5).
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        xorshift_values(seed, n, |x| {
            ((x >> 40) as f64 / (1u64 << 24) as f64 - 0.5) as f32
        })
    }

    /// Rows repeating 13 rows back (156 KB, beyond the probe's windows) make raw far smaller
    /// than a modelled route could be; the probe alone estimated it above the margin.
    #[test]
    fn raw_route_runs_on_rows_repeating_far_back() {
        // Random mantissas in [1, 2): the windows compress to about 3/4.
        let rows = xorshift_values(0x2545_F491_4F6C_DD1Du64, 13 * 3000, |x| {
            f32::from_bits(0x3f80_0000 | (x >> 41) as u32)
        });
        let values: Vec<f32> = (0..300)
            .flat_map(|r| rows[(r % 13) * 3000..(r % 13 + 1) * 3000].iter().copied())
            .collect();
        let dims = BlockDims::new(1, 300, 3000);
        assert!(repeated_row_share(&values, dims) > 0.95);
        let n_bytes = values.len() * 4;
        let l9 = BackendSpec::Zstd(9);
        assert!(packed_len(&le_bytes(&values), l9).unwrap() < n_bytes / 10);
        assert!(raw_could_win(&values, dims, n_bytes / 2, l9).unwrap());
    }

    /// Repeated rows count, in a slice or across slices; constant rows and rows sharing only
    /// their keyed values do not.
    #[test]
    fn repeated_row_share_counts_what_raw_exploits() {
        let (n_rows, n_cols) = (4, 16);
        let fresh = noise(3, 2 * n_rows * n_cols);
        let dims = BlockDims::new(2, n_rows, n_cols);
        assert_eq!(repeated_row_share(&fresh, dims), 0.0);
        // Two slices, the second repeating the first row for row: half the rows.
        let mut values: Vec<f32> = fresh[..n_rows * n_cols].to_vec();
        values.extend_from_within(..n_rows * n_cols);
        assert_eq!(repeated_row_share(&values, dims), 0.5);
        // Constant rows repeat too, but the probe sees them.
        let mut constant = values.clone();
        constant[n_rows * n_cols..].fill(2.5);
        constant[..n_cols].fill(2.5);
        assert_eq!(repeated_row_share(&constant, dims), 0.0);
        // Slice 1, row 2 repeats slice 0, row 0: one row in eight.
        let mut moved = fresh.clone();
        moved.copy_within(..n_cols, (n_rows + 2) * n_cols);
        assert_eq!(repeated_row_share(&moved, dims), 1.0 / 8.0);
        // Rows of 40 share their keyed values (columns 0-7, 16-23, 32-39) but not the 11th.
        let mut wide = noise(5, 4 * 40);
        wide.copy_within(..40, 2 * 40);
        let wide_dims = BlockDims::new(1, 4, 40);
        assert_eq!(repeated_row_share(&wide, wide_dims), 0.25);
        wide[2 * 40 + 10] = f32::from_bits(wide[10].to_bits() ^ 1);
        assert_eq!(repeated_row_share(&wide, wide_dims), 0.0);
        // A repeat inside a slice counts; rows differing in the sign of a zero are different.
        let mut signs = fresh.clone();
        signs.copy_within(..n_cols, n_cols);
        assert_eq!(repeated_row_share(&signs, dims), 1.0 / 8.0);
        signs[0] = 0.0;
        signs[n_cols] = -0.0;
        assert_eq!(repeated_row_share(&signs, dims), 0.0);
    }

    proptest::proptest! {
        /// `repeated_row_share` counts exactly the non-constant rows equal to an earlier row
        /// bit for bit (by brute force).
        #[test]
        fn repeated_row_share_matches_brute_force(
            picks in proptest::collection::vec(0usize..6, 1..60),
            n_slices in 1usize..4,
            n_cols in 2usize..20,
        ) {
            // Six row patterns: four random, one constant, one a random row with a -0.0.
            let mut patterns: Vec<Vec<f32>> =
                (0..4).map(|p| noise(p as u64 + 11, n_cols)).collect();
            patterns.push(vec![1.5; n_cols]);
            let mut signed = patterns[0].clone();
            signed[n_cols - 1] = -0.0;
            patterns.push(signed);
            let n_rows = picks.len().div_ceil(n_slices);
            let rows: Vec<&Vec<f32>> = (0..n_slices * n_rows)
                .map(|r| &patterns[picks[r % picks.len()]])
                .collect();
            let values: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
            let bits = |r: &[f32]| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let mut repeated = 0usize;
            for (r, row) in rows.iter().enumerate() {
                if bits(row).iter().all(|&b| b == row[0].to_bits()) {
                    continue;
                }
                if (0..r).any(|q| bits(rows[q]) == bits(row)) {
                    repeated += 1;
                }
            }
            let dims = BlockDims::new(n_slices, n_rows, n_cols);
            let want = if rows.len() < 2 { 0.0 } else { repeated as f64 / rows.len() as f64 };
            proptest::prop_assert_eq!(repeated_row_share(&values, dims), want);
        }
    }

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

    /// A worker that panics (in `take`, `work` or `emit`) makes `run_ordered` return an
    /// internal error for that index instead of leaving the other workers waiting for it: the
    /// call runs on a thread and must finish within 20 s.
    #[test]
    fn a_panicking_worker_is_an_error_not_a_hang() {
        for (threads, stage) in [(1, 0), (2, 0), (2, 1), (3, 2), (2, 2)] {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let order: Vec<usize> = (0..20).collect();
                let r = run_ordered(
                    threads,
                    &order,
                    true,
                    |i| {
                        assert!(!(stage == 0 && i == 3), "take fails at 3");
                        Ok(i)
                    },
                    |i, p| {
                        if stage == 1 && i == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            panic!("work fails at 0");
                        }
                        Ok(p)
                    },
                    |i, _| {
                        assert!(!(stage == 2 && i == 5), "emit fails at 5");
                        Ok(())
                    },
                );
                let _ = tx.send(r);
            });
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("run_ordered hung after a worker panicked");
            let want = ["chunk 3", "chunk 0", "chunk 5"][stage];
            match r {
                Err(FormatError::Internal(m)) => assert!(m.contains(want), "{m}"),
                other => panic!("expected an internal error, got {other:?}"),
            }
        }
    }

    /// `run_ordered`: results come out in index order, bounded runs never take an index
    /// `2 x workers` past the oldest result not yet emitted, and the failure of the lowest
    /// index wins whatever finishes first.
    #[test]
    fn ordered_runs_emit_in_order_within_the_window() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for threads in [1, 2, 3] {
            let emitted = AtomicUsize::new(0);
            let max_ahead = AtomicUsize::new(0);
            let mut seen = Vec::new();
            let order: Vec<usize> = (0..40).collect();
            run_ordered(
                threads,
                &order,
                true,
                |i| {
                    let ahead = i - emitted.load(Ordering::SeqCst);
                    max_ahead.fetch_max(ahead, Ordering::SeqCst);
                    Ok(i * 10)
                },
                |i, p| {
                    // Early chunks are slow, so later ones finish first.
                    if i % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Ok(p + 1)
                },
                |i, r| {
                    assert_eq!(r, i * 10 + 1);
                    seen.push(i);
                    emitted.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, order);
            assert!(max_ahead.into_inner() < 2 * threads, "T{threads}");
            // Failures: the lowest index is reported, also when a later one fails first.
            let mut lpt = order.clone();
            lpt.reverse();
            for (ord, bounded) in [(&order, true), (&lpt, false)] {
                let err = run_ordered(
                    threads,
                    ord,
                    bounded,
                    |_| Ok(()),
                    |i, ()| {
                        if i == 9 {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        match i {
                            9 | 12 | 30 => Err(FormatError::Corrupt(format!("chunk {i}"))),
                            _ => Ok(i),
                        }
                    },
                    |_, _| Ok(()),
                )
                .unwrap_err();
                assert_eq!(err.to_string(), "corrupt data: chunk 9", "T{threads}");
            }
        }
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
