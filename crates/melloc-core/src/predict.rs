//! Causal predictors: a learned linear combination of already-decoded neighbours.
//!
//! The 3x3 mechanism `c1 u[i-1,j-1] + ... + c9 u[i+1,j+1] = f` rearranged to solve for a point
//! from neighbours that precede it in C order is a *causal* linear predictor. We generalise it to
//! a wider causal neighbourhood ([`Stencil`]): taps in the current slice (W, N, NW, NE, WW, NN,
//! ...) and, for 3-D blocks, taps in the previous slice. The prediction is affine-invariant:
//!
//! ```text
//! pred = x_ref + sum_{k>=1} w_k (x_k - x_ref)        (x_ref = tap 0, the west neighbour)
//! ```
//!
//! so a constant field is predicted exactly and adding a constant to the field changes nothing;
//! it also keeps the normal equations well conditioned for data far from zero (temperatures near
//! 288 K) without storing a mean. The weights minimise `sum (y - pred)^2` over the interior points
//! of a block (closed-form normal equations, solved by Cholesky with a tiny ridge).
//!
//! **Determinism.** [`Stencil::predict_at`] uses only `f64` `+ - *` in a fixed order; Rust never
//! contracts them into FMA and the loop has a fixed trip count, so the decoder reproduces the
//! encoder's prediction bit for bit on every machine. The *fit* runs only in the encoder (its
//! weights are stored), so it may use any arithmetic.

/// A tap: an offset to a causal neighbour (`ds` slices back, `di` rows, `dj` columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tap {
    /// 0 = this slice, 1 = previous slice.
    pub ds: u8,
    /// Row offset (<= 0 in this slice, any sign in the previous slice).
    pub di: i8,
    /// Column offset (< 0 when `ds == 0 && di == 0`).
    pub dj: i8,
}

const fn t(ds: u8, di: i8, dj: i8) -> Tap {
    Tap { ds, di, dj }
}

/// 2-D taps (first one is the reference W).
pub const TAPS_2D: [Tap; 10] = [
    t(0, 0, -1),
    t(0, -1, 0),
    t(0, -1, -1),
    t(0, -1, 1),
    t(0, 0, -2),
    t(0, -2, 0),
    t(0, -1, -2),
    t(0, -1, 2),
    t(0, -2, -1),
    t(0, -2, 1),
];
/// Previous-slice taps added for 3-D blocks (P, PW, PN, PE, PS, PNW, PNE, PSW, PSE). With PNW
/// the set contains 3-D Lorenzo (`W + N + P - NW - PW - PN + PNW`, exact on trilinear fields).
pub const TAPS_PREV: [Tap; 9] = [
    t(1, 0, 0),
    t(1, 0, -1),
    t(1, -1, 0),
    t(1, 0, 1),
    t(1, 1, 0),
    t(1, -1, -1),
    t(1, -1, 1),
    t(1, 1, -1),
    t(1, 1, 1),
];
/// 1-D taps (rows of length 1 or 2): W, WW, WWW, WWWW.
pub const TAPS_1D: [Tap; 4] = [t(0, 0, -1), t(0, 0, -2), t(0, 0, -3), t(0, 0, -4)];
/// Previous-slice taps for 1-D rows stacked as slices (P, PW, PE).
pub const TAPS_1D_PREV: [Tap; 3] = [t(1, 0, 0), t(1, 0, -1), t(1, 0, 1)];

/// The neighbourhood shapes a block may use; the wire value is stored in the causal section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StencilKind {
    /// Previous value only (blocks too small for anything else).
    Previous = 0,
    /// Along the row only.
    Row = 1,
    /// Along the row plus the previous slice.
    RowPrev = 2,
    /// 2-D neighbourhood in the slice.
    Plane = 3,
    /// 2-D neighbourhood plus the previous slice.
    PlanePrev = 4,
}

impl StencilKind {
    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Previous,
            1 => Self::Row,
            2 => Self::RowPrev,
            3 => Self::Plane,
            4 => Self::PlanePrev,
            _ => return None,
        })
    }

    /// The natural choice for a block of `n_slices x n_rows x n_cols`.
    pub fn for_dims(n_slices: usize, n_rows: usize, n_cols: usize) -> Self {
        let prev = n_slices >= 2;
        if n_rows >= 3 && n_cols >= 3 {
            if prev {
                Self::PlanePrev
            } else {
                Self::Plane
            }
        } else if n_cols >= 3 {
            if prev {
                Self::RowPrev
            } else {
                Self::Row
            }
        } else {
            Self::Previous
        }
    }

    /// Taps in this slice followed by taps in the previous slice.
    pub fn taps(self) -> (Vec<Tap>, Vec<Tap>) {
        match self {
            Self::Previous => (vec![t(0, 0, -1)], Vec::new()),
            Self::Row => (TAPS_1D.to_vec(), Vec::new()),
            Self::RowPrev => (TAPS_1D.to_vec(), TAPS_1D_PREV.to_vec()),
            Self::Plane => (TAPS_2D.to_vec(), Vec::new()),
            Self::PlanePrev => (TAPS_2D.to_vec(), TAPS_PREV.to_vec()),
        }
    }
}

/// A stencil laid out over a block: tap geometry, linear offsets, and the interior bounds
/// where every tap is in range.
#[derive(Clone, Debug)]
pub struct Stencil {
    /// All taps: in-slice first (`n_in` of them), then previous-slice ones.
    pub taps: Vec<Tap>,
    /// Number of in-slice taps.
    pub n_in: usize,
    /// Linear index offset of each tap (to subtract from the current index).
    pub back: Vec<usize>,
    /// Rows needed above (for in-slice taps).
    pub up: usize,
    /// Columns needed on the left / right and rows below (previous slice).
    pub left: usize,
    /// Columns needed on the right.
    pub right: usize,
    /// Rows needed below (previous-slice taps only).
    pub down: usize,
    /// How many slices back the "previous slice" taps look (>= 1). Stacked data often repeats
    /// with a period (THETA-levitus is 12 months x 15 levels: slice s-15 is the same level a
    /// month earlier and predicts far better than slice s-1, the next level).
    pub lag: usize,
    n_rows: usize,
    n_cols: usize,
}

impl Stencil {
    /// Lays `kind` out over slices of `n_rows x n_cols`, previous-slice taps `lag` slices back.
    pub fn new(kind: StencilKind, n_rows: usize, n_cols: usize, lag: usize) -> Self {
        let lag = lag.max(1);
        let (mut taps, prev) = kind.taps();
        let n_in = taps.len();
        taps.extend(prev);
        let slice = n_rows * n_cols;
        let mut back = Vec::with_capacity(taps.len());
        let (mut up, mut left, mut right, mut down) = (0usize, 0usize, 0usize, 0usize);
        for tp in &taps {
            let di = isize::from(tp.di);
            let dj = isize::from(tp.dj);
            let lin = (tp.ds as usize * lag * slice) as isize - di * n_cols as isize - dj;
            back.push(lin.max(0) as usize);
            if di < 0 {
                up = up.max((-di) as usize);
            } else {
                down = down.max(di as usize);
            }
            if dj < 0 {
                left = left.max((-dj) as usize);
            } else {
                right = right.max(dj as usize);
            }
        }
        Self {
            taps,
            n_in,
            back,
            up,
            left,
            right,
            down,
            lag,
            n_rows,
            n_cols,
        }
    }

    /// Number of weights of the full set (`taps - 1`: the reference has none).
    pub fn n_weights(&self) -> usize {
        self.taps.len().saturating_sub(1)
    }

    /// Number of weights of the in-slice set.
    pub fn n_weights_in(&self) -> usize {
        self.n_in.saturating_sub(1)
    }

    /// `true` when every tap of the set used at slice `s` is in range at `(i, j)`.
    #[inline]
    pub fn is_interior(&self, s: usize, i: usize, j: usize) -> bool {
        i >= self.up
            && j >= self.left
            && j + self.right < self.n_cols
            && (s == 0 || self.taps.len() == self.n_in || i + self.down < self.n_rows)
    }

    /// The value of tap `k` at `(s, i, j)`, with out-of-range taps replaced by `base`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn tap_value(
        &self,
        vals: &[f64],
        idx: usize,
        s: usize,
        i: usize,
        j: usize,
        k: usize,
        base: f64,
    ) -> f64 {
        let tp = self.taps[k];
        if usize::from(tp.ds) * self.lag > s {
            return base;
        }
        let ii = i as isize + isize::from(tp.di);
        let jj = j as isize + isize::from(tp.dj);
        if ii < 0 || jj < 0 || ii >= self.n_rows as isize || jj >= self.n_cols as isize {
            return base;
        }
        vals.get(idx.wrapping_sub(self.back[k]))
            .copied()
            .unwrap_or(base)
    }

    /// The fallback reference at a boundary point: W, else N, else the previous slice's value,
    /// else 0.
    #[inline]
    pub fn base_value(&self, vals: &[f64], idx: usize, s: usize, i: usize, j: usize) -> f64 {
        let get = |back: usize| vals.get(idx.wrapping_sub(back)).copied().unwrap_or(0.0);
        if j > 0 {
            get(1)
        } else if i > 0 {
            get(self.n_cols)
        } else if s > 0 {
            get(self.n_rows * self.n_cols)
        } else {
            0.0
        }
    }

    /// Prediction at `(s, i, j)` (linear index `idx`) with `weights` (the in-slice set has
    /// `n_weights_in()` entries, the full set `n_weights()`). Handles boundaries.
    ///
    /// Evaluated by [`combine`] with the taps' values (out-of-range taps replaced by
    /// [`Stencil::base_value`]).
    #[inline]
    pub fn predict_at(
        &self,
        vals: &[f64],
        weights: &[f64],
        idx: usize,
        s: usize,
        i: usize,
        j: usize,
    ) -> f64 {
        let n_taps = (weights.len() + 1).min(self.taps.len()).min(MAX_TAPS);
        let mut x = [0.0f64; MAX_TAPS];
        // The fast path indexes without checks: previous-slice taps need `s >= lag`.
        if self.is_interior(s, i, j) && (n_taps <= self.n_in || s >= self.lag) {
            for (k, xk) in x.iter_mut().enumerate().take(n_taps) {
                *xk = vals[idx - self.back[k]];
            }
        } else {
            let base = self.base_value(vals, idx, s, i, j);
            for (k, xk) in x.iter_mut().enumerate().take(n_taps) {
                *xk = self.tap_value(vals, idx, s, i, j, k, base);
            }
        }
        combine(&x[..n_taps], weights, ref_weight(weights))
    }
}

/// Most taps of any [`StencilKind`].
pub const MAX_TAPS: usize = 20;

/// The weight of tap 0 when the prediction is written around tap 1:
/// `c0 = 1 - sum_k w_k` (plain `f64` subtractions in index order).
#[inline]
pub fn ref_weight(weights: &[f64]) -> f64 {
    let mut c = 1.0f64;
    for &w in weights {
        c -= w;
    }
    c
}

/// The prediction from tap values `x` (tap 0 is W, the fit's reference) and `weights`
/// (`w[k - 1]` for tap `k`), with `c0 = ref_weight(weights)`:
///
/// ```text
/// pred = x1 + sum_{k>=2} w_k (x_k - x1) + c0 (x0 - x1)
/// ```
///
/// This is the fitted `x0 + sum_{k>=1} w_k (x_k - x0)` rewritten around tap 1 (N in a plane),
/// so that only the last term needs the value decoded just before: the rest is computed while
/// that value is still being decoded (measured: decode of TS, TREFHT, U-dc +5..12%). The
/// order of operations is fixed; a constant field is still predicted exactly (every
/// difference is 0).
#[inline(always)]
pub fn combine(x: &[f64], weights: &[f64], c0: f64) -> f64 {
    match x.len() {
        0 => 0.0,
        1 => x[0],
        n => {
            let r = x[1];
            let mut acc = 0.0f64;
            for k in 2..n {
                acc += weights[k - 1] * (x[k] - r);
            }
            r + (acc + c0 * (x[0] - r))
        }
    }
}

/// Accumulates the normal equations `(X^T X) w = X^T y` of a least-squares fit.
#[derive(Clone, Debug)]
pub struct NormalEquations {
    n: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    n_samples: usize,
}

impl NormalEquations {
    /// `n` unknowns.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            xtx: vec![0.0; n * n],
            xty: vec![0.0; n],
            n_samples: 0,
        }
    }

    /// Adds one observation `y ~ x . w` (only the first `n` entries of `x` are read).
    #[inline]
    pub fn add(&mut self, x: &[f64], y: f64) {
        let n = self.n;
        for a in 0..n {
            let xa = x[a];
            self.xty[a] += xa * y;
            let row = &mut self.xtx[a * n..a * n + n];
            for b in 0..=a {
                row[b] += xa * x[b];
            }
        }
        self.n_samples += 1;
    }

    /// Number of observations added.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Solves with a small ridge (`1e-9` of the mean diagonal). `None` when there are fewer
    /// observations than unknowns or the system is degenerate.
    pub fn solve(&self) -> Option<Vec<f64>> {
        let n = self.n;
        if n == 0 {
            return Some(Vec::new());
        }
        if self.n_samples < n {
            return None;
        }
        let mut a = vec![0.0f64; n * n];
        for r in 0..n {
            for c in 0..=r {
                a[r * n + c] = self.xtx[r * n + c];
                a[c * n + r] = self.xtx[r * n + c];
            }
        }
        let trace: f64 = (0..n).map(|k| a[k * n + k]).sum();
        let ridge = 1e-9 * trace / n as f64 + f64::MIN_POSITIVE;
        for k in 0..n {
            a[k * n + k] += ridge;
        }
        // Cholesky: a = L L^T, L stored in the lower triangle.
        for c in 0..n {
            let mut d = a[c * n + c];
            for k in 0..c {
                d -= a[c * n + k] * a[c * n + k];
            }
            if d.is_nan() || d <= 0.0 || !d.is_finite() {
                return None;
            }
            let d = d.sqrt();
            a[c * n + c] = d;
            for r in c + 1..n {
                let mut v = a[r * n + c];
                for k in 0..c {
                    v -= a[r * n + k] * a[c * n + k];
                }
                a[r * n + c] = v / d;
            }
        }
        let mut y = self.xty.clone();
        for r in 0..n {
            let mut v = y[r];
            for k in 0..r {
                v -= a[r * n + k] * y[k];
            }
            y[r] = v / a[r * n + r];
        }
        for r in (0..n).rev() {
            let mut v = y[r];
            for k in r + 1..n {
                v -= a[k * n + r] * y[k];
            }
            y[r] = v / a[r * n + r];
        }
        if y.iter().all(|v| v.is_finite()) {
            Some(y)
        } else {
            None
        }
    }
}

/// The values a fit samples: a value and a validity per point of the block (flat index).
///
/// The fit reads a few hundred thousand sample points and their taps, not the whole block, so
/// an encoder can compute values on demand ([`FitPlane`] over its integers) instead of holding
/// a plane of `f64` values: 8 bytes a value, the largest allocation of encoding a block.
pub trait FitPlane: Sync {
    /// The value of point `i`.
    fn value(&self, i: usize) -> f64;
    /// Whether point `i` may be used (as a sample or a tap).
    fn is_valid(&self, i: usize) -> bool;
    /// Whether every point of `range` is valid (`false` if the range is out of the block).
    fn all_valid(&self, range: std::ops::Range<usize>) -> bool;
}

/// A [`FitPlane`] over a plane of values and a validity mask.
#[derive(Clone, Copy, Debug)]
pub struct ValidPlane<'a> {
    /// The values.
    pub vals: &'a [f64],
    /// Which values may be used.
    pub valid: &'a [bool],
}

impl FitPlane for ValidPlane<'_> {
    #[inline(always)]
    fn value(&self, i: usize) -> f64 {
        self.vals[i]
    }
    #[inline(always)]
    fn is_valid(&self, i: usize) -> bool {
        self.valid[i]
    }
    fn all_valid(&self, range: std::ops::Range<usize>) -> bool {
        // Chunked so that the scan vectorises yet stops early on masked data.
        self.valid
            .get(range)
            .is_some_and(|v| v.chunks(4096).all(|c| c.iter().fold(true, |a, &v| a & v)))
    }
}

/// Fits the weights of `stencil` for slices `s >= first_slice` (the in-slice set when
/// `in_slice_only`), from interior points whose value and taps are all valid (`valid[idx]`).
/// Uses at most about `max_samples` points (a deterministic stride). Returns zeros (predict the
/// reference tap) when the fit is impossible.
#[allow(clippy::too_many_arguments)]
pub fn fit_weights(
    stencil: &Stencil,
    vals: &[f64],
    valid: &[bool],
    n_slices: usize,
    n_rows: usize,
    n_cols: usize,
    in_slice_only: bool,
    max_samples: usize,
) -> Vec<f64> {
    fit_weights_on(
        stencil,
        &ValidPlane { vals, valid },
        (n_slices, n_rows, n_cols),
        in_slice_only,
        max_samples,
    )
}

/// [`fit_weights`] over any [`FitPlane`] of a block of `dims` (slices, rows, columns).
pub fn fit_weights_on<P: FitPlane>(
    stencil: &Stencil,
    plane: &P,
    dims: (usize, usize, usize),
    in_slice_only: bool,
    max_samples: usize,
) -> Vec<f64> {
    let n_taps = if in_slice_only {
        stencil.n_in
    } else {
        stencil.taps.len()
    };
    let n_w = n_taps.saturating_sub(1);
    let zeros = vec![0.0; n_w];
    if n_w == 0 {
        return zeros;
    }
    let groups = sample_normal_equations(stencil, plane, dims, in_slice_only, max_samples, false);
    let ne = groups
        .into_iter()
        .next()
        .map_or_else(|| NormalEquations::new(n_w), |(ne, _)| ne);
    ne.solve().unwrap_or(zeros)
}

/// [`fit_weights`] of the full set, reweighted `n_iters` times: each slice's equations are
/// divided by that slice's mean squared residual under the previous weights (iteratively
/// reweighted least squares). The squared error is dominated by the slices of largest magnitude
/// (MITgcm U at the surface vs at depth), while the coded cost is about
/// `sum_s n_s log(power_s)`; equalising the slices minimises it to first order. One pass over
/// the data accumulates per-slice normal equations; the iterations only combine them.
pub fn fit_weights_reweighted(
    stencil: &Stencil,
    vals: &[f64],
    valid: &[bool],
    dims: (usize, usize, usize),
    max_samples: usize,
    n_iters: usize,
) -> Vec<f64> {
    let plane = ValidPlane { vals, valid };
    fit_weights_reweighted_on(stencil, &plane, dims, max_samples, n_iters)
}

/// [`fit_weights_reweighted`] over any [`FitPlane`].
pub fn fit_weights_reweighted_on<P: FitPlane>(
    stencil: &Stencil,
    plane: &P,
    dims: (usize, usize, usize),
    max_samples: usize,
    n_iters: usize,
) -> Vec<f64> {
    let n_w = stencil.n_weights();
    let zeros = vec![0.0; n_w];
    if n_w == 0 || stencil.taps.len() == stencil.n_in {
        return zeros;
    }
    let per = sample_normal_equations(stencil, plane, dims, false, max_samples, true);
    let combine_with = |scale: Option<&[f64]>| -> Option<Vec<f64>> {
        let mut ne = NormalEquations::new(n_w);
        for (k, (e, _)) in per.iter().enumerate() {
            let f = scale.map_or(1.0, |sc| 1.0 / sc[k]);
            for (a, b) in ne.xtx.iter_mut().zip(&e.xtx) {
                *a += b * f;
            }
            for (a, b) in ne.xty.iter_mut().zip(&e.xty) {
                *a += b * f;
            }
            ne.n_samples += e.n_samples;
        }
        ne.solve()
    };
    let Some(mut w) = combine_with(None) else {
        return zeros;
    };
    for _ in 0..n_iters {
        // Residual power per slice from its normal equations: y'y - 2 w'X'y + w'X'X w.
        let mut p: Vec<f64> = per
            .iter()
            .map(|(e, yy)| {
                let n = e.n;
                let mut q = *yy;
                for a in 0..n {
                    q -= 2.0 * w[a] * e.xty[a];
                    for b in 0..n {
                        let m = if b <= a {
                            e.xtx[a * n + b]
                        } else {
                            e.xtx[b * n + a]
                        };
                        q += w[a] * m * w[b];
                    }
                }
                q.max(0.0) / e.n_samples.max(1) as f64
            })
            .collect();
        let top = p.iter().copied().fold(0.0f64, f64::max);
        for x in &mut p {
            *x = x.max(top * 1e-12 + f64::MIN_POSITIVE);
        }
        match combine_with(Some(&p)) {
            Some(v) => w = v,
            None => break,
        }
    }
    w
}

/// The normal equations of the fit's sample points, with `sum y^2` alongside: one entry per
/// slice that has samples, in slice order (`per_slice`), or a single entry for all of them.
///
/// Dispatches to [`sample_tiled`], which produces *bit-identical* sums to the reference
/// [`sample_scalar`] (every entry is the same products added in the same sample order; only
/// the bookkeeping around them changes), for every weight count of a [`StencilKind`]; wider
/// hand-made stencils fall back to the reference.
fn sample_normal_equations<P: FitPlane>(
    stencil: &Stencil,
    plane: &P,
    dims: (usize, usize, usize),
    in_slice_only: bool,
    max_samples: usize,
    per_slice: bool,
) -> Vec<(NormalEquations, f64)> {
    let n_taps = if in_slice_only {
        stencil.n_in
    } else {
        stencil.taps.len()
    };
    let a = (stencil, plane, dims, in_slice_only, max_samples, per_slice);
    // The sample row is the `n_taps - 1` differences followed by `y`: `n_taps` values,
    // padded to whole tiles.
    // `LAST` is the number of rows used in the last tile: exact for the stencil kinds' tap
    // counts (4, 7, 10, 19), a whole tile otherwise.
    match n_taps {
        0 => Vec::new(),
        4 => sample_tiled::<_, 1, 4>(a),
        7 => sample_tiled::<_, 2, 3>(a),
        10 => sample_tiled::<_, 3, 2>(a),
        19 => sample_tiled::<_, 5, 3>(a),
        _ => match n_taps.div_ceil(TILE) {
            1 => sample_tiled::<_, 1, TILE>(a),
            2 => sample_tiled::<_, 2, TILE>(a),
            3 => sample_tiled::<_, 3, TILE>(a),
            4 => sample_tiled::<_, 4, TILE>(a),
            5 => sample_tiled::<_, 5, TILE>(a),
            _ => sample_scalar(a),
        },
    }
}

/// The arguments of [`sample_normal_equations`], passed on as one tuple.
type SampleArgs<'a, P> = (&'a Stencil, &'a P, (usize, usize, usize), bool, usize, bool);

/// Reference implementation of [`sample_normal_equations`]: one [`NormalEquations::add`] per
/// sample. Used for stencils wider than `5 * TILE` taps and by the tests as the oracle.
fn sample_scalar<P: FitPlane>(
    (stencil, plane, dims, in_slice_only, max_samples, per_slice): SampleArgs<'_, P>,
) -> Vec<(NormalEquations, f64)> {
    let n_taps = if in_slice_only {
        stencil.n_in
    } else {
        stencil.taps.len()
    };
    let n_w = n_taps.saturating_sub(1);
    let mut per: Vec<(NormalEquations, f64)> = Vec::new();
    let mut last = usize::MAX;
    for_each_sample(
        stencil,
        plane,
        dims,
        in_slice_only,
        max_samples,
        |s, x, y| {
            let s = if per_slice { s } else { 0 };
            if per.is_empty() || s != last {
                last = s;
                per.push((NormalEquations::new(n_w), 0.0));
            }
            if let Some(e) = per.last_mut() {
                e.0.add(x, y);
                e.1 += y * y;
            }
        },
    );
    per
}

/// Width of the register tiles of [`accumulate_tiles`].
const TILE: usize = 4;
/// `TILE` consecutive entries of a sample row.
type Block = [f64; TILE];
/// Sums of products of `NB * TILE` values, in `TILE x TILE` tiles: `m[a][b][i][j]` is the sum of
/// `z[a * TILE + i] * z[b * TILE + j]`. Only the tiles `b <= a` (lower triangle) are kept up to
/// date.
type Tiles<const NB: usize> = [[[Block; TILE]; NB]; NB];
/// Samples gathered before [`accumulate_tiles`] runs over them: long enough to amortise loading
/// and storing the sums, short enough to stay in L1 (64 x 20 x 8 bytes = 10 KB).
const BATCH: usize = 64;

/// Adds `z z^T` of each sample `z` of `batch` to the lower triangle of tiles of `m`, in sample
/// order.
///
/// This is the whole cost of the fit; it is a symmetric rank-k update (SYRK) blocked like a
/// matrix product: a `TILE x TILE` tile of sums stays in registers over the batch, so each
/// product costs a multiply and an add (2-wide SIMD on baseline x86-64) instead of a load, a
/// multiply, an add, a store and an index check. Each sum still receives the same products in
/// the same order as [`NormalEquations::add`] would add them, so the results are bit-identical.
/// Measured (callgrind, 19-tap stencil: a row of 19 values padded to 20 = 5 tiles of 4, so 15
/// tiles per sample): ~31 instructions per tile and sample, ~1.9 per product; the padding and
/// the upper halves of the diagonal tiles waste 50 of the 240 products. Skipping the padding
/// rows (`LAST` rows in the last row of tiles) and the column pairs above the diagonal saves
/// most of that: 38 of the 50 (HGT-ncep: kernel 135M -> 115M). The whole fit went from
/// ~2450 to ~540 instructions per sample (HGT-ncep: 728M -> 158M for 3 fits).
#[inline(never)]
fn accumulate_tiles<const NB: usize, const LAST: usize>(m: &mut Tiles<NB>, batch: &[[Block; NB]]) {
    for a in 0..NB - 1 {
        accumulate_tile_row::<NB, TILE>(m, batch, a);
    }
    accumulate_tile_row::<NB, LAST>(m, batch, NB - 1);
}

/// The tiles `(a, b <= a)` of [`accumulate_tiles`], for their first `ROWS` rows.
#[inline(always)]
fn accumulate_tile_row<const NB: usize, const ROWS: usize>(
    m: &mut Tiles<NB>,
    batch: &[[Block; NB]],
    a: usize,
) {
    for b in 0..a {
        let mut acc = m[a][b];
        for z in batch {
            let (za, zb) = (z[a], z[b]);
            for (row, &x) in acc.iter_mut().zip(&za).take(ROWS) {
                for (sum, &y) in row.iter_mut().zip(&zb) {
                    *sum += x * y;
                }
            }
        }
        m[a][b] = acc;
    }
    // The diagonal tile: row `i` needs the columns `j <= i`, computed in whole pairs (one SIMD
    // operation); the extra entry of a pair lies above the diagonal and is never read.
    let mut acc = m[a][a];
    for z in batch {
        let za = z[a];
        for (i, (row, &x)) in acc.iter_mut().zip(&za).enumerate().take(ROWS) {
            for (sum, &y) in row.iter_mut().zip(&za).take((i / 2 + 1) * 2) {
                *sum += x * y;
            }
        }
    }
    m[a][a] = acc;
}

/// One group of samples (a slice, or all of them) being accumulated.
struct TileGroup<const NB: usize> {
    m: Box<Tiles<NB>>,
    n_samples: usize,
}

impl<const NB: usize> TileGroup<NB> {
    fn new() -> Self {
        Self {
            m: Box::new([[[[0.0; TILE]; TILE]; NB]; NB]),
            n_samples: 0,
        }
    }

    /// The normal equations of `n_w` unknowns (sample row: `n_w` regressors, then `y`) and
    /// `sum y^2`, laid out exactly as [`NormalEquations::add`] leaves them.
    fn finish(&self, n_w: usize) -> (NormalEquations, f64) {
        let at = |a: usize, b: usize| self.m[a / TILE][b / TILE][a % TILE][b % TILE];
        let mut ne = NormalEquations::new(n_w);
        for a in 0..n_w {
            for b in 0..=a {
                ne.xtx[a * n_w + b] = at(a, b);
            }
            // `sum y * x_a`: the same products as `x_a * y`.
            ne.xty[a] = at(n_w, a);
        }
        ne.n_samples = self.n_samples;
        (ne, at(n_w, n_w))
    }
}

/// [`sample_normal_equations`] for sample rows of at most `NB * TILE` values (the `n_taps - 1`
/// regressors and `y`).
///
/// Visits the same points in the same order as [`for_each_sample`], but jumps from sample to
/// sample (no `%` per interior point), reads `valid` only when the block has invalid points,
/// and accumulates through [`accumulate_tiles`] in batches.
fn sample_tiled<P: FitPlane, const NB: usize, const LAST: usize>(
    (stencil, plane, (n_slices, n_rows, n_cols), in_slice_only, max_samples, per_slice): SampleArgs<
        '_,
        P,
    >,
) -> Vec<(NormalEquations, f64)> {
    let dims = (n_slices, n_rows, n_cols);
    let Some(SampleRegion {
        n_taps,
        n_w,
        s_lo,
        s_hi,
        i_hi,
        j_hi,
        stride,
    }) = SampleRegion::new(stencil, dims, in_slice_only, max_samples)
    else {
        return Vec::new();
    };
    assert!(
        n_taps <= (NB - 1) * TILE + LAST,
        "sample row wider than the tiles"
    );
    let back = &stencil.back[..n_taps];
    let slice = n_rows * n_cols;
    // Every point read lies in slices `s_lo - lag ..= s_hi - 1` (slice 0 alone for the in-slice
    // set). Chunked so that the scan vectorises yet stops early on masked data.
    let first = if in_slice_only {
        0
    } else {
        s_lo.saturating_sub(stencil.lag)
    };
    let all_valid = plane.all_valid(first * slice..s_hi * slice);
    let mut per: Vec<(NormalEquations, f64)> = Vec::new();
    let mut batch = Batch::<NB, LAST>::new();
    // The first sample is the `stride`-th interior point; `skip` is the offset of the next one
    // from the start of the current row.
    let mut skip = stride - 1;
    for s in s_lo..s_hi {
        if per_slice {
            batch.end_group(n_w, &mut per);
        }
        for i in stencil.up..i_hi {
            let row_base = s * slice + i * n_cols;
            let mut j = stencil.left + skip;
            while j < j_hi {
                let idx = row_base + j;
                j += stride;
                let usable =
                    || plane.is_valid(idx) && back.iter().all(|&b| plane.is_valid(idx - b));
                if !(all_valid || usable()) {
                    continue;
                }
                let row = batch.free_row().as_flattened_mut();
                // Fixed tap counts unroll (measured on HGT: ~10 -> ~6 instructions per tap).
                match back.len() {
                    4 => gather::<_, 4>(row, plane, idx, back),
                    7 => gather::<_, 7>(row, plane, idx, back),
                    10 => gather::<_, 10>(row, plane, idx, back),
                    19 => gather::<_, 19>(row, plane, idx, back),
                    _ => gather_any(row, plane, idx, back),
                }
                batch.commit();
            }
            skip = j - j_hi;
        }
    }
    batch.end_group(n_w, &mut per);
    per
}

/// Writes the sample row of point `idx`: `vals[idx - back[k]] - r` for the taps `k >= 1`, then
/// `vals[idx] - r`, where `r = vals[idx - back[0]]` (the reference).
#[inline(always)]
fn gather_any<P: FitPlane>(row: &mut [f64], plane: &P, idx: usize, back: &[usize]) {
    let r = plane.value(idx - back[0]);
    let n_w = back.len() - 1;
    for (x, &b) in row[..n_w].iter_mut().zip(&back[1..]) {
        *x = plane.value(idx - b) - r;
    }
    row[n_w] = plane.value(idx) - r;
}

/// [`gather_any`] for exactly `NT` taps.
#[inline(always)]
fn gather<P: FitPlane, const NT: usize>(row: &mut [f64], plane: &P, idx: usize, back: &[usize]) {
    let Ok(back) = <&[usize; NT]>::try_from(back) else {
        return gather_any(row, plane, idx, back);
    };
    let Some(row) = row.first_chunk_mut::<NT>() else {
        return gather_any(row, plane, idx, back);
    };
    let r = plane.value(idx - back[0]);
    for k in 1..NT {
        row[k - 1] = plane.value(idx - back[k]) - r;
    }
    row[NT - 1] = plane.value(idx) - r;
}

/// Sample rows waiting for [`accumulate_tiles`], and the group they belong to.
struct Batch<const NB: usize, const LAST: usize> {
    /// `BATCH` rows; entries past a row's `n_taps` values are never written and stay 0.
    rows: Vec<[Block; NB]>,
    /// Rows filled.
    len: usize,
    /// The current group's sums; created by the first flush, so a group exists only if it
    /// has samples (as in [`sample_scalar`]).
    group: Option<TileGroup<NB>>,
}

impl<const NB: usize, const LAST: usize> Batch<NB, LAST> {
    fn new() -> Self {
        Self {
            rows: vec![[[0.0; TILE]; NB]; BATCH],
            len: 0,
            group: None,
        }
    }

    /// The next unfilled row (there is one: a full batch is flushed at once).
    fn free_row(&mut self) -> &mut [Block; NB] {
        &mut self.rows[self.len]
    }

    /// Marks the next row as filled; flushes a full batch.
    fn commit(&mut self) {
        self.len += 1;
        if self.len == BATCH {
            self.flush();
        }
    }

    /// Adds the filled rows to the current group.
    fn flush(&mut self) {
        if self.len > 0 {
            let g = self.group.get_or_insert_with(TileGroup::new);
            accumulate_tiles::<NB, LAST>(&mut g.m, &self.rows[..self.len]);
            g.n_samples += self.len;
            self.len = 0;
        }
    }

    /// Closes the current group (if it has samples), appending its equations to `per`.
    fn end_group(&mut self, n_w: usize, per: &mut Vec<(NormalEquations, f64)>) {
        self.flush();
        if let Some(g) = self.group.take() {
            per.push(g.finish(n_w));
        }
    }
}

/// The points a fit samples: slices `s_lo..s_hi`, rows `stencil.up..i_hi`, columns
/// `stencil.left..j_hi` (every tap inside the block), every `stride`-th of them in scan order;
/// `n_taps` taps give `n_w` weights.
struct SampleRegion {
    n_taps: usize,
    n_w: usize,
    s_lo: usize,
    s_hi: usize,
    i_hi: usize,
    j_hi: usize,
    stride: usize,
}

impl SampleRegion {
    /// `None` when there is no weight to fit or no point to sample.
    fn new(
        stencil: &Stencil,
        (n_slices, n_rows, n_cols): (usize, usize, usize),
        in_slice_only: bool,
        max_samples: usize,
    ) -> Option<Self> {
        let n_taps = if in_slice_only {
            stencil.n_in
        } else {
            stencil.taps.len()
        };
        let n_w = n_taps.saturating_sub(1);
        if n_w == 0 {
            return None;
        }
        let (s_lo, s_hi) = if in_slice_only {
            (0, n_slices.min(1))
        } else {
            (stencil.lag.min(n_slices), n_slices)
        };
        let i_hi = if in_slice_only {
            n_rows
        } else {
            n_rows.saturating_sub(stencil.down)
        };
        let j_hi = n_cols.saturating_sub(stencil.right);
        let rows = i_hi.saturating_sub(stencil.up);
        let cols = j_hi.saturating_sub(stencil.left);
        let total = (s_hi.saturating_sub(s_lo)) * rows * cols;
        if total == 0 {
            return None;
        }
        let stride = total.div_ceil(max_samples.max(1)).max(1);
        Some(Self {
            n_taps,
            n_w,
            s_lo,
            s_hi,
            i_hi,
            j_hi,
            stride,
        })
    }
}

/// Calls `f(slice, x, y)` for the fit's sample points: `x` the taps' differences to the
/// reference, `y` the value's.
fn for_each_sample<P: FitPlane>(
    stencil: &Stencil,
    plane: &P,
    (n_slices, n_rows, n_cols): (usize, usize, usize),
    in_slice_only: bool,
    max_samples: usize,
    mut f: impl FnMut(usize, &[f64], f64),
) {
    let dims = (n_slices, n_rows, n_cols);
    let Some(SampleRegion {
        n_taps,
        n_w,
        s_lo,
        s_hi,
        i_hi,
        j_hi,
        stride,
    }) = SampleRegion::new(stencil, dims, in_slice_only, max_samples)
    else {
        return;
    };
    let slice = n_rows * n_cols;
    let mut x = vec![0.0f64; n_w];
    let mut counter = 0usize;
    for s in s_lo..s_hi {
        for i in stencil.up..i_hi {
            for j in stencil.left..j_hi {
                counter += 1;
                if !counter.is_multiple_of(stride) {
                    continue;
                }
                let idx = s * slice + i * n_cols + j;
                if !plane.is_valid(idx) {
                    continue;
                }
                let r_idx = idx - stencil.back[0];
                if !plane.is_valid(r_idx) {
                    continue;
                }
                let r = plane.value(r_idx);
                let mut ok = true;
                for k in 1..n_taps {
                    let t_idx = idx - stencil.back[k];
                    if !plane.is_valid(t_idx) {
                        ok = false;
                        break;
                    }
                    x[k - 1] = plane.value(t_idx) - r;
                }
                if ok {
                    f(s, &x, plane.value(idx) - r);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_causal_stencil() {
        // u[i,j] = 0.5 W + 0.7 N - 0.2 NW + tiny noise: fit must find these weights.
        let (nr, nc) = (60usize, 70usize);
        let mut v = vec![0.0f64; nr * nc];
        let mut seed = 12345u64;
        for i in 0..nr {
            for j in 0..nc {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                let w = if j > 0 { v[i * nc + j - 1] } else { 1.0 };
                let n = if i > 0 { v[(i - 1) * nc + j] } else { 1.0 };
                let nw = if i > 0 && j > 0 {
                    v[(i - 1) * nc + j - 1]
                } else {
                    1.0
                };
                v[i * nc + j] = 0.5 * w + 0.7 * n - 0.2 * nw + noise;
            }
        }
        let st = Stencil::new(StencilKind::Plane, nr, nc, 1);
        let valid = vec![true; nr * nc];
        let w = fit_weights(&st, &v, &valid, 1, nr, nc, true, 1 << 20);
        // pred = W + w_N (N - W) + w_NW (NW - W) + ...: w_N = 0.7, w_NW = -0.2.
        assert!((w[0] - 0.7).abs() < 0.05, "{w:?}");
        assert!((w[1] + 0.2).abs() < 0.05, "{w:?}");
        for &x in &w[2..] {
            assert!(x.abs() < 0.05, "{w:?}");
        }
    }

    #[test]
    fn reweighted_fit_predicts_a_trilinear_field_exactly() {
        // A trilinear field is predicted exactly by 3-D Lorenzo, which needs PNW. The taps are
        // nearly collinear here, so the ridge limits the fit to ~3e-4 relative (measured).
        let (ns, nr, nc) = (6usize, 20usize, 24usize);
        let mut v = vec![0.0f64; ns * nr * nc];
        for s in 0..ns {
            for i in 0..nr {
                for j in 0..nc {
                    let (a, b, c) = (s as f64, i as f64, j as f64);
                    let mag = 288.0;
                    v[(s * nr + i) * nc + j] = mag * (1.0 + 0.3 * a * b * c + 0.2 * b - 0.1 * c);
                }
            }
        }
        let st = Stencil::new(StencilKind::PlanePrev, nr, nc, 1);
        let valid = vec![true; v.len()];
        let w = fit_weights_reweighted(&st, &v, &valid, (ns, nr, nc), 1 << 20, 4);
        for s in 1..ns {
            for i in 2..nr - 1 {
                for j in 2..nc - 2 {
                    let idx = (s * nr + i) * nc + j;
                    let p = st.predict_at(&v, &w, idx, s, i, j);
                    assert!((p - v[idx]).abs() <= 1e-3 * v[idx].abs(), "{p} {}", v[idx]);
                }
            }
        }
    }

    /// Bits of everything the fit reads from a set of equations.
    fn bits(per: &[(NormalEquations, f64)]) -> Vec<u64> {
        let mut out = Vec::new();
        for (ne, yy) in per {
            let n = ne.n;
            out.push(n as u64);
            out.push(ne.n_samples as u64);
            out.push(yy.to_bits());
            for a in 0..n {
                out.push(ne.xty[a].to_bits());
                out.extend((0..=a).map(|b| ne.xtx[a * n + b].to_bits()));
            }
        }
        out
    }

    #[test]
    fn tiled_sums_are_bit_identical_to_the_reference() {
        // Every stencil kind, lags, sampling strides, masks and groupings: the tiled
        // accumulation must give the very same sums (hence weights and compressed bytes) as
        // one `NormalEquations::add` per sample.
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let kinds = [
            StencilKind::Previous,
            StencilKind::Row,
            StencilKind::RowPrev,
            StencilKind::Plane,
            StencilKind::PlanePrev,
        ];
        for &(ns, nr, nc) in &[(1, 1, 7), (3, 2, 9), (5, 7, 11), (9, 13, 17), (4, 30, 41)] {
            let n = ns * nr * nc;
            // Smooth part + noise at very different scales, so that summation order shows.
            let vals: Vec<f64> = (0..n)
                .map(|k| 288.0 + (k as f64 * 0.37).sin() * 40.0 + rnd() * 1e-3 + rnd() * 1e3)
                .collect();
            for mask in [0.0, 0.02, 0.3] {
                let valid: Vec<bool> = (0..n).map(|_| rnd() >= mask).collect();
                // Plus hand-made tap counts that leave the last tile full (13, 16 taps).
                let shapes = kinds.iter().map(|&k| (k, None)).chain([
                    (StencilKind::PlanePrev, Some(13)),
                    (StencilKind::PlanePrev, Some(16)),
                ]);
                for (kind, cut) in shapes {
                    for lag in [1, 2] {
                        let mut st = Stencil::new(kind, nr, nc, lag);
                        if let Some(c) = cut {
                            st.taps.truncate(c);
                            st.back.truncate(c);
                        }
                        for max_samples in [1, 5, 37, 1 << 20] {
                            for in_slice in [false, true] {
                                for per_slice in [false, true] {
                                    let plane = ValidPlane {
                                        vals: &vals,
                                        valid: &valid,
                                    };
                                    let a = (
                                        &st,
                                        &plane,
                                        (ns, nr, nc),
                                        in_slice,
                                        max_samples,
                                        per_slice,
                                    );
                                    let want = sample_scalar(a);
                                    let got = sample_normal_equations(
                                        &st,
                                        &plane,
                                        a.2,
                                        in_slice,
                                        max_samples,
                                        per_slice,
                                    );
                                    assert_eq!(
                                        bits(&got),
                                        bits(&want),
                                        "{kind:?} {:?} lag {lag} mask {mask} max {max_samples} \
                                         in_slice {in_slice} per_slice {per_slice}",
                                        a.2
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn boundary_prediction_is_total() {
        let st = Stencil::new(StencilKind::PlanePrev, 2, 2, 1);
        let vals = vec![1.0; 8];
        let w = vec![0.1; st.n_weights()];
        for s in 0..2 {
            for i in 0..2 {
                for j in 0..2 {
                    let p = st.predict_at(&vals, &w, s * 4 + i * 2 + j, s, i, j);
                    assert!(p.is_finite());
                }
            }
        }
    }
}
