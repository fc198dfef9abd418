//! `cargo xtask`: project automation. Depends on no workspace crate; it drives cargo.
//!
//! - `cargo xtask ci`: fmt --check, clippy -D warnings, tests, docs.
//! - `cargo xtask bench [--data DIR]... [--codecs LIST] [--out DIR] [--threads N] [--repeats N]
//!   [--quick] [--features LIST]`: builds and runs `melloc-bench` (release). Without `--data`
//!   it uses `../shared/data` beside the repository. Other flags go to melloc-bench unchanged
//!   (see `cargo run -p melloc-bench -- --help`).
//! - `cargo xtask fetch-data [--dest DIR]`: downloads SDRBench CESM-ATM and Hurricane Isabel.
//! - `cargo xtask fixtures`: writes the golden files of the current format version into
//!   `crates/melloc-format/tests/golden/` (refuses to overwrite: golden files are never
//!   regenerated).

mod datasets;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, bail, Context, Result};

const USAGE: &str = "usage:
  cargo xtask ci
  cargo xtask bench [--data DIR]... [--codecs LIST] [--out DIR] [--threads N] [--repeats N]
                    [--quick] [--features LIST] [melloc-bench flags...]
  cargo xtask fetch-data [--dest DIR]
  cargo xtask fixtures";

/// C-based peers, each its own melloc-bench feature (dropped one by one if its build fails).
const C_PEER_FEATURES: &[&str] = &["fpzip", "zfp", "blosc", "xz"];

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    }
    let cmd = args.remove(0);
    match cmd.as_str() {
        "ci" => ci(&args),
        "bench" => bench(&args),
        "fetch-data" => fetch_data(&args),
        "fixtures" => fixtures(&args),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n{USAGE}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The workspace root (the folder above `xtask/`).
fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(repo_root());
    c
}

fn run_status(mut c: Command, what: &str) -> Result<bool> {
    eprintln!("xtask: {what}");
    let st = c.status().with_context(|| format!("starting `{what}`"))?;
    Ok(st.success())
}

/// Makes `p` absolute against the current directory (where the user typed the command).
fn absolute(p: &str) -> Result<PathBuf> {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        Ok(p)
    } else {
        Ok(std::env::current_dir()
            .context("current directory")?
            .join(p))
    }
}

// ---------------------------------------------------------------------------------------------
// ci

/// Writes the golden files of the current format version (the writer refuses to overwrite).
fn fixtures(args: &[String]) -> Result<ExitCode> {
    if !args.is_empty() {
        bail!("`cargo xtask fixtures` takes no arguments");
    }
    let dir = repo_root().join("crates/melloc-format/tests/golden");
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "-p",
        "melloc-format",
        "--example",
        "write_golden",
        "--",
    ])
    .arg(&dir);
    Ok(if run_status(c, "write golden files")? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ci(args: &[String]) -> Result<ExitCode> {
    if !args.is_empty() {
        bail!("`cargo xtask ci` takes no arguments");
    }
    let steps: &[(&str, &[&str])] = &[
        ("cargo fmt --check", &["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy -D warnings",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("cargo test", &["test", "--workspace"]),
        ("cargo doc", &["doc", "--workspace", "--no-deps"]),
    ];
    for (name, a) in steps {
        let mut c = cargo();
        c.args(*a);
        if a[0] == "doc" {
            c.env("RUSTDOCFLAGS", "-D warnings");
        }
        if !run_status(c, name)? {
            eprintln!("xtask ci: `{name}` failed");
            return Ok(ExitCode::FAILURE);
        }
    }
    eprintln!("xtask ci: all steps passed");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// bench

/// Parsed `cargo xtask bench` arguments: what goes to cargo and what goes to melloc-bench.
#[derive(Debug, Default, PartialEq)]
struct BenchArgs {
    data: Vec<PathBuf>,
    out: Option<PathBuf>,
    features: Option<String>,
    passthrough: Vec<String>,
}

fn parse_bench_args(args: &[String]) -> Result<BenchArgs> {
    let mut b = BenchArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("{name} needs a value")),
            }
        };
        match flag {
            "--data" => b.data.push(absolute(&value("--data")?)?),
            "--out" => b.out = Some(absolute(&value("--out")?)?),
            "--features" => b.features = Some(value("--features")?),
            "--grouping" => {
                let v = value("--grouping")?;
                let v = if v == "auto" || v == "none" {
                    v
                } else {
                    absolute(&v)?.display().to_string()
                };
                b.passthrough.extend(["--grouping".to_string(), v]);
            }
            _ => {
                b.passthrough.push(flag.to_string());
                if let Some(v) = inline {
                    b.passthrough.push(v);
                }
            }
        }
    }
    Ok(b)
}

fn build_bench(features: Option<&str>) -> Result<bool> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "melloc-bench"]);
    if let Some(f) = features {
        c.args(["--no-default-features", "--features", f]);
    }
    run_status(
        c,
        &format!(
            "cargo build --release -p melloc-bench{}",
            features.map_or(String::new(), |f| format!(
                " --no-default-features --features {f}"
            ))
        ),
    )
}

/// Builds melloc-bench with every peer; when that fails, keeps the pure-Rust peers and each C
/// peer that builds on its own. Returns the feature list to run with (`None` = default).
fn resolve_features(requested: Option<&str>) -> Result<Option<String>> {
    if let Some(f) = requested {
        if build_bench(Some(f))? {
            return Ok(Some(f.to_string()));
        }
        bail!("melloc-bench does not build with --features {f}");
    }
    if build_bench(None)? {
        return Ok(None);
    }
    eprintln!("xtask: the full build failed; probing each C-based peer on its own");
    if !build_bench(Some("rust-peers"))? {
        bail!("melloc-bench does not build even without the C peers (see the errors above)");
    }
    let mut kept = vec!["rust-peers".to_string()];
    let mut dropped = Vec::new();
    for f in C_PEER_FEATURES {
        if build_bench(Some(&format!("rust-peers,{f}")))? {
            kept.push((*f).to_string());
        } else {
            dropped.push(*f);
        }
    }
    let list = kept.join(",");
    if !build_bench(Some(&list))? {
        bail!("melloc-bench does not build with --features {list}");
    }
    eprintln!(
        "xtask: WARNING: dropped peers whose C build failed: {} (run scripts/install-deps.sh?)",
        dropped.join(", ")
    );
    Ok(Some(list))
}

fn bench(args: &[String]) -> Result<ExitCode> {
    let mut b = parse_bench_args(args)?;
    let root = repo_root();
    if b.data.is_empty() {
        b.data.push(root.join("..").join("shared").join("data"));
    }
    for d in &b.data {
        if !d.is_dir() {
            bail!(
                "data folder {} not found. Pass --data DIR (a folder of NAME_d0_d1[_d2].f32|.f64 \
                 or .npy files), or download the paper's datasets with `cargo xtask fetch-data`.",
                d.display()
            );
        }
    }
    let out = b
        .out
        .unwrap_or_else(|| root.join("target").join("bench-results"));
    let features = resolve_features(b.features.as_deref())?;

    let mut c = cargo();
    c.args(["run", "--release", "--quiet", "-p", "melloc-bench"]);
    if let Some(f) = &features {
        c.args(["--no-default-features", "--features", f]);
    }
    c.arg("--");
    for d in &b.data {
        c.arg("--data").arg(d);
    }
    c.arg("--out").arg(&out);
    c.args(&b.passthrough);
    let ok = run_status(c, "cargo run --release -p melloc-bench -- ...")?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ---------------------------------------------------------------------------------------------
// fetch-data

fn fetch_data(args: &[String]) -> Result<ExitCode> {
    let mut dest = repo_root().join("..").join("sdrbench-data");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dest" => {
                dest = absolute(it.next().context("--dest needs a folder")?)?;
            }
            other if other.starts_with("--dest=") => {
                dest = absolute(&other["--dest=".len()..])?;
            }
            other => bail!("unknown fetch-data argument `{other}` (expected --dest DIR)"),
        }
    }
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    for tool in ["curl", "tar", "sha256sum"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is needed by fetch-data and was not found");
        }
    }

    let mut failed_hosts: BTreeSet<String> = BTreeSet::new();
    let mut ready = Vec::new();
    let mut failures = Vec::new();
    for r in datasets::REMOTES {
        let folder = dest.join(r.name);
        let n_ok = count_fields(&folder, r.dims)?;
        if n_ok >= r.min_fields {
            eprintln!(
                "fetch-data: {} already present ({n_ok} fields) in {}",
                r.name,
                folder.display()
            );
            ready.push(folder);
            continue;
        }
        let host = datasets::host(r.url).to_string();
        if failed_hosts.contains(&host) {
            failures.push(format!("{}: skipped, {host} was unreachable", r.name));
            continue;
        }
        match fetch_one(r, &dest, &folder) {
            Ok(n) => {
                eprintln!("fetch-data: {}: {n} fields in {}", r.name, folder.display());
                ready.push(folder);
            }
            Err(FetchError::Unreachable(msg)) => {
                failed_hosts.insert(host);
                failures.push(format!("{}: {msg}", r.name));
            }
            Err(FetchError::Other(e)) => failures.push(format!("{}: {e:#}", r.name)),
        }
    }
    if !ready.is_empty() {
        let flags: Vec<String> = ready
            .iter()
            .map(|p| format!("--data {}", p.display()))
            .collect();
        eprintln!(
            "fetch-data: bench with: cargo xtask bench {}",
            flags.join(" ")
        );
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            eprintln!("fetch-data: FAILED {f}");
        }
        eprintln!(
            "fetch-data: this needs internet access to the SDRBench portal. Where there is none, \
             download the archives elsewhere (URLs in xtask/src/datasets.rs), copy them into {} \
             and run fetch-data again: archives found there are used instead of downloading.",
            dest.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

#[derive(Debug)]
enum FetchError {
    /// The host did not answer (no internet); other datasets on it are skipped.
    Unreachable(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for FetchError {
    fn from(e: anyhow::Error) -> Self {
        FetchError::Other(e)
    }
}

/// Fields already in `folder` whose size matches `dims` (f32).
fn count_fields(folder: &Path, dims: &[u64]) -> Result<usize> {
    if !folder.is_dir() {
        return Ok(0);
    }
    let want = dims.iter().product::<u64>() * 4;
    let mut n = 0;
    for e in std::fs::read_dir(folder).with_context(|| format!("listing {}", folder.display()))? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".f32") && e.metadata()?.len() == want {
            n += 1;
        }
    }
    Ok(n)
}

fn archive_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or("archive.tar.gz")
}

fn fetch_one(r: &datasets::Remote, dest: &Path, folder: &Path) -> Result<usize, FetchError> {
    let archive = dest.join(archive_name(r.url));
    if archive.is_file() {
        eprintln!("fetch-data: {}: using {}", r.name, archive.display());
    } else {
        // One short probe per host: no internet must fail fast, not hang.
        eprintln!("fetch-data: {}: probing {}", r.name, datasets::host(r.url));
        let probe = Command::new("curl")
            .args([
                "-sS",
                "-I",
                "-L",
                "--connect-timeout",
                "10",
                "--max-time",
                "20",
            ])
            .arg(r.url)
            .output()
            .context("running curl")?;
        if !probe.status.success() {
            return Err(FetchError::Unreachable(format!(
                "cannot reach {} ({})",
                datasets::host(r.url),
                String::from_utf8_lossy(&probe.stderr).trim()
            )));
        }
        let part = archive.with_extension("part");
        eprintln!("fetch-data: {}: downloading {}", r.name, r.url);
        let st = Command::new("curl")
            .args(["-fL", "--connect-timeout", "10", "--retry", "2", "-o"])
            .arg(&part)
            .arg(r.url)
            .status()
            .context("running curl")?;
        if !st.success() {
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::Other(anyhow!("download of {} failed", r.url)));
        }
        std::fs::rename(&part, &archive).context("moving the download into place")?;
    }

    let out = Command::new("sha256sum")
        .arg(&archive)
        .output()
        .context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if !out.status.success() || hash.len() != 64 {
        return Err(FetchError::Other(anyhow!(
            "sha256sum of {} failed",
            archive.display()
        )));
    }
    match r.sha256 {
        Some(want) if want != hash => {
            return Err(FetchError::Other(anyhow!(
                "{} has sha256 {hash}, expected {want}; delete it and download again",
                archive.display()
            )));
        }
        Some(_) => eprintln!("fetch-data: {}: sha256 verified", r.name),
        None => {
            let line = format!("{hash}  {}\n", archive_name(r.url));
            let rec = dest.join("SHA256SUMS.recorded");
            let mut prev = std::fs::read_to_string(&rec).unwrap_or_default();
            if !prev.contains(&line) {
                prev.push_str(&line);
                std::fs::write(&rec, prev).context("writing SHA256SUMS.recorded")?;
            }
            eprintln!(
                "fetch-data: {}: no checksum on file for this archive; recorded sha256 {hash} in \
                 {} (copy it into xtask/src/datasets.rs to verify later downloads)",
                r.name,
                rec.display()
            );
        }
    }

    let tmp = dest.join(format!("{}.extract", r.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).context("creating the extraction folder")?;
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&tmp)
        .status()
        .context("running tar")?;
    if !st.success() {
        return Err(FetchError::Other(anyhow!(
            "extracting {} failed",
            archive.display()
        )));
    }
    std::fs::create_dir_all(folder).context("creating the dataset folder")?;
    let want = r.dims.iter().product::<u64>() * 4;
    let mut n = 0;
    let mut stack = vec![tmp.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).context("listing extracted files")? {
            let e = e.context("listing extracted files")?;
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(bench) = datasets::bench_name(r.naming, &name, r.dims) else {
                continue;
            };
            let size = e.metadata().context("stat")?.len();
            if size != want {
                return Err(FetchError::Other(anyhow!(
                    "{name}: {size} bytes, expected {want} for shape {:?} (float32)",
                    r.dims
                )));
            }
            std::fs::rename(&path, folder.join(&bench)).context("moving a field into place")?;
            n += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if n < r.min_fields {
        return Err(FetchError::Other(anyhow!(
            "only {n} fields found in {} (expected at least {})",
            archive.display(),
            r.min_fields
        )));
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn bench_args_split_between_cargo_and_bench() {
        let b = parse_bench_args(&s(&[
            "--data",
            "/a",
            "--data=/b",
            "--quick",
            "--codecs",
            "zstd,melloc",
            "--features",
            "rust-peers",
            "--out",
            "/o",
        ]))
        .unwrap();
        assert_eq!(b.data, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(b.out, Some(PathBuf::from("/o")));
        assert_eq!(b.features.as_deref(), Some("rust-peers"));
        assert_eq!(b.passthrough, s(&["--quick", "--codecs", "zstd,melloc"]));
        assert!(parse_bench_args(&s(&["--data"])).is_err());
    }

    #[test]
    fn archive_names() {
        assert_eq!(
            archive_name(datasets::REMOTES[0].url),
            "SDRBENCH-CESM-ATM-cleared-1800x3600.tar.gz"
        );
    }
}
