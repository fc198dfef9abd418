//! The public datasets `cargo xtask fetch-data` can download: URLs, expected sizes, checksums.
//!
//! This is the one place URLs and checksums live. SDRBench publishes no checksums for its
//! archives and none were known when this table was written, so `sha256` is `None` for both:
//! `fetch-data` then checks the size of every extracted field against its shape and writes the
//! archive's sha256 to `<dest>/SHA256SUMS.recorded` on first download. Paste a recorded hash
//! here to have later downloads verified. Never put a hash here that was not computed from a
//! download.

/// One downloadable dataset.
#[derive(Debug)]
pub struct Remote {
    /// Folder name under `--dest` (and dataset name in the bench tables).
    pub name: &'static str,
    /// Archive URL (SDRBench, <https://sdrbench.github.io/>).
    pub url: &'static str,
    /// sha256 of the archive, when known from an earlier download.
    pub sha256: Option<&'static str>,
    /// Shape of every field in the archive, slowest first (SDRBench naming).
    pub dims: &'static [u64],
    /// How extracted file names become the bench's `NAME_d0_d1[_d2].f32` names.
    pub naming: Naming,
    /// Number of fields expected at least.
    pub min_fields: usize,
}

/// How to find the fields in an extracted archive.
#[derive(Clone, Copy, Debug)]
pub enum Naming {
    /// `VAR_1_1800_3600.dat` (CESM-ATM): variable = text before the first `_`.
    CesmDat,
    /// `VARf48.bin.f32` (Hurricane Isabel): variable = text before `.bin.f32`.
    IsabelBinF32,
}

/// An SDRBench archive URL (Globus HTTPS endpoint of the Argonne data portal).
macro_rules! sdr {
    ($path:literal) => {
        concat!(
            "https://g-8d6b0.fd635.8443.data.globus.org/ds131.2/Data-Reduction-Repo/raw-data/",
            $path
        )
    };
}

/// The paper's two datasets.
pub const REMOTES: &[Remote] = &[
    Remote {
        name: "cesm-atm",
        // The "cleared" 1800x3600 set (SDRBench's recommended 2-D CESM-ATM files).
        url: sdr!("CESM-ATM/SDRBENCH-CESM-ATM-cleared-1800x3600.tar.gz"),
        sha256: None, // unknown: recorded on first download
        dims: &[1800, 3600],
        naming: Naming::CesmDat,
        min_fields: 10,
    },
    Remote {
        name: "hurricane-isabel",
        url: sdr!("Hurricane-ISABEL/SDRBENCH-Hurricane-ISABEL-100x500x500.tar.gz"),
        sha256: None, // unknown: recorded on first download
        dims: &[100, 500, 500],
        naming: Naming::IsabelBinF32,
        min_fields: 10,
    },
];

/// Host part of a URL (for "one attempt per host").
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The bench name for an extracted file, or `None` when the file is not a field.
pub fn bench_name(naming: Naming, file_name: &str, dims: &[u64]) -> Option<String> {
    let var = match naming {
        Naming::CesmDat => {
            let stem = file_name.strip_suffix(".dat")?;
            stem.split('_')
                .next()
                .filter(|v| !v.is_empty())?
                .to_string()
        }
        Naming::IsabelBinF32 => file_name
            .strip_suffix(".bin.f32")
            .filter(|v| !v.is_empty())?
            .to_string(),
    };
    // The bench's names use `_` only before the dimensions.
    let var = var.replace('_', "-");
    let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
    Some(format!("{var}_{}.f32", dims.join("_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_share_the_sdrbench_prefix() {
        for r in REMOTES {
            assert!(r.url.starts_with(sdr!("")), "{}", r.url);
            assert_eq!(host(r.url), "g-8d6b0.fd635.8443.data.globus.org");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            bench_name(Naming::CesmDat, "CLDHGH_1_1800_3600.dat", &[1800, 3600]).as_deref(),
            Some("CLDHGH_1800_3600.f32")
        );
        assert_eq!(
            bench_name(Naming::IsabelBinF32, "Uf48.bin.f32", &[100, 500, 500]).as_deref(),
            Some("Uf48_100_500_500.f32")
        );
        assert_eq!(bench_name(Naming::CesmDat, "README", &[1]), None);
    }
}
