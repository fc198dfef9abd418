//! Array shapes and their view as a stack of 2-D cross-sections.
//!
//! melloc stores arrays of 1 to 4 dimensions in C order (slowest dimension first). Every
//! algorithm works on **2-D cross-sections over the two fastest axes**: a 3-D array
//! `d0 x d1 x d2` is `d0` slices of `d1 x d2`; a 4-D array `d0 x d1 x d2 x d3` is `d0*d1` slices of
//! `d2 x d3`; a 2-D array is one slice; a 1-D array of `n` values is one slice of `1 x n`.

use crate::CoreError;

/// Maximum number of dimensions.
pub const MAX_DIMS: usize = 4;

/// A C-order shape with 1 to 4 non-zero dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: Vec<u64>,
}

impl Shape {
    /// Validates `dims`: 1 to 4 dimensions, each at least 1, element count fits in `u64`.
    pub fn new(dims: &[u64]) -> Result<Self, CoreError> {
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(CoreError::InvalidArgument(format!(
                "a shape needs 1 to {MAX_DIMS} dimensions, got {}",
                dims.len()
            )));
        }
        if dims.contains(&0) {
            return Err(CoreError::InvalidArgument(format!(
                "every dimension must be at least 1, got {dims:?}"
            )));
        }
        let mut n: u64 = 1;
        for &d in dims {
            n = n.checked_mul(d).ok_or_else(|| {
                CoreError::InvalidArgument(format!("shape {dims:?} has more than 2^64 elements"))
            })?;
        }
        Ok(Self {
            dims: dims.to_vec(),
        })
    }

    /// The dimensions, slowest first.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Number of dimensions.
    pub fn n_dims(&self) -> usize {
        self.dims.len()
    }

    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The stack-of-slices view of this shape.
    pub fn slices(&self) -> SliceLayout {
        let d = &self.dims;
        match d.len() {
            1 => SliceLayout {
                n_slices: 1,
                n_rows: 1,
                n_cols: d[0],
            },
            2 => SliceLayout {
                n_slices: 1,
                n_rows: d[0],
                n_cols: d[1],
            },
            3 => SliceLayout {
                n_slices: d[0],
                n_rows: d[1],
                n_cols: d[2],
            },
            _ => SliceLayout {
                n_slices: d[0] * d[1],
                n_rows: d[2],
                n_cols: d[3],
            },
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.dims.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("x"))
    }
}

impl std::str::FromStr for Shape {
    type Err = CoreError;
    /// Parses `100x500x500` (also accepts `,` as separator).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let dims: Result<Vec<u64>, _> = s
            .split(['x', 'X', ','])
            .map(|p| p.trim().parse::<u64>())
            .collect();
        let dims = dims.map_err(|_| {
            CoreError::InvalidArgument(format!(
                "cannot parse shape `{s}` (expected e.g. 100x500x500)"
            ))
        })?;
        Shape::new(&dims)
    }
}

/// Parses the SDRBench naming convention `NAME_d0_d1[_d2[_d3]].f32|.f64` (slowest dimension
/// first): the dims are the trailing `_number` groups of the stem, the extension is the dtype.
/// Returns `None` when the name does not follow it.
///
/// ```
/// use melloc_core::{shape::parse_sdrbench_name, DType};
/// let (dtype, shape) = parse_sdrbench_name("T-wrf_56_48_48.f32").unwrap();
/// assert_eq!((dtype, shape.to_string()), (DType::F32, "56x48x48".to_string()));
/// ```
pub fn parse_sdrbench_name(file_name: &str) -> Option<(crate::DType, Shape)> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    let dtype = match ext {
        "f32" => crate::DType::F32,
        "f64" => crate::DType::F64,
        _ => return None,
    };
    let mut dims = Vec::new();
    let mut rest = stem;
    while let Some((head, tail)) = rest.rsplit_once('_') {
        match tail.parse::<u64>() {
            Ok(d) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                dims.push(d);
                rest = head;
            }
            _ => break,
        }
    }
    if dims.is_empty() || dims.len() > MAX_DIMS || rest.is_empty() {
        return None;
    }
    dims.reverse();
    Some((dtype, Shape::new(&dims).ok()?))
}

/// A field seen as `n_slices` cross-sections of `n_rows x n_cols` (C order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceLayout {
    /// Number of 2-D cross-sections.
    pub n_slices: u64,
    /// Rows per cross-section (second-fastest axis).
    pub n_rows: u64,
    /// Columns per cross-section (fastest axis).
    pub n_cols: u64,
}

/// Dimensions of a block of values held in memory: `n_slices` slices of `n_rows x n_cols`,
/// C order. A chunk of a container is one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockDims {
    /// Number of slices in the block.
    pub n_slices: usize,
    /// Rows per slice.
    pub n_rows: usize,
    /// Columns per slice.
    pub n_cols: usize,
}

impl BlockDims {
    /// Builds block dimensions.
    pub const fn new(n_slices: usize, n_rows: usize, n_cols: usize) -> Self {
        Self {
            n_slices,
            n_rows,
            n_cols,
        }
    }
    /// Values per slice.
    pub const fn slice_len(&self) -> usize {
        self.n_rows * self.n_cols
    }
    /// Values in the block.
    pub const fn len(&self) -> usize {
        self.n_slices * self.n_rows * self.n_cols
    }
    /// `true` when the block holds no value.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_each_rank() {
        let s: Shape = "7".parse().unwrap();
        assert_eq!(
            s.slices(),
            SliceLayout {
                n_slices: 1,
                n_rows: 1,
                n_cols: 7
            }
        );
        let s: Shape = "3x4x5x6".parse().unwrap();
        assert_eq!(
            s.slices(),
            SliceLayout {
                n_slices: 12,
                n_rows: 5,
                n_cols: 6
            }
        );
        assert_eq!(s.to_string(), "3x4x5x6");
        assert_eq!(s.n_elements(), 360);
    }

    #[test]
    fn sdrbench_names() {
        let (d, s) = parse_sdrbench_name("surface-pressure-mpas_1_163842.f64").unwrap();
        assert_eq!((d, s.dims()), (crate::DType::F64, &[1u64, 163842][..]));
        assert_eq!(
            parse_sdrbench_name("PS_64_128.f32").unwrap().1.dims(),
            &[64, 128]
        );
        assert!(parse_sdrbench_name("PS_64_128.bin").is_none());
        assert!(parse_sdrbench_name("PS.f32").is_none());
        assert!(parse_sdrbench_name("_64_128.f32").is_none());
        assert!(parse_sdrbench_name("X_0_5.f32").is_none());
        assert!(parse_sdrbench_name("X_1_2_3_4_5.f32").is_none());
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(Shape::new(&[]).is_err());
        assert!(Shape::new(&[1, 2, 3, 4, 5]).is_err());
        assert!(Shape::new(&[3, 0]).is_err());
        assert!(Shape::new(&[u64::MAX, 2]).is_err());
        assert!("3xz".parse::<Shape>().is_err());
    }
}
