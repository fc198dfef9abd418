//! Exact integerisation of floats: every value becomes an integer, or an exception kept verbatim.
//!
//! A float has to become an integer before prediction residuals can be undone exactly. Two exact
//! routes exist (METHOD.md section 2):
//!
//! * **Grid** ([`Integerisation::Grid`]): many real fields are quantised (netCDF int16 packing
//!   `v = add_offset + k * scale_factor`, GRIB, decimal rounding to 0.1 mm or 0.01 K). We find
//!   `(offset, scale)` such that `v == T::from_f64(offset + k * scale)` (or `offset + k / scale`
//!   for decimal data written as `k / 100`) for almost every value, and code the integers `k`.
//!   Values the formula misses by a few units in the last place keep a small **ulp fix**
//!   `signed_ordered(v) - signed_ordered(grid(k))`, so the grid is exact for every value, not just
//!   most of them. The fit is *verified* on every value, never assumed.
//! * **Ordered bits** ([`Integerisation::Ordered`]): the monotone map of the IEEE bit pattern to
//!   a signed integer ([`to_signed_ordered`]); works for every value.
//!
//! **Exceptions** are NaN (with payload), +-inf and detected fill values (a value that is
//! frequent and lies far outside the range of the other values, such as 9.96921e36, 1e20 or
//! -9999000). They are flagged in a mask and their bit patterns kept in order, so routes keep them
//! out of stencil fits and out of neighbours' predictions.
//!
//! Everything here is deterministic: only IEEE `+ - * /` and `round` on `f64`, fixed order.

use crate::Float;

/// Largest |k| accepted on a grid: integers up to 2^52 are exact in `f64`.
const MAX_GRID_INDEX: f64 = 4_503_599_627_370_496.0;
/// Values sampled for grid and fill detection (a deterministic stride sample).
const SAMPLE_SIZE: usize = 1 << 16;
/// A grid is kept when at most this fraction of values need a non-zero ulp fix.
const MAX_FIX_FRACTION: f64 = 0.10;
/// A grid is only worth it when its levels are coarser than the float's own spacing: at most
/// 2^(mantissa bits - 2) levels across the value range.
const MIN_SPARE_BITS: u32 = 2;

/// The ordered-bits mapping shifted so that it is monotone as a *signed* integer: `-0.0 -> -1`,
/// `+0.0 -> 0`, positive floats positive, negative floats negative.
#[inline]
pub fn to_signed_ordered<T: Float>(v: T) -> i64 {
    let flipped = v.to_ordered() ^ (1u64 << (T::N_BITS - 1));
    if T::N_BITS == 64 {
        flipped as i64
    } else {
        // Sign-extend the low N_BITS.
        let shift = 64 - T::N_BITS;
        ((flipped << shift) as i64) >> shift
    }
}

/// Inverse of [`to_signed_ordered`]; the integer is taken modulo 2^N_BITS, so any `i64` maps to
/// some float (decoders never fail here).
#[inline]
pub fn from_signed_ordered<T: Float>(i: i64) -> T {
    T::from_ordered((i as u64) ^ (1u64 << (T::N_BITS - 1)))
}

/// How a grid value is rebuilt from its index `k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridOp {
    /// `offset + k * scale`.
    Mul,
    /// `offset + k / scale` (decimal data written as `k / 100`).
    Div,
}

/// How values became integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Integerisation {
    /// `v = T::from_f64(offset + k op scale)`, then the ulp fix in signed-ordered space.
    Grid {
        /// Offset added to every value.
        offset: f64,
        /// Step (for [`GridOp::Mul`]) or divisor (for [`GridOp::Div`]).
        scale: f64,
        /// The operation.
        op: GridOp,
    },
    /// `v = from_signed_ordered(k)`.
    Ordered,
}

impl Integerisation {
    /// The grid value of index `k`, before any ulp fix.
    #[inline]
    pub fn grid_value(offset: f64, scale: f64, op: GridOp, k: i64) -> f64 {
        match op {
            GridOp::Mul => offset + (k as f64) * scale,
            GridOp::Div => offset + (k as f64) / scale,
        }
    }

    /// Rebuilds a value from its integer and ulp fix (`fix` is ignored for `Ordered`).
    #[inline]
    pub fn value_of<T: Float>(&self, k: i64, fix: i64) -> T {
        match *self {
            Integerisation::Ordered => from_signed_ordered(k),
            Integerisation::Grid { offset, scale, op } => {
                let base = T::from_f64(Self::grid_value(offset, scale, op, k));
                if fix == 0 {
                    base
                } else {
                    from_signed_ordered(to_signed_ordered(base).wrapping_add(fix))
                }
            }
        }
    }

    /// The value a predictor should see for integer `k`: the grid index itself (predicting in
    /// index units) or, for ordered bits, the float value.
    #[inline]
    pub fn domain_value<T: Float>(&self, k: i64) -> f64 {
        match self {
            Integerisation::Grid { .. } => k as f64,
            Integerisation::Ordered => {
                let v = from_signed_ordered::<T>(k).to_f64();
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            }
        }
    }

    /// Maps a prediction in the domain of [`Integerisation::domain_value`] to an integer.
    /// Total: NaN or infinite predictions map to 0, huge ones saturate.
    #[inline]
    pub fn int_of_prediction<T: Float>(&self, pred: f64) -> i64 {
        if !pred.is_finite() {
            return 0;
        }
        match self {
            Integerisation::Grid { .. } => {
                round_to_i64(pred.clamp(-MAX_GRID_INDEX, MAX_GRID_INDEX))
            }
            Integerisation::Ordered => {
                let v = T::from_f64(pred);
                if v.is_finite_value() {
                    to_signed_ordered(v)
                } else {
                    // Overflow to +-inf in f32: saturate at the largest finite value of that sign.
                    let big = if pred > 0.0 { f64::MAX } else { f64::MIN };
                    to_signed_ordered(T::from_f64(big.clamp(-3.4e38, 3.4e38)))
                }
            }
        }
    }

    /// The physical value (as `f64`) of integer `k`: the grid value for grids, the float itself
    /// for ordered bits (0 for non-finite). Unlike [`Integerisation::domain_value`], this is
    /// comparable across slices that use different grids.
    #[inline]
    pub fn physical_value<T: Float>(&self, k: i64) -> f64 {
        match *self {
            Integerisation::Grid { offset, scale, op } => Self::grid_value(offset, scale, op, k),
            Integerisation::Ordered => self.domain_value::<T>(k),
        }
    }

    /// Maps a prediction of the *physical* value to an integer of this integerisation
    /// (the inverse of [`Integerisation::physical_value`] up to rounding). Total.
    #[inline]
    pub fn int_of_physical_prediction<T: Float>(&self, pred: f64) -> i64 {
        match *self {
            Integerisation::Grid { offset, scale, op } => {
                if !pred.is_finite() {
                    return 0;
                }
                let k = match op {
                    GridOp::Mul => (pred - offset) / scale,
                    GridOp::Div => (pred - offset) * scale,
                };
                self.int_of_prediction::<T>(k)
            }
            Integerisation::Ordered => self.int_of_prediction::<T>(pred),
        }
    }

    /// A one-line description for `melloc info`.
    pub fn describe(&self) -> String {
        match self {
            Integerisation::Ordered => "ordered bits".to_string(),
            Integerisation::Grid {
                offset,
                scale,
                op: GridOp::Mul,
            } => {
                format!("grid v = {offset:e} + k * {scale:e}")
            }
            Integerisation::Grid {
                offset,
                scale,
                op: GridOp::Div,
            } => {
                format!("grid v = {offset:e} + k / {scale:e}")
            }
        }
    }
}

/// The integer form of a block of values.
#[derive(Clone, Debug)]
pub struct Integerized {
    /// How the integers relate to the values.
    pub kind: Integerisation,
    /// One integer per value; 0 at exception positions (routes must not rely on it there).
    pub ints: Vec<i64>,
    /// Per-value ulp fix for grids; **empty when every fix is zero** (always for `Ordered`),
    /// so a clean grid costs no memory here.
    pub fixes: Vec<i64>,
    /// `true` where the value is an exception.
    pub is_exception: Vec<bool>,
    /// Bit patterns of the exceptions, in position order.
    pub exception_bits: Vec<u64>,
}

impl Integerized {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.ints.len()
    }
    /// `true` for an empty block.
    pub fn is_empty(&self) -> bool {
        self.ints.is_empty()
    }
    /// Number of non-zero ulp fixes.
    pub fn n_fixes(&self) -> usize {
        self.fixes.iter().filter(|&&f| f != 0).count()
    }
}

/// Integerises `values`: detects exceptions, then a grid if one fits, else ordered bits.
pub fn integerize<T: Float>(values: &[T]) -> Integerized {
    let is_exception = detect_exceptions(values);
    integerize_with_mask(values, is_exception)
}

/// Integerises `values` with a given exception mask (same length as `values`).
pub fn integerize_with_mask<T: Float>(values: &[T], is_exception: Vec<bool>) -> Integerized {
    let exception_bits = gather_exceptions(values, &is_exception);
    if let Some(kind) = detect_grid(values, &is_exception) {
        if let Some((ints, fixes)) = grid_ints_sparse(values, &is_exception, kind) {
            return Integerized {
                kind,
                ints,
                fixes,
                is_exception,
                exception_bits,
            };
        }
    }
    let ints = values
        .iter()
        .zip(&is_exception)
        .map(|(&v, &e)| if e { 0 } else { to_signed_ordered(v) })
        .collect();
    Integerized {
        kind: Integerisation::Ordered,
        ints,
        fixes: Vec::new(),
        is_exception,
        exception_bits,
    }
}

/// One plane of integers in the narrowest width the producer could use.
#[derive(Clone, Debug)]
pub enum IntPlane {
    /// Every integer fits 32 bits.
    Narrow(Vec<i32>),
    /// 64-bit integers (they may still all fit 32 bits: `f64` ordered bits are not checked).
    Wide(Vec<i64>),
}

/// [`Integerized`] with the integers in an [`IntPlane`] and the ulp fixes (`|fix| <= 4`) in 32
/// bits, empty when every fix is zero. The exception mask stays with the caller (a copy of it
/// was a quarter of the input's size for `f32` data), and so do the exceptions' bit patterns:
/// they are the caller's values at the masked positions (a list of them took 8 bytes an
/// exception, 3.2 MB for the 1.96 MB RATE-rmi field).
#[derive(Clone, Debug)]
pub struct IntegerizedPlanes {
    /// How the integers relate to the values.
    pub kind: Integerisation,
    /// One integer per value; 0 at exception positions.
    pub ints: IntPlane,
    /// Per-value ulp fix for grids; empty when every fix is zero.
    pub fixes: Vec<i32>,
}

/// [`integerize_with_mask`] (the same kind, integers and fixes) written straight into 32-bit
/// planes where they fit: grid indices are tried as `i32` first (redone as `i64` only when one
/// does not fit), and `f32` ordered bits always fit. Saves the 8-byte-per-value `i64` plane and
/// the pass that narrowed it.
pub fn integerize_planes<T: Float>(values: &[T], is_exception: &[bool]) -> IntegerizedPlanes {
    let grid = detect_grid(values, is_exception);
    integerize_planes_on(values, is_exception, grid)
}

/// [`integerize_planes`] given `grid`, the result of [`detect_grid`] on the same values and
/// mask (for callers that already have it).
pub fn integerize_planes_on<T: Float>(
    values: &[T],
    is_exception: &[bool],
    grid: Option<Integerisation>,
) -> IntegerizedPlanes {
    if let Some(kind) = grid {
        let n = values.len().min(is_exception.len());
        let (v, e) = (&values[..n], &is_exception[..n]);
        let narrow = match kind {
            Integerisation::Grid {
                offset,
                scale,
                op: GridOp::Mul,
            } => grid_ints_op::<T, false, i32>(v, e, offset, scale),
            Integerisation::Grid {
                offset,
                scale,
                op: GridOp::Div,
            } => grid_ints_op::<T, true, i32>(v, e, offset, scale),
            // `detect_grid` only returns grids; `grid_ints_sparse` decides as before.
            Integerisation::Ordered => Err(GridMiss::TooWide),
        };
        let planes = match narrow {
            Ok((ints, fixes, n_fix)) => {
                // The fix-count rule of `grid_ints_sparse`.
                ((n_fix as f64) <= MAX_FIX_FRACTION * values.len().max(1) as f64)
                    .then_some((IntPlane::Narrow(ints), fixes))
            }
            Err(GridMiss::Off) => None,
            Err(GridMiss::TooWide) => {
                grid_ints_sparse(values, is_exception, kind).map(|(ints, fixes)| {
                    // Fixes are within +-4.
                    let fixes = fixes.iter().map(|&f| f as i32).collect();
                    (IntPlane::Wide(ints), fixes)
                })
            }
        };
        if let Some((ints, fixes)) = planes {
            return IntegerizedPlanes { kind, ints, fixes };
        }
    }
    let ord = |(&v, &e): (&T, &bool)| if e { 0 } else { to_signed_ordered(v) };
    let ints = if T::N_BITS <= 32 {
        // Sign-extended 32-bit patterns.
        IntPlane::Narrow(
            values
                .iter()
                .zip(is_exception)
                .map(|x| ord(x) as i32)
                .collect(),
        )
    } else {
        IntPlane::Wide(values.iter().zip(is_exception).map(ord).collect())
    };
    IntegerizedPlanes {
        kind: Integerisation::Ordered,
        ints,
        fixes: Vec::new(),
    }
}

/// The bit patterns of the values flagged in `is_exception`, in order. Sized from the mask first
/// so the vector never grows by doubling (peak memory); the count as a sum of 0/1 vectorises.
/// The gathering loop is branch-free (every value is written at the next free slot, which only
/// advances on an exception): with exact zeros as exceptions (half of MRMS PrecipRate) it took
/// ~6 instructions per value instead of ~20 for `filter` + `push`, and skips the pass when there
/// is no exception.
fn gather_exceptions<T: Float>(values: &[T], is_exception: &[bool]) -> Vec<u64> {
    let n_exceptions: usize = is_exception.iter().map(|&e| usize::from(e)).sum();
    if n_exceptions == 0 {
        return Vec::new();
    }
    // One spare slot: the write for a trailing non-exception lands at index `n_exceptions`.
    let mut bits = vec![0u64; n_exceptions + 1];
    let mut j = 0usize;
    for (v, &e) in values.iter().zip(is_exception) {
        // `j` counts exceptions seen so far, never more than `n_exceptions`.
        bits[j] = v.to_bits_u64();
        j += usize::from(e);
    }
    bits.truncate(j);
    bits
}

/// Rebuilds the values from integers, fixes and exceptions. Total on any input of matching
/// lengths; returns `None` if lengths disagree or exceptions run out / are left over.
pub fn restore<T: Float>(
    kind: &Integerisation,
    ints: &[i64],
    fixes: &[i64],
    is_exception: &[bool],
    exception_bits: &[u64],
) -> Option<Vec<T>> {
    let n = ints.len();
    if is_exception.len() != n || !(fixes.is_empty() || fixes.len() == n) {
        return None;
    }
    let mut exc = exception_bits.iter();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if is_exception[i] {
            out.push(T::from_bits_u64(*exc.next()?));
        } else {
            let fix = if fixes.is_empty() { 0 } else { fixes[i] };
            out.push(kind.value_of::<T>(ints[i], fix));
        }
    }
    if exc.next().is_some() {
        return None;
    }
    Some(out)
}

/// The stride of [`sample_indices`]: 1 (every index) up to `SAMPLE_SIZE` values.
fn sample_stride(n: usize) -> usize {
    n.div_ceil(SAMPLE_SIZE).max(1)
}

/// Deterministic stride sample of at most `SAMPLE_SIZE` indices.
fn sample_indices(n: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by(sample_stride(n))
}

/// Flags NaN, +-inf and fill values.
///
/// A fill value is a finite value that occurs in at least 0.1% of a sample (and at least 4
/// times) and lies outside `[lo - 10 r, hi + 10 r]`, where `[lo, hi]` is the range of the
/// sampled values that are not fill candidates and `r = hi - lo`. This catches 9.96921e36 (POP),
/// 1e35 (FOAM), 1e20 (CMIP), -9999000/-8888000 (OPERA) and -999, but not exact zeros or -3 in a
/// 0..150 rain field, which are data and predictable.
pub fn detect_exceptions<T: Float>(values: &[T]) -> Vec<bool> {
    let fills = detect_fill_values(values);
    if fills.is_empty() {
        // The usual case: one compare per value, no search of `fills`.
        return values.iter().map(|&v| !v.is_finite_value()).collect();
    }
    values
        .iter()
        .map(|&v| !v.is_finite_value() || fills.contains(&v.to_bits_u64()))
        .collect()
}

/// The bit patterns of detected fill values (see [`detect_exceptions`]).
pub fn detect_fill_values<T: Float>(values: &[T]) -> Vec<u64> {
    let mut sample: Vec<u64> = sample_indices(values.len())
        .map(|i| values[i])
        .filter(|v| v.is_finite_value())
        .map(|v| v.to_bits_u64())
        .collect();
    if sample.len() < 8 {
        return Vec::new();
    }
    // Only runs of equal patterns matter, and every later step visits them in sorted order, so
    // any exact integer sort gives the same result; the radix sort replaced a comparison sort.
    radix_sort(&mut sample);
    let min_count = (sample.len() / 1000).max(4);
    let mut candidates: Vec<(usize, u64)> = Vec::new();
    let mut i = 0;
    while i < sample.len() {
        let mut j = i + 1;
        while j < sample.len() && sample[j] == sample[i] {
            j += 1;
        }
        if j - i >= min_count {
            candidates.push((j - i, sample[i]));
        }
        i = j;
    }
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    candidates.truncate(8);
    if candidates.is_empty() {
        return Vec::new();
    }
    let is_candidate = |b: u64| candidates.iter().any(|&(_, c)| c == b);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &b in &sample {
        if !is_candidate(b) {
            let v = T::from_bits_u64(b).to_f64();
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo > hi {
        // Every sampled value is a candidate: nothing to call "outside the range".
        return Vec::new();
    }
    let r = (hi - lo)
        .max(hi.abs().max(lo.abs()) * 1e-6)
        .max(f64::MIN_POSITIVE);
    candidates
        .iter()
        .map(|&(_, b)| b)
        .filter(|&b| {
            let v = T::from_bits_u64(b).to_f64();
            v < lo - 10.0 * r || v > hi + 10.0 * r
        })
        .collect()
}

/// Finds a grid `(offset, scale, op)` that reproduces the non-exception values, or `None`.
///
/// Candidates come from the sorted distinct sampled values: the smallest gap estimates the step,
/// a least-squares fit of `v = a + b k` refines it, and decimal snaps (`b` rounded to
/// 1, 2, 2.5 or 5 times a power of ten, with offset 0, as `k * b` and `k / (1/b)`) are tried too.
/// The candidate with the fewest non-zero ulp fixes on the sample wins and must need a fix on at
/// most 10% of values; callers verify on all values with [`grid_ints`].
pub fn detect_grid<T: Float>(values: &[T], is_exception: &[bool]) -> Option<Integerisation> {
    detect_grid_verified(values, is_exception).map(|(kind, _)| kind)
}

/// [`detect_grid`], plus whether the grid is already known to pass [`grid_fits`] on `values`
/// (when the sample was every valid value), so [`detect_slice_grids`] can skip that second pass.
fn detect_grid_verified<T: Float>(
    values: &[T],
    is_exception: &[bool],
) -> Option<(Integerisation, bool)> {
    // The sample as ordered bits: sorted as integers they are in the order of `f64::total_cmp`
    // on the widened values (both are the IEEE total order, f32 -> f64 is exact and NaN is
    // filtered out), so the radix sort below reproduces the former `sort_unstable_by(total_cmp)`
    // exactly, at a small fraction of its instructions. `n_valid` counts the sampled
    // non-exceptions, finite or not. Indices past the end of the mask count as exceptions.
    let stride = sample_stride(values.len());
    let mut keys: Vec<u64> = Vec::with_capacity(values.len().div_ceil(stride));
    let mut n_valid = 0usize;
    let mut take = |v: T, e: bool| {
        if !e {
            n_valid += 1;
            if v.is_finite_value() {
                keys.push(v.to_ordered());
            }
        }
    };
    if stride == 1 {
        values
            .iter()
            .zip(is_exception)
            .for_each(|(&v, &e)| take(v, e));
    } else {
        let mask = is_exception.iter().step_by(stride);
        (values.iter().step_by(stride).zip(mask)).for_each(|(&v, &e)| take(v, e));
    }
    let n_sample = keys.len();
    if n_sample == 0 {
        return None;
    }
    radix_sort(&mut keys);
    // Distinct values (ascending) and how often each was sampled: candidates are scored on the
    // distinct values weighted by their counts, which is the same count as over the whole sample
    // but much cheaper on packed data (few distinct values).
    let mut distinct: Vec<f64> = Vec::with_capacity(n_sample);
    let mut counts: Vec<usize> = Vec::with_capacity(n_sample);
    for run in keys.chunk_by(|a, b| a == b) {
        distinct.push(T::from_ordered(run[0]).to_f64());
        counts.push(run.len());
    }
    drop(keys);
    if distinct.len() == 1 {
        let kind = Integerisation::Grid {
            offset: distinct[0],
            scale: 1.0,
            op: GridOp::Mul,
        };
        // Not verified: `grid_fits` rebuilds -0.0 as +0.0 with a fix on every value.
        return Some((kind, false));
    }
    let lo = distinct[0];
    let hi = distinct[distinct.len() - 1];
    let min_gap = distinct
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    if min_gap.is_nan() || min_gap <= 0.0 || !min_gap.is_finite() {
        return None;
    }
    // Levels across the range must be well below the float's own resolution to be worth it.
    let max_levels = (1u64 << (T::MANTISSA_BITS - MIN_SPARE_BITS)) as f64;
    if (hi - lo) / min_gap > max_levels * 4.0 {
        return None;
    }
    // Step estimate: median of gaps close to the smallest one (float rounding jitters gaps).
    let mut near: Vec<f64> = distinct
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&g| g < 1.5 * min_gap)
        .collect();
    // The median by selection: the element at that rank is the same value as after a full sort
    // (elements equal under `total_cmp` are bit-identical).
    let mid = near.len() / 2;
    let step0 = *near.select_nth_unstable_by(mid, f64::total_cmp).1;
    // Least-squares refinement of v = a + b k over the distinct values. Indices are built from
    // *local* gaps (k grows by round(gap / step) between neighbours), so an estimate that is off
    // by 30% still gives the right indices; two passes converge.
    let mut fit = None;
    let mut step = step0;
    for _ in 0..2 {
        let (mut sk, mut sv, mut skk, mut skv) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut k = 0.0f64;
        let mut prev = lo;
        // The first value (`lo`, k = 0) adds +0.0 to every sum, so it is skipped. After it,
        // `v > prev` and the quotient is positive (never NaN): `max(r, 1.0)` is `r.max(1.0)`.
        for &v in &distinct[1..] {
            let r = round_f64((v - prev) / step);
            k += if r < 1.0 { 1.0 } else { r };
            prev = v;
            sk += k;
            sv += v - lo;
            skk += k * k;
            skv += k * (v - lo);
        }
        let m = distinct.len() as f64;
        let den = m * skk - sk * sk;
        if den.is_nan() || den <= 0.0 {
            break;
        }
        let b = (m * skv - sk * sv) / den;
        let a = lo + (sv - b * sk) / m;
        if !(b > 0.0 && b.is_finite() && a.is_finite()) {
            break;
        }
        step = b;
        fit = Some((a, b));
    }
    let mut candidates: Vec<Integerisation> = Vec::new();
    if let Some((a, b)) = fit {
        candidates.push(Integerisation::Grid {
            offset: a,
            scale: b,
            op: GridOp::Mul,
        });
        // The same grid anchored on a data value: exact when the offset is itself a grid point.
        let a_on_grid = lo - round_f64((lo - a) / b) * b;
        candidates.push(Integerisation::Grid {
            offset: a_on_grid,
            scale: b,
            op: GridOp::Mul,
        });
        if let Some(snap) = decimal_snap(b) {
            candidates.push(Integerisation::Grid {
                offset: 0.0,
                scale: snap,
                op: GridOp::Mul,
            });
            let inv = 1.0 / snap;
            if (inv - inv.round()).abs() < 1e-9 * inv && inv.round() >= 2.0 {
                candidates.push(Integerisation::Grid {
                    offset: 0.0,
                    scale: inv.round(),
                    op: GridOp::Div,
                });
            }
        }
    }
    candidates.push(Integerisation::Grid {
        offset: lo,
        scale: step0,
        op: GridOp::Mul,
    });
    // The first candidate with the fewest fixes wins, and only if at most `max_fixes` (10% of the
    // sample: `n <= max_fixes` is `n as f64 <= MAX_FIX_FRACTION * n_sample as f64` for integers).
    // So a candidate only matters if it beats the best so far: counting stops beyond that, and
    // after a candidate with no fix the rest are skipped. Same winner as counting every
    // candidate in full; on TREFHT (float-resolution grids that every candidate fits) this
    // halved `detect_grid`.
    let max_fixes = (MAX_FIX_FRACTION * n_sample as f64) as usize;
    let mut best: Option<(usize, Integerisation)> = None;
    for cand in candidates {
        let limit = match best {
            Some((0, _)) => break,
            Some((n, _)) => n - 1,
            None => max_fixes,
        };
        if let Some(n_fix) = count_fixes::<T>(&distinct, &counts, cand, limit) {
            best = Some((n_fix, cand));
        }
    }
    let (_, kind) = best?;
    // Every sampled value was checked by `count_fixes`; when the sample is the whole slice,
    // that is the check of `grid_fits` too (same arithmetic, and at most 10% of `n_sample <=
    // values.len()` values need a fix).
    let verified = stride == 1 && n_sample == n_valid;
    Some((kind, verified))
}

/// Per-slice grids: GRIB-style packing gives every 2-D level its own reference value and step
/// (ECHAM5 temperature: 17 levels, each `offset_s + k * 2^-e_s` with 16-bit `k`), so no single
/// grid fits the block while every slice is exactly on one. Returns one grid per slice of
/// `slice_len` values when the block has at least two slices, every slice is on a verified grid
/// (within the ulp-fix rules of [`grid_ints`]), and the grids are not all the same; otherwise
/// `None` (use [`integerize`]). A slice made only of exceptions gets a unit grid.
pub fn detect_slice_grids<T: Float>(
    values: &[T],
    is_exception: &[bool],
    slice_len: usize,
) -> Option<Vec<Integerisation>> {
    if slice_len == 0 || values.len() < 2 * slice_len || !values.len().is_multiple_of(slice_len) {
        return None;
    }
    let mut kinds = Vec::with_capacity(values.len() / slice_len);
    for (vals, mask) in values.chunks(slice_len).zip(is_exception.chunks(slice_len)) {
        if mask.iter().all(|&e| e) {
            kinds.push(Integerisation::Grid {
                offset: 0.0,
                scale: 1.0,
                op: GridOp::Mul,
            });
            continue;
        }
        let (kind, verified) = detect_grid_verified(vals, mask)?;
        if !verified && !grid_fits(vals, mask, kind) {
            return None;
        }
        kinds.push(kind);
    }
    if kinds.windows(2).all(|w| w[0] == w[1]) {
        return None;
    }
    Some(kinds)
}

/// `b` rounded to 1, 2, 2.5 or 5 times a power of ten when within 1e-4 relative, else `None`.
fn decimal_snap(b: f64) -> Option<f64> {
    if b.is_nan() || b <= 0.0 || !b.is_finite() {
        return None;
    }
    // Powers of ten by repeated multiplication/division (no libm: deterministic everywhere).
    let mut p = 1.0f64;
    let mut e = 0;
    while p > b && e > -30 {
        p /= 10.0;
        e -= 1;
    }
    while p * 10.0 <= b && e < 30 {
        p *= 10.0;
        e += 1;
    }
    for mult in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let cand = p * mult;
        if ((cand - b) / b).abs() < 1e-4 {
            // Rebuild from an exact decimal literal via parsing, so 0.1 is the nearest double to
            // 1/10 rather than an accumulation of rounding errors.
            let text = format!("{}e{}", mult, e);
            return text.parse::<f64>().ok();
        }
    }
    None
}

/// `x.round()` (ties away from zero) as an integer, for finite `|x| <= 2^52`, using only a
/// truncating conversion and one subtraction. `f64::round` is a libm call on x86-64 without
/// SSE4.1 and cost ~5% of encoding a dense field; this is exact and identical everywhere:
/// `t = trunc(x)` and `x - t` are both exact for `|x| <= 2^52` (Sterbenz for `|x| >= 1`).
///
/// The two comparisons are added as integers, not branched on: the fraction of a prediction is
/// close to random, and the branches LLVM made of an `if` chain were the most frequent
/// mispredicted branch of decoding grid fields.
#[inline]
pub fn round_to_i64(x: f64) -> i64 {
    let t = x as i64;
    let frac = x - t as f64;
    t.wrapping_add(i64::from(frac >= 0.5))
        .wrapping_sub(i64::from(frac <= -0.5))
}

/// `x.round()` (ties away from zero, `-0.0` for `-0.5 < x <= -0.0`, NaN and infinities
/// unchanged) without the libm call: `f64::round` was ~1.5% of encoding TREFHT through
/// [`detect_grid`]'s least-squares loop. Exact: below 2^52 [`round_to_i64`] is exact and the
/// integer converts back exactly; at or above 2^52 every float is already an integer.
#[inline]
fn round_f64(x: f64) -> f64 {
    if x.abs() < MAX_GRID_INDEX {
        (round_to_i64(x) as f64).copysign(x)
    } else {
        x
    }
}

/// Largest radix digit: 2^12 `u32` counters (16 KiB) stay in the L1 cache.
const RADIX_BITS: u32 = 12;

/// An unsigned key [`radix_sort`] sorts: `u64`, or `u32` for the ordered bits of `f32` values
/// (half the memory of `u64` keys and their scratch).
pub trait RadixKey: Copy + Ord + Default {
    /// The key, zero-extended.
    fn widen(self) -> u64;
}

impl RadixKey for u32 {
    #[inline(always)]
    fn widen(self) -> u64 {
        u64::from(self)
    }
}

impl RadixKey for u64 {
    #[inline(always)]
    fn widen(self) -> u64 {
        self
    }
}

/// Sorts `keys` ascending, the same result as `sort_unstable` (they are plain integers), by an
/// LSD radix sort over only the bits that vary between keys (for a field in one or two binades
/// that is ~24 of the 64), in as few digits of at most 12 bits (`RADIX_BITS`) as cover them. On the
/// 8192-value slices of TREFHT the comparison sort of `f64`s cost ~500 instructions per value,
/// a byte-wise radix sort ~78, this ~30. Public for the causal route's palettes, which sort
/// `u32` keys for `f32` data: the sort takes two key planes (keys and scratch), and as `u64`
/// they were 14.4 of the 22.5 MB heap peak of compressing TREFHT (3.6 MB).
pub fn radix_sort<K: RadixKey>(keys: &mut Vec<K>) {
    let n = keys.len();
    let Ok(n32) = u32::try_from(n) else {
        keys.sort_unstable();
        return;
    };
    if n < 256 {
        keys.sort_unstable();
        return;
    }
    let first = keys[0].widen();
    let varying = keys.iter().fold(0u64, |acc, &k| acc | (k.widen() ^ first));
    if varying == 0 {
        return;
    }
    let low = varying.trailing_zeros();
    let width = 64 - varying.leading_zeros() - low;
    let passes = width.div_ceil(RADIX_BITS);
    let digit = width.div_ceil(passes);
    let mask = (1u64 << digit) - 1;
    // `& (BUCKETS - 1)` is a no-op (`mask < BUCKETS`) that lets the compiler drop bounds checks.
    const BUCKETS: usize = 1 << RADIX_BITS;
    let bucket = |k: K, shift: u32| ((k.widen() >> shift) & mask) as usize & (BUCKETS - 1);
    let mut counts = [0u32; BUCKETS];
    let mut scratch = vec![K::default(); n];
    for pass in 0..passes {
        let shift = low + pass * digit;
        counts.fill(0);
        for &k in keys.iter() {
            counts[bucket(k, shift)] += 1;
        }
        if counts.contains(&n32) {
            continue;
        }
        let mut sum = 0u32;
        for c in counts.iter_mut() {
            let x = *c;
            *c = sum;
            sum += x;
        }
        for &k in keys.iter() {
            let c = &mut counts[bucket(k, shift)];
            scratch[*c as usize] = k;
            *c += 1;
        }
        std::mem::swap(keys, &mut scratch);
    }
}

/// Index of `v` on a grid (the nearest `k`), or `None` if out of the exact range.
#[inline]
fn grid_index(offset: f64, scale: f64, op: GridOp, v: f64) -> Option<i64> {
    let k = match op {
        GridOp::Mul => (v - offset) / scale,
        GridOp::Div => (v - offset) * scale,
    };
    // Also rejects NaN and infinities (the comparison is false for NaN).
    if k.abs() <= MAX_GRID_INDEX {
        Some(round_to_i64(k))
    } else {
        None
    }
}

/// Ulp fixes needed on a sample for a candidate grid, the sample given as its distinct values
/// with their counts; `None` if a value is off the grid by more than 4 ulp or its index is out
/// of range, or if more than `limit` values need a fix (counting stops there).
fn count_fixes<T: Float>(
    distinct: &[f64],
    counts: &[usize],
    kind: Integerisation,
    limit: usize,
) -> Option<usize> {
    match kind {
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Mul,
        } => count_fixes_op::<T, false>(distinct, counts, offset, scale, limit),
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Div,
        } => count_fixes_op::<T, true>(distinct, counts, offset, scale, limit),
        Integerisation::Ordered => None,
    }
}

/// [`count_fixes`] for one grid operation (`DIV` selects [`GridOp::Div`]). The values are
/// widened `T`s, so `T::from_f64` gives back the sampled value exactly.
fn count_fixes_op<T: Float, const DIV: bool>(
    distinct: &[f64],
    counts: &[usize],
    offset: f64,
    scale: f64,
    limit: usize,
) -> Option<usize> {
    let mut n = 0usize;
    for (&v, &count) in distinct.iter().zip(counts) {
        let (_, fix) = grid_point_op::<T, DIV>(T::from_f64(v), offset, scale)?;
        if fix != 0 {
            n += count;
            if n > limit {
                return None;
            }
        }
    }
    Some(n)
}

/// Grid indices and ulp fixes of every non-exception value (both of `values.len()`, exceptions
/// get 0); `None` if some value does not fit within the small fix range or too many need a fix.
pub fn grid_ints<T: Float>(
    values: &[T],
    is_exception: &[bool],
    kind: Integerisation,
) -> Option<(Vec<i64>, Vec<i64>)> {
    let (ints, mut fixes) = grid_ints_sparse(values, is_exception, kind)?;
    if fixes.is_empty() {
        fixes = vec![0; ints.len()];
    }
    Some((ints, fixes))
}

/// [`grid_ints`], except that the fixes vector is left empty when every fix is zero (it is
/// allocated at the first non-zero fix): saves 8 bytes per value on clean grids.
fn grid_ints_sparse<T: Float>(
    values: &[T],
    is_exception: &[bool],
    kind: Integerisation,
) -> Option<(Vec<i64>, Vec<i64>)> {
    let n = values.len().min(is_exception.len());
    let (ints, fixes, n_fix) = match kind {
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Mul,
        } => grid_ints_op::<T, false, i64>(&values[..n], &is_exception[..n], offset, scale).ok()?,
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Div,
        } => grid_ints_op::<T, true, i64>(&values[..n], &is_exception[..n], offset, scale).ok()?,
        // Not a grid: only a block made entirely of exceptions "fits".
        Integerisation::Ordered => {
            if !is_exception[..n].iter().all(|&e| e) {
                return None;
            }
            (vec![0; n], Vec::new(), 0)
        }
    };
    if (n_fix as f64) > MAX_FIX_FRACTION * values.len().max(1) as f64 {
        return None;
    }
    Some((ints, fixes))
}

/// An integer type the grid loop writes: `i64`, or `i32` when the caller wants 32-bit planes.
pub trait GridInt: Copy + Default {
    /// `k` in this type, or `None` when it does not fit.
    fn from_index(k: i64) -> Option<Self>;
}

impl GridInt for i64 {
    #[inline(always)]
    fn from_index(k: i64) -> Option<Self> {
        Some(k)
    }
}

impl GridInt for i32 {
    #[inline(always)]
    fn from_index(k: i64) -> Option<Self> {
        i32::try_from(k).ok()
    }
}

/// Why [`grid_ints_op`] gave up.
enum GridMiss {
    /// A value is off the grid (or out of the exact index range).
    Off,
    /// An index or fix does not fit the output type.
    TooWide,
}

/// The loop of [`grid_ints_sparse`] for one grid operation (`DIV` selects [`GridOp::Div`]), so
/// the per-value work has no branch on the operation; `values` and `is_exception` have the same
/// length. Returns the ints, the fixes (empty when all are zero) and the number of non-zero
/// fixes. ~2x fewer instructions than the generic loop that pushed into growing vectors.
fn grid_ints_op<T: Float, const DIV: bool, K: GridInt>(
    values: &[T],
    is_exception: &[bool],
    offset: f64,
    scale: f64,
) -> Result<(Vec<K>, Vec<K>, usize), GridMiss> {
    let n = values.len();
    let is_exception = &is_exception[..n];
    let mut ints = vec![K::default(); n];
    let mut fixes: Vec<K> = Vec::new();
    let mut n_fix = 0usize;
    // Indexing slices of one length `n` by `0..n` compiles without bounds checks; it measured
    // fewer instructions than a zip of three iterators with `enumerate`.
    let out = &mut ints[..n];
    for i in 0..n {
        if is_exception[i] {
            continue;
        }
        let (k, fix) = grid_point_op::<T, DIV>(values[i], offset, scale).ok_or(GridMiss::Off)?;
        out[i] = K::from_index(k).ok_or(GridMiss::TooWide)?;
        if fix != 0 {
            if fixes.is_empty() {
                fixes = vec![K::default(); n];
            }
            fixes[i] = K::from_index(fix).ok_or(GridMiss::TooWide)?;
            n_fix += 1;
        }
    }
    Ok((ints, fixes, n_fix))
}

/// Whether every non-exception value fits `kind` under the rules of [`grid_ints`], without
/// allocating (used to screen per-slice grids).
pub fn grid_fits<T: Float>(values: &[T], is_exception: &[bool], kind: Integerisation) -> bool {
    let n_fix = match kind {
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Mul,
        } => grid_fixes_op::<T, false>(values, is_exception, offset, scale),
        Integerisation::Grid {
            offset,
            scale,
            op: GridOp::Div,
        } => grid_fixes_op::<T, true>(values, is_exception, offset, scale),
        Integerisation::Ordered => values
            .iter()
            .zip(is_exception)
            .all(|(_, &e)| e)
            .then_some(0),
    };
    n_fix.is_some_and(|n_fix| (n_fix as f64) <= MAX_FIX_FRACTION * values.len().max(1) as f64)
}

/// Number of non-zero ulp fixes of the non-exception values on one grid (`DIV` selects
/// [`GridOp::Div`]), `None` as soon as a value does not fit.
fn grid_fixes_op<T: Float, const DIV: bool>(
    values: &[T],
    is_exception: &[bool],
    offset: f64,
    scale: f64,
) -> Option<usize> {
    let mut n_fix = 0usize;
    for (&v, &e) in values.iter().zip(is_exception) {
        if !e {
            let (_, fix) = grid_point_op::<T, DIV>(v, offset, scale)?;
            n_fix += usize::from(fix != 0);
        }
    }
    Some(n_fix)
}

/// Index and ulp fix of one value on the grid `(offset, scale)` with operation [`GridOp::Div`]
/// when `DIV`, else [`GridOp::Mul`]; `None` when it is off by more than 4 ulp or out of the exact
/// index range. The same arithmetic as [`Integerisation::value_of`] in reverse.
#[inline(always)]
fn grid_point_op<T: Float, const DIV: bool>(v: T, offset: f64, scale: f64) -> Option<(i64, i64)> {
    let op = if DIV { GridOp::Div } else { GridOp::Mul };
    let k = grid_index(offset, scale, op, v.to_f64())?;
    let rebuilt = T::from_f64(Integerisation::grid_value(offset, scale, op, k));
    // Equal bits mean a zero fix; skips the two ordered-bits conversions on most values.
    if rebuilt.to_bits_u64() == v.to_bits_u64() {
        return Some((k, 0));
    }
    let fix = to_signed_ordered(v).wrapping_sub(to_signed_ordered(rebuilt));
    if fix.unsigned_abs() > 4 {
        return None;
    }
    Some((k, fix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<T: Float>(values: &[T]) -> Integerized {
        let z = integerize(values);
        let back: Vec<T> = restore(
            &z.kind,
            &z.ints,
            &z.fixes,
            &z.is_exception,
            &z.exception_bits,
        )
        .unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(
                a.to_bits_u64(),
                b.to_bits_u64(),
                "{a:?} vs {b:?} ({:?})",
                z.kind
            );
        }
        z
    }

    #[test]
    fn signed_ordered_is_monotone_and_centred() {
        assert_eq!(to_signed_ordered(0.0f32), 0);
        assert_eq!(to_signed_ordered(-0.0f32), -1);
        assert_eq!(to_signed_ordered(0.0f64), 0);
        assert_eq!(to_signed_ordered(-0.0f64), -1);
        assert!(to_signed_ordered(1.0f64) > 0 && to_signed_ordered(-1.0f64) < -1);
        let vals = [
            f32::NEG_INFINITY,
            -3.0,
            -1e-40,
            -0.0,
            0.0,
            1e-45,
            2.0,
            f32::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(to_signed_ordered(w[0]) < to_signed_ordered(w[1]));
        }
    }

    #[test]
    fn packed_int16_field_is_a_grid() {
        // netCDF-style packing: v = f32(offset + k * scale) computed in f64.
        let (offset, scale) = (54321.123456789f64, 0.0123456789f64);
        let values: Vec<f32> = (0..5000)
            .map(|i| {
                let k = ((i * 7919) % 20000) as f64 - 10000.0;
                (offset + k * scale) as f32
            })
            .collect();
        let z = roundtrip(&values);
        assert!(
            matches!(z.kind, Integerisation::Grid { .. }),
            "{:?}",
            z.kind
        );
        // The integers span about the 20000 packed levels, not 2^23 float levels.
        let span = z.ints.iter().max().unwrap() - z.ints.iter().min().unwrap();
        assert!(span < 40_000, "span {span}");
    }

    #[test]
    fn decimal_field_written_as_division_is_a_grid() {
        // OPERA-like: nearest double to k/100, with fill values.
        let mut values: Vec<f64> = (0..4000)
            .map(|i| ((i * 37) % 5000) as f64 / 100.0)
            .collect();
        for v in values.iter_mut().step_by(3) {
            *v = -9_999_000.0;
        }
        let z = roundtrip(&values);
        assert!(
            matches!(z.kind, Integerisation::Grid { .. }),
            "{:?}",
            z.kind
        );
        assert_eq!(z.n_fixes(), 0, "k/100 should be reproduced exactly");
        assert_eq!(z.exception_bits.len(), values.iter().step_by(3).count());
    }

    #[test]
    fn decimal_tenths_in_f32() {
        // MRMS-like: (X - 30) / 10 in f64 rounded to f32, lots of zeros.
        let values: Vec<f32> = (0..6000)
            .map(|i| {
                if i % 2 == 0 {
                    0.0
                } else {
                    (((i * 13) % 1500) as f64 - 30.0) as f32 / 10.0
                }
            })
            .map(|v: f32| v.max(-3.0))
            .collect();
        let z = roundtrip(&values);
        assert!(
            matches!(z.kind, Integerisation::Grid { .. }),
            "{:?}",
            z.kind
        );
        assert!(z.n_fixes() < values.len() / 20);
    }

    #[test]
    fn per_level_packing_gives_slice_grids() {
        // Three levels, each packed with its own reference value and power-of-two step.
        let slice_len = 400;
        let mut values = Vec::new();
        for (s, (r, e)) in [(231.7f64, -9), (237.03, -10), (101.5, -12)]
            .iter()
            .enumerate()
        {
            let step = (2.0f64).powi(*e);
            for i in 0..slice_len {
                let k = ((i * 7 + s) % slice_len) as f64 * 3.0 + (i % 3) as f64;
                values.push((r + k * step) as f32);
            }
        }
        let mask = vec![false; values.len()];
        let kinds = detect_slice_grids(&values, &mask, slice_len).expect("slice grids");
        assert_eq!(kinds.len(), 3);
        for (s, kind) in kinds.iter().enumerate() {
            let vals = &values[s * slice_len..(s + 1) * slice_len];
            let (ints, fixes) = grid_ints(vals, &mask[..slice_len], *kind).unwrap();
            for ((&v, &k), &f) in vals.iter().zip(&ints).zip(&fixes) {
                assert_eq!(kind.value_of::<f32>(k, f).to_bits(), v.to_bits());
                let p = kind.physical_value::<f32>(k);
                assert_eq!(kind.int_of_physical_prediction::<f32>(p), k);
            }
        }
        // One grid for everything: not a per-slice case.
        let same: Vec<f32> = (0..800).map(|i| (i % 300) as f32 * 0.5).collect();
        assert!(detect_slice_grids(&same, &vec![false; 800], 400).is_none());
    }

    #[test]
    fn full_precision_field_is_ordered() {
        let values: Vec<f32> = (0..5000)
            .map(|i| (i as f32 * 0.001234).sin() * 300.0 + 1e-3)
            .collect();
        let z = roundtrip(&values);
        assert_eq!(z.kind, Integerisation::Ordered);
    }

    #[test]
    fn fill_values_and_nan_are_exceptions() {
        let mut values: Vec<f32> = (0..3000).map(|i| 280.0 + (i as f32 * 0.01).sin()).collect();
        for i in (0..3000).step_by(5) {
            values[i] = 9.96921e36;
        }
        values[7] = f32::from_bits(0x7fc0_1234);
        values[8] = f32::NEG_INFINITY;
        let z = roundtrip(&values);
        let n_exc = z.is_exception.iter().filter(|&&e| e).count();
        assert_eq!(n_exc, 600 + 2);
    }

    #[test]
    fn zeros_and_in_range_values_are_not_fills() {
        let values: Vec<f32> = (0..3000)
            .map(|i| {
                if i % 2 == 0 {
                    0.0
                } else {
                    (i % 97) as f32 * 0.37
                }
            })
            .collect();
        assert!(detect_fill_values(&values).is_empty());
    }

    #[test]
    fn constant_and_tiny_inputs() {
        roundtrip(&[5.0f32; 100]);
        roundtrip(&[-0.0f64; 3]);
        roundtrip::<f32>(&[]);
        roundtrip(&[1.0f32]);
        roundtrip(&[f64::NAN, 1.0, f64::INFINITY]);
    }

    /// The detection code before the radix-sort / early-stop rewrite, verbatim, as the reference
    /// the fast versions must match exactly (compressed outputs depend on every detail).
    mod reference {
        use super::super::{
            decimal_snap, round_to_i64, sample_indices, to_signed_ordered, Float, GridOp,
            Integerisation, MAX_FIX_FRACTION, MAX_GRID_INDEX, MIN_SPARE_BITS,
        };

        pub(super) fn grid_index(offset: f64, scale: f64, op: GridOp, v: f64) -> Option<i64> {
            let k = match op {
                GridOp::Mul => (v - offset) / scale,
                GridOp::Div => (v - offset) * scale,
            };
            if k.is_finite() && k.abs() <= MAX_GRID_INDEX {
                Some(round_to_i64(k))
            } else {
                None
            }
        }

        pub(super) fn detect_grid<T: Float>(
            values: &[T],
            is_exception: &[bool],
        ) -> Option<Integerisation> {
            let mut sample: Vec<f64> = sample_indices(values.len())
                .filter(|&i| !is_exception.get(i).copied().unwrap_or(true))
                .map(|i| values[i].to_f64())
                .filter(|v| v.is_finite())
                .collect();
            if sample.is_empty() {
                return None;
            }
            sample.sort_unstable_by(f64::total_cmp);
            let mut distinct = sample.clone();
            distinct.dedup_by(|a, b| a.to_bits() == b.to_bits());
            if distinct.len() == 1 {
                let kind = Integerisation::Grid {
                    offset: distinct[0],
                    scale: 1.0,
                    op: GridOp::Mul,
                };
                return Some(kind);
            }
            let lo = distinct[0];
            let hi = distinct[distinct.len() - 1];
            let min_gap = distinct
                .windows(2)
                .map(|w| w[1] - w[0])
                .fold(f64::INFINITY, f64::min);
            if min_gap.is_nan() || min_gap <= 0.0 || !min_gap.is_finite() {
                return None;
            }
            // Levels across the range must be well below the float's own resolution to be worth it.
            let max_levels = (1u64 << (T::MANTISSA_BITS - MIN_SPARE_BITS)) as f64;
            if (hi - lo) / min_gap > max_levels * 4.0 {
                return None;
            }
            // Step estimate: median of gaps close to the smallest one (float rounding jitters gaps).
            let mut near: Vec<f64> = distinct
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|&g| g < 1.5 * min_gap)
                .collect();
            near.sort_unstable_by(f64::total_cmp);
            let step0 = near[near.len() / 2];
            // Least-squares refinement of v = a + b k over the distinct values. Indices are built from
            // *local* gaps (k grows by round(gap / step) between neighbours), so an estimate that is off
            // by 30% still gives the right indices; two passes converge.
            let mut fit = None;
            let mut step = step0;
            for _ in 0..2 {
                let (mut sk, mut sv, mut skk, mut skv) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                let mut k = 0.0f64;
                let mut prev = lo;
                for &v in &distinct {
                    k += ((v - prev) / step)
                        .round()
                        .max(if v > prev { 1.0 } else { 0.0 });
                    prev = v;
                    sk += k;
                    sv += v - lo;
                    skk += k * k;
                    skv += k * (v - lo);
                }
                let m = distinct.len() as f64;
                let den = m * skk - sk * sk;
                if den.is_nan() || den <= 0.0 {
                    break;
                }
                let b = (m * skv - sk * sv) / den;
                let a = lo + (sv - b * sk) / m;
                if !(b > 0.0 && b.is_finite() && a.is_finite()) {
                    break;
                }
                step = b;
                fit = Some((a, b));
            }
            let mut candidates: Vec<Integerisation> = Vec::new();
            if let Some((a, b)) = fit {
                candidates.push(Integerisation::Grid {
                    offset: a,
                    scale: b,
                    op: GridOp::Mul,
                });
                // The same grid anchored on a data value: exact when the offset is itself a grid point.
                let a_on_grid = lo - ((lo - a) / b).round() * b;
                candidates.push(Integerisation::Grid {
                    offset: a_on_grid,
                    scale: b,
                    op: GridOp::Mul,
                });
                if let Some(snap) = decimal_snap(b) {
                    candidates.push(Integerisation::Grid {
                        offset: 0.0,
                        scale: snap,
                        op: GridOp::Mul,
                    });
                    let inv = 1.0 / snap;
                    if (inv - inv.round()).abs() < 1e-9 * inv && inv.round() >= 2.0 {
                        candidates.push(Integerisation::Grid {
                            offset: 0.0,
                            scale: inv.round(),
                            op: GridOp::Div,
                        });
                    }
                }
            }
            candidates.push(Integerisation::Grid {
                offset: lo,
                scale: step0,
                op: GridOp::Mul,
            });
            let mut best: Option<(usize, Integerisation)> = None;
            for cand in candidates {
                let Some(n_fix) = count_fixes::<T>(&sample, cand) else {
                    continue;
                };
                if best.is_none_or(|(n, _)| n_fix < n) {
                    best = Some((n_fix, cand));
                }
            }
            let (n_fix, kind) = best?;
            if (n_fix as f64) > MAX_FIX_FRACTION * sample.len() as f64 {
                return None;
            }
            Some(kind)
        }

        pub(super) fn detect_fill_values<T: Float>(values: &[T]) -> Vec<u64> {
            let mut sample: Vec<u64> = sample_indices(values.len())
                .map(|i| values[i])
                .filter(|v| v.is_finite_value())
                .map(|v| v.to_bits_u64())
                .collect();
            if sample.len() < 8 {
                return Vec::new();
            }
            sample.sort_unstable();
            let min_count = (sample.len() / 1000).max(4);
            let mut candidates: Vec<(usize, u64)> = Vec::new();
            let mut i = 0;
            while i < sample.len() {
                let mut j = i + 1;
                while j < sample.len() && sample[j] == sample[i] {
                    j += 1;
                }
                if j - i >= min_count {
                    candidates.push((j - i, sample[i]));
                }
                i = j;
            }
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            candidates.truncate(8);
            if candidates.is_empty() {
                return Vec::new();
            }
            let is_candidate = |b: u64| candidates.iter().any(|&(_, c)| c == b);
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &b in &sample {
                if !is_candidate(b) {
                    let v = T::from_bits_u64(b).to_f64();
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            if lo > hi {
                // Every sampled value is a candidate: nothing to call "outside the range".
                return Vec::new();
            }
            let r = (hi - lo)
                .max(hi.abs().max(lo.abs()) * 1e-6)
                .max(f64::MIN_POSITIVE);
            candidates
                .iter()
                .map(|&(_, b)| b)
                .filter(|&b| {
                    let v = T::from_bits_u64(b).to_f64();
                    v < lo - 10.0 * r || v > hi + 10.0 * r
                })
                .collect()
        }

        pub(super) fn count_fixes<T: Float>(sample: &[f64], kind: Integerisation) -> Option<usize> {
            let Integerisation::Grid { offset, scale, op } = kind else {
                return None;
            };
            let mut n = 0usize;
            for &v in sample {
                let k = grid_index(offset, scale, op, v)?;
                let rebuilt = T::from_f64(Integerisation::grid_value(offset, scale, op, k));
                let fix =
                    to_signed_ordered(T::from_f64(v)).wrapping_sub(to_signed_ordered(rebuilt));
                if fix != 0 {
                    if fix.unsigned_abs() > 4 {
                        return None;
                    }
                    n += 1;
                }
            }
            Some(n)
        }

        pub(super) fn grid_ints_sparse<T: Float>(
            values: &[T],
            is_exception: &[bool],
            kind: Integerisation,
        ) -> Option<(Vec<i64>, Vec<i64>)> {
            let mut ints = Vec::with_capacity(values.len());
            let mut fixes: Vec<i64> = Vec::new();
            let mut have_fixes = false;
            let mut n_fix = 0usize;
            for (i, (&v, &e)) in values.iter().zip(is_exception).enumerate() {
                let (k, fix) = if e { (0, 0) } else { grid_point(v, kind)? };
                if fix != 0 {
                    n_fix += 1;
                    if !have_fixes {
                        have_fixes = true;
                        fixes = Vec::with_capacity(values.len());
                        fixes.resize(i, 0);
                    }
                }
                ints.push(k);
                if have_fixes {
                    fixes.push(fix);
                }
            }
            if (n_fix as f64) > MAX_FIX_FRACTION * values.len().max(1) as f64 {
                return None;
            }
            Some((ints, fixes))
        }

        pub(super) fn grid_fits<T: Float>(
            values: &[T],
            is_exception: &[bool],
            kind: Integerisation,
        ) -> bool {
            let mut n_fix = 0usize;
            for (&v, &e) in values.iter().zip(is_exception) {
                if e {
                    continue;
                }
                match grid_point(v, kind) {
                    Some((_, 0)) => {}
                    Some(_) => n_fix += 1,
                    None => return false,
                }
            }
            (n_fix as f64) <= MAX_FIX_FRACTION * values.len().max(1) as f64
        }

        pub(super) fn grid_point<T: Float>(v: T, kind: Integerisation) -> Option<(i64, i64)> {
            let Integerisation::Grid { offset, scale, op } = kind else {
                return None;
            };
            let k = grid_index(offset, scale, op, v.to_f64())?;
            let rebuilt = T::from_f64(Integerisation::grid_value(offset, scale, op, k));
            let fix = to_signed_ordered(v).wrapping_sub(to_signed_ordered(rebuilt));
            if fix.unsigned_abs() > 4 {
                return None;
            }
            Some((k, fix))
        }

        pub(super) fn detect_slice_grids<T: Float>(
            values: &[T],
            is_exception: &[bool],
            slice_len: usize,
        ) -> Option<Vec<Integerisation>> {
            if slice_len == 0
                || values.len() < 2 * slice_len
                || !values.len().is_multiple_of(slice_len)
            {
                return None;
            }
            let mut kinds = Vec::with_capacity(values.len() / slice_len);
            for (vals, mask) in values.chunks(slice_len).zip(is_exception.chunks(slice_len)) {
                if mask.iter().all(|&e| e) {
                    kinds.push(Integerisation::Grid {
                        offset: 0.0,
                        scale: 1.0,
                        op: GridOp::Mul,
                    });
                    continue;
                }
                let kind = detect_grid(vals, mask)?;
                if !grid_fits(vals, mask, kind) {
                    return None;
                }
                kinds.push(kind);
            }
            if kinds.windows(2).all(|w| w[0] == w[1]) {
                return None;
            }
            Some(kinds)
        }
    }

    /// Bit-exact identity of a detection result (`==` on `f64` would equate -0.0 and 0.0).
    fn kind_bits(kind: Option<Integerisation>) -> Option<(u64, u64, bool)> {
        kind.map(|k| match k {
            Integerisation::Grid { offset, scale, op } => {
                (offset.to_bits(), scale.to_bits(), op == GridOp::Div)
            }
            Integerisation::Ordered => (u64::MAX, u64::MAX, false),
        })
    }

    /// Every fast detection function against [`reference`] on one block.
    fn assert_same_as_reference<T: Float>(values: &[T], mask: &[bool], slice_len: usize) {
        assert_eq!(
            detect_fill_values(values),
            reference::detect_fill_values(values)
        );
        let kind = detect_grid(values, mask);
        assert_eq!(
            kind_bits(kind),
            kind_bits(reference::detect_grid(values, mask))
        );
        let grids = [
            kind,
            Some(Integerisation::Ordered),
            Some(Integerisation::Grid {
                offset: 0.0,
                scale: 10.0,
                op: GridOp::Div,
            }),
        ];
        for g in grids.into_iter().flatten() {
            assert_eq!(
                grid_ints_sparse(values, mask, g),
                reference::grid_ints_sparse(values, mask, g)
            );
            assert_eq!(
                grid_fits(values, mask, g),
                reference::grid_fits(values, mask, g)
            );
        }
        let fast = detect_slice_grids(values, mask, slice_len);
        let slow = reference::detect_slice_grids(values, mask, slice_len);
        let bits = |g: Option<Vec<Integerisation>>| {
            g.map(|v| {
                v.into_iter()
                    .map(|k| kind_bits(Some(k)))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(bits(fast), bits(slow));
    }

    /// Values from a few generators that exercise the detection paths: packed grids, decimal
    /// data, float-resolution data (grids at the float's own spacing), -0.0/+0.0, repeats,
    /// fill values, NaN and infinities.
    fn mixed_values(kind: u8, seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let r = next();
                let k = (r % 2000) as f64 - 1000.0;
                match kind % 7 {
                    0 => (54321.123 + k * 0.0123456789) as f32,
                    1 => (k / 10.0) as f32,
                    2 => f32::from_bits(0x4358_0000 + (r % 0x20_0000) as u32),
                    3 => [0.0, -0.0, 1.5, 2.5][(r % 4) as usize],
                    4 => {
                        if i % 7 == 0 {
                            9.96921e36
                        } else {
                            (k * 0.5) as f32
                        }
                    }
                    5 => [f32::NAN, f32::INFINITY, 3.0, 3.25, -1e-40][(r % 5) as usize],
                    // A packed field with a rare NaN or infinity (left out of some masks).
                    _ => match r % 500 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        _ => (k * 0.25) as f32,
                    },
                }
            })
            .collect()
    }

    #[test]
    fn fast_detection_matches_reference_on_generated_blocks() {
        for kind in 0..7u8 {
            for (seed, n) in [(1u64, 0usize), (2, 7), (3, 300), (4, 4096), (5, 70_000)] {
                let values = mixed_values(kind, seed, n);
                let masks = [
                    detect_exceptions(&values),
                    values.iter().map(|v| !v.is_finite()).collect(),
                    (0..n).map(|i| i % 3 == 0).collect::<Vec<bool>>(),
                    vec![false; n],
                ];
                for mask in &masks {
                    assert_same_as_reference(&values, mask, 1024);
                }
            }
        }
        // Per-level packing (slice grids found) and its f64 twin.
        let mut values = Vec::new();
        for (s, (r, e)) in [(231.7f64, -9), (237.03, -10), (101.5, -12)]
            .iter()
            .enumerate()
        {
            let step = (2.0f64).powi(*e);
            for i in 0..400usize {
                let k = ((i * 7 + s) % 400) as f64 * 3.0 + (i % 3) as f64;
                values.push(r + k * step);
            }
        }
        let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        assert_same_as_reference(&as_f32, &vec![false; 1200], 400);
        assert_same_as_reference(&values, &vec![false; 1200], 400);
    }

    /// `integerize_planes` gives `integerize_with_mask`'s kind, integers and fixes.
    fn assert_planes_match<T: Float>(values: &[T], mask: &[bool]) {
        let wide = integerize_with_mask(values, mask.to_vec());
        let planes = integerize_planes(values, mask);
        assert_eq!(planes.kind, wide.kind);
        let ints: Vec<i64> = match planes.ints {
            IntPlane::Narrow(v) => v.into_iter().map(i64::from).collect(),
            IntPlane::Wide(v) => v,
        };
        assert_eq!(ints, wide.ints);
        let fixes: Vec<i64> = planes.fixes.into_iter().map(i64::from).collect();
        assert_eq!(fixes, wide.fixes);
    }

    #[test]
    fn integerize_planes_matches_integerize_with_mask() {
        for kind in 0..7u8 {
            for (seed, n) in [(1u64, 0usize), (2, 7), (3, 300), (4, 4096), (5, 70_000)] {
                let values = mixed_values(kind, seed, n);
                assert_planes_match(&values, &detect_exceptions(&values));
                assert_planes_match(&values, &vec![false; n]);
                let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
                assert_planes_match(&wide, &detect_exceptions(&wide));
            }
        }
        // Grid indices beyond 32 bits (the `i64` fallback), with and without ulp fixes.
        let far: Vec<f64> = (0..5000).map(|i| 1e10 + f64::from(i % 97) * 0.5).collect();
        assert_planes_match(&far, &vec![false; far.len()]);
        let far: Vec<f64> = (0..5000).map(|i| f64::from(i) * 1e-3 + 4e6).collect();
        assert_planes_match(&far, &vec![false; far.len()]);
        let far: Vec<f64> = (0..5000)
            .map(|i| match i % 50 {
                0 => 3e9 + f64::from(i % 7),
                _ => f64::from(i % 100),
            })
            .collect();
        let planes = integerize_planes(&far, &vec![false; far.len()]);
        assert!(
            matches!(planes.ints, IntPlane::Wide(_)),
            "{:?}",
            planes.kind
        );
        assert_planes_match(&far, &vec![false; far.len()]);
    }

    #[test]
    fn radix_sort_matches_sort_unstable() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for (n, shift, and) in [
            (5000usize, 0u32, u64::MAX),
            (5000, 32, u64::MAX),
            (3000, 60, u64::MAX),
            (100, 0, u64::MAX),
            (4000, 0, 0xff00_00f0),
            (300, 0, 0),
        ] {
            let keys: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> shift) & and
                })
                .collect();
            let mut a = keys.clone();
            let mut b = keys;
            a.sort_unstable();
            let mut c: Vec<u32> = b.iter().map(|&k| k as u32).collect();
            radix_sort(&mut b);
            assert_eq!(a, b);
            let mut d = c.clone();
            d.sort_unstable();
            radix_sort(&mut c);
            assert_eq!(c, d);
        }
    }

    #[test]
    fn gather_exceptions_matches_filter() {
        let values: Vec<f32> = (0..50).map(|i| i as f32).collect();
        for mask in [
            vec![false; 50],
            vec![true; 50],
            (0..50).map(|i| i % 3 == 1).collect::<Vec<bool>>(),
            (0..40).map(|i| i % 2 == 0).collect(),
            (0..60).map(|i| i % 2 == 0).collect(),
        ] {
            let want: Vec<u64> = values
                .iter()
                .zip(&mask)
                .filter(|(_, &e)| e)
                .map(|(v, _)| v.to_bits_u64())
                .collect();
            assert_eq!(gather_exceptions(&values, &mask), want);
        }
    }

    proptest! {
        #[test]
        fn round_to_i64_matches_f64_round(x in -4.5e15f64..4.5e15, small in -10.0f64..10.0) {
            for v in [x, small, small.trunc() + 0.5, small.trunc() - 0.5] {
                prop_assert_eq!(round_to_i64(v), v.round() as i64, "{}", v);
            }
        }

        #[test]
        fn round_f64_matches_f64_round(x in any::<f64>(), small in -3.0f64..3.0) {
            let specials = [-0.0, 0.0, -0.3, 0.5, -0.5, 2.5, 4.5e15, -4.5e15, f64::INFINITY];
            for v in [x, small, small.trunc() + 0.5].into_iter().chain(specials) {
                prop_assert_eq!(round_f64(v).to_bits(), v.round().to_bits(), "{}", v);
            }
            prop_assert!(round_f64(f64::NAN).is_nan());
        }

        #[test]
        fn fast_detection_matches_reference(kind in 0u8..7, seed in any::<u64>(),
                                            n in 0usize..3000, slice in 1usize..700) {
            let values = mixed_values(kind, seed, n);
            assert_same_as_reference(&values, &detect_exceptions(&values), slice);
        }

        #[test]
        fn fast_detection_matches_reference_on_any_bits(
            bits in proptest::collection::vec(any::<u32>(), 0..400)) {
            let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            assert_same_as_reference(&values, &detect_exceptions(&values), 64);
        }
    }

    #[test]
    fn prediction_mapping_is_total() {
        let k = Integerisation::Ordered;
        for p in [f64::NAN, f64::INFINITY, -1e300, 1e300, 0.0, -0.0] {
            let _ = k.int_of_prediction::<f32>(p);
            let _ = k.int_of_prediction::<f64>(p);
        }
        let g = Integerisation::Grid {
            offset: 0.0,
            scale: 0.1,
            op: GridOp::Mul,
        };
        assert_eq!(g.int_of_prediction::<f32>(1e300), MAX_GRID_INDEX as i64);
    }

    proptest! {
        #[test]
        fn any_f32_bits_roundtrip(bits in proptest::collection::vec(any::<u32>(), 0..300)) {
            let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            roundtrip(&values);
        }

        #[test]
        fn any_f64_bits_roundtrip(bits in proptest::collection::vec(any::<u64>(), 0..300)) {
            let values: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
            roundtrip(&values);
        }

        #[test]
        fn quantised_values_roundtrip(ks in proptest::collection::vec(-30000i32..30000, 1..300),
                                       scale in 1e-4f64..10.0, offset in -1e4f64..1e4) {
            let values: Vec<f32> = ks.iter().map(|&k| (offset + k as f64 * scale) as f32).collect();
            roundtrip(&values);
        }
    }
}
