//! The causal route (the default): exact integerisation, a learned causal linear predictor,
//! exception masks, and context-modelled adaptive binary range coding of the residuals.
//!
//! Per block:
//! 1. [`integerize`](melloc_core::integer::integerize): every value becomes an integer `k` (grid index for packed/decimal data,
//!    signed ordered bits otherwise) plus, for grids, a small ulp fix; NaN, +-inf and fill values
//!    become exceptions. Other domains: a palette (the index into the sorted distinct values)
//!    and one grid per slice (GRIB-style packing, each level with its own offset and step).
//! 2. A causal [`Stencil`] (W, N, NW, NE, WW, NN, ... and, for 3-D blocks, the previous slice's
//!    P, PW, PN, PE, PS, PNW, PNE, PSW, PSE: [`melloc_core::predict::TAPS_PREV`]) is fitted by
//!    least squares (the full set reweighted per slice,
//!    [`melloc_core::predict::fit_weights_reweighted`]) on the *domain values* (grid index; the float value for ordered
//!    bits and palettes; the grid's physical value `offset_s + k * step_s` for per-slice grids,
//!    mapped back to an index of the slice's grid by rounding `(pred - offset_s) / step_s`),
//!    the weights stored as `f32`. The decoder recomputes every prediction from decoded values
//!    with plain `f64` arithmetic in a fixed order ([`melloc_core::predict::combine`]):
//!    bit-identical everywhere.
//! 3. Each value: an exception-mask bit (context: mask of W, N, NW, NE and the previous slice),
//!    then either the exception or the residual
//!    `k - int(pred)` (wrapping). An exception is an index into a dictionary of bit patterns
//!    (an 8-bit tree under the previous index and W's mask; the escape index is followed by
//!    the raw bits). Version 4 first codes "same index as the previous exception" (context:
//!    W and N masks) and the tree only when it is not: radar fields are 50-95% one fill value
//!    or zero, and one decision instead of eight halved their decoding (PrecipRate-mrms 4.22G
//!    -> 2.13G instructions, RATE-opera 2.90G -> 1.53G) and made every file with exceptions
//!    smaller (PrecipRate 295,891 -> 292,487 bytes). Exceptions never enter a neighbour's
//!    prediction: their domain value is replaced by their own prediction, clamped to the
//!    block's valid range.
//! 4. Residual coding: the bit length `n` (0 for a zero residual) under a context `c` made of
//!    the bit lengths of the W, N, NW, NE residuals, coded around the expected length
//!    `e = ceil(c / 2)`: "n == e", then "n > e", then the distance `|n - e| - 1` in unary
//!    (6 adaptive steps, then a 6-bit tree); decisions with only one possible outcome are not
//!    coded. Then the sign; in header versions 3 and 4 the first two mantissa bits below the
//!    leading one adaptively; the remaining low bits (all bits below the leading one from
//!    version 5) raw in a separate bit stream. The palette's deltas keep the two adaptive
//!    bits in every version. Version 6: where the expected length is `e >= 4`, the length is
//!    instead one of 16 leaves of a 4-level tree per context (`n - e` in -7..=7, or an escape
//!    followed by `n` in a 7-bit tree; `residual::code_len_tree`); below that, as before. The
//!    palette's deltas keep the unary length code in every version.
//! 5. Run groups (version 5, header flag 64): in each row, the points `16 g..16 g + 16`
//!    (`g >= 1`, the last group shorter) start with a decision "every point repeats the point
//!    before the group" (context: whether the group before it in the row, and the same group
//!    in the row above, were runs). Such points are not coded: each repeats W's output value,
//!    exception mask and prediction-plane value, and takes context byte 0. The encoder sets the
//!    flag when at least 1 group in 16 repeats.
//! 6. For 3-D blocks, each slice `s >= lag` starts with a "copy" bit: when set, every value of
//!    the slice is predicted by the value at the same point `lag` slices back (exactly; the
//!    fitted weights are not used for that slice). The encoder sets it when at least half the
//!    valid values equal that point.
//!
//! Sections: 0 header (parameters), 1 range-coded stream (the palette, if any, then the
//! values), 2 raw low bits. Up to version 5 the range coder is [`RangeEncoder`] (32-bit
//! interval, adaptation rate 4); from version 6 it is [`WideEncoder`] (64-bit interval,
//! renormalised 32 bits at a time, adaptation rate 5). The decisions, their contexts and
//! their order are the same in both apart from the residual lengths above.
//!
//! Header layout (little-endian): `version` u8 (6; 5 in format 1.2 files, read the same way
//! with the narrow range coder and unary lengths; 4 in format 1.1 files, also with two
//! adaptive mantissa bits and no runs; 3 in format 1.0 files, also without the repeat
//! decision); `flags` u8 (1 grid, 2 exceptions, 4 ulp fixes, 8 grid op is division,
//! 16 palette, 32 per-slice grids, 64 run groups (version >= 5); other bits are an error);
//! with flag 16: palette length u32 (1..=block length, not with flag 1); with flag 32
//! (not with 1, 8 or 16; the block has >= 2 slices): per slice, op u8 (0 `*`, 1 `/`), offset
//! f64, step f64 (finite, step != 0); with flag 1: offset f64, step f64; `lo`, `hi` f64 (finite,
//! `lo <= hi`); stencil kind u8; slice lag u8 (>= 1); the in-slice weights then the full weights
//! as f32; with flag 2: dictionary length u8 and that many bit patterns of the value width.
//! Nothing may follow.

use std::borrow::Cow;

use melloc_core::integer::{
    detect_exceptions, detect_grid, detect_slice_grids, grid_ints, integerize_planes_on,
    radix_sort, to_signed_ordered, GridOp, IntPlane, Integerisation, IntegerizedPlanes, RadixKey,
};
use melloc_core::predict::{
    combine, fit_weights_on, fit_weights_reweighted_on, ref_weight, FitPlane, Stencil, StencilKind,
    ValidPlane, MAX_TAPS,
};
use melloc_core::{BlockDims, DType, Float};

use super::{RouteConfig, RouteInfo};
use crate::entropy::{
    BinaryDecoder, BinaryEncoder, BitReader, BitWriter, DenseRangeDecoder, RangeDecoder,
    RangeEncoder, WideDecoder, WideEncoder, PROB_INIT,
};
use crate::error::{corrupt, FormatError, Result};
use crate::residual::{
    code_signed, code_signed_as, length_context, neighbour_bytes, BitIo, LenModels,
};
use crate::section::{expect_section, Section};

const KIND_HEADER: u8 = 0;
pub(crate) const KIND_RC: u8 = 1;
const KIND_RAW: u8 = 2;
/// Section layout version. 6: the wide range coder and tree-coded residual lengths (format
/// 1.3); 5: no adaptive mantissa bits in residuals (1.2); 4: the
/// exception repeat decision (1.1); 3: nine previous-slice taps (1.0; 2: five; 2 coded bit
/// lengths around the context's expected length, 1 a 6-bit tree per context; pre-release, no
/// longer read).
const VERSION: u8 = 6;
/// The oldest header version this build reads (format 1.0 files).
const MIN_VERSION: u8 = 3;

const FLAG_GRID: u8 = 1;
const FLAG_EXCEPTIONS: u8 = 2;
const FLAG_FIXES: u8 = 4;
const FLAG_DIV: u8 = 8;
const FLAG_PALETTE: u8 = 16;
const FLAG_SLICE_GRIDS: u8 = 32;
/// Version 5: each row group of [`RUN_GROUP`] points after the first starts with a "repeats W"
/// decision (context: whether the W group and the N group were runs). A run group's points
/// copy W's value, mask and domain value, and take context byte 0; nothing else is coded.
///
/// Measured on the 40 shared fields: decoding PrecipRate-mrms took 45% less CPU (107.4 ->
/// 59.1 ms, median of 9; 2.11G -> 0.64G instructions), fice 16% less; the output shrank
/// 0.1% (6.221 -> 6.228: fice -3.0%, FR-LAND -1.3%, V-foam -1.1%; PrecipRate +0.6%, QCLOUD
/// +0.5%). Groups of 8 or 32 points gave 6.230 and 6.227.
const FLAG_RUNS: u8 = 64;
/// Points per run group.
const RUN_GROUP: usize = 16;
/// Runs are coded when at least one group in this many repeats its W point.
const RUNS_MIN_SHARE: usize = 16;

/// Points sampled per least-squares fit. Rejected: 2^16 for the final fit too (TREFHT's
/// reweighted fit 76M -> ~38M instructions) grew u-eraint 1.43%, RATE-opera 0.85% and
/// PrecipRate 0.76% (40-file total +0.03%). Measured again later: compress CPU of the 40
/// files -3.8% (median of 5), aggregate 6.2398 -> 6.2381, geomean 4.2230 -> 4.2210; 2^15:
/// -5.1%, 6.2376, 4.2201 (PrecipRate +1.6%). Not worth the bytes for a few percent.
const FIT_SAMPLES: usize = 1 << 17;
/// Points sampled per least-squares fit of a row-sampled estimate ([`estimate`]): the estimate
/// only ranks the candidates. 2^17 -> 2^15: THETA-levitus 1.75G -> 1.59G instructions, fice
/// 1.60G -> 1.55G, V-foam 850M -> 837M; estimates move by up to ~0.5% (see `ESTIMATE_MARGIN`).
const ESTIMATE_FIT_SAMPLES: usize = 1 << 15;
/// How much smaller (relative) a later candidate's estimate must be to replace an earlier one.
const ESTIMATE_MARGIN: f64 = 0.005;
/// Reweighting passes of the full-set fit (U-dc: 0 -> 1.858, 2 -> 2.240, 4 -> 2.314,
/// 8 -> 2.318; each pass only combines per-slice normal equations, no pass over the data).
const FIT_ITERS: usize = 6;
/// Largest exception dictionary; index `DICT_MAX` is the escape to raw bits.
const DICT_MAX: usize = 255;
/// Contexts for ulp fixes (grid index modulo this).
const FIX_CTX: usize = 4096;
/// Largest slice lag searched for the previous-slice taps.
const MAX_LAG: usize = 32;
/// Range-coded bits per value from which the decoder uses the branch-free renormalisation
/// (TS: 5.6, U-dc and ECHAM5 several; radar fields of 90% zeros: < 1).
const DENSE_BITS_PER_VALUE: usize = 2;

/// Parameters of one block, stored in the header section.
#[derive(Clone, Debug)]
struct Header {
    /// 3 (format 1.0), 4 (adds the exception repeat decision, format 1.1) or 5 (no adaptive
    /// mantissa bits, format 1.2).
    version: u8,
    kind: Integerisation,
    has_exceptions: bool,
    /// Run groups are coded (flag 64, version 5).
    runs: bool,
    has_fixes: bool,
    lo: f64,
    hi: f64,
    stencil: StencilKind,
    lag: usize,
    w_in: Vec<f64>,
    w_full: Vec<f64>,
    dict: Vec<u64>,
    /// Number of palette entries (0: no palette). The palette itself is range coded.
    n_palette: usize,
    /// One grid per slice (empty: none); `kind` is then `Ordered` and unused.
    slice_grids: Vec<Integerisation>,
}

/// The integer domain of a block: the core integerisation, a palette (sorted distinct
/// values; the integer is the index), or one grid per slice. The palette catches quantised data
/// whose levels are not a uniform grid (ERA-Interim u/v keep ~2 significant digits: 2756
/// distinct values). Per-slice grids catch GRIB-style packing (ECHAM5: each level has its own
/// offset and power-of-two step); their values are predicted in *physical* units, so taps in
/// another slice (another grid) stay consistent.
#[derive(Clone, Debug)]
enum Domain {
    Int(Integerisation),
    Palette(PaletteIndex),
    Slices(Vec<Integerisation>),
}

impl Domain {
    /// The domain of slice `s` (a slice past the end of `Slices` falls back to ordered bits;
    /// the header parser never lets that happen).
    #[inline]
    fn at_slice(&self, s: usize) -> SliceDomain<'_> {
        match self {
            Domain::Int(k) => SliceDomain::Int(*k),
            Domain::Palette(p) => SliceDomain::Palette(p),
            Domain::Slices(v) => {
                SliceDomain::Physical(v.get(s).copied().unwrap_or(Integerisation::Ordered))
            }
        }
    }
}

/// A palette's values (ascending) with a bucket index for [`PaletteIndex::lower_bound`].
///
/// Bucket `b(x) = floor((x - values[0]) * scale)` is non-decreasing in `x` (IEEE subtraction
/// and multiplication by a positive constant are monotone), so every entry of a lower bucket
/// than `b(x)` is below `x` and every entry of a higher one is above it: the answer lies among
/// the entries of bucket `b(x)`, `start[b]..start[b + 1]`. Exact for any spacing; fast when
/// the values are spread evenly. Measured on z-eraint (a palette of 20,970 values, 694K
/// lookups), against a binary search over the whole palette: 13% fewer instructions, and
/// decoding took 47% less CPU time (54.8 -> 29.2 ms; u-eraint 48.1 -> 33.0 ms; median of 11),
/// encoding 21% less; outputs byte-identical.
#[derive(Clone, Debug)]
struct PaletteIndex {
    values: Vec<f64>,
    /// `values[0]` (0 for an empty palette).
    first: f64,
    scale: f64,
    /// `start[b]`: the number of entries in buckets below `b` (`n_buckets + 1` of them).
    start: Vec<u32>,
    /// The most entries in one bucket.
    max_occ: usize,
}

/// Buckets of at most this many entries are searched by a branch-free count over a fixed
/// number of entries (see [`PaletteIndex::lower_bound`]).
const PALETTE_LINEAR_MAX: usize = 8;

impl PaletteIndex {
    fn new(values: Vec<f64>) -> Self {
        let n_buckets = values.len().clamp(1, 1 << 18);
        let first = values.first().copied().unwrap_or(0.0);
        let width = values.last().copied().unwrap_or(0.0) - first;
        // A degenerate or non-finite span (one value, or a corrupt palette): one bucket.
        let scale = if width.is_finite() && width > 0.0 && (n_buckets as f64 / width).is_finite() {
            n_buckets as f64 / width
        } else {
            0.0
        };
        let mut index = Self {
            values,
            first,
            scale,
            start: vec![0u32; n_buckets + 1],
            max_occ: 0,
        };
        for k in 0..index.values.len() {
            let b = index.bucket(index.values[k]);
            index.start[b + 1] += 1;
        }
        index.max_occ = index.start.iter().max().map_or(0, |&m| m as usize);
        for b in 0..n_buckets {
            index.start[b + 1] += index.start[b];
        }
        index
    }

    /// The bucket of `x` in `0..n_buckets` (clamped; NaN to 0).
    #[inline(always)]
    fn bucket(&self, x: f64) -> usize {
        // `as` saturates (NaN -> 0); the clamp keeps `x == last` in the last bucket.
        (((x - self.first) * self.scale) as usize).min(self.start.len() - 2)
    }

    /// `values.partition_point(|&v| v < x)`: the number of entries below `x`.
    ///
    /// When no bucket holds more than `PALETTE_LINEAR_MAX` entries, the entries of `x`'s bucket
    /// below `x` are counted over `max_occ` positions (those past the bucket masked), a loop
    /// whose trip count is the same for every lookup of the block: a binary search's trip
    /// count follows the bucket's size, and its exit mispredicted. Counting equals the
    /// partition point because the palette is sorted. Measured (decode, median CPU of 11):
    /// u-eraint (at most 5 entries per bucket) -8%, z-eraint -10%, v-eraint -6%; outputs
    /// byte-identical.
    #[inline(always)]
    fn lower_bound(&self, x: f64) -> usize {
        let b = self.bucket(x);
        let (lo, hi) = (self.start[b] as usize, self.start[b + 1] as usize);
        if self.max_occ <= PALETTE_LINEAR_MAX {
            let last = self.values.len().saturating_sub(1);
            let mut below = 0usize;
            for t in 0..self.max_occ {
                let i = lo + t;
                let v = self
                    .values
                    .get(i.min(last))
                    .copied()
                    .unwrap_or(f64::INFINITY);
                below += usize::from(i < hi && v < x);
            }
            lo + below
        } else {
            lo + self.values[lo..hi].partition_point(|&v| v < x)
        }
    }
}

/// The domain of one slice.
#[derive(Clone, Copy, Debug)]
enum SliceDomain<'a> {
    Int(Integerisation),
    Palette(&'a PaletteIndex),
    /// A per-slice grid, predicted in physical units.
    // Rejected: for power-of-two steps (ECHAM5), the map from a prediction to an index as a
    // multiplication by the exact reciprocal instead of a division (bit-identical): decoding
    // rhumidity-echam5 and t-echam5 1% faster, not worth the code.
    Physical(Integerisation),
}

impl SliceDomain<'_> {
    #[inline(always)]
    fn int_of_prediction<T: Float>(self, pred: f64) -> i64 {
        match self {
            SliceDomain::Int(k) => k.int_of_prediction::<T>(pred),
            SliceDomain::Physical(k) => k.int_of_physical_prediction::<T>(pred),
            SliceDomain::Palette(index) => {
                // Nearest entry; NaN maps to index 0. Ties go to the lower entry.
                let p = &index.values[..];
                let i = index.lower_bound(pred);
                if i == 0 {
                    0
                } else if i >= p.len() {
                    p.len() as i64 - 1
                } else if pred - p[i - 1] <= p[i] - pred {
                    i as i64 - 1
                } else {
                    i as i64
                }
            }
        }
    }
    #[inline(always)]
    fn domain_value<T: Float>(self, k: i64) -> f64 {
        match self {
            SliceDomain::Int(kind) => kind.domain_value::<T>(k),
            SliceDomain::Physical(kind) => {
                let v = kind.physical_value::<T>(k);
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            }
            SliceDomain::Palette(p) => p.values.get(k as usize).copied().unwrap_or(0.0),
        }
    }
}

impl Header {
    fn to_bytes<T: Float>(&self) -> Vec<u8> {
        let mut out = vec![self.version];
        let mut flags = 0u8;
        if let Integerisation::Grid { op, .. } = self.kind {
            flags |= FLAG_GRID;
            if op == GridOp::Div {
                flags |= FLAG_DIV;
            }
        }
        if self.has_exceptions {
            flags |= FLAG_EXCEPTIONS;
        }
        if self.has_fixes {
            flags |= FLAG_FIXES;
        }
        if self.n_palette > 0 {
            flags |= FLAG_PALETTE;
        }
        if !self.slice_grids.is_empty() {
            flags |= FLAG_SLICE_GRIDS;
        }
        if self.runs {
            flags |= FLAG_RUNS;
        }
        out.push(flags);
        if self.n_palette > 0 {
            out.extend_from_slice(&(self.n_palette as u32).to_le_bytes());
        }
        for g in &self.slice_grids {
            if let Integerisation::Grid { offset, scale, op } = *g {
                out.push(u8::from(op == GridOp::Div));
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&scale.to_le_bytes());
            }
        }
        if let Integerisation::Grid { offset, scale, .. } = self.kind {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&scale.to_le_bytes());
        }
        out.extend_from_slice(&self.lo.to_le_bytes());
        out.extend_from_slice(&self.hi.to_le_bytes());
        out.push(self.stencil as u8);
        out.push(self.lag as u8);
        for &w in self.w_in.iter().chain(&self.w_full) {
            out.extend_from_slice(&(w as f32).to_le_bytes());
        }
        if self.has_exceptions {
            out.push(self.dict.len() as u8);
            for &b in &self.dict {
                out.extend_from_slice(&b.to_le_bytes()[..T::N_BYTES]);
            }
        }
        out
    }

    fn parse<T: Float>(data: &[u8], dims: BlockDims) -> Result<Self> {
        let mut r = Cursor { data, pos: 0 };
        let version = r.u8()?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(corrupt!(
                "causal route version {version} (this build reads {MIN_VERSION} to {VERSION})"
            ));
        }
        let flags = r.u8()?;
        let known = FLAG_GRID
            | FLAG_EXCEPTIONS
            | FLAG_FIXES
            | FLAG_DIV
            | FLAG_PALETTE
            | FLAG_SLICE_GRIDS
            | if version >= 5 { FLAG_RUNS } else { 0 };
        if flags & !known != 0 {
            return Err(corrupt!("causal header: unknown flags {flags:#x}"));
        }
        let n_palette = if flags & FLAG_PALETTE != 0 {
            let b = r.take(4)?;
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if n == 0 || n > dims.len() || flags & FLAG_GRID != 0 {
                return Err(corrupt!("causal header: palette of {n} entries"));
            }
            n
        } else {
            0
        };
        let mut slice_grids = Vec::new();
        if flags & FLAG_SLICE_GRIDS != 0 {
            if flags & (FLAG_GRID | FLAG_PALETTE | FLAG_DIV) != 0 || dims.n_slices < 2 {
                return Err(corrupt!("causal header: slice grids with flags {flags:#x}"));
            }
            // Pushed as read: the input length bounds the allocation, not `n_slices`.
            for _ in 0..dims.n_slices {
                let op = match r.u8()? {
                    0 => GridOp::Mul,
                    1 => GridOp::Div,
                    b => return Err(corrupt!("causal header: slice grid op {b}")),
                };
                let offset = r.f64()?;
                let scale = r.f64()?;
                if !offset.is_finite() || !scale.is_finite() || scale == 0.0 {
                    return Err(corrupt!("causal header: bad slice grid {offset} {scale}"));
                }
                slice_grids.push(Integerisation::Grid { offset, scale, op });
            }
        }
        let kind = if flags & FLAG_GRID != 0 {
            let offset = r.f64()?;
            let scale = r.f64()?;
            if !offset.is_finite() || !scale.is_finite() || scale == 0.0 {
                return Err(corrupt!("causal header: bad grid {offset} {scale}"));
            }
            let op = if flags & FLAG_DIV != 0 {
                GridOp::Div
            } else {
                GridOp::Mul
            };
            Integerisation::Grid { offset, scale, op }
        } else {
            Integerisation::Ordered
        };
        let lo = r.f64()?;
        let hi = r.f64()?;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(corrupt!("causal header: bad range [{lo}, {hi}]"));
        }
        let sk = r.u8()?;
        let stencil =
            StencilKind::from_u8(sk).ok_or_else(|| corrupt!("causal header: stencil {sk}"))?;
        let lag = usize::from(r.u8()?);
        if lag == 0 {
            return Err(corrupt!("causal header: slice lag 0"));
        }
        let st = Stencil::new(stencil, dims.n_rows, dims.n_cols, lag);
        let n_full = if st.n_in == st.taps.len() {
            0
        } else {
            st.n_weights()
        };
        let mut w_in = Vec::with_capacity(st.n_weights_in());
        for _ in 0..st.n_weights_in() {
            w_in.push(f64::from(r.f32()?));
        }
        let mut w_full = Vec::with_capacity(n_full);
        for _ in 0..n_full {
            w_full.push(f64::from(r.f32()?));
        }
        let has_exceptions = flags & FLAG_EXCEPTIONS != 0;
        let mut dict = Vec::new();
        if has_exceptions {
            let n = usize::from(r.u8()?);
            for _ in 0..n {
                let b = r.take(T::N_BYTES)?;
                let mut w = [0u8; 8];
                w[..T::N_BYTES].copy_from_slice(b);
                dict.push(u64::from_le_bytes(w));
            }
        }
        if r.pos != data.len() {
            return Err(corrupt!(
                "causal header: {} trailing bytes",
                data.len() - r.pos
            ));
        }
        Ok(Self {
            version,
            kind,
            has_exceptions,
            runs: flags & FLAG_RUNS != 0,
            has_fixes: flags & FLAG_FIXES != 0 && flags & (FLAG_GRID | FLAG_SLICE_GRIDS) != 0,
            lo,
            hi,
            stencil,
            lag,
            w_in,
            w_full,
            dict,
            n_palette,
            slice_grids,
        })
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or_else(|| FormatError::Truncated("causal header".into()))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    fn f32(&mut self) -> Result<f32> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One interface over the encoder and the decoder, so the modelling loop is written once and
/// the decoder mirrors the encoder by construction. The encoder codes and returns the value it
/// is given; the decoder ignores it and returns what it decodes.
trait Io: BitIo {
    /// `true` for the decoder: only it fills the output planes (the encoder has the values).
    const DECODES: bool;
}

/// The encoder over a range coder: [`RangeEncoder`] up to header version 5, [`WideEncoder`]
/// from version 6.
struct Enc<E> {
    rc: E,
    raw: BitWriter,
}

impl<E: BinaryEncoder> Enc<E> {
    /// Codes with `code` and returns the range-coded and the raw streams.
    fn streams(rc: E, code: impl FnOnce(&mut Self)) -> (Vec<u8>, Vec<u8>) {
        let mut io = Self {
            rc,
            raw: BitWriter::new(),
        };
        code(&mut io);
        (io.rc.finish(), io.raw.finish())
    }
}

impl<E: BinaryEncoder> Io for Enc<E> {
    const DECODES: bool = false;
}

impl<E: BinaryEncoder> BitIo for Enc<E> {
    #[inline(always)]
    fn bit(&mut self, p: &mut u16, bit: bool) -> bool {
        self.rc.encode_bit(p, bit);
        bit
    }
    #[inline(always)]
    fn tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32) -> u32 {
        self.rc.encode_tree(probs, n_bits, value);
        value
    }
    #[inline(always)]
    fn raw(&mut self, value: u64, n_bits: u32) -> u64 {
        self.raw.write(value, n_bits);
        value
    }
}

/// The decoder over a range decoder: [`RangeDecoder`] (or [`DenseRangeDecoder`], its
/// branch-free renormalisation, faster on streams of a few bits per value or more) up to
/// header version 5, [`WideDecoder`] from version 6.
struct Dec<'a, D> {
    rc: D,
    raw: BitReader<'a>,
}

impl<D: BinaryDecoder> Io for Dec<'_, D> {
    const DECODES: bool = true;
}

impl<D: BinaryDecoder> BitIo for Dec<'_, D> {
    #[inline(always)]
    fn bit(&mut self, p: &mut u16, _bit: bool) -> bool {
        self.rc.decode_bit(p)
    }
    #[inline(always)]
    fn tree(&mut self, probs: &mut [u16], n_bits: u32, _value: u32) -> u32 {
        self.rc.decode_tree(probs, n_bits)
    }
    #[inline(always)]
    fn raw(&mut self, _value: u64, n_bits: u32) -> u64 {
        self.raw.read(n_bits)
    }
}

/// Adaptive probabilities of one block.
struct Models {
    res: LenModels,
    mask: [u16; 32],
    exc: Vec<u16>,
    exc_repeat: [u16; 4],
    fix_nz: Vec<u16>,
    fix_sign: Vec<u16>,
    fix_len: Vec<u16>,
    copy: u16,
    /// Run-group decisions: W group and N group were runs.
    run: [u16; 4],
}

impl Models {
    fn new(has_exceptions: bool, has_fixes: bool) -> Self {
        Self {
            res: LenModels::new(),
            mask: [PROB_INIT; 32],
            exc: if has_exceptions {
                vec![PROB_INIT; 32 * 256]
            } else {
                Vec::new()
            },
            exc_repeat: [PROB_INIT; 4],
            fix_nz: if has_fixes {
                vec![PROB_INIT; FIX_CTX]
            } else {
                Vec::new()
            },
            fix_sign: if has_fixes {
                vec![PROB_INIT; FIX_CTX]
            } else {
                Vec::new()
            },
            fix_len: vec![PROB_INIT; 64],
            copy: PROB_INIT,
            run: [PROB_INIT; 4],
        }
    }
}

/// Codes an ulp fix (mostly 0, else +-1..4) under a context of the grid index.
#[inline]
fn code_fix<IO: BitIo>(io: &mut IO, m: &mut Models, k: i64, fix: i64) -> i64 {
    let c = (k as u64 as usize) & (FIX_CTX - 1);
    if !io.bit(&mut m.fix_nz[c], fix != 0) {
        return 0;
    }
    let neg = io.bit(&mut m.fix_sign[c], fix < 0);
    let mag = fix.unsigned_abs();
    let n = 64 - mag.leading_zeros();
    let n = io.tree(&mut m.fix_len, 6, n.wrapping_sub(1)) + 1;
    let rest = n - 1;
    let low_mask = if rest == 0 {
        0
    } else {
        u64::MAX >> (64 - rest)
    };
    let mag = (1u64 << rest) | io.raw(mag & low_mask, rest);
    if neg {
        (mag as i64).wrapping_neg()
    } else {
        mag as i64
    }
}

/// What the decoder rebuilds: the values themselves, restored as they are decoded (no
/// integer, fix or mask planes: 4-8 bytes per value instead of ~25). The encoder passes an
/// empty one and never fills it (`Io::DECODES`).
///
/// Rejected: writing the values by index into a pre-sized (zeroed) vector instead of `push`
/// (which stores the length through the pointer each time): decoding TREFHT and TS took 3%
/// more CPU (median of 11), bytes unchanged.
struct Planes<T> {
    values: Vec<T>,
    /// A decoded palette index was out of range (corrupt input).
    bad_index: bool,
}

/// The modelling loop shared by encoder and decoder. With `src = Some(..)` it encodes those
/// integers; with `None` it decodes into `out`.
fn run<T: Float, IO: Io>(
    io: &mut IO,
    hdr: &Header,
    dims: BlockDims,
    src: Option<Src<T>>,
    out: &mut Planes<T>,
) {
    if hdr.has_exceptions {
        run_as::<T, IO, true, f64>(io, hdr, dims, src, out);
    } else if narrow_ring_is_exact::<T>(hdr) {
        run_as::<T, IO, false, f32>(io, hdr, dims, src, out);
    } else {
        run_as::<T, IO, false, f64>(io, hdr, dims, src, out);
    }
}

/// What the encoder's [`run`] codes: a candidate's integers, masks and palette, and the block's
/// values (an exception's bits are its value's).
///
/// The exceptions' bits were a list per candidate (8 bytes an exception, gathered by
/// `integerize_planes`, then handed out by an iterator and sliced for run groups). Read from the
/// values instead: heap peak of `compress -T 1` (massif) PrecipRate 29.3 -> 21.4 MB, RATE-rmi
/// 13.5 -> 10.3, fice 11.4 -> 9.0, HGT-isabel 8.4 -> 6.9, THETA-levitus 11.7 -> 10.6; compress
/// CPU (median of 7) PrecipRate -8%, RATE-rmi -8%, RATE-opera -4%; outputs byte-identical.
#[derive(Clone, Copy)]
struct Src<'s, 'a, T> {
    integ: &'s Source<'a>,
    palette: Option<PaletteKeys<'a>>,
    values: &'s [T],
    /// Whether the palette is coded (an estimate on sampled rows counts it apart, once:
    /// [`estimate`]).
    code_palette: bool,
}

/// A value of the prediction ring: `f64`, or `f32` where every value the ring receives is an
/// `f32` widened ([`narrow_ring_is_exact`]), which the reads widen back exactly.
trait RingVal: Copy + Send + Sync + 'static {
    const ZERO: Self;
    fn widen(self) -> f64;
    fn narrow(x: f64) -> Self;
}

impl RingVal for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(x: f64) -> Self {
        x
    }
}

impl RingVal for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn widen(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn narrow(x: f64) -> Self {
        x as f32
    }
}

/// Whether the encoder and the decoder may keep their prediction ring in `f32`: without exceptions (whose ring
/// value is a clamped `f64` prediction), every ring value is a domain value, and for `f32`
/// data those are `f32` values (ordered bits: the value itself; a palette: an entry) or grid
/// indices, exact in `f32` when the block's range `lo..=hi` is within `2^24`. The predictions
/// are then the same as from an `f64` ring, bit for bit (all 40 shared fields decode
/// bit-exactly). Measured (peak RSS of `melloc decompress`): u-eraint (lag 3: a ring of 4
/// slices) 12.0 -> 10.4 MB, z-eraint 12.5 -> 11.0 MB; decoding CPU unchanged. In the encoder
/// too (its ring is the same values): u-eraint's ring 3.7 -> 1.9 MB, compress peak RSS 17.2 ->
/// 15.9 MB, z-eraint 17.5 -> 16.5; compress CPU unchanged; outputs byte-identical. (TREFHT's
/// peak RSS grew 18.7 -> 19.7 MB although its live heap shrank: where glibc places the
/// buffers moves the peak of a small process by about 1 MB either way.)
fn narrow_ring_is_exact<T: Float>(hdr: &Header) -> bool {
    const EXACT: f64 = (1u64 << 24) as f64;
    T::N_BITS == 32
        && !hdr.has_exceptions
        && hdr.slice_grids.is_empty()
        && match hdr.kind {
            Integerisation::Ordered => true,
            Integerisation::Grid { .. } => {
                hdr.n_palette == 0 && hdr.lo >= -EXACT && hdr.hi <= EXACT
            }
        }
}

/// [`run`] for blocks with (`EXC`) or without exceptions: without, the loop has none of the
/// mask's loads, contexts and branches.
fn run_as<T: Float, IO: Io, const EXC: bool, R: RingVal>(
    io: &mut IO,
    hdr: &Header,
    dims: BlockDims,
    src_all: Option<Src<T>>,
    out: &mut Planes<T>,
) {
    // The decoder has no source: `None` as a constant of its instance, so that the compiler
    // drops every encoder-only branch from the decoding loop (a source that could be present
    // at run time cost decoding TREFHT 507M -> 533M instructions, RATE-opera 520M -> 561M).
    let src_all = if IO::DECODES { None } else { src_all };
    let src = src_all.map(|x| x.integ);
    let src_palette = src_all.and_then(|x| x.palette);
    let src_values: &[T] = src_all.map_or(&[], |x| x.values);
    let (n_slices, n_rows, n_cols) = (dims.n_slices, dims.n_rows, dims.n_cols);
    let slice = n_rows * n_cols;
    let st = Stencil::new(hdr.stencil, n_rows, n_cols, hdr.lag);
    let has_prev = st.taps.len() > st.n_in;
    // Planes are rings of whole slices, not the whole block: taps reach at most `lag` slices
    // back (copy mode and previous-slice taps; the border fallback one slice back), so the
    // prediction plane holds `lag + 1` slices, the mask plane 2 and the context bytes 1.
    // Slice `s` lives at `slot(s)`; a point's ring index is `q = slot(s) + p` (`p` its offset
    // in the slice) and a tap's is `q - back` with `back` recomputed per slice (wrapping: a
    // tap in an older slice may sit later in the ring). Measured: decoding TREFHT (one 3.6 MB
    // chunk) peaked at 6.8x the input, most of it this plane at 8 bytes a value.
    let ring = n_slices.min(hdr.lag.max(1) + 1).max(1);
    let slot = |s: usize| (s % ring) * slice;
    let ring_off = |a: usize, b: usize| slot(a).wrapping_sub(slot(b));
    let mut vals = vec![R::ZERO; ring * slice];
    let mut bl = vec![0u8; slice];
    let mask_ring = n_slices.clamp(1, 2);
    let mut mask = if hdr.has_exceptions {
        vec![false; mask_ring * slice]
    } else {
        Vec::new()
    };
    let mut m = Models::new(hdr.has_exceptions, hdr.has_fixes);
    // The palette (sorted ordered ints, delta coded) precedes the values in the range coder.
    // Its values (the domain) and, when decoding, its bit patterns (the output); the encoder
    // keeps no bit patterns (8 bytes an entry: THETA-levitus' candidate palette has 198K).
    let mut palette_bits: Vec<u64> =
        Vec::with_capacity(if IO::DECODES { hdr.n_palette } else { 0 });
    let mut palette_values: Vec<f64> = Vec::with_capacity(hdr.n_palette);
    let code_palette = src_all.is_none_or(|x| x.code_palette);
    if hdr.n_palette > 0 && !code_palette {
        palette_values.extend(
            src_palette
                .iter()
                .flat_map(|k| k.iter())
                .map(|o| T::from_ordered(o).to_f64()),
        );
    } else if hdr.n_palette > 0 {
        let mut pm = Models::new(false, false);
        let mut prev = 0u64;
        let mut ctx = 0usize;
        for p in 0..hdr.n_palette {
            let want = src_palette
                .and_then(|keys| keys.get(p))
                .map_or(0, |o| o.wrapping_sub(prev) as i64);
            let (d, b) = code_signed(io, &mut pm.res, ctx, 0, want);
            prev = prev.wrapping_add(d as u64);
            let v = T::from_ordered(prev);
            palette_values.push(v.to_f64());
            if IO::DECODES {
                palette_bits.push(v.to_bits_u64());
            }
            // Context = twice the previous delta's bit length (what the value loop uses).
            ctx = 2 * usize::from(b & 127);
        }
    }
    let domain = if !hdr.slice_grids.is_empty() {
        Domain::Slices(hdr.slice_grids.clone())
    } else if hdr.n_palette > 0 {
        Domain::Palette(PaletteIndex::new(palette_values))
    } else {
        Domain::Int(hdr.kind)
    };
    let mut last_exc = 0usize;
    // Run groups (version 5, `hdr.runs`): which groups of this row and the row above were runs.
    let n_groups = n_cols / RUN_GROUP + 1;
    let (mut run_row, mut run_above) = if hdr.runs {
        (vec![false; n_groups], vec![false; n_groups])
    } else {
        (Vec::new(), Vec::new())
    };
    let dict_escape = hdr.dict.len();
    let n_exc_bits = T::N_BITS;
    let (lo, hi) = (hdr.lo, hdr.hi);

    // Interior fast path: tap offsets and weights in fixed arrays, no range checks per tap.
    // It computes exactly what `Stencil::predict_at` computes (`predict::combine`, same terms
    // in the same order).
    // Tap geometry for border points: row and column offsets, first slice with the tap.
    let (mut tap_di, mut tap_dj, mut tap_s) =
        ([0isize; MAX_TAPS], [0isize; MAX_TAPS], [0; MAX_TAPS]);
    for (k, tp) in st.taps.iter().enumerate().take(MAX_TAPS) {
        tap_di[k] = isize::from(tp.di);
        tap_dj[k] = isize::from(tp.dj);
        tap_s[k] = usize::from(tp.ds) * st.lag;
    }
    // Border points: bit `k` is set where tap `k`'s column is in the row (`col_ok[j]`) and its
    // row and slice are in the block (`row_ok`, per row).
    let col_ok: Vec<u32> = (0..n_cols)
        .map(|j| {
            (0..st.taps.len().min(MAX_TAPS)).fold(0u32, |m, k| {
                let jj = j as isize + tap_dj[k];
                m | u32::from(jj >= 0 && jj < n_cols as isize) << k
            })
        })
        .collect();
    // The encoder knows the ring values up front: a valid point's is the domain value of its
    // integer (a run group's points repeat W's integer, copy mode stores the domain value too);
    // an exception's is its clamped prediction, computed point by point in each row first (a
    // chain along the row). It fills a slice's ring values, then per row decides the run
    // groups, sets the exceptions' values, and maps the other points' predictions and
    // residuals in bulk (the interior ones vectorised, [`interior_row`]); the point loop then
    // only codes. Same values, same order: the bytes are unchanged (the 40 shared fields,
    // routes auto and paper).
    //
    // Measured (CPU of `compress -T 1`, median of 7, against the point-by-point loop; the
    // predictions no longer wait for the value just coded): TREFHT 60.2 -> 50.3 ms, TS 55.9 ->
    // 46.6, z-eraint 68.3 -> 59.2, U-dc 34.3 -> 30.7; callgrind, TREFHT 838M -> 748M
    // instructions. With exceptions: V-foam 48.3 -> 43.6, HGT-isabel 24.5 -> 23.1,
    // THETA-levitus unchanged, PrecipRate and RATE-opera +1% (rows of exceptions and runs
    // with short stretches of valid points: 1934M -> 2024M instructions). Rejected: the bulk
    // path only for rows with at least a quarter of valid points (PrecipRate 2052M, V-foam
    // 551M -> 558M).
    // Only the encoder has a source (`src_all` is `None` in the decoder's instance).
    let is_fast = src.is_some();
    let row_buf = if is_fast { n_cols } else { 0 };
    let (mut pred_row, mut pi_row, mut r_row) = (
        vec![0.0f64; row_buf],
        vec![0i64; row_buf],
        vec![0i64; row_buf],
    );
    let mut run_want = vec![false; if is_fast && hdr.runs { n_groups } else { 0 }];
    for s in 0..n_slices {
        let kind = domain.at_slice(s);
        let full = s >= hdr.lag && has_prev;
        // Ring offsets of this slice: taps (`back`, what `Stencil::back` is on the flat block),
        // the slice `lag` back (copy mode) and the previous slice (border fallback).
        let lag_off = if s >= st.lag {
            ring_off(s, s - st.lag)
        } else {
            0
        };
        let copy_off = if s >= hdr.lag {
            ring_off(s, s - hdr.lag)
        } else {
            0
        };
        let prev_off = if s > 0 { ring_off(s, s - 1) } else { 0 };
        let mut back = [0usize; MAX_TAPS];
        for (k, tp) in st.taps.iter().enumerate().take(MAX_TAPS) {
            let in_slice = (-(isize::from(tp.di) * n_cols as isize) - isize::from(tp.dj)) as usize;
            back[k] = if tp.ds == 0 {
                in_slice
            } else {
                lag_off.wrapping_add(in_slice)
            };
        }
        let (q0, mq0) = (slot(s), (s % mask_ring) * slice);
        let mprev = if s > 0 {
            ((s - 1) % mask_ring) * slice
        } else {
            0
        };
        // Copy mode: the slice is predicted by the same point `lag` slices back, exactly.
        // Climatologies repeat: THETA-levitus levels 7..14 are the same every month (lag 15),
        // which no fitted mix of taps predicts exactly.
        let copy = full && {
            let want = src.is_some_and(|src| {
                let prev = domain.at_slice(s - hdr.lag);
                // With one domain for every slice, equal integers are equal domain values
                // (valid points are finite, and ordered bits, grid indices and palette
                // indices map to distinct values), so the integers are compared directly.
                let counts = if matches!(domain, Domain::Slices(_)) {
                    repeat_counts(src, s, slice, hdr.lag, n_cols, |k, i| {
                        let d = if k { kind } else { prev };
                        let int = src.ints.get(src_values, &src.is_exception, i);
                        d.domain_value::<T>(int).to_bits()
                    })
                } else {
                    // One loop per integer plane, not a dispatch per point.
                    match &src.ints {
                        Ints::Narrow(v) => repeat_counts(src, s, slice, hdr.lag, n_cols, |_, i| {
                            i64::from(v[i]) as u64
                        }),
                        Ints::Wide(v) => {
                            repeat_counts(src, s, slice, hdr.lag, n_cols, |_, i| v[i] as u64)
                        }
                        // Compared where both points are valid: equal integers are equal bits.
                        Ints::Ordered => repeat_counts(src, s, slice, hdr.lag, n_cols, |_, i| {
                            src_values.get(i).map_or(0, |v| v.to_bits_u64())
                        }),
                    }
                };
                // Also require far more repeats than along the row: on smooth, coarsely
                // quantised fields (THETA-dc) the fitted predictor already hits most repeats
                // and is better elsewhere (measured: copying on ">= half repeat" alone cost
                // THETA-dc 82.1 -> 67.8).
                counts.is_some_and(|(same, same_w, total)| {
                    total > 0 && same * 2 >= total && same >= same_w + total / 4
                })
            });
            io.bit(&mut m.copy, want)
        };
        let w: &[f64] = if full { &hdr.w_full } else { &hdr.w_in };
        let n_taps = (w.len() + 1).min(st.taps.len()).min(MAX_TAPS);
        let mut wk = [0.0f64; MAX_TAPS];
        for (d, &x) in wk[1..].iter_mut().zip(w) {
            *d = x;
        }
        let c0 = ref_weight(w);
        // The taps' signed ring offsets: the interior reads of a row stay in `vals` when its
        // first point is at least the largest offset and its last below `len + ` the smallest.
        let signed = |b: usize| b as isize;
        let max_back = back[..n_taps].iter().map(|&b| signed(b)).max().unwrap_or(0);
        let min_back = back[..n_taps].iter().map(|&b| signed(b)).min().unwrap_or(0);
        let (c_lo, c_hi) = (st.left.max(1), n_cols.saturating_sub(st.right.max(1)));
        if let Some(src) = src {
            if let Some(dst) = vals.get_mut(q0..q0 + slice) {
                fill_domain::<T, R>(dst, src, src_values, s * slice, kind);
            }
        }
        for i in 0..n_rows {
            // This check is what makes the unchecked reads in `interior` sound; the stencil
            // geometry already implies it, but it is checked here, per row.
            let row_start = q0 + i * n_cols;
            let in_ring = c_lo < c_hi
                && (row_start + c_lo) as isize >= max_back
                && ((row_start + c_hi - 1) as isize) - min_back < vals.len() as isize;
            let row_fast =
                n_taps >= 2 && i >= st.up.max(1) && (!full || i + st.down < n_rows) && in_ring;
            // Border points: which taps are present in this row (slice and row in range);
            // each point then checks only its columns.
            let mut row_ok = 0u32;
            for k in 0..n_taps {
                let ii = i as isize + tap_di[k];
                row_ok |= u32::from(tap_s[k] <= s && ii >= 0 && ii < n_rows as isize) << k;
            }
            let (j0, j1) = if row_fast { (c_lo, c_hi) } else { (0, 0) };
            // The prediction of point `j` (ring index `q`): a macro, not a closure, so the
            // decoder's loop compiles as before (a closure here cost decoding TREFHT 503M ->
            // 533M instructions).
            macro_rules! predict {
                ($vals:ident, $j:ident, $q:ident) => {
                    if copy {
                        $vals[$q.wrapping_sub(copy_off)].widen()
                    } else if $j >= j0 && $j < j1 {
                        // The full 3-D set unrolled (about 100 instructions a value fewer).
                        if n_taps == N_TAPS_3D {
                            interior::<R, N_TAPS_3D>(&$vals, $q, &back, &wk, c0)
                        } else if n_taps == N_TAPS_2D {
                            interior::<R, N_TAPS_2D>(&$vals, $q, &back, &wk, c0)
                        } else {
                            let x = |k: usize| $vals[$q.wrapping_sub(back[k])].widen();
                            let r = x(1);
                            let mut acc = 0.0f64;
                            for (k, &w) in wk.iter().enumerate().take(n_taps).skip(2) {
                                acc += w * (x(k) - r);
                            }
                            r + (acc + c0 * (x(0) - r))
                        }
                    } else {
                        let get = |b: usize| {
                            $vals
                                .get($q.wrapping_sub(b))
                                .copied()
                                .map_or(0.0, RingVal::widen)
                        };
                        let base = if $j > 0 {
                            get(1)
                        } else if i > 0 {
                            get(n_cols)
                        } else if s > 0 {
                            get(prev_off)
                        } else {
                            0.0
                        };
                        let ok = row_ok & col_ok.get($j).copied().unwrap_or(0);
                        match n_taps {
                            N_TAPS_3D => {
                                border::<R, N_TAPS_3D>(&$vals, $q, base, ok, &back, &wk, c0)
                            }
                            N_TAPS_2D => {
                                border::<R, N_TAPS_2D>(&$vals, $q, base, ok, &back, &wk, c0)
                            }
                            _ => border_any(&$vals, $q, base, ok, &back, &wk, c0, n_taps),
                        }
                    }
                };
            }
            if let Some(src) = src {
                let row_q = q0 + i * n_cols;
                let start = s * slice + i * n_cols;
                // The row's run groups first (the encoder codes the decision it wants): their
                // points are neither predicted nor coded. Radar fields are mostly runs.
                let row_exc = src.is_exception.get(start..start + n_cols).unwrap_or(&[]);
                for (g, want) in run_want.iter_mut().enumerate() {
                    let j = g * RUN_GROUP;
                    *want = g > 0
                        && j < n_cols
                        && repeats_w(src, src_values, start + j, RUN_GROUP.min(n_cols - j));
                }
                let is_run = |j: usize| run_want.get(j / RUN_GROUP).copied().unwrap_or(false);
                // With exceptions: their ring values (their clamped predictions, a chain
                // along the row) and the runs' (W's), point by point in order; the other
                // points then have every value they read.
                if EXC {
                    let mut j = 0;
                    while j < n_cols {
                        let q = row_q + j;
                        if is_run(j) {
                            let end = (j + RUN_GROUP).min(n_cols);
                            if let Some(&w) = vals.get(q.wrapping_sub(1)) {
                                if let Some(g) = vals.get_mut(q..q + (end - j)) {
                                    g.fill(w);
                                }
                            }
                            j = end;
                            continue;
                        }
                        if row_exc.get(j).copied().unwrap_or(false) {
                            let pred = predict!(vals, j, q);
                            vals[q] = R::narrow(if pred >= lo {
                                if pred <= hi {
                                    pred
                                } else {
                                    hi
                                }
                            } else {
                                lo
                            });
                        }
                        j += 1;
                    }
                }
                // Segments `a..b` of points between the runs.
                let mut a = 0;
                while a < n_cols {
                    let mut b = a;
                    loop {
                        b = (b / RUN_GROUP + 1) * RUN_GROUP;
                        if b >= n_cols || is_run(b) {
                            break;
                        }
                    }
                    let b = b.min(n_cols);
                    // Valid points `u..v` of the segment (exceptions are not predicted here).
                    let is_exc = |j: usize| EXC && row_exc.get(j).copied().unwrap_or(false);
                    let mut u = a;
                    while u < b {
                        if is_exc(u) {
                            u += 1;
                            continue;
                        }
                        let mut v = u + 1;
                        while v < b && !is_exc(v) {
                            v += 1;
                        }
                        // A short run of valid points (radar fields) is predicted point by
                        // point.
                        let (lo, hi) = (u.max(j0), v.min(j1));
                        let bulk = !copy
                            && lo + ROW_LANES <= hi
                            && pred_row.get_mut(lo..hi).is_some_and(|out| {
                                interior_row(&vals, row_q + lo, &back, &wk, c0, n_taps, out)
                            });
                        for (pr, j) in pred_row
                            .get_mut(u..v)
                            .unwrap_or(&mut [])
                            .iter_mut()
                            .zip(u..)
                        {
                            if !(bulk && j >= lo && j < hi) {
                                let q = row_q + j;
                                *pr = predict!(vals, j, q);
                            }
                        }
                        if let (Some(pred), Some(pi), Some(r)) = (
                            pred_row.get(u..v),
                            pi_row.get_mut(u..v),
                            r_row.get_mut(u..v),
                        ) {
                            residual_row::<T>(kind, src, src_values, start + u, pred, pi, r);
                        }
                        u = v;
                    }
                    a = b;
                    while a < n_cols && is_run(a) {
                        a += RUN_GROUP;
                    }
                }
            }
            std::mem::swap(&mut run_row, &mut run_above);
            run_row.fill(false);
            let mut run_end = 0usize;
            for j in 0..n_cols {
                if j < run_end {
                    continue;
                }
                // Flat index (the encoder's source planes), offset in the slice, ring indices.
                let p = i * n_cols + j;
                let idx = s * slice + p;
                let q = q0 + p;
                let mq = mq0 + p;
                // A run group: every point repeats W (its value, mask and domain value) and
                // has context byte 0. Radar fields are 60-95% long runs of zero or fill.
                if hdr.runs && j > 0 && j.is_multiple_of(RUN_GROUP) {
                    let g = j / RUN_GROUP;
                    let end = (j + RUN_GROUP).min(n_cols);
                    let len = end - j;
                    let want = run_want.get(g).copied().unwrap_or(false);
                    let above = i > 0 && run_above.get(g).copied().unwrap_or(false);
                    let rctx = usize::from(run_row[g - 1]) | usize::from(above) << 1;
                    let hit = io.bit(&mut m.run[rctx], want);
                    run_row[g] = hit;
                    if hit {
                        run_end = end;
                        if EXC {
                            let w = mask[mq - 1];
                            mask[mq..mq + len].fill(w);
                        }
                        let w = vals[q - 1];
                        vals[q..q + len].fill(w);
                        bl[p..p + len].fill(0);
                        if IO::DECODES {
                            let w = out.values.last().copied();
                            let w = w.unwrap_or_else(|| T::from_bits_u64(0));
                            out.values.extend(std::iter::repeat_n(w, len));
                        }
                        continue;
                    }
                }
                let pred = if is_fast { 0.0 } else { predict!(vals, j, q) };
                // Neighbour context bytes (W, N, NW, NE); out-of-range -> the nearest present.
                let (bw, bn, bnw, bne) = neighbour_bytes(&bl, p, i, j, n_cols);
                let ctx = length_context(bw, bn, bnw, bne);
                // 0 for a zero residual, 1 positive, 2 negative; branch-free (neighbour signs
                // are close to random, a branch on them mispredicts).
                let sgn = |b: u8| -> usize { usize::from(b != 0) + usize::from(b >> 7) };
                let sctx = sgn(bw) * 3 + sgn(bn);

                if EXC {
                    let mw = j > 0 && mask[mq - 1];
                    let mn = i > 0 && mask[mq - n_cols];
                    let mnw = i > 0 && j > 0 && mask[mq - n_cols - 1];
                    let mne = i > 0 && j + 1 < n_cols && mask[mq - n_cols + 1];
                    let mp = s > 0 && mask[mprev + p];
                    let mctx = usize::from(mw)
                        | usize::from(mn) << 1
                        | usize::from(mnw) << 2
                        | usize::from(mne) << 3
                        | usize::from(mp) << 4;
                    let is_exc = src.is_some_and(|s| s.is_exception[idx]);
                    let is_exc = io.bit(&mut m.mask[mctx], is_exc);
                    mask[mq] = is_exc;
                    if is_exc {
                        let bits = src_values.get(idx).map_or(0, |v| v.to_bits_u64());
                        let want = hdr
                            .dict
                            .iter()
                            .position(|&d| d == bits)
                            .unwrap_or(dict_escape);
                        // Version 4: "the same as the last exception" first. Radar fields
                        // are mostly one fill value (or zero): one decision instead of eight.
                        let repeat = hdr.version >= 4 && {
                            let rctx = usize::from(mw) | usize::from(mn) << 1;
                            io.bit(&mut m.exc_repeat[rctx], want == last_exc)
                        };
                        let got = if repeat {
                            last_exc
                        } else {
                            let ectx = (last_exc.min(15) << 1) | usize::from(mw);
                            io.tree(&mut m.exc[ectx * 256..ectx * 256 + 256], 8, want as u32)
                                as usize
                        };
                        let bits = match hdr.dict.get(got) {
                            Some(&b) => b,
                            None => io.raw(bits, n_exc_bits),
                        };
                        last_exc = got;
                        if IO::DECODES {
                            out.values.push(T::from_bits_u64(bits));
                        }
                        // (`R` is `f64` whenever there are exceptions.)
                        if !is_fast {
                            vals[q] = R::narrow(if pred >= lo {
                                if pred <= hi {
                                    pred
                                } else {
                                    hi
                                }
                            } else {
                                lo
                            });
                        }
                        bl[p] = bw;
                        continue;
                    }
                }
                // The decoder codes no residual of its own (its `Io` decodes one).
                let (pi, r) = if is_fast {
                    (pi_row[j], r_row[j])
                } else {
                    (kind.int_of_prediction::<T>(pred), 0)
                };
                // Version 5: no adaptive mantissa bits; version 6: tree-coded lengths.
                let (r, b) = if hdr.version >= 6 {
                    code_signed_as::<_, 0, true>(io, &mut m.res, ctx, sctx, r)
                } else if hdr.version >= 5 {
                    code_signed_as::<_, 0, false>(io, &mut m.res, ctx, sctx, r)
                } else {
                    code_signed(io, &mut m.res, ctx, sctx, r)
                };
                let k = pi.wrapping_add(r);
                if !is_fast {
                    vals[q] = R::narrow(kind.domain_value::<T>(k));
                }
                bl[p] = b;
                let fix = if hdr.has_fixes {
                    let f = src.map_or(0, |s| s.fixes.get(src_values, &s.is_exception, idx));
                    code_fix(io, &mut m, k, f)
                } else {
                    0
                };
                if IO::DECODES {
                    // What `integer::restore` computes, value by value.
                    let v = match kind {
                        SliceDomain::Int(g) | SliceDomain::Physical(g) => g.value_of::<T>(k, fix),
                        SliceDomain::Palette(_) => {
                            match usize::try_from(k).ok().and_then(|i| palette_bits.get(i)) {
                                Some(&b) => T::from_bits_u64(b),
                                None => {
                                    out.bad_index = true;
                                    T::from_bits_u64(0)
                                }
                            }
                        }
                    };
                    out.values.push(v);
                }
            }
        }
    }
}

/// For copy mode: over the valid points of slice `s` whose point `lag` slices back is valid,
/// how many equal that point, how many equal their valid W neighbour, and how many there are.
/// `key(in_s, i)` is the comparable form of point `i`'s value (`in_s`: it is in slice `s`).
///
/// `None` as soon as fewer than half of the points can repeat (copy mode's first condition):
/// even if every point left repeated, `2 * same + left < total` stays so. Smooth slices stop
/// about half way (compressing TREFHT: 782M -> 768M instructions); the decision is the same.
#[inline]
fn repeat_counts(
    src: &Source,
    s: usize,
    slice: usize,
    lag: usize,
    n_cols: usize,
    key: impl Fn(bool, usize) -> u64,
) -> Option<(usize, usize, usize)> {
    let (mut same, mut same_w, mut total) = (0usize, 0usize, 0usize);
    let end = (s + 1) * slice;
    // Row by row: no division per point for the column (TREFHT: 25M -> 14M instructions).
    for row in (s * slice..end).step_by(n_cols.max(1)) {
        for idx in row..row + n_cols {
            let b = idx - lag * slice;
            if !src.is_exception[idx] && !src.is_exception[b] {
                total += 1;
                let x = key(true, idx);
                same += usize::from(x == key(false, b));
                if idx > row && !src.is_exception[idx - 1] {
                    same_w += usize::from(x == key(true, idx - 1));
                }
            }
        }
        if 2 * same + (end - row - n_cols) < total {
            return None;
        }
    }
    Some((same, same_w, total))
}

/// The domain values of integers `start..start + dst.len()` into `dst` (the encoder's ring
/// values of a slice without exceptions). Leaves `dst` as it is if the range is not in `ints`.
fn fill_domain<T: Float, R: RingVal>(
    dst: &mut [R],
    src: &Source,
    values: &[T],
    start: usize,
    kind: SliceDomain,
) {
    let end = start.saturating_add(dst.len());
    let set = |d: &mut R, k: i64| *d = R::narrow(kind.domain_value::<T>(k));
    match &src.ints {
        Ints::Ordered => {
            let (Some(v), Some(e)) = (values.get(start..end), src.is_exception.get(start..end))
            else {
                return;
            };
            for ((d, &v), &e) in dst.iter_mut().zip(v).zip(e) {
                set(d, ordered_int(v, e));
            }
        }
        Ints::Narrow(v) => {
            for (d, &k) in dst.iter_mut().zip(v.get(start..end).unwrap_or(&[])) {
                set(d, i64::from(k));
            }
        }
        Ints::Wide(v) => {
            for (d, &k) in dst.iter_mut().zip(v.get(start..end).unwrap_or(&[])) {
                set(d, k);
            }
        }
    }
}

/// The encoder's integer predictions `pi` and residuals `r` of one row from its predictions
/// `pred` and its integers `start..start + pred.len()` (left as they are if that range is not
/// in `ints`).
fn residual_row<T: Float>(
    kind: SliceDomain,
    src: &Source,
    values: &[T],
    start: usize,
    pred: &[f64],
    pi: &mut [i64],
    r: &mut [i64],
) {
    /// `pi[t]` and `r[t]` for `t < n` from the integer `int(t)` of each point.
    #[inline(always)]
    fn go(
        n: usize,
        int: impl Fn(usize) -> i64,
        pred: &[f64],
        pi: &mut [i64],
        r: &mut [i64],
        map: impl Fn(f64) -> i64,
    ) {
        let n = n.min(pred.len()).min(pi.len()).min(r.len());
        let (pred, pi, r) = (&pred[..n], &mut pi[..n], &mut r[..n]);
        for t in 0..n {
            pi[t] = map(pred[t]);
            r[t] = int(t).wrapping_sub(pi[t]);
        }
    }
    /// [`go`] with one loop per integerisation, not a dispatch per point.
    #[inline(always)]
    fn on<T: Float>(
        kind: SliceDomain,
        n: usize,
        int: impl Fn(usize) -> i64,
        pred: &[f64],
        pi: &mut [i64],
        r: &mut [i64],
    ) {
        match kind {
            SliceDomain::Int(Integerisation::Ordered) => go(n, int, pred, pi, r, |p| {
                Integerisation::Ordered.int_of_prediction::<T>(p)
            }),
            SliceDomain::Int(g) => go(n, int, pred, pi, r, |p| g.int_of_prediction::<T>(p)),
            _ => go(n, int, pred, pi, r, |p| kind.int_of_prediction::<T>(p)),
        }
    }
    let end = start.saturating_add(pred.len());
    match &src.ints {
        Ints::Narrow(v) => {
            let v = v.get(start..end).unwrap_or(&[]);
            on::<T>(kind, v.len(), |t| i64::from(v[t]), pred, pi, r);
        }
        Ints::Wide(v) => {
            let v = v.get(start..end).unwrap_or(&[]);
            on::<T>(kind, v.len(), |t| v[t], pred, pi, r);
        }
        Ints::Ordered => {
            let v = values.get(start..end).unwrap_or(&[]);
            let e = src.is_exception.get(start..end).unwrap_or(&[]);
            let n = v.len().min(e.len());
            on::<T>(kind, n, |t| ordered_int(v[t], e[t]), pred, pi, r);
        }
    }
}

/// The interior predictions of the `out.len()` points from ring index `start` on: what
/// [`interior`] computes for each (same terms in the same order, so the same bits), but for
/// [`ROW_LANES`] points at once, which vectorises (two points per SSE2 instruction). `false`
/// if a tap's run of values is not in `vals` (then `out` is not usable).
///
/// Measured (callgrind, encoding TREFHT): tap by tap over the whole row (the sums in `out`,
/// one pass per tap) 70M instructions; 8 points at a time with the sums in registers, 53M (the
/// per-point `interior` in the coding loop: ~140M with its index arithmetic and checks).
fn interior_row<R: RingVal>(
    vals: &[R],
    start: usize,
    back: &[usize; MAX_TAPS],
    wk: &[f64; MAX_TAPS],
    c0: f64,
    n_taps: usize,
    out: &mut [f64],
) -> bool {
    let len = out.len();
    let n = n_taps.min(MAX_TAPS);
    let mut taps: [&[R]; MAX_TAPS] = [&[]; MAX_TAPS];
    for (k, t) in taps.iter_mut().enumerate().take(n) {
        let a = start.wrapping_sub(back[k]);
        match a.checked_add(len).and_then(|e| vals.get(a..e)) {
            Some(x) => *t = x,
            None => return false,
        }
    }
    let mut o = 0;
    while o + ROW_LANES <= len {
        if !interior_lanes::<R, ROW_LANES>(&taps, n, wk, c0, o, out) {
            return false;
        }
        o += ROW_LANES;
    }
    while o < len {
        if !interior_lanes::<R, 1>(&taps, n, wk, c0, o, out) {
            return false;
        }
        o += 1;
    }
    true
}

/// Points per step of [`interior_row`].
const ROW_LANES: usize = 8;

/// [`interior_row`] for points `o..o + L` of the row (`taps[k]`: tap `k`'s values along the
/// row).
#[inline(always)]
fn interior_lanes<R: RingVal, const L: usize>(
    taps: &[&[R]; MAX_TAPS],
    n: usize,
    wk: &[f64; MAX_TAPS],
    c0: f64,
    o: usize,
    out: &mut [f64],
) -> bool {
    let (Some(x0), Some(x1), Some(out)) = (
        taps[0].get(o..o + L),
        taps[1].get(o..o + L),
        out.get_mut(o..o + L),
    ) else {
        return false;
    };
    let r: [f64; L] = std::array::from_fn(|l| x1[l].widen());
    let mut acc = [0.0f64; L];
    // (An index loop: `zip().take().skip()` here compiled to a call per tap.)
    for k in 2..n.min(MAX_TAPS) {
        let (w, Some(xs)) = (wk[k], taps[k].get(o..o + L)) else {
            return false;
        };
        for l in 0..L {
            acc[l] += w * (xs[l].widen() - r[l]);
        }
    }
    for l in 0..L {
        out[l] = r[l] + (acc[l] + c0 * (x0[l].widen() - r[l]));
    }
    true
}

/// The prediction at a border point: what `Stencil::predict_at` computes (taps out of the
/// block replaced by the fallback reference `base`: W, else N, else the previous slice's value,
/// else 0; then [`melloc_core::predict::combine`]). Bit `k` of `ok` says tap `k` is in the
/// block. With `N` taps, unrolled: a border point cost ~770 instructions with per-tap range
/// checks (8.7% of decoding TREFHT, whose 64 x 128 slices are 6% border).
#[inline(always)]
fn border<R: RingVal, const N: usize>(
    vals: &[R],
    idx: usize,
    base: f64,
    ok: u32,
    back: &[usize; MAX_TAPS],
    wk: &[f64; MAX_TAPS],
    c0: f64,
) -> f64 {
    let x = |k: usize| border_tap(vals, idx, base, ok, back[k], k);
    let r = x(1);
    let mut acc = 0.0f64;
    for (k, &w) in wk.iter().enumerate().take(N).skip(2) {
        acc += w * (x(k) - r);
    }
    r + (acc + c0 * (x(0) - r))
}

/// [`border`] for any number of taps.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn border_any<R: RingVal>(
    vals: &[R],
    idx: usize,
    base: f64,
    ok: u32,
    back: &[usize; MAX_TAPS],
    wk: &[f64; MAX_TAPS],
    c0: f64,
    n_taps: usize,
) -> f64 {
    let n = n_taps.min(MAX_TAPS);
    let mut x = [0.0f64; MAX_TAPS];
    for (k, xk) in x.iter_mut().enumerate().take(n) {
        *xk = border_tap(vals, idx, base, ok, back[k], k);
    }
    combine(&x[..n], &wk[1..n.max(1)], c0)
}

/// Tap `k` of a border point: its value if bit `k` of `ok` says it is in the block, else
/// `base`.
#[inline(always)]
fn border_tap<R: RingVal>(
    vals: &[R],
    idx: usize,
    base: f64,
    ok: u32,
    back: usize,
    k: usize,
) -> f64 {
    let v = vals
        .get(idx.wrapping_sub(back))
        .copied()
        .map_or(base, RingVal::widen);
    if (ok >> k) & 1 != 0 {
        v
    } else {
        base
    }
}

/// Taps of [`StencilKind::PlanePrev`].
const N_TAPS_3D: usize = 19;
/// In-slice taps of the 2-D and 3-D stencils ([`melloc_core::predict::TAPS_2D`]).
const N_TAPS_2D: usize = melloc_core::predict::TAPS_2D.len();

/// The interior prediction with `N` taps, unrolled: what [`melloc_core::predict::combine`]
/// computes (same terms, same order).
///
/// Rejected (it would also need a new header version): four partial sums instead of one
/// running sum, to shorten the chain of additions: decoding TREFHT took 2.5% more CPU. The
/// decoder is not bound by that chain (the sum does not depend on the value just decoded).
#[inline(always)]
#[allow(unsafe_code)]
fn interior<R: RingVal, const N: usize>(
    vals: &[R],
    idx: usize,
    back: &[usize; MAX_TAPS],
    wk: &[f64; MAX_TAPS],
    c0: f64,
) -> f64 {
    debug_assert!(back[..N]
        .iter()
        .all(|&b| (0..vals.len() as isize).contains(&(idx as isize - b as isize))));
    // SAFETY: `back[k]` is a signed ring offset stored as `usize` (two's complement), so
    // `idx.wrapping_sub(back[k])` is `idx - back[k]` computed in `isize`. `run` calls this
    // only for points `idx` of a row whose first interior point is `>=` the largest signed
    // offset of its `n_taps >= N` taps and whose last interior point minus the smallest is
    // `< vals.len()` (checked per row, `in_ring`), so every read is in `0..vals.len()`.
    // Measured: decode of TREFHT 837.5M -> 788.9M instructions (the bounds checks of 19 taps).
    let x = |k: usize| unsafe { vals.get_unchecked(idx.wrapping_sub(back[k])).widen() };
    let r = x(1);
    let mut acc = 0.0f64;
    for (k, &w) in wk.iter().enumerate().take(N).skip(2) {
        acc += w * (x(k) - r);
    }
    r + (acc + c0 * (x(0) - r))
}

/// What every fit of a block shares: chosen once per block, not per candidate.
#[derive(Clone, Copy, Debug)]
struct FitPlan {
    /// The slice lag of the previous-slice taps ([`choose_lag`]).
    lag: usize,
    /// Points sampled per least-squares fit.
    samples: usize,
}

/// A candidate's fit: the stencil, its slice lag, the in-slice and full weights (rounded to
/// `f32`) and the range `[lo, hi]` of the valid domain values.
#[derive(Clone, Debug)]
struct Fitted {
    kind: StencilKind,
    lag: usize,
    w_in: Vec<f64>,
    w_full: Vec<f64>,
    lo: f64,
    hi: f64,
}

impl Fitted {
    /// A fit with weights `(w_in, w_full)` and the range `[lo, hi]` of the valid domain values
    /// (stored as `[0, 0]` when there is no valid value: `lo > hi`).
    fn new(
        kind: StencilKind,
        plan: FitPlan,
        (w_in, w_full): (Vec<f64>, Vec<f64>),
        (lo, hi): (f64, f64),
    ) -> Self {
        let (lo, hi) = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
        Self {
            kind,
            lag: plan.lag,
            w_in,
            w_full,
            lo,
            hi,
        }
    }
}

/// Fits shared by the candidates of one block (or of one row sample) whose domain value is
/// the value itself (ordered bits and palettes), by their exception mask: `[base, zeros]`.
///
/// Their fits read the same values at the same points, so they are the same fit: the core
/// candidate's is reused by the palette with the same zero handling, in the row-sampled
/// estimates and in the full encodings. With [`fit_values`] (values read directly, not mapped
/// back from ordered bits or palette indices), measured against fitting every candidate on
/// its integers: `compress -T 1` instructions (callgrind) QCLOUD 369M -> 329M, HGT-isabel 388M
/// -> 345M, W-wrf 595M -> 523M, OMEGA 227M -> 199M, u-eraint 1248M -> 1163M, THETA-levitus
/// 1288M -> 1235M; CPU (median of 7) of 10 such files 343 -> 333 ms; all 80 outputs of the 40
/// files byte-identical. Grid-integerised cores (TREFHT) are unchanged.
#[derive(Default)]
struct FitMemo([Option<Fitted>; 2]);

/// Chooses the stencil and fits its weights on the domain values.
fn fit<T: Float>(
    integ: &Source,
    values: &[T],
    domain: &Domain,
    dims: BlockDims,
    plan: FitPlan,
) -> Fitted {
    let kind = stencil_kind(dims);
    // The range of the valid domain values, in the same order and with the same `min`/`max`
    // as always (the header stores it).
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let slice = dims.slice_len().max(1);
    for s in 0..integ.len().div_ceil(slice) {
        let d = domain.at_slice(s);
        let range = s * slice..((s + 1) * slice).min(integ.len());
        let mask = &integ.is_exception[range.clone()];
        let lh = (&mut lo, &mut hi);
        match (&integ.ints, d) {
            (Ints::Narrow(k), SliceDomain::Int(g @ Integerisation::Grid { .. })) => {
                widen_range(&k[range], mask, lh, |k| g.domain_value::<T>(i64::from(k)));
            }
            (Ints::Narrow(k), SliceDomain::Int(Integerisation::Ordered)) => {
                let o = Integerisation::Ordered;
                widen_range(&k[range], mask, lh, |k| o.domain_value::<T>(i64::from(k)));
            }
            (Ints::Narrow(k), _) => {
                widen_range(&k[range], mask, lh, |k| d.domain_value::<T>(i64::from(k)));
            }
            (Ints::Wide(k), _) => {
                widen_range(&k[range], mask, lh, |k| d.domain_value::<T>(k));
            }
            (Ints::Ordered, _) => {
                let v = values.get(range).unwrap_or(&[]);
                widen_range(v, mask, lh, |v| d.domain_value::<T>(to_signed_ordered(v)));
            }
        }
    }
    let st = Stencil::new(kind, dims.n_rows, dims.n_cols, plan.lag);
    let d3 = (dims.n_slices, dims.n_rows, dims.n_cols);
    let exc = &integ.is_exception[..];
    // The fit reads its sample points' domain values from the integers on demand where every
    // slice shares one domain; per-slice grids fill a plane first.
    let weights = match (&integ.ints, domain) {
        (Ints::Narrow(k), Domain::Int(g @ Integerisation::Grid { .. })) => {
            let g = *g;
            fit_plane(
                &st,
                &IntsPlane::new(k, exc, |k| g.domain_value::<T>(i64::from(k))),
                d3,
                plan,
            )
        }
        (Ints::Narrow(k), Domain::Int(Integerisation::Ordered)) => {
            let o = Integerisation::Ordered;
            fit_plane(
                &st,
                &IntsPlane::new(k, exc, |k| o.domain_value::<T>(i64::from(k))),
                d3,
                plan,
            )
        }
        (Ints::Narrow(k), Domain::Palette(_)) => {
            let d = domain.at_slice(0);
            fit_plane(
                &st,
                &IntsPlane::new(k, exc, |k| d.domain_value::<T>(i64::from(k))),
                d3,
                plan,
            )
        }
        (Ints::Wide(k), Domain::Int(_) | Domain::Palette(_)) => {
            let d = domain.at_slice(0);
            fit_plane(
                &st,
                &IntsPlane::new(k, exc, |k| d.domain_value::<T>(k)),
                d3,
                plan,
            )
        }
        // The fit reads valid points only: their integers are `to_signed_ordered`.
        (Ints::Ordered, Domain::Int(_) | Domain::Palette(_)) => {
            let d = domain.at_slice(0);
            fit_plane(
                &st,
                &IntsPlane::new(values, exc, |v| d.domain_value::<T>(to_signed_ordered(v))),
                d3,
                plan,
            )
        }
        (_, Domain::Slices(_)) => {
            let mut vals = vec![0.0f64; integ.len()];
            for (s, chunk) in vals.chunks_mut(slice).enumerate() {
                let d = domain.at_slice(s);
                let base = s * slice;
                for (p, v) in chunk.iter_mut().enumerate() {
                    if !exc[base + p] {
                        *v = d.domain_value::<T>(integ.ints.get(values, exc, base + p));
                    }
                }
            }
            let valid: Vec<bool> = exc.iter().map(|&e| !e).collect();
            let plane = ValidPlane {
                vals: &vals,
                valid: &valid,
            };
            fit_plane(&st, &plane, d3, plan)
        }
    };
    Fitted::new(kind, plan, weights, (lo, hi))
}

/// The stencil of a block of `dims`.
fn stencil_kind(dims: BlockDims) -> StencilKind {
    // Long rows of few members (ensemble x time series): the row is the signal. Measured on
    // TS-lens (40 members x 8761 6-hourly steps): 5.25 -> 9.42 with W..W4 (diurnal period 4).
    if dims.n_slices == 1 && dims.n_cols >= 64 * dims.n_rows && dims.n_cols >= 4 {
        StencilKind::Row
    } else {
        StencilKind::for_dims(dims.n_slices, dims.n_rows, dims.n_cols)
    }
}

/// [`fit`] of a candidate whose domain value at every valid point is the value itself
/// (`to_f64`): ordered bits and palettes. It reads the values instead of mapping each integer
/// back (the same numbers: valid values are finite, `detect_exceptions` masks the others).
fn fit_values<T: Float>(
    values: &[T],
    is_exception: &[bool],
    dims: BlockDims,
    plan: FitPlan,
) -> Fitted {
    // The candidates' masks hold every non-finite value (they contain `detect_exceptions`).
    debug_assert!(values
        .iter()
        .zip(is_exception)
        .all(|(v, &e)| e || v.is_finite_value()));
    let kind = stencil_kind(dims);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    widen_range(values, is_exception, (&mut lo, &mut hi), |v| v.to_f64());
    let st = Stencil::new(kind, dims.n_rows, dims.n_cols, plan.lag);
    let d3 = (dims.n_slices, dims.n_rows, dims.n_cols);
    let plane = IntsPlane::new(values, is_exception, |v: T| v.to_f64());
    let weights = fit_plane(&st, &plane, d3, plan);
    Fitted::new(kind, plan, weights, (lo, hi))
}

/// Widens `[lo, hi]` to `domain(ints[p])` of the points that are not exceptions.
#[inline(always)]
fn widen_range<I: Copy>(
    ints: &[I],
    is_exception: &[bool],
    (lo, hi): (&mut f64, &mut f64),
    domain: impl Fn(I) -> f64,
) {
    let (mut l, mut h) = (*lo, *hi);
    for (&k, &e) in ints.iter().zip(is_exception) {
        if !e {
            let x = domain(k);
            l = l.min(x);
            h = h.max(x);
        }
    }
    (*lo, *hi) = (l, h);
}

/// A block's domain values computed from its integers when the fit reads them, instead of a
/// plane of `f64` (8 bytes a value: the largest allocation of encoding a block; with its
/// validity mask, 7.2 + 0.9 MB of TREFHT's 17.3 MB heap peak). The fit reads the same values at
/// the same points: outputs byte-identical. Measured (peak RSS of `melloc compress`, one
/// thread): TREFHT 23.4 -> 21.1 MB, TS 21.7 -> 19.9 MB, u-eraint 18.4 -> 16.9 MB (the peak is
/// now the integerisation), CPU -2%.
struct IntsPlane<'a, I, F> {
    ints: &'a [I],
    is_exception: &'a [bool],
    domain: F,
}

impl<'a, I, F> IntsPlane<'a, I, F> {
    fn new(ints: &'a [I], is_exception: &'a [bool], domain: F) -> Self {
        Self {
            ints,
            is_exception,
            domain,
        }
    }
}

impl<I: Copy + Sync, F: Fn(I) -> f64 + Sync> FitPlane for IntsPlane<'_, I, F> {
    #[inline(always)]
    fn value(&self, i: usize) -> f64 {
        (self.domain)(self.ints[i])
    }
    #[inline(always)]
    fn is_valid(&self, i: usize) -> bool {
        !self.is_exception[i]
    }
    fn all_valid(&self, range: std::ops::Range<usize>) -> bool {
        self.is_exception
            .get(range)
            .is_some_and(|v| v.chunks(4096).all(|c| c.iter().fold(true, |a, &e| a & !e)))
    }
}

/// The in-slice weights and (for 3-D stencils) the full, reweighted weights, rounded to `f32`
/// as the header stores them.
fn fit_plane<P: FitPlane>(
    st: &Stencil,
    plane: &P,
    d3: (usize, usize, usize),
    plan: FitPlan,
) -> (Vec<f64>, Vec<f64>) {
    let q = |w: Vec<f64>| -> Vec<f64> { w.into_iter().map(|x| f64::from(x as f32)).collect() };
    let w_in = q(fit_weights_on(st, plane, d3, true, plan.samples));
    let w_full = if st.taps.len() > st.n_in {
        q(fit_weights_reweighted_on(
            st,
            plane,
            d3,
            plan.samples,
            FIT_ITERS,
        ))
    } else {
        Vec::new()
    };
    (w_in, w_full)
}

/// The slice lag (1..=MAX_LAG) with the smallest mean |x[s] - x[s - lag]| on a sample of valid
/// points. Measured on THETA-levitus (12 months x 15 levels): lag 15 is chosen, ratio 2.74 -> 3.24;
/// on TS (monthly) lag 12 is chosen and costs 0.2% against lag 1 (1.966 vs 1.970).
///
/// Chosen once per block on the float values (exceptions of the base mask left out) and shared
/// by every candidate and by the row-sampled estimates: each candidate's domain is the value
/// itself or an affine map of it (a grid index, a slice grid's physical value, a palette entry's
/// value), which ranks the lags the same. Choosing per candidate on its domain plane, as
/// before, was 237M of THETA-levitus' 1.94G instructions (5 calls: 4 estimates and the final
/// encode) and 208M of fice's 1.77G; once per block: THETA 1.94G -> 1.75G, fice 1.77G ->
/// 1.60G, all 40 outputs byte-identical.
///
/// The sampled points are gathered once into a slice-major table (NaN where invalid), so each
/// lag is a plain scan over two runs of it (the same points, terms and order as scanning the
/// block per lag).
fn choose_lag<T: Float>(values: &[T], is_exception: &[bool], dims: BlockDims) -> usize {
    let slice = dims.slice_len();
    let max_lag = MAX_LAG.min(dims.n_slices.saturating_sub(1));
    if max_lag <= 1 || slice == 0 || values.len() != dims.len() {
        return 1;
    }
    // About 4096 points per slice, and at most ~2^16 per lag over the whole block.
    let step = (slice / 4096).max(slice * dims.n_slices / (1 << 16)).max(1);
    let per_slice = slice.div_ceil(step);
    let mut table = Vec::with_capacity(per_slice * dims.n_slices);
    for s in 0..dims.n_slices {
        for p in (0..slice).step_by(step) {
            let idx = s * slice + p;
            let v = values[idx].to_f64();
            table.push(if is_exception[idx] || !v.is_finite() {
                f64::NAN
            } else {
                v
            });
        }
    }
    let mut best = (f64::INFINITY, 1usize);
    for lag in 1..=max_lag {
        let (a, b) = (
            &table[lag * per_slice..],
            &table[..table.len() - lag * per_slice],
        );
        // Four running sums, without a branch (a single sum was a chain of dependent
        // additions, and the branch on invalid points mispredicts on masked fields). Their
        // rounding differs from one sum's only in the last bits of a mean; every lag choice on
        // the 40 shared fields is the same (all 80 outputs byte-identical). (`f32` values sum
        // exactly either way; a review built an `f64` block whose two lags tie within ~1e-16,
        // where the choice flips.)
        let (mut sums, mut cnts) = ([0.0f64; 4], [0usize; 4]);
        let (qa, qb) = (a.chunks_exact(4), b.chunks_exact(4));
        let (ra, rb) = (qa.remainder(), qb.remainder());
        let mut add = |l: usize, x: f64, y: f64| {
            let d = (x - y).abs();
            // NaN (either point invalid) fails the comparison.
            let ok = d <= f64::INFINITY;
            sums[l] += if ok { d } else { 0.0 };
            cnts[l] += usize::from(ok);
        };
        for (x, y) in qa.zip(qb) {
            for l in 0..4 {
                add(l, x[l], y[l]);
            }
        }
        for (&x, &y) in ra.iter().zip(rb) {
            add(0, x, y);
        }
        let sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        let cnt = cnts.iter().sum::<usize>();
        if cnt > 0 {
            // Prefer short lags on near-ties: a lag-L predictor loses its first L slices.
            let mean = sum / cnt as f64 * (1.0 + 0.02 * lag as f64);
            if mean < best.0 {
                best = (mean, lag);
            }
        }
    }
    best.1
}

/// Encodes with one integerisation (and optionally a palette of bit patterns, or one grid per
/// slice).
fn encode_integ<T: Float>(
    c: &Candidate,
    values: &[T],
    dims: BlockDims,
    plan: FitPlan,
    version: u8,
    memo: &mut FitMemo,
    code_palette: bool,
) -> Vec<Section> {
    let (integ, palette, slice_grids) = (&c.integ, c.palette, &c.slice_grids[..]);
    let memo = c.fit_key.map(|zeros| &mut memo.0[usize::from(zeros)]);
    let fitted = match memo {
        Some(Some(f)) => f.clone(),
        memo => {
            let f = if c.fit_key.is_some() {
                fit_values(values, &integ.is_exception, dims, plan)
            } else {
                let domain = match palette {
                    Some(p) => Domain::Palette(PaletteIndex::new(
                        p.iter().map(|o| T::from_ordered(o).to_f64()).collect(),
                    )),
                    None if !slice_grids.is_empty() => Domain::Slices(slice_grids.to_vec()),
                    None => Domain::Int(integ.kind),
                };
                // `run` builds its own domain from the header; a palette's (its values and
                // index, 12+ bytes an entry) is freed (here) before that one is built.
                fit::<T>(integ, values, &domain, dims, plan)
            };
            if let Some(m) = memo {
                *m = Some(f.clone());
            }
            f
        }
    };
    let Fitted {
        kind: stencil,
        lag,
        w_in,
        w_full,
        lo,
        hi,
    } = fitted;
    let has_exceptions = integ.is_exception.iter().any(|&e| e);
    let has_fixes = palette.is_none() && integ.fixes.any_nonzero();
    // The first `DICT_MAX` distinct exception bit patterns, in position order.
    let mut dict: Vec<u64> = Vec::new();
    if has_exceptions {
        for (v, _) in values
            .iter()
            .zip(&integ.is_exception[..])
            .filter(|(_, &e)| e)
        {
            let b = v.to_bits_u64();
            if dict.len() < DICT_MAX && !dict.contains(&b) {
                dict.push(b);
            }
        }
    }
    let hdr = Header {
        version,
        kind: if palette.is_some() || !slice_grids.is_empty() {
            Integerisation::Ordered
        } else {
            integ.kind
        },
        has_exceptions,
        runs: version >= 5 && {
            let (hits, groups) = count_repeat_groups(integ, values, dims);
            hits > 0 && hits * RUNS_MIN_SHARE >= groups
        },
        has_fixes,
        lo,
        hi,
        stencil,
        lag,
        w_in,
        w_full,
        dict,
        n_palette: palette.map_or(0, |p| p.len()),
        slice_grids: slice_grids.to_vec(),
    };
    // The encoder fills no planes (`Io::DECODES`).
    let mut planes = Planes {
        values: Vec::new(),
        bad_index: false,
    };
    let src = Src {
        integ,
        palette,
        values,
        code_palette,
    };
    let (rc, raw) = if version >= 6 {
        Enc::streams(WideEncoder::new(), |io| {
            run::<T, _>(io, &hdr, dims, Some(src), &mut planes);
        })
    } else {
        Enc::streams(RangeEncoder::new(), |io| {
            run::<T, _>(io, &hdr, dims, Some(src), &mut planes);
        })
    };
    vec![
        Section::new(KIND_HEADER, hdr.to_bytes::<T>()),
        Section::new(KIND_RC, rc),
        Section::new(KIND_RAW, raw),
    ]
}

/// The sorted distinct ordered bits of the valid values of a block, or none at all when there
/// are more than `values.len() / 2 + 1`: then neither they nor they without +0.0 make a palette
/// ([`palette_fits`]), and they are not widened to a `u64` list.
///
/// `f32` ordered bits are sorted as `u32` keys: the sort holds keys and scratch, 16 bytes per
/// value as `u64`, 14.4 of the 22.5 MB heap peak of compressing TREFHT (3.6 MB); 8 as `u32`.
///
/// A valid value equal to the valid value before it is not sorted again: the set of distinct
/// values is the same, and radar fields are 60-95% runs of one value. Measured on
/// PrecipRate-mrms (6 chunks of 4M values): compress CPU -12%; outputs byte-identical.
///
/// The keys are sorted in two parts, the first 5/8 of the block and the rest, then merged
/// ([`distinct_in_two`]): a block whose first part alone has too many distinct values (smooth
/// full-precision fields) never sorts the rest, and the sort holds 5/8 of the keys and their
/// scratch instead of all of them.
///
/// Rejected: collecting the keys in an open-addressing hash set first, sorting only when it
/// overflowed (2^12 or 2^14 keys): radar files 1-2% faster, z-eraint (21K distinct) 1-4%
/// slower, 11 files in all within noise (median of 7-9); outputs byte-identical.
///
/// Rejected: screening blocks of 2^15 values or more with a k-minimum-values sketch (512
/// smallest distinct hashes of the ordered bits; skip the sort when the estimate exceeds 3n/4).
/// Outputs were byte-identical, but compress CPU of 12 files (median of 7) rose 639 -> 674 ms:
/// PrecipRate +18% and RATE-opera +8% (a hash for every value, where the sort skips runs),
/// u-eraint +7% (the palette is built anyway), TREFHT +1% (grid-packed: too few distinct values
/// to be rejected).
fn distinct_ords<T: Float>(values: &[T], is_exception: &[bool]) -> Vec<u64> {
    let valid = |r: std::ops::Range<usize>| {
        let mut prev = None;
        values[r.clone()]
            .iter()
            .zip(&is_exception[r])
            .filter(|(_, &e)| !e)
            .map(|(v, _)| v.to_ordered())
            .filter(move |&o| prev.replace(o) != Some(o))
    };
    let n = values.len().min(is_exception.len());
    let split = n - n * 3 / 8;
    let max_len = values.len() / 2 + 1;
    if T::N_BITS == 32 {
        // `to_ordered` of an `f32` is below 2^32.
        distinct_in_two(|r| valid(r).map(|o| o as u32), split, n, max_len)
    } else {
        distinct_in_two(valid, split, n, max_len)
    }
}

/// The sorted distinct keys of `keys(0..n)`, widened, or none when there are more than
/// `max_len`: `keys(0..split)` and `keys(split..n)` sorted and deduplicated apart, then merged.
fn distinct_in_two<K: RadixKey, I: Iterator<Item = K>>(
    keys: impl Fn(std::ops::Range<usize>) -> I,
    split: usize,
    n: usize,
    max_len: usize,
) -> Vec<u64> {
    let sorted = |r: std::ops::Range<usize>| {
        let mut v: Vec<K> = Vec::with_capacity(r.len());
        v.extend(keys(r));
        radix_sort(&mut v);
        v.dedup();
        v.shrink_to_fit();
        v
    };
    let a = sorted(0..split);
    if a.len() > max_len {
        return Vec::new();
    }
    let b = sorted(split..n);
    // The size of the union first (nothing is allocated for a block that has too many).
    let mut count = 0usize;
    merge_sorted(&a, &b, |_| count += 1);
    if count > max_len {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(count);
    merge_sorted(&a, &b, |k| out.push(k.widen()));
    out
}

/// Calls `emit` on each key of the union of the sorted distinct `a` and `b`, in order.
fn merge_sorted<K: Copy + Ord>(a: &[K], b: &[K], mut emit: impl FnMut(K)) {
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        emit(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    a[i..].iter().chain(&b[j..]).for_each(|&k| emit(k));
}

/// Whether `n_entries` distinct values ([`distinct_ords`]) make a palette for a block of `n`
/// values: not when there are too many for a palette to pay off (more than `n / 2`).
fn palette_fits(n_entries: usize, n: usize) -> bool {
    // Each entry costs roughly a few bits to a few bytes; beyond n/8 entries the palette
    // rarely beats ordered bits or a grid (measured: echam5 231819 distinct of 313344 loses).
    n_entries > 0 && n_entries <= n / 2
}

/// Exact lookup of a key in sorted distinct `u64` keys (a palette's ordered bits), by bucket:
/// bucket `(key - first) >> shift` holds the keys `start[b]..start[b + 1]` (the map is
/// monotone), so a lookup searches one bucket of ~1 key instead of the whole list.
///
/// Against `binary_search` over the whole palette (z-eraint: 20,970 entries, 694K lookups of
/// ~15 steps), median CPU of 7 compressions: z-eraint 103.0 -> 96.7 ms, HGT-isabel 44.2 ->
/// 40.0, u-eraint 81.7 -> 79.3, THETA-levitus 92.1 -> 89.2; the 14 files with palette
/// candidates 1151 -> 1130 ms; all 80 outputs byte-identical.
struct OrdIndex<'a> {
    ords: &'a [u64],
    first: u64,
    shift: u32,
    /// `start[b]`: the number of keys in buckets below `b` (`n_buckets + 1` of them).
    start: Vec<u32>,
}

impl<'a> OrdIndex<'a> {
    /// `ords` must be sorted ascending and distinct. A list of 2^32 keys or more gets no
    /// buckets (`find` searches it whole).
    fn new(ords: &'a [u64]) -> Self {
        if u32::try_from(ords.len()).is_err() {
            return Self {
                ords,
                first: 0,
                shift: 0,
                start: Vec::new(),
            };
        }
        let first = ords.first().copied().unwrap_or(0);
        let span = ords.last().copied().unwrap_or(0).wrapping_sub(first);
        // About one key per bucket: the smallest shift that gives at most `ords.len()` buckets.
        let target = (ords.len() as u64).max(1);
        let mut shift = 0u32;
        while shift < 63 && (span >> shift) >= target {
            shift += 1;
        }
        let n_buckets = (span >> shift) as usize + 1;
        let mut start = vec![0u32; n_buckets + 1];
        for &o in ords {
            start[((o - first) >> shift) as usize + 1] += 1;
        }
        for b in 0..n_buckets {
            start[b + 1] += start[b];
        }
        Self {
            ords,
            first,
            shift,
            start,
        }
    }

    /// `ords.binary_search(&key).ok()`.
    #[inline(always)]
    fn find(&self, key: u64) -> Option<usize> {
        if self.start.is_empty() {
            return self.ords.binary_search(&key).ok();
        }
        let b = usize::try_from(key.checked_sub(self.first)? >> self.shift).ok()?;
        let (&lo, &hi) = (self.start.get(b)?, self.start.get(b + 1)?);
        let (lo, hi) = (lo as usize, hi as usize);
        let bucket = self.ords.get(lo..hi)?;
        bucket.binary_search(&key).ok().map(|i| lo + i)
    }
}

/// A palette as the encoder holds it: the block's sorted distinct ordered bits without the
/// `skip`-th key. Both palette candidates share the one list (no copy of 8 bytes an entry per
/// candidate), and the encoder's `run` keeps no bit patterns of its own. Heap peak of
/// `compress -T 1` (massif): THETA-levitus 14.67 -> 11.73 MB, V-foam 9.97 -> 8.39, fice 12.81
/// -> 11.35; outputs byte-identical.
#[derive(Clone, Copy, Debug)]
struct PaletteKeys<'a> {
    ords: &'a [u64],
    skip: Option<usize>,
}

impl PaletteKeys<'_> {
    fn len(&self) -> usize {
        self.ords.len() - usize::from(self.skip.is_some_and(|z| z < self.ords.len()))
    }
    /// The ordered bits of entry `p`.
    fn get(&self, p: usize) -> Option<u64> {
        let i = p + usize::from(self.skip.is_some_and(|z| p >= z));
        self.ords.get(i).copied()
    }
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let skip = self.skip;
        self.ords
            .iter()
            .enumerate()
            .filter(move |&(i, _)| Some(i) != skip)
            .map(|(_, &o)| o)
    }
}

/// The palette candidate of a block: each value's index into its palette, the keys `ords`
/// ([`distinct_ords`]) without the `skip`-th one.
fn palette_candidate<'a, T: Float>(
    values: &[T],
    mask: &'a [bool],
    ords: &'a [u64],
    skip: Option<usize>,
) -> Candidate<'a> {
    let lookup = OrdIndex::new(ords);
    let index = |(v, &e): (&T, &bool)| {
        if e {
            0
        } else {
            // Keys after the skipped one move down by one. (A value whose key is the skipped
            // one is masked.)
            let i = lookup.find(v.to_ordered()).unwrap_or(0);
            i - usize::from(skip.is_some_and(|z| i > z))
        }
    };
    // Indices are below `ords.len()`: 32 bits unless the palette is huge.
    let ints = if i32::try_from(ords.len()).is_ok() {
        Ints::Narrow(values.iter().zip(mask).map(|x| index(x) as i32).collect())
    } else {
        Ints::Wide(values.iter().zip(mask).map(|x| index(x) as i64).collect())
    };
    Candidate {
        integ: Source {
            kind: Integerisation::Ordered,
            ints,
            fixes: Ints::Narrow(Vec::new()),
            is_exception: Cow::Borrowed(mask),
        },
        palette: Some(PaletteKeys { ords, skip }),
        slice_grids: Vec::new(),
        fit_key: None,
    }
}

fn total_len(secs: &[Section]) -> usize {
    secs.iter().map(|s| s.data.len()).sum()
}

/// Integers in the narrowest exact width: grid indices, palette indices and the ordered bits
/// of `f32` all fit in 32 bits (4 bytes per value instead of 8).
enum Ints {
    Narrow(Vec<i32>),
    Wide(Vec<i64>),
    /// The ordered-bits integerisation, not stored: point `i`'s integer is
    /// `to_signed_ordered(values[i])` of the block's values, 0 at exceptions ([`ordered_int`]).
    /// (Never a plane of fixes.) Saves the candidate's plane (4 bytes a value for `f32`, 8 for
    /// `f64`) and the pass that filled it; the readers recompute the integers (compress CPU of
    /// 8 files, median of 9: 419 -> 419 ms; callgrind fice 732M -> 746M instructions). The
    /// encoding phase of an ordered-bits block (U-dc) now peaks below its verification (the
    /// decoded chunk beside the input), so the process peak barely moves (U-dc 12.9 -> 12.5 MB
    /// RSS); outputs byte-identical.
    Ordered,
}

impl Ints {
    fn new(v: Vec<i64>) -> Self {
        if v.iter().all(|&x| i32::try_from(x).is_ok()) {
            Ints::Narrow(v.iter().map(|&x| x as i32).collect())
        } else {
            Ints::Wide(v)
        }
    }
    /// The integer of point `i`, given the block's `values` and exception `mask`.
    #[inline(always)]
    fn get<T: Float>(&self, values: &[T], mask: &[bool], i: usize) -> i64 {
        match self {
            Ints::Narrow(v) => i64::from(v[i]),
            Ints::Wide(v) => v[i],
            Ints::Ordered => ordered_int(values[i], mask[i]),
        }
    }
    fn any_nonzero(&self) -> bool {
        match self {
            Ints::Narrow(v) => v.iter().any(|&x| x != 0),
            Ints::Wide(v) => v.iter().any(|&x| x != 0),
            Ints::Ordered => false,
        }
    }
}

/// The ordered-bits integer of a value (0 for an exception), as `integerize_planes` stores it.
#[inline(always)]
fn ordered_int<T: Float>(v: T, is_exception: bool) -> i64 {
    if is_exception {
        0
    } else {
        to_signed_ordered(v)
    }
}

/// What the encoder codes: an [`Integerized`](melloc_core::integer::Integerized) block in narrow planes; `fixes` is empty when
/// every fix is 0.
struct Source<'a> {
    kind: Integerisation,
    ints: Ints,
    fixes: Ints,
    /// Borrowed from the encoder's masks where it can be (a quarter of an `f32` block's size).
    /// The exceptions' bits are read from the block's values ([`Src`]).
    is_exception: Cow<'a, [bool]>,
}

impl<'a> Source<'a> {
    /// A source of `kind` from wide planes (narrowed where they fit).
    fn new(kind: Integerisation, ints: Vec<i64>, fixes: Vec<i64>, is_exception: Vec<bool>) -> Self {
        // Fixes first (usually all 0 and freed), so at most one wide plane is narrowed at once.
        let fixes = if fixes.iter().all(|&f| f == 0) {
            Ints::Narrow(Vec::new())
        } else {
            Ints::new(fixes)
        };
        Self {
            kind,
            ints: Ints::new(ints),
            fixes,
            is_exception: Cow::Owned(is_exception),
        }
    }
    /// The same source as [`Source::new`] on [`integerize_with_mask`]'s planes, built from
    /// planes that are already narrow (no `i64` plane is allocated and narrowed). Measured
    /// (median CPU of 5): the 40 files 1853 -> 1836 ms, TREFHT 85.3 -> 82.5 (page faults
    /// 8968 -> 7440), THETA-dc 29.4 -> 27.5, RATE-opera 146.0 -> 142.6 (of 11); PrecipRate
    /// unchanged (its faults are the per-chunk peak, not this plane); outputs byte-identical.
    ///
    /// [`integerize_with_mask`]: melloc_core::integer::integerize_with_mask
    /// `is_exception` is the mask the planes were made with.
    fn from_planes(x: IntegerizedPlanes, is_exception: &'a [bool]) -> Self {
        let IntegerizedPlanes { kind, ints, fixes } = x;
        Self {
            kind,
            ints: match ints {
                // Recomputed from the values where they are read (see `Source::ordered`).
                _ if kind == Integerisation::Ordered => Ints::Ordered,
                IntPlane::Narrow(v) => Ints::Narrow(v),
                IntPlane::Wide(v) => Ints::new(v),
            },
            // Empty when every fix is zero, as in `new`.
            fixes: Ints::Narrow(fixes),
            is_exception: Cow::Borrowed(is_exception),
        }
    }
    /// The integerisation of `values` under `is_exception` on `grid` ([`detect_grid`]'s
    /// result for them), as `integerize_planes` gives it; ordered bits keep no plane.
    fn on_grid<T: Float>(
        values: &[T],
        is_exception: &'a [bool],
        grid: Option<Integerisation>,
    ) -> Self {
        match grid {
            None => Self::ordered(is_exception),
            grid => Self::from_planes(
                integerize_planes_on(values, is_exception, grid),
                is_exception,
            ),
        }
    }
    /// The ordered-bits integerisation of a block under `is_exception`, without a plane: its
    /// integers are recomputed from the values where they are read ([`Ints::Ordered`]).
    fn ordered(is_exception: &'a [bool]) -> Self {
        Self {
            kind: Integerisation::Ordered,
            ints: Ints::Ordered,
            fixes: Ints::Narrow(Vec::new()),
            is_exception: Cow::Borrowed(is_exception),
        }
    }
    fn len(&self) -> usize {
        self.is_exception.len()
    }
}

/// Whether points `idx..idx + len` all repeat point `idx - 1` (`idx >= 1`) exactly: all
/// exceptions with its bits (the block's `values`), or all valid with its integer and fix.
fn repeats_w<T: Float>(src: &Source, values: &[T], idx: usize, len: usize) -> bool {
    // Whole-group comparisons without early exit (they vectorise) and no per-point plane
    // dispatch: on radar fields most groups are runs, checked in full (PrecipRate-mrms encode
    // 2.66G -> 2.56G instructions; bytes unchanged).
    fn all_eq<X: Copy + PartialEq>(g: &[X], w: X) -> bool {
        g.iter().fold(true, |a, &x| a & (x == w))
    }
    let w = idx - 1;
    let (Some(&w_exc), Some(group)) = (
        src.is_exception.get(w),
        src.is_exception.get(idx..idx + len),
    ) else {
        return false;
    };
    if !all_eq(group, w_exc) {
        return false;
    }
    if w_exc {
        // Exceptions repeat W's bits (the block's values are the exceptions' bits).
        let (Some(w_value), Some(g)) = (values.get(w), values.get(idx..idx + len)) else {
            return false;
        };
        let w_bits = w_value.to_bits_u64();
        return g.iter().fold(true, |a, v| a & (v.to_bits_u64() == w_bits));
    }
    let same = |plane: &Ints| match plane {
        Ints::Narrow(v) if v.is_empty() => true,
        Ints::Narrow(v) => v.get(idx..idx + len).is_some_and(|g| all_eq(g, v[w])),
        Ints::Wide(v) if v.is_empty() => true,
        Ints::Wide(v) => v.get(idx..idx + len).is_some_and(|g| all_eq(g, v[w])),
        // Valid points: equal ordered integers are equal bits.
        Ints::Ordered => match (values.get(w), values.get(idx..idx + len)) {
            (Some(wv), Some(g)) => {
                let w_bits = wv.to_bits_u64();
                g.iter().fold(true, |a, v| a & (v.to_bits_u64() == w_bits))
            }
            _ => false,
        },
    };
    same(&src.ints) && same(&src.fixes)
}

/// Run groups that repeat their W point, and all run groups, of a block.
fn count_repeat_groups<T: Float>(src: &Source, values: &[T], dims: BlockDims) -> (usize, usize) {
    let n_cols = dims.n_cols;
    let (mut hits, mut groups) = (0usize, 0usize);
    for row in 0..src.len() / n_cols.max(1) {
        let base = row * n_cols;
        for j in (RUN_GROUP..n_cols).step_by(RUN_GROUP) {
            groups += 1;
            hits += usize::from(repeats_w(src, values, base + j, RUN_GROUP.min(n_cols - j)));
        }
    }
    (hits, groups)
}

/// One way to integerise a block (the encoder tries a few).
struct Candidate<'a> {
    integ: Source<'a>,
    palette: Option<PaletteKeys<'a>>,
    slice_grids: Vec<Integerisation>,
    /// For a candidate whose domain value is the value itself (ordered bits, palettes):
    /// whether exact zeros are exceptions. Its fit is then [`FitMemo`]'s entry for that mask.
    fit_key: Option<bool>,
}

/// The rows an estimate encodes: bands of `band` rows every `period` rows of every slice.
#[derive(Clone, Copy, Debug)]
struct RowSample {
    band: usize,
    period: usize,
}

/// Blocks smaller than this encode every candidate fully.
const MIN_SAMPLED_LEN: usize = 1 << 18;

impl RowSample {
    /// A sample of about 1/8 (>= 128 rows) to 1/3 of the rows, or `None` for blocks that are
    /// small or have few rows (every candidate is then encoded fully).
    fn for_dims(dims: BlockDims) -> Option<Self> {
        if dims.len() < MIN_SAMPLED_LEN {
            return None;
        }
        let (band, period) = match dims.n_rows {
            r if r >= 128 => (8, 64),
            r if r >= 48 => (4, 32),
            // Rejected for speed: (4, 32) or (4, 20) here cut THETA-levitus (40 rows) 1.23G ->
            // 1.07G instructions with the same choice, but its estimates became fragile: the
            // winner's lead over the runner-up went 10% -> 0.7% with (4, 20), and (4, 32)
            // estimated 397K bytes for a 552K-byte encoding.
            r if r >= 32 => (4, 16),
            _ => return None,
        };
        Some(Self { band, period })
    }

    fn keeps(self, i: usize) -> bool {
        i % self.period < self.band
    }

    /// The sampled block: the kept rows of every slice, in order, of `values` and of the
    /// exception masks.
    fn apply<T: Float>(
        self,
        values: &[T],
        base_mask: &[bool],
        zero_mask: Option<&[bool]>,
        dims: BlockDims,
    ) -> (Vec<T>, Vec<bool>, Option<Vec<bool>>, BlockDims) {
        let n_kept = (0..dims.n_rows).filter(|&i| self.keeps(i)).count();
        let sub_dims = BlockDims::new(dims.n_slices, n_kept, dims.n_cols);
        let rows = || {
            (0..dims.n_slices * dims.n_rows)
                .filter(|r| self.keeps(r % dims.n_rows))
                .map(|r| r * dims.n_cols..(r + 1) * dims.n_cols)
        };
        // Allocated at their final size (a `flat_map` collects by doubling).
        fn pick<X: Copy>(
            x: &[X],
            len: usize,
            rows: impl Iterator<Item = std::ops::Range<usize>>,
        ) -> Vec<X> {
            let mut out = Vec::with_capacity(len);
            for r in rows {
                out.extend_from_slice(&x[r]);
            }
            out
        }
        let len = sub_dims.len();
        (
            pick(values, len, rows()),
            pick(base_mask, len, rows()),
            zero_mask.map(|z| pick(z, len, rows())),
            sub_dims,
        )
    }
}

/// The per-slice-grid form of a block, given grids from [`detect_slice_grids`].
fn slice_grid_candidate<T: Float>(
    values: &[T],
    mask: &[bool],
    dims: BlockDims,
    grids: &[Integerisation],
) -> Option<Candidate<'static>> {
    let slice = dims.slice_len();
    let mut ints = Vec::with_capacity(values.len());
    let mut fixes = Vec::with_capacity(values.len());
    for ((v, m), g) in values.chunks(slice).zip(mask.chunks(slice)).zip(grids) {
        if m.iter().all(|&e| e) {
            ints.extend(std::iter::repeat_n(0, m.len()));
            fixes.extend(std::iter::repeat_n(0, m.len()));
            continue;
        }
        let (k, f) = grid_ints(v, m, *g)?;
        ints.extend(k);
        fixes.extend(f);
    }
    Some(Candidate {
        // `Ordered` is only the header's kind here: the planes hold per-slice grid indices
        // (never to be read as `Ints::Ordered`, which `Source::new` does not produce).
        integ: Source::new(Integerisation::Ordered, ints, fixes, mask.to_vec()),
        palette: None,
        slice_grids: grids.to_vec(),
        fit_key: None,
    })
}

/// Bytes the range coder spends on a palette alone (it is coded once, whatever the sample).
fn palette_cost(palette: PaletteKeys, version: u8) -> usize {
    fn code<IO: BitIo>(io: &mut IO, palette: PaletteKeys) {
        let mut pm = Models::new(false, false);
        let mut prev = 0u64;
        let mut ctx = 0usize;
        for o in palette.iter() {
            let (_, bl) = code_signed(io, &mut pm.res, ctx, 0, o.wrapping_sub(prev) as i64);
            prev = o;
            ctx = 2 * usize::from(bl & 127);
        }
    }
    let (rc, raw) = if version >= 6 {
        Enc::streams(WideEncoder::new(), |io| code(io, palette))
    } else {
        Enc::streams(RangeEncoder::new(), |io| code(io, palette))
    };
    rc.len() + raw.len()
}

/// Estimated encoded size of a candidate built on the sampled rows (`sub_dims`), scaled to
/// the block of `n` values.
///
/// A palette is coded once whatever the sample, so it is counted once ([`palette_cost`]) and
/// the sampled run does not code it. It was coded in the run too, and its share subtracted:
/// twice the palette's coding per estimate (THETA-levitus: 198K entries, ~6 ms each time).
/// Compress CPU (median of 7) THETA-levitus 59.7 -> 54.6 ms, fice 46.0 -> 41.5, V-foam 38.1
/// -> 36.0, TS-lens6h 44.4 -> 42.7; all 80 outputs of the 40 shared files byte-identical.
/// The subtraction also cancelled the sampled run's own 8-byte flush against the palette's,
/// so palette estimates were `8 * scale` bytes low against every other candidate's; now each
/// estimate counts its run's flush alike. A review found 4 of 510 synthetic inputs whose
/// choice flipped on such a near-tie (output -8..+5 bytes).
fn estimate<T: Float>(
    c: &Candidate,
    sub: &[T],
    sub_dims: BlockDims,
    n: usize,
    plan: FitPlan,
    version: u8,
    memo: &mut FitMemo,
) -> f64 {
    let size = total_len(&encode_integ::<T>(
        c, sub, sub_dims, plan, version, memo, false,
    )) as f64;
    let fixed = c.palette.map_or(0, |p| palette_cost(p, version)) as f64;
    let scale = n as f64 / sub_dims.len().max(1) as f64;
    fixed + size * scale
}

/// How to build one candidate. Candidates are built one at a time from their recipe and
/// dropped after use: each holds ~9-17 bytes per value plus its exceptions, and holding them all
/// at once made the working set of a 1M-value chunk ~100 bytes per value.
enum Recipe {
    /// The core integerisation, with exact zeros as exceptions when `zeros`.
    Core { zeros: bool },
    /// One grid per slice.
    SliceGrids(Vec<Integerisation>),
    /// A palette, with exact zeros as exceptions when `zeros`: the block's distinct ordered
    /// bits (`Recipe::build`'s `ords`, shared by both palette recipes) without the `skip`-th
    /// key (+0.0 when `zeros`).
    Palette { zeros: bool, skip: Option<usize> },
}

impl Recipe {
    /// `base_grid`, when given, is [`detect_grid`] of `values` under `base_mask`.
    fn build<'a, T: Float>(
        &self,
        values: &[T],
        base_mask: &'a [bool],
        zero_mask: Option<&'a [bool]>,
        ords: Option<&'a [u64]>,
        dims: BlockDims,
        base_grid: Option<Option<Integerisation>>,
    ) -> Option<Candidate<'a>> {
        let mask = |zeros: bool| if zeros { zero_mask } else { Some(base_mask) };
        // Ordered bits and palettes have the value itself as domain value: `fit_key`.
        let c = match self {
            Recipe::Core { zeros } => {
                let mask = mask(*zeros)?;
                let grid = match base_grid {
                    Some(grid) if !*zeros => grid,
                    _ => detect_grid(values, mask),
                };
                let integ = Source::on_grid(values, mask, grid);
                Candidate {
                    fit_key: (integ.kind == Integerisation::Ordered).then_some(*zeros),
                    integ,
                    palette: None,
                    slice_grids: Vec::new(),
                }
            }
            Recipe::SliceGrids(grids) => slice_grid_candidate(values, base_mask, dims, grids)?,
            Recipe::Palette { zeros, skip } => Candidate {
                fit_key: Some(*zeros),
                ..palette_candidate(values, mask(*zeros)?, ords?, *skip)
            },
        };
        Some(c)
    }
}

/// Encodes one block. Candidate integerisations: the core integerisation; with exact zeros as
/// exceptions when they are frequent; a palette of each when values are few. With more than
/// one candidate, each is built and encoded on a sample of rows only (`RowSample`, about 1/8)
/// and only the best estimate is built and encoded fully (blocks too small to sample encode
/// every candidate but the palette whose zero handling lost among the cores, and keep the
/// smallest). Candidates are built one at a time (`Recipe`).
///
/// Building candidates on the sample, and dropping the second full encoding of candidates
/// within 3% of the best estimate: PrecipRate-mrms encode 14.45G -> 7.93G instructions, all 80
/// outputs of the 40 files (auto and paper routes) byte-identical; on all 40
/// files the best estimate was the smallest full encoding wherever two were encoded.
///
/// Measured against encoding every candidate fully (all 40 files): the same ratio on every
/// file (aggregate 5.585, geomean 3.897); encode of the multi-candidate files 1.2-2x faster
/// (fice 8.3 -> 16.6 MB/s, RATE-rmi 19.8 -> 40.5, eraint u/v 21 -> 29). Sampling blocks of
/// 2^16..2^18 values too cost QCLOUD 27.86 -> 26.13 (a wrong pick), hence `MIN_SAMPLED_LEN`.
pub fn encode<T: Float>(values: &[T], dims: BlockDims, cfg: &RouteConfig) -> Result<Vec<Section>> {
    encode_as(values, dims, cfg, VERSION)
}

/// [`encode`], writing header `version` (`MIN_VERSION..=VERSION`; tests write older ones).
fn encode_as<T: Float>(
    values: &[T],
    dims: BlockDims,
    cfg: &RouteConfig,
    version: u8,
) -> Result<Vec<Section>> {
    if values.len() != dims.len() {
        return Err(FormatError::LengthMismatch {
            expected: dims.len() as u64,
            actual: values.len() as u64,
        });
    }
    let base_mask = detect_exceptions(values);
    let mut recipes = vec![Recipe::Core { zeros: false }];
    // Per-slice grids only where no single grid holds the block (GRIB-style packing). On the
    // 40 shared fields no block with a global grid chose per-slice grids (all outputs
    // byte-identical), and detecting them per slice was 14% of encoding TREFHT.
    // Detected once: the core candidate's integerisation reuses it (it was detected twice on
    // blocks of several slices). Median CPU of 7 on 11 multi-slice files: 496 -> 488 ms
    // (SHwet-fizhi 32.0 -> 29.8, TH-fizhi 32.5 -> 30.4, QVAPOR 17.2 -> 16.0); outputs
    // byte-identical.
    let base_grid = (dims.n_slices >= 2).then(|| detect_grid(values, &base_mask));
    let global_grid = matches!(base_grid, Some(Some(Integerisation::Grid { .. })));
    if !global_grid {
        if let Some(grids) = detect_slice_grids(values, &base_mask, dims.slice_len()) {
            recipes.push(Recipe::SliceGrids(grids));
        }
    }
    let n_zero = values.iter().filter(|v| v.to_bits_u64() == 0).count();
    let zero_mask: Option<Vec<bool>> =
        (cfg.effort >= 2 && n_zero * 20 >= values.len() && n_zero < values.len()).then(|| {
            values
                .iter()
                .zip(&base_mask)
                .map(|(v, &e)| e || v.to_bits_u64() == 0)
                .collect()
        });
    if zero_mask.is_some() {
        recipes.push(Recipe::Core { zeros: true });
    }
    let mut palette_ords: Vec<u64> = Vec::new();
    if cfg.effort >= 2 {
        // One sort: the zero-masked palette is the other one without +0.0 (the zero mask adds
        // exactly the values whose bits are 0). Sorting twice was 13% of encoding PrecipRate.
        // Both palettes share one list of keys (they were two copies of 8 bytes an entry:
        // THETA-levitus has 198K).
        let ords = distinct_ords(values, &base_mask);
        let zero = T::from_bits_u64(0).to_ordered();
        let skip = zero_mask.as_ref().map(|_| ords.binary_search(&zero).ok());
        let n_zero_keys = usize::from(matches!(skip, Some(Some(_))));
        if palette_fits(ords.len(), values.len()) {
            recipes.push(Recipe::Palette {
                zeros: false,
                skip: None,
            });
        }
        if let Some(skip) = skip {
            if palette_fits(ords.len() - n_zero_keys, values.len()) {
                recipes.push(Recipe::Palette { zeros: true, skip });
            }
        }
        if recipes.iter().any(|r| matches!(r, Recipe::Palette { .. })) {
            palette_ords = ords;
            palette_ords.shrink_to_fit();
        }
    }
    let build = |r: &Recipe| {
        r.build(
            values,
            &base_mask,
            zero_mask.as_deref(),
            Some(&palette_ords),
            dims,
            base_grid,
        )
    };
    let plan = FitPlan {
        lag: choose_lag(values, &base_mask, dims),
        samples: FIT_SAMPLES,
    };
    let both_palettes = recipes
        .iter()
        .filter(|r| matches!(r, Recipe::Palette { .. }))
        .count()
        == 2;
    // Which candidates to encode fully: with a row sample, only the best estimate.
    let sample = RowSample::for_dims(dims).filter(|_| recipes.len() > 1);
    let chosen: Vec<usize> = match sample {
        Some(sample) => {
            let (sub, sub_base, sub_zero, sub_dims) =
                sample.apply(values, &base_mask, zero_mask.as_deref(), dims);
            let sub_plan = FitPlan {
                samples: ESTIMATE_FIT_SAMPLES,
                ..plan
            };
            let mut sub_memo = FitMemo::default();
            let mut best = (f64::INFINITY, 0usize);
            // The better of the two core candidates (exact zeros as exceptions or not).
            let mut best_core: Option<(f64, bool)> = None;
            for (k, r) in recipes.iter().enumerate() {
                // Palettes follow the core candidates: of the two palettes, only the one with
                // the better core candidate's zero handling is estimated. On the 40 files the
                // two palettes always ranked like the two cores (PrecipRate's 6 chunks,
                // RATE-rmi, THETA-levitus, fice); skipping the other one saved THETA-levitus
                // 1.59G -> 1.23G instructions, fice 1.55G -> 1.28G, outputs unchanged.
                if let (Recipe::Palette { zeros, .. }, Some((_, core_zeros)), true) =
                    (r, best_core, both_palettes)
                {
                    if *zeros != core_zeros {
                        continue;
                    }
                }
                let e = r
                    .build(
                        &sub,
                        &sub_base,
                        sub_zero.as_deref(),
                        Some(&palette_ords),
                        sub_dims,
                        None,
                    )
                    .map_or(f64::INFINITY, |c| {
                        estimate::<T>(
                            &c,
                            &sub,
                            sub_dims,
                            dims.len(),
                            sub_plan,
                            version,
                            &mut sub_memo,
                        )
                    });
                if let Recipe::Core { zeros } = r {
                    if best_core.is_none_or(|(b, _)| e < b) {
                        best_core = Some((e, *zeros));
                    }
                }
                // A later candidate must win by `ESTIMATE_MARGIN`: with fewer fit samples
                // (`ESTIMATE_FIT_SAMPLES`) PrecipRate's first chunk, a 0.04% tie between the core
                // and the palette candidate with zeros as exceptions, went to the palette,
                // which encodes 171 bytes larger. No other choice on the 40 files is that close
                // (next: 0.30%), so the margin changes no choice made with 2^17 samples.
                if e < best.0 * (1.0 - ESTIMATE_MARGIN) {
                    best = (e, k);
                }
            }
            // The core candidate (always buildable) stands in if the chosen one cannot be
            // built on the whole block (a grid or palette that held on the sample only).
            if best.1 == 0 {
                vec![0]
            } else {
                vec![best.1, 0]
            }
        }
        None => (0..recipes.len()).collect(),
    };
    let mut memo = FitMemo::default();
    let mut best: Option<Vec<Section>> = None;
    // Unsampled: the smaller of the two core candidates' full sizes, and its zero handling.
    let mut best_core: Option<(usize, bool)> = None;
    for k in chosen {
        // Sampled: the first candidate that builds is the one; unsampled: the smallest.
        if sample.is_some() && best.is_some() {
            break;
        }
        // Unsampled blocks too encode only the palette with the better core candidate's zero
        // handling (the rule of the estimates above). Skipped on the 40 files: the losing
        // palette of FR-LAND, HGT-isabel and QCLOUD (never the smallest encoding); compress
        // CPU (median of 9) FR-LAND 39.5 -> 33.4 ms, HGT-isabel 38.6 -> 29.0, QCLOUD 28.9 ->
        // 22.2; all 80 outputs byte-identical.
        if let (Recipe::Palette { zeros, .. }, Some((_, core_zeros)), true) =
            (&recipes[k], best_core, both_palettes)
        {
            if *zeros != core_zeros {
                continue;
            }
        }
        let Some(c) = build(&recipes[k]) else {
            continue;
        };
        let secs = encode_integ::<T>(&c, values, dims, plan, version, &mut memo, true);
        drop(c);
        if let Recipe::Core { zeros } = recipes[k] {
            let size = total_len(&secs);
            if best_core.is_none_or(|(b, _)| size < b) {
                best_core = Some((size, zeros));
            }
        }
        if best
            .as_ref()
            .is_none_or(|b| total_len(&secs) < total_len(b))
        {
            best = Some(secs);
        }
    }
    best.ok_or_else(|| FormatError::InvalidArgument("causal: no candidate".into()))
}

/// Decodes the values of one block with the dense or the branchy range decoder.
fn run_dec<T: Float, D: BinaryDecoder>(
    rc: D,
    raw: &[u8],
    hdr: &Header,
    dims: BlockDims,
    planes: &mut Planes<T>,
) -> Result<()> {
    let mut io = Dec {
        rc,
        raw: BitReader::new(raw),
    };
    run::<T, _>(&mut io, hdr, dims, None, planes);
    io.rc.finish()?;
    io.raw.finish()
}

/// Decodes one block.
pub fn decode<T: Float>(sections: &[Section], dims: BlockDims) -> Result<Vec<T>> {
    let hdr = Header::parse::<T>(expect_section(sections, 0, KIND_HEADER)?, dims)?;
    let rc = expect_section(sections, 1, KIND_RC)?;
    let raw = expect_section(sections, 2, KIND_RAW)?;
    let n = dims.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    // Every value costs at least a fraction of a bit; a stream far too short for `n` values is
    // corrupt, and refusing it early bounds the allocation below by the input size.
    if (n as u64) > (rc.len() as u64 + raw.len() as u64 + 64) * 8 * 4096 {
        return Err(corrupt!(
            "causal stream of {} bytes cannot hold {n} values",
            rc.len()
        ));
    }
    let mut planes = Planes {
        values: Vec::with_capacity(n),
        bad_index: false,
    };
    if hdr.version >= 6 {
        run_dec(WideDecoder::new(rc)?, raw, &hdr, dims, &mut planes)?;
    } else if rc.len() * 8 >= n * DENSE_BITS_PER_VALUE {
        // Dense streams (a renormalisation every few values, at unpredictable times) decode
        // faster without the renormalisation branch; skewed ones (mostly zeros) with it.
        let rc = DenseRangeDecoder(RangeDecoder::new(rc)?);
        run_dec(rc, raw, &hdr, dims, &mut planes)?;
    } else {
        run_dec(RangeDecoder::new(rc)?, raw, &hdr, dims, &mut planes)?;
    }
    if planes.bad_index {
        return Err(corrupt!("causal: palette index out of range"));
    }
    if planes.values.len() != n {
        return Err(corrupt!("causal: decoded planes are inconsistent"));
    }
    Ok(planes.values)
}

/// Describes one chunk.
pub fn describe(sections: &[Section], dims: BlockDims, dtype: DType) -> Result<RouteInfo> {
    let data = expect_section(sections, 0, KIND_HEADER)?;
    let hdr = match dtype {
        DType::F32 => Header::parse::<f32>(data, dims)?,
        DType::F64 => Header::parse::<f64>(data, dims)?,
    };
    let mut notes = vec![format!(
        "causal predictor {:?} (slice lag {}): in-slice weights {:?}",
        hdr.stencil, hdr.lag, hdr.w_in
    )];
    if !hdr.w_full.is_empty() {
        notes.push(format!("with previous slice: {:?}", hdr.w_full));
    }
    if hdr.has_exceptions {
        notes.push(format!("{} distinct exception patterns", hdr.dict.len()));
    }
    if hdr.has_fixes {
        notes.push("grid ulp fixes present".into());
    }
    if hdr.runs {
        notes.push(format!(
            "run groups: each group of {RUN_GROUP} points in a row may repeat the point before it"
        ));
    }
    if hdr.n_palette > 0 {
        notes.push(format!(
            "palette of {} distinct values (coded by index)",
            hdr.n_palette
        ));
    }
    if let (Some(first), Some(last)) = (hdr.slice_grids.first(), hdr.slice_grids.last()) {
        notes.push(format!(
            "one grid per slice ({} slices; first {}, last {})",
            hdr.slice_grids.len(),
            first.describe(),
            last.describe()
        ));
    }
    Ok(RouteInfo {
        integerisation: hdr.kind.describe(),
        slices: Vec::new(),
        notes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The bucket index finds what a binary search over the whole palette finds, for
        /// even, clustered and repeated values and for queries outside, on and between them.
        #[test]
        fn palette_index_matches_binary_search(
            mut vals in prop::collection::vec(
                prop_oneof![-1e6f64..1e6, -1.0f64..1.0, Just(0.0), Just(-0.0), Just(1e300)],
                1..300,
            ),
            queries in prop::collection::vec(
                prop_oneof![
                    -2e6f64..2e6,
                    -1.0f64..1.0,
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(f64::NEG_INFINITY),
                    Just(-0.0),
                ],
                1..100,
            ),
        ) {
            vals.sort_by(f64::total_cmp);
            let index = PaletteIndex::new(vals.clone());
            let on_palette = vals.iter().copied();
            for x in queries.iter().copied().chain(on_palette) {
                prop_assert_eq!(index.lower_bound(x), vals.partition_point(|&v| v < x), "x = {}", x);
            }
        }

        /// The key index finds what a binary search over all the keys finds, for spread,
        /// clustered and extreme keys and for queries outside, on and between them.
        #[test]
        fn ord_index_matches_binary_search(
            mut keys in prop::collection::vec(
                prop_oneof![any::<u64>(), 0u64..1000, (1u64 << 40)..(1u64 << 40) + 50, Just(u64::MAX), Just(0)],
                0..300,
            ),
            queries in prop::collection::vec(
                prop_oneof![any::<u64>(), 0u64..1000, (1u64 << 40)..(1u64 << 40) + 50, Just(u64::MAX)],
                1..100,
            ),
        ) {
            keys.sort_unstable();
            keys.dedup();
            let index = OrdIndex::new(&keys);
            for k in queries.iter().copied().chain(keys.iter().copied()) {
                prop_assert_eq!(index.find(k), keys.binary_search(&k).ok(), "k = {}", k);
            }
        }

        /// The two-part distinct sort gives the sorted distinct valid keys of the whole block,
        /// or nothing exactly when they are more than `n / 2 + 1`, wherever the two parts
        /// split and however the values repeat (runs, keys in both parts, exceptions).
        #[test]
        fn distinct_ords_matches_sort_and_dedup(
            picks in prop::collection::vec((0usize..40, any::<bool>(), 0u8..4), 0..400),
            wide in any::<bool>(),
        ) {
            let palette: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.25 - 3.0).collect();
            let values: Vec<f64> = picks
                .iter()
                .map(|&(i, _, rep)| if rep == 0 { palette[i] * 1e3 } else { palette[i] })
                .collect();
            let mask: Vec<bool> = picks.iter().map(|&(_, e, _)| e).collect();
            let check = |got: Vec<u64>, mut want: Vec<u64>| {
                want.sort_unstable();
                want.dedup();
                if want.len() > values.len() / 2 + 1 {
                    want.clear();
                }
                prop_assert_eq!(got, want);
                Ok(())
            };
            let valid = || values.iter().zip(&mask).filter(|(_, &e)| !e).map(|(v, _)| *v);
            if wide {
                check(distinct_ords(&values, &mask), valid().map(|v| v.to_ordered()).collect())?;
            } else {
                let narrow: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                let want = valid().map(|v| (v as f32).to_ordered()).collect();
                check(distinct_ords(&narrow, &mask), want)?;
            }
        }

        /// A palette candidate without the `skip`-th key is the candidate of the key list
        /// without it: the same indices, palette and exceptions.
        #[test]
        fn palette_candidate_skips_a_key(
            picks in prop::collection::vec(0usize..12, 1..200),
            skip in 0usize..12,
        ) {
            let keys: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
            let values: Vec<f32> = picks.iter().map(|&i| keys[i]).collect();
            // The skipped key's values are masked, as +0.0 is under the zero mask.
            let mask: Vec<bool> = picks.iter().map(|&i| i == skip).collect();
            let ords: Vec<u64> = keys.iter().map(|v| v.to_ordered()).collect();
            let mut without = ords.clone();
            without.remove(skip);
            let a = palette_candidate(&values, &mask, &ords, Some(skip));
            let b = palette_candidate(&values, &mask, &without, None);
            let ints = |c: &Candidate<'_>| {
                (0..c.integ.len()).map(|i| c.integ.ints.get(&values, &mask, i)).collect::<Vec<_>>()
            };
            prop_assert_eq!(ints(&a), ints(&b));
            let keys = |c: &Candidate<'_>| c.palette.map(|p| {
                let by_index: Vec<u64> = (0..p.len()).filter_map(|i| p.get(i)).collect();
                assert_eq!(by_index, p.iter().collect::<Vec<_>>());
                by_index
            });
            prop_assert_eq!(keys(&a), keys(&b));
            prop_assert_eq!(&a.integ.is_exception, &b.integ.is_exception);
        }

        /// The ordered integers recomputed from the values ([`Ints::Ordered`]) are the
        /// stored plane's, point by point, for `f32` and `f64` bit patterns of every kind.
        #[test]
        fn unstored_ordered_ints_match_the_plane(
            bits in prop::collection::vec(any::<u64>(), 1..300),
            masked in prop::collection::vec(any::<bool>(), 300),
        ) {
            fn check<T: Float>(values: &[T], mask: &[bool]) -> Result<(), TestCaseError> {
                let plane = melloc_core::integer::integerize_planes_on(values, mask, None);
                let stored = match plane.ints {
                    IntPlane::Narrow(v) => Ints::Narrow(v),
                    IntPlane::Wide(v) => Ints::Wide(v),
                };
                for i in 0..values.len() {
                    prop_assert_eq!(
                        Ints::Ordered.get(values, mask, i),
                        stored.get(values, mask, i)
                    );
                }
                Ok(())
            }
            let mask = &masked[..bits.len()];
            let f64s: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
            check(&f64s, mask)?;
            let f32s: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b as u32)).collect();
            check(&f32s, mask)?;
        }

        /// The fit read from the values ([`fit_values`], shared through [`FitMemo`]) is bit
        /// for bit the fit read from the integers of the ordered-bits candidate and of the
        /// palette candidate, with and without exact zeros as exceptions, in 2-D and 3-D.
        #[test]
        fn value_domain_fit_is_the_integer_domain_fit(
            vals in prop::collection::vec(
                prop_oneof![
                    4 => -100.0f32..100.0,
                    1 => Just(0.0f32),
                    1 => Just(-0.0f32),
                    1 => Just(f32::NAN),
                    1 => Just(1e-40f32),
                    1 => (0u32..8).prop_map(|k| k as f32 * 0.25),
                ],
                4 * 6 * 7,
            ),
            three_d in any::<bool>(),
            coarse in any::<bool>(),
            lag in 1usize..3,
        ) {
            // Coarse values are few: a palette.
            let vals: Vec<f32> = if coarse {
                vals.iter().map(|v| (v * 0.05).round() * 20.0).collect()
            } else {
                vals
            };
            let dims = if three_d {
                BlockDims::new(4, 6, 7)
            } else {
                BlockDims::new(1, 24, 7)
            };
            let plan = FitPlan { lag, samples: FIT_SAMPLES };
            check_value_domain_fit(&vals, dims, plan, coarse)?;
            // `f64`: wide integer planes (and other values: not the `f32` ones widened).
            let wide: Vec<f64> = vals.iter().map(|&v| f64::from(v) * (1.0 + 1e-12)).collect();
            check_value_domain_fit(&wide, dims, plan, coarse)?;
        }

        /// The encoder's row of interior predictions is bit for bit the decoder's point by
        /// point ones, for 19, 10 and other tap counts and rows of any length.
        #[test]
        fn interior_row_matches_interior(
            vals in prop::collection::vec(
                prop_oneof![-1e6f64..1e6, -1.0f64..1.0, Just(0.0), Just(-0.0), Just(3e38)],
                300..400,
            ),
            w in prop::collection::vec(-2.0f64..2.0, MAX_TAPS),
            offs in prop::collection::vec(1usize..100, MAX_TAPS),
            n_taps in prop_oneof![Just(N_TAPS_3D), Just(N_TAPS_2D), 2usize..MAX_TAPS],
            len in 0usize..40,
        ) {
            let (mut back, mut wk) = ([0usize; MAX_TAPS], [0.0f64; MAX_TAPS]);
            back.copy_from_slice(&offs);
            wk.copy_from_slice(&w);
            let c0 = 1.0 - wk[1..n_taps].iter().sum::<f64>();
            let start = 120;
            let mut out = vec![f64::NAN; len];
            prop_assert!(interior_row(&vals, start, &back, &wk, c0, n_taps, &mut out));
            for (j, &got) in out.iter().enumerate() {
                let want = match n_taps {
                    N_TAPS_3D => interior::<f64, N_TAPS_3D>(&vals, start + j, &back, &wk, c0),
                    N_TAPS_2D => interior::<f64, N_TAPS_2D>(&vals, start + j, &back, &wk, c0),
                    _ => {
                        let mut x = [0.0f64; MAX_TAPS];
                        for (k, xk) in x.iter_mut().enumerate().take(n_taps) {
                            *xk = vals[start + j - back[k]];
                        }
                        combine(&x[..n_taps], &wk[1..n_taps], c0)
                    }
                };
                prop_assert_eq!(got.to_bits(), want.to_bits(), "j = {}", j);
            }
            // A run of values outside the ring is refused, not read.
            prop_assert!(!interior_row(&vals, vals.len() + 100, &back, &wk, c0, n_taps, &mut [0.0; 8]));
            prop_assert!(!interior_row(&vals, 0, &back, &wk, c0, n_taps, &mut [0.0; 8]));
        }
    }

    /// The checks of `value_domain_fit_is_the_integer_domain_fit` on one block.
    fn check_value_domain_fit<T: Float>(
        vals: &[T],
        dims: BlockDims,
        plan: FitPlan,
        coarse: bool,
    ) -> Result<(), TestCaseError> {
        let base = detect_exceptions(vals);
        let zeros: Vec<bool> = vals
            .iter()
            .zip(&base)
            .map(|(v, &e)| e || v.to_bits_u64() == 0)
            .collect();
        let ords = distinct_ords(vals, &base);
        let zero_key = ords.binary_search(&T::from_bits_u64(0).to_ordered()).ok();
        let same = |a: &Fitted, b: &Fitted| {
            let bits = |w: &[f64]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            a.kind == b.kind
                && bits(&a.w_in) == bits(&b.w_in)
                && bits(&a.w_full) == bits(&b.w_full)
                && a.lo.to_bits() == b.lo.to_bits()
                && a.hi.to_bits() == b.hi.to_bits()
        };
        for (mask, skip) in [(&base, None), (&zeros, zero_key)] {
            let by_values = fit_values(vals, mask, dims, plan);
            // The ordered integers as a stored plane (`Source::ordered` keeps none); no grid
            // detection, since coarse values can lie on one.
            let plane = melloc_core::integer::integerize_planes_on(vals, mask, None);
            prop_assert_eq!(plane.kind, Integerisation::Ordered);
            let core = Source {
                kind: plane.kind,
                ints: match plane.ints {
                    IntPlane::Narrow(v) => Ints::Narrow(v),
                    IntPlane::Wide(v) => Ints::Wide(v),
                },
                fixes: Ints::Narrow(Vec::new()),
                is_exception: Cow::Borrowed(mask),
            };
            let domain = Domain::Int(core.kind);
            let by_ints = fit::<T>(&core, vals, &domain, dims, plan);
            let by_unstored = fit::<T>(&Source::ordered(mask), vals, &domain, dims, plan);
            prop_assert!(
                same(&by_values, &by_unstored),
                "{by_values:?} vs {by_unstored:?}"
            );
            prop_assert!(same(&by_values, &by_ints), "{by_values:?} vs {by_ints:?}");
            prop_assert!(!coarse || !ords.is_empty());
            if !ords.is_empty() {
                let c = palette_candidate(vals, mask, &ords, skip);
                let pal: Vec<u64> = c.palette.iter().flat_map(|p| p.iter()).collect();
                let domain = Domain::Palette(PaletteIndex::new(
                    pal.iter().map(|&o| T::from_ordered(o).to_f64()).collect(),
                ));
                let by_palette = fit::<T>(&c.integ, vals, &domain, dims, plan);
                prop_assert!(
                    same(&by_values, &by_palette),
                    "{by_values:?} vs {by_palette:?}"
                );
            }
        }
        Ok(())
    }

    fn roundtrip<T: Float>(values: &[T], dims: BlockDims) -> usize {
        let secs = encode(values, dims, &RouteConfig::default()).unwrap();
        let back: Vec<T> = decode(&secs, dims).unwrap();
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits_u64(), b.to_bits_u64());
        }
        describe(&secs, dims, T::DTYPE).unwrap();
        secs.iter().map(|s| s.data.len()).sum()
    }

    fn smooth(n_s: usize, n_r: usize, n_c: usize) -> Vec<f32> {
        let mut v = Vec::new();
        for s in 0..n_s {
            for i in 0..n_r {
                for j in 0..n_c {
                    v.push(
                        (280.0
                            + 5.0 * ((i as f64) * 0.1).sin()
                            + 3.0 * ((j as f64) * 0.07).cos()
                            + s as f64 * 0.3) as f32,
                    );
                }
            }
        }
        v
    }

    #[test]
    fn smooth_field_compresses() {
        let dims = BlockDims::new(4, 40, 50);
        let v = smooth(4, 40, 50);
        let size = roundtrip(&v, dims);
        assert!(size * 3 < v.len() * 4, "{size}");
    }

    #[test]
    fn special_shapes_and_values() {
        roundtrip::<f32>(&[], BlockDims::new(0, 0, 0));
        roundtrip(&[1.5f32], BlockDims::new(1, 1, 1));
        roundtrip(&[7.0f64; 1000], BlockDims::new(1, 1, 1000));
        roundtrip(&[7.0f64; 1000], BlockDims::new(1, 1000, 1));
        roundtrip(&[f32::NAN; 300], BlockDims::new(3, 10, 10));
        let mut v = smooth(2, 30, 30);
        for k in (0..v.len()).step_by(7) {
            v[k] = 9.96921e36;
        }
        v[5] = f32::NAN;
        v[6] = f32::INFINITY;
        v[7] = -0.0;
        v[8] = f32::from_bits(1);
        roundtrip(&v, BlockDims::new(2, 30, 30));
        // Decimal-quantised values (a grid).
        let g: Vec<f64> = (0..2000).map(|k| ((k * 37 % 101) as f64) * 0.01).collect();
        roundtrip(&g, BlockDims::new(2, 20, 50));
    }

    /// Decodes every truncation and every `bit_step`-th single-bit flip of every section: each
    /// may fail, none may panic.
    fn decode_every_corruption(secs: &[Section], dims: BlockDims, bit_step: usize) {
        for si in 0..secs.len() {
            let len = secs[si].data.len();
            for cut in 0..len {
                let mut s2 = secs.to_vec();
                s2[si].data.truncate(cut);
                let _ = decode::<f32>(&s2, dims);
            }
            for bit in (0..len * 8).step_by(bit_step) {
                let mut s2 = secs.to_vec();
                s2[si].data[bit / 8] ^= 1 << (bit % 8);
                let _ = decode::<f32>(&s2, dims);
            }
        }
    }

    #[test]
    fn corrupt_sections_never_panic() {
        let dims = BlockDims::new(2, 20, 30);
        let mut v = smooth(2, 20, 30);
        v[3] = f32::NAN;
        let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
        decode_every_corruption(&secs, dims, 3);
        // A truncated range-coded stream is detected.
        let mut s2 = secs.clone();
        let l = s2[1].data.len();
        s2[1].data.truncate(l / 2);
        assert!(decode::<f32>(&s2, dims).is_err());
    }

    /// Blocks without exceptions decode with the `f32` prediction ring: corrupt streams of them
    /// never panic either (ordered bits, a grid, a palette).
    #[test]
    fn corrupt_narrow_ring_sections_never_panic() {
        let dims = BlockDims::new(2, 20, 30);
        let base = smooth(2, 20, 30);
        // Across binades (near 0): no grid holds it, ordered bits.
        let ordered: Vec<f32> = base.iter().map(|&x| (x - 280.5) * 1.37).collect();
        let grid: Vec<f32> = base
            .iter()
            .map(|&x| ((f64::from(x) * 100.0).round() / 100.0) as f32)
            .collect();
        let palette: Vec<f32> = base
            .iter()
            .map(|&x| [1.5f32, -2.25, 0.5, -1.75, 7.0, 3.125][(x as usize) % 6])
            .collect();
        for (k, v) in [ordered, grid, palette].into_iter().enumerate() {
            let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
            let hdr = Header::parse::<f32>(&secs[0].data, dims).unwrap();
            assert!(narrow_ring_is_exact::<f32>(&hdr), "{hdr:?}");
            let domain = match (hdr.kind, hdr.n_palette) {
                (Integerisation::Ordered, 0) => 0,
                (Integerisation::Grid { .. }, _) => 1,
                _ => 2,
            };
            assert_eq!(domain, k, "{hdr:?}");
            assert!(decode::<f32>(&secs, dims)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .eq(v.iter().map(|x| x.to_bits())));
            decode_every_corruption(&secs, dims, 3);
        }
    }

    /// GRIB-style packing: each slice `offset_s + k * 2^-e_s` with 16-bit `k`.
    fn packed_per_slice(n_s: usize, n_r: usize, n_c: usize) -> Vec<f32> {
        let mut v = Vec::new();
        for s in 0..n_s {
            let offset = 180.0 + 7.3 * s as f64;
            let step = 1.0 / f64::from(1u32 << (8 + s % 3));
            for i in 0..n_r {
                for j in 0..n_c {
                    let x = 20.0 * ((i as f64) * 0.13).sin() * ((j as f64) * 0.05).cos()
                        + 30.0
                        + s as f64;
                    let k = ((x / step).round() as i64).clamp(0, 65535);
                    v.push((offset + k as f64 * step) as f32);
                }
            }
        }
        v
    }

    #[test]
    fn per_slice_grids_are_used_and_exact() {
        let dims = BlockDims::new(4, 40, 60);
        let v = packed_per_slice(4, 40, 60);
        let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
        let info = describe(&secs, dims, DType::F32).unwrap();
        assert!(
            info.notes.iter().any(|n| n.contains("one grid per slice")),
            "{:?}",
            info.notes
        );
        roundtrip(&v, dims);
        // With holes (exceptions) in two slices.
        let mut w = v.clone();
        w[5] = f32::NAN;
        w[3000] = f32::NAN;
        roundtrip(&w, dims);
    }

    #[test]
    fn corrupt_slice_grid_sections_never_panic() {
        let dims = BlockDims::new(3, 24, 40);
        let mut v = packed_per_slice(3, 24, 40);
        v[7] = f32::NAN;
        let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
        let hdr = Header::parse::<f32>(&secs[0].data, dims).unwrap();
        assert_eq!(hdr.slice_grids.len(), 3);
        decode_every_corruption(&secs, dims, 1);
        // The header's slice count must match the block.
        assert!(Header::parse::<f32>(&secs[0].data, BlockDims::new(2, 24, 60)).is_err());
    }

    /// A radar-like block: rain cells on a 0.1 grid in a field of exact zeros, a fill value
    /// outside the radar's range, NaN, and groups that repeat W but for their last point.
    fn radar_like(n_s: usize, n_r: usize, n_c: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(n_s * n_r * n_c);
        for s in 0..n_s {
            for i in 0..n_r {
                for j in 0..n_c {
                    let (x, y) = (j as f32 - 40.0, i as f32 - 25.0 - s as f32);
                    let r2 = x * x + y * y;
                    v.push(if j > 100 {
                        -999.0 // outside the radar's range
                    } else if r2 < 200.0 {
                        ((200.0 - r2) * 0.05).round() * 0.1 // on the 0.1 grid, like the zeros
                    } else if j % 16 == 15 && i % 3 == 0 {
                        // A group of zeros broken at its last point (by NaN in alternate rows).
                        if i % 2 == 0 {
                            0.1
                        } else {
                            f32::NAN
                        }
                    } else {
                        0.0
                    });
                }
            }
        }
        v
    }

    #[test]
    fn run_groups_are_used_and_exact() {
        let dims = BlockDims::new(2, 50, 130);
        let v = radar_like(2, 50, 130);
        let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
        let hdr = Header::parse::<f32>(&secs[0].data, dims).unwrap();
        assert!(hdr.runs, "a field of zero and fill runs codes run groups");
        let back = decode::<f32>(&secs, dims).unwrap();
        assert!(back
            .iter()
            .map(|x| x.to_bits())
            .eq(v.iter().map(|x| x.to_bits())));
        // A smooth field has no repeats: no run decisions are coded.
        let smooth_secs = encode(
            &smooth(2, 20, 40),
            BlockDims::new(2, 20, 40),
            &RouteConfig::default(),
        )
        .unwrap();
        let hdr = Header::parse::<f32>(&smooth_secs[0].data, BlockDims::new(2, 20, 40)).unwrap();
        assert!(!hdr.runs);
    }

    #[test]
    fn corrupt_run_sections_never_panic() {
        let dims = BlockDims::new(1, 30, 120);
        let v = radar_like(1, 30, 120);
        let secs = encode(&v, dims, &RouteConfig::default()).unwrap();
        assert!(Header::parse::<f32>(&secs[0].data, dims).unwrap().runs);
        decode_every_corruption(&secs, dims, 5);
        // The runs flag is an error in older header versions.
        let mut s2 = secs.clone();
        s2[0].data[0] = 4;
        assert!(decode::<f32>(&s2, dims).is_err());
    }

    #[test]
    fn repeated_slices_use_copy_mode() {
        // Slices 3..6 repeat slices 0..3 exactly (a climatology's deep levels), but for a few
        // points; the copy bit must make them nearly free.
        let dims = BlockDims::new(6, 30, 40);
        let mut v = smooth(3, 30, 40);
        for i in 0..3 * 1200 {
            let x = v[i];
            v.push(if i % 97 == 0 { x + 1.0 } else { x });
        }
        let size = roundtrip(&v, dims);
        let half = roundtrip(&v[..3600], BlockDims::new(3, 30, 40));
        assert!(size < half + half / 5, "{size} vs {half}");
    }

    #[test]
    fn ring_planes_wrap_with_long_lags_and_exceptions() {
        // 3 distinct slices repeated with noise over 14 slices: a lag of 3, so the prediction
        // ring holds 4 slices and wraps 3 times; fill values and NaN exercise the mask ring.
        let (n_s, n_r, n_c) = (14, 12, 17);
        let base = smooth(3, n_r, n_c);
        let mut v = Vec::with_capacity(n_s * n_r * n_c);
        for s in 0..n_s {
            for p in 0..n_r * n_c {
                let b = base[(s % 3) * n_r * n_c + p];
                let x = [b, 1000.0 - b, 5.0 * b][s % 3] + (s / 3) as f32 * 0.25;
                v.push(match (s * 31 + p * 7) % 53 {
                    0 => 9.96921e36,
                    1 => f32::from_bits(0x7fc0_0001),
                    _ => x,
                });
            }
        }
        let dims = BlockDims::new(n_s, n_r, n_c);
        let hash = |secs: &[Section]| {
            let mut all = Vec::new();
            for sec in secs {
                all.extend_from_slice(&sec.data);
            }
            (xxhash_rust::xxh3::xxh3_64(&all), all.len())
        };
        // Encoder and decoder share `run`, so a roundtrip alone would not notice a ring that
        // reads the wrong slice consistently on both sides. These are the bytes the flat-plane
        // implementation (commit 65fa01e, before the rings) wrote for this input, in header
        // version 4.
        let v4 = encode_as(&v, dims, &RouteConfig::default(), 4).unwrap();
        let hdr = Header::parse::<f32>(&v4[0].data, dims).unwrap();
        assert_eq!(hdr.lag, 3, "the test needs a lag that makes the ring wrap");
        assert_eq!(hash(&v4), (0x9bce_9e1e_94a7_f81b, 2642));
        let back = decode::<f32>(&v4, dims).unwrap();
        assert!(back
            .iter()
            .map(|x| x.to_bits())
            .eq(v.iter().map(|x| x.to_bits())));
        // Version 5 codes the same residuals (predictions do not depend on the version)
        // without adaptive mantissa bits: these bytes were recorded when it was introduced,
        // with the version-4 bytes above unchanged.
        let v5 = encode_as(&v, dims, &RouteConfig::default(), 5).unwrap();
        assert_eq!(hash(&v5), (0x03ff_41f1_7a8e_29bf, 2649));
        let back = decode::<f32>(&v5, dims).unwrap();
        assert!(back
            .iter()
            .map(|x| x.to_bits())
            .eq(v.iter().map(|x| x.to_bits())));
        // Version 6 (the wide range coder, tree-coded lengths): recorded when it was
        // introduced, with the version-4 and version-5 bytes above unchanged.
        let v6 = encode(&v, dims, &RouteConfig::default()).unwrap();
        assert_eq!(hash(&v6), (0x0ab2_4228_bbb9_8505, 2725));
        roundtrip(&v, dims);
    }

    #[test]
    fn sampled_candidate_choice_roundtrips() {
        // Large enough to be sampled; zeros and few distinct values make 4 candidates.
        let dims = BlockDims::new(3, 130, 700);
        assert!(RowSample::for_dims(dims).is_some());
        let v: Vec<f32> = (0..dims.len())
            .map(|k| {
                let (i, j) = ((k / 700) % 130, k % 700);
                if (i * 7 + j) % 5 < 2 {
                    0.0
                } else {
                    ((i + j / 3) % 40) as f32 * 0.25
                }
            })
            .collect();
        let size = roundtrip(&v, dims);
        assert!(size * 8 < v.len() * 4, "{size}");
    }

    fn dims_strategy() -> impl Strategy<Value = BlockDims> {
        (1usize..4, 1usize..12, 1usize..12).prop_map(|(s, r, c)| BlockDims::new(s, r, c))
    }

    proptest! {
        #[test]
        fn prop_roundtrip_f32_bits(dims in dims_strategy(), seed in proptest::collection::vec(any::<u32>(), 432)) {
            let v: Vec<f32> = seed[..dims.len()].iter().map(|&b| f32::from_bits(b)).collect();
            roundtrip(&v, dims);
        }

        #[test]
        fn prop_roundtrip_f64_bits(dims in dims_strategy(), seed in proptest::collection::vec(any::<u64>(), 432)) {
            let v: Vec<f64> = seed[..dims.len()].iter().map(|&b| f64::from_bits(b)).collect();
            roundtrip(&v, dims);
        }

        #[test]
        fn prop_roundtrip_special_mix(dims in dims_strategy(), picks in proptest::collection::vec(0usize..8, 432)) {
            let pool = [0.0f32, -0.0, f32::NAN, f32::from_bits(0x7fc0_1234), f32::INFINITY,
                        f32::NEG_INFINITY, f32::from_bits(3), 1.0e20];
            let v: Vec<f32> = picks[..dims.len()].iter().map(|&p| pool[p]).collect();
            roundtrip(&v, dims);
        }

        /// Rows long enough for run groups, of runs of exceptions with different bits (two
        /// NaN payloads, fill values) next to each other: a group repeats W only when its
        /// exceptions have W's very bits.
        #[test]
        fn prop_roundtrip_runs_of_exceptions(
            n_rows in 1usize..4,
            n_cols in 17usize..70,
            runs in proptest::collection::vec((0usize..6, 1usize..40), 1..30),
        ) {
            let pool = [0.0f32, f32::NAN, f32::from_bits(0x7fc0_1234), -999.0, 1.0e20, 2.5];
            let n = n_rows * n_cols;
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                for &(p, len) in &runs {
                    v.extend(std::iter::repeat_n(pool[p], len.min(n - v.len())));
                }
            }
            roundtrip(&v, BlockDims::new(1, n_rows, n_cols));
        }

        #[test]
        fn prop_roundtrip_smooth_with_holes(dims in dims_strategy(), holes in proptest::collection::vec(any::<bool>(), 432)) {
            let v: Vec<f64> = (0..dims.len())
                .map(|k| if holes[k] { -9999000.0 } else { 100.0 + (k as f64 * 0.37).sin() })
                .collect();
            roundtrip(&v, dims);
        }
    }
}
