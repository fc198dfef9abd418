//! Helpers shared by the CLI integration tests: run the built binary, make small fields.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Result of one run of `melloc`.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "melloc failed ({:?}): {}",
            self.code,
            self.stderr
        );
        self
    }
    #[track_caller]
    pub fn assert_failed(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit 1, stderr: {}",
            self.stderr
        );
        self
    }
}

/// Runs `melloc args..` in `dir` with optional stdin bytes.
pub fn melloc_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_melloc"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning melloc");
    if let Some(bytes) = stdin {
        let mut sin = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        // Write from a thread so a large stdin cannot deadlock against a full stdout pipe.
        let writer = std::thread::spawn(move || {
            let _ = sin.write_all(&bytes);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        return to_run(out);
    }
    to_run(child.wait_with_output().unwrap())
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A smooth f32 field with a NaN, a fill value and a -0.0, as little-endian bytes (C order).
pub fn field_f32(dims: &[usize]) -> Vec<u8> {
    let n: usize = dims.iter().product();
    let cols = *dims.last().unwrap();
    let mut out = Vec::with_capacity(n * 4);
    for idx in 0..n {
        let (i, j) = ((idx / cols) as f32, (idx % cols) as f32);
        let mut v = 250.0 + 10.0 * (0.11 * i).sin() + 5.0 * (0.07 * j + 0.03 * i).cos();
        // a little deterministic roughness
        v += ((idx as u32).wrapping_mul(2_654_435_761) >> 22) as f32 * 1e-4;
        if idx == n / 3 {
            v = f32::NAN;
        } else if idx == n / 2 {
            v = 9.96921e36;
        } else if idx == n - 1 {
            v = -0.0;
        }
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Same for f64.
pub fn field_f64(dims: &[usize]) -> Vec<u8> {
    field_f32(dims)
        .chunks_exact(4)
        .flat_map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * 1.25).to_le_bytes())
        .collect()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
