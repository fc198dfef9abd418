//! Encoder and decoder configuration.

use std::str::FromStr;

/// Which route encodes the chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteSpec {
    /// Per chunk, the smallest of the candidate routes (the default).
    #[default]
    Auto,
    /// Values stored as bytes, compressed by the back end only.
    Raw,
    /// The paper's FFT route only.
    Paper,
    /// The causal learned-predictor route only.
    Causal,
}

impl FromStr for RouteSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "default" => Ok(Self::Auto),
            "raw" => Ok(Self::Raw),
            "paper" => Ok(Self::Paper),
            "causal" => Ok(Self::Causal),
            other => Err(format!(
                "unknown route `{other}` (expected auto, causal, paper or raw)"
            )),
        }
    }
}

/// Byte back end applied to each section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// zstd at the given level (1..=22).
    Zstd(i32),
    /// lz4 (block format, lz4_flex).
    Lz4,
    /// No back end: sections stored as produced.
    None,
}

impl Default for BackendSpec {
    fn default() -> Self {
        Self::Zstd(9)
    }
}

impl FromStr for BackendSpec {
    type Err = String;
    /// `zstd`, `zstd:19`, `lz4`, `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s.as_str(), None),
        };
        match (name, param) {
            ("zstd", None) => Ok(Self::default()),
            ("zstd", Some(p)) => match p.parse::<i32>() {
                Ok(l) if (1..=22).contains(&l) => Ok(Self::Zstd(l)),
                _ => Err(format!("zstd level must be 1..=22, got `{p}`")),
            },
            ("lz4", None) => Ok(Self::Lz4),
            ("none", None) => Ok(Self::None),
            _ => Err(format!(
                "unknown back end `{s}` (expected zstd, zstd:LEVEL, lz4 or none)"
            )),
        }
    }
}

/// Named presets (`fast`, `default`, `max`) over route effort and back end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preset {
    /// Fastest: low effort, zstd level 3.
    Fast,
    /// Balanced.
    #[default]
    Default,
    /// Smallest output, slowest.
    Max,
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fast" => Ok(Self::Fast),
            "default" => Ok(Self::Default),
            "max" => Ok(Self::Max),
            other => Err(format!(
                "unknown preset `{other}` (expected fast, default or max)"
            )),
        }
    }
}

/// Encoder configuration (pcodec `ChunkConfig` style: public fields, `Default`, `with_*`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CompressConfig {
    /// Route selection; `Auto` picks the smallest per chunk.
    pub route: RouteSpec,
    /// Back end for every section.
    pub backend: BackendSpec,
    /// Route effort, 0..=9.
    pub effort: u8,
    /// Worker threads over chunks; 0 means one per available core.
    pub threads: usize,
    /// Target uncompressed bytes per chunk (chunks hold whole slices, or row bands of one slice).
    pub chunk_bytes: usize,
    /// Decode every chunk after encoding it and compare bits (on by default).
    pub verify: bool,
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            route: RouteSpec::Auto,
            backend: BackendSpec::default(),
            effort: 5,
            threads: 0,
            chunk_bytes: 4 << 20,
            verify: true,
        }
    }
}

impl CompressConfig {
    /// Sets the route.
    pub fn with_route(mut self, route: RouteSpec) -> Self {
        self.route = route;
        self
    }
    /// Sets the back end.
    pub fn with_backend(mut self, backend: BackendSpec) -> Self {
        self.backend = backend;
        self
    }
    /// Sets the effort (clamped to 0..=9).
    pub fn with_effort(mut self, effort: u8) -> Self {
        self.effort = effort.min(9);
        self
    }
    /// Sets the thread count (0 = all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Sets the target chunk size in bytes.
    pub fn with_chunk_bytes(mut self, chunk_bytes: usize) -> Self {
        self.chunk_bytes = chunk_bytes.max(1);
        self
    }
    /// Enables or disables the post-encode verification.
    pub fn with_verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }
    /// Applies a named preset (effort and back end).
    pub fn with_preset(mut self, preset: Preset) -> Self {
        match preset {
            Preset::Fast => {
                self.effort = 1;
                self.backend = BackendSpec::Zstd(3);
            }
            Preset::Default => {
                self.effort = 5;
                self.backend = BackendSpec::Zstd(9);
            }
            Preset::Max => {
                self.effort = 9;
                self.backend = BackendSpec::Zstd(19);
            }
        }
        self
    }
}

/// Decoder configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DecompressConfig {
    /// Worker threads over chunks; 0 means one per available core.
    pub threads: usize,
    /// Largest decoded size accepted, in bytes (a guard against decompression bombs).
    pub memory_limit: u64,
}

impl Default for DecompressConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            memory_limit: 64 << 30,
        }
    }
}

impl DecompressConfig {
    /// Sets the thread count (0 = all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Sets the memory limit in bytes.
    pub fn with_memory_limit(mut self, limit: u64) -> Self {
        self.memory_limit = limit;
        self
    }
}
