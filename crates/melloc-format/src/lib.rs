//! # melloc-format
//!
//! The melloc container (versioned, chunked, checksummed), the byte back ends (zstd, lz4, none)
//! and the end-to-end `compress` / `decompress`.
#![forbid(unsafe_code)]

pub mod error;
pub mod route;
pub mod section;

pub use error::{FormatError, Result};
