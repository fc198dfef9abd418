//! The container: preamble, header, chunk table and chunks (format 1.x, see `docs/format.md`).
//!
//! Every structure read here comes from untrusted bytes. Each read is bounds-checked, every
//! declared count is checked against the remaining input (and the memory limit) before anything
//! is allocated from it, and every checksum is verified before the bytes it covers are used.

use melloc_core::{DType, Shape, SliceLayout};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{corrupt, FormatError, Result};
use crate::route::RouteId;
use crate::section::Section;
use crate::wire;

/// A bounds-checked little-endian reader over untrusted bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                FormatError::Truncated(format!(
                    "{}: needed {n} bytes at offset {}, only {} left",
                    self.what,
                    self.pos,
                    self.buf.len() - self.pos
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
}

/// How the field is cut into chunks. Exactly one of three modes holds:
/// whole slices (`rows_per_chunk == n_rows`, `cols_per_chunk == n_cols`), row bands of one slice
/// (`slices_per_chunk == 1`, `rows_per_chunk < n_rows`, `cols_per_chunk == n_cols`), or pieces
/// of one row (`slices_per_chunk == 1`, `rows_per_chunk == 1`, `cols_per_chunk < n_cols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    /// Slices per chunk.
    pub slices_per_chunk: u64,
    /// Rows per chunk.
    pub rows_per_chunk: u64,
    /// Columns per chunk.
    pub cols_per_chunk: u64,
}

/// Where one chunk lies in the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkGeometry {
    /// First slice.
    pub first_slice: u64,
    /// Slices in the chunk.
    pub n_slices: u64,
    /// First row within the slice.
    pub first_row: u64,
    /// Rows in the chunk.
    pub n_rows: u64,
    /// First column within the row.
    pub first_col: u64,
    /// Columns in the chunk.
    pub n_cols: u64,
    /// Offset of the chunk's first value in the flat C-order array.
    pub first_value: u64,
}

impl ChunkGeometry {
    /// Number of values in the chunk.
    pub fn n_values(&self) -> u64 {
        self.n_slices * self.n_rows * self.n_cols
    }
}

impl Chunking {
    /// The chunking an encoder uses for about `target_values` values per chunk.
    pub fn for_target(layout: SliceLayout, target_values: u64) -> Self {
        let target = target_values.max(1);
        let slice_len = layout.n_rows * layout.n_cols;
        if slice_len <= target {
            Self {
                slices_per_chunk: (target / slice_len).clamp(1, layout.n_slices),
                rows_per_chunk: layout.n_rows,
                cols_per_chunk: layout.n_cols,
            }
        } else if layout.n_cols <= target {
            Self {
                slices_per_chunk: 1,
                rows_per_chunk: (target / layout.n_cols).clamp(1, layout.n_rows),
                cols_per_chunk: layout.n_cols,
            }
        } else {
            Self {
                slices_per_chunk: 1,
                rows_per_chunk: 1,
                cols_per_chunk: target,
            }
        }
    }

    /// Checks the mode invariants against a layout.
    pub fn validate(&self, layout: SliceLayout) -> Result<()> {
        let Chunking {
            slices_per_chunk: s,
            rows_per_chunk: r,
            cols_per_chunk: c,
        } = *self;
        let ok = s >= 1
            && (1..=layout.n_rows).contains(&r)
            && (1..=layout.n_cols).contains(&c)
            && s <= layout.n_slices
            && (r == layout.n_rows || s == 1)
            && (c == layout.n_cols || (s == 1 && r == 1));
        if ok {
            Ok(())
        } else {
            Err(corrupt!("invalid chunking {self:?} for {layout:?}"))
        }
    }

    /// Number of chunks.
    pub fn n_chunks(&self, layout: SliceLayout) -> u64 {
        if self.cols_per_chunk < layout.n_cols {
            layout.n_slices * layout.n_rows * layout.n_cols.div_ceil(self.cols_per_chunk)
        } else if self.rows_per_chunk < layout.n_rows {
            layout.n_slices * layout.n_rows.div_ceil(self.rows_per_chunk)
        } else {
            layout.n_slices.div_ceil(self.slices_per_chunk)
        }
    }

    /// Geometry of chunk `index` (`index < n_chunks`).
    pub fn geometry(&self, layout: SliceLayout, index: u64) -> ChunkGeometry {
        let (rows, cols) = (layout.n_rows, layout.n_cols);
        if self.cols_per_chunk < cols {
            let pieces = cols.div_ceil(self.cols_per_chunk);
            let global_row = index / pieces;
            let first_col = (index % pieces) * self.cols_per_chunk;
            ChunkGeometry {
                first_slice: global_row / rows,
                n_slices: 1,
                first_row: global_row % rows,
                n_rows: 1,
                first_col,
                n_cols: self.cols_per_chunk.min(cols - first_col),
                first_value: global_row * cols + first_col,
            }
        } else if self.rows_per_chunk < rows {
            let bands = rows.div_ceil(self.rows_per_chunk);
            let slice = index / bands;
            let first_row = (index % bands) * self.rows_per_chunk;
            ChunkGeometry {
                first_slice: slice,
                n_slices: 1,
                first_row,
                n_rows: self.rows_per_chunk.min(rows - first_row),
                first_col: 0,
                n_cols: cols,
                first_value: (slice * rows + first_row) * cols,
            }
        } else {
            let first_slice = index * self.slices_per_chunk;
            ChunkGeometry {
                first_slice,
                n_slices: self.slices_per_chunk.min(layout.n_slices - first_slice),
                first_row: 0,
                n_rows: rows,
                first_col: 0,
                n_cols: cols,
                first_value: first_slice * rows * cols,
            }
        }
    }
}

/// The file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Minor version of the file (major is always [`wire::MAJOR`] once parsed).
    pub minor: u16,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Chunking.
    pub chunking: Chunking,
    /// Number of chunks (redundant with shape and chunking; checked).
    pub n_chunks: u64,
    /// xxh3-64 of the original bytes.
    pub content_checksum: u64,
}

impl Header {
    /// Size of the original data in bytes.
    pub fn original_bytes(&self) -> u64 {
        self.shape.n_elements() * self.dtype.n_bytes() as u64
    }
}

/// One entry of the chunk table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// Absolute offset of the chunk in the file.
    pub offset: u64,
    /// Length of the chunk in bytes.
    pub length: u64,
    /// xxh3-64 of the chunk bytes.
    pub checksum: u64,
}

/// An encoded chunk before serialisation: its route and its stored sections
/// `(kind, backend code, raw length, stored bytes)`.
#[derive(Clone, Debug)]
pub struct StoredChunk {
    /// Route.
    pub route: RouteId,
    /// Sections as stored.
    pub sections: Vec<StoredSection>,
}

/// A section as stored in a chunk.
#[derive(Clone, Debug)]
pub struct StoredSection {
    /// Route-defined kind.
    pub kind: u8,
    /// Back-end code.
    pub backend: u8,
    /// Length after back-end decoding.
    pub raw_len: u64,
    /// The stored bytes.
    pub data: Vec<u8>,
}

impl StoredChunk {
    /// Serialised size in bytes.
    pub fn byte_len(&self) -> usize {
        wire::CHUNK_HEADER_LEN
            + self
                .sections
                .iter()
                .map(|s| wire::SECTION_DESC_LEN + s.data.len())
                .sum::<usize>()
    }

    /// Serialises the chunk.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let n = u8::try_from(self.sections.len()).map_err(|_| {
            FormatError::InvalidArgument("a chunk holds at most 255 sections".into())
        })?;
        let mut out = Vec::with_capacity(self.byte_len());
        out.push(self.route as u8);
        out.push(n);
        out.extend_from_slice(&0u16.to_le_bytes());
        for s in &self.sections {
            out.push(s.kind);
            out.push(s.backend);
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&s.raw_len.to_le_bytes());
            out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&xxh3_64(&s.data).to_le_bytes());
        }
        for s in &self.sections {
            out.extend_from_slice(&s.data);
        }
        Ok(out)
    }

    /// Parses a chunk. `max_raw_len` bounds every section's declared raw length.
    pub fn parse(bytes: &[u8], max_raw_len: u64) -> Result<Self> {
        let mut r = Reader::new(bytes, "chunk header");
        let route_code = r.u8()?;
        let route = RouteId::from_u8(route_code)
            .ok_or_else(|| corrupt!("unknown route code {route_code}"))?;
        let n = r.u8()? as usize;
        if r.u16()? != 0 {
            return Err(corrupt!("reserved chunk header bytes are not zero"));
        }
        // n <= 255 descriptors of fixed size: bounded, and checked against the input by `bytes`.
        let descs = r.bytes(n * wire::SECTION_DESC_LEN)?;
        let mut d = Reader::new(descs, "section descriptor");
        let mut sections = Vec::with_capacity(n);
        let mut data = Reader::new(&bytes[r.pos()..], "section data");
        for i in 0..n {
            let kind = d.u8()?;
            let backend = d.u8()?;
            if d.u16()? != 0 {
                return Err(corrupt!("section {i}: reserved bytes are not zero"));
            }
            let raw_len = d.u64()?;
            let stored_len = d.u64()?;
            let checksum = d.u64()?;
            if raw_len > max_raw_len {
                return Err(corrupt!(
                    "section {i}: declared raw length {raw_len} exceeds the bound {max_raw_len}"
                ));
            }
            if backend == wire::BACKEND_NONE && stored_len != raw_len {
                return Err(corrupt!("section {i}: stored {stored_len} bytes but raw length {raw_len} with no back end"));
            }
            let stored_len = usize::try_from(stored_len)
                .map_err(|_| corrupt!("section {i}: length overflows"))?;
            let stored = data.bytes(stored_len)?;
            if xxh3_64(stored) != checksum {
                return Err(FormatError::ChecksumMismatch {
                    section: format!("section {i} (kind {kind})"),
                });
            }
            sections.push(StoredSection {
                kind,
                backend,
                raw_len,
                data: stored.to_vec(),
            });
        }
        if data.pos() != bytes.len() - r.pos() {
            return Err(corrupt!(
                "{} trailing bytes after the last section",
                bytes.len() - r.pos() - data.pos()
            ));
        }
        Ok(Self { route, sections })
    }

    /// [`decode_sections`](Self::decode_sections), consuming the chunk: a section stored
    /// without a back end is moved, not copied, and every stored section is freed once decoded.
    /// The decoder used to hold the chunk's stored bytes until its values were rebuilt: 1.7 MB
    /// of the 8.8 MB heap peak of decompressing TREFHT.
    pub fn into_decoded_sections(self) -> Result<Vec<Section>> {
        self.sections
            .into_iter()
            .map(|s| {
                let raw_len =
                    usize::try_from(s.raw_len).map_err(|_| corrupt!("section length overflows"))?;
                let data = match s.backend {
                    wire::BACKEND_NONE if s.data.len() == raw_len => s.data,
                    code => crate::backend::decode_section(code, &s.data, raw_len)?,
                };
                Ok(Section::new(s.kind, data))
            })
            .collect()
    }

    /// Decodes the back ends of every section.
    pub fn decode_sections(&self) -> Result<Vec<Section>> {
        self.sections
            .iter()
            .map(|s| {
                let raw_len =
                    usize::try_from(s.raw_len).map_err(|_| corrupt!("section length overflows"))?;
                Ok(Section::new(
                    s.kind,
                    crate::backend::decode_section(s.backend, &s.data, raw_len)?,
                ))
            })
            .collect()
    }
}

/// Bound on the raw length of any section of a chunk of `n_values` values.
pub fn max_section_len(n_values: u64) -> u64 {
    n_values
        .saturating_mul(wire::MAX_SECTION_BYTES_PER_VALUE)
        .saturating_add(wire::SECTION_SLACK)
}

/// Serialises preamble, header and chunk table.
pub fn write_header(header: &Header, table: &[TableEntry]) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(match header.dtype {
        DType::F32 => wire::DTYPE_F32,
        DType::F64 => wire::DTYPE_F64,
    });
    body.push(header.shape.n_dims() as u8);
    body.extend_from_slice(&0u16.to_le_bytes());
    for &d in header.shape.dims() {
        body.extend_from_slice(&d.to_le_bytes());
    }
    let c = header.chunking;
    for v in [
        c.slices_per_chunk,
        c.rows_per_chunk,
        c.cols_per_chunk,
        header.n_chunks,
        header.content_checksum,
    ] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(
        wire::PREAMBLE_LEN + body.len() + 16 + table.len() * wire::TABLE_ENTRY_LEN,
    );
    out.extend_from_slice(&wire::MAGIC);
    out.extend_from_slice(&wire::MAJOR.to_le_bytes());
    out.extend_from_slice(&wire::MINOR.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let header_sum = xxh3_64(&out);
    out.extend_from_slice(&header_sum.to_le_bytes());
    let table_start = out.len();
    for e in table {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.checksum.to_le_bytes());
    }
    let table_sum = xxh3_64(&out[table_start..]);
    out.extend_from_slice(&table_sum.to_le_bytes());
    out
}

/// Length of preamble + header + header checksum + table + table checksum.
pub fn header_len(shape: &Shape, n_chunks: u64) -> u64 {
    (wire::PREAMBLE_LEN + 4 + 8 * shape.n_dims() + 5 * 8 + 8 + 8) as u64
        + n_chunks * wire::TABLE_ENTRY_LEN as u64
}

/// Parses and validates preamble, header and chunk table. Checks that chunks tile the rest of
/// the file exactly, in order.
pub fn read_header(input: &[u8]) -> Result<(Header, Vec<TableEntry>)> {
    let mut r = Reader::new(input, "preamble");
    if r.bytes(8).map_err(|_| FormatError::BadMagic)? != wire::MAGIC {
        return Err(FormatError::BadMagic);
    }
    let major = r.u16()?;
    let minor = r.u16()?;
    if major != wire::MAJOR {
        return Err(FormatError::UnsupportedVersion { major, minor });
    }
    let body_len = r.u32()?;
    if body_len > wire::MAX_HEADER_LEN {
        return Err(corrupt!(
            "header length {body_len} exceeds {}",
            wire::MAX_HEADER_LEN
        ));
    }
    let body = r.bytes(body_len as usize)?;
    let covered = &input[..r.pos()];
    let header_sum = r.u64()?;
    if xxh3_64(covered) != header_sum {
        return Err(FormatError::ChecksumMismatch {
            section: "header".into(),
        });
    }
    let mut h = Reader::new(body, "header");
    let dtype = match h.u8()? {
        wire::DTYPE_F32 => DType::F32,
        wire::DTYPE_F64 => DType::F64,
        other => return Err(corrupt!("unknown dtype code {other}")),
    };
    let n_dims = h.u8()? as usize;
    if h.u16()? != 0 {
        return Err(corrupt!("reserved header bytes are not zero"));
    }
    if !(1..=melloc_core::shape::MAX_DIMS).contains(&n_dims) {
        return Err(corrupt!("{n_dims} dimensions (expected 1 to 4)"));
    }
    let mut dims = [0u64; melloc_core::shape::MAX_DIMS];
    for d in dims.iter_mut().take(n_dims) {
        *d = h.u64()?;
    }
    let shape = Shape::new(&dims[..n_dims]).map_err(|e| corrupt!("shape: {e}"))?;
    shape
        .n_elements()
        .checked_mul(dtype.n_bytes() as u64)
        .ok_or_else(|| corrupt!("shape {shape} is too large"))?;
    let chunking = Chunking {
        slices_per_chunk: h.u64()?,
        rows_per_chunk: h.u64()?,
        cols_per_chunk: h.u64()?,
    };
    let n_chunks = h.u64()?;
    let content_checksum = h.u64()?;
    let layout = shape.slices();
    chunking.validate(layout)?;
    if chunking.n_chunks(layout) != n_chunks {
        return Err(corrupt!(
            "header declares {n_chunks} chunks, shape and chunking imply {}",
            chunking.n_chunks(layout)
        ));
    }
    // The table must fit in the input before anything is allocated from `n_chunks`.
    let table_len = n_chunks
        .checked_mul(wire::TABLE_ENTRY_LEN as u64)
        .filter(|&l| l <= (input.len() - r.pos()) as u64)
        .ok_or_else(|| {
            FormatError::Truncated(format!(
                "chunk table of {n_chunks} entries does not fit in the input"
            ))
        })?;
    let table_start = r.pos();
    let table_bytes = r.bytes(table_len as usize)?;
    let table_sum = r.u64()?;
    if xxh3_64(table_bytes) != table_sum {
        return Err(FormatError::ChecksumMismatch {
            section: "chunk table".into(),
        });
    }
    let mut t = Reader::new(table_bytes, "chunk table");
    let mut table = Vec::with_capacity(n_chunks as usize);
    let mut expected_offset = (table_start as u64) + table_len + 8;
    for i in 0..n_chunks {
        let e = TableEntry {
            offset: t.u64()?,
            length: t.u64()?,
            checksum: t.u64()?,
        };
        if e.offset != expected_offset {
            return Err(corrupt!(
                "chunk {i} starts at {}, expected {expected_offset}",
                e.offset
            ));
        }
        expected_offset = e
            .offset
            .checked_add(e.length)
            .ok_or_else(|| corrupt!("chunk {i}: length overflows"))?;
        table.push(e);
    }
    if expected_offset != input.len() as u64 {
        return Err(if expected_offset > input.len() as u64 {
            FormatError::Truncated(format!(
                "chunks end at byte {expected_offset}, the input has {} bytes",
                input.len()
            ))
        } else {
            corrupt!(
                "{} trailing bytes after the last chunk",
                input.len() as u64 - expected_offset
            )
        });
    }
    Ok((
        Header {
            minor,
            dtype,
            shape,
            chunking,
            n_chunks,
            content_checksum,
        },
        table,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layouts() -> Vec<SliceLayout> {
        vec![
            SliceLayout {
                n_slices: 1,
                n_rows: 1,
                n_cols: 1,
            },
            SliceLayout {
                n_slices: 1,
                n_rows: 1,
                n_cols: 1001,
            },
            SliceLayout {
                n_slices: 7,
                n_rows: 13,
                n_cols: 5,
            },
            SliceLayout {
                n_slices: 1,
                n_rows: 97,
                n_cols: 31,
            },
            SliceLayout {
                n_slices: 3,
                n_rows: 10,
                n_cols: 10,
            },
        ]
    }

    #[test]
    fn chunks_tile_the_field_in_order() {
        for layout in layouts() {
            for target in [1u64, 3, 7, 50, 64, 100, 1000, 100_000] {
                let c = Chunking::for_target(layout, target);
                c.validate(layout).unwrap();
                let mut next = 0;
                for i in 0..c.n_chunks(layout) {
                    let g = c.geometry(layout, i);
                    assert_eq!(g.first_value, next, "{layout:?} {c:?} chunk {i}");
                    assert!(g.n_values() >= 1);
                    next += g.n_values();
                }
                assert_eq!(next, layout.n_slices * layout.n_rows * layout.n_cols);
            }
        }
    }

    #[test]
    fn header_roundtrips_and_rejects_tampering() {
        let shape = Shape::new(&[3, 10, 10]).unwrap();
        let chunking = Chunking::for_target(shape.slices(), 100);
        let n = chunking.n_chunks(shape.slices());
        let h = Header {
            minor: wire::MINOR,
            dtype: DType::F32,
            shape: shape.clone(),
            chunking,
            n_chunks: n,
            content_checksum: 42,
        };
        let start = header_len(&shape, n);
        let table: Vec<TableEntry> = (0..n)
            .map(|i| TableEntry {
                offset: start + i * 10,
                length: 10,
                checksum: 0,
            })
            .collect();
        let mut file = write_header(&h, &table);
        assert_eq!(file.len() as u64, start);
        file.extend(std::iter::repeat_n(0u8, (n * 10) as usize));
        let (h2, t2) = read_header(&file).unwrap();
        assert_eq!(h2, h);
        assert_eq!(t2, table);
        for cut in 0..file.len() {
            assert!(read_header(&file[..cut]).is_err(), "cut at {cut}");
        }
        for byte in 0..(start as usize) {
            let mut bad = file.clone();
            bad[byte] ^= 0x10;
            assert!(read_header(&bad).is_err(), "flip at byte {byte}");
        }
    }
}
