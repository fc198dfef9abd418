//! Hostile input: every truncation and every single-bit flip of small files must give an error,
//! never a panic, and never a wrong result reported as success.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use melloc_format::{
    compress, decompress_bytes, inspect, CompressConfig, DecompressConfig, RouteSpec, Shape,
};

fn small_file(route: RouteSpec) -> (Vec<f32>, Vec<u8>) {
    let values: Vec<f32> = (0..6 * 7).map(|i| 10.0 + (i as f32 * 0.37).sin()).collect();
    let shape = Shape::new(&[6, 7]).unwrap();
    let cfg = CompressConfig::default()
        .with_route(route)
        .with_chunk_bytes(4 * 14);
    (values.clone(), compress(&values, &shape, &cfg).unwrap())
}

#[test]
fn every_truncation_is_an_error() {
    for route in [
        RouteSpec::Raw,
        RouteSpec::Causal,
        RouteSpec::Paper,
        RouteSpec::Auto,
    ] {
        let (_, file) = small_file(route);
        for cut in 0..file.len() {
            assert!(
                decompress_bytes(&file[..cut], &DecompressConfig::default()).is_err(),
                "{route:?} cut {cut}"
            );
            assert!(inspect(&file[..cut]).is_err(), "{route:?} cut {cut}");
        }
    }
}

#[test]
fn every_bit_flip_is_an_error() {
    for route in [
        RouteSpec::Raw,
        RouteSpec::Causal,
        RouteSpec::Paper,
        RouteSpec::Auto,
    ] {
        let (_, file) = small_file(route);
        assert_every_bit_flip_fails(&file, &format!("{route:?}"));
    }
}

/// Every single-bit flip of `file` fails to decode (and `inspect` does not panic on it).
fn assert_every_bit_flip_fails(file: &[u8], what: &str) {
    for bit in 0..file.len() * 8 {
        let mut bad = file.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decompress_bytes(&bad, &DecompressConfig::default()).is_err(),
            "{what} bit {bit}"
        );
        let _ = inspect(&bad);
    }
}

#[test]
fn garbage_and_limits() {
    assert!(decompress_bytes(b"", &DecompressConfig::default()).is_err());
    assert!(decompress_bytes(
        b"hello world, not a melloc file",
        &DecompressConfig::default()
    )
    .is_err());
    let (_, file) = small_file(RouteSpec::Raw);
    let tight = DecompressConfig::default().with_memory_limit(10);
    let err = decompress_bytes(&file, &tight).unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
}

/// The same for files with the causal route's run groups: the golden radar-like field in
/// format 1.2 (narrow range coder) and 1.3 (wide range coder, tree-coded lengths), and the
/// golden smooth 3-D field of 1.3 (whose residual lengths take the tree). Most flips are caught
/// by the container's checksums before the route decoder runs; the route decoders' own handling
/// of corrupt sections is tested in `route::causal` (`corrupt_*_never_panic`).
#[test]
fn causal_file_truncations_and_bit_flips_are_errors() {
    for name in [
        "v1_2_f32_2d_radar_auto.mlc",
        "v1_3_f32_2d_radar_auto.mlc",
        "v1_3_f32_3d_auto.mlc",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        let file = std::fs::read(path).unwrap();
        assert!(decompress_bytes(&file, &DecompressConfig::default()).is_ok());
        for cut in 0..file.len() {
            assert!(
                decompress_bytes(&file[..cut], &DecompressConfig::default()).is_err(),
                "{name}: cut {cut}"
            );
        }
        assert_every_bit_flip_fails(&file, name);
    }
}
