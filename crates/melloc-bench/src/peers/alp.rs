//! ALP (adaptive lossless floating-point compression, SIGMOD 2024) through the pure-Rust
//! `fastalp` crate, which takes f32 and f64 streams.

use anyhow::{anyhow, bail, Result};

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;
use melloc_core::DType;

/// ALP on the flattened field (ALP is a 1-D scheme: it sees the C-order value stream).
#[derive(Debug)]
pub struct Alp;

impl Codec for Alp {
    fn id(&self) -> &'static str {
        "alp"
    }
    fn label(&self) -> &'static str {
        "ALP"
    }
    fn settings(&self) -> String {
        "fastalp 0.1 (pure Rust ALP), `compress`/`decompress` on the C-order value stream".into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        match (input.f32s, input.f64s) {
            (Some(v), _) => Ok(fastalp::compress(v)),
            (_, Some(v)) => Ok(fastalp::compress(v)),
            _ => bail!("no typed values"),
        }
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        match field.dtype {
            DType::F32 => Ok(Output::F32(
                fastalp::decompress::<f32>(compressed).map_err(|e| anyhow!("fastalp: {e:?}"))?,
            )),
            DType::F64 => Ok(Output::F64(
                fastalp::decompress::<f64>(compressed).map_err(|e| anyhow!("fastalp: {e:?}"))?,
            )),
        }
    }
}
