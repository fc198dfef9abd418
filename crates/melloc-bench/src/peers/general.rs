//! General-purpose byte compressors applied to the raw little-endian bytes.

#[allow(unused_imports)]
use std::io::Write;

use anyhow::{Context, Result};

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// gzip (DEFLATE) level 6 through `flate2` (miniz_oxide back end).
#[cfg(feature = "gzip")]
#[derive(Debug)]
pub struct Gzip;

#[cfg(feature = "gzip")]
impl Codec for Gzip {
    fn id(&self) -> &'static str {
        "gzip"
    }
    fn label(&self) -> &'static str {
        "Gzip -6"
    }
    fn settings(&self) -> String {
        "flate2 (miniz_oxide back end), gzip container, level 6".into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let bytes = &input.field.bytes;
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 2),
            flate2::Compression::new(6),
        );
        enc.write_all(bytes).context("gzip")?;
        enc.finish().context("gzip finish")
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        let mut dec = flate2::write::GzDecoder::new(Vec::with_capacity(field.bytes.len()));
        dec.write_all(compressed).context("gunzip")?;
        Ok(Output::Bytes(dec.finish().context("gunzip finish")?))
    }
}

/// Zstandard at a fixed level through the `zstd` crate (libzstd), single frame.
#[cfg(feature = "zstd")]
#[derive(Debug)]
pub struct Zstd(pub i32);

#[cfg(feature = "zstd")]
impl Codec for Zstd {
    fn id(&self) -> &'static str {
        match self.0 {
            3 => "zstd-3",
            _ => "zstd-19",
        }
    }
    fn label(&self) -> &'static str {
        match self.0 {
            3 => "Zstandard -3",
            _ => "Zstandard -19",
        }
    }
    fn settings(&self) -> String {
        format!(
            "zstd crate (libzstd {}), level {}, one frame, single-threaded",
            zstd::zstd_safe::version_string(),
            self.0
        )
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        zstd::bulk::compress(&input.field.bytes, self.0).context("zstd")
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        Ok(Output::Bytes(
            zstd::bulk::decompress(compressed, field.bytes.len()).context("unzstd")?,
        ))
    }
}

/// LZ4 block format with the size prepended, through `lz4_flex` (pure Rust).
#[cfg(feature = "lz4")]
#[derive(Debug)]
pub struct Lz4;

#[cfg(feature = "lz4")]
impl Codec for Lz4 {
    fn id(&self) -> &'static str {
        "lz4"
    }
    fn label(&self) -> &'static str {
        "LZ4"
    }
    fn settings(&self) -> String {
        "lz4_flex, block format with prepended size (default, safe decoder)".into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        Ok(lz4_flex::compress_prepend_size(&input.field.bytes))
    }
    fn decompress(&self, compressed: &[u8], _field: &Field, _threads: usize) -> Result<Output> {
        Ok(Output::Bytes(
            lz4_flex::decompress_size_prepended(compressed).context("unlz4")?,
        ))
    }
}

/// xz (LZMA2) preset 6 through `xz2` (liblzma).
#[cfg(feature = "xz")]
#[derive(Debug)]
pub struct Xz;

#[cfg(feature = "xz")]
impl Codec for Xz {
    fn id(&self) -> &'static str {
        "xz"
    }
    fn label(&self) -> &'static str {
        "xz -6"
    }
    fn settings(&self) -> String {
        "xz2 (liblzma), .xz container, preset 6, CRC64 check, single-threaded".into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let bytes = &input.field.bytes;
        let mut enc = xz2::write::XzEncoder::new(Vec::with_capacity(bytes.len() / 2), 6);
        enc.write_all(bytes).context("xz")?;
        enc.finish().context("xz finish")
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        let mut dec = xz2::write::XzDecoder::new(Vec::with_capacity(field.bytes.len()));
        dec.write_all(compressed).context("unxz")?;
        Ok(Output::Bytes(dec.finish().context("unxz finish")?))
    }
}

/// bzip2 level 9 through the `bzip2` crate (libbz2-rs-sys, a Rust port of libbzip2).
#[cfg(feature = "bzip2")]
#[derive(Debug)]
pub struct Bzip2;

#[cfg(feature = "bzip2")]
impl Codec for Bzip2 {
    fn id(&self) -> &'static str {
        "bzip2"
    }
    fn label(&self) -> &'static str {
        "bzip2 -9"
    }
    fn settings(&self) -> String {
        "bzip2 crate (libbz2-rs-sys back end), level 9 (900k blocks)".into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let bytes = &input.field.bytes;
        let mut enc = bzip2::write::BzEncoder::new(
            Vec::with_capacity(bytes.len() / 2),
            bzip2::Compression::best(),
        );
        enc.write_all(bytes).context("bzip2")?;
        enc.finish().context("bzip2 finish")
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        let mut dec = bzip2::write::BzDecoder::new(Vec::with_capacity(field.bytes.len()));
        dec.write_all(compressed).context("bunzip2")?;
        Ok(Output::Bytes(dec.finish().context("bunzip2 finish")?))
    }
}
