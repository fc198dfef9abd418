//! # melloc (command-line tool)
//!
//! zstd-style front end to `melloc-format`: `compress`, `decompress` (`-d`), `info` (`-l`),
//! `test` (`-t`) and `demo`. This crate parses arguments, reads and writes files and prints;
//! it holds no codec logic.
//!
//! Exit status: 0 on success, 1 when any input failed, 2 on a usage error.
//!
//! ```text
//! melloc demo
//! melloc compress TS_100_64_128.f32        # -> TS_100_64_128.f32.mlc, shape from the name
//! melloc -d TS_100_64_128.f32.mlc -o ts.npy
//! melloc info TS_100_64_128.f32.mlc
//! ```
// Doc comments here are clap help texts (`NAME_d0_d1[_d2].f32` must print as is), not rustdoc.
#![allow(rustdoc::broken_intra_doc_links)]

mod cli;
mod cmd;
mod input;
mod output;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

/// Prints an error with its context chain: `melloc: error: decompressing x.mlc: ...`.
pub fn print_error(e: &anyhow::Error) {
    eprintln!("melloc: error: {e:#}");
}

fn main() -> ExitCode {
    melloc_format::process::keep_freed_memory();
    let cli = Cli::parse();
    let ui = Ui::new(&cli.global);
    let g = &cli.global;
    let result = match &cli.command {
        Command::Compress(a) => cmd::compress::run(a, g, &ui),
        Command::Decompress(a) => cmd::decompress::run(a, g, &ui),
        Command::Info(a) => cmd::info::run(a, &ui),
        Command::Test(a) => cmd::test::run(a, g, &ui),
        Command::Demo(a) => cmd::demo::run(a, g, &ui),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}
