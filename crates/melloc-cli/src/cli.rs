//! Command-line arguments (clap derive). Parsing only: no I/O here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use melloc_format::{BackendSpec, DType, Preset, RouteSpec, Shape};

/// Lossless compressor for scientific float fields (f32/f64 arrays, 1-D to 4-D, C order).
#[derive(Debug, Parser)]
#[command(
    name = "melloc",
    version,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "\
Shapes are C order, slowest dimension first (100x500x500 = 100 slices of 500x500).
Raw files named NAME_d0_d1[_d2].f32|.f64 (SDRBench style) need no --dtype/--shape.

Examples:
  melloc demo                                    generate a field, compress with each route, verify
  melloc compress TS_100_64_128.f32              -> TS_100_64_128.f32.mlc (f32 100x64x128 from the name)
  melloc compress --dtype f64 --shape 50x100x100 data.bin -o data.mlc
  melloc compress --route paper --preset max field.npy
  melloc -d TS_100_64_128.f32.mlc                -> TS_100_64_128.f32 (raw bytes; input kept)
  melloc -d data.mlc -o data.npy                 .npy with dtype and shape in its header
  melloc -t *.mlc                                verify every checksum, write nothing
  melloc info --json data.mlc"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print less (repeat to silence warnings too; errors are always printed)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub quiet: u8,
    /// Print more (per-file details, chosen routes, timings)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// Worker threads over chunks (0 = one per core)
    #[arg(
        short = 'T',
        long = "threads",
        value_name = "N",
        global = true,
        default_value_t = 0,
        help_heading = "Global options"
    )]
    pub threads: usize,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress raw (.f32/.f64) or .npy files to .mlc
    #[command(short_flag = 'z')]
    Compress(CompressArgs),
    /// Decompress .mlc files (raw bytes, or .npy with --npy)
    #[command(short_flag = 'd')]
    Decompress(DecompressArgs),
    /// Show header, dtype, shape, routes, learned PDEs and section sizes
    #[command(short_flag = 'l')]
    Info(InfoArgs),
    /// Decompress and verify every checksum without writing anything
    #[command(short_flag = 't')]
    Test(TestArgs),
    /// Generate a synthetic field, compress it with each route, verify and time it
    Demo(DemoArgs),
}

/// Where and how output is written (shared by compress and decompress).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write to FILE (only with a single input; `-` is stdout)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write to standard output
    #[arg(short = 'c', long = "stdout", conflicts_with = "output")]
    pub stdout: bool,
    /// Overwrite existing output files (and allow binary output to a terminal)
    #[arg(short, long)]
    pub force: bool,
    /// Remove each input file after it was processed successfully
    #[arg(long)]
    pub rm: bool,
}

/// `melloc compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    /// Input files (`-` = standard input). X is written to X.mlc
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Element type of raw input (default: from the .f32/.f64 file name)
    #[arg(long, value_name = "f32|f64")]
    pub dtype: Option<DType>,
    /// Shape of raw input, slowest first, e.g. 100x500x500 (default: from NAME_d0_d1[_d2].f32)
    #[arg(long, value_name = "D0xD1..")]
    pub shape: Option<Shape>,
    /// Route: auto (smallest per chunk), causal, paper (the published FFT route) or raw
    #[arg(long, value_name = "ROUTE", default_value = "auto")]
    pub route: RouteSpec,
    /// Named preset: fast, default or max (sets effort and back end)
    #[arg(long, value_name = "PRESET", default_value = "default")]
    pub preset: Preset,
    /// Byte back end: zstd, zstd:LEVEL (1..=22), lz4 or none (overrides the preset's)
    #[arg(long, value_name = "BACKEND")]
    pub backend: Option<BackendSpec>,
    /// Target chunk size in MiB (chunks hold whole slices, or row bands of one slice)
    #[arg(long, value_name = "MIB")]
    pub chunk_mb: Option<f64>,
    /// Skip the decode-and-compare check the encoder runs on every chunk
    #[arg(long)]
    pub no_verify: bool,
}

/// `melloc decompress`.
#[derive(Debug, Args)]
pub struct DecompressArgs {
    /// Input files (`-` = standard input). X.mlc is written to X
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Write .npy (header with dtype and shape) instead of raw bytes; implied by -o X.npy
    #[arg(long)]
    pub npy: bool,
    /// Refuse files that decode to more than this many MiB (guard against decompression bombs)
    #[arg(long, value_name = "MIB")]
    pub memory_limit_mb: Option<u64>,
}

/// `melloc info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// .mlc files (`-` = standard input)
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print machine-readable JSON (one object per file; an array for several files)
    #[arg(long)]
    pub json: bool,
    /// List every slice (stencil, PDE, f step) instead of a summary per chunk
    #[arg(long)]
    pub slices: bool,
}

/// `melloc test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// .mlc files (`-` = standard input)
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// `melloc demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Shape of the generated field, slowest first (2-D or 3-D)
    #[arg(long, value_name = "D0xD1..", default_value = "24x256x256")]
    pub shape: Shape,
    /// Element type of the generated field
    #[arg(long, value_name = "f32|f64", default_value = "f32")]
    pub dtype: DType,
    /// Seed of the deterministic generator
    #[arg(long, default_value_t = 2024)]
    pub seed: u64,
    /// Also save the generated field as DIR/demo_D0_D1[_D2].f32 (to try the other commands)
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}
