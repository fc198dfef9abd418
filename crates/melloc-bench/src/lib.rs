//! # melloc-bench
//!
//! Dataset runs of melloc against peer lossless codecs. Every codec — melloc's routes and each
//! peer (ALP, FPZIP, ZFP reversible, Blosc, gzip, Zstandard, LZ4, xz, bzip2, pcodec) — is one
//! [`codec::Codec`] and goes through the same [`runner::measure`] loop: compress, decompress,
//! bit-exact check, medians of timed repeats after a warm-up.
//!
//! Not a library for users: `publish = false`, driven by `cargo xtask bench`. Each peer is
//! behind its own cargo feature so a failed C build drops one peer, not the bench.
//!
//! ```no_run
//! use melloc_bench::dataset::parse_raw_name;
//! let meta = parse_raw_name("TS_100_64_128.f32").unwrap();
//! assert_eq!(meta.dims, vec![100, 64, 128]);
//! ```

pub mod codec;
pub mod dataset;
pub mod machine;
pub mod peers;
pub mod report;
pub mod run;
pub mod runner;
