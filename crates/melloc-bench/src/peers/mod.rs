//! melloc and the peer codecs, each peer behind its own cargo feature.

pub mod melloc;

#[cfg(feature = "alp")]
pub mod alp;
#[cfg(feature = "blosc")]
pub mod blosc;
#[cfg(feature = "fpzip")]
pub mod fpzip;
#[cfg(any(
    feature = "gzip",
    feature = "zstd",
    feature = "lz4",
    feature = "xz",
    feature = "bzip2"
))]
pub mod general;
#[cfg(feature = "pco")]
pub mod pcodec;
#[cfg(feature = "zfp")]
pub mod zfp;

/// Dimensions for codecs that take at most 3 (FPZIP, ZFP): singleton dimensions dropped, then
/// the slowest ones merged until 3 remain. Returned fastest first (`[nx, ny, nz]` convention),
/// padded with 1.
#[cfg(any(feature = "fpzip", feature = "zfp", test))]
pub(crate) fn dims_fastest_first_3d(dims: &[u64]) -> [u64; 3] {
    let mut d: Vec<u64> = dims.iter().copied().filter(|&x| x > 1).collect();
    while d.len() > 3 {
        let merged = d[0] * d[1];
        d.splice(0..2, [merged]);
    }
    let mut out = [1u64; 3];
    for (i, &x) in d.iter().rev().enumerate() {
        out[i] = x;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dims_for_3d_codecs() {
        assert_eq!(dims_fastest_first_3d(&[100, 64, 128]), [128, 64, 100]);
        assert_eq!(dims_fastest_first_3d(&[64, 128]), [128, 64, 1]);
        assert_eq!(dims_fastest_first_3d(&[1, 163842]), [163842, 1, 1]);
        assert_eq!(dims_fastest_first_3d(&[2, 3, 5, 7]), [7, 5, 6]);
        assert_eq!(dims_fastest_first_3d(&[1, 1]), [1, 1, 1]);
    }
}
