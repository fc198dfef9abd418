//! melloc itself, through the public `melloc-format` API.

use anyhow::{bail, Context, Result};
use melloc_core::Shape;
use melloc_format::{CompressConfig, DecompressConfig, RouteSpec};

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// melloc with one route setting.
#[derive(Debug)]
pub struct Melloc {
    route: RouteSpec,
}

impl Melloc {
    /// The paper's route only (`RouteSpec::Paper`).
    pub fn paper() -> Self {
        Self {
            route: RouteSpec::Paper,
        }
    }
    /// The default (`RouteSpec::Auto`).
    pub fn auto() -> Self {
        Self {
            route: RouteSpec::Auto,
        }
    }
    fn config(&self, threads: usize) -> CompressConfig {
        // The bench checks every roundtrip itself, so melloc's own post-encode verification
        // (a full decode inside `compress`) is switched off to time the encoder alone.
        CompressConfig::default()
            .with_route(self.route)
            .with_threads(threads)
            .with_verify(false)
    }
}

impl Codec for Melloc {
    fn id(&self) -> &'static str {
        match self.route {
            RouteSpec::Paper => "melloc-paper",
            _ => "melloc",
        }
    }
    fn label(&self) -> &'static str {
        self.id()
    }
    fn settings(&self) -> String {
        let c = self.config(1);
        format!(
            "melloc-format {} (this workspace), route {:?}, back end {:?}, effort {}, chunk {} bytes, \
             internal verify off (the bench verifies)",
            env!("CARGO_PKG_VERSION"),
            c.route,
            c.backend,
            c.effort,
            c.chunk_bytes
        )
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let f = input.field;
        let shape = Shape::new(&f.dims).context("shape")?;
        Ok(melloc_format::compress_bytes(
            &f.bytes,
            f.dtype,
            &shape,
            &self.config(input.threads),
        )?)
    }
    fn decompress(&self, compressed: &[u8], field: &Field, threads: usize) -> Result<Output> {
        let d = melloc_format::decompress_bytes(
            compressed,
            &DecompressConfig::default().with_threads(threads),
        )?;
        if d.dtype != field.dtype || d.shape.dims() != field.dims.as_slice() {
            bail!(
                "decoded {} {} but the input was {} {:?}",
                d.dtype.name(),
                d.shape,
                field.dtype.name(),
                field.dims
            );
        }
        Ok(Output::Bytes(d.bytes))
    }
}
