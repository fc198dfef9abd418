//! `melloc test`: decompress and verify every checksum, write nothing.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::{GlobalArgs, TestArgs};
use crate::cmd::{check_inputs, decompress, for_each_file};
use crate::input::{display_name, read_all};
use crate::ui::{self, Ui};

/// Runs the subcommand; returns the number of failed inputs.
pub fn run(args: &TestArgs, g: &GlobalArgs, ui: &Ui) -> Result<usize> {
    check_inputs(&args.files, None)?;
    let cfg = decompress::config(None, g);
    Ok(for_each_file(&args.files, |input| {
        let name = display_name(input);
        let bytes = read_all(input)?;
        let pb = ui.spinner(format!("testing {name}"));
        let t0 = Instant::now();
        // Decoded chunk by chunk into nothing: the values are never whole in memory.
        let result = melloc_format::decompress_stream(&bytes, &cfg, &mut std::io::sink());
        let secs = t0.elapsed().as_secs_f64();
        ui::done(pb);
        let (dtype, shape) = result.with_context(|| format!("testing {name}"))?;
        let original = shape.n_elements() * dtype.n_bytes() as u64;
        ui.info(format!(
            "{name}: OK, {dtype} {shape}, {} -> {} bytes ({}), {}",
            bytes.len(),
            original,
            ui::ratio(original, bytes.len() as u64),
            ui::speed(original, secs)
        ));
        Ok(())
    }))
}
