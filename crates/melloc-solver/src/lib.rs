//! # melloc-solver
//!
//! Periodic-extension FFT inversion of a learned 3x3 stencil.
#![forbid(unsafe_code)]
