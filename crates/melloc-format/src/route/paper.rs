//! The paper route: MeLLoC as published (learned stencil, quantised source term, FFT inversion,
//! residual), made bit-exact.
//!
//! # Pipeline (per block of `n_slices x n_rows x n_cols` values, C order)
//! 1. **Integerise** the block with `melloc_core::integer::integerize`: every value becomes an
//!    integer `k` (grid index, or signed ordered bits) or an exception (NaN, inf, fill value)
//!    stored verbatim. Prediction happens in the *value domain* `w = domain_value(k)` (grid
//!    index units, or the float value itself). Exceptions are replaced in `w` by the mean of the
//!    slice's other values and masked out of the stencil fit.
//! 2. Per slice: **learn** the stencil `c` on `w` (`melloc_core::learn_stencil`, centre fixed
//!    to 1), compute `f = L w` on the torus, and store `mean(w)`.
//! 3. **Precision control** (paper, Cases I-III): `f` is quantised with step `2^e`; for each
//!    candidate `e` we run the whole pipeline and measure the zstd-compressed size of the
//!    quantised `f` plus the residual; the smallest wins. Candidates span from "all of `f`
//!    rounds to 0" (`e` above `log2 max|f|`) down to a step 64x finer than the domain's
//!    resolution; a coarse grid over that range is refined around the best by halving.
//! 4. **Solve** `u_hat = L^-1 f_q` with the periodic FFT solver (`melloc_solver`), zero
//!    frequency set to the stored mean, near-zero symbol values regularised to 0.
//!    Boundary handling: the torus extension is used as is (no separate `u0`); the jumps at the
//!    wrap-around live in the first/last rows/columns of `f` and are coded with it. Whatever the
//!    torus model misses is in the residual, so the result is exact by construction.
//! 5. **Residual** in the integer domain: `r = k - int_of_prediction(u_hat)` (wrapping `i64`),
//!    0 at exceptions. It is coded either as is (mode 0) or after a 2-D Lorenzo difference
//!    `r[i,j] - r[i-1,j] - r[i,j-1] + r[i-1,j-1]` (mode 1): the error of a quantised `f` is
//!    amplified by `1/|B|` at low frequencies into a *smooth* residual, which Lorenzo removes.
//!    The smaller (measured) mode is kept per slice.
//!
//! The decoder re-runs steps 4-5 from the stored streams; the solver is deterministic
//! (see `melloc_solver`), so the predictions, and therefore the values, are bit-identical.
//!
//! # Sections (layout version 1), all integers little-endian
//! | # | kind | content |
//! |---|---|---|
//! | 0 | 0 `params` | `u8` layout version = 1; `u8` integerisation: 0 ordered bits, 1 grid `offset + k*scale`, 2 grid `offset + k/scale`; for grids `f64 offset`, `f64 scale`; then per slice: 9 x `f64` stencil `c1..c9`, `f64` mean, `i16` step exponent `e`, `u8` residual mode (0 plain, 1 Lorenzo). Exact length required. |
//! | 1 | 1 `f` | per slice, `n_rows * n_cols` quantised `f` values as zigzag LEB128 varints (`|q| <= 2^53`) |
//! | 2 | 2 `residual` | per slice, the (mode-coded) residual at every non-exception position, zigzag varints |
//! | 3 | 3 `exceptions` | varint count; count varint gaps (`pos_0 = gap_0`, `pos_n = pos_{n-1} + 1 + gap_n`, block positions); count raw bit patterns (`N_BYTES` each) |
//! | 4 | 4 `fixes` | grids only (else empty): ulp fix per non-exception position, zigzag varints |
//!
//! Every section must be consumed exactly; every count, position, exponent, `q` and float
//! parameter is validated before use. Allocations are sized from `dims` only.

use melloc_core::integer::{integerize, restore, GridOp, Integerisation, Integerized};
use melloc_core::quantize::{MAX_STEP_LOG2, MIN_STEP_LOG2};
use melloc_core::stencil::apply_stencil_periodic;
use melloc_core::{learn_stencil, BlockDims, DType, Float, Stencil, UniformQuantizer};
use melloc_solver::PeriodicSolver;

use super::{RouteConfig, RouteInfo, SliceInfo};
use crate::error::{corrupt, FormatError, Result};
use crate::section::{expect_section, Section};

const KIND_PARAMS: u8 = 0;
const KIND_F: u8 = 1;
const KIND_RESIDUAL: u8 = 2;
const KIND_EXCEPTIONS: u8 = 3;
const KIND_FIXES: u8 = 4;

const LAYOUT_VERSION: u8 = 1;
const INT_ORDERED: u8 = 0;
const INT_GRID_MUL: u8 = 1;
const INT_GRID_DIV: u8 = 2;

/// Bytes of per-slice parameters: 9 stencil + mean (`f64`), exponent (`i16`), mode (`u8`).
const SLICE_PARAMS_LEN: usize = 9 * 8 + 8 + 2 + 1;

const MODE_PLAIN: u8 = 0;
const MODE_LORENZO: u8 = 1;

/// zstd level used to *measure* candidate sizes (the container picks its own level later;
/// level 3 ranks candidates the same way as higher levels at a fraction of the time).
const MEASURE_LEVEL: i32 = 3;

/// Stencils with a coefficient beyond this are treated as failed fits (identity instead):
/// they come from near-singular normal equations and make `f` huge without helping.
const MAX_ABS_COEFF: f64 = 1e6;

// ---------------------------------------------------------------------------------------------
// Integer stream coding.

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked cursor over an untrusted section.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| FormatError::Truncated(format!("paper route {} section", self.what)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array::<8>()?))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(corrupt!("paper route {}: varint overflows u64", self.what));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt!("paper route {}: varint too long", self.what))
    }

    fn finish(&self) -> Result<()> {
        if self.pos != self.data.len() {
            return Err(corrupt!(
                "paper route {}: {} trailing bytes",
                self.what,
                self.data.len() - self.pos
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of encoder and decoder.

/// Per-slice parameters as stored.
#[derive(Clone, Copy, Debug)]
struct SliceParams {
    stencil: Stencil,
    mean: f64,
    step_log2: i32,
    mode: u8,
}

/// Predicted integers of one slice: `int_of_prediction(u_hat)` with `u_hat = L^-1 f_q`.
fn predict_ints<T: Float>(
    solver: &mut PeriodicSolver,
    kind: &Integerisation,
    params: &SliceParams,
    f_deq: &[f64],
    u_hat: &mut [f64],
    pred: &mut [i64],
) -> Result<()> {
    solver
        .solve_into(&params.stencil, f_deq, params.mean, u_hat)
        .map_err(|e| FormatError::InvalidArgument(e.to_string()))?;
    for (p, &u) in pred.iter_mut().zip(u_hat.iter()) {
        // Non-finite predictions (overflow inside the FFT) map to 0 deterministically.
        *p = kind.int_of_prediction::<T>(if u.is_finite() { u } else { 0.0 });
    }
    Ok(())
}

/// Mode-codes a dense residual field (0 at exceptions) into the values to store.
fn forward_mode(r: &[i64], n_cols: usize, mode: u8, out: &mut Vec<i64>) {
    out.clear();
    for (p, &v) in r.iter().enumerate() {
        let d = if mode == MODE_LORENZO {
            let (i, j) = (p / n_cols, p % n_cols);
            let up = if i > 0 { r[p - n_cols] } else { 0 };
            let left = if j > 0 { r[p - 1] } else { 0 };
            let ul = if i > 0 && j > 0 { r[p - n_cols - 1] } else { 0 };
            v.wrapping_sub(up).wrapping_sub(left).wrapping_add(ul)
        } else {
            v
        };
        out.push(d);
    }
}

fn integerisation_tag(kind: &Integerisation) -> (u8, f64, f64) {
    match *kind {
        Integerisation::Ordered => (INT_ORDERED, 0.0, 0.0),
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Mul,
        } => (INT_GRID_MUL, offset, scale),
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Div,
        } => (INT_GRID_DIV, offset, scale),
    }
}

/// Slices that carry parameters: none when slices are empty (`n_rows * n_cols == 0`).
fn n_param_slices(dims: BlockDims) -> usize {
    if dims.n_rows == 0 || dims.n_cols == 0 {
        0
    } else {
        dims.n_slices
    }
}

fn check_dims(dims: BlockDims) -> Result<usize> {
    dims.n_slices
        .checked_mul(dims.n_rows)
        .and_then(|v| v.checked_mul(dims.n_cols))
        .ok_or_else(|| FormatError::InvalidArgument(format!("block {dims:?} overflows usize")))
}

// ---------------------------------------------------------------------------------------------
// Encoder.

/// The encoder's best choice for one slice.
struct SliceChoice {
    params: SliceParams,
    f_bytes: Vec<u8>,
    residual_bytes: Vec<u8>,
}

fn measured_len(bytes: &[u8]) -> usize {
    zstd::bulk::compress(bytes, MEASURE_LEVEL)
        .map(|c| c.len())
        .unwrap_or(bytes.len())
}

/// Floor of log2 of a positive finite value (exact, from the exponent bits; subnormals
/// are treated as 2^-1023).
fn floor_log2(v: f64) -> i32 {
    let bits = v.abs().to_bits();
    ((bits >> 52) & 0x7ff) as i32 - 1023
}

/// Encodes one slice: fit, precision search, streams.
#[allow(clippy::too_many_arguments)]
fn encode_slice<T: Float>(
    solver: &mut PeriodicSolver,
    kind: &Integerisation,
    ints: &[i64],
    is_exception: &[bool],
    n_rows: usize,
    n_cols: usize,
    effort: u8,
) -> Result<SliceChoice> {
    let n = ints.len();
    // Value domain, exceptions filled with the mean of the other values.
    let mut w: Vec<f64> = ints.iter().map(|&k| kind.domain_value::<T>(k)).collect();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (v, &e) in w.iter().zip(is_exception) {
        if !e {
            sum += v;
            count += 1;
        }
    }
    let fill = if count > 0 { sum / count as f64 } else { 0.0 };
    let fill = if fill.is_finite() { fill } else { 0.0 };
    for (v, &e) in w.iter_mut().zip(is_exception) {
        if e || !v.is_finite() {
            *v = fill;
        }
    }
    let mean = w.iter().fold(0.0, |s, v| s + v) / n as f64;
    let mean = if mean.is_finite() { mean } else { 0.0 };

    let mut stencil = match learn_stencil(&w, n_rows, n_cols, Some(is_exception)) {
        Ok(s) if s.coeffs.iter().all(|c| c.abs() <= MAX_ABS_COEFF) => s,
        _ => Stencil::IDENTITY,
    };
    let mut f = apply_stencil_periodic(&stencil, &w, n_rows, n_cols)?;
    if f.iter().any(|v| !v.is_finite()) {
        // Values near the f64 range limit overflow in L w: model them with the identity.
        stencil = Stencil::IDENTITY;
        f.clone_from(&w);
    }
    let max_f = f.iter().fold(
        0.0f64,
        |m, v| if v.is_finite() { m.max(v.abs()) } else { m },
    );
    let max_w = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));

    // Candidate exponent range.
    let (e_lo, e_hi) = if max_f > 0.0 && max_f.is_finite() {
        let top = floor_log2(max_f);
        let resolution_log2 = match kind {
            Integerisation::Grid { .. } => 0,
            Integerisation::Ordered if max_w > 0.0 => floor_log2(max_w) - T::MANTISSA_BITS as i32,
            Integerisation::Ordered => top - 30,
        };
        let hi = (top + 2).clamp(MIN_STEP_LOG2, MAX_STEP_LOG2);
        let lo = (resolution_log2 - 6)
            .max(top - 50)
            .clamp(MIN_STEP_LOG2, MAX_STEP_LOG2)
            .min(hi);
        (lo, hi)
    } else {
        (0, 0)
    };

    let mut tried: Vec<(i32, usize)> = Vec::new();
    let mut best: Option<(usize, SliceChoice)> = None;
    let mut f_q = Vec::with_capacity(n);
    let mut f_deq = Vec::with_capacity(n);
    let mut u_hat = vec![0.0; n];
    let mut pred = vec![0i64; n];
    let mut r = vec![0i64; n];
    let mut coded = Vec::with_capacity(n);

    let mut evaluate = |e: i32, best: &mut Option<(usize, SliceChoice)>| -> Result<usize> {
        let q = UniformQuantizer::new(e)?;
        if q.quantize_slice(&f, &mut f_q).is_err() || q.dequantize_slice(&f_q, &mut f_deq).is_err()
        {
            return Ok(usize::MAX);
        }
        let mut params = SliceParams {
            stencil,
            mean,
            step_log2: e,
            mode: MODE_PLAIN,
        };
        predict_ints::<T>(solver, kind, &params, &f_deq, &mut u_hat, &mut pred)?;
        for p in 0..n {
            r[p] = if is_exception[p] {
                0
            } else {
                ints[p].wrapping_sub(pred[p])
            };
        }
        let mut f_bytes = Vec::with_capacity(n);
        for &v in &f_q {
            put_varint(&mut f_bytes, zigzag(v));
        }
        let f_len = measured_len(&f_bytes);
        let mut best_res: Option<(usize, u8, Vec<u8>)> = None;
        for mode in [MODE_PLAIN, MODE_LORENZO] {
            forward_mode(&r, n_cols, mode, &mut coded);
            let mut bytes = Vec::with_capacity(n);
            for (&d, &e) in coded.iter().zip(is_exception) {
                if !e {
                    put_varint(&mut bytes, zigzag(d));
                }
            }
            let len = measured_len(&bytes);
            if best_res.as_ref().is_none_or(|(l, _, _)| len < *l) {
                best_res = Some((len, mode, bytes));
            }
        }
        let Some((res_len, mode, residual_bytes)) = best_res else {
            return Ok(usize::MAX);
        };
        params.mode = mode;
        let total = f_len + res_len;
        if best.as_ref().is_none_or(|(l, _)| total < *l) {
            *best = Some((
                total,
                SliceChoice {
                    params,
                    f_bytes,
                    residual_bytes,
                },
            ));
        }
        Ok(total)
    };

    let mut try_e = |e: i32, best: &mut Option<(usize, SliceChoice)>| -> Result<usize> {
        if let Some(&(_, s)) = tried.iter().find(|(t, _)| *t == e) {
            return Ok(s);
        }
        let s = evaluate(e, best)?;
        tried.push((e, s));
        Ok(s)
    };

    // Coarse grid from coarse to fine, then halve the stride around the best.
    let n_coarse: i32 = match effort {
        0..=2 => 4,
        3..=6 => 8,
        _ => 16,
    };
    let span = e_hi - e_lo;
    let mut stride = ((span + n_coarse - 1) / n_coarse).max(1);
    let mut best_e = e_hi;
    let mut best_size = usize::MAX;
    let mut e = e_hi;
    loop {
        let s = try_e(e, &mut best)?;
        if s < best_size {
            best_size = s;
            best_e = e;
        }
        if e <= e_lo {
            break;
        }
        e = (e - stride).max(e_lo);
    }
    while stride > 1 {
        stride = (stride + 1) / 2;
        for cand in [best_e - stride, best_e + stride] {
            if (e_lo..=e_hi).contains(&cand) {
                let s = try_e(cand, &mut best)?;
                if s < best_size {
                    best_size = s;
                    best_e = cand;
                }
            }
        }
        if stride == 1 {
            break;
        }
    }
    if let Some((_, choice)) = best {
        return Ok(choice);
    }
    // No step fits (only possible when |f| is within a step of the f64 limit): store f = 0
    // with the identity stencil and mean 0, so u_hat = 0 and the residual carries everything.
    let params = SliceParams {
        stencil: Stencil::IDENTITY,
        mean: 0.0,
        step_log2: 0,
        mode: MODE_PLAIN,
    };
    let zeros = vec![0.0; n];
    predict_ints::<T>(solver, kind, &params, &zeros, &mut u_hat, &mut pred)?;
    let mut residual_bytes = Vec::with_capacity(n);
    for p in 0..n {
        if !is_exception[p] {
            put_varint(&mut residual_bytes, zigzag(ints[p].wrapping_sub(pred[p])));
        }
    }
    Ok(SliceChoice {
        params,
        f_bytes: vec![0u8; n],
        residual_bytes,
    })
}

/// Encodes one block with the paper route (see the module docs).
pub fn encode<T: Float>(values: &[T], dims: BlockDims, cfg: &RouteConfig) -> Result<Vec<Section>> {
    let n_total = check_dims(dims)?;
    if values.len() != n_total {
        return Err(FormatError::LengthMismatch {
            expected: n_total as u64,
            actual: values.len() as u64,
        });
    }
    let Integerized {
        kind,
        ints,
        fixes,
        is_exception,
        exception_bits,
    } = integerize(values);

    let mut params = vec![LAYOUT_VERSION];
    let (tag, offset, scale) = integerisation_tag(&kind);
    params.push(tag);
    if tag != INT_ORDERED {
        params.extend_from_slice(&offset.to_le_bytes());
        params.extend_from_slice(&scale.to_le_bytes());
    }
    let mut f_section = Vec::new();
    let mut residual_section = Vec::new();

    let slice_len = dims.n_rows * dims.n_cols;
    if slice_len > 0 {
        let mut solver = PeriodicSolver::new(dims.n_rows, dims.n_cols)
            .map_err(|e| FormatError::InvalidArgument(e.to_string()))?;
        for s in 0..dims.n_slices {
            let range = s * slice_len..(s + 1) * slice_len;
            let choice = encode_slice::<T>(
                &mut solver,
                &kind,
                &ints[range.clone()],
                &is_exception[range],
                dims.n_rows,
                dims.n_cols,
                cfg.effort,
            )?;
            for c in choice.params.stencil.coeffs {
                params.extend_from_slice(&c.to_le_bytes());
            }
            params.extend_from_slice(&choice.params.mean.to_le_bytes());
            // The exponent is within [-1000, 1000], so it fits an i16.
            params.extend_from_slice(&(choice.params.step_log2 as i16).to_le_bytes());
            params.push(choice.params.mode);
            f_section.extend_from_slice(&choice.f_bytes);
            residual_section.extend_from_slice(&choice.residual_bytes);
        }
    }

    let mut exceptions = Vec::new();
    put_varint(&mut exceptions, exception_bits.len() as u64);
    let mut prev: Option<usize> = None;
    for (p, _) in is_exception.iter().enumerate().filter(|(_, &e)| e) {
        let gap = match prev {
            None => p,
            Some(q) => p - q - 1,
        };
        put_varint(&mut exceptions, gap as u64);
        prev = Some(p);
    }
    for &bits in &exception_bits {
        exceptions.extend_from_slice(&bits.to_le_bytes()[..T::N_BYTES]);
    }

    let mut fixes_section = Vec::new();
    if tag != INT_ORDERED {
        for (p, &e) in is_exception.iter().enumerate() {
            if !e {
                put_varint(
                    &mut fixes_section,
                    zigzag(fixes.get(p).copied().unwrap_or(0)),
                );
            }
        }
    }

    Ok(vec![
        Section::new(KIND_PARAMS, params),
        Section::new(KIND_F, f_section),
        Section::new(KIND_RESIDUAL, residual_section),
        Section::new(KIND_EXCEPTIONS, exceptions),
        Section::new(KIND_FIXES, fixes_section),
    ])
}

// ---------------------------------------------------------------------------------------------
// Decoder.

/// Parses and validates the params section.
fn parse_params(data: &[u8], n_slices: usize) -> Result<(Integerisation, Vec<SliceParams>)> {
    let mut rd = Reader::new(data, "params");
    let version = rd.u8()?;
    if version != LAYOUT_VERSION {
        return Err(corrupt!("paper route: unknown layout version {version}"));
    }
    let tag = rd.u8()?;
    let kind = match tag {
        INT_ORDERED => Integerisation::Ordered,
        INT_GRID_MUL | INT_GRID_DIV => {
            let offset = rd.f64()?;
            let scale = rd.f64()?;
            if !offset.is_finite() || !scale.is_finite() || scale == 0.0 {
                return Err(corrupt!(
                    "paper route: invalid grid offset {offset} / scale {scale}"
                ));
            }
            let op = if tag == INT_GRID_MUL {
                GridOp::Mul
            } else {
                GridOp::Div
            };
            Integerisation::Grid { offset, scale, op }
        }
        other => return Err(corrupt!("paper route: unknown integerisation {other}")),
    };
    let remaining = data.len() - rd.pos;
    let expected = n_slices
        .checked_mul(SLICE_PARAMS_LEN)
        .ok_or_else(|| corrupt!("paper route: too many slices"))?;
    if remaining != expected {
        return Err(FormatError::LengthMismatch {
            expected: (rd.pos + expected) as u64,
            actual: data.len() as u64,
        });
    }
    let mut slices = Vec::with_capacity(n_slices);
    for s in 0..n_slices {
        let mut coeffs = [0.0; 9];
        for c in coeffs.iter_mut() {
            *c = rd.f64()?;
        }
        let stencil = Stencil::new(coeffs);
        let mean = rd.f64()?;
        let step_log2 = i32::from(i16::from_le_bytes(rd.array::<2>()?));
        let mode = rd.u8()?;
        if !stencil.is_finite() || stencil.coeffs.iter().any(|c| c.abs() > MAX_ABS_COEFF) {
            return Err(corrupt!("paper route: slice {s}: invalid stencil"));
        }
        if !mean.is_finite() {
            return Err(corrupt!("paper route: slice {s}: non-finite mean"));
        }
        if !(MIN_STEP_LOG2..=MAX_STEP_LOG2).contains(&step_log2) {
            return Err(corrupt!(
                "paper route: slice {s}: step exponent {step_log2} out of range"
            ));
        }
        if mode != MODE_PLAIN && mode != MODE_LORENZO {
            return Err(corrupt!(
                "paper route: slice {s}: unknown residual mode {mode}"
            ));
        }
        slices.push(SliceParams {
            stencil,
            mean,
            step_log2,
            mode,
        });
    }
    rd.finish()?;
    Ok((kind, slices))
}

/// Parses the exceptions section into a mask and bit patterns.
fn parse_exceptions<T: Float>(data: &[u8], n_total: usize) -> Result<(Vec<bool>, Vec<u64>)> {
    let mut rd = Reader::new(data, "exceptions");
    let count = rd.varint()?;
    if count > n_total as u64 {
        return Err(corrupt!(
            "paper route: {count} exceptions in a block of {n_total} values"
        ));
    }
    // count <= n_total, so it fits usize.
    let count = count as usize;
    let mut mask = vec![false; n_total];
    let mut next = 0usize;
    for _ in 0..count {
        let gap = rd.varint()?;
        let pos = usize::try_from(gap)
            .ok()
            .and_then(|g| next.checked_add(g))
            .filter(|&p| p < n_total)
            .ok_or_else(|| corrupt!("paper route: exception position out of range"))?;
        mask[pos] = true;
        next = pos + 1;
    }
    let mut bits = Vec::with_capacity(count);
    for _ in 0..count {
        let raw = rd.bytes(T::N_BYTES)?;
        let mut b = [0u8; 8];
        b[..T::N_BYTES].copy_from_slice(raw);
        bits.push(u64::from_le_bytes(b));
    }
    rd.finish()?;
    Ok((mask, bits))
}

/// Decodes the sections written by [`encode`]; validates everything, never panics.
pub fn decode<T: Float>(sections: &[Section], dims: BlockDims) -> Result<Vec<T>> {
    let n_total = check_dims(dims)?;
    if sections.len() != 5 {
        return Err(corrupt!(
            "paper route: expected 5 sections, found {}",
            sections.len()
        ));
    }
    let (kind, slices) = parse_params(
        expect_section(sections, 0, KIND_PARAMS)?,
        n_param_slices(dims),
    )?;
    let mut f_rd = Reader::new(expect_section(sections, 1, KIND_F)?, "f");
    let mut r_rd = Reader::new(expect_section(sections, 2, KIND_RESIDUAL)?, "residual");
    let (is_exception, exception_bits) =
        parse_exceptions::<T>(expect_section(sections, 3, KIND_EXCEPTIONS)?, n_total)?;
    let mut x_rd = Reader::new(expect_section(sections, 4, KIND_FIXES)?, "fixes");

    let slice_len = dims.n_rows * dims.n_cols;
    let mut ints = vec![0i64; n_total];
    if slice_len > 0 {
        let mut solver = PeriodicSolver::new(dims.n_rows, dims.n_cols)
            .map_err(|e| FormatError::InvalidArgument(e.to_string()))?;
        let mut f_deq = vec![0.0; slice_len];
        let mut u_hat = vec![0.0; slice_len];
        let mut pred = vec![0i64; slice_len];
        let mut r = vec![0i64; slice_len];
        for (s, params) in slices.iter().enumerate() {
            let q = UniformQuantizer::new(params.step_log2)?;
            for v in f_deq.iter_mut() {
                let k = unzigzag(f_rd.varint()?);
                *v = q
                    .dequantize(k)
                    .map_err(|e| corrupt!("paper route: slice {s}: {e}"))?;
            }
            predict_ints::<T>(&mut solver, &kind, params, &f_deq, &mut u_hat, &mut pred)?;
            let base = s * slice_len;
            let mask = &is_exception[base..base + slice_len];
            let n_cols = dims.n_cols;
            for p in 0..slice_len {
                if mask[p] {
                    r[p] = 0;
                    continue;
                }
                let d = unzigzag(r_rd.varint()?);
                r[p] = if params.mode == MODE_LORENZO {
                    let (i, j) = (p / n_cols, p % n_cols);
                    let up = if i > 0 { r[p - n_cols] } else { 0 };
                    let left = if j > 0 { r[p - 1] } else { 0 };
                    let ul = if i > 0 && j > 0 { r[p - n_cols - 1] } else { 0 };
                    d.wrapping_add(up).wrapping_add(left).wrapping_sub(ul)
                } else {
                    d
                };
            }
            for p in 0..slice_len {
                if !mask[p] {
                    ints[base + p] = pred[p].wrapping_add(r[p]);
                }
            }
        }
    }
    f_rd.finish()?;
    r_rd.finish()?;

    let fixes = match kind {
        Integerisation::Ordered => Vec::new(),
        Integerisation::Grid { .. } => {
            let mut fixes = vec![0i64; n_total];
            for (fx, &e) in fixes.iter_mut().zip(&is_exception) {
                if !e {
                    *fx = unzigzag(x_rd.varint()?);
                }
            }
            fixes
        }
    };
    x_rd.finish()?;
    restore::<T>(&kind, &ints, &fixes, &is_exception, &exception_bits)
        .ok_or_else(|| corrupt!("paper route: exceptions do not match the mask"))
}

/// Describes a paper-route chunk: integerisation, per-slice stencil, PDE and f step.
pub fn describe(sections: &[Section], dims: BlockDims, dtype: DType) -> Result<RouteInfo> {
    let (kind, slices) = parse_params(
        expect_section(sections, 0, KIND_PARAMS)?,
        n_param_slices(dims),
    )?;
    let mut notes = Vec::new();
    if let Ok(exc) = expect_section(sections, 3, KIND_EXCEPTIONS) {
        if let Ok(count) = Reader::new(exc, "exceptions").varint() {
            notes.push(format!(
                "{count} exceptions ({dtype} bit patterns kept verbatim)"
            ));
        }
    }
    let n_lorenzo = slices.iter().filter(|p| p.mode == MODE_LORENZO).count();
    notes.push(format!(
        "residual coded with 2-D Lorenzo in {n_lorenzo} of {} slices",
        slices.len()
    ));
    Ok(RouteInfo {
        integerisation: kind.describe(),
        slices: slices
            .iter()
            .map(|p| SliceInfo {
                stencil: Some(p.stencil.coeffs),
                pde: Some(p.stencil.to_pde().to_string()),
                f_step: melloc_core::quantize::pow2(p.step_log2),
            })
            .collect(),
        notes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<T: Float>(values: &[T], dims: BlockDims) -> Vec<Section> {
        let sections = encode(values, dims, &RouteConfig::default()).unwrap();
        let back: Vec<T> = decode(&sections, dims).unwrap();
        assert_eq!(back.len(), values.len());
        for (i, (a, b)) in values.iter().zip(&back).enumerate() {
            assert_eq!(
                a.to_bits_u64(),
                b.to_bits_u64(),
                "value {i}: {a:?} vs {b:?}"
            );
        }
        sections
    }

    fn smooth(n_slices: usize, n_rows: usize, n_cols: usize) -> Vec<f32> {
        let mut v = Vec::new();
        for s in 0..n_slices {
            for i in 0..n_rows {
                for j in 0..n_cols {
                    let (x, y) = (j as f64 / n_cols as f64, i as f64 / n_rows as f64);
                    v.push(
                        (280.0 + 10.0 * (6.0 * x + s as f64).sin() * (4.0 * y).cos() + 3.0 * x * y)
                            as f32,
                    );
                }
            }
        }
        v
    }

    fn total_len(sections: &[Section]) -> usize {
        sections.iter().map(|s| s.data.len()).sum()
    }

    #[test]
    fn smooth_field_roundtrips_and_describes() {
        let dims = BlockDims::new(2, 33, 47);
        let values = smooth(2, 33, 47);
        let sections = roundtrip(&values, dims);
        let info = describe(&sections, dims, DType::F32).unwrap();
        assert_eq!(info.slices.len(), 2);
        assert!(info.slices[0].pde.as_ref().unwrap().contains("u_xx"));
        assert!(info.slices[0].f_step.unwrap() > 0.0);
        let zstd_raw = {
            let mut raw = Vec::new();
            f32::extend_le_bytes(&values, &mut raw);
            zstd::bulk::compress(&raw, 3).unwrap().len()
        };
        let ours: usize = sections
            .iter()
            .map(|s| zstd::bulk::compress(&s.data, 3).unwrap().len())
            .sum();
        println!("smooth 2x33x47: paper {ours} bytes vs zstd {zstd_raw} bytes");
    }

    #[test]
    fn special_values_and_fills_roundtrip() {
        let dims = BlockDims::new(1, 9, 11);
        let mut values = smooth(1, 9, 11);
        values[0] = f32::NAN;
        values[5] = f32::from_bits(0x7fc0_1234);
        values[17] = f32::NEG_INFINITY;
        values[30] = -0.0;
        values[31] = 1.0e-40;
        values[40] = 9.96921e36;
        values[98] = f32::INFINITY;
        roundtrip(&values, dims);
        let f64s: Vec<f64> = values.iter().map(|&v| f64::from(v) * 1.000001).collect();
        roundtrip(&f64s, dims);
    }

    #[test]
    fn degenerate_shapes_roundtrip() {
        for &(s, r, c) in &[
            (1usize, 1usize, 1usize),
            (1, 2, 2),
            (1, 1, 50),
            (1, 50, 1),
            (3, 2, 5),
            (2, 7, 13),
        ] {
            let dims = BlockDims::new(s, r, c);
            let values = smooth(s, r, c);
            roundtrip(&values, dims);
            roundtrip(&vec![0.0f32; dims.len()], dims);
            roundtrip(&vec![-7.25f64; dims.len()], dims);
            roundtrip(&vec![f32::NAN; dims.len()], dims);
        }
        roundtrip::<f32>(&[], BlockDims::new(0, 4, 4));
        roundtrip::<f32>(&[], BlockDims::new(3, 0, 4));
        roundtrip::<f64>(&[], BlockDims::new(2, 5, 0));
        // Values at the edge of the f64 range: L w overflows, the route must still be exact.
        let huge = [
            f64::MAX,
            -f64::MAX,
            f64::MAX,
            1.0,
            -f64::MAX,
            f64::MAX,
            0.5,
            f64::MAX,
            -1.0,
        ];
        roundtrip(&huge, BlockDims::new(1, 3, 3));
        roundtrip(&[f64::MAX; 16], BlockDims::new(1, 4, 4));
    }

    #[test]
    fn packed_grid_data_roundtrips() {
        // int16-style packing: v = offset + k * 2^-6.
        let dims = BlockDims::new(1, 40, 40);
        let values: Vec<f32> = smooth(1, 40, 40)
            .iter()
            .map(|v| (v * 64.0).round() / 64.0)
            .collect();
        let sections = roundtrip(&values, dims);
        let info = describe(&sections, dims, DType::F32).unwrap();
        println!("{}", info.integerisation);
    }

    #[test]
    fn corrupt_sections_are_errors() {
        let dims = BlockDims::new(1, 6, 7);
        let values = smooth(1, 6, 7);
        let sections = encode(&values, dims, &RouteConfig::default()).unwrap();
        for k in 0..sections.len() {
            for cut in 0..sections[k].data.len() {
                let mut bad = sections.clone();
                bad[k].data.truncate(cut);
                assert!(decode::<f32>(&bad, dims).is_err(), "section {k} cut {cut}");
            }
            for byte in 0..sections[k].data.len() {
                for bit in 0..8 {
                    let mut bad = sections.clone();
                    bad[k].data[byte] ^= 1 << bit;
                    // Must not panic; may decode to other values.
                    let _ = decode::<f32>(&bad, dims);
                }
            }
        }
        assert!(decode::<f32>(&sections[..4], dims).is_err());
        assert!(decode::<f32>(&sections, BlockDims::new(2, 6, 7)).is_err());
    }

    #[test]
    fn smaller_than_raw_on_smooth_data() {
        let dims = BlockDims::new(1, 64, 64);
        let values = smooth(1, 64, 64);
        let sections = roundtrip(&values, dims);
        assert!(total_len(&sections) < values.len() * 4);
    }

    /// Middle slice of a few real files, when the shared data set is present.
    #[test]
    fn real_data_middle_slices() {
        let dir = std::path::Path::new("/work/shared/data");
        if !dir.is_dir() {
            println!("skipping: {} not found", dir.display());
            return;
        }
        let files = [
            "U-dc_50_100_100.f32",
            "T-wrf_56_48_48.f32",
            "t-echam5_17_96_192.f32",
            "t-pop_384_320.f32",
            "TH-fizhi_40_32_192.f64",
            "z-eraint_6_241_480.f32",
        ];
        for name in files {
            let path = dir.join(name);
            let Ok(bytes) = std::fs::read(&path) else {
                println!("skipping {name}: not readable");
                continue;
            };
            let stem = name.split('.').next().unwrap();
            let dims_v: Vec<usize> = stem
                .split('_')
                .skip(1)
                .map(|d| d.parse().unwrap())
                .collect();
            let (n_slices, n_rows, n_cols) = match dims_v.as_slice() {
                [r, c] => (1, *r, *c),
                [s, r, c] => (*s, *r, *c),
                _ => continue,
            };
            let is_f64 = name.ends_with(".f64");
            let nb = if is_f64 { 8 } else { 4 };
            let slice_bytes = n_rows * n_cols * nb;
            let mid = n_slices / 2;
            let raw = &bytes[mid * slice_bytes..(mid + 1) * slice_bytes];
            let dims = BlockDims::new(1, n_rows, n_cols);
            let sections = if is_f64 {
                roundtrip(&f64::vec_from_le_bytes(raw), dims)
            } else {
                roundtrip(&f32::vec_from_le_bytes(raw), dims)
            };
            let ours: usize = sections
                .iter()
                .map(|s| {
                    zstd::bulk::compress(&s.data, 19)
                        .unwrap()
                        .len()
                        .min(s.data.len())
                })
                .sum();
            let zstd_raw = zstd::bulk::compress(raw, 19).unwrap().len();
            let info = describe(
                &sections,
                dims,
                if is_f64 { DType::F64 } else { DType::F32 },
            )
            .unwrap();
            println!(
                "{name} slice {mid}: paper ratio {:.3}, zstd-19 ratio {:.3}; {}; e=2^{:?}; {}",
                raw.len() as f64 / ours as f64,
                raw.len() as f64 / zstd_raw as f64,
                info.integerisation,
                info.slices[0].f_step.map(f64::log2),
                info.slices[0].pde.as_deref().unwrap_or("")
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn arbitrary_f32_bits_roundtrip(
            bits in proptest::collection::vec(any::<u32>(), 1..60),
            n_rows in 1usize..6,
        ) {
            let n_cols = bits.len().div_ceil(n_rows);
            let mut values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            values.resize(n_rows * n_cols, -0.0);
            roundtrip(&values, BlockDims::new(1, n_rows, n_cols));
        }

        #[test]
        fn arbitrary_f64_bits_roundtrip(
            bits in proptest::collection::vec(any::<u64>(), 1..60),
            n_slices in 1usize..3,
        ) {
            let n_cols = bits.len();
            let mut values: Vec<f64> = Vec::new();
            for s in 0..n_slices {
                values.extend(bits.iter().map(|&b| f64::from_bits(b.rotate_left(s as u32))));
            }
            roundtrip(&values, BlockDims::new(n_slices, 1, n_cols));
        }

        #[test]
        fn noisy_smooth_f32_roundtrips(
            noise in proptest::collection::vec(-1.0e-3f32..1.0e-3, 12 * 10),
        ) {
            let dims = BlockDims::new(1, 12, 10);
            let values: Vec<f32> = smooth(1, 12, 10).iter().zip(&noise).map(|(v, n)| v + n).collect();
            roundtrip(&values, dims);
        }
    }
}
