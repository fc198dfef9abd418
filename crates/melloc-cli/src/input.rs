//! Reading inputs: whole files or stdin, raw bytes with a dtype and shape (from flags or from an
//! SDRBench-style file name), or `.npy` (dtype and shape from its header).

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use melloc_format::{DType, Shape};

/// The first bytes of every `.npy` file.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// `true` for the `-` path (standard input or output).
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The name used in messages: the path as given, or `<stdin>`.
pub fn display_name(path: &Path) -> String {
    if is_dash(path) {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a whole file (or stdin for `-`), with the file named in the error.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    if is_dash(path) {
        if std::io::stdin().is_terminal() {
            bail!("refusing to read data from a terminal; pipe the input or give a FILE");
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading <stdin>")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Where the dtype and shape of an input came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Raw bytes, dtype and shape from the flags.
    Flags,
    /// Raw bytes, dtype and/or shape inferred from the file name.
    FromName {
        /// The dtype came from the `.f32`/`.f64` extension.
        dtype: bool,
        /// The shape came from the `_d0_d1[_d2]` groups.
        shape: bool,
    },
    /// A `.npy` file (header).
    Npy,
}

/// An input field, opened: a reader at its first value, its dtype and shape. The values are
/// read by the encoder one chunk at a time, never whole (`melloc_format::compress_stream`),
/// which also checks that the reader holds exactly [`Field::n_bytes`] bytes when its size was
/// not known in advance (stdin).
pub struct Field {
    /// The little-endian bytes of the values, C order.
    pub reader: Box<dyn Read + Send>,
    /// Bytes before the values (a `.npy` header).
    pub header_len: u64,
    /// Element type.
    pub dtype: DType,
    /// Shape, slowest first.
    pub shape: Shape,
    /// Where dtype and shape came from.
    pub layout: Layout,
}

impl Field {
    /// Size of the values in bytes (checked not to overflow when the field was opened).
    pub fn n_bytes(&self) -> u64 {
        expected_len(self.shape.dims(), self.dtype).unwrap_or(u64::MAX)
    }

    /// Size of the input file, a `.npy` header included.
    pub fn file_len(&self) -> u64 {
        self.header_len.saturating_add(self.n_bytes())
    }
}

/// Opens `path` (stdin for `-`): the reader and the file size when it is a regular file.
fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    if is_dash(path) {
        if std::io::stdin().is_terminal() {
            bail!("refusing to read data from a terminal; pipe the input or give a FILE");
        }
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = file
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    Ok((Box::new(file), len))
}

/// Opens the field in `path` (stdin for `-`): `.npy` when it starts with the npy magic, else raw
/// values whose dtype and shape come from the flags or the file name. The size of a regular
/// file is checked against the shape here, before any value is read.
pub fn open_field(path: &Path, dtype: Option<DType>, shape: Option<Shape>) -> Result<Field> {
    let (reader, len) = open_input(path)?;
    parse_field(path, reader, len, dtype, shape)
}

/// Up to `buf.len()` bytes from `r` (fewer only at its end).
fn read_prefix(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// [`open_field`] on an open reader; `len` is its size when known in advance (a regular file).
pub fn parse_field(
    path: &Path,
    mut reader: Box<dyn Read + Send>,
    len: Option<u64>,
    dtype: Option<DType>,
    shape: Option<Shape>,
) -> Result<Field> {
    let name = display_name(path);
    let mut magic = [0u8; NPY_MAGIC.len()];
    let n_magic =
        read_prefix(&mut reader, &mut magic).with_context(|| format!("reading {name}"))?;
    let reader: Box<dyn Read + Send> =
        Box::new(std::io::Cursor::new(magic[..n_magic].to_vec()).chain(reader));
    if magic[..n_magic] == *NPY_MAGIC {
        return parse_npy(&name, reader, len, dtype, shape);
    }
    let file_name = if is_dash(path) {
        None
    } else {
        path.file_name().and_then(|n| n.to_str())
    };
    let layout = if dtype.is_some() && shape.is_some() {
        Layout::Flags
    } else {
        Layout::FromName {
            dtype: dtype.is_none(),
            shape: shape.is_none(),
        }
    };
    let dtype = match dtype {
        Some(d) => d,
        None => file_name.and_then(dtype_from_name).ok_or_else(|| {
            anyhow!(
                "reading {name}: unknown element type: pass --dtype f32|f64 \
                     (or name the file NAME_d0_d1[_d2].f32|.f64, or give a .npy file)"
            )
        })?,
    };
    // Without a size known in advance (stdin), the shape comes from the flags (there is no file
    // name) and the encoder checks the length as it reads.
    let shape = match shape {
        Some(s) => s,
        None => {
            let len = len.unwrap_or(0);
            let candidates = file_name.map(shape_candidates).unwrap_or_default();
            pick_shape(&candidates, dtype, len).ok_or_else(|| match candidates.first() {
                None => anyhow!(
                    "reading {name}: unknown shape: pass --shape D0xD1[xD2] (slowest first), \
                     or name the file NAME_d0_d1[_d2].{dtype}"
                ),
                Some(dims) => anyhow!(
                    "reading {name}: the file name gives shape {} but the file has {len} bytes, \
                     expected {} bytes of {dtype}; pass --shape and --dtype",
                    join_dims(dims),
                    expected_len(dims, dtype)
                        .map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
                ),
            })?
        }
    };
    match len {
        Some(len) => check_len(&shape, dtype, len, "the file"),
        None => check_fits(&shape, dtype),
    }
    .with_context(|| format!("reading {name}"))?;
    Ok(Field {
        reader,
        header_len: 0,
        dtype,
        shape,
        layout,
    })
}

/// Checks that `shape` values of `dtype` take fewer than 2^64 bytes.
fn check_fits(shape: &Shape, dtype: DType) -> Result<()> {
    if expected_len(shape.dims(), dtype).is_none() {
        bail!("shape {shape} of {dtype} is larger than 2^64 bytes");
    }
    Ok(())
}

/// Checks that `len` bytes (of `what`) hold exactly `shape` values of `dtype`.
fn check_len(shape: &Shape, dtype: DType, len: u64, what: &str) -> Result<()> {
    match expected_len(shape.dims(), dtype) {
        Some(expected) if expected == len => Ok(()),
        Some(expected) => bail!(
            "size mismatch: shape {shape} of {dtype} needs {expected} bytes, \
             {what} has {len} bytes"
        ),
        None => bail!("shape {shape} of {dtype} is larger than 2^64 bytes"),
    }
}

/// `product(dims) * dtype bytes`, `None` on overflow.
fn expected_len(dims: &[u64], dtype: DType) -> Option<u64> {
    dims.iter()
        .try_fold(dtype.n_bytes() as u64, |acc, &d| acc.checked_mul(d))
}

fn join_dims(dims: &[u64]) -> String {
    dims.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// The dtype implied by a `.f32` / `.f64` extension.
pub fn dtype_from_name(file_name: &str) -> Option<DType> {
    let (_, ext) = file_name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "f32" => Some(DType::F32),
        "f64" => Some(DType::F64),
        _ => None,
    }
}

/// Shapes a `NAME_d0_d1[_d2].f32|.f64` file name may encode, longest first: the trailing
/// `_number` groups of the stem (at most 4, and the NAME before them must not be empty). A NAME
/// may itself end in `_number`, so every suffix is a candidate and the file size decides.
pub fn shape_candidates(file_name: &str) -> Vec<Vec<u64>> {
    let Some((stem, _)) = file_name.rsplit_once('.') else {
        return Vec::new();
    };
    if dtype_from_name(file_name).is_none() {
        return Vec::new();
    }
    let parts: Vec<&str> = stem.split('_').collect();
    let mut dims: Vec<u64> = Vec::new();
    // parts[0] is always part of the NAME.
    for part in parts.iter().skip(1).rev() {
        if dims.len() == 4 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        match part.parse::<u64>() {
            Ok(d) if d > 0 => dims.push(d),
            _ => break,
        }
    }
    if parts.first().is_none_or(|p| p.is_empty()) {
        return Vec::new();
    }
    dims.reverse();
    (0..dims.len()).map(|skip| dims[skip..].to_vec()).collect()
}

/// The first candidate whose byte size is `len`.
fn pick_shape(candidates: &[Vec<u64>], dtype: DType, len: u64) -> Option<Shape> {
    candidates
        .iter()
        .find(|dims| expected_len(dims, dtype) == Some(len))
        .and_then(|dims| Shape::new(dims).ok())
}

/// Parses a `.npy` file: little-endian f4/f8, C order.
fn parse_npy(
    name: &str,
    mut reader: Box<dyn Read + Send>,
    len: Option<u64>,
    dtype_flag: Option<DType>,
    shape_flag: Option<Shape>,
) -> Result<Field> {
    let mut counted = CountingReader {
        inner: &mut *reader,
        n: 0,
    };
    let header = npyz::NpyHeader::from_reader(&mut counted)
        .with_context(|| format!("reading {name}: parsing the .npy header"))?;
    let offset = counted.n;
    if header.order() == npyz::Order::Fortran {
        bail!(
            "reading {name}: Fortran-order .npy is not supported; melloc needs C order \
             (in numpy: np.save(path, np.ascontiguousarray(a)))"
        );
    }
    let descr = header.dtype().descr();
    let dtype = match header.dtype() {
        npyz::DType::Plain(ts)
            if ts.type_char() == npyz::TypeChar::Float
                && ts.endianness() == npyz::Endianness::Little =>
        {
            match ts.size_field() {
                4 => DType::F32,
                8 => DType::F64,
                _ => bail!(
                    "reading {name}: .npy dtype {descr} is not supported (melloc takes <f4 or <f8)"
                ),
            }
        }
        _ => bail!(
            "reading {name}: .npy dtype {descr} is not supported (melloc takes little-endian \
             <f4 or <f8; in numpy: a.astype('<f4'))"
        ),
    };
    let shape = Shape::new(header.shape())
        .with_context(|| format!("reading {name}: .npy shape {:?}", header.shape()))?;
    if let Some(d) = dtype_flag {
        if d != dtype {
            bail!("reading {name}: --dtype {d} contradicts the .npy header ({dtype})");
        }
    }
    if let Some(s) = shape_flag {
        if s != shape {
            bail!("reading {name}: --shape {s} contradicts the .npy header ({shape})");
        }
    }
    // A known file size is checked before anything is read past the header.
    match len {
        Some(len) => check_len(
            &shape,
            dtype,
            len.saturating_sub(offset),
            "the .npy data section",
        ),
        None => check_fits(&shape, dtype),
    }
    .with_context(|| format!("reading {name}"))?;
    Ok(Field {
        reader,
        header_len: offset,
        dtype,
        shape,
        layout: Layout::Npy,
    })
}

/// A reader that counts the bytes read through it.
struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// The `.npy` header for `dtype` values of `shape` (C order, little-endian).
pub fn npy_header(dtype: DType, shape: &Shape) -> Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let descr = match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    };
    let ts: npyz::TypeStr = descr
        .parse()
        .map_err(|e| anyhow!("building the .npy header: {e}"))?;
    let header = npyz::WriteOptions::new_header_only()
        .dtype(npyz::DType::Plain(ts))
        .shape(shape.dims())
        .writer(Vec::new())
        .write_header_only()
        .context("building the .npy header")?;
    Ok(header)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// [`parse_field`] on bytes in memory (of known size, like a file).
    fn parse_bytes(path: &Path, bytes: Vec<u8>) -> Result<Field> {
        let len = bytes.len() as u64;
        parse_field(
            path,
            Box::new(std::io::Cursor::new(bytes)),
            Some(len),
            None,
            None,
        )
    }

    #[test]
    fn candidates_from_sdrbench_names() {
        assert_eq!(
            shape_candidates("HGT-ncep_21_73_144.f32"),
            vec![vec![21, 73, 144], vec![73, 144], vec![144]]
        );
        assert_eq!(
            shape_candidates("surface-pressure-mpas_1_163842.f64"),
            vec![vec![1, 163842], vec![163842]]
        );
        assert!(shape_candidates("plain.f32").is_empty());
        assert!(shape_candidates("_10_20.f32").is_empty());
        assert!(shape_candidates("x_10_20.bin").is_empty());
        assert_eq!(shape_candidates("a_1_2_3_4_5.f32")[0], vec![2, 3, 4, 5]);
    }

    #[test]
    fn size_decides_between_candidates() {
        let c = shape_candidates("run_2_10_10.f32");
        let s = pick_shape(&c, DType::F32, 400).map(|s| s.to_string());
        assert_eq!(s.as_deref(), Some("10x10"));
        let s = pick_shape(&c, DType::F32, 800).map(|s| s.to_string());
        assert_eq!(s.as_deref(), Some("2x10x10"));
        assert!(pick_shape(&c, DType::F32, 12).is_none());
    }

    #[test]
    fn raw_field_needs_matching_size() {
        let p = Path::new("dir/T_2_3.f64");
        let f = parse_bytes(p, vec![0; 48]).map(|f| (f.dtype, f.shape.to_string()));
        assert_eq!(f.ok(), Some((DType::F64, "2x3".to_string())));
        let err = parse_bytes(p, vec![0; 47]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("expected 48 bytes")));
    }

    #[test]
    fn npy_header_roundtrips() {
        let shape: Shape = "2x3".parse().unwrap();
        let mut bytes = npy_header(DType::F32, &shape).unwrap();
        assert_eq!(bytes.len() % 64, 0);
        bytes.extend_from_slice(&[0u8; 24]);
        let f = parse_bytes(Path::new("a.bin"), bytes);
        // The reader is left at the first value.
        let f = f.map(|mut f| {
            let mut rest = Vec::new();
            f.reader.read_to_end(&mut rest).unwrap();
            let data_len = f.file_len() - f.header_len;
            (f.dtype, f.shape.to_string(), data_len, rest.len(), f.layout)
        });
        assert_eq!(
            f.ok(),
            Some((DType::F32, "2x3".to_string(), 24, 24, Layout::Npy))
        );
    }
}
