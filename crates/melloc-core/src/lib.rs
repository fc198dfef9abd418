//! # melloc-core
//!
//! The pure, deterministic math of melloc: shapes and the stack-of-slices view, the sealed
//! [`Float`] trait with the ordered-bits mapping, mechanism (3x3 stencil) learning, exact
//! integerisation of floats (grid detection, exceptions), quantisers and causal predictors.
//!
//! It does no I/O, no FFT (see `melloc-solver`) and no byte coding (see `melloc-format`).
//!
//! ```
//! use melloc_core::{Float, Shape};
//! let shape: Shape = "100x500x500".parse().unwrap();
//! assert_eq!(shape.slices().n_slices, 100);
//! let x = -0.0f32;
//! assert_eq!(f32::from_ordered(x.to_ordered()).to_bits(), x.to_bits());
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod float;
pub mod integer;
pub mod predict;
pub mod quantize;
pub mod shape;
pub mod stencil;

pub use error::CoreError;
pub use float::{DType, Float};
pub use quantize::UniformQuantizer;
pub use shape::{BlockDims, Shape, SliceLayout};
pub use stencil::{learn_stencil, Pde, PdeClass, Stencil};
