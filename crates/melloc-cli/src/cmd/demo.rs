//! `melloc demo`: generate a realistic synthetic field, compress it with each route, decompress,
//! check bit-exactness and report sizes and speeds.
//!
//! The field imitates a gridded geophysical variable (a temperature in kelvin): a few large
//! waves and drifting Gaussian bumps, plus mild noise from a small deterministic generator,
//! rounded to the element type; a rectangular patch holds the netCDF fill value 9.96921e36 (a
//! land mask) and one value is NaN. Nothing here is codec logic: it only makes test data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use melloc_format::{CompressConfig, DType, DecompressConfig, RouteSpec, Shape};

use crate::cli::{DemoArgs, GlobalArgs};
use crate::output::{write_output, Dest};
use crate::ui::{self, Ui};

/// netCDF's default fill value for floats (`NC_FILL_FLOAT`).
pub const FILL_VALUE: f64 = 9.969_209_968_386_869e36;

/// SplitMix64: tiny, deterministic, good enough for test data.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Facts about a generated field, for the report.
#[derive(Debug)]
pub struct Synthetic {
    /// Little-endian values.
    pub bytes: Vec<u8>,
    /// Number of fill values.
    pub n_fill: u64,
    /// Number of NaNs.
    pub n_nan: u64,
    /// Number of Gaussian bumps.
    pub n_bumps: usize,
    /// Noise amplitude (uniform, +-).
    pub noise: f64,
}

/// Generates the field (see the module docs). Deterministic for a given seed.
pub fn generate(shape: &Shape, dtype: DType, seed: u64) -> Result<Synthetic> {
    let l = shape.slices();
    let n = usize::try_from(shape.n_elements())
        .ok()
        .filter(|&n| n.checked_mul(dtype.n_bytes()).is_some() && n <= (1 << 31))
        .with_context(|| format!("demo shape {shape} is too large (at most 2^31 values)"))?;
    let (n_slices, n_rows, n_cols) = (l.n_slices as usize, l.n_rows as usize, l.n_cols as usize);
    let mut rng = SplitMix64(seed);
    let tau = std::f64::consts::TAU;
    let phases: Vec<f64> = (0..4).map(|_| rng.range(0.0, tau)).collect();
    let n_bumps = 6;
    // (x0, y0, drift x, drift y, width, amplitude)
    let bumps: Vec<[f64; 6]> = (0..n_bumps)
        .map(|_| {
            [
                rng.range(0.1, 0.9),
                rng.range(0.1, 0.9),
                rng.range(-0.3, 0.3),
                rng.range(-0.3, 0.3),
                rng.range(0.04, 0.15),
                rng.range(-12.0, 12.0),
            ]
        })
        .collect();
    let noise = 0.01;
    // The fill patch: rows 60%..80%, columns 10%..30% of every slice (at least one value).
    let r0 = n_rows * 6 / 10;
    let r1 = (n_rows * 8 / 10).max(r0 + 1).min(n_rows);
    let c0 = n_cols / 10;
    let c1 = (n_cols * 3 / 10).max(c0 + 1).min(n_cols);
    let nan_at = (n_slices / 2, n_rows / 3, n_cols * 2 / 3);

    let mut bytes = Vec::with_capacity(n * dtype.n_bytes());
    let (mut n_fill, mut n_nan) = (0u64, 0u64);
    for k in 0..n_slices {
        let z = k as f64 / n_slices.max(1) as f64;
        for i in 0..n_rows {
            let y = i as f64 / n_rows.max(1) as f64;
            for j in 0..n_cols {
                let x = j as f64 / n_cols.max(1) as f64;
                let v = if (r0..r1).contains(&i) && (c0..c1).contains(&j) {
                    n_fill += 1;
                    FILL_VALUE
                } else if (k, i, j) == nan_at {
                    n_nan += 1;
                    f64::NAN
                } else {
                    let mut v = 280.0
                        + 15.0 * (tau * (0.7 * x + 0.3 * y) + 0.8 * z + phases[0]).sin()
                        + 6.0 * (tau * (1.3 * y - 0.4 * x) + phases[1]).cos() * (1.0 + 0.3 * z)
                        + 2.0 * (tau * (2.1 * x + 1.7 * y + 0.5 * z) + phases[2]).sin()
                        - 10.0 * y * y;
                    for b in &bumps {
                        let dx = x - (b[0] + b[2] * z);
                        let dy = y - (b[1] + b[3] * z);
                        v += b[5] * (-(dx * dx + dy * dy) / (2.0 * b[4] * b[4])).exp();
                    }
                    v + noise * rng.range(-1.0, 1.0)
                };
                match dtype {
                    DType::F32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
                    DType::F64 => bytes.extend_from_slice(&v.to_le_bytes()),
                }
            }
        }
    }
    Ok(Synthetic {
        bytes,
        n_fill,
        n_nan,
        n_bumps,
        noise,
    })
}

/// One route's result.
#[derive(Debug)]
struct Row {
    label: &'static str,
    compressed: u64,
    compress_s: f64,
    decompress_s: f64,
    exact: bool,
    /// Chunks per route actually used (`causal 3, raw 1`).
    chunks: String,
}

/// Runs the subcommand; an error when any route fails or does not roundtrip bit-exactly.
pub fn run(args: &DemoArgs, g: &GlobalArgs, ui: &Ui) -> Result<usize> {
    let shape = &args.shape;
    let t0 = Instant::now();
    let field = generate(shape, args.dtype, args.seed)?;
    let original = field.bytes.len() as u64;
    ui.detail(format!("generated in {:.2} s", t0.elapsed().as_secs_f64()));
    println!(
        "melloc demo: synthetic {} field {} ({} bytes), seed {}",
        args.dtype, shape, original, args.seed
    );
    println!(
        "  waves + {} drifting Gaussian bumps + noise +-{}, fill patch {:e} ({} values), {} NaN",
        field.n_bumps, field.noise, FILL_VALUE as f32, field.n_fill, field.n_nan
    );
    if let Some(dir) = &args.save {
        let dims: Vec<String> = shape.dims().iter().map(u64::to_string).collect();
        let path: PathBuf = dir.join(format!("demo_{}.{}", dims.join("_"), args.dtype));
        write_output(&Dest::File(path.clone()), &[&field.bytes], true, None)?;
        println!("  saved as {}", path.display());
    }

    let routes: [(&'static str, RouteSpec); 3] = [
        ("default", RouteSpec::Auto),
        ("paper", RouteSpec::Paper),
        ("raw", RouteSpec::Raw),
    ];
    let dcfg = DecompressConfig::default().with_threads(g.threads);
    let mut rows = Vec::new();
    let mut n_failed = 0;
    for (label, route) in routes {
        let cfg = CompressConfig::default()
            .with_route(route)
            .with_threads(g.threads);
        match run_route(label, &field.bytes, args.dtype, shape, &cfg, &dcfg, ui) {
            Ok(row) => {
                if !row.exact {
                    n_failed += 1;
                }
                rows.push(row);
            }
            Err(e) => {
                crate::print_error(&e);
                n_failed += 1;
            }
        }
    }

    println!(
        "  {:<8} {:>12} {:>8} {:>14} {:>14}  {:<10} chunks by route",
        "route", "bytes", "ratio", "compress", "decompress", "roundtrip"
    );
    for r in &rows {
        println!(
            "  {:<8} {:>12} {:>8} {:>14} {:>14}  {:<10} {}",
            r.label,
            r.compressed,
            ui::ratio(original, r.compressed),
            ui::speed(original, r.compress_s),
            ui::speed(original, r.decompress_s),
            if r.exact { "bit-exact" } else { "MISMATCH" },
            r.chunks
        );
    }
    if n_failed > 0 {
        bail!("demo: {n_failed} route(s) failed or did not roundtrip bit-exactly");
    }
    Ok(0)
}

fn run_route(
    label: &'static str,
    bytes: &[u8],
    dtype: DType,
    shape: &Shape,
    cfg: &CompressConfig,
    dcfg: &DecompressConfig,
    ui: &Ui,
) -> Result<Row> {
    let pb = ui.spinner(format!("route {label}: compressing"));
    let t0 = Instant::now();
    let compressed = melloc_format::compress_bytes(bytes, dtype, shape, cfg);
    let compress_s = t0.elapsed().as_secs_f64();
    ui::done(pb);
    let compressed = compressed.with_context(|| format!("demo: compressing with route {label}"))?;
    let chunks = melloc_format::inspect(&compressed)
        .map(|info| crate::cmd::info::route_counts(info.chunks.iter().map(|c| c.route)))
        .with_context(|| format!("demo: inspecting the output of route {label}"))?;
    let pb = ui.spinner(format!("route {label}: decompressing"));
    let t0 = Instant::now();
    let decoded = melloc_format::decompress_bytes(&compressed, dcfg);
    let decompress_s = t0.elapsed().as_secs_f64();
    ui::done(pb);
    let decoded = decoded.with_context(|| format!("demo: decompressing route {label}"))?;
    let exact = decoded.dtype == dtype && decoded.shape == *shape && decoded.bytes == bytes;
    if !exact {
        let first = decoded
            .bytes
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .map_or_else(
                || "lengths differ".to_string(),
                |p| format!("first differing byte {p}"),
            );
        crate::print_error(&anyhow::anyhow!(
            "demo: route {label} did not roundtrip bit-exactly ({first})"
        ));
    }
    Ok(Row {
        label,
        compressed: compressed.len() as u64,
        compress_s,
        decompress_s,
        exact,
        chunks,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_has_specials() {
        let shape: Shape = "3x20x30".parse().unwrap();
        let a = generate(&shape, DType::F32, 7).unwrap();
        let b = generate(&shape, DType::F32, 7).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.bytes.len(), 3 * 20 * 30 * 4);
        assert_eq!(a.n_nan, 1);
        assert_eq!(a.n_fill, 3 * 4 * 6);
        let vals: Vec<f32> = a
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(vals.iter().filter(|v| v.is_nan()).count(), 1);
        assert!(vals
            .iter()
            .filter(|v| v.is_finite() && **v < 1e30)
            .all(|v| (200.0..360.0).contains(v)));
    }
}
