//! Roundtrips every file of `../shared/data` (the project's development data, beside the
//! repository) through the library with the default route and the paper route, bit-exactly.
//! The folder does not exist on a user's machine: the test then prints why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::PathBuf;

use melloc_core::shape::parse_sdrbench_name;
use melloc_format::{
    compress_bytes, decompress_bytes, CompressConfig, DecompressConfig, RouteSpec,
};

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    dir.is_dir().then_some(dir)
}

#[test]
fn every_shared_file_roundtrips_with_default_and_paper_routes() {
    let Some(dir) = data_dir() else {
        // Straight to stderr: libtest hides `eprintln!` output of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: ../shared/data is absent (it exists only on the project's machines)"
        );
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_sdrbench_name)
                .is_some()
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{} holds no NAME_d0_d1.f32|f64 file",
        dir.display()
    );
    let (mut total_in, mut total_auto, mut total_paper) = (0u64, 0u64, 0u64);
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (dtype, shape) = parse_sdrbench_name(name).unwrap();
        let bytes = std::fs::read(path).unwrap();
        total_in += bytes.len() as u64;
        for route in [RouteSpec::Auto, RouteSpec::Paper] {
            let cfg = CompressConfig::default().with_route(route);
            let packed = compress_bytes(&bytes, dtype, &shape, &cfg)
                .unwrap_or_else(|e| panic!("{name}: compress ({route:?}): {e}"));
            let out = decompress_bytes(&packed, &DecompressConfig::default())
                .unwrap_or_else(|e| panic!("{name}: decompress ({route:?}): {e}"));
            assert!(out.bytes == bytes, "{name}: {route:?} roundtrip differs");
            eprintln!(
                "{name:40} {route:?}: {:.3}x",
                bytes.len() as f64 / packed.len() as f64
            );
            match route {
                RouteSpec::Paper => total_paper += packed.len() as u64,
                _ => total_auto += packed.len() as u64,
            }
        }
    }
    eprintln!(
        "aggregate ratio: default {:.3}x, paper {:.3}x over {} files",
        total_in as f64 / total_auto as f64,
        total_in as f64 / total_paper as f64,
        files.len()
    );
}
