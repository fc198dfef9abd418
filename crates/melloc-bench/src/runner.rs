//! The one measuring loop every codec goes through: compress, decompress, check bits, time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anyhow::Result;
use melloc_core::DType;

use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// How a (file, codec) cell ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Bit-exact roundtrip, timed.
    Ok,
    /// The codec cannot take this dtype/shape; nothing was run.
    NotApplicable(String),
    /// Error, panic or a roundtrip that was not bit-exact. Never counted in the aggregates.
    Failed(String),
}

/// One (dataset, file, codec) cell.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Dataset name.
    pub dataset: String,
    /// File name.
    pub file: String,
    /// Codec id.
    pub codec: String,
    /// Original bytes.
    pub orig_bytes: u64,
    /// Compressed bytes (when compression succeeded).
    pub comp_bytes: Option<u64>,
    /// Median compression time in seconds (status Ok only).
    pub comp_s: Option<f64>,
    /// Median decompression time in seconds (status Ok only).
    pub decomp_s: Option<f64>,
    /// Timed repeats behind the medians (after one warm-up).
    pub n_timed: usize,
    /// Outcome.
    pub status: Status,
}

/// Timing policy.
#[derive(Clone, Copy, Debug)]
pub struct TimingPolicy {
    /// Timed repeats per direction after the warm-up (upper bound).
    pub repeats: usize,
    /// Seconds the timed repeats of one cell may take, estimated from the warm-up; the repeat
    /// count is lowered (never below 1) to stay inside it.
    pub cell_budget_s: f64,
    /// Threads handed to codecs that take a thread count.
    pub threads: usize,
}

impl TimingPolicy {
    /// Repeats for a cell whose warm-up (compress + decompress) took `warmup_s`.
    pub fn repeats_for(&self, warmup_s: f64) -> usize {
        let max = self.repeats.max(1);
        if warmup_s <= 0.0 {
            return max;
        }
        let fit = (self.cell_budget_s / warmup_s).floor();
        if fit >= max as f64 {
            max
        } else if fit < 1.0 {
            1
        } else {
            fit as usize
        }
    }
}

/// Median of a non-empty list (mean of the two middle values for even lengths).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Typed copies of a field, made once per file outside every timed region.
#[derive(Debug)]
pub struct Prepared<'a> {
    field: &'a Field,
    f32s: Option<Vec<f32>>,
    f64s: Option<Vec<f64>>,
}

impl<'a> Prepared<'a> {
    /// Converts the field's bytes to typed values.
    pub fn new(field: &'a Field) -> Self {
        let (f32s, f64s) = match field.dtype {
            DType::F32 => (Some(field.to_f32()), None),
            DType::F64 => (None, Some(field.to_f64())),
        };
        Self { field, f32s, f64s }
    }
    fn input(&self, threads: usize) -> Input<'_> {
        Input {
            field: self.field,
            f32s: self.f32s.as_deref(),
            f64s: self.f64s.as_deref(),
            threads,
        }
    }
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e:#}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(format!("{what} panicked: {msg}"))
        }
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

/// Measures one codec on one field: a verified warm-up roundtrip, then `n` timed compressions
/// and `n` timed decompressions (each decompression checked bit for bit outside the timing).
pub fn measure(
    codec: &dyn Codec,
    dataset: &str,
    prepared: &Prepared<'_>,
    policy: &TimingPolicy,
) -> Measurement {
    let field = prepared.field;
    let mut m = Measurement {
        dataset: dataset.to_string(),
        file: field.name.clone(),
        codec: codec.id().to_string(),
        orig_bytes: field.bytes.len() as u64,
        comp_bytes: None,
        comp_s: None,
        decomp_s: None,
        n_timed: 0,
        status: Status::Ok,
    };
    if let Some(reason) = codec.unsupported(field.dtype, &field.dims) {
        m.status = Status::NotApplicable(reason);
        return m;
    }
    let input = prepared.input(policy.threads);
    let check = |out: &Output| -> Result<(), String> {
        if out.bit_exact(&field.bytes) {
            Ok(())
        } else {
            Err("roundtrip is not bit-exact".into())
        }
    };

    // Warm-up, verified.
    let (comp, t_c) = timed(|| guarded("compress", || codec.compress(&input)));
    let comp = match comp {
        Ok(c) => c,
        Err(e) => {
            m.status = Status::Failed(e);
            return m;
        }
    };
    m.comp_bytes = Some(comp.len() as u64);
    let (out, t_d) = timed(|| {
        guarded("decompress", || {
            codec.decompress(&comp, field, policy.threads)
        })
    });
    if let Err(e) = out.and_then(|o| check(&o)) {
        m.status = Status::Failed(e);
        return m;
    }

    let n = policy.repeats_for(t_c + t_d);
    let mut comp_times = Vec::with_capacity(n);
    let mut last = comp;
    for _ in 0..n {
        let (c, t) = timed(|| guarded("compress", || codec.compress(&input)));
        match c {
            Ok(c) => {
                if c.len() != last.len() {
                    m.status = Status::Failed(format!(
                        "compressed size changed between runs ({} vs {} bytes)",
                        last.len(),
                        c.len()
                    ));
                    return m;
                }
                last = c;
                comp_times.push(t);
            }
            Err(e) => {
                m.status = Status::Failed(e);
                return m;
            }
        }
    }
    let mut decomp_times = Vec::with_capacity(n);
    for _ in 0..n {
        let (out, t) = timed(|| {
            guarded("decompress", || {
                codec.decompress(&last, field, policy.threads)
            })
        });
        if let Err(e) = out.and_then(|o| check(&o)) {
            m.status = Status::Failed(e);
            return m;
        }
        decomp_times.push(t);
    }
    m.comp_s = median(&comp_times);
    m.decomp_s = median(&decomp_times);
    m.n_timed = n;
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn repeats_shrink_to_budget() {
        let p = TimingPolicy {
            repeats: 3,
            cell_budget_s: 4.0,
            threads: 1,
        };
        assert_eq!(p.repeats_for(0.01), 3);
        assert_eq!(p.repeats_for(1.5), 2);
        assert_eq!(p.repeats_for(10.0), 1);
    }
}
