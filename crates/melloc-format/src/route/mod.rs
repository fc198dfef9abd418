//! Routes: the ways a block of values becomes sections.
//!
//! * [`raw`]: the bytes as they are (the back end does all the work).
//! * [`paper`]: the published MeLLoC route: learned stencil, quantised source term f, FFT
//!   inversion, residual u_err and boundary data.
//! * [`causal`]: the learned mechanism used causally (prediction from decoded neighbours) with
//!   masks and adaptive entropy coding; the default.
//!
//! Every route exposes the same three functions:
//!
//! ```text
//! encode<T: Float>(values: &[T], dims: BlockDims, cfg: &RouteConfig) -> Result<Vec<Section>>
//! decode<T: Float>(sections: &[Section], dims: BlockDims) -> Result<Vec<T>>
//! describe(sections: &[Section], dims: BlockDims, dtype: DType) -> Result<RouteInfo>
//! ```
//!
//! `decode` receives untrusted sections (checksums can be forged): it validates every length
//! and value and returns an error, never panics, and never allocates more than `dims` implies.

pub mod causal;
pub mod paper;
pub mod raw;

use melloc_core::{BlockDims, DType, Float};
use serde::Serialize;

use crate::error::Result;
use crate::section::Section;

/// Encodes a block with route `id`.
pub fn encode<T: Float>(
    id: RouteId,
    values: &[T],
    dims: BlockDims,
    cfg: &RouteConfig,
) -> Result<Vec<Section>> {
    match id {
        RouteId::Raw => raw::encode(values, dims, cfg),
        RouteId::Paper => paper::encode(values, dims, cfg),
        RouteId::Causal => causal::encode(values, dims, cfg),
    }
}

/// Whether the back end may shrink section `kind` (of `len` bytes) of route `id`: not the
/// causal route's range-coded stream once it is 4 KiB or more, which is as dense as its model
/// makes it. On the 40 shared fields no such section was ever stored with zstd; probing each
/// (three 16 KiB zstd runs per chunk) was time spent for nothing. Short streams still try it:
/// their start-up and 8-byte flush can be a large share (an all-NaN block's 32-byte stream
/// shrank to 25 bytes with zstd). The causal route's raw bits can shrink (z-eraint's 26766 ->
/// 9884).
pub fn backend_may_help(id: RouteId, kind: u8, len: usize) -> bool {
    !(id == RouteId::Causal && kind == causal::KIND_RC && len >= 4096)
}

/// Decodes a block written by route `id`.
pub fn decode<T: Float>(id: RouteId, sections: &[Section], dims: BlockDims) -> Result<Vec<T>> {
    match id {
        RouteId::Raw => raw::decode(sections, dims),
        RouteId::Paper => paper::decode(sections, dims),
        RouteId::Causal => causal::decode(sections, dims),
    }
}

/// Describes a chunk written by route `id`.
pub fn describe(
    id: RouteId,
    sections: &[Section],
    dims: BlockDims,
    dtype: DType,
) -> Result<RouteInfo> {
    match id {
        RouteId::Raw => raw::describe(sections, dims, dtype),
        RouteId::Paper => paper::describe(sections, dims, dtype),
        RouteId::Causal => causal::describe(sections, dims, dtype),
    }
}

/// Route identifier as stored in a chunk header (wire values are fixed, see `docs/format.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RouteId {
    /// Values stored as little-endian bytes.
    Raw = 0,
    /// The paper's FFT route.
    Paper = 1,
    /// The causal learned-predictor route.
    Causal = 2,
}

impl RouteId {
    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Paper),
            2 => Some(Self::Causal),
            _ => None,
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Paper => "paper",
            Self::Causal => "causal",
        }
    }
}

/// Parameters a route may use while encoding.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RouteConfig {
    /// Effort 0 (fastest) ..= 9 (smallest). Routes may search more parameters at higher effort.
    pub effort: u8,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self { effort: 5 }
    }
}

/// What a route learned and chose for one chunk, for `melloc info`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteInfo {
    /// How values became integers (e.g. `grid offset=.. step=..`, `ordered bits`).
    pub integerisation: String,
    /// Per-slice facts (stencil, PDE reading, f step), in slice order. May be empty.
    pub slices: Vec<SliceInfo>,
    /// Free-form notes (predictor used, exception counts...).
    pub notes: Vec<String>,
}

/// Facts about one slice of a chunk.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SliceInfo {
    /// The learned 3x3 stencil c1..c9 (row-major, rows i-1..i+1, columns j-1..j+1).
    pub stencil: Option<[f64; 9]>,
    /// The stencil read as a PDE (e.g. `elliptic: 1.00 u_xx + 0.98 u_yy + ...`).
    pub pde: Option<String>,
    /// Quantisation step chosen for the source term f.
    pub f_step: Option<f64>,
}
