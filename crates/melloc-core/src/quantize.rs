//! Uniform quantiser with a power-of-two step, used for the source term `f`.
//!
//! With step `s = 2^e` (only the exponent `e` is stored):
//!
//! ```text
//! quantize(v)   = q = round(v / s)        (round half away from zero)
//! dequantize(q) = q * s
//! |v - dequantize(quantize(v))| <= s / 2
//! ```
//!
//! Both maps are exact IEEE operations: `v / s` is a multiplication by the power of two
//! `2^-e` (exact unless the result is subnormal, where `|v| < s/2` anyway and `q = 0`), and
//! `q * s` is exact because `|q| <= 2^53` has at most 53 significant bits and `e` keeps the
//! product inside the normal range (`e` in `[MIN_STEP_LOG2, MAX_STEP_LOG2]`, products that
//! would overflow are rejected). The decoder therefore gets bit-identical `f` on every machine.

use crate::CoreError;

/// Smallest allowed step exponent.
pub const MIN_STEP_LOG2: i32 = -1000;
/// Largest allowed step exponent.
pub const MAX_STEP_LOG2: i32 = 1000;
/// Largest allowed `|q|`: every integer up to `2^53` is an exact `f64`.
pub const MAX_ABS_Q: i64 = 1 << 53;

/// `2^e` as an exact `f64`, for `e` in `-1022..=1023` (normal range).
pub fn pow2(e: i32) -> Option<f64> {
    if !(-1022..=1023).contains(&e) {
        return None;
    }
    // The biased exponent is in 1..=2046, so this is a normal number with zero mantissa.
    Some(f64::from_bits(((e + 1023) as u64) << 52))
}

/// A uniform quantiser with step `2^step_log2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UniformQuantizer {
    step_log2: i32,
    step: u64,
    inv_step: u64,
}

impl UniformQuantizer {
    /// Builds a quantiser; `step_log2` must be in `[MIN_STEP_LOG2, MAX_STEP_LOG2]`.
    pub fn new(step_log2: i32) -> Result<Self, CoreError> {
        if !(MIN_STEP_LOG2..=MAX_STEP_LOG2).contains(&step_log2) {
            return Err(CoreError::InvalidArgument(format!(
                "quantiser step exponent {step_log2} outside [{MIN_STEP_LOG2}, {MAX_STEP_LOG2}]"
            )));
        }
        let step = pow2(step_log2)
            .ok_or_else(|| CoreError::InvalidArgument("step out of range".into()))?;
        let inv_step = pow2(-step_log2)
            .ok_or_else(|| CoreError::InvalidArgument("step out of range".into()))?;
        Ok(Self {
            step_log2,
            step: step.to_bits(),
            inv_step: inv_step.to_bits(),
        })
    }

    /// The stored exponent `e`.
    pub fn step_log2(&self) -> i32 {
        self.step_log2
    }

    /// The step `2^e`.
    pub fn step(&self) -> f64 {
        f64::from_bits(self.step)
    }

    /// `round(v / 2^e)`; errors if `v` is not finite or `|q| > MAX_ABS_Q`.
    pub fn quantize(&self, v: f64) -> Result<i64, CoreError> {
        let scaled = (v * f64::from_bits(self.inv_step)).round();
        if !scaled.is_finite() || scaled.abs() > MAX_ABS_Q as f64 {
            return Err(CoreError::InvalidArgument(format!(
                "value {v:e} does not fit step 2^{} (|q| <= 2^53)",
                self.step_log2
            )));
        }
        // Exact: `scaled` is an integer with |scaled| <= 2^53.
        Ok(scaled as i64)
    }

    /// `q * 2^e`; errors if `|q| > MAX_ABS_Q` or the product is not finite.
    pub fn dequantize(&self, q: i64) -> Result<f64, CoreError> {
        if !(-MAX_ABS_Q..=MAX_ABS_Q).contains(&q) {
            return Err(CoreError::InvalidArgument(format!(
                "quantised value {q} exceeds 2^53"
            )));
        }
        let v = q as f64 * self.step();
        if !v.is_finite() {
            return Err(CoreError::InvalidArgument(format!(
                "quantised value {q} * 2^{} overflows",
                self.step_log2
            )));
        }
        Ok(v)
    }

    /// Quantises every value of `values` into `out` (cleared first).
    pub fn quantize_slice(&self, values: &[f64], out: &mut Vec<i64>) -> Result<(), CoreError> {
        out.clear();
        out.reserve(values.len());
        for &v in values {
            out.push(self.quantize(v)?);
        }
        Ok(())
    }

    /// Dequantises every value of `q` into `out` (cleared first).
    pub fn dequantize_slice(&self, q: &[i64], out: &mut Vec<f64>) -> Result<(), CoreError> {
        out.clear();
        out.reserve(q.len());
        for &v in q {
            out.push(self.dequantize(v)?);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pow2_is_exact() {
        assert_eq!(pow2(0), Some(1.0));
        assert_eq!(pow2(-3), Some(0.125));
        assert_eq!(pow2(10), Some(1024.0));
        assert_eq!(pow2(1024), None);
        assert_eq!(pow2(-1023), None);
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(UniformQuantizer::new(1001).is_err());
        assert!(UniformQuantizer::new(-1001).is_err());
        let q = UniformQuantizer::new(-60).unwrap();
        assert!(q.quantize(1.0e10).is_err());
        assert!(q.quantize(f64::NAN).is_err());
        assert!(q.dequantize(MAX_ABS_Q + 1).is_err());
        let big = UniformQuantizer::new(1000).unwrap();
        assert!(big.dequantize(MAX_ABS_Q).is_err());
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let q = UniformQuantizer::new(-1).unwrap();
        assert_eq!(q.quantize(0.25).unwrap(), 1);
        assert_eq!(q.quantize(-0.25).unwrap(), -1);
        assert_eq!(q.quantize(0.2).unwrap(), 0);
        assert_eq!(q.dequantize(3).unwrap(), 1.5);
    }

    proptest! {
        #[test]
        fn error_is_at_most_half_a_step(v in -1.0e12f64..1.0e12, e in -30i32..30) {
            let q = UniformQuantizer::new(e).unwrap();
            match q.quantize(v) {
                Ok(k) => {
                    let back = q.dequantize(k).unwrap();
                    prop_assert!((v - back).abs() <= q.step() / 2.0);
                }
                Err(_) => prop_assert!((v / q.step()).abs() > MAX_ABS_Q as f64 - 1.0),
            }
        }
    }
}
