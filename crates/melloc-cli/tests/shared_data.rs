//! Roundtrips every SDRBench-style file of the shared data folder (`../shared/data` beside the
//! repository, i.e. `/work/shared/data`; `MELLOC_DATA_DIR` overrides) through the CLI, with the
//! default route and with `--route paper`, shape and dtype inferred from the file names.
//!
//! Skips (with a printed reason) when the folder is absent. Only files of at most 3 MB run
//! unless `MELLOC_FULL_DATA=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::melloc_in;

/// The data folder: `$MELLOC_DATA_DIR`, else `../shared/data` beside the repository.
fn data_dir() -> PathBuf {
    match std::env::var_os("MELLOC_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}
const SMALL_BYTES: u64 = 3_000_000;

#[test]
fn shared_data_roundtrips_through_the_cli() {
    let dir = data_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        // Straight to stderr: libtest hides `eprintln!` output of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is absent (the shared data exists only on the project's machines)",
            dir.display()
        );
        return;
    };
    let full = std::env::var("MELLOC_FULL_DATA").is_ok_and(|v| v == "1");
    let mut files: Vec<(PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("f32") || e.eq_ignore_ascii_case("f64"))
        })
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len())))
        .collect();
    files.sort();
    let n_all = files.len();
    if !full {
        files.retain(|(_, len)| *len <= SMALL_BYTES);
    }
    eprintln!(
        "shared data: {} of {n_all} files{} (set MELLOC_FULL_DATA=1 to run all)",
        files.len(),
        if full { "" } else { ", those <= 3 MB" }
    );
    if files.is_empty() {
        eprintln!("skipped: no .f32/.f64 file in {}", dir.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut failures = Vec::new();
    for (path, len) in &files {
        let original = std::fs::read(path).unwrap();
        let src = path.to_str().unwrap();
        for route in ["auto", "paper"] {
            let r = melloc_in(
                t,
                &["compress", "-f", src, "--route", route, "-o", "c.mlc"],
                None,
            );
            if !r.ok() {
                failures.push(format!("{src} ({route}): compress: {}", r.stderr.trim()));
                continue;
            }
            let r = melloc_in(t, &["-d", "-f", "c.mlc", "-o", "back.bin"], None);
            if !r.ok() {
                failures.push(format!("{src} ({route}): decompress: {}", r.stderr.trim()));
                continue;
            }
            let back = std::fs::read(t.join("back.bin")).unwrap();
            if back != original {
                failures.push(format!("{src} ({route}): decoded bytes differ"));
            }
            let clen = std::fs::metadata(t.join("c.mlc")).unwrap().len();
            eprintln!(
                "  {:<40} {route:<6} {len:>10} -> {clen:>10} bytes ({:.2}x)",
                path.file_name().unwrap().to_string_lossy(),
                *len as f64 / clen.max(1) as f64
            );
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
