//! Datasets: folders of raw `NAME_d0_d1[_d2].f32|.f64` files (or `.npy`), and the checked-in
//! grouping of the shared development data into paper-like sets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use melloc_core::DType;
use serde::Deserialize;

/// Element type, shape and name parsed from a raw file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawName {
    /// Variable name (everything before the first `_`).
    pub var: String,
    /// Shape, slowest dimension first.
    pub dims: Vec<u64>,
    /// Element type from the extension.
    pub dtype: DType,
}

/// Parses `NAME_d0_d1[_d2...].f32|.f64` (SDRBench style, slowest dimension first).
///
/// `NAME` may contain `-` but not `_`; every part after it must be a positive integer.
pub fn parse_raw_name(file_name: &str) -> Result<RawName> {
    let (stem, ext) = file_name
        .rsplit_once('.')
        .with_context(|| format!("`{file_name}` has no extension (expected .f32 or .f64)"))?;
    let dtype = match ext {
        "f32" => DType::F32,
        "f64" => DType::F64,
        other => bail!("`{file_name}`: extension `.{other}` is not .f32 or .f64"),
    };
    let mut parts = stem.split('_');
    let var = parts.next().unwrap_or_default();
    if var.is_empty() {
        bail!("`{file_name}`: empty variable name");
    }
    let dims = parts
        .map(|p| match p.parse::<u64>() {
            Ok(d) if d > 0 => Ok(d),
            _ => {
                bail!("`{file_name}`: `{p}` is not a positive dimension (expected NAME_d0_d1[_d2])")
            }
        })
        .collect::<Result<Vec<u64>>>()?;
    if dims.is_empty() || dims.len() > melloc_core::shape::MAX_DIMS {
        bail!(
            "`{file_name}`: expected 1 to {} dimensions after the name, got {}",
            melloc_core::shape::MAX_DIMS,
            dims.len()
        );
    }
    Ok(RawName {
        var: var.to_string(),
        dims,
        dtype,
    })
}

/// One field held in memory for a run.
#[derive(Clone, Debug)]
pub struct Field {
    /// File name (no folder).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, slowest first.
    pub dims: Vec<u64>,
    /// Little-endian bytes, C order.
    pub bytes: Vec<u8>,
}

impl Field {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.bytes.len() / self.dtype.n_bytes()
    }
    /// Values as f32 (only meaningful for `DType::F32`).
    pub fn to_f32(&self) -> Vec<f32> {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
    /// Values as f64 (only meaningful for `DType::F64`).
    pub fn to_f64(&self) -> Vec<f64> {
        self.bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }
}

/// A file of a dataset, not yet read.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Full path.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// Size on disk in bytes.
    pub n_bytes: u64,
}

impl FileEntry {
    /// Reads the file into memory, checking its size against the shape in the name.
    pub fn load(&self) -> Result<Field> {
        if self.name.ends_with(".npy") {
            return load_npy(&self.path, &self.name);
        }
        let meta = parse_raw_name(&self.name)?;
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let expected = meta
            .dims
            .iter()
            .try_fold(meta.dtype.n_bytes() as u64, |acc, &d| acc.checked_mul(d))
            .with_context(|| format!("{}: shape overflows", self.name))?;
        if bytes.len() as u64 != expected {
            bail!(
                "{}: {} bytes on disk but the name says {:?} x {} = {expected} bytes",
                self.path.display(),
                bytes.len(),
                meta.dims,
                meta.dtype.name()
            );
        }
        Ok(Field {
            name: self.name.clone(),
            dtype: meta.dtype,
            dims: meta.dims,
            bytes,
        })
    }
}

fn load_npy(path: &Path, name: &str) -> Result<Field> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = npyz::NpyFile::new(&raw[..]).with_context(|| format!("{name}: not a .npy file"))?;
    if npy.order() != npyz::Order::C {
        bail!("{name}: only C-order .npy files are supported");
    }
    let dims: Vec<u64> = npy.shape().to_vec();
    let type_str = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => bail!("{name}: unsupported .npy dtype {other:?}"),
    };
    let (dtype, bytes) = match type_str.as_str() {
        "<f4" => {
            let v: Vec<f32> = npy
                .into_vec()
                .with_context(|| format!("{name}: reading f32"))?;
            (DType::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        "<f8" => {
            let v: Vec<f64> = npy
                .into_vec()
                .with_context(|| format!("{name}: reading f64"))?;
            (DType::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        other => bail!("{name}: .npy dtype `{other}` is not <f4 or <f8"),
    };
    let dims = if dims.is_empty() { vec![1] } else { dims };
    if dims.len() > melloc_core::shape::MAX_DIMS || dims.contains(&0) {
        bail!("{name}: shape {dims:?} not supported (1 to 4 non-zero dimensions)");
    }
    Ok(Field {
        name: name.to_string(),
        dtype,
        dims,
        bytes,
    })
}

/// Lists the data files of a folder (`*.f32`, `*.f64`, `*.npy`), sorted by name.
pub fn list_folder(dir: &Path) -> Result<Vec<FileEntry>> {
    if !dir.is_dir() {
        bail!(
            "data folder {} does not exist (or is not a folder); pass --data DIR \
             (e.g. the shared development data, or run `cargo xtask fetch-data`)",
            dir.display()
        );
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_data = name.ends_with(".f32") || name.ends_with(".f64") || name.ends_with(".npy");
        if !is_data {
            continue;
        }
        // fs::metadata follows symlinks, so a folder of links to data files works.
        let md = std::fs::metadata(entry.path())
            .with_context(|| format!("stat {}", entry.path().display()))?;
        if !md.is_file() {
            continue;
        }
        if !name.ends_with(".npy") {
            parse_raw_name(&name)?;
        }
        out.push(FileEntry {
            path: entry.path(),
            name,
            n_bytes: md.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if out.is_empty() {
        bail!(
            "data folder {} holds no .f32/.f64/.npy files",
            dir.display()
        );
    }
    Ok(out)
}

/// A named set of files measured and aggregated together.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Name shown in the tables.
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// Files of the `--quick` subset (names).
    pub quick: Vec<String>,
}

/// The checked-in grouping file (`datasets/*.toml`).
#[derive(Clone, Debug, Deserialize)]
pub struct Grouping {
    /// The groups, in table order.
    #[serde(rename = "dataset")]
    pub datasets: Vec<GroupSpec>,
}

/// One group of a grouping file.
#[derive(Clone, Debug, Deserialize)]
pub struct GroupSpec {
    /// Dataset name.
    pub name: String,
    /// What it stands for.
    pub description: String,
    /// File names in the group.
    pub files: Vec<String>,
    /// File names of the `--quick` subset.
    #[serde(default)]
    pub quick: Vec<String>,
}

/// The grouping of the shared development data, compiled in.
pub const SHARED_DATA_GROUPING: &str = include_str!("../datasets/shared-data.toml");

impl Grouping {
    /// Parses a grouping file.
    pub fn parse(text: &str) -> Result<Self> {
        let g: Grouping = toml::from_str(text).context("parsing the dataset grouping")?;
        let mut seen = BTreeSet::new();
        for d in &g.datasets {
            for f in &d.files {
                if !seen.insert(f.as_str()) {
                    bail!("grouping lists `{f}` twice");
                }
            }
            for q in &d.quick {
                if !d.files.contains(q) {
                    bail!("grouping: quick file `{q}` is not in dataset `{}`", d.name);
                }
            }
        }
        Ok(g)
    }

    /// `true` when every file the grouping names is in `files`.
    pub fn matches(&self, files: &[FileEntry]) -> bool {
        let names: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
        self.datasets
            .iter()
            .flat_map(|d| d.files.iter())
            .all(|f| names.contains(f.as_str()))
    }

    /// Splits `files` into the groups; files the grouping does not name go to a last group
    /// `ungrouped` (reported, never dropped).
    pub fn split(&self, files: Vec<FileEntry>) -> Vec<Dataset> {
        let mut out: Vec<Dataset> = self
            .datasets
            .iter()
            .map(|g| Dataset {
                name: g.name.clone(),
                description: g.description.clone(),
                files: Vec::new(),
                quick: g.quick.clone(),
            })
            .collect();
        let mut rest = Vec::new();
        for f in files {
            match self.datasets.iter().position(|g| g.files.contains(&f.name)) {
                Some(i) => out[i].files.push(f),
                None => rest.push(f),
            }
        }
        if !rest.is_empty() {
            out.push(Dataset {
                name: "ungrouped".into(),
                description: "files in the folder that the grouping file does not name".into(),
                files: rest,
                quick: Vec::new(),
            });
        }
        out.retain(|d| !d.files.is_empty());
        out
    }
}

impl Dataset {
    /// A whole folder as one dataset, named after the folder.
    pub fn from_folder(dir: &Path, files: Vec<FileEntry>) -> Self {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self {
            description: format!("all files of {}", dir.display()),
            name,
            files,
            quick: Vec::new(),
        }
    }

    /// Restricts to the quick subset: the listed files, or else the three smallest.
    pub fn into_quick(mut self) -> Self {
        if self.quick.is_empty() {
            self.files.sort_by_key(|f| (f.n_bytes, f.name.clone()));
            self.files.truncate(3);
            self.files.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            let quick = self.quick.clone();
            self.files.retain(|f| quick.contains(&f.name));
        }
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let n = parse_raw_name("TS_100_64_128.f32").unwrap();
        assert_eq!(n.var, "TS");
        assert_eq!(n.dims, vec![100, 64, 128]);
        assert_eq!(n.dtype, DType::F32);

        let n = parse_raw_name("surface-pressure-mpas_1_163842.f64").unwrap();
        assert_eq!(n.var, "surface-pressure-mpas");
        assert_eq!(n.dims, vec![1, 163842]);
        assert_eq!(n.dtype, DType::F64);

        let n = parse_raw_name("PS_64_128.f32").unwrap();
        assert_eq!(n.dims, vec![64, 128]);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "TS.f32",
            "TS_100_64_128.f16",
            "TS_100_x_128.f32",
            "TS_0_64.f32",
            "TS_100_64_128",
            "_64_128.f32",
            "A_1_2_3_4_5.f32",
        ] {
            assert!(parse_raw_name(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn shared_grouping_is_valid() {
        let g = Grouping::parse(SHARED_DATA_GROUPING).unwrap();
        assert!(g.datasets.len() >= 3);
        for d in &g.datasets {
            for f in &d.files {
                parse_raw_name(f).unwrap();
            }
        }
    }
}
