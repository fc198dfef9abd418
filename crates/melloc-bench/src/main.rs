//! `melloc-bench`: runs melloc and the peer codecs over dataset folders and writes
//! `results.md`, `results.csv` and `results-detail.csv`. Usually started by `cargo xtask bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use melloc_bench::codec::{all_codecs, KNOWN_IDS};
use melloc_bench::run::{run, GroupingChoice, RunConfig};
use melloc_bench::runner::TimingPolicy;

/// Benchmark melloc against peer lossless codecs on folders of raw float files.
#[derive(Debug, Parser)]
#[command(name = "melloc-bench", version)]
struct Args {
    /// Dataset folder of `NAME_d0_d1[_d2].f32|.f64` or `.npy` files (repeatable).
    #[arg(long = "data", value_name = "DIR", default_value = "../shared/data")]
    data: Vec<PathBuf>,
    /// Comma-separated codec ids or families (e.g. `melloc,melloc-paper,zstd,blosc`); default all.
    #[arg(long, value_name = "LIST")]
    codecs: Option<String>,
    /// Output folder for results.md and the CSVs.
    #[arg(long, value_name = "DIR", default_value = "target/bench-results")]
    out: PathBuf,
    /// Threads for codecs that take a thread count (melloc, Blosc).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed repeats per direction after the warm-up (median reported).
    #[arg(long)]
    repeats: Option<usize>,
    /// Seconds the timed repeats of one (file, codec) cell may take; fewer repeats (at least 1)
    /// are run when the warm-up says more would not fit.
    #[arg(long, value_name = "SECS")]
    cell_budget: Option<f64>,
    /// A small subset (a few small files per dataset, one timed repeat): a smoke run.
    #[arg(long)]
    quick: bool,
    /// Grouping of a folder into datasets: `auto` (the checked-in grouping of the shared data
    /// when the folder holds all its files, else one dataset per folder), `none`, or a TOML file.
    #[arg(long, value_name = "auto|none|FILE", default_value = "auto")]
    grouping: String,
    /// Exit non-zero when any cell failed.
    #[arg(long)]
    strict: bool,
    /// List the codecs built into this binary and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    // The allocator settings of the `melloc` binary, for every codec of the run alike.
    melloc_format::process::keep_freed_memory();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("melloc-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let args = Args::parse();
    if args.list {
        let built = all_codecs();
        for c in &built {
            println!("{:<13} {:<20} {}", c.id(), c.label(), c.settings());
        }
        for id in KNOWN_IDS {
            if !built.iter().any(|c| c.id() == *id) {
                println!("{id:<13} (not built: feature off)");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let policy = TimingPolicy {
        repeats: args
            .repeats
            .unwrap_or(if args.quick { 1 } else { 3 })
            .max(1),
        cell_budget_s: args
            .cell_budget
            .unwrap_or(if args.quick { 1.0 } else { 4.0 })
            .max(0.0),
        threads: args.threads,
    };
    let grouping = match args.grouping.as_str() {
        "auto" => GroupingChoice::Auto,
        "none" => GroupingChoice::None,
        path => GroupingChoice::File(PathBuf::from(path)),
    };
    let cfg = RunConfig {
        data: args.data,
        codecs: args.codecs,
        out: args.out,
        policy,
        quick: args.quick,
        grouping,
    };
    let summary = run(&cfg)?;
    if summary.n_failed > 0 {
        eprintln!(
            "melloc-bench: WARNING: {} of {} cells FAILED (listed in {})",
            summary.n_failed,
            summary.n_cells,
            summary.results_md.display()
        );
        if args.strict {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
