//! The one `Codec` trait that melloc and every peer implement, and the registry of codecs
//! compiled into this build.

use anyhow::Result;
use melloc_core::DType;

use crate::dataset::Field;

/// What a codec is given: the field as bytes and (pre-converted, outside the timed region) as
/// typed values, so that no codec pays for a representation it does not use.
#[derive(Debug)]
pub struct Input<'a> {
    /// The field (bytes, dtype, shape).
    pub field: &'a Field,
    /// The values as f32 when `field.dtype` is F32.
    pub f32s: Option<&'a [f32]>,
    /// The values as f64 when `field.dtype` is F64.
    pub f64s: Option<&'a [f64]>,
    /// Threads the codec may use (`--threads`); peers without a thread knob ignore it.
    pub threads: usize,
}

/// What a decoder returns: bytes or typed values. The bit-exact check converts outside the
/// timed region.
#[derive(Debug)]
pub enum Output {
    /// Little-endian bytes.
    Bytes(Vec<u8>),
    /// f32 values.
    F32(Vec<f32>),
    /// f64 values.
    F64(Vec<f64>),
}

impl Output {
    /// `true` when the output is bit-for-bit the original bytes.
    pub fn bit_exact(&self, original: &[u8]) -> bool {
        match self {
            Output::Bytes(b) => b.as_slice() == original,
            Output::F32(v) => {
                v.len() * 4 == original.len()
                    && v.iter()
                        .zip(original.chunks_exact(4))
                        .all(|(x, c)| x.to_bits() == u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            }
            Output::F64(v) => {
                v.len() * 8 == original.len()
                    && v.iter().zip(original.chunks_exact(8)).all(|(x, c)| {
                        x.to_bits()
                            == u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                    })
            }
        }
    }
}

/// A lossless codec measured by the bench.
///
/// `decompress` gets the field's dtype and shape (the metadata a container such as netCDF/HDF5
/// would hold); codecs whose stream carries its own header still pay for it in `comp_bytes`.
pub trait Codec {
    /// Short id used by `--codecs` (e.g. `zstd-19`).
    fn id(&self) -> &'static str;
    /// Name shown in the tables (e.g. `Zstandard -19`).
    fn label(&self) -> &'static str;
    /// Library and settings, for the notes under the tables.
    fn settings(&self) -> String;
    /// `None` when the codec can encode `dtype`/`dims`, or the reason it cannot (row is "n/a").
    fn unsupported(&self, dtype: DType, dims: &[u64]) -> Option<String> {
        let _ = (dtype, dims);
        None
    }
    /// Compresses one field.
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>>;
    /// Decompresses what `compress` produced for `field`.
    fn decompress(&self, compressed: &[u8], field: &Field, threads: usize) -> Result<Output>;
}

/// Every codec compiled into this build, in table order.
pub fn all_codecs() -> Vec<Box<dyn Codec>> {
    let mut v: Vec<Box<dyn Codec>> = vec![
        Box::new(crate::peers::melloc::Melloc::paper()),
        Box::new(crate::peers::melloc::Melloc::auto()),
    ];
    #[cfg(feature = "alp")]
    v.push(Box::new(crate::peers::alp::Alp));
    #[cfg(feature = "fpzip")]
    v.push(Box::new(crate::peers::fpzip::Fpzip));
    #[cfg(feature = "zfp")]
    v.push(Box::new(crate::peers::zfp::ZfpReversible));
    #[cfg(feature = "blosc")]
    {
        v.push(Box::new(crate::peers::blosc::Blosc::zstd()));
        v.push(Box::new(crate::peers::blosc::Blosc::lz4()));
    }
    #[cfg(feature = "gzip")]
    v.push(Box::new(crate::peers::general::Gzip));
    #[cfg(feature = "zstd")]
    {
        v.push(Box::new(crate::peers::general::Zstd(3)));
        v.push(Box::new(crate::peers::general::Zstd(19)));
    }
    #[cfg(feature = "lz4")]
    v.push(Box::new(crate::peers::general::Lz4));
    #[cfg(feature = "xz")]
    v.push(Box::new(crate::peers::general::Xz));
    #[cfg(feature = "bzip2")]
    v.push(Box::new(crate::peers::general::Bzip2));
    #[cfg(feature = "pco")]
    {
        v.push(Box::new(crate::peers::pcodec::Pcodec::default_level()));
        v.push(Box::new(crate::peers::pcodec::Pcodec::max_level()));
    }
    v
}

/// Every codec id the bench knows, compiled in or not (for `--codecs` and "not built" notes).
pub const KNOWN_IDS: &[&str] = &[
    "melloc-paper",
    "melloc",
    "alp",
    "fpzip",
    "zfp",
    "blosc-zstd",
    "blosc-lz4",
    "gzip",
    "zstd-3",
    "zstd-19",
    "lz4",
    "xz",
    "bzip2",
    "pco",
    "pco-max",
];

/// `true` when the `--codecs` item `pattern` selects codec `id`: an exact id, a family prefix
/// (`zstd` selects `zstd-3` and `zstd-19`; `blosc` both Blosc rows; `melloc` only `melloc`,
/// `melloc-paper` by its own name) or `all`.
pub fn selects(pattern: &str, id: &str) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    p == "all"
        || p == id
        || (p != "melloc" && id.starts_with(&p) && id.as_bytes().get(p.len()) == Some(&b'-'))
}

/// Resolves a `--codecs` list to ids; unknown names are an error.
pub fn resolve_selection(list: &str) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let hits: Vec<&'static str> = KNOWN_IDS
            .iter()
            .copied()
            .filter(|id| selects(item, id))
            .collect();
        if hits.is_empty() {
            anyhow::bail!(
                "unknown codec `{item}` in --codecs (known: all, {}, or a family such as zstd, blosc, pco)",
                KNOWN_IDS.join(", ")
            );
        }
        for h in hits {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    // Table order, whatever the order on the command line.
    out.sort_by_key(|id| KNOWN_IDS.iter().position(|k| k == id));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_family() {
        assert!(selects("zstd", "zstd-19"));
        assert!(selects("blosc", "blosc-lz4"));
        assert!(selects("melloc", "melloc"));
        assert!(!selects("melloc", "melloc-paper"));
        assert!(!selects("lz4", "blosc-lz4"));
        assert!(selects("all", "xz"));
        let ids = resolve_selection("zstd, melloc-paper,pco").unwrap();
        assert_eq!(
            ids,
            vec!["melloc-paper", "zstd-3", "zstd-19", "pco", "pco-max"]
        );
        assert!(resolve_selection("nope").is_err());
    }

    #[test]
    fn every_built_codec_is_known() {
        for c in all_codecs() {
            assert!(KNOWN_IDS.contains(&c.id()), "{}", c.id());
        }
    }

    #[test]
    fn output_bit_exact_compares_bits() {
        let nan_a = f32::from_bits(0x7fc0_0001);
        let orig: Vec<u8> = [nan_a, -0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(Output::F32(vec![nan_a, -0.0]).bit_exact(&orig));
        assert!(!Output::F32(vec![f32::NAN, -0.0]).bit_exact(&orig));
        assert!(!Output::F32(vec![nan_a, 0.0]).bit_exact(&orig));
        assert!(!Output::Bytes(orig[..4].to_vec()).bit_exact(&orig));
    }
}
