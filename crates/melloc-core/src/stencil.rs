//! The 3x3 mechanism: a linear stencil `L`, its least-squares learning, and its reading as a PDE.
//!
//! # The stencil
//! A [`Stencil`] holds nine coefficients `c1..c9`, row-major over the offsets
//! `(di, dj) in {-1,0,1}^2` (rows `i-1..i+1`, columns `j-1..j+1`):
//!
//! ```text
//! (L u)[i,j] = c1 u[i-1,j-1] + c2 u[i-1,j] + c3 u[i-1,j+1]
//!            + c4 u[i  ,j-1] + c5 u[i  ,j] + c6 u[i  ,j+1]
//!            + c7 u[i+1,j-1] + c8 u[i+1,j] + c9 u[i+1,j+1]
//! ```
//!
//! [`apply_stencil_periodic`] evaluates `L u` on the torus (indices wrap), which is the operator
//! the FFT solver in `melloc-solver` inverts; [`apply_stencil_interior`] evaluates it only where
//! all nine neighbours exist.
//!
//! # Learning ([`learn_stencil`])
//! `theta` minimises `F(theta) = sum_{i,j} ((L_theta u)[i,j])^2` over the interior windows whose
//! nine points are all unmasked, under the normalisation **`c5 = 1`** (centre fixed), which
//! excludes the trivial `theta = 0`. With `x_w` the eight non-centre neighbours of window `w` and
//! `y_w` its centre, the free coefficients solve the 8x8 normal equations
//!
//! ```text
//! (X^T X + lambda I) c = -X^T y,      lambda = 1e-12 * trace(X^T X) / 8
//! ```
//!
//! solved with faer's full-pivoting LU. The fit has a free **intercept**: it minimises
//! `sum (L u - f0)^2` over `c` and a constant `f0`, i.e. regressors and target are centred on
//! their means over the windows. On fields like surface pressure (~1e5 +- 10) the raw normal
//! matrix is dominated by `mean^2` and loses ~10 digits; the intercept removes that mode without
//! biasing the fit (a field with `L u = 0` exactly is still recovered exactly, `f0 = 0`), and a
//! constant part of `f` costs nothing downstream (the solver stores the zero frequency). The tiny
//! ridge keeps the system solvable on degenerate inputs (e.g. linear ramps, where many stencils
//! are exact) without changing well-posed fits measurably.
//! The centre normalisation (rather than a unit-norm smallest eigenvector) was chosen because it
//! is the paper's, is a plain linear solve, and makes `f` directly comparable to `u` in scale.
//!
//! Slices with fewer than three rows (or columns) use a 1-D fit along the other axis (only
//! `c4, c6` or `c2, c8` free); slices with too few windows get [`Stencil::IDENTITY`].
//!
//! # PDE reading ([`Pde`])
//! The 1-D stencils `e = [0,1,0]`, `d = [-1/2,0,1/2]` (`d/dx`) and `dd = [1,-2,1]` (`d2/dx2`)
//! are a basis of `R^3`; their nine tensor products are a basis `A1..A9` of the 3x3 stencils:
//!
//! | basis | y part | x part | operator |
//! |---|---|---|---|
//! | A1 | e | e | `u` |
//! | A2 | e | d | `u_x` |
//! | A3 | d | e | `u_y` |
//! | A4 | e | dd | `u_xx` |
//! | A5 | dd | e | `u_yy` |
//! | A6 | d | d | `u_xy` |
//! | A7 | d | dd | `u_xxy` |
//! | A8 | dd | d | `u_xyy` |
//! | A9 | dd | dd | `u_xxyy` |
//!
//! (x runs along columns `j`, y along rows `i`, unit grid spacing.) `theta = sum_n a_n A_n`, and
//! the second-order part `a4 u_xx + a6 u_xy + a5 u_yy` classifies the PDE by the sign of
//! `a6^2 - 4 a4 a5` (negative: elliptic, zero: parabolic, positive: hyperbolic).

use faer::prelude::*;
use faer::Mat;

use crate::CoreError;

/// Number of coefficients of a 3x3 stencil.
pub const STENCIL_LEN: usize = 9;

/// A 3x3 linear stencil, coefficients row-major (rows `i-1..i+1`, columns `j-1..j+1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stencil {
    /// `c1..c9`, row-major.
    pub coeffs: [f64; STENCIL_LEN],
}

/// Offsets `(di, dj)` of the nine coefficients, in coefficient order.
const OFFSETS: [(isize, isize); STENCIL_LEN] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 0),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

/// Index of the centre coefficient `c5`.
const CENTRE: usize = 4;

impl Stencil {
    /// The identity operator (`c5 = 1`, all others 0): `L u = u`. Fallback for tiny slices.
    pub const IDENTITY: Stencil = Stencil {
        coeffs: [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    };

    /// The 5-point Laplacian `u_xx + u_yy` (centre -4).
    pub const LAPLACIAN: Stencil = Stencil {
        coeffs: [0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0],
    };

    /// Builds a stencil from `c1..c9`.
    pub const fn new(coeffs: [f64; STENCIL_LEN]) -> Self {
        Self { coeffs }
    }

    /// The coefficient at row offset `di` and column offset `dj` (each in `-1..=1`), or `None`
    /// outside the 3x3 window.
    pub fn coeff(&self, di: isize, dj: isize) -> Option<f64> {
        if !(-1..=1).contains(&di) || !(-1..=1).contains(&dj) {
            return None;
        }
        // In range by the check above, so the index is 0..9.
        let k = ((di + 1) * 3 + (dj + 1)) as usize;
        self.coeffs.get(k).copied()
    }

    /// `true` if every coefficient is finite.
    pub fn is_finite(&self) -> bool {
        self.coeffs.iter().all(|c| c.is_finite())
    }

    /// `sum |c_k|`: an upper bound of the symbol's modulus `|B(k1, k2)|`.
    pub fn abs_sum(&self) -> f64 {
        self.coeffs.iter().fold(0.0, |s, c| s + c.abs())
    }

    /// The stencil in the PDE basis `A1..A9`.
    pub fn to_pde(&self) -> Pde {
        Pde::from_stencil(self)
    }
}

impl Default for Stencil {
    fn default() -> Self {
        Self::IDENTITY
    }
}

fn check_len(len: usize, n_rows: usize, n_cols: usize) -> Result<usize, CoreError> {
    let n = n_rows.checked_mul(n_cols).ok_or_else(|| {
        CoreError::InvalidArgument(format!("grid {n_rows}x{n_cols} overflows usize"))
    })?;
    if n != len {
        return Err(CoreError::LengthMismatch {
            expected: n,
            actual: len,
        });
    }
    Ok(n)
}

/// Forward operator on the torus: `(L u)[i,j] = sum_k c_k u[(i+di_k) mod n_rows, (j+dj_k) mod n_cols]`.
///
/// `u` is `n_rows x n_cols`, C order. The nine products are summed in coefficient order
/// `c1..c9` (no `mul_add`), so the result is reproducible. With `n_rows == 1` (or `n_cols == 1`)
/// the three rows (columns) of the stencil fall on the same line and their coefficients add up.
pub fn apply_stencil_periodic(
    stencil: &Stencil,
    u: &[f64],
    n_rows: usize,
    n_cols: usize,
) -> Result<Vec<f64>, CoreError> {
    check_len(u.len(), n_rows, n_cols)?;
    let mut out = vec![0.0; u.len()];
    for i in 0..n_rows {
        // Wrapped neighbour rows, computed without underflow.
        let rows = [(i + n_rows - 1) % n_rows, i, (i + 1) % n_rows];
        for j in 0..n_cols {
            let cols = [(j + n_cols - 1) % n_cols, j, (j + 1) % n_cols];
            let mut s = 0.0;
            for (k, c) in stencil.coeffs.iter().enumerate() {
                s += c * u[rows[k / 3] * n_cols + cols[k % 3]];
            }
            out[i * n_cols + j] = s;
        }
    }
    Ok(out)
}

/// Forward operator on interior points only: returns the `(n_rows-2) x (n_cols-2)` array of
/// `(L u)[i,j]` for `1 <= i < n_rows-1`, `1 <= j < n_cols-1` (empty if either side is < 3).
pub fn apply_stencil_interior(
    stencil: &Stencil,
    u: &[f64],
    n_rows: usize,
    n_cols: usize,
) -> Result<Vec<f64>, CoreError> {
    check_len(u.len(), n_rows, n_cols)?;
    if n_rows < 3 || n_cols < 3 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity((n_rows - 2) * (n_cols - 2));
    for i in 1..n_rows - 1 {
        for j in 1..n_cols - 1 {
            let mut s = 0.0;
            for (k, c) in stencil.coeffs.iter().enumerate() {
                s += c * u[(i + k / 3 - 1) * n_cols + (j + k % 3 - 1)];
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// Learns the stencil minimising `sum (L u)^2` with `c5 = 1` (see the module docs).
///
/// `u` is `n_rows x n_cols`, C order. `mask[p] == true` excludes point `p` (exceptions, fill
/// values, land): every window touching a masked point is left out of the fit. Slices with
/// fewer than 3 rows/columns get a 1-D fit along the long axis; with fewer windows than twice
/// the number of free coefficients the result is [`Stencil::IDENTITY`].
///
/// Errors: length mismatches, or [`CoreError::Numerical`] when the solve yields non-finite
/// coefficients (non-finite input values that were not masked).
pub fn learn_stencil(
    u: &[f64],
    n_rows: usize,
    n_cols: usize,
    mask: Option<&[bool]>,
) -> Result<Stencil, CoreError> {
    let n = check_len(u.len(), n_rows, n_cols)?;
    if let Some(m) = mask {
        if m.len() != n {
            return Err(CoreError::LengthMismatch {
                expected: n,
                actual: m.len(),
            });
        }
    }
    let excluded = |p: usize| mask.is_some_and(|m| m[p]);

    // Free coefficients (indices into OFFSETS) and the window's reach.
    let free: Vec<usize> = match (n_rows >= 3, n_cols >= 3) {
        (true, true) => (0..STENCIL_LEN).filter(|&k| k != CENTRE).collect(),
        (false, true) => vec![3, 5],
        (true, false) => vec![1, 7],
        (false, false) => return Ok(Stencil::IDENTITY),
    };
    let (ri, rj) = (usize::from(n_rows >= 3), usize::from(n_cols >= 3));

    let n_free = free.len();
    // Visits every valid window in raster order, handing its free neighbours and centre over.
    let mut x = vec![0.0f64; n_free];
    let mut for_each_window = |visit: &mut dyn FnMut(&[f64], f64)| {
        for i in ri..n_rows - ri {
            'window: for j in rj..n_cols - rj {
                let centre = i * n_cols + j;
                if excluded(centre) {
                    continue;
                }
                for (slot, &k) in free.iter().enumerate() {
                    let (di, dj) = OFFSETS[k];
                    // In bounds: i >= ri >= |di| whenever di != 0, same for columns.
                    let p = (i as isize + di) as usize * n_cols + (j as isize + dj) as usize;
                    if excluded(p) {
                        continue 'window;
                    }
                    x[slot] = u[p];
                }
                visit(&x, u[centre]);
            }
        }
    };

    // Pass 1: means of each regressor and of the target over the valid windows (the intercept).
    let mut x_mean = vec![0.0f64; n_free];
    let mut y_mean = 0.0f64;
    let mut n_windows = 0usize;
    for_each_window(&mut |x, y| {
        for (m, v) in x_mean.iter_mut().zip(x) {
            *m += v;
        }
        y_mean += y;
        n_windows += 1;
    });
    if n_windows < 2 * n_free {
        return Ok(Stencil::IDENTITY);
    }
    for m in x_mean.iter_mut() {
        *m /= n_windows as f64;
    }
    y_mean /= n_windows as f64;

    // Pass 2: centred normal equations.
    let mut gram = vec![0.0f64; n_free * n_free];
    let mut rhs = vec![0.0f64; n_free];
    let mut xc = vec![0.0f64; n_free];
    for_each_window(&mut |x, y| {
        for a in 0..n_free {
            xc[a] = x[a] - x_mean[a];
        }
        let yc = y - y_mean;
        for a in 0..n_free {
            rhs[a] -= xc[a] * yc;
            for b in 0..n_free {
                gram[a * n_free + b] += xc[a] * xc[b];
            }
        }
    });
    let trace: f64 = (0..n_free).map(|a| gram[a * n_free + a]).sum();
    if !trace.is_finite() {
        return Err(CoreError::Numerical(
            "non-finite normal equations (unmasked non-finite values?)".into(),
        ));
    }
    if trace == 0.0 {
        // Constant field: every stencil with c5 = 1 fits equally; keep the simplest.
        return Ok(Stencil::IDENTITY);
    }
    let ridge = 1e-12 * trace / n_free as f64;
    let g = Mat::<f64>::from_fn(n_free, n_free, |a, b| {
        gram[a * n_free + b] + if a == b { ridge } else { 0.0 }
    });
    let r = Mat::<f64>::from_fn(n_free, 1, |a, _| rhs[a]);
    let sol = g.full_piv_lu().solve(&r);

    let mut coeffs = [0.0f64; STENCIL_LEN];
    coeffs[CENTRE] = 1.0;
    for (slot, &k) in free.iter().enumerate() {
        coeffs[k] = sol[(slot, 0)];
    }
    let stencil = Stencil { coeffs };
    if !stencil.is_finite() {
        return Err(CoreError::Numerical(
            "least-squares stencil is not finite".into(),
        ));
    }
    Ok(stencil)
}

/// Type of a second-order linear PDE, from the discriminant of its principal part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PdeClass {
    /// `a6^2 - 4 a4 a5 < 0` (e.g. Laplace / Poisson).
    Elliptic,
    /// `a6^2 - 4 a4 a5 = 0` within a relative tolerance of 1e-6 (e.g. heat equation).
    Parabolic,
    /// `a6^2 - 4 a4 a5 > 0` (e.g. wave equation).
    Hyperbolic,
    /// No second-order part (all of `a4, a5, a6` negligible): first- or zeroth-order operator.
    Degenerate,
}

impl PdeClass {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Elliptic => "elliptic",
            Self::Parabolic => "parabolic",
            Self::Hyperbolic => "hyperbolic",
            Self::Degenerate => "degenerate",
        }
    }
}

impl std::fmt::Display for PdeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stencil expressed in the basis `A1..A9` (see the module docs): `coeffs[n-1]` multiplies `A_n`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pde {
    /// `a1..a9`: coefficients of `u, u_x, u_y, u_xx, u_yy, u_xy, u_xxy, u_xyy, u_xxyy`.
    pub coeffs: [f64; STENCIL_LEN],
}

/// 1-D basis vectors over offsets -1, 0, 1: identity, `d/dx`, `d2/dx2`.
const BASIS_1D: [[f64; 3]; 3] = [[0.0, 1.0, 0.0], [-0.5, 0.0, 0.5], [1.0, -2.0, 1.0]];
/// Rows are the dual functionals of [`BASIS_1D`]: `DUAL_1D[p] . BASIS_1D[q] = delta_pq`.
const DUAL_1D: [[f64; 3]; 3] = [[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [0.5, 0.0, 0.5]];
/// `(y order, x order)` of `A1..A9`.
const BASIS_ORDERS: [(usize, usize); STENCIL_LEN] = [
    (0, 0),
    (0, 1),
    (1, 0),
    (0, 2),
    (2, 0),
    (1, 1),
    (1, 2),
    (2, 1),
    (2, 2),
];
/// Term names of `A1..A9`.
const TERM_NAMES: [&str; STENCIL_LEN] = [
    "u", "u_x", "u_y", "u_xx", "u_yy", "u_xy", "u_xxy", "u_xyy", "u_xxyy",
];

impl Pde {
    /// The basis stencil `A_n` for `n` in `1..=9`, or `None`.
    pub fn basis(n: usize) -> Option<Stencil> {
        let &(p, q) = BASIS_ORDERS.get(n.checked_sub(1)?)?;
        let mut coeffs = [0.0; STENCIL_LEN];
        for a in 0..3 {
            for b in 0..3 {
                coeffs[a * 3 + b] = BASIS_1D[p][a] * BASIS_1D[q][b];
            }
        }
        Some(Stencil { coeffs })
    }

    /// Coordinates of `stencil` in the basis: `a_(p,q) = sum_ab D[p][a] D[q][b] c[a][b]`.
    pub fn from_stencil(stencil: &Stencil) -> Self {
        let mut coeffs = [0.0; STENCIL_LEN];
        for (n, &(p, q)) in BASIS_ORDERS.iter().enumerate() {
            let mut s = 0.0;
            for (a, row) in stencil.coeffs.chunks_exact(3).enumerate() {
                for (b, c) in row.iter().enumerate() {
                    s += DUAL_1D[p][a] * DUAL_1D[q][b] * c;
                }
            }
            coeffs[n] = s;
        }
        Self { coeffs }
    }

    /// Back to a stencil: `sum_n a_n A_n`.
    pub fn to_stencil(&self) -> Stencil {
        let mut coeffs = [0.0; STENCIL_LEN];
        for (n, a_n) in self.coeffs.iter().enumerate() {
            if let Some(basis) = Self::basis(n + 1) {
                for (c, b) in coeffs.iter_mut().zip(basis.coeffs.iter()) {
                    *c += a_n * b;
                }
            }
        }
        Stencil { coeffs }
    }

    /// Classifies the principal part `a4 u_xx + a6 u_xy + a5 u_yy`.
    pub fn classify(&self) -> PdeClass {
        let (a, c, b) = (self.coeffs[3], self.coeffs[4], self.coeffs[5]);
        let scale_all = self.coeffs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale2 = a.abs().max(b.abs()).max(c.abs());
        if scale2 == 0.0 || scale2 <= 1e-9 * scale_all {
            return PdeClass::Degenerate;
        }
        let disc = b * b - 4.0 * a * c;
        if disc.abs() <= 1e-6 * (b * b + 4.0 * (a * c).abs()) {
            PdeClass::Parabolic
        } else if disc < 0.0 {
            PdeClass::Elliptic
        } else {
            PdeClass::Hyperbolic
        }
    }
}

impl std::fmt::Display for Pde {
    /// `elliptic: 1.00 u_xx + 0.98 u_yy - 0.01 u_xy + 0.00 u_x + ...`, scaled so the largest
    /// second-order coefficient has modulus 1 (or the largest coefficient, if degenerate).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = self.classify();
        let second = [self.coeffs[3], self.coeffs[4], self.coeffs[5]];
        let mut scale = second.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if class == PdeClass::Degenerate || scale == 0.0 {
            scale = self.coeffs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        }
        if scale == 0.0 || !scale.is_finite() {
            scale = 1.0;
        }
        write!(f, "{class}:")?;
        // Principal part first, then first order, zeroth order, higher mixed terms.
        const ORDER: [usize; STENCIL_LEN] = [3, 4, 5, 1, 2, 0, 6, 7, 8];
        for (pos, &n) in ORDER.iter().enumerate() {
            let v = self.coeffs[n] / scale;
            let sign = if v.is_sign_negative() { '-' } else { '+' };
            if pos == 0 {
                let lead = if v.is_sign_negative() { "-" } else { "" };
                write!(f, " {lead}{:.2} {}", v.abs(), TERM_NAMES[n])?;
            } else {
                write!(f, " {sign} {:.2} {}", v.abs(), TERM_NAMES[n])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [-1, 1) (xorshift), no external crate needed.
    fn rng(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// A field that satisfies `L u = 0` exactly on the interior: fix the first two rows and
    /// the first/last columns at random, then solve each stencil equation for `u[i+1, j+1]`.
    fn field_from_stencil(s: &Stencil, n_rows: usize, n_cols: usize, seed: u64) -> Vec<f64> {
        let mut seed = seed;
        let mut u = vec![0.0; n_rows * n_cols];
        for v in u.iter_mut() {
            *v = rng(&mut seed);
        }
        let c = &s.coeffs;
        for i in 1..n_rows - 1 {
            for j in 1..n_cols - 1 {
                let mut acc = 0.0;
                for k in 0..8 {
                    acc += c[k] * u[(i + k / 3 - 1) * n_cols + (j + k % 3 - 1)];
                }
                u[(i + 1) * n_cols + (j + 1)] = -acc / c[8];
            }
        }
        u
    }

    #[test]
    fn learns_known_stencil() {
        // Coefficients chosen so the recurrence (dividing by c9) stays bounded on a small grid.
        let truth = Stencil::new([0.3, -0.2, 0.1, 0.25, 1.0, -0.15, 0.05, 0.2, 2.0]);
        let u = field_from_stencil(&truth, 8, 9, 7);
        assert!(u.iter().all(|v| v.is_finite()));
        let learned = learn_stencil(&u, 8, 9, None).unwrap();
        for (a, b) in learned.coeffs.iter().zip(truth.coeffs.iter()) {
            assert!((a - b).abs() < 1e-6, "{learned:?} vs {truth:?}");
        }
        let interior = apply_stencil_interior(&learned, &u, 8, 9).unwrap();
        assert!(interior.iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn masked_points_do_not_pollute_the_fit() {
        let truth = Stencil::new([0.3, -0.2, 0.1, 0.25, 1.0, -0.15, 0.05, 0.2, 2.0]);
        let mut u = field_from_stencil(&truth, 8, 9, 11);
        let mut mask = vec![false; u.len()];
        for p in [10, 31, 44] {
            u[p] = 9.96921e36;
            mask[p] = true;
        }
        let learned = learn_stencil(&u, 8, 9, Some(&mask)).unwrap();
        for (a, b) in learned.coeffs.iter().zip(truth.coeffs.iter()) {
            assert!((a - b).abs() < 1e-6, "{learned:?} vs {truth:?}");
        }
    }

    #[test]
    fn tiny_and_degenerate_slices_fall_back() {
        assert_eq!(
            learn_stencil(&[1.0], 1, 1, None).unwrap(),
            Stencil::IDENTITY
        );
        assert_eq!(
            learn_stencil(&[1.0, 2.0, 3.0, 4.0], 2, 2, None).unwrap(),
            Stencil::IDENTITY
        );
        assert_eq!(
            learn_stencil(&[5.0; 30], 5, 6, None).unwrap(),
            Stencil::IDENTITY
        );
        // 1 x n: a 1-D fit; a sampled sinusoid cos(0.3 j + 0.2) satisfies
        // u[j-1] - 2 cos(0.3) u[j] + u[j+1] = 0, i.e. c4 = c6 = -1 / (2 cos 0.3) with c5 = 1.
        let u: Vec<f64> = (0..40).map(|j| (0.3 * j as f64 + 0.2).cos()).collect();
        let s = learn_stencil(&u, 1, 40, None).unwrap();
        let want = -1.0 / (2.0 * 0.3f64.cos());
        assert!((s.coeffs[3] - want).abs() < 1e-6, "{s:?}");
        assert!((s.coeffs[5] - want).abs() < 1e-6, "{s:?}");
        assert_eq!(s.coeffs[1], 0.0);
        assert!(learn_stencil(&[1.0; 5], 2, 3, None).is_err());
    }

    #[test]
    fn periodic_apply_wraps() {
        let u: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let f = apply_stencil_periodic(&Stencil::LAPLACIAN, &u, 3, 4).unwrap();
        // Point (0,0): up = u[2,0] = 8, down = u[1,0] = 4, left = u[0,3] = 3, right = u[0,1] = 1.
        assert_eq!(f[0], 8.0 + 4.0 + 3.0 + 1.0 - 0.0);
        assert_eq!(f.iter().sum::<f64>(), 0.0);
        assert_eq!(
            apply_stencil_periodic(&Stencil::IDENTITY, &u, 3, 4).unwrap(),
            u
        );
    }

    #[test]
    fn basis_round_trip() {
        let mut seed = 3;
        let s = Stencil::new(std::array::from_fn(|_| rng(&mut seed)));
        let back = s.to_pde().to_stencil();
        for (a, b) in s.coeffs.iter().zip(back.coeffs.iter()) {
            assert!((a - b).abs() < 1e-14);
        }
        for n in 1..=9 {
            let pde = Pde::basis(n).unwrap().to_pde();
            for (m, v) in pde.coeffs.iter().enumerate() {
                let want = if m + 1 == n { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-15, "A{n}: {pde:?}");
            }
        }
        assert!(Pde::basis(0).is_none() && Pde::basis(10).is_none());
    }

    #[test]
    fn classification_and_display() {
        let lap = Stencil::LAPLACIAN.to_pde();
        assert_eq!(lap.classify(), PdeClass::Elliptic);
        assert_eq!(
            lap.to_string(),
            "elliptic: 1.00 u_xx + 1.00 u_yy + 0.00 u_xy + 0.00 u_x + 0.00 u_y + 0.00 u \
             + 0.00 u_xxy + 0.00 u_xyy + 0.00 u_xxyy"
        );
        // Heat equation u_y = u_xx: A4 - A3.
        let mut heat = Pde {
            coeffs: [0.0; STENCIL_LEN],
        };
        heat.coeffs[3] = 1.0;
        heat.coeffs[2] = -1.0;
        assert_eq!(heat.classify(), PdeClass::Parabolic);
        // Wave equation u_xx - u_yy.
        let mut wave = heat;
        wave.coeffs[2] = 0.0;
        wave.coeffs[4] = -1.0;
        assert_eq!(wave.classify(), PdeClass::Hyperbolic);
        assert_eq!(Stencil::IDENTITY.to_pde().classify(), PdeClass::Degenerate);
        assert!(wave
            .to_string()
            .starts_with("hyperbolic: 1.00 u_xx - 1.00 u_yy"));
    }
}
