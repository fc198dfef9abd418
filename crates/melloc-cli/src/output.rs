//! Writing outputs: standard output, or a temporary file in the target directory renamed into
//! place once complete, so that an error never leaves a half-written file behind.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::input::is_dash;

/// Where one output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Standard output.
    Stdout,
    /// A file, written atomically.
    File(PathBuf),
}

impl Dest {
    /// The destination the flags fix on their own (`-c`, `-o FILE`, or stdin in -> stdout out),
    /// or `None` when it is derived from the input's name.
    pub fn explicit(out: &crate::cli::OutputArgs, input: &Path) -> Option<Self> {
        if out.stdout {
            return Some(Self::Stdout);
        }
        if let Some(o) = &out.output {
            return Some(Self::from_path(o));
        }
        is_dash(input).then_some(Self::Stdout)
    }

    /// `-` is stdout, anything else a file.
    pub fn from_path(path: &Path) -> Self {
        if is_dash(path) {
            Self::Stdout
        } else {
            Self::File(path.to_path_buf())
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("<stdout>"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Checks, before any work is done, that `dest` may be written: an existing file needs
/// `force`, the input itself is never overwritten, and binary data does not go to a terminal
/// unless forced.
pub fn check_dest(dest: &Dest, input: &Path, force: bool, what: &str) -> Result<()> {
    match dest {
        Dest::Stdout => {
            if !force && std::io::stdout().is_terminal() {
                bail!(
                    "refusing to write {what} to a terminal; redirect stdout, use -o FILE, \
                     or -f to force"
                );
            }
        }
        Dest::File(path) => {
            if !is_dash(input) && same_file(input, path) {
                bail!(
                    "{}: output would overwrite the input; use -o FILE",
                    path.display()
                );
            }
            if path.is_dir() {
                bail!("{}: output is a directory", path.display());
            }
            if !force && path.symlink_metadata().is_ok() {
                bail!("{} already exists; use -f to overwrite it", path.display());
            }
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A writer that can also seek (the compressor writes the header last, over its place).
pub trait WriteSeek: Write + Seek + Send {}

impl<W: Write + Seek + Send + ?Sized> WriteSeek for W {}

/// Writes the concatenation of `parts` to `dest` ([`write_output_with`]).
pub fn write_output(
    dest: &Dest,
    parts: &[&[u8]],
    force: bool,
    mode_of: Option<&Path>,
) -> Result<()> {
    write_output_with(dest, force, mode_of, |w| {
        parts
            .iter()
            .try_for_each(|p| w.write_all(p))
            .with_context(|| format!("writing {dest}"))
    })
}

/// Writes what `write` writes to `dest`, straight to standard output or through a temporary
/// file ([`via_temp_file`]). Errors of `write` are returned as they are: it gives them their
/// context.
pub fn write_output_with<R>(
    dest: &Dest,
    force: bool,
    mode_of: Option<&Path>,
    write: impl FnOnce(&mut (dyn Write + Send)) -> Result<R>,
) -> Result<R> {
    match dest {
        Dest::Stdout => {
            let mut out = std::io::stdout();
            let r = write(&mut out)?;
            out.flush().context("writing <stdout>")?;
            Ok(r)
        }
        Dest::File(path) => via_temp_file(path, force, mode_of, |w| write(w)),
    }
}

/// [`write_output_with`] for a writer that must seek: standard output, which cannot, gets
/// what was written to a buffer in memory once `write` is done.
pub fn write_output_seekable<R>(
    dest: &Dest,
    force: bool,
    mode_of: Option<&Path>,
    write: impl FnOnce(&mut dyn WriteSeek) -> Result<R>,
) -> Result<R> {
    match dest {
        Dest::Stdout => {
            let mut buf = std::io::Cursor::new(Vec::new());
            let r = write(&mut buf)?;
            let mut out = std::io::stdout().lock();
            out.write_all(buf.get_ref())
                .and_then(|()| out.flush())
                .context("writing <stdout>")?;
            Ok(r)
        }
        Dest::File(path) => via_temp_file(path, force, mode_of, |w| write(w)),
    }
}

/// Runs `write` on a temporary file in the directory of `path`, gives it the permissions of
/// `mode_of` (the input) when known, and renames it into place; without `force` an existing
/// file is never replaced. On any error the temporary file is removed.
fn via_temp_file<R>(
    path: &Path,
    force: bool,
    mode_of: Option<&Path>,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<R>,
) -> Result<R> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "writing {}: creating a temporary file in {}",
                path.display(),
                dir.display()
            )
        })?;
    let r = {
        // Writers give large blocks (encoded chunks, or the decoder's 64 KiB blocks, which
        // pass straight through): the buffer only gathers small pieces such as headers.
        // At 1 MiB it added its size to the peak memory of small files.
        let mut w = BufWriter::with_capacity(64 << 10, tmp.as_file_mut());
        let r = write(&mut w)?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        r
    };
    set_mode(tmp.path(), mode_of)
        .with_context(|| format!("writing {}: setting permissions", path.display()))?;
    let persisted = if force {
        tmp.persist(path).map(drop)
    } else {
        tmp.persist_noclobber(path).map(drop)
    };
    persisted.map_err(|e| e.error).with_context(|| {
        if force {
            format!("writing {}: renaming the temporary file", path.display())
        } else {
            format!(
                "writing {} (it may already exist; use -f to overwrite)",
                path.display()
            )
        }
    })?;
    Ok(r)
}

/// Gives `tmp` the permission bits of `mode_of` (like zstd), or 0644 for stdin input.
#[cfg(unix)]
fn set_mode(tmp: &Path, mode_of: Option<&Path>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = mode_of
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0o644, |m| m.permissions().mode() & 0o777);
    // Keep the owner able to overwrite the output later (the input may be read-only).
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode | 0o200))
}

#[cfg(not(unix))]
fn set_mode(_tmp: &Path, _mode_of: Option<&Path>) -> std::io::Result<()> {
    Ok(())
}
