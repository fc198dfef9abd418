//! The subcommands. Each `run` returns the number of inputs that failed (their errors are
//! printed as they happen) or an error that stops the whole invocation.

pub mod compress;
pub mod decompress;
pub mod demo;
pub mod info;
pub mod test;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::input::is_dash;
use crate::output::Dest;

/// Runs `f` on every file, printing each error (with its context chain) and carrying on, like
/// zstd. Returns the number of failures.
pub fn for_each_file(files: &[PathBuf], mut f: impl FnMut(&Path) -> Result<()>) -> usize {
    let mut n_failed = 0;
    for path in files {
        if let Err(e) = f(path) {
            crate::print_error(&e);
            n_failed += 1;
        }
    }
    n_failed
}

/// Rejects argument combinations that cannot work with several inputs.
pub fn check_inputs(files: &[PathBuf], output: Option<&Path>) -> Result<()> {
    if files.iter().filter(|p| is_dash(p)).count() > 1 {
        bail!("standard input (`-`) can be given only once");
    }
    if output.is_some() && files.len() > 1 {
        bail!("-o FILE takes a single input, got {} inputs", files.len());
    }
    Ok(())
}

/// Removes `input` after success when `--rm` was given and the output is a file.
pub fn remove_input(input: &Path, dest: &Dest, rm: bool) -> Result<()> {
    use anyhow::Context;
    if rm && !is_dash(input) && *dest != Dest::Stdout {
        std::fs::remove_file(input)
            .with_context(|| format!("removing {} (--rm)", input.display()))?;
    }
    Ok(())
}

/// The context of a codec error: the stage it happened in and the file it concerns (reading
/// the input, writing `dest`, or the codec itself, `verb` as in `compressing NAME`).
pub fn stage_error(
    e: melloc_format::FormatError,
    verb: &str,
    name: &str,
    dest: &Dest,
) -> anyhow::Error {
    use melloc_format::FormatError;
    let stage = match &e {
        FormatError::Input(_) => format!("reading {name}"),
        FormatError::Output(_) => format!("writing {dest}"),
        _ => format!("{verb} {name}"),
    };
    anyhow::Error::new(e).context(stage)
}
