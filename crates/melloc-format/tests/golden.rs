//! Golden files: every file in `tests/golden/` was written by some released format version and
//! must decode, bit-exactly, with every later version. Files are never regenerated.
//! Each `v*_MANIFEST.txt` line: `file dtype shape xxh3-of-original-bytes`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use melloc_format::{decompress_bytes, inspect, DecompressConfig};

#[test]
fn every_golden_file_decodes_to_its_recorded_content() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_MANIFEST.txt"))
        .collect();
    manifests.sort();
    assert!(
        !manifests.is_empty(),
        "no golden manifests in {}",
        dir.display()
    );
    let mut n = 0;
    for m in manifests {
        for line in std::fs::read_to_string(&m)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 4, "bad manifest line `{line}`");
            let bytes = std::fs::read(dir.join(parts[0])).unwrap();
            let out = decompress_bytes(&bytes, &DecompressConfig::default())
                .unwrap_or_else(|e| panic!("{}: {e}", parts[0]));
            assert_eq!(out.dtype.to_string(), parts[1], "{}", parts[0]);
            assert_eq!(out.shape.to_string(), parts[2], "{}", parts[0]);
            let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&out.bytes));
            assert_eq!(
                hash, parts[3],
                "{}: decoded content differs from the recorded one",
                parts[0]
            );
            inspect(&bytes).unwrap();
            n += 1;
        }
    }
    assert!(n >= 5, "expected at least 5 golden files, found {n}");
}
