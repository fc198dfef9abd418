//! `melloc decompress`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::io::Write;

use anyhow::{bail, Context, Result};
use melloc_format::{DType, DecompressConfig, Shape};

use crate::cli::{DecompressArgs, GlobalArgs};
use crate::cmd::compress::SUFFIX;
use crate::cmd::{check_inputs, for_each_file, remove_input, stage_error};
use crate::input::{display_name, is_dash, npy_header, read_all};
use crate::output::{check_dest, write_output_with, Dest};
use crate::ui::{self, Ui};

/// The decoder configuration from the flags.
pub fn config(memory_limit_mb: Option<u64>, g: &GlobalArgs) -> DecompressConfig {
    let mut cfg = DecompressConfig::default().with_threads(g.threads);
    if let Some(mb) = memory_limit_mb {
        cfg = cfg.with_memory_limit(mb.saturating_mul(1 << 20));
    }
    cfg
}

/// `X.mlc` -> `X` (`X.npy` with `--npy`); stdin -> stdout; `-c` / `-o` as given.
fn dest_for(input: &Path, args: &DecompressArgs) -> Result<Dest> {
    if let Some(dest) = Dest::explicit(&args.out, input) {
        return Ok(dest);
    }
    let s = input.to_string_lossy();
    let Some(stem) = s
        .strip_suffix(SUFFIX)
        .filter(|s| !s.is_empty() && !s.ends_with('/'))
    else {
        bail!(
            "{}: unknown suffix (expected {SUFFIX}); use -o FILE or -c",
            input.display()
        );
    };
    let mut out = stem.to_string();
    if args.npy && !is_npy_name(Path::new(&out)) {
        out.push_str(".npy");
    }
    Ok(Dest::File(PathBuf::from(out)))
}

fn is_npy_name(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Runs the subcommand; returns the number of failed inputs.
pub fn run(args: &DecompressArgs, g: &GlobalArgs, ui: &Ui) -> Result<usize> {
    check_inputs(&args.files, args.out.output.as_deref())?;
    if args.out.rm && (args.out.stdout || args.out.output.as_deref().is_some_and(is_dash)) {
        ui.warn("--rm is ignored when writing to stdout");
    }
    let cfg = config(args.memory_limit_mb, g);
    Ok(for_each_file(&args.files, |input| {
        decompress_one(input, args, &cfg, ui)
    }))
}

fn decompress_one(
    input: &Path,
    args: &DecompressArgs,
    cfg: &DecompressConfig,
    ui: &Ui,
) -> Result<()> {
    let name = display_name(input);
    let dest = dest_for(input, args)?;
    check_dest(&dest, input, args.out.force, "decompressed data")?;
    let as_npy = args.npy || matches!(&dest, Dest::File(p) if is_npy_name(p));
    let bytes = read_all(input)?;
    let pb = ui.spinner(format!("decompressing {name}"));
    let t0 = Instant::now();
    let result = write_output_with(
        &dest,
        args.out.force,
        Some(input).filter(|p| !is_dash(p)),
        |w| write_decoded(&bytes, cfg, as_npy, &name, &dest, w),
    );
    let secs = t0.elapsed().as_secs_f64();
    ui::done(pb);
    let (dtype, shape, header_len) = result?;
    let original = shape.n_elements() * dtype.n_bytes() as u64;
    ui.info(ui::summary(
        &name,
        bytes.len() as u64,
        original + header_len,
        original,
        bytes.len() as u64,
        secs,
    ));
    ui.detail(format!(
        "{name}: -> {dest} ({dtype} {shape}{})",
        if as_npy { ", .npy" } else { ", raw" }
    ));
    remove_input(input, &dest, args.out.rm)
}

/// Decodes `bytes` into `w` (after a `.npy` header with `as_npy`); returns the dtype, the shape
/// and the length of that header. A file gets each chunk as soon as it is decoded (the
/// temporary file is dropped if a checksum fails later); standard output gets nothing until
/// every checksum, the content checksum included, has been verified.
fn write_decoded(
    bytes: &[u8],
    cfg: &DecompressConfig,
    as_npy: bool,
    name: &str,
    dest: &Dest,
    w: &mut (dyn Write + Send),
) -> Result<(DType, Shape, u64)> {
    let stage = |e| stage_error(e, "decompressing", name, dest);
    let npy_for = |dtype, shape: &Shape| {
        if as_npy {
            npy_header(dtype, shape).with_context(|| format!("writing {dest}"))
        } else {
            Ok(Vec::new())
        }
    };
    let writing = || format!("writing {dest}");
    match dest {
        Dest::File(_) => {
            let (header, _) = melloc_format::container::read_header(bytes).map_err(stage)?;
            let npy = npy_for(header.dtype, &header.shape)?;
            w.write_all(&npy).with_context(writing)?;
            let (dtype, shape) = melloc_format::decompress_stream(bytes, cfg, w).map_err(stage)?;
            Ok((dtype, shape, npy.len() as u64))
        }
        Dest::Stdout => {
            let decoded = melloc_format::decompress_values(bytes, cfg).map_err(stage)?;
            let npy = npy_for(decoded.dtype, &decoded.shape)?;
            w.write_all(&npy).with_context(writing)?;
            decoded.write_le(w).with_context(writing)?;
            Ok((decoded.dtype, decoded.shape, npy.len() as u64))
        }
    }
}
