//! # melloc-format
//!
//! The melloc container (versioned, chunked, checksummed), the byte back ends (zstd, lz4, none)
//! and the end-to-end `compress` / `decompress`.
// `deny`, not `forbid`: the causal route's interior predictor reads taps unchecked, behind a
// per-row bound and a `// SAFETY:` proof (a measured 6% of decoding). Nothing else may.
#![deny(unsafe_code)]

pub mod array;
pub mod backend;
pub mod codec;
pub mod config;
pub mod container;
pub mod entropy;
pub mod error;
pub mod process;
mod residual;
pub mod route;
pub mod section;
pub mod wire;

pub use array::{compress_array, decompress_array};
pub use codec::{
    compress, compress_bytes, compress_stream, decompress_bytes, decompress_stream,
    decompress_values, inspect, ChunkInfo, Compressed, Decoded, DecodedValues, FileInfo,
    SectionInfo,
};
pub use config::{BackendSpec, CompressConfig, DecompressConfig, Preset, RouteSpec};
pub use error::{FormatError, Result};
pub use melloc_core::{DType, Float, Shape};

/// The README's code blocks, compiled and run as doctests so the README cannot drift.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
