//! pcodec (`pco`), the standalone format, at its default and its maximum compression level.

use anyhow::{bail, Context, Result};
use melloc_core::DType;

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// pco's highest level (`pco::constants::MAX_COMPRESSION_LEVEL`, not re-exported by pco 1.1).
const PCO_MAX_LEVEL: usize = 12;

/// pcodec at one compression level.
#[derive(Debug)]
pub struct Pcodec {
    level: usize,
}

impl Pcodec {
    /// `pco::DEFAULT_COMPRESSION_LEVEL`.
    pub fn default_level() -> Self {
        Self {
            level: pco::DEFAULT_COMPRESSION_LEVEL,
        }
    }
    /// pco's maximum level, 12.
    pub fn max_level() -> Self {
        Self {
            level: PCO_MAX_LEVEL,
        }
    }
    fn config(&self) -> pco::ChunkConfig {
        pco::ChunkConfig::default().with_compression_level(self.level)
    }
}

impl Codec for Pcodec {
    fn id(&self) -> &'static str {
        if self.level == PCO_MAX_LEVEL {
            "pco-max"
        } else {
            "pco"
        }
    }
    fn label(&self) -> &'static str {
        if self.level == PCO_MAX_LEVEL {
            "pcodec (max level)"
        } else {
            "pcodec"
        }
    }
    fn settings(&self) -> String {
        format!(
            "pco 1.x standalone `simple_compress`, compression level {} (default {}, max {}), \
             other settings default (automatic mode and delta detection)",
            self.level,
            pco::DEFAULT_COMPRESSION_LEVEL,
            PCO_MAX_LEVEL
        )
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        match (input.f32s, input.f64s) {
            (Some(v), _) => pco::standalone::simple_compress(v, &self.config()).context("pco"),
            (_, Some(v)) => pco::standalone::simple_compress(v, &self.config()).context("pco"),
            _ => bail!("no typed values"),
        }
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        Ok(match field.dtype {
            DType::F32 => {
                Output::F32(pco::standalone::simple_decompress::<f32>(compressed).context("unpco")?)
            }
            DType::F64 => {
                Output::F64(pco::standalone::simple_decompress::<f64>(compressed).context("unpco")?)
            }
        })
    }
}
