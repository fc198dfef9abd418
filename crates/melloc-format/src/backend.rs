//! Byte back ends applied to each section: zstd, lz4 (block format via lz4_flex) or none.
//!
//! The encoder stores a section with the configured back end only when that is smaller than
//! the raw bytes; otherwise it stores the raw bytes with back end `none`. Routes that code their
//! own streams with an entropy coder therefore pay nothing for an unhelpful back end.

use crate::config::BackendSpec;
use crate::error::{FormatError, Result};
use crate::wire;

/// Bytes of each of the three probes taken from a large section before running the back end.
const PROBE_LEN: usize = 16 << 10;
/// A large section whose probes do not shrink below this fraction is stored as is.
const PROBE_MIN_GAIN: f64 = 0.98;

/// Compresses `raw` with `spec`; returns `(backend code, stored bytes)`, falling back to
/// `none` when the back end does not shrink the data.
///
/// Sections a route has already entropy-coded are incompressible; running zstd over them cost
/// about as much time as the route itself (zstd -9 runs at ~55 MB/s on such data). So for a
/// section larger than six probes, three probes (start, middle, end) are compressed first and
/// the back end runs on the whole section only if they shrink by at least 2%.
///
/// `raw` is returned as it is when it is stored with `none` (no copy: the sections of a chunk
/// are its size again).
pub fn encode_section(raw: Vec<u8>, spec: BackendSpec) -> Result<(u8, Vec<u8>)> {
    if raw.len() > 6 * PROBE_LEN && spec != BackendSpec::None {
        let mid = raw.len() / 2 - PROBE_LEN / 2;
        let mut probed = 0usize;
        for start in [0, mid, raw.len() - PROBE_LEN] {
            probed += compress_with(&raw[start..start + PROBE_LEN], spec)?
                .map_or(PROBE_LEN, |(_, b)| b.len());
        }
        if probed as f64 > PROBE_MIN_GAIN * (3 * PROBE_LEN) as f64 {
            return Ok((wire::BACKEND_NONE, raw));
        }
    }
    match compress_with(&raw, spec)? {
        Some((code, bytes)) if bytes.len() < raw.len() => Ok((code, bytes)),
        _ => Ok((wire::BACKEND_NONE, raw)),
    }
}

/// The stored length of `raw` without the probes of [`encode_section`]: the back end's output
/// when smaller, else `raw.len()` (for estimates on samples).
pub(crate) fn packed_len(raw: &[u8], spec: BackendSpec) -> Result<usize> {
    Ok(compress_with(raw, spec)?.map_or(raw.len(), |(_, b)| b.len().min(raw.len())))
}

/// Runs the back end; `None` for `BackendSpec::None`.
fn compress_with(raw: &[u8], spec: BackendSpec) -> Result<Option<(u8, Vec<u8>)>> {
    Ok(match spec {
        BackendSpec::None => None,
        BackendSpec::Zstd(level) => Some((
            wire::BACKEND_ZSTD,
            zstd::bulk::compress(raw, level).map_err(|e| FormatError::Backend {
                backend: "zstd",
                message: e.to_string(),
            })?,
        )),
        BackendSpec::Lz4 => Some((wire::BACKEND_LZ4, lz4_flex::block::compress(raw))),
    })
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
                let (code, stored) = encode_section(data.to_vec(), spec).unwrap();
                assert!(stored.len() <= data.len());
                assert_eq!(&decode_section(code, &stored, data.len()).unwrap(), data);
            }
        }
        let (code, _) = encode_section(random.clone(), BackendSpec::Zstd(3)).unwrap();
        assert_eq!(code, wire::BACKEND_NONE);
    }

    #[test]
    fn incompressible_large_sections_skip_the_back_end_and_others_do_not() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as u8
            })
            .collect();
        let (code, stored) = encode_section(noise.clone(), BackendSpec::Zstd(9)).unwrap();
        assert_eq!((code, stored.len()), (wire::BACKEND_NONE, noise.len()));
        // Compressible only in its middle: the middle probe finds it.
        let mut mixed = noise.clone();
        mixed[60_000..140_000].fill(0);
        let (code, stored) = encode_section(mixed.clone(), BackendSpec::Zstd(9)).unwrap();
        assert_eq!(code, wire::BACKEND_ZSTD);
        assert_eq!(decode_section(code, &stored, mixed.len()).unwrap(), mixed);
    }

    #[test]
    fn wrong_length_or_garbage_is_an_error() {
        let (code, stored) = encode_section(vec![1u8; 5000], BackendSpec::Zstd(3)).unwrap();
        assert!(decode_section(code, &stored, 4999).is_err());
        assert!(decode_section(wire::BACKEND_ZSTD, b"garbage", 100).is_err());
        assert!(decode_section(wire::BACKEND_LZ4, &[0xff; 12], 100).is_err());
        assert!(decode_section(9, b"", 0).is_err());
    }
}
