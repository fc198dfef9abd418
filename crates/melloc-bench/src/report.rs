//! Aggregation of per-file measurements and the written reports (markdown, CSV).

use std::fmt::Write as _;

use crate::runner::{Measurement, Status};

/// One codec over one set of files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregate {
    /// Files in the set.
    pub n_files: usize,
    /// Files with a bit-exact, timed roundtrip (the only ones in the numbers below).
    pub n_ok: usize,
    /// Files the codec cannot take (dtype/shape).
    pub n_na: usize,
    /// Files where the codec failed (error, panic or not bit-exact).
    pub n_failed: usize,
    /// Original bytes of the ok files.
    pub orig_bytes: u64,
    /// Compressed bytes of the ok files.
    pub comp_bytes: u64,
    /// Total original / total compressed.
    pub ratio_total: Option<f64>,
    /// Arithmetic mean of per-file ratios.
    pub ratio_mean: Option<f64>,
    /// Geometric mean of per-file ratios.
    pub ratio_geomean: Option<f64>,
    /// Original MB (10^6 bytes) per second of summed median compression time.
    pub comp_mb_s: Option<f64>,
    /// Original MB (10^6 bytes) per second of summed median decompression time.
    pub decomp_mb_s: Option<f64>,
}

/// Aggregates the cells of one codec over a set of files.
pub fn aggregate<'a>(cells: impl IntoIterator<Item = &'a Measurement>) -> Aggregate {
    let mut a = Aggregate::default();
    let mut ratios = Vec::new();
    let (mut t_c, mut t_d) = (0.0f64, 0.0f64);
    for m in cells {
        a.n_files += 1;
        match &m.status {
            Status::NotApplicable(_) => a.n_na += 1,
            Status::Failed(_) => a.n_failed += 1,
            Status::Ok => {
                let (Some(cb), Some(cs), Some(ds)) = (m.comp_bytes, m.comp_s, m.decomp_s) else {
                    a.n_failed += 1;
                    continue;
                };
                a.n_ok += 1;
                a.orig_bytes += m.orig_bytes;
                a.comp_bytes += cb;
                t_c += cs;
                t_d += ds;
                if cb > 0 {
                    ratios.push(m.orig_bytes as f64 / cb as f64);
                }
            }
        }
    }
    if a.n_ok > 0 && a.comp_bytes > 0 {
        a.ratio_total = Some(a.orig_bytes as f64 / a.comp_bytes as f64);
    }
    if !ratios.is_empty() {
        let n = ratios.len() as f64;
        a.ratio_mean = Some(ratios.iter().sum::<f64>() / n);
        a.ratio_geomean = Some((ratios.iter().map(|r| r.ln()).sum::<f64>() / n).exp());
    }
    if t_c > 0.0 {
        a.comp_mb_s = Some(a.orig_bytes as f64 / 1e6 / t_c);
    }
    if t_d > 0.0 {
        a.decomp_mb_s = Some(a.orig_bytes as f64 / 1e6 / t_d);
    }
    a
}

fn f2(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

fn f1(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

/// "15/15", or "14/15 (1 n/a)", "13/15 (2 failed)".
pub fn coverage(a: &Aggregate) -> String {
    let mut s = format!("{}/{}", a.n_ok, a.n_files);
    let mut extra = Vec::new();
    if a.n_na > 0 {
        extra.push(format!("{} n/a", a.n_na));
    }
    if a.n_failed > 0 {
        extra.push(format!("{} FAILED", a.n_failed));
    }
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join(", "));
    }
    s
}

/// The paper-style table for one set of files: one row per (codec id, label).
pub fn table(codecs: &[(String, String)], cells: &[Measurement], files: &[String]) -> String {
    let mut s = String::new();
    s.push_str(
        "| method | ratio (total) | ratio (mean) | ratio (geo-mean) | compression MB/s | decompression MB/s | files ok |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for (id, label) in codecs {
        let a = aggregate(
            cells
                .iter()
                .filter(|m| &m.codec == id && files.contains(&m.file)),
        );
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            f2(a.ratio_total),
            f2(a.ratio_mean),
            f2(a.ratio_geomean),
            f1(a.comp_mb_s),
            f1(a.decomp_mb_s),
            coverage(&a)
        );
    }
    s
}

/// Per-file ratio matrix (files x codecs); "n/a" and "FAIL" where there is no ratio.
pub fn ratio_matrix(
    codecs: &[(String, String)],
    cells: &[Measurement],
    files: &[String],
) -> String {
    let mut s = String::from("| file | MB |");
    for (id, _) in codecs {
        let _ = write!(s, " {id} |");
    }
    s.push_str("\n|---|---:|");
    for _ in codecs {
        s.push_str("---:|");
    }
    s.push('\n');
    for f in files {
        let orig = cells
            .iter()
            .find(|m| &m.file == f)
            .map_or(0, |m| m.orig_bytes);
        let _ = write!(s, "| {f} | {:.2} |", orig as f64 / 1e6);
        for (id, _) in codecs {
            let cell = cells.iter().find(|m| &m.file == f && &m.codec == id);
            let txt = match cell {
                None => "-".to_string(),
                Some(m) => match (&m.status, m.comp_bytes) {
                    (Status::Ok, Some(cb)) if cb > 0 => {
                        format!("{:.2}", m.orig_bytes as f64 / cb as f64)
                    }
                    (Status::NotApplicable(_), _) => "n/a".into(),
                    _ => "FAIL".into(),
                },
            };
            let _ = write!(s, " {txt} |");
        }
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The per-file CSV: `dataset,file,codec,orig_bytes,comp_bytes,comp_s,decomp_s,bit_exact`.
/// Times are the medians in seconds; `bit_exact` is `true`, `false` (failed in any way) or `n/a`.
pub fn csv(cells: &[Measurement]) -> String {
    let mut s =
        String::from("dataset,file,codec,orig_bytes,comp_bytes,comp_s,decomp_s,bit_exact\n");
    for m in cells {
        let ok = matches!(m.status, Status::Ok);
        let bit_exact = match m.status {
            Status::Ok => "true",
            Status::NotApplicable(_) => "n/a",
            Status::Failed(_) => "false",
        };
        let opt = |v: Option<f64>| {
            v.filter(|_| ok)
                .map_or_else(String::new, |x| format!("{x:.6e}"))
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            csv_field(&m.dataset),
            csv_field(&m.file),
            csv_field(&m.codec),
            m.orig_bytes,
            m.comp_bytes.map_or_else(String::new, |b| b.to_string()),
            opt(m.comp_s),
            opt(m.decomp_s),
            bit_exact
        );
    }
    s
}

/// Detail CSV: status text and the number of timed repeats behind each median.
pub fn detail_csv(cells: &[Measurement]) -> String {
    let mut s = String::from("dataset,file,codec,status,n_timed,note\n");
    for m in cells {
        let (status, note) = match &m.status {
            Status::Ok => ("ok", String::new()),
            Status::NotApplicable(r) => ("n/a", r.clone()),
            Status::Failed(r) => ("failed", r.clone()),
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            csv_field(&m.dataset),
            csv_field(&m.file),
            csv_field(&m.codec),
            status,
            m.n_timed,
            csv_field(&note)
        );
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cell(file: &str, orig: u64, comp: u64, cs: f64, ds: f64) -> Measurement {
        Measurement {
            dataset: "d".into(),
            file: file.into(),
            codec: "c".into(),
            orig_bytes: orig,
            comp_bytes: Some(comp),
            comp_s: Some(cs),
            decomp_s: Some(ds),
            n_timed: 3,
            status: Status::Ok,
        }
    }

    #[test]
    fn aggregation_math() {
        // File a: 1000 -> 100 (10x), file b: 3000 -> 1500 (2x).
        let cells = vec![
            cell("a", 1_000_000, 100_000, 0.5, 0.25),
            cell("b", 3_000_000, 1_500_000, 1.5, 0.75),
        ];
        let a = aggregate(&cells);
        assert_eq!((a.n_files, a.n_ok, a.n_na, a.n_failed), (2, 2, 0, 0));
        // Total: 4e6 / 1.6e6 = 2.5; mean of ratios (10 + 2) / 2 = 6; geo-mean sqrt(20).
        assert!((a.ratio_total.unwrap() - 2.5).abs() < 1e-12);
        assert!((a.ratio_mean.unwrap() - 6.0).abs() < 1e-12);
        assert!((a.ratio_geomean.unwrap() - 20f64.sqrt()).abs() < 1e-12);
        // 4 MB in 2 s of compression, 1 s of decompression.
        assert!((a.comp_mb_s.unwrap() - 2.0).abs() < 1e-12);
        assert!((a.decomp_mb_s.unwrap() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn failed_and_na_cells_are_not_counted() {
        let mut bad = cell("c", 5_000_000, 1, 1.0, 1.0);
        bad.status = Status::Failed("roundtrip is not bit-exact".into());
        let mut na = cell("d", 7_000_000, 0, 0.0, 0.0);
        na.status = Status::NotApplicable("f64 only".into());
        na.comp_bytes = None;
        let cells = vec![cell("a", 1_000_000, 500_000, 1.0, 1.0), bad, na];
        let a = aggregate(&cells);
        assert_eq!((a.n_files, a.n_ok, a.n_na, a.n_failed), (3, 1, 1, 1));
        assert_eq!(a.ratio_total, Some(2.0));
        assert_eq!(coverage(&a), "1/3 (1 n/a, 1 FAILED)");
        let text = csv(&cells);
        assert!(text.contains("d,c,c,5000000,1,,,false"));
        assert!(text.contains("d,d,c,7000000,,,,n/a"));
    }

    #[test]
    fn empty_aggregate_has_no_numbers() {
        let a = aggregate(&[]);
        assert_eq!(a.ratio_total, None);
        assert_eq!(a.comp_mb_s, None);
    }
}
