//! Deterministic complex FFT of any length.
//!
//! [`DftPlan`] computes the unnormalised DFT `X[k] = sum_j x[j] exp(-2 pi i j k / n)`
//! ([`DftPlan::forward`]) and its inverse without the `1/n` ([`DftPlan::inverse`]), for every
//! `n >= 1`, in `O(n log n)`. It exists because the decoder re-runs the solver and needs the same
//! bits on every machine; RustFFT's results depend on the platform libm through its twiddles.
//!
//! ## Algorithm (this is part of the file format: changing it changes decoded bits)
//! * `n` is factored into radices, in this fixed order: 4s, then one 2 if `log2` of the
//!   power-of-two part is odd, then the odd primes ascending (3, 5, 7, ...).
//! * Each radix is one pass of a decimation-in-frequency **Stockham** FFT (out of place,
//!   ping-pong between the data and a scratch buffer, natural-order output): for the pass with
//!   current length `L = r m` and stride `s`, every `p < m`, `q < s` reads
//!   `a[j] = x[q + s (p + j m)]`, computes the length-`r` DFT `b` of `a`, and writes
//!   `y[q + s (r p + k)] = b[k] w_L^{p k}` (no multiplication when `p = 0`).
//! * Radix-`r` butterflies: 2 and 4 by hand (no multiplications); odd `r <= MAX_DIRECT_RADIX`
//!   by the symmetric formula (pairs `a[j] +- a[r-j]`, sums in ascending `j`); larger prime
//!   radices by a nested Bluestein plan of length `r`. A prime `n > MAX_DIRECT_RADIX` is a
//!   Bluestein plan itself.
//! * **Bluestein** (chirp-z): with `c[j] = exp(-pi i j^2 / n)`,
//!   `X = c . conv_M(x . c, conj(c))` computed with a power-of-two Stockham FFT of length
//!   `M >= 2n - 1`; the kernel's FFT (scaled by the exact `1/M`) is computed at plan time.
//! * Every twiddle, butterfly constant and chirp comes from [`crate::unit_root`] (exact integer
//!   range reduction, a fixed polynomial, `+ - * /` only), computed once when planning. `j^2`
//!   is reduced modulo `2n` in integers, so chirps do not lose accuracy for large `j`.
//! * The inverse is `conj(forward(conj(x)))`. Negation is exact and IEEE rounding is symmetric,
//!   so this equals running the forward algorithm with conjugated twiddles, bit for bit.
//!
//! ## Why the bits are the same everywhere
//! Only IEEE-754 binary64 `+ - *` (and `/` inside `unit_root`) in an order fixed by the source;
//! Rust never contracts `a * b + c` into an FMA and never reassociates floating-point code
//! (LLVM may vectorise a loop only when that keeps each lane's operation order), there is no
//! `mul_add`, no SIMD dispatch, no threads, and no libm call. The only target assumption is
//! that `f64` arithmetic is IEEE binary64 round-to-nearest, true on every tier-1/2 target
//! (i686 uses SSE2, not x87).
//!
//! ```
//! use melloc_solver::{Complex, DftPlan};
//! let plan = DftPlan::new(6).unwrap();
//! let mut data: Vec<Complex<f64>> = (0..6).map(|j| Complex::new(j as f64, 0.0)).collect();
//! let mut scratch = vec![Complex::new(0.0, 0.0); plan.scratch_len()];
//! plan.forward(&mut data, &mut scratch).unwrap();
//! assert_eq!(data[0], Complex::new(15.0, 0.0));
//! plan.inverse(&mut data, &mut scratch).unwrap();
//! assert!((data[4].re / 6.0 - 4.0).abs() < 1e-14);
//! ```
use rustfft::num_complex::Complex;

use crate::{unit_root, SolverError};

type C = Complex<f64>;

/// Largest odd prime radix done by the direct `O(r^2)` butterfly; larger prime factors use a
/// nested Bluestein plan. Changing it changes the output bits of lengths with such factors.
pub const MAX_DIRECT_RADIX: usize = 89;

const ZERO: C = C { re: 0.0, im: 0.0 };

#[inline(always)]
fn add(a: C, b: C) -> C {
    C::new(a.re + b.re, a.im + b.im)
}

#[inline(always)]
fn sub(a: C, b: C) -> C {
    C::new(a.re - b.re, a.im - b.im)
}

/// `a * b` as `(ar br - ai bi, ar bi + ai br)`, written out so the order is ours, not a
/// dependency's.
#[inline(always)]
fn mul(a: C, b: C) -> C {
    C::new(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re)
}

#[inline(always)]
fn conj(a: C) -> C {
    C::new(a.re, -a.im)
}

/// `exp(-2 pi i k / n)`.
fn root_fwd(k: usize, n: usize) -> C {
    let (c, s) = unit_root(k, n);
    C::new(c, -s)
}

/// A reusable plan for length-`n` DFTs; see the module docs. Plans are immutable, so one plan
/// may serve many buffers; each call needs `scratch_len()` elements of scratch.
#[derive(Debug, Clone)]
pub struct DftPlan {
    n: usize,
    algo: Algo,
    scratch_len: usize,
}

#[derive(Debug, Clone)]
enum Algo {
    /// `n == 1`: the DFT is the identity.
    Identity,
    Stockham(Vec<Stage>),
    Bluestein(Box<Bluestein>),
}

#[derive(Debug, Clone)]
struct Stage {
    radix: usize,
    /// Current length divided by the radix.
    m: usize,
    /// Stride of the current sub-sequences.
    s: usize,
    /// `tw[p (r - 1) + k - 1] = w_L^{p k}` for `p < m`, `1 <= k < r`.
    tw: Vec<C>,
    kernel: Kernel,
}

#[derive(Debug, Clone)]
enum Kernel {
    R2,
    R4,
    /// Odd radix, direct; `roots[t] = w_r^t`.
    Odd(Vec<C>),
    /// Prime radix above [`MAX_DIRECT_RADIX`]: a nested Bluestein plan.
    Sub(Box<DftPlan>),
}

#[derive(Debug, Clone)]
struct Bluestein {
    /// Inner power-of-two length `M >= 2n - 1`.
    m: usize,
    /// `c[j] = exp(-pi i j^2 / n)`, `j < n`.
    chirp: Vec<C>,
    /// `FFT_M(b) / M` with `b[j] = b[M - j] = conj(c[j])`, zero elsewhere.
    kernel_fft: Vec<C>,
    inner: DftPlan,
}

/// Radices of `n` in the documented order.
fn factor(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = n;
    let mut twos = 0u32;
    while rest.is_multiple_of(2) {
        rest /= 2;
        twos += 1;
    }
    out.extend(std::iter::repeat_n(4, (twos / 2) as usize));
    if twos % 2 == 1 {
        out.push(2);
    }
    let mut p = 3;
    while p * p <= rest {
        while rest.is_multiple_of(p) {
            out.push(p);
            rest /= p;
        }
        p += 2;
    }
    if rest > 1 {
        out.push(rest);
    }
    out
}

impl DftPlan {
    /// Plans length-`n` transforms (`n >= 1`).
    pub fn new(n: usize) -> Result<Self, SolverError> {
        if n == 0 {
            return Err(SolverError::InvalidArgument("DFT length 0".into()));
        }
        if n == 1 {
            return Ok(Self {
                n,
                algo: Algo::Identity,
                scratch_len: 0,
            });
        }
        let radices = factor(n);
        if radices.len() == 1 && radices[0] > MAX_DIRECT_RADIX {
            return Self::new_bluestein(n);
        }
        let mut stages = Vec::with_capacity(radices.len());
        let mut len = n;
        let mut s = 1;
        let mut extra = 0;
        for &r in &radices {
            let m = len / r;
            let mut tw = Vec::with_capacity(m * (r - 1));
            for p in 0..m {
                for k in 1..r {
                    // p k < L r; unit_root reduces modulo L exactly.
                    tw.push(root_fwd(p * k, len));
                }
            }
            let kernel = match r {
                2 => Kernel::R2,
                4 => Kernel::R4,
                r if r <= MAX_DIRECT_RADIX => {
                    extra = extra.max(2 * r);
                    Kernel::Odd((0..r).map(|t| root_fwd(t, r)).collect())
                }
                r => {
                    let sub = DftPlan::new(r)?;
                    extra = extra.max(r + sub.scratch_len);
                    Kernel::Sub(Box::new(sub))
                }
            };
            stages.push(Stage {
                radix: r,
                m,
                s,
                tw,
                kernel,
            });
            len = m;
            s *= r;
        }
        Ok(Self {
            n,
            algo: Algo::Stockham(stages),
            scratch_len: n + extra,
        })
    }

    fn new_bluestein(n: usize) -> Result<Self, SolverError> {
        let too_large = || SolverError::InvalidArgument(format!("DFT length {n} too large"));
        let two_n = n.checked_mul(2).ok_or_else(too_large)?;
        let m = (two_n - 1)
            .checked_next_power_of_two()
            .ok_or_else(too_large)?;
        let n2 = 2 * n as u128;
        let chirp: Vec<C> = (0..n)
            .map(|j| {
                let j = j as u128;
                // j^2 mod 2n is < 2n, so it fits usize.
                root_fwd(((j * j) % n2) as usize, two_n)
            })
            .collect();
        let inner = DftPlan::new(m)?;
        let mut b = vec![ZERO; m];
        b[0] = conj(chirp[0]);
        for j in 1..n {
            b[j] = conj(chirp[j]);
            b[m - j] = conj(chirp[j]);
        }
        let mut scratch = vec![ZERO; inner.scratch_len];
        inner.forward_one(&mut b, &mut scratch);
        // 1/M is a power of two: the scaling is exact.
        let inv_m = 1.0 / m as f64;
        for v in &mut b {
            *v = C::new(v.re * inv_m, v.im * inv_m);
        }
        let scratch_len = m + inner.scratch_len;
        Ok(Self {
            n,
            algo: Algo::Bluestein(Box::new(Bluestein {
                m,
                chirp,
                kernel_fft: b,
                inner,
            })),
            scratch_len,
        })
    }

    /// The transform length.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a plan has length at least 1.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Scratch elements a call needs.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// The radices of the Stockham passes (empty for `n = 1`, `[n]` for a Bluestein plan).
    pub fn radices(&self) -> Vec<usize> {
        match &self.algo {
            Algo::Identity => Vec::new(),
            Algo::Stockham(st) => st.iter().map(|s| s.radix).collect(),
            Algo::Bluestein(_) => vec![self.n],
        }
    }

    fn check(&self, data: &[C], scratch: &[C]) -> Result<(), SolverError> {
        if !data.len().is_multiple_of(self.n) {
            return Err(SolverError::InvalidArgument(format!(
                "buffer of {} is not a multiple of the DFT length {}",
                data.len(),
                self.n
            )));
        }
        if scratch.len() < self.scratch_len {
            return Err(SolverError::LengthMismatch {
                expected: self.scratch_len,
                actual: scratch.len(),
            });
        }
        Ok(())
    }

    /// In-place forward DFT of every consecutive length-`n` chunk of `data`.
    pub fn forward(&self, data: &mut [C], scratch: &mut [C]) -> Result<(), SolverError> {
        self.check(data, scratch)?;
        for chunk in data.chunks_exact_mut(self.n) {
            self.forward_one(chunk, scratch);
        }
        Ok(())
    }

    /// In-place unnormalised inverse DFT (`exp(+2 pi i j k / n)`, no `1/n`) of every chunk.
    pub fn inverse(&self, data: &mut [C], scratch: &mut [C]) -> Result<(), SolverError> {
        self.check(data, scratch)?;
        for chunk in data.chunks_exact_mut(self.n) {
            for v in chunk.iter_mut() {
                *v = conj(*v);
            }
            self.forward_one(chunk, scratch);
            for v in chunk.iter_mut() {
                *v = conj(*v);
            }
        }
        Ok(())
    }

    /// Forward DFT of one chunk; `data.len() == n`, `scratch.len() >= scratch_len`.
    pub(crate) fn forward_one(&self, data: &mut [C], scratch: &mut [C]) {
        match &self.algo {
            Algo::Identity => {}
            Algo::Stockham(stages) => {
                let (buf, extra) = scratch.split_at_mut(self.n);
                let mut in_data = true;
                for st in stages {
                    if in_data {
                        st.run(data, buf, extra);
                    } else {
                        st.run(buf, data, extra);
                    }
                    in_data = !in_data;
                }
                if !in_data {
                    data.copy_from_slice(buf);
                }
            }
            Algo::Bluestein(b) => b.run(data, scratch),
        }
    }
}

impl Bluestein {
    fn run(&self, data: &mut [C], scratch: &mut [C]) {
        let (a, inner_scratch) = scratch.split_at_mut(self.m);
        let n = data.len();
        for ((dst, &x), &c) in a.iter_mut().zip(data.iter()).zip(&self.chirp) {
            *dst = mul(x, c);
        }
        a[n..].fill(ZERO);
        self.inner.forward_one(a, inner_scratch);
        // Pointwise product, conjugated so that the next forward FFT is an inverse one.
        for (v, &k) in a.iter_mut().zip(&self.kernel_fft) {
            *v = conj(mul(*v, k));
        }
        self.inner.forward_one(a, inner_scratch);
        for ((dst, &v), &c) in data.iter_mut().zip(a.iter()).zip(&self.chirp) {
            *dst = mul(conj(v), c);
        }
    }
}

impl Stage {
    fn run(&self, x: &[C], y: &mut [C], extra: &mut [C]) {
        match &self.kernel {
            Kernel::R2 => self.run_fixed::<2>(x, y, |a| {
                let (a0, a1) = (a[0], a[1]);
                a[0] = add(a0, a1);
                a[1] = sub(a0, a1);
            }),
            Kernel::R4 => self.run_fixed::<4>(x, y, |a| {
                let s02 = add(a[0], a[2]);
                let d02 = sub(a[0], a[2]);
                let s13 = add(a[1], a[3]);
                let d13 = sub(a[1], a[3]);
                // -i * d13: exact.
                let u = C::new(d13.im, -d13.re);
                a[0] = add(s02, s13);
                a[1] = add(d02, u);
                a[2] = sub(s02, s13);
                a[3] = sub(d02, u);
            }),
            Kernel::Odd(roots) => match self.radix {
                3 => self.run_fixed::<3>(x, y, |a| odd_butterfly(a, roots)),
                5 => self.run_fixed::<5>(x, y, |a| odd_butterfly(a, roots)),
                7 => self.run_fixed::<7>(x, y, |a| odd_butterfly(a, roots)),
                _ => self.run_gathered(x, y, extra, |a, _| odd_butterfly(a, roots)),
            },
            Kernel::Sub(plan) => self.run_gathered(x, y, extra, |a, sc| plan.forward_one(a, sc)),
        }
    }

    /// One pass with a compile-time radix: gather into an array, butterfly, twiddle, scatter.
    #[inline(always)]
    fn run_fixed<const R: usize>(&self, x: &[C], y: &mut [C], kernel: impl Fn(&mut [C; R])) {
        let (m, s) = (self.m, self.s);
        let big = m * s;
        for p in 0..m {
            let tw = &self.tw[p * (R - 1)..(p + 1) * (R - 1)];
            let x_base = s * p;
            let y_base = s * R * p;
            for q in 0..s {
                let mut a = [ZERO; R];
                for (j, v) in a.iter_mut().enumerate() {
                    *v = x[x_base + q + j * big];
                }
                kernel(&mut a);
                let yb = y_base + q;
                y[yb] = a[0];
                if p == 0 {
                    for k in 1..R {
                        y[yb + s * k] = a[k];
                    }
                } else {
                    for k in 1..R {
                        y[yb + s * k] = mul(a[k], tw[k - 1]);
                    }
                }
            }
        }
    }

    /// One pass with a run-time radix; `extra` holds the gathered values and the kernel's own
    /// scratch.
    fn run_gathered(
        &self,
        x: &[C],
        y: &mut [C],
        extra: &mut [C],
        kernel: impl Fn(&mut [C], &mut [C]),
    ) {
        let (r, m, s) = (self.radix, self.m, self.s);
        let big = m * s;
        let (a, sc) = extra.split_at_mut(r);
        for p in 0..m {
            let tw = &self.tw[p * (r - 1)..(p + 1) * (r - 1)];
            for q in 0..s {
                for (j, v) in a.iter_mut().enumerate() {
                    *v = x[s * p + q + j * big];
                }
                kernel(a, sc);
                let yb = s * r * p + q;
                y[yb] = a[0];
                for k in 1..r {
                    y[yb + s * k] = if p == 0 { a[k] } else { mul(a[k], tw[k - 1]) };
                }
            }
        }
    }
}

/// In-place length-`r` DFT for odd `r`, `roots[t] = w_r^t`. With `s_j = a_j + a_{r-j}`,
/// `d_j = a_j - a_{r-j}` and `w_r^{jk} = (C, S)`: `b_k = a_0 + sum_j C s_j + i sum_j S d_j`
/// and `b_{r-k}` the same with `-i`. Sums run over `j = 1..=(r-1)/2` in that order.
#[inline(always)]
fn odd_butterfly(a: &mut [C], roots: &[C]) {
    let r = a.len();
    let h = (r - 1) / 2;
    let a0 = a[0];
    // At most MAX_DIRECT_RADIX / 2 = 44 pairs.
    let mut sums = [ZERO; MAX_DIRECT_RADIX / 2];
    let mut diffs = [ZERO; MAX_DIRECT_RADIX / 2];
    let mut dc = a0;
    for j in 1..=h {
        sums[j - 1] = add(a[j], a[r - j]);
        diffs[j - 1] = sub(a[j], a[r - j]);
        dc = add(dc, sums[j - 1]);
    }
    for k in 1..=h {
        let mut even = a0;
        let mut odd = ZERO;
        let mut t = 0;
        for j in 0..h {
            // t = (j + 1) k mod r, kept by addition to avoid a division per term.
            t += k;
            if t >= r {
                t -= r;
            }
            let w = roots[t];
            even = C::new(even.re + w.re * sums[j].re, even.im + w.re * sums[j].im);
            odd = C::new(odd.re + w.im * diffs[j].re, odd.im + w.im * diffs[j].im);
        }
        // b_k = even + i odd, b_{r-k} = even - i odd.
        a[k] = C::new(even.re - odd.im, even.im + odd.re);
        a[r - k] = C::new(even.re + odd.im, even.im - odd.re);
    }
    a[0] = dc;
}

/// FNV-1a (64-bit) over the little-endian bytes of `values`: the golden-bits tests hash
/// `to_bits()` of outputs with it (simple, fixed forever, no dependency).
#[cfg(test)]
pub(crate) fn fnv(values: impl IntoIterator<Item = u64>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for byte in v.to_le_bytes() {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rustfft::FftPlannerScalar;

    fn input(n: usize, seed: u64) -> Vec<C> {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Exact: a 53-bit integer times a power of two.
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        };
        (0..n).map(|_| C::new(next(), next())).collect()
    }

    fn fwd(n: usize, x: &[C]) -> Vec<C> {
        let plan = DftPlan::new(n).unwrap();
        let mut d = x.to_vec();
        let mut sc = vec![ZERO; plan.scratch_len()];
        plan.forward(&mut d, &mut sc).unwrap();
        d
    }

    fn reference(n: usize, x: &[C]) -> Vec<C> {
        let mut d = x.to_vec();
        FftPlannerScalar::<f64>::new()
            .plan_fft_forward(n)
            .process(&mut d);
        d
    }

    /// max |a - b| / max |b|.
    fn rel_err(a: &[C], b: &[C]) -> f64 {
        let num = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max);
        let den = b.iter().map(|y| y.norm()).fold(0.0, f64::max);
        num / den.max(f64::MIN_POSITIVE)
    }

    fn test_lengths() -> Vec<usize> {
        let mut v: Vec<usize> = (1..=64).collect();
        v.extend([
            97,
            241,
            480,
            1750,
            3500,
            8761,
            10007,
            2 * 10007,
            128,
            256,
            1024,
            4096,
            65536,
            210,
            2310,
            30030,
            3 * 3 * 3 * 3 * 5,
            7 * 7 * 11,
            13 * 17 * 19,
            23 * 29,
            29 * 31 * 2,
            47 * 83,
            163842,
            4 * 53,
            25 * 101,
            999,
        ]);
        v
    }

    #[test]
    fn factorisation_order() {
        assert_eq!(factor(480), vec![4, 4, 2, 3, 5]);
        assert_eq!(factor(1750), vec![2, 5, 5, 5, 7]);
        assert_eq!(factor(163842), vec![2, 3, 7, 47, 83]);
        assert_eq!(factor(8761), vec![8761]);
        assert_eq!(DftPlan::new(303).unwrap().radices(), vec![3, 101]);
        assert_eq!(DftPlan::new(241).unwrap().radices(), vec![241]);
        assert_eq!(DftPlan::new(1).unwrap().radices(), Vec::<usize>::new());
    }

    #[test]
    fn matches_rustfft() {
        for n in test_lengths() {
            let x = input(n, n as u64);
            let err = rel_err(&fwd(n, &x), &reference(n, &x));
            assert!(err < 1e-12, "n = {n}: relative error {err:e}");
        }
    }

    #[test]
    fn matches_naive_dft_on_small_lengths() {
        for n in 1..=40usize {
            let x = input(n, 7 + n as u64);
            let want: Vec<C> = (0..n)
                .map(|k| {
                    (0..n).fold(ZERO, |acc, j| {
                        let a = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
                        acc + x[j] * C::new(a.cos(), a.sin())
                    })
                })
                .collect();
            let err = rel_err(&fwd(n, &x), &want);
            assert!(err < 1e-13, "n = {n}: {err:e}");
        }
    }

    #[test]
    fn inverse_of_forward_is_identity() {
        for n in test_lengths() {
            let plan = DftPlan::new(n).unwrap();
            let x = input(n, 3 * n as u64);
            let mut d = x.clone();
            let mut sc = vec![ZERO; plan.scratch_len()];
            plan.forward(&mut d, &mut sc).unwrap();
            plan.inverse(&mut d, &mut sc).unwrap();
            let back: Vec<C> = d.iter().map(|v| v / n as f64).collect();
            let err = rel_err(&back, &x);
            assert!(err < 1e-12, "n = {n}: {err:e}");
        }
    }

    #[test]
    fn inverse_matches_rustfft() {
        for n in [5usize, 12, 97, 480, 1750, 8761] {
            let x = input(n, 11);
            let plan = DftPlan::new(n).unwrap();
            let mut d = x.clone();
            let mut sc = vec![ZERO; plan.scratch_len()];
            plan.inverse(&mut d, &mut sc).unwrap();
            let mut r = x.clone();
            FftPlannerScalar::<f64>::new()
                .plan_fft_inverse(n)
                .process(&mut r);
            assert!(rel_err(&d, &r) < 1e-12, "n = {n}");
        }
    }

    #[test]
    fn batched_and_repeated_calls_are_bit_identical() {
        for n in [6usize, 97, 480, 1750] {
            let x = input(3 * n, 5);
            let plan = DftPlan::new(n).unwrap();
            let mut sc = vec![C::new(f64::NAN, 1.0); plan.scratch_len() + 3];
            let mut a = x.clone();
            plan.forward(&mut a, &mut sc).unwrap();
            let mut b = x.clone();
            plan.forward(&mut b, &mut sc).unwrap();
            let other = DftPlan::new(n).unwrap();
            let mut c = x[n..2 * n].to_vec();
            other.forward(&mut c, &mut sc).unwrap();
            let bits = |v: &[C]| {
                v.iter()
                    .map(|z| (z.re.to_bits(), z.im.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&a), bits(&b));
            assert_eq!(bits(&a[n..2 * n]), bits(&c));
        }
    }

    #[test]
    fn rejects_bad_buffers() {
        assert!(DftPlan::new(0).is_err());
        let plan = DftPlan::new(10).unwrap();
        let mut sc = vec![ZERO; plan.scratch_len()];
        assert!(plan.forward(&mut [ZERO; 15], &mut sc).is_err());
        assert!(plan.forward(&mut [ZERO; 10], &mut []).is_err());
        assert!(plan.forward(&mut [], &mut sc).is_ok());
    }

    /// Golden bits. The constants were computed once by this test (first run, x86-64 Linux)
    /// and must never be regenerated: files written by earlier versions are decoded by
    /// re-running this FFT, so any change in operation order, factor order, radix threshold,
    /// twiddle or chirp formula that changes one output bit would make those files unreadable.
    /// If this fails, the change is a format break, not a test to update.
    #[test]
    fn golden_bits() {
        // Lengths chosen to cover every code path: identity, radix 4, direct odd radix (97),
        // whole-length Bluestein (241, 8761), mixed 4/2/3/5 (480), 2/5/7 (1750), large direct
        // radices 47 and 83 (7802), nested Bluestein for a prime factor above the threshold (303).
        let cases: [(usize, u64); 9] = [
            (1, 0x1c937f9e749a1175),
            (16, 0x78eec0bb38ef4ff6),
            (97, 0x9062ad424c00f9c5),
            (241, 0xc98bff131e94d8fe),
            (303, 0x47608de9f8f3f17d),
            (480, 0xf7706f9e710bfd8a),
            (1750, 0xb024cefb7134f559),
            (47 * 83 * 2, 0xf7b2c5f8dfb24446),
            (8761, 0x1d696494e5239576),
        ];
        let mut got = Vec::new();
        for &(n, _) in &cases {
            let x = input(n, 0x9e37_79b9_7f4a_7c15);
            let plan = DftPlan::new(n).unwrap();
            let mut d = x.clone();
            let mut sc = vec![ZERO; plan.scratch_len()];
            plan.forward(&mut d, &mut sc).unwrap();
            let mut h = fnv(d.iter().flat_map(|z| [z.re.to_bits(), z.im.to_bits()]));
            d.clone_from(&x);
            plan.inverse(&mut d, &mut sc).unwrap();
            h ^= fnv(d.iter().flat_map(|z| [z.re.to_bits(), z.im.to_bits()])).rotate_left(1);
            got.push((n, h));
        }
        let want: Vec<(usize, u64)> = cases.to_vec();
        assert_eq!(got, want, "golden FFT bits changed: this is a format break");
    }
}
