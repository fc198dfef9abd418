//! The paper route (work in progress).

use melloc_core::{BlockDims, DType, Float};

use super::{RouteConfig, RouteInfo};
use crate::error::{FormatError, Result};
use crate::section::Section;

/// Encodes one block.
pub fn encode<T: Float>(
    _values: &[T],
    _dims: BlockDims,
    _cfg: &RouteConfig,
) -> Result<Vec<Section>> {
    Err(FormatError::InvalidArgument(
        "the paper route is not built yet".into(),
    ))
}

/// Decodes one block.
pub fn decode<T: Float>(_sections: &[Section], _dims: BlockDims) -> Result<Vec<T>> {
    Err(FormatError::InvalidArgument(
        "the paper route is not built yet".into(),
    ))
}

/// Describes one chunk.
pub fn describe(_sections: &[Section], _dims: BlockDims, _dtype: DType) -> Result<RouteInfo> {
    Ok(RouteInfo::default())
}
