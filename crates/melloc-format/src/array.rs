//! `ndarray` front end: compress an array view of any layout, decompress into an `ArrayD`.
//!
//! Values are always stored in **C order** (logical order, slowest axis first), whatever the
//! memory layout of the view: a transposed or sliced view is compressed as the array it shows.

use melloc_core::{Float, Shape};
use ndarray::{ArrayD, ArrayView, Dimension, IxDyn};

use crate::codec::{compress, decompress_bytes};
use crate::config::{CompressConfig, DecompressConfig};
use crate::error::{FormatError, Result};

/// Compresses an array view (1 to 4 dimensions, none of length 0).
///
/// ```
/// use melloc_format::{compress_array, decompress_array, CompressConfig, DecompressConfig};
/// let a = ndarray::Array3::<f32>::from_shape_fn((4, 5, 6), |(k, i, j)| (k + i * j) as f32);
/// let packed = compress_array(a.t(), &CompressConfig::default()).unwrap();
/// let back = decompress_array::<f32>(&packed, &DecompressConfig::default()).unwrap();
/// assert_eq!(back.shape(), &[6, 5, 4]);
/// assert_eq!(back, a.t().into_dyn());
/// ```
pub fn compress_array<T: Float, D: Dimension>(
    array: ArrayView<'_, T, D>,
    cfg: &CompressConfig,
) -> Result<Vec<u8>> {
    let dims: Vec<u64> = array.shape().iter().map(|&d| d as u64).collect();
    let shape = Shape::new(&dims)?;
    match array.as_slice() {
        Some(values) => compress(values, &shape, cfg),
        None => {
            let values: Vec<T> = array.iter().copied().collect();
            compress(&values, &shape, cfg)
        }
    }
}

/// Decompresses a melloc file into an array of `T`; an error if the file holds another dtype.
pub fn decompress_array<T: Float>(input: &[u8], cfg: &DecompressConfig) -> Result<ArrayD<T>> {
    let decoded = decompress_bytes(input, cfg)?;
    if decoded.dtype != T::DTYPE {
        return Err(FormatError::InvalidArgument(format!(
            "the file holds {} values, {} were requested",
            decoded.dtype,
            T::DTYPE
        )));
    }
    let dims: Vec<usize> = decoded.shape.dims().iter().map(|&d| d as usize).collect();
    ArrayD::from_shape_vec(IxDyn(&dims), T::vec_from_le_bytes(&decoded.bytes)).map_err(|e| {
        FormatError::Corrupt(format!(
            "decoded values do not fill shape {}: {e}",
            decoded.shape
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_of_any_layout_roundtrip_bit_exactly() {
        let a = ndarray::Array3::<f64>::from_shape_fn((3, 7, 5), |(k, i, j)| {
            if (k + i + j) % 11 == 0 {
                f64::from_bits(0x7ff8_0000_0000_0001)
            } else {
                (k as f64) - 0.5 * (i * j) as f64
            }
        });
        let cfg = CompressConfig::default();
        for view in [a.view(), a.view().permuted_axes([2, 0, 1])] {
            let packed = compress_array(view, &cfg).unwrap();
            let back = decompress_array::<f64>(&packed, &DecompressConfig::default()).unwrap();
            assert_eq!(back.shape(), view.shape());
            for (x, y) in back.iter().zip(view.iter()) {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }

    #[test]
    fn wrong_dtype_and_bad_shapes_are_errors() {
        let a = ndarray::Array2::<f32>::zeros((3, 4));
        let packed = compress_array(a.view(), &CompressConfig::default()).unwrap();
        assert!(decompress_array::<f64>(&packed, &DecompressConfig::default()).is_err());
        let empty = ndarray::Array2::<f32>::zeros((0, 4));
        assert!(compress_array(empty.view(), &CompressConfig::default()).is_err());
        let five = ndarray::ArrayD::<f32>::zeros(IxDyn(&[1, 1, 1, 1, 2]));
        assert!(compress_array(five.view(), &CompressConfig::default()).is_err());
    }
}
