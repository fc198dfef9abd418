//! # melloc-solver
//!
//! Periodic-extension FFT inversion of a learned 3x3 stencil: given `c` and a source term `f`
//! (`n_rows x n_cols`, C order), find `u` with `(L u)_periodic = f`, where
//! `(L u)[i,j] = sum_{a,b in -1..1} c[a][b] u[(i+a) mod n_rows, (j+b) mod n_cols]`
//! (see `melloc_core::stencil`). It is not a general PDE solver and does no I/O.
//!
//! ## Method
//! On the torus `L` is diagonal in the Fourier basis: with `U = DFT2(u)`,
//! `DFT2(L u)[k1,k2] = B[k1,k2] U[k1,k2]` where the **symbol** is
//!
//! ```text
//! B[k1,k2] = sum_{a,b} c[a][b] exp(2 pi i (a k1 / n_rows + b k2 / n_cols)).
//! ```
//!
//! So `u = IDFT2(DFT2(f) / B)`, `O(N log N)` for `N = n_rows n_cols` values. Two places need a
//! rule, because `B` may vanish:
//! * **zero frequency**: `U[0,0]` (the mean of `u`) is not taken from `f` but set by the caller
//!   ([`PeriodicSolver::solve_with_mean`]); most learned stencils have `sum(c) = B[0,0] ~ 0`, so
//!   the mean must be stored anyway. [`PeriodicSolver::solve`] uses mean 0.
//! * **near-zero symbol**: where `|B| <= 1e-9 * sum|c|`, `U` is set to 0 (the component is in
//!   the numerical null space of `L`; dividing would amplify rounding noise by ~1e9). The caller
//!   stores a residual, so the final reconstruction is exact regardless of this choice.
//!
//! ## Determinism
//! The decoder re-runs this solve, so the output bits of [`PeriodicSolver::solve_into`] (and
//! `solve`, `solve_with_mean`) must not depend on the machine, the build or the CPU. They are
//! a pure function of the input bits because every step is:
//! * **FFTs** are our own [`DftPlan`] (module [`dft`]): mixed-radix Stockham passes (radix 4, 2,
//!   odd radices up to [`dft::MAX_DIRECT_RADIX`]) and Bluestein with a power-of-two inner FFT
//!   for larger prime factors. The plan (factor order, algorithm per factor) depends only on
//!   the length; the operation order is fixed by the source.
//! * **Twiddles, butterfly constants, chirps and the symbol's phases** all come from
//!   [`unit_root`]: exact integer reduction of `8k` modulo `n` to an octant, one `/` and one `*`
//!   to form the angle, then fixed Taylor polynomials by Horner with `+` and `*` only. No libm
//!   (whose `cos`/`sin` differ in the last bit between glibc, musl, macOS and Windows), and
//!   computed once per plan.
//! * **Arithmetic** is IEEE-754 binary64 `+ - * /` only. Rust neither contracts `a * b + c`
//!   into an FMA nor reassociates floating-point code (LLVM vectorises only where each lane
//!   keeps the scalar order), there is no `mul_add`, no runtime SIMD dispatch, no threads, and
//!   subnormals are not flushed. The one target assumption is binary64 round-to-nearest
//!   arithmetic, true of every tier-1/2 target (32-bit x86 uses SSE2, not x87).
//! * Complex products and quotients are written out component-wise, so their order is ours
//!   and not a dependency's.
//!
//! Tests compare the FFT with RustFFT (`~1e-12` relative) and pin the exact output bits of
//! several FFT lengths and whole solves to constants recorded once (golden bits); those
//! constants change only if an operation order changes, which would be a format break.
//!
//! RustFFT (scalar planner) is still used by [`PeriodicSolver::solve_estimate_into`], an
//! encoder-only solve for ranking candidates: same result to rounding, but its twiddles come
//! from the platform libm, so a decoder must never depend on it.
//!
//! Speed: the deterministic solve is within ~1.0-1.2x of the same solve on RustFFT scalar
//! (1750x3500: 268 ms vs 269 ms; 241x480: 5.8 ms vs 4.8 ms, `examples/solve_speed.rs`).
//!
//! ```
//! use melloc_core::Stencil;
//! use melloc_solver::PeriodicSolver;
//! let mut solver = PeriodicSolver::new(4, 5).unwrap();
//! // L = identity + small coupling: invertible, so solve() recovers u from f = L u.
//! let s = Stencil::new([0.0, 0.1, 0.0, 0.1, 1.0, 0.1, 0.0, 0.1, 0.0]);
//! let u: Vec<f64> = (0..20).map(|v| (v as f64).sin()).collect();
//! let f = melloc_core::stencil::apply_stencil_periodic(&s, &u, 4, 5).unwrap();
//! let mean = u.iter().sum::<f64>() / 20.0;
//! let back = solver.solve_with_mean(&s, &f, mean).unwrap();
//! assert!(back.iter().zip(&u).all(|(a, b)| (a - b).abs() < 1e-12));
//! ```
#![forbid(unsafe_code)]

pub mod dft;

use std::sync::Arc;

use melloc_core::Stencil;
use rustfft::{Fft, FftPlannerScalar};

pub use dft::DftPlan;
/// The complex type of [`DftPlan`] buffers and [`PeriodicSolver::symbol`] (num-complex's).
pub use rustfft::num_complex::Complex;

/// Relative threshold below which a symbol value counts as zero: `|B| <= 1e-9 * sum|c|`.
pub const SYMBOL_REL_EPS: f64 = 1e-9;

/// Errors from `melloc-solver`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolverError {
    /// A caller passed an argument outside the documented domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Two lengths that must agree do not.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
}

/// `(cos, sin)` of `2 pi k / n`, computed identically on every machine.
///
/// `8k = oct * n + rem` is reduced exactly in integers; the angle inside the octant,
/// `y = (pi/4) rem / n` (or its complement `(pi/4)(n - rem)/n` in odd octants, so that the
/// polynomial argument stays in `[0, pi/4]`), goes through Taylor polynomials of degree 19/20
/// (truncation error < 1e-22 on `[0, pi/4]`), evaluated by Horner with `+` and `*` only.
/// Returns `(1, 0)` for `n == 0`.
pub fn unit_root(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (1.0, 0.0);
    }
    let k = (k % n) as u128;
    let n128 = n as u128;
    let t = 8 * k;
    let oct = t / n128;
    let rem = t % n128;
    let frac = |r: u128| (r as f64 / n as f64) * std::f64::consts::FRAC_PI_4;
    let (c, s) = if oct.is_multiple_of(2) {
        poly_cos_sin(frac(rem))
    } else {
        poly_cos_sin(frac(n128 - rem))
    };
    match oct {
        0 => (c, s),
        1 => (s, c),
        2 => (-s, c),
        3 => (-c, s),
        4 => (-c, -s),
        5 => (-s, -c),
        6 => (s, -c),
        _ => (c, -s),
    }
}

/// Taylor polynomials of `cos` and `sin` on `[0, pi/4]`.
fn poly_cos_sin(x: f64) -> (f64, f64) {
    let x2 = x * x;
    // 1/(2m)! and 1/(2m+1)! for m = 0..=10, as f64 literals.
    const INV_EVEN: [f64; 11] = [
        1.0,
        0.5,
        4.166_666_666_666_666_4e-2,
        1.388_888_888_888_889e-3,
        2.480_158_730_158_73e-5,
        2.755_731_922_398_589e-7,
        2.087_675_698_786_81e-9,
        1.147_074_559_772_972_5e-11,
        4.779_477_332_387_385e-14,
        1.561_920_696_858_622_6e-16,
        4.110_317_623_312_165e-19,
    ];
    const INV_ODD: [f64; 10] = [
        1.0,
        1.666_666_666_666_666_6e-1,
        8.333_333_333_333_333e-3,
        1.984_126_984_126_984e-4,
        2.755_731_922_398_589_3e-6,
        2.505_210_838_544_172e-8,
        1.605_904_383_682_161_3e-10,
        7.647_163_731_819_816e-13,
        2.811_457_254_345_520_6e-15,
        8.220_635_246_624_33e-18,
    ];
    let mut c = 0.0;
    for (m, coef) in INV_EVEN.iter().enumerate().rev() {
        let signed = if m % 2 == 0 { *coef } else { -*coef };
        c = c * x2 + signed;
    }
    let mut s = 0.0;
    for (m, coef) in INV_ODD.iter().enumerate().rev() {
        let signed = if m % 2 == 0 { *coef } else { -*coef };
        s = s * x2 + signed;
    }
    (c, s * x)
}

/// Reusable plans and scratch for solving `L u = f` on an `n_rows x n_cols` torus.
pub struct PeriodicSolver {
    n_rows: usize,
    n_cols: usize,
    /// Deterministic plans (see [`dft`]): everything the decoder uses goes through these.
    row_plan: DftPlan,
    col_plan: DftPlan,
    /// RustFFT plans for [`Self::solve_estimate_into`], made on first use.
    estimate: Option<EstimatePlans>,
    /// `(cos, sin)` of `2 pi k / n_rows` and `2 pi k / n_cols`.
    roots_rows: Vec<(f64, f64)>,
    roots_cols: Vec<(f64, f64)>,
    buf: Vec<Complex<f64>>,
    transposed: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

/// RustFFT plans for the encoder-only estimate.
struct EstimatePlans {
    row_fwd: Arc<dyn Fft<f64>>,
    row_inv: Arc<dyn Fft<f64>>,
    col_fwd: Arc<dyn Fft<f64>>,
    col_inv: Arc<dyn Fft<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl EstimatePlans {
    fn new(n_rows: usize, n_cols: usize) -> Self {
        let mut planner = FftPlannerScalar::<f64>::new();
        let row_fwd = planner.plan_fft_forward(n_cols);
        let row_inv = planner.plan_fft_inverse(n_cols);
        let col_fwd = planner.plan_fft_forward(n_rows);
        let col_inv = planner.plan_fft_inverse(n_rows);
        let scratch_len = [&row_fwd, &row_inv, &col_fwd, &col_inv]
            .iter()
            .map(|p| p.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        Self {
            row_fwd,
            row_inv,
            col_fwd,
            col_inv,
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
        }
    }
}

impl std::fmt::Debug for PeriodicSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicSolver")
            .field("n_rows", &self.n_rows)
            .field("n_cols", &self.n_cols)
            .finish_non_exhaustive()
    }
}

/// Which FFT a solve runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// [`DftPlan`]: bit-identical everywhere.
    Deterministic,
    /// RustFFT scalar: fast, last bits depend on the platform libm.
    Estimate,
}

impl PeriodicSolver {
    /// Plans the FFTs for an `n_rows x n_cols` grid (both at least 1).
    pub fn new(n_rows: usize, n_cols: usize) -> Result<Self, SolverError> {
        if n_rows == 0 || n_cols == 0 {
            return Err(SolverError::InvalidArgument(format!(
                "grid {n_rows}x{n_cols} is empty"
            )));
        }
        let n = n_rows.checked_mul(n_cols).ok_or_else(|| {
            SolverError::InvalidArgument(format!("grid {n_rows}x{n_cols} overflows usize"))
        })?;
        let row_plan = DftPlan::new(n_cols)?;
        let col_plan = DftPlan::new(n_rows)?;
        let scratch_len = row_plan.scratch_len().max(col_plan.scratch_len());
        Ok(Self {
            n_rows,
            n_cols,
            roots_rows: (0..n_rows).map(|k| unit_root(k, n_rows)).collect(),
            roots_cols: (0..n_cols).map(|k| unit_root(k, n_cols)).collect(),
            row_plan,
            col_plan,
            estimate: None,
            buf: vec![Complex::new(0.0, 0.0); n],
            transposed: vec![Complex::new(0.0, 0.0); n],
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
        })
    }

    /// Rows of the grid.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Columns of the grid.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The symbol `B[k1,k2]` of `stencil` on this grid (see the crate docs).
    pub fn symbol(&self, stencil: &Stencil, k1: usize, k2: usize) -> Complex<f64> {
        let (cr, sr) = self.roots_rows[k1 % self.n_rows];
        let (cc, sc) = self.roots_cols[k2 % self.n_cols];
        // exp(i a phi) for a = -1, 0, 1.
        let row_phase = [
            Complex::new(cr, -sr),
            Complex::new(1.0, 0.0),
            Complex::new(cr, sr),
        ];
        let col_phase = [
            Complex::new(cc, -sc),
            Complex::new(1.0, 0.0),
            Complex::new(cc, sc),
        ];
        let mut total = Complex::new(0.0, 0.0);
        for (a, rp) in row_phase.iter().enumerate() {
            let mut inner = Complex::new(0.0, 0.0);
            for (b, cp) in col_phase.iter().enumerate() {
                let c = stencil.coeffs[a * 3 + b];
                inner = Complex::new(inner.re + c * cp.re, inner.im + c * cp.im);
            }
            total = Complex::new(
                total.re + (rp.re * inner.re - rp.im * inner.im),
                total.im + (rp.re * inner.im + rp.im * inner.re),
            );
        }
        total
    }

    /// Solves `(L u)_periodic = f` with the mean of `u` set to 0. See [`Self::solve_with_mean`].
    pub fn solve(&mut self, stencil: &Stencil, f: &[f64]) -> Result<Vec<f64>, SolverError> {
        self.solve_with_mean(stencil, f, 0.0)
    }

    /// Solves `(L u)_periodic = f` and returns `u` (C order), with the zero frequency set so
    /// that `mean(u) = mean` and near-zero symbol values regularised to 0 (see the crate docs).
    /// The result is bit-identical on every machine.
    pub fn solve_with_mean(
        &mut self,
        stencil: &Stencil,
        f: &[f64],
        mean: f64,
    ) -> Result<Vec<f64>, SolverError> {
        let mut out = vec![0.0; f.len()];
        self.solve_into(stencil, f, mean, &mut out)?;
        Ok(out)
    }

    /// [`Self::solve_with_mean`] writing into `out` (same length as `f`). Bit-identical on
    /// every machine: this is the solve a decoder must use.
    pub fn solve_into(
        &mut self,
        stencil: &Stencil,
        f: &[f64],
        mean: f64,
        out: &mut [f64],
    ) -> Result<(), SolverError> {
        self.solve_with(Engine::Deterministic, stencil, f, mean, out)
    }

    /// The same solve as [`Self::solve_into`] on RustFFT's scalar FFT, **for encoder-side
    /// estimates only** (e.g. ranking candidate quantisation steps): it differs from
    /// [`Self::solve_into`] by rounding (~1e-15 relative), and its last bits depend on the
    /// platform libm, so nothing a decoder recomputes may be taken from it. The first call
    /// plans the RustFFT transforms.
    pub fn solve_estimate_into(
        &mut self,
        stencil: &Stencil,
        f: &[f64],
        mean: f64,
        out: &mut [f64],
    ) -> Result<(), SolverError> {
        self.solve_with(Engine::Estimate, stencil, f, mean, out)
    }

    fn solve_with(
        &mut self,
        engine: Engine,
        stencil: &Stencil,
        f: &[f64],
        mean: f64,
        out: &mut [f64],
    ) -> Result<(), SolverError> {
        let (nr, nc) = (self.n_rows, self.n_cols);
        let n = nr * nc;
        for len in [f.len(), out.len()] {
            if len != n {
                return Err(SolverError::LengthMismatch {
                    expected: n,
                    actual: len,
                });
            }
        }
        for (b, &v) in self.buf.iter_mut().zip(f) {
            *b = Complex::new(v, 0.0);
        }
        // Rows (contiguous), then columns as rows of the transpose.
        match engine {
            Engine::Deterministic => {
                self.row_plan.forward(&mut self.buf, &mut self.scratch)?;
                transpose(&self.buf, &mut self.transposed, nr, nc);
                self.col_plan
                    .forward(&mut self.transposed, &mut self.scratch)?;
            }
            Engine::Estimate => {
                let est = self
                    .estimate
                    .get_or_insert_with(|| EstimatePlans::new(nr, nc));
                est.row_fwd
                    .process_with_scratch(&mut self.buf, &mut est.scratch);
                transpose(&self.buf, &mut self.transposed, nr, nc);
                est.col_fwd
                    .process_with_scratch(&mut self.transposed, &mut est.scratch);
            }
        }

        let threshold = SYMBOL_REL_EPS * stencil.abs_sum();
        let threshold_sq = threshold * threshold;
        for k2 in 0..nc {
            for k1 in 0..nr {
                let idx = k2 * nr + k1;
                if k1 == 0 && k2 == 0 {
                    self.transposed[idx] = Complex::new(mean * n as f64, 0.0);
                    continue;
                }
                let b = self.symbol(stencil, k1, k2);
                let norm_sq = b.re * b.re + b.im * b.im;
                let v = self.transposed[idx];
                self.transposed[idx] = if norm_sq <= threshold_sq || !norm_sq.is_finite() {
                    Complex::new(0.0, 0.0)
                } else {
                    // v / b = v * conj(b) / |b|^2, written out to fix the operation order.
                    Complex::new(
                        (v.re * b.re + v.im * b.im) / norm_sq,
                        (v.im * b.re - v.re * b.im) / norm_sq,
                    )
                };
            }
        }

        match engine {
            Engine::Deterministic => {
                self.col_plan
                    .inverse(&mut self.transposed, &mut self.scratch)?;
                transpose(&self.transposed, &mut self.buf, nc, nr);
                self.row_plan.inverse(&mut self.buf, &mut self.scratch)?;
            }
            Engine::Estimate => {
                let est = self
                    .estimate
                    .get_or_insert_with(|| EstimatePlans::new(nr, nc));
                est.col_inv
                    .process_with_scratch(&mut self.transposed, &mut est.scratch);
                transpose(&self.transposed, &mut self.buf, nc, nr);
                est.row_inv
                    .process_with_scratch(&mut self.buf, &mut est.scratch);
            }
        }
        let n_f64 = n as f64;
        for (o, b) in out.iter_mut().zip(&self.buf) {
            *o = b.re / n_f64;
        }
        Ok(())
    }
}

/// `dst[j * n_rows + i] = src[i * n_cols + j]`, in 32 x 32 tiles so that both sides stay in
/// cache (a plain copy: the tiling cannot change any value).
fn transpose(src: &[Complex<f64>], dst: &mut [Complex<f64>], n_rows: usize, n_cols: usize) {
    const TILE: usize = 32;
    for i0 in (0..n_rows).step_by(TILE) {
        for j0 in (0..n_cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(n_rows) {
                for j in j0..(j0 + TILE).min(n_cols) {
                    dst[j * n_rows + i] = src[i * n_cols + j];
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use faer::prelude::*;
    use faer::Mat;
    use melloc_core::stencil::apply_stencil_periodic;
    use proptest::prelude::*;

    fn rng(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn random_field(n: usize, seed: u64) -> Vec<f64> {
        let mut seed = seed | 1;
        (0..n).map(|_| rng(&mut seed)).collect()
    }

    /// Diagonally dominant stencil: |B| >= 5 - 8 * 0.5 = 1 everywhere, so L is invertible.
    fn invertible_stencil(seed: u64) -> Stencil {
        let mut seed = seed | 1;
        let mut c: [f64; 9] = std::array::from_fn(|_| 0.5 * rng(&mut seed));
        c[4] = 5.0;
        Stencil::new(c)
    }

    /// Dense periodic matrix of L, solved with faer.
    fn dense_solve(s: &Stencil, f: &[f64], nr: usize, nc: usize) -> Vec<f64> {
        let n = nr * nc;
        let mut m = Mat::<f64>::zeros(n, n);
        for i in 0..nr {
            for j in 0..nc {
                for (k, c) in s.coeffs.iter().enumerate() {
                    let ii = (i + nr + k / 3 - 1) % nr;
                    let jj = (j + nc + k % 3 - 1) % nc;
                    m[(i * nc + j, ii * nc + jj)] += c;
                }
            }
        }
        let rhs = Mat::<f64>::from_fn(n, 1, |r, _| f[r]);
        let sol = m.full_piv_lu().solve(&rhs);
        (0..n).map(|r| sol[(r, 0)]).collect()
    }

    #[test]
    fn unit_root_matches_libm() {
        for n in [1usize, 2, 3, 5, 7, 8, 12, 100, 1000, 4099] {
            for k in 0..n.min(300) {
                let (c, s) = unit_root(k, n);
                let a = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
                // libm sees the rounded angle (error up to ulp(2 pi) / 2 ~ 4.4e-16), so its
                // result may be off by that much; ours is reduced exactly.
                assert!((c - a.cos()).abs() < 1e-15, "cos {k}/{n}");
                assert!((s - a.sin()).abs() < 1e-15, "sin {k}/{n}");
            }
        }
        assert_eq!(unit_root(0, 7), (1.0, 0.0));
        assert_eq!(unit_root(2, 4), (-1.0, 0.0));
    }

    #[test]
    fn matches_dense_direct_solve() {
        for (t, &(nr, nc)) in [
            (5, 7),
            (7, 11),
            (13, 4),
            (1, 9),
            (9, 1),
            (1, 1),
            (2, 2),
            (3, 3),
            (6, 6),
        ]
        .iter()
        .enumerate()
        {
            let s = invertible_stencil(17 + t as u64);
            let f = random_field(nr * nc, 5 + t as u64);
            let want = dense_solve(&s, &f, nr, nc);
            // The true solution's mean is mean(f) / B[0,0]; the solver takes it as input.
            let b00: f64 = s.coeffs.iter().sum();
            let mean_u = f.iter().sum::<f64>() / (nr * nc) as f64 / b00;
            let mut solver = PeriodicSolver::new(nr, nc).unwrap();
            let got = solver.solve_with_mean(&s, &f, mean_u).unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{nr}x{nc}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn apply_of_solve_is_identity_on_zero_mean_data() {
        // Laplacian: B[0,0] = 0 and B != 0 elsewhere, so f must be projected off the constants.
        for &(nr, nc) in &[(8usize, 8usize), (5, 7), (1, 16), (16, 1), (11, 13)] {
            let mut f = random_field(nr * nc, 99);
            let m = f.iter().sum::<f64>() / f.len() as f64;
            f.iter_mut().for_each(|v| *v -= m);
            let mut solver = PeriodicSolver::new(nr, nc).unwrap();
            let u = solver.solve(&Stencil::LAPLACIAN, &f).unwrap();
            let back = apply_stencil_periodic(&Stencil::LAPLACIAN, &u, nr, nc).unwrap();
            for (a, b) in back.iter().zip(&f) {
                assert!((a - b).abs() < 1e-10, "{nr}x{nc}: {a} vs {b}");
            }
            assert!(u.iter().sum::<f64>().abs() < 1e-9);
        }
    }

    #[test]
    fn solve_is_bit_reproducible() {
        let s = Stencil::new([0.1, -0.3, 0.2, 0.7, -1.9, 0.4, 0.05, 0.6, 0.1]);
        let f = random_field(37 * 23, 4);
        let mut a = PeriodicSolver::new(37, 23).unwrap();
        let mut b = PeriodicSolver::new(37, 23).unwrap();
        let x1 = a.solve_with_mean(&s, &f, 0.25).unwrap();
        let x2 = a.solve_with_mean(&s, &f, 0.25).unwrap();
        let x3 = b.solve_with_mean(&s, &f, 0.25).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x1), bits(&x2));
        assert_eq!(bits(&x1), bits(&x3));
    }

    #[test]
    fn estimate_agrees_with_deterministic_solve() {
        let s = Stencil::new([0.1, -0.3, 0.2, 0.7, 1.0, 0.4, 0.05, 0.6, 0.1]);
        for &(nr, nc) in &[(1usize, 1usize), (7, 9), (24, 241), (30, 97), (16, 20)] {
            let f = random_field(nr * nc, 8);
            let mut solver = PeriodicSolver::new(nr, nc).unwrap();
            let (mut a, mut b) = (vec![0.0; nr * nc], vec![0.0; nr * nc]);
            solver.solve_into(&s, &f, 0.5, &mut a).unwrap();
            solver.solve_estimate_into(&s, &f, 0.5, &mut b).unwrap();
            let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-12 * scale, "{nr}x{nc}: {x} vs {y}");
            }
            // The estimate must not disturb the deterministic path's state.
            let mut c = vec![0.0; nr * nc];
            solver.solve_into(&s, &f, 0.5, &mut c).unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        let mut solver = PeriodicSolver::new(2, 3).unwrap();
        assert!(solver
            .solve_estimate_into(&s, &[0.0; 6], 0.0, &mut [0.0; 5])
            .is_err());
    }

    /// Golden bits of whole solves, as the decoder runs them. Computed once (x86-64 Linux,
    /// first run) and never to be regenerated: a mismatch means files written before the change
    /// would decode differently (the content checksum would reject them), i.e. a format break.
    /// Shapes cover radix 4/2/3/5/7 rows and columns, direct radix 13 and 17, and whole-length
    /// Bluestein (241, 97).
    #[test]
    fn solve_golden_bits() {
        let s = Stencil::new([0.1, -0.3, 0.2, 0.7, -1.9, 0.4, 0.05, 0.6, 0.1]);
        let cases: [((usize, usize), u64); 4] = [
            ((13, 17), 0x5ec126463f32ac6d),
            ((24, 241), 0x7cf04cbbd466f43d),
            ((35, 48), 0x5280ac51bc1f81fc),
            ((97, 10), 0xe3d76c6006bf76bd),
        ];
        let mut got = Vec::new();
        for &((nr, nc), _) in &cases {
            let f = random_field(nr * nc, 0x1234_5678);
            let mut solver = PeriodicSolver::new(nr, nc).unwrap();
            let u = solver.solve_with_mean(&s, &f, 0.375).unwrap();
            got.push(((nr, nc), dft::fnv(u.iter().map(|v| v.to_bits()))));
        }
        assert_eq!(
            got,
            cases.to_vec(),
            "golden solve bits changed: format break"
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(PeriodicSolver::new(0, 3).is_err());
        let mut s = PeriodicSolver::new(2, 3).unwrap();
        assert!(s.solve(&Stencil::IDENTITY, &[0.0; 5]).is_err());
    }

    proptest! {
        #[test]
        fn invertible_stencils_round_trip(nr in 1usize..9, nc in 1usize..9, seed in any::<u64>()) {
            let s = invertible_stencil(seed);
            let u = random_field(nr * nc, seed ^ 0x5555);
            let f = apply_stencil_periodic(&s, &u, nr, nc).unwrap();
            let mean = u.iter().sum::<f64>() / (nr * nc) as f64;
            let mut solver = PeriodicSolver::new(nr, nc).unwrap();
            let back = solver.solve_with_mean(&s, &f, mean).unwrap();
            for (a, b) in back.iter().zip(&u) {
                prop_assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
