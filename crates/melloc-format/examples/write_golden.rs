//! Writes the golden files of the current format version into a folder, refusing to overwrite.
//! Run through `cargo xtask fixtures` (or `cargo run -p melloc-format --example write_golden --
//! crates/melloc-format/tests/golden`). Golden files are written once per format version and
//! never regenerated: later versions must keep decoding them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};

use melloc_format::{compress, BackendSpec, CompressConfig, Float, RouteSpec, Shape};

/// A small deterministic PRNG (xorshift64*), so the fields are the same on every machine.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn smooth(n_slices: usize, n_rows: usize, n_cols: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n_slices * n_rows * n_cols);
    for k in 0..n_slices {
        for i in 0..n_rows {
            for j in 0..n_cols {
                let (x, y) = (j as f64 / n_cols as f64, i as f64 / n_rows as f64);
                let v = 280.0
                    + 12.0 * (6.3 * x + 0.2 * k as f64).sin() * (3.1 * y).cos()
                    + 4.0 * ((x - 0.4).powi(2) + (y - 0.6).powi(2)).sqrt()
                    + 0.05 * rng.next_f64();
                out.push(v);
            }
        }
    }
    out
}

fn write<T: Float>(
    dir: &Path,
    name: &str,
    values: &[T],
    dims: &[u64],
    cfg: CompressConfig,
    manifest: &mut String,
) {
    let path = dir.join(format!(
        "v{}_{}_{name}.mlc",
        melloc_format::wire::MAJOR,
        melloc_format::wire::MINOR
    ));
    if path.exists() {
        eprintln!(
            "refusing to overwrite {} (golden files are never regenerated)",
            path.display()
        );
        std::process::exit(1);
    }
    let shape = Shape::new(dims).expect("valid shape");
    let bytes = compress(values, &shape, &cfg).expect("compress");
    std::fs::write(&path, &bytes).expect("write golden file");
    let mut raw = Vec::new();
    T::extend_le_bytes(values, &mut raw);
    let line = format!(
        "{} {} {} {:016x}\n",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
        T::DTYPE,
        shape,
        xxhash_rust::xxh3::xxh3_64(&raw)
    );
    manifest.push_str(&line);
    eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crates/melloc-format/tests/golden".into()),
    );
    std::fs::create_dir_all(&dir).expect("create golden dir");
    let mut manifest = String::new();

    // 1. f32 3-D smooth field with fill values, NaN payloads, -0.0 and inf: default route.
    let mut a: Vec<f32> = smooth(3, 24, 40, 1).iter().map(|&v| v as f32).collect();
    for v in a.iter_mut().skip(50).step_by(13).take(60) {
        *v = 9.96921e36;
    }
    a[1] = f32::from_bits(0x7fc0_0abc);
    a[2] = -0.0;
    a[3] = f32::NEG_INFINITY;
    a[4] = f32::from_bits(3);
    write(
        &dir,
        "f32_3d_auto",
        &a,
        &[3, 24, 40],
        CompressConfig::default().with_chunk_bytes(4 * 24 * 40),
        &mut manifest,
    );

    // 2. f64 2-D decimal (0.01) rain-like field with -9999000 fills: default route.
    let mut rng = Rng(7);
    let b: Vec<f64> = (0..40 * 50)
        .map(|i| {
            let r = rng.next_f64();
            if r < 0.3 {
                -9_999_000.0
            } else if r < 0.6 {
                0.0
            } else {
                ((i % 50) as f64 * 7.0 + r * 100.0).round() / 100.0
            }
        })
        .collect();
    write(
        &dir,
        "f64_2d_decimal_auto",
        &b,
        &[40, 50],
        CompressConfig::default(),
        &mut manifest,
    );

    // 3. f32 2-D smooth field through the paper route.
    let c: Vec<f32> = smooth(1, 33, 29, 3).iter().map(|&v| v as f32).collect();
    write(
        &dir,
        "f32_2d_paper",
        &c,
        &[33, 29],
        CompressConfig::default().with_route(RouteSpec::Paper),
        &mut manifest,
    );

    // 4. f64 1-D with specials, raw route, lz4 back end, row-piece chunks.
    let mut d: Vec<f64> = smooth(1, 1, 300, 4);
    d[10] = f64::NAN;
    d[11] = f64::INFINITY;
    d[12] = -0.0;
    d[13] = f64::from_bits(1);
    write(
        &dir,
        "f64_1d_raw_lz4",
        &d,
        &[300],
        CompressConfig::default()
            .with_route(RouteSpec::Raw)
            .with_backend(BackendSpec::Lz4)
            .with_chunk_bytes(8 * 64),
        &mut manifest,
    );

    // 5. f32 4-D through the causal route with zstd 19, row-band chunks.
    let e: Vec<f32> = smooth(4, 16, 20, 5)
        .iter()
        .map(|&v| (v * 0.01) as f32)
        .collect();
    write(
        &dir,
        "f32_4d_causal",
        &e,
        &[2, 2, 16, 20],
        CompressConfig::default()
            .with_route(RouteSpec::Causal)
            .with_backend(BackendSpec::Zstd(19))
            .with_chunk_bytes(4 * 20 * 5),
        &mut manifest,
    );

    // 6. f32 2-D radar-like field: rain cells on a 0.1 grid among long runs of exact zeros and
    // of a fill value (run groups, format 1.2).
    let mut rng = Rng(11);
    let g: Vec<f32> = (0..60 * 200)
        .map(|k| {
            let (i, j) = ((k / 200) as f64, (k % 200) as f64);
            let r2 = (i - 30.0).powi(2) + (j - 70.0).powi(2);
            if j > 150.0 {
                -999.0
            } else if r2 < 300.0 {
                (((300.0 - r2) * 0.05 + rng.next_f64()).round() * 0.1) as f32
            } else {
                0.0
            }
        })
        .collect();
    write(
        &dir,
        "f32_2d_radar_auto",
        &g,
        &[60, 200],
        CompressConfig::default(),
        &mut manifest,
    );

    let mpath = dir.join(format!(
        "v{}_{}_MANIFEST.txt",
        melloc_format::wire::MAJOR,
        melloc_format::wire::MINOR
    ));
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&mpath)
        .expect("manifest must not exist yet");
    f.write_all(manifest.as_bytes()).expect("write manifest");
}
