//! Bit-exact roundtrips through every route and back end, on arbitrary bit patterns and shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use melloc_format::{
    compress, decompress_bytes, inspect, BackendSpec, CompressConfig, DecompressConfig, Float,
    RouteSpec, Shape,
};
use proptest::prelude::*;

const ROUTES: [RouteSpec; 4] = [
    RouteSpec::Auto,
    RouteSpec::Causal,
    RouteSpec::Paper,
    RouteSpec::Raw,
];
const BACKENDS: [BackendSpec; 3] = [BackendSpec::Zstd(3), BackendSpec::Lz4, BackendSpec::None];

fn check<T: Float>(
    values: &[T],
    dims: &[u64],
    route: RouteSpec,
    backend: BackendSpec,
    chunk_bytes: usize,
) {
    let shape = Shape::new(dims).unwrap();
    let cfg = CompressConfig::default()
        .with_route(route)
        .with_backend(backend)
        .with_chunk_bytes(chunk_bytes)
        .with_threads(2);
    let packed = compress(values, &shape, &cfg).unwrap();
    let out = decompress_bytes(&packed, &DecompressConfig::default()).unwrap();
    assert_eq!(out.shape, shape);
    assert_eq!(out.dtype, T::DTYPE);
    let back = T::vec_from_le_bytes(&out.bytes);
    assert_eq!(back.len(), values.len());
    for (i, (a, b)) in values.iter().zip(&back).enumerate() {
        assert_eq!(
            a.to_bits_u64(),
            b.to_bits_u64(),
            "value {i}: {a:?} != {b:?} ({route:?}, {backend:?}, {dims:?})"
        );
    }
    inspect(&packed).unwrap();
}

/// Shapes with 1 to 4 dims including 1xN, Nx1, odd and prime sizes.
fn shape_strategy() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        (1u64..200).prop_map(|n| vec![n]),
        (1u64..20, 1u64..20).prop_map(|(a, b)| vec![a, b]),
        Just(vec![1, 37]),
        Just(vec![37, 1]),
        (1u64..5, 1u64..9, 1u64..11).prop_map(|(a, b, c)| vec![a, b, c]),
        (1u64..3, 1u64..3, 1u64..5, 1u64..7).prop_map(|(a, b, c, d)| vec![a, b, c, d]),
    ]
}

/// Special bit patterns mixed into arbitrary ones.
fn f32_strategy() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        Just(f32::NAN),
        Just(f32::from_bits(0x7fa0_0001)),
        Just(f32::from_bits(0xffc0_1234)),
        Just(-0.0f32),
        Just(0.0f32),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::from_bits(1)),
        Just(9.96921e36f32),
        (-1000.0f32..1000.0),
    ]
}

fn f64_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::from_bits(0x7ff0_0000_0000_0abc)),
        Just(-0.0f64),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::from_bits(1)),
        Just(-9_999_000.0f64),
        (-1000.0f64..1000.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_f32(dims in shape_strategy(), values in proptest::collection::vec(f32_strategy(), 1..400), route in 0usize..4, backend in 0usize..3, chunk in 1usize..600) {
        let n: u64 = dims.iter().product();
        let values: Vec<f32> = values.iter().cycle().take(n as usize).copied().collect();
        check(&values, &dims, ROUTES[route], BACKENDS[backend], chunk * 4);
    }

    #[test]
    fn arbitrary_f64(dims in shape_strategy(), values in proptest::collection::vec(f64_strategy(), 1..400), route in 0usize..4, backend in 0usize..3) {
        let n: u64 = dims.iter().product();
        let values: Vec<f64> = values.iter().cycle().take(n as usize).copied().collect();
        check(&values, &dims, ROUTES[route], BACKENDS[backend], 1 << 20);
    }

    #[test]
    fn constant_fields(dims in shape_strategy(), bits in any::<u32>(), route in 0usize..4) {
        let n: u64 = dims.iter().product();
        check(&vec![f32::from_bits(bits); n as usize], &dims, ROUTES[route], BackendSpec::Zstd(3), 1 << 20);
    }
}

/// A smooth field with fill values and a NaN: every route and back end, several chunk sizes.
#[test]
fn smooth_field_every_route_backend_and_chunking() {
    let (a, b, c) = (4u64, 33, 47);
    let mut values: Vec<f32> = (0..a * b * c)
        .map(|i| {
            let (k, j, l) = ((i / (b * c)) as f32, ((i / c) % b) as f32, (i % c) as f32);
            280.0
                + 10.0 * (0.1 * j).sin() * (0.13 * l).cos()
                + 0.5 * k
                + 0.001 * ((i * 7919 % 101) as f32)
        })
        .collect();
    values[5] = f32::NAN;
    for v in values.iter_mut().skip(100).step_by(17).take(40) {
        *v = 9.96921e36;
    }
    for route in ROUTES {
        for backend in BACKENDS {
            for chunk in [4 * 47, 4 * 47 * 33 * 2, 4 * 20, 1 << 22] {
                check(&values, &[a, b, c], route, backend, chunk);
            }
        }
    }
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let values: Vec<f64> = (0..20_000)
        .map(|i| (i as f64 * 0.001).sin() * 1e5)
        .collect();
    let shape = Shape::new(&[20, 1000]).unwrap();
    let cfg = CompressConfig::default().with_chunk_bytes(8 * 3000);
    let one = compress(&values, &shape, &cfg.clone().with_threads(1)).unwrap();
    let two = compress(&values, &shape, &cfg.with_threads(2)).unwrap();
    assert_eq!(one, two);
}

#[test]
fn decoding_does_not_depend_on_thread_count() {
    // Chunks of different costs (decoded largest first, by whichever worker is free): the
    // values, and the error for a file with two corrupt chunks (the first one, by index),
    // are the same with 1, 2 and 3 threads.
    let values: Vec<f32> = (0..40_000)
        .map(|i| {
            if i < 12_000 {
                0.0
            } else {
                ((i as f32) * 0.01).sin() * 1e3
            }
        })
        .collect();
    let shape = Shape::new(&[40, 1000]).unwrap();
    let file = compress(
        &values,
        &shape,
        &CompressConfig::default().with_chunk_bytes(4 * 3000),
    )
    .unwrap();
    assert!(inspect(&file).unwrap().chunks.len() >= 10);
    let decode = |bytes: &[u8], t: usize| {
        decompress_bytes(bytes, &DecompressConfig::default().with_threads(t))
            .map(|d| d.bytes)
            .map_err(|e| e.to_string())
    };
    let one = decode(&file, 1).unwrap();
    for t in [2, 3] {
        assert_eq!(decode(&file, t).unwrap(), one);
    }
    let mut bad = file.clone();
    let (mid, last) = (bad.len() / 2, bad.len() - 1);
    bad[mid] ^= 0x10;
    bad[last] ^= 0x10;
    let err = decode(&bad, 1).unwrap_err();
    for t in [2, 3] {
        assert_eq!(decode(&bad, t).unwrap_err(), err);
    }
    // It is the middle chunk's error (the lower index), not the last one's.
    let mut mid_only = file.clone();
    mid_only[mid] ^= 0x10;
    assert_eq!(decode(&mid_only, 1).unwrap_err(), err);
    let mut last_only = file;
    last_only[last] ^= 0x10;
    assert_ne!(decode(&last_only, 1).unwrap_err(), err);
}

#[test]
fn wrong_input_length_is_an_error() {
    let shape = Shape::new(&[10, 10]).unwrap();
    let err = melloc_format::compress_bytes(
        &[0u8; 399],
        melloc_format::DType::F32,
        &shape,
        &CompressConfig::default(),
    );
    assert!(err.is_err());
}
