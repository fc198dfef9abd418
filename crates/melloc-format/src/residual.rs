//! The signed-integer residual model shared by the causal and paper routes.
//!
//! A value `v` is coded as its bit length `n` (0 for `v == 0`) around the length a context
//! expects, then its sign under a sign context, then the first [`MANT_ADAPTIVE_BITS`] bits below
//! the leading one with adaptive probabilities (none in causal route headers of version 5:
//! [`code_signed_as`]), then the remaining low bits raw. Both routes code their integer
//! streams with exactly this model (their module docs reference it as part of their normative
//! section layouts), so it lives here once.
//!
//! Rejected alternatives, measured on the 40 shared fields (default route, one thread):
//! - The length as one 8-ary adaptive symbol (`n - e` in -3..=3 or an escape) and the sign
//!   with the two mantissa bits as a second one, decoded without branches (a multi-symbol
//!   range coder, every bound an independent multiply): 2 decisions instead of 5-8 per value.
//!   Decoding TREFHT and TS took 10% less CPU, z-eraint 8% more and PrecipRate-mrms 3% more
//!   (instructions: TREFHT 706M -> 687M, z-eraint 379M -> 467M), and the output grew 0.65%
//!   (6.229 -> 6.188; TS-lens6h +9.8%). Decoding is bound by instruction throughput, not by
//!   the serial chain of decisions.
//! - The sign as a raw bit: 6.229 -> 6.176, up to +3.4% on a file (t-echam5, V-foam, QCLOUD):
//!   the neighbours' signs predict it.

use crate::entropy::PROB_INIT;

/// Mantissa bits below the leading one that get adaptive probabilities (the rest are raw).
pub(crate) const MANT_ADAPTIVE_BITS: u32 = 2;
/// Length contexts: twice a (weighted) mean bit length of the causal neighbours, 0..=128.
pub(crate) const N_CTX: usize = 129;
/// Adaptive unary steps of the length distance before the escape tree.
pub(crate) const LEN_STEPS: usize = 6;

/// One interface over encoder, decoder and size estimators, so a modelling loop is written once
/// and the decoder mirrors the encoder by construction. The encoder codes and returns the value
/// it is given; the decoder ignores it and returns what it decodes.
pub(crate) trait BitIo {
    /// One adaptive binary decision with probability `p`.
    fn bit(&mut self, p: &mut u16, bit: bool) -> bool;
    /// `n_bits` decisions down a binary tree of probabilities (node 1 is the root), MSB first.
    fn tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32) -> u32 {
        let mut node = 1usize;
        for k in (0..n_bits).rev() {
            let want = (value >> k) & 1 != 0;
            let bit = match probs.get_mut(node) {
                Some(p) => self.bit(p, want),
                None => false,
            };
            node = (node << 1) | usize::from(bit);
        }
        (node as u32) & ((1u32 << n_bits) - 1)
    }
    /// `n_bits` raw (bypass) bits.
    fn raw(&mut self, value: u64, n_bits: u32) -> u64;
}

/// Adaptive probabilities of the residual model.
#[derive(Debug)]
pub(crate) struct LenModels {
    len_eq: Vec<u16>,
    len_up: Vec<u16>,
    len_step: Vec<u16>,
    len_esc: Vec<u16>,
    sign: [u16; 9],
    mant: Vec<u16>,
    /// [`code_len_tree`]: a tree of `TREE_LEAVES` leaves per context, and the escape's tree.
    len_tree: Vec<u16>,
    len_tree_esc: Vec<u16>,
}

impl LenModels {
    pub(crate) fn new() -> Self {
        Self {
            len_eq: vec![PROB_INIT; N_CTX],
            len_up: vec![PROB_INIT; N_CTX],
            len_step: vec![PROB_INIT; N_CTX * 2 * LEN_STEPS],
            len_esc: vec![PROB_INIT; 64],
            sign: [PROB_INIT; 9],
            mant: vec![PROB_INIT; 65 << MANT_ADAPTIVE_BITS],
            len_tree: vec![PROB_INIT; N_CTX * TREE_LEAVES],
            len_tree_esc: vec![PROB_INIT; 128],
        }
    }
}

/// Codes the bit length `n` (0..=64, 0 for a zero value) around the length `e` the context
/// expects: "n == e", then the direction, then the distance in unary (`LEN_STEPS` adaptive
/// steps, then a 6-bit tree). Decisions that have one possible outcome are not coded. A
/// decoded value is always in 0..=64.
///
/// Why not a plain 6-bit tree per context (the first version): ~3 decisions instead of 7 per
/// value for the same model power; a binary decoder pays per decision.
#[inline(always)]
pub(crate) fn code_len<IO: BitIo>(io: &mut IO, m: &mut LenModels, ctx: usize, n: u32) -> u32 {
    let e = (ctx as u32).div_ceil(2).min(64);
    if !io.bit(&mut m.len_eq[ctx], n != e) {
        return e;
    }
    let up = if e == 0 {
        true
    } else if e == 64 {
        false
    } else {
        io.bit(&mut m.len_up[ctx], n > e)
    };
    // Largest possible distance, >= 1; the coded distance is `d + 1`.
    let room = if up { 64 - e } else { e };
    let want = if up {
        n.wrapping_sub(e)
    } else {
        e.wrapping_sub(n)
    }
    .wrapping_sub(1);
    let base = (ctx * 2 + usize::from(up)) * LEN_STEPS;
    let mut d = 0u32;
    loop {
        if d + 1 >= room {
            break;
        }
        if d as usize >= LEN_STEPS {
            let v = io.tree(&mut m.len_esc, 6, want.wrapping_sub(d));
            d = (d + v).min(room - 1);
            break;
        }
        if !io.bit(&mut m.len_step[base + d as usize], want != d) {
            break;
        }
        d += 1;
    }
    if up {
        e + d + 1
    } else {
        e - d - 1
    }
}

/// Leaves of the length tree of [`code_len_tree`]: `n - e` in -7..=7, and an escape.
const TREE_LEAVES: usize = 16;
/// Expected lengths from which [`code_len_tree`] codes the tree (below: [`code_len`]).
const TREE_MIN_LEN: u32 = 4;

/// The length code of causal route header version 6 (format 1.3): where the context expects
/// a length `e >= TREE_MIN_LEN`, the distance `n - e` in -7..=7 is one of 16 leaves of a
/// 4-level tree of adaptive decisions per context (leaf 15: escape, then `n` in a 7-bit tree);
/// shorter expected lengths keep [`code_len`]. A decoded value is always in 0..=64.
///
/// [`code_len`]'s decisions ("n == e", the direction, unary steps) each steer the decoder
/// down a different path: on full-precision fields, where `n` wanders a few bits around `e`,
/// those branches mispredicted about 2 times a value (callgrind's branch simulation on
/// TREFHT). The tree takes the same 4 decisions for every value, so the decoder's control
/// flow does not depend on them. Quantised fields, whose short residuals are mostly `n == e`
/// (one skewed, well-predicted decision), keep the unary code: the tree made decoding z-eraint
/// 7% slower. Measured with the wide coder at adaptation rate 5 (see `WideEncoder`), median
/// CPU of 9 alternating runs against version 5: the unary code alone decoded 2-3% faster;
/// with the tree from `e >= 4`, TREFHT, TS, U-dc and THETA-levitus 10-12% faster, z-eraint and
/// u-eraint unchanged. Ratio on the 40 shared fields (default route): version 5 6.2285 (geomean
/// 4.2135); wide coder with rate 5, unary lengths 6.2424 (4.2255); with the tree from `e >= 4`
/// 6.2398 (4.2230), from `e >= 6` or `8` the same within 0.0004; the tree for every `e` with 8
/// leaves and rate 4, 6.1957 (TS-lens6h +9.5%: its lengths often escape -3..=3); with 16
/// leaves, 6.2382.
#[inline(always)]
pub(crate) fn code_len_tree<IO: BitIo>(io: &mut IO, m: &mut LenModels, ctx: usize, n: u32) -> u32 {
    let e = (ctx as u32).div_ceil(2).min(64);
    if e < TREE_MIN_LEN {
        return code_len(io, m, ctx, n);
    }
    let half = (TREE_LEAVES / 2 - 1) as i32;
    let esc = TREE_LEAVES as u32 - 1;
    let d = n as i32 - e as i32;
    let leaf = if (-half..=half).contains(&d) {
        (d + half) as u32
    } else {
        esc
    };
    let base = ctx.min(N_CTX - 1) * TREE_LEAVES;
    let leaf = io.tree(
        &mut m.len_tree[base..base + TREE_LEAVES],
        TREE_LEAVES.trailing_zeros(),
        leaf,
    );
    if leaf == esc {
        return io.tree(&mut m.len_tree_esc, 7, n).min(64);
    }
    (e as i32 + leaf as i32 - half).clamp(0, 64) as u32
}

/// Codes a signed value under length context `ctx` (< [`N_CTX`]) and sign context `sctx` (< 9);
/// returns it and its context byte (bit length, sign in bit 7).
#[inline(always)]
pub(crate) fn code_signed<IO: BitIo>(
    io: &mut IO,
    m: &mut LenModels,
    ctx: usize,
    sctx: usize,
    v: i64,
) -> (i64, u8) {
    code_signed_as::<IO, MANT_ADAPTIVE_BITS, false>(io, m, ctx, sctx, v)
}

/// [`code_signed`] with `MANT` (`<= MANT_ADAPTIVE_BITS`) adaptive mantissa bits, and the length
/// coded by [`code_len_tree`] when `TREE` (else [`code_len`]).
///
/// `MANT = 0` is the causal route's model since its header version 5 (format 1.2). Measured on
/// the 40 shared fields against 2 bits: the output grew 0.12% (aggregate 6.229 -> 6.221; TS-lens6h
/// +1.6%, W-wrf and urot-pop +0.6%, most files within 0.1%) and decoding took 11-12% less CPU
/// on the full-precision fields (TREFHT 47.6 -> 41.9 ms, TS 44.7 -> 39.7, median of 11), 4-7%
/// less on V-foam, THETA-levitus and PrecipRate. One adaptive bit was ratio-neutral (6.230)
/// but only 4-5% faster. Adaptive bits only for short lengths (`n <= 4` or `n <= 8`) did not
/// help TS-lens: its gain is in long residuals.
#[inline(always)]
pub(crate) fn code_signed_as<IO: BitIo, const MANT: u32, const TREE: bool>(
    io: &mut IO,
    m: &mut LenModels,
    ctx: usize,
    sctx: usize,
    v: i64,
) -> (i64, u8) {
    let mag = v.unsigned_abs();
    let n = if TREE {
        code_len_tree(io, m, ctx, 64 - mag.leading_zeros())
    } else {
        code_len(io, m, ctx, 64 - mag.leading_zeros())
    };
    if n == 0 {
        return (0, 0);
    }
    let neg = io.bit(&mut m.sign[sctx], v < 0);
    let rest = n - 1;
    let a = rest.min(MANT.min(MANT_ADAPTIVE_BITS));
    let low = rest - a;
    let mbase = (n as usize) << MANT_ADAPTIVE_BITS;
    let top = io.tree(
        &mut m.mant[mbase..mbase + (1 << MANT_ADAPTIVE_BITS)],
        a,
        ((mag >> low) & ((1u64 << a) - 1)) as u32,
    );
    let low_mask = if low == 0 { 0 } else { u64::MAX >> (64 - low) };
    let lowbits = io.raw(mag & low_mask, low);
    let mag = (1u64 << rest) | (u64::from(top) << low) | lowbits;
    let v = if neg {
        (mag as i64).wrapping_neg()
    } else {
        mag as i64
    };
    (v, (n as u8) | if neg { 0x80 } else { 0 })
}

/// The context bytes (bit length, sign in bit 7) of the W, N, NW and NE neighbours of point
/// `(i, j)` (flat index `idx`) in a plane of `n_cols` columns; a neighbour outside the plane takes
/// the value of the nearest one present (W, else N, else 0).
#[inline(always)]
pub(crate) fn neighbour_bytes(
    bl: &[u8],
    idx: usize,
    i: usize,
    j: usize,
    n_cols: usize,
) -> (u8, u8, u8, u8) {
    if i > 0 && j > 0 && j + 1 < n_cols {
        (
            bl[idx - 1],
            bl[idx - n_cols],
            bl[idx - n_cols - 1],
            bl[idx - n_cols + 1],
        )
    } else {
        let w = if j > 0 { Some(bl[idx - 1]) } else { None };
        let n = if i > 0 { Some(bl[idx - n_cols]) } else { None };
        let any = w.or(n).unwrap_or(0);
        let nw = if i > 0 && j > 0 {
            bl[idx - n_cols - 1]
        } else {
            any
        };
        let ne = if i > 0 && j + 1 < n_cols {
            bl[idx - n_cols + 1]
        } else {
            any
        };
        (w.unwrap_or(any), n.unwrap_or(any), nw, ne)
    }
}

/// The length context of a point from its neighbours' context bytes: twice the weighted mean
/// bit length (W and N count double), capped at `N_CTX - 1`.
#[inline(always)]
pub(crate) fn length_context(bw: u8, bn: u8, bnw: u8, bne: u8) -> usize {
    let sum = 2 * usize::from(bw & 127)
        + 2 * usize::from(bn & 127)
        + usize::from(bnw & 127)
        + usize::from(bne & 127);
    (sum / 3).min(N_CTX - 1)
}
