//! Byte back ends applied to each section: zstd, lz4 (block format via lz4_flex) or none.
//!
//! The encoder stores a section with the configured back end only when that is smaller than
//! the raw bytes; otherwise it stores the raw bytes with back end `none`. Routes that code their
//! own streams with an entropy coder therefore pay nothing for an unhelpful back end.

use crate::config::BackendSpec;
use crate::error::{FormatError, Result};
use crate::wire;

/// Compresses `raw` with `spec`; returns `(backend code, stored bytes)`, falling back to
/// `none` when the back end does not shrink the data.
pub fn encode_section(raw: &[u8], spec: BackendSpec) -> Result<(u8, Vec<u8>)> {
    let packed = match spec {
        BackendSpec::None => None,
        BackendSpec::Zstd(level) => Some((
            wire::BACKEND_ZSTD,
            zstd::bulk::compress(raw, level).map_err(|e| FormatError::Backend {
                backend: "zstd",
                message: e.to_string(),
            })?,
        )),
        BackendSpec::Lz4 => Some((wire::BACKEND_LZ4, lz4_flex::block::compress(raw))),
    };
    match packed {
        Some((code, bytes)) if bytes.len() < raw.len() => Ok((code, bytes)),
        _ => Ok((wire::BACKEND_NONE, raw.to_vec())),
    }
}

/// Decompresses `stored` (back end `code`) into exactly `raw_len` bytes. `raw_len` must have
/// been checked against a bound by the caller.
pub fn decode_section(code: u8, stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let out = match code {
        wire::BACKEND_NONE => stored.to_vec(),
        wire::BACKEND_ZSTD => {
            zstd::bulk::decompress(stored, raw_len).map_err(|e| FormatError::Backend {
                backend: "zstd",
                message: e.to_string(),
            })?
        }
        wire::BACKEND_LZ4 => {
            lz4_flex::block::decompress(stored, raw_len).map_err(|e| FormatError::Backend {
                backend: "lz4",
                message: e.to_string(),
            })?
        }
        other => {
            return Err(FormatError::Corrupt(format!(
                "unknown back-end code {other}"
            )))
        }
    };
    if out.len() != raw_len {
        return Err(FormatError::LengthMismatch {
            expected: raw_len as u64,
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

/// Name of a back-end code, for `melloc info`.
pub fn backend_name(code: u8) -> &'static str {
    match code {
        wire::BACKEND_NONE => "none",
        wire::BACKEND_ZSTD => "zstd",
        wire::BACKEND_LZ4 => "lz4",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_roundtrips_and_falls_back_to_none() {
        let compressible = vec![7u8; 10_000];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for spec in [BackendSpec::Zstd(3), BackendSpec::Lz4, BackendSpec::None] {
            for data in [&compressible, &random] {
                let (code, stored) = encode_section(data, spec).unwrap();
                assert!(stored.len() <= data.len());
                assert_eq!(&decode_section(code, &stored, data.len()).unwrap(), data);
            }
        }
        let (code, _) = encode_section(&random, BackendSpec::Zstd(3)).unwrap();
        assert_eq!(code, wire::BACKEND_NONE);
    }

    #[test]
    fn wrong_length_or_garbage_is_an_error() {
        let (code, stored) = encode_section(&[1u8; 5000], BackendSpec::Zstd(3)).unwrap();
        assert!(decode_section(code, &stored, 4999).is_err());
        assert!(decode_section(wire::BACKEND_ZSTD, b"garbage", 100).is_err());
        assert!(decode_section(wire::BACKEND_LZ4, &[0xff; 12], 100).is_err());
        assert!(decode_section(9, b"", 0).is_err());
    }
}
