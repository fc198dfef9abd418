//! C-Blosc (1.x) with byte shuffle and a zstd or lz4 codec, through `blosc-src`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, Result};

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// Blosc compression level used for both rows (Blosc's and numcodecs' usual default).
const CLEVEL: c_int = 5;

/// Blosc with byte shuffle (typesize = element size) and one inner codec.
#[derive(Debug)]
pub struct Blosc {
    compressor: &'static CStr,
}

impl Blosc {
    /// shuffle + zstd.
    pub fn zstd() -> Self {
        Self {
            compressor: c"zstd",
        }
    }
    /// shuffle + lz4.
    pub fn lz4() -> Self {
        Self { compressor: c"lz4" }
    }
    fn is_zstd(&self) -> bool {
        self.compressor == c"zstd"
    }
}

fn n_threads(threads: usize) -> c_int {
    c_int::try_from(threads.max(1)).unwrap_or(1)
}

impl Codec for Blosc {
    fn id(&self) -> &'static str {
        if self.is_zstd() {
            "blosc-zstd"
        } else {
            "blosc-lz4"
        }
    }
    fn label(&self) -> &'static str {
        if self.is_zstd() {
            "Blosc shuffle+zstd"
        } else {
            "Blosc shuffle+lz4"
        }
    }
    fn settings(&self) -> String {
        format!(
            "blosc-src 0.3 (C-Blosc 1.x), `blosc_compress_ctx`, byte shuffle, typesize = element \
             size, clevel {CLEVEL}, codec {}, automatic block size, internal threads = --threads",
            self.compressor.to_string_lossy()
        )
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let f = input.field;
        let n = f.bytes.len();
        if n > blosc_src::BLOSC_MAX_BUFFERSIZE as usize {
            bail!("{n} bytes is more than one Blosc buffer holds");
        }
        let cap = n + blosc_src::BLOSC_MAX_OVERHEAD as usize;
        let mut buf = vec![0u8; cap];
        // SAFETY: `src` is `n` readable bytes and `dest` `cap` writable bytes, non-overlapping;
        // Blosc never writes beyond `destsize` and with destsize >= n + BLOSC_MAX_OVERHEAD it
        // always succeeds. The compressor name is a NUL-terminated static string.
        let r = unsafe {
            blosc_src::blosc_compress_ctx(
                CLEVEL,
                blosc_src::BLOSC_SHUFFLE as c_int,
                f.dtype.n_bytes(),
                n,
                f.bytes.as_ptr().cast::<c_void>(),
                buf.as_mut_ptr().cast::<c_void>(),
                cap,
                self.compressor.as_ptr().cast::<c_char>(),
                0,
                n_threads(input.threads),
            )
        };
        if r <= 0 {
            bail!("blosc_compress_ctx returned {r}");
        }
        buf.truncate(r as usize);
        Ok(buf)
    }
    fn decompress(&self, compressed: &[u8], field: &Field, threads: usize) -> Result<Output> {
        let mut nbytes = 0usize;
        // SAFETY: `blosc_cbuffer_validate` reads at most `compressed.len()` bytes and only writes
        // `nbytes`.
        let v = unsafe {
            blosc_src::blosc_cbuffer_validate(
                compressed.as_ptr().cast::<c_void>(),
                compressed.len(),
                &mut nbytes,
            )
        };
        if v != 0 || nbytes != field.bytes.len() {
            bail!("blosc buffer invalid or of the wrong size ({nbytes} bytes)");
        }
        let mut out = vec![0u8; nbytes];
        // SAFETY: the buffer was validated above; `out` has exactly `nbytes` bytes and Blosc
        // writes at most `destsize` bytes.
        let r = unsafe {
            blosc_src::blosc_decompress_ctx(
                compressed.as_ptr().cast::<c_void>(),
                out.as_mut_ptr().cast::<c_void>(),
                nbytes,
                n_threads(threads),
            )
        };
        if r < 0 || r as usize != nbytes {
            bail!("blosc_decompress_ctx returned {r}");
        }
        Ok(Output::Bytes(out))
    }
}
