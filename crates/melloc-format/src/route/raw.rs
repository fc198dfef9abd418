//! The raw route: values as little-endian bytes in one section. Always valid, the fallback.

use melloc_core::{BlockDims, DType, Float};

use super::{RouteConfig, RouteInfo};
use crate::error::Result;
use crate::section::{expect_section, Section};

const KIND_VALUES: u8 = 0;

/// Encodes `values` as one section of little-endian bytes.
pub fn encode<T: Float>(
    values: &[T],
    _dims: BlockDims,
    _cfg: &RouteConfig,
) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    T::extend_le_bytes(values, &mut out);
    Ok(vec![Section::new(KIND_VALUES, out)])
}

/// Decodes the section written by [`encode`].
pub fn decode<T: Float>(sections: &[Section], dims: BlockDims) -> Result<Vec<T>> {
    let data = expect_section(sections, 0, KIND_VALUES)?;
    let expected = dims.len() as u64 * T::N_BYTES as u64;
    if data.len() as u64 != expected {
        return Err(crate::error::FormatError::LengthMismatch {
            expected,
            actual: data.len() as u64,
        });
    }
    Ok(T::vec_from_le_bytes(data))
}

/// Describes a raw chunk.
pub fn describe(_sections: &[Section], _dims: BlockDims, dtype: DType) -> Result<RouteInfo> {
    Ok(RouteInfo {
        integerisation: format!("none ({dtype} bytes as stored)"),
        ..RouteInfo::default()
    })
}
