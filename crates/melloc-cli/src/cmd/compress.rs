//! `melloc compress`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use melloc_format::CompressConfig;

use crate::cli::{CompressArgs, GlobalArgs};
use crate::cmd::{check_inputs, for_each_file, remove_input, stage_error};
use crate::input::{display_name, is_dash, open_field, Layout};
use crate::output::{check_dest, write_output_seekable, Dest};
use crate::ui::{self, Ui};

/// Suffix of compressed files.
pub const SUFFIX: &str = ".mlc";

/// Builds the encoder configuration from the flags: the preset first, then the explicit
/// `--backend`, route, chunk size and threads on top.
pub fn config(args: &CompressArgs, g: &GlobalArgs) -> Result<CompressConfig> {
    let mut cfg = CompressConfig::default()
        .with_preset(args.preset)
        .with_route(args.route)
        .with_threads(g.threads)
        .with_verify(!args.no_verify);
    if let Some(b) = args.backend {
        cfg = cfg.with_backend(b);
    }
    if let Some(mb) = args.chunk_mb {
        let bytes = mb * (1u64 << 20) as f64;
        if !(bytes.is_finite() && bytes >= 1.0 && bytes < usize::MAX as f64) {
            bail!("--chunk-mb must be a positive size in MiB, got {mb}");
        }
        cfg = cfg.with_chunk_bytes(bytes as usize);
    }
    Ok(cfg)
}

/// `X` -> `X.mlc`; stdin -> stdout; `-c` / `-o` as given.
fn dest_for(input: &Path, args: &CompressArgs) -> Result<Dest> {
    if let Some(dest) = Dest::explicit(&args.out, input) {
        return Ok(dest);
    }
    if input.to_string_lossy().ends_with(SUFFIX) && !args.out.force {
        bail!(
            "{} already has the {SUFFIX} suffix; not compressing it again (use -f to force, \
             or -o FILE)",
            input.display()
        );
    }
    let mut name = input.as_os_str().to_owned();
    name.push(SUFFIX);
    Ok(Dest::File(PathBuf::from(name)))
}

/// Runs the subcommand; returns the number of failed inputs.
pub fn run(args: &CompressArgs, g: &GlobalArgs, ui: &Ui) -> Result<usize> {
    check_inputs(&args.files, args.out.output.as_deref())?;
    if args.files.len() > 1 && (args.out.stdout || args.out.output.as_deref().is_some_and(is_dash))
    {
        bail!("-c writes a single .mlc stream: give one input at a time");
    }
    if args.out.rm && (args.out.stdout || args.out.output.as_deref().is_some_and(is_dash)) {
        ui.warn("--rm is ignored when writing to stdout");
    }
    let cfg = config(args, g)?;
    ui.detail(format!(
        "route {:?}, back end {:?}, effort {}, chunks of {} bytes, threads {}",
        cfg.route,
        cfg.backend,
        cfg.effort,
        cfg.chunk_bytes,
        if cfg.threads == 0 {
            "auto".to_string()
        } else {
            cfg.threads.to_string()
        }
    ));
    Ok(for_each_file(&args.files, |input| {
        compress_one(input, args, &cfg, ui)
    }))
}

fn compress_one(input: &Path, args: &CompressArgs, cfg: &CompressConfig, ui: &Ui) -> Result<()> {
    let name = display_name(input);
    let dest = dest_for(input, args)?;
    check_dest(&dest, input, args.out.force, "compressed data")?;
    let field = open_field(input, args.dtype, args.shape.clone())?;
    match field.layout {
        Layout::FromName { dtype, shape } => {
            let what = match (dtype, shape) {
                (true, true) => format!(
                    "dtype {} and shape {} (C order, slowest first)",
                    field.dtype, field.shape
                ),
                (true, false) => format!("dtype {}", field.dtype),
                _ => format!("shape {} (C order, slowest first)", field.shape),
            };
            ui.info(format!("{name}: {what} inferred from the file name"));
        }
        Layout::Npy => ui.detail(format!("{name}: .npy {} {}", field.dtype, field.shape)),
        Layout::Flags => ui.detail(format!("{name}: raw {} {}", field.dtype, field.shape)),
    }
    let original = field.n_bytes();
    let file_len = field.file_len();
    let (dtype, shape) = (field.dtype, field.shape);
    let pb = ui.spinner(format!("compressing {name}"));
    let t0 = Instant::now();
    // The input is read one chunk at a time as workers start on them, and chunks are written
    // as they are done: neither the input nor the output is ever whole in memory (except on
    // stdout, which cannot seek back to the header: there the output is gathered first).
    let result = write_output_seekable(
        &dest,
        args.out.force,
        Some(input).filter(|p| !is_dash(p)),
        |w| {
            melloc_format::compress_stream(field.reader, dtype, &shape, cfg, w)
                .map_err(|e| stage_error(e, "compressing", &name, &dest))
        },
    );
    let secs = t0.elapsed().as_secs_f64();
    ui::done(pb);
    let compressed = result?;
    let stored = compressed.n_bytes;
    ui.info(ui::summary(&name, file_len, stored, original, stored, secs));
    if ui.is_verbose() {
        ui.detail(format!(
            "{name}: -> {dest}, {} chunks, routes: {}",
            compressed.routes.len(),
            crate::cmd::info::route_counts(compressed.routes.iter().copied())
        ));
    }
    remove_input(input, &dest, args.out.rm)
}
