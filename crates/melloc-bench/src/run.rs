//! A whole bench run: datasets x files x codecs, printed tables and written reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::codec::{all_codecs, resolve_selection, Codec};
use crate::dataset::{list_folder, Dataset, Grouping, SHARED_DATA_GROUPING};
use crate::machine::Machine;
use crate::report::{self, aggregate};
use crate::runner::{measure, Measurement, Prepared, Status, TimingPolicy};

/// How folders are split into datasets.
#[derive(Clone, Debug)]
pub enum GroupingChoice {
    /// The compiled-in grouping of the shared data when the folder holds all its files,
    /// else the whole folder as one dataset.
    Auto,
    /// Each folder is one dataset.
    None,
    /// A grouping file.
    File(PathBuf),
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Dataset folders.
    pub data: Vec<PathBuf>,
    /// `--codecs` list (`None` = all).
    pub codecs: Option<String>,
    /// Output folder.
    pub out: PathBuf,
    /// Timing policy (repeats, budget, threads).
    pub policy: TimingPolicy,
    /// Quick subset.
    pub quick: bool,
    /// Grouping.
    pub grouping: GroupingChoice,
}

/// What the caller needs after a run.
#[derive(Debug)]
pub struct RunSummary {
    /// Cells that failed (error, panic, not bit-exact).
    pub n_failed: usize,
    /// Cells run in total.
    pub n_cells: usize,
    /// Path of results.md.
    pub results_md: PathBuf,
}

fn datasets_for(dir: &Path, grouping: &GroupingChoice) -> Result<Vec<Dataset>> {
    let files = list_folder(dir)?;
    match grouping {
        GroupingChoice::None => Ok(vec![Dataset::from_folder(dir, files)]),
        GroupingChoice::File(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading grouping file {}", p.display()))?;
            Ok(Grouping::parse(&text)?.split(files))
        }
        GroupingChoice::Auto => {
            let g = Grouping::parse(SHARED_DATA_GROUPING)?;
            if g.matches(&files) {
                Ok(g.split(files))
            } else {
                Ok(vec![Dataset::from_folder(dir, files)])
            }
        }
    }
}

/// Runs the bench and writes `results.md`, `results.csv` and `results-detail.csv` to `cfg.out`.
pub fn run(cfg: &RunConfig) -> Result<RunSummary> {
    let machine = Machine::detect();
    let selected = resolve_selection(cfg.codecs.as_deref().unwrap_or("all"))?;
    let codecs: Vec<Box<dyn Codec>> = all_codecs()
        .into_iter()
        .filter(|c| selected.contains(&c.id()))
        .collect();
    let not_built: Vec<&str> = selected
        .iter()
        .copied()
        .filter(|id| !codecs.iter().any(|c| c.id() == *id))
        .collect();
    if codecs.is_empty() {
        bail!("no selected codec is built into this binary (not built: {not_built:?})");
    }

    if cfg.data.is_empty() {
        bail!("no --data folder given");
    }
    let mut datasets: Vec<(PathBuf, Dataset)> = Vec::new();
    for dir in &cfg.data {
        for d in datasets_for(dir, &cfg.grouping)? {
            let d = if cfg.quick { d.into_quick() } else { d };
            if !d.files.is_empty() {
                datasets.push((dir.clone(), d));
            }
        }
    }
    // Dataset names must be unique across folders.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, d) in &mut datasets {
        let n = seen.entry(d.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            d.name = format!("{}-{}", d.name, n);
        }
    }

    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("creating output folder {}", cfg.out.display()))?;

    let labels: Vec<(String, String)> = codecs
        .iter()
        .map(|c| (c.id().to_string(), c.label().to_string()))
        .collect();
    let n_files: usize = datasets.iter().map(|(_, d)| d.files.len()).sum();
    let total_mb: f64 = datasets
        .iter()
        .flat_map(|(_, d)| d.files.iter())
        .map(|f| f.n_bytes as f64 / 1e6)
        .sum();
    eprintln!(
        "melloc-bench: {} dataset(s), {n_files} files, {total_mb:.1} MB, {} codecs, threads {}, \
         up to {} timed repeats (budget {} s per cell){}",
        datasets.len(),
        codecs.len(),
        cfg.policy.threads,
        cfg.policy.repeats,
        cfg.policy.cell_budget_s,
        if cfg.quick { ", QUICK subset" } else { "" }
    );
    if !not_built.is_empty() {
        eprintln!(
            "melloc-bench: not built into this binary: {}",
            not_built.join(", ")
        );
    }

    let t_run = Instant::now();
    let mut cells: Vec<Measurement> = Vec::new();
    for (_, d) in &datasets {
        for entry in &d.files {
            let field = entry.load()?;
            let prepared = Prepared::new(&field);
            for c in &codecs {
                let m = measure(c.as_ref(), &d.name, &prepared, &cfg.policy);
                eprintln!("  {}", progress_line(&m));
                cells.push(m);
            }
        }
        let files: Vec<String> = d.files.iter().map(|f| f.name.clone()).collect();
        let ds_cells: Vec<Measurement> = cells
            .iter()
            .filter(|m| m.dataset == d.name)
            .cloned()
            .collect();
        println!(
            "\n## {} ({} files, {:.1} MB)\n\n{}",
            d.name,
            files.len(),
            d.files.iter().map(|f| f.n_bytes as f64).sum::<f64>() / 1e6,
            report::table(&labels, &ds_cells, &files)
        );
    }
    let elapsed = t_run.elapsed().as_secs_f64();

    let md = results_markdown(
        cfg, &machine, &datasets, &codecs, &not_built, &cells, elapsed,
    );
    let results_md = cfg.out.join("results.md");
    std::fs::write(&results_md, md).with_context(|| format!("writing {}", results_md.display()))?;
    let csv_path = cfg.out.join("results.csv");
    std::fs::write(&csv_path, report::csv(&cells))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    let detail_path = cfg.out.join("results-detail.csv");
    std::fs::write(&detail_path, report::detail_csv(&cells))
        .with_context(|| format!("writing {}", detail_path.display()))?;

    let n_failed = cells
        .iter()
        .filter(|m| matches!(m.status, Status::Failed(_)))
        .count();
    eprintln!(
        "melloc-bench: {} cells in {elapsed:.0} s, {n_failed} failed; wrote {}, {}, {}",
        cells.len(),
        results_md.display(),
        csv_path.display(),
        detail_path.display()
    );
    Ok(RunSummary {
        n_failed,
        n_cells: cells.len(),
        results_md,
    })
}

fn progress_line(m: &Measurement) -> String {
    let head = format!("{:<16} {:<36} {:<13}", m.dataset, m.file, m.codec);
    match &m.status {
        Status::Ok => {
            let r = m
                .comp_bytes
                .filter(|&b| b > 0)
                .map_or(0.0, |b| m.orig_bytes as f64 / b as f64);
            let mbs = |t: Option<f64>| t.map_or(0.0, |t| m.orig_bytes as f64 / 1e6 / t.max(1e-12));
            format!(
                "{head} ratio {r:7.3}  comp {:8.1} MB/s  decomp {:8.1} MB/s  (x{})",
                mbs(m.comp_s),
                mbs(m.decomp_s),
                m.n_timed
            )
        }
        Status::NotApplicable(r) => format!("{head} n/a: {r}"),
        Status::Failed(r) => format!("{head} FAILED: {r}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn results_markdown(
    cfg: &RunConfig,
    machine: &Machine,
    datasets: &[(PathBuf, Dataset)],
    codecs: &[Box<dyn Codec>],
    not_built: &[&str],
    cells: &[Measurement],
    elapsed_s: f64,
) -> String {
    let labels: Vec<(String, String)> = codecs
        .iter()
        .map(|c| (c.id().to_string(), c.label().to_string()))
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "# melloc benchmark results\n");
    let _ = writeln!(
        s,
        "Written by `melloc-bench` (`cargo xtask bench`), run started {} and took {:.0} s. \
         Every number below was measured in this run; none is typed in.{}\n",
        machine.started_utc,
        elapsed_s,
        if cfg.quick {
            " **Quick mode**: a small subset of files and at most one timed repeat, for smoke \
             testing only."
        } else {
            ""
        }
    );

    let _ = writeln!(s, "## Machine and settings\n");
    let _ = writeln!(
        s,
        "- CPU: {} ({} logical CPUs in /proc/cpuinfo, {} available to the process)",
        machine.cpu, machine.logical_cpus, machine.available
    );
    let _ = writeln!(s, "- OS: {}", machine.os);
    let _ = writeln!(
        s,
        "- compiler: {} ({} build)",
        machine.rustc, machine.profile
    );
    let _ = writeln!(
        s,
        "- threads: {} (`--threads`). It is passed to melloc (compress and decompress) and to \
         Blosc (internal threads); every other peer is run single-threaded as its library does \
         by default.",
        cfg.policy.threads
    );
    let mut timed_hist: BTreeMap<usize, usize> = BTreeMap::new();
    for m in cells.iter().filter(|m| m.status == Status::Ok) {
        *timed_hist.entry(m.n_timed).or_insert(0) += 1;
    }
    let hist: Vec<String> = timed_hist
        .iter()
        .rev()
        .map(|(n, c)| format!("{c} cells timed {n}x"))
        .collect();
    let _ = writeln!(
        s,
        "- timing: for each file and codec, one warm-up roundtrip (checked bit for bit, not \
         part of the result), then at most {} timed run(s) of compression and as many of \
         decompression (`--repeats`); each direction reports the **median** of its runs. When \
         the warm-up shows that the timed runs of a cell would take more than {} s \
         (`--cell-budget`), fewer are made, never fewer than 1: {}. `results-detail.csv` gives \
         the count for every cell.",
        cfg.policy.repeats,
        cfg.policy.cell_budget_s,
        if hist.is_empty() {
            "no cell was timed".to_string()
        } else {
            hist.join(", ")
        }
    );
    let dirs: Vec<String> = cfg
        .data
        .iter()
        .map(|d| format!("`{}`", d.display()))
        .collect();
    let _ = writeln!(s, "- data folders: {}", dirs.join(", "));
    let _ = writeln!(s);

    let _ = writeln!(s, "## Read this first\n");
    let _ = writeln!(
        s,
        "- **Noisy, shared machine.** These timings come from a shared virtual machine that \
         runs other jobs at the same time; they are medians of the repeats stated above, not \
         best-of runs. Compare codecs within this run; differences of a few tens of percent \
         between runs are expected."
    );
    let _ = writeln!(
        s,
        "- **Not the paper's setting.** The MeLLoC paper's ratios and speeds came from its own \
         data (SDRBench CESM-ATM and Hurricane Isabel) and its own hardware, which it does not \
         state (nor threads, nor whether ratios are totals or means). The datasets below are \
         real model fields grouped as stand-ins (see `crates/melloc-bench/datasets/`), so the \
         numbers are not comparable one to one with the paper's table."
    );
    let _ = writeln!(
        s,
        "- **Lossless means bit-exact.** Every decompression of every cell is compared bit for \
         bit with the input. A cell that errors, panics or differs in any bit is reported as \
         FAILED below and is never counted in a ratio or a speed. `n/a` marks a file a codec \
         cannot take (the reason is listed); nothing is substituted for it."
    );
    let _ = writeln!(
        s,
        "- **Columns.** ratio (total) = sum of original bytes / sum of compressed bytes; \
         ratio (mean) = arithmetic mean of per-file ratios; ratio (geo-mean) = geometric mean \
         of per-file ratios; compression / decompression MB/s = sum of original bytes / 10^6 \
         / sum of the per-file median times (so large files weigh more). `files ok` = files \
         behind the numbers out of files in the set; where it is below the total, that row \
         aggregates a different subset and is not directly comparable with full rows."
    );
    let _ = writeln!(
        s,
        "- **Metadata.** Decoders are given the dtype and shape (as a netCDF/HDF5 container \
         would hold them); streams that carry their own header (FPZIP, ZFP, xz, gzip, ...) pay \
         for it in the compressed size.\n"
    );

    let all_files: Vec<String> = datasets
        .iter()
        .flat_map(|(_, d)| d.files.iter().map(|f| f.name.clone()))
        .collect();
    for (dir, d) in datasets {
        let files: Vec<String> = d.files.iter().map(|f| f.name.clone()).collect();
        let ds_cells: Vec<Measurement> = cells
            .iter()
            .filter(|m| m.dataset == d.name)
            .cloned()
            .collect();
        let mb: f64 = d.files.iter().map(|f| f.n_bytes as f64).sum::<f64>() / 1e6;
        let _ = writeln!(s, "## Dataset `{}`\n", d.name);
        let _ = writeln!(
            s,
            "{} — {} files, {:.2} MB, from `{}`.\n",
            d.description,
            files.len(),
            mb,
            dir.display()
        );
        let _ = writeln!(s, "{}", report::table(&labels, &ds_cells, &files));
    }
    if datasets.len() > 1 {
        let _ = writeln!(s, "## All files together\n");
        let _ = writeln!(s, "{}", report::table(&labels, cells, &all_files));
    }

    let _ = writeln!(s, "## Codecs and settings\n");
    for c in codecs {
        let _ = writeln!(s, "- **{}** (`{}`): {}", c.label(), c.id(), c.settings());
    }
    if !not_built.is_empty() {
        let _ = writeln!(
            s,
            "\nSelected but **not built** into this binary (its cargo feature was off, or its \
             C library failed to build and `cargo xtask bench` dropped it): {}.",
            not_built.join(", ")
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Cells not in the numbers\n");
    let mut groups: BTreeMap<(String, &'static str, String), Vec<String>> = BTreeMap::new();
    for m in cells {
        let (kind, reason) = match &m.status {
            Status::Ok => continue,
            Status::NotApplicable(r) => ("n/a", r.clone()),
            Status::Failed(r) => ("FAILED", r.clone()),
        };
        groups
            .entry((m.codec.clone(), kind, reason))
            .or_default()
            .push(m.file.clone());
    }
    if groups.is_empty() {
        let _ = writeln!(s, "None: every cell was bit-exact and timed.\n");
    } else {
        for ((codec, kind, reason), files) in &groups {
            let shown: Vec<&str> = files.iter().take(6).map(String::as_str).collect();
            let more = if files.len() > shown.len() {
                format!(" and {} more", files.len() - shown.len())
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "- `{codec}` {kind} on {} file(s) ({}{more}): {reason}",
                files.len(),
                shown.join(", ")
            );
        }
        let _ = writeln!(s);
    }
    let overall: Vec<String> = labels
        .iter()
        .filter_map(|(id, _)| {
            let a = aggregate(cells.iter().filter(|m| &m.codec == id));
            (a.n_ok < a.n_files).then(|| format!("`{id}` {}", report::coverage(&a)))
        })
        .collect();
    if !overall.is_empty() {
        let _ = writeln!(
            s,
            "Codecs aggregated over fewer than all files: {}.\n",
            overall.join("; ")
        );
    }

    let _ = writeln!(s, "## Per-file ratios (original / compressed)\n");
    for (_, d) in datasets {
        let files: Vec<String> = d.files.iter().map(|f| f.name.clone()).collect();
        let ds_cells: Vec<Measurement> = cells
            .iter()
            .filter(|m| m.dataset == d.name)
            .cloned()
            .collect();
        let _ = writeln!(s, "### `{}`\n", d.name);
        let _ = writeln!(s, "{}", report::ratio_matrix(&labels, &ds_cells, &files));
    }
    let _ = writeln!(
        s,
        "Raw per-file numbers: `results.csv` (`dataset,file,codec,orig_bytes,comp_bytes,comp_s,\
         decomp_s,bit_exact`, times = medians in seconds) and `results-detail.csv` (status, \
         timed repeats, failure reasons)."
    );
    s
}
