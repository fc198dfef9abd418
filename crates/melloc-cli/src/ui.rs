//! Messages on stderr: verbosity levels, the progress spinner, the one-line summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::GlobalArgs;

/// How much to say on stderr.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    quiet: u8,
    verbose: u8,
    stderr_tty: bool,
}

impl Ui {
    /// From the global flags.
    pub fn new(g: &GlobalArgs) -> Self {
        Self {
            quiet: g.quiet,
            verbose: g.verbose,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// Normal output (summaries, inferred layouts): silenced by `-q`.
    pub fn info(&self, msg: impl AsRef<str>) {
        if self.quiet == 0 {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Warnings: silenced by `-qq`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.quiet < 2 {
            eprintln!("melloc: warning: {}", msg.as_ref());
        }
    }

    /// Details: shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && self.quiet == 0 {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// `true` with `-v`.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0 && self.quiet == 0
    }

    /// A spinner on stderr, only when stderr is a terminal and not quiet.
    pub fn spinner(&self, msg: String) -> Option<ProgressBar> {
        if self.quiet > 0 || !self.stderr_tty {
            return None;
        }
        let pb = ProgressBar::new_spinner().with_message(msg);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            pb.set_style(style);
        }
        pb.enable_steady_tick(Duration::from_millis(100));
        Some(pb)
    }
}

/// Clears a spinner, if any.
pub fn done(pb: Option<ProgressBar>) {
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
}

/// `name: 1000000 -> 250000 bytes (4.00x), 120.3 MB/s` (ratio = original / compressed, speed
/// in 10^6 bytes of original data per second).
pub fn summary(
    name: &str,
    from: u64,
    to: u64,
    original: u64,
    compressed: u64,
    secs: f64,
) -> String {
    format!(
        "{name}: {from} -> {to} bytes ({}), {}",
        ratio(original, compressed),
        speed(original, secs)
    )
}

/// `4.00x`.
pub fn ratio(original: u64, compressed: u64) -> String {
    if compressed == 0 {
        "inf".to_string()
    } else {
        format!("{:.2}x", original as f64 / compressed as f64)
    }
}

/// `120.3 MB/s` (1 MB = 10^6 bytes).
pub fn speed(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", mb_per_s(bytes, secs))
}

/// 10^6 bytes per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        assert_eq!(
            summary("a.f32", 1_000_000, 250_000, 1_000_000, 250_000, 0.5),
            "a.f32: 1000000 -> 250000 bytes (4.00x), 2.0 MB/s"
        );
        assert_eq!(ratio(10, 0), "inf");
    }
}
