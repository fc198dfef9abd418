//! Adaptive binary range coders (LZMA-style, with 16-bit probabilities; carries are added into
//! the bytes already written) and a raw bit packer for the incompressible low bits of
//! residuals. [`RangeEncoder`] has a 32-bit interval and adapts at rate 4 (causal route headers
//! up to version 5, the paper route); [`WideEncoder`] a 64-bit one at rate 5 (version 6).
//!
//! Why our own coder: crates.io has no maintained crate exposing a *context-modelled adaptive
//! binary* coder as a library. `constriction` offers multi-symbol ANS/range coders with static or
//! categorical models (no cheap per-bit adaptation); the LZMA crates (`lzma-rust2`, `xz2`,
//! `liblzma`) keep their range coder private. The coder below is ~150 lines, has no `unsafe`,
//! and is hardened for hostile input: reading past the end of the stream yields zero bytes and
//! is counted, and [`RangeDecoder::finish`] turns any over-read into an error. No decode loop
//! depends on stream content for its trip count, so corrupt input can never loop forever.
//!
//! Probabilities are 16-bit (`P(bit = 0) = p / 65536`) rather than LZMA's 11-bit: the most
//! skewed reachable state (15/65536 at rate 4, 31/65536 at rate 5) costs 0.0003-0.0007 bit
//! per likely decision instead of LZMA's 0.02 (31/2048), which is what makes long zero runs in
//! radar fields (90% exact zeros) nearly free.

use crate::error::{FormatError, Result};

/// Initial probability (one half).
pub const PROB_INIT: u16 = 1 << 15;
/// Adaptation rate: `p += (65536 - p) >> SHIFT` after a zero. 4 adapts faster, 5 settles lower.
const SHIFT: u32 = 4;
const TOP: u32 = 1 << 24;

/// The probability after coding `bit` with probability `pv`: `pv + ((65536 - pv) >> SHIFT)`
/// after a zero, `pv - (pv >> SHIFT)` after a one.
///
/// Computed as `pv + ((t - pv) >> SHIFT)` (arithmetic shift) with `t = 65536` after a zero and
/// `t = 15` after a one: for `pv = 16k + r` (`r < 16`), `(15 - pv) >> 4 = -k = -(pv >> 4)`, so
/// both outcomes are exactly the formulas above (checked for every `pv` by a test), in one
/// select instead of two updates and a blend.
#[inline(always)]
fn adapt(pv: u32, mask: u32) -> u16 {
    adapt_with::<SHIFT>(pv, mask)
}

/// [`adapt`] with adaptation rate `S` (the target after a one is `2^S - 1`).
#[inline(always)]
fn adapt_with<const S: u32>(pv: u32, mask: u32) -> u16 {
    let target = (1i32 << 16) - (((1 << 16) - ((1 << S) - 1)) & mask) as i32;
    let pv = pv as i32;
    (pv + ((target - pv) >> S)) as u16
}

/// Adaptation rate of the wide coder ([`WideEncoder`]): slower than [`SHIFT`], so a
/// probability near one half moves less with each decision. Measured on the 40 shared fields
/// with the version-5 residual model in the wide coder: aggregate ratio 6.2285 -> 6.2424,
/// geomean 4.2135 -> 4.2255, the radar fields and ERA-Interim palettes 0.6-1.2% smaller, no
/// file larger by more than 0.3%.
const WIDE_SHIFT: u32 = 5;

/// Encoder half of the range coder.
///
/// Carries are added straight into the bytes already written (a run of `0xFF` bytes turns into
/// zeros and the byte before it is incremented) instead of LZMA's held-back "cache" byte and
/// count of pending `0xFF`s. Both write the base-256 digits of the same exact sum, so the bytes
/// are identical; this form needs no per-byte bookkeeping. The first byte (LZMA's initial
/// cache, always zero) is written up front.
#[derive(Debug)]
pub struct RangeEncoder {
    /// Low end of the interval, below `2^32` after each renormalisation; bit 32 is a carry.
    low: u64,
    range: u32,
    out: Vec<u8>,
}

impl Default for RangeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeEncoder {
    /// A new encoder with an empty output buffer.
    pub fn new() -> Self {
        Self {
            low: 0,
            range: u32::MAX,
            out: vec![0],
        }
    }

    /// Adds a carry out of `low` to the bytes written so far.
    fn propagate_carry(&mut self) {
        add_carry(&mut self.out);
    }

    /// Writes the top bytes of `low` until `range >= TOP` (one or two bytes: see
    /// [`RangeDecoder::normalize`]), what LZMA's byte-at-a-time `shift_low` loop writes.
    #[inline]
    fn normalize(&mut self) {
        // Only the first shifted byte can see a carry: `low < 2^32` after it.
        if self.low >> 32 != 0 {
            self.propagate_carry();
        }
        let sh = self.range.leading_zeros() & 24;
        let bytes = (self.low as u32).to_be_bytes();
        self.out.push(bytes[0]);
        if sh > 8 {
            self.out.push(bytes[1]);
        }
        self.low = (self.low << sh) & 0xFFFF_FFFF;
        self.range <<= sh;
    }

    /// Codes `bit` with the adaptive probability `p` and updates `p`.
    ///
    /// Branch-free apart from renormalisation, like [`RangeDecoder::decode_bit`]: the bits of
    /// residuals are close to random, and a mispredicted branch per decision cost more than
    /// computing both outcomes.
    #[inline(always)]
    pub fn encode_bit(&mut self, p: &mut u16, bit: bool) {
        let pv = u32::from(*p);
        let bound = (self.range >> 16) * pv;
        let range_one = self.range.wrapping_sub(bound);
        self.low += u64::from(std::hint::select_unpredictable(bit, bound, 0));
        self.range = std::hint::select_unpredictable(bit, range_one, bound);
        *p = adapt(pv, 0u32.wrapping_sub(u32::from(bit)));
        if self.range < TOP {
            self.normalize();
        }
    }

    /// Codes the low `n_bits` bits of `value` (MSB first) through a binary tree of adaptive
    /// probabilities `probs` (length at least `1 << n_bits`).
    #[inline]
    pub fn encode_tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32) {
        // Two-level trees over four probabilities (the residual mantissa trees): unrolled,
        // the same decisions as the loop below (see `RangeDecoder::tree_with`).
        if let Ok(p4) = <&mut [u16; 4]>::try_from(&mut *probs) {
            match n_bits {
                0 => return,
                1 => return self.encode_bit(&mut p4[1], value & 1 != 0),
                2 => {
                    let hi = (value >> 1) & 1;
                    self.encode_bit(&mut p4[1], hi != 0);
                    self.encode_bit(&mut p4[2 + hi as usize], value & 1 != 0);
                    return;
                }
                _ => {}
            }
        }
        tree_encode(probs, n_bits, value, |p, bit| self.encode_bit(p, bit));
    }

    /// Flushes the coder and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // LZMA flushes with five byte shifts; the fifth would write the (zero) byte it holds
        // back, which is not part of the stream.
        if self.low >> 32 != 0 {
            self.propagate_carry();
        }
        let low = (self.low as u32).to_be_bytes();
        self.out.extend_from_slice(&low);
        self.out
    }
}

/// Decoder half of the range coder, over untrusted bytes.
#[derive(Debug)]
pub struct RangeDecoder<'a> {
    /// The bytes not yet shifted into `code`.
    rest: &'a [u8],
    range: u32,
    code: u32,
    /// Bytes shifted in past the end of the stream (as zeros).
    over_read: usize,
}

impl<'a> RangeDecoder<'a> {
    /// Starts decoding `data` (as produced by [`RangeEncoder::finish`]).
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let Some((head, rest)) = data.split_first_chunk::<5>() else {
            return Err(FormatError::Truncated(format!(
                "range-coded stream of {} bytes (at least 5 needed)",
                data.len()
            )));
        };
        // The first byte (always zero from the encoder) shifts out of the 32-bit code.
        let code = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        Ok(Self {
            rest,
            range: u32::MAX,
            code,
            over_read: 0,
        })
    }

    /// One decision without renormalisation: both outcomes are computed and selected, which
    /// avoids a mispredicted branch on every near-even decision.
    #[inline(always)]
    fn decide(&mut self, p: &mut u16) -> bool {
        let pv = u32::from(*p);
        let bound = (self.range >> 16) * pv;
        let bit = self.code >= bound;
        // Selects of precomputed outcomes, marked unpredictable so that they stay conditional
        // moves. As plain `if`s, LLVM turned them into a branch merged with the caller's use of
        // the bit: 2.37M of the 3.71M mispredicted branches of decoding TREFHT (callgrind
        // branch simulation; 2.60M after), and decoding TREFHT, TS and THETA-levitus 15-19%
        // faster (median of 11 alternating runs).
        let code_one = self.code.wrapping_sub(bound);
        let range_one = self.range.wrapping_sub(bound);
        self.code = std::hint::select_unpredictable(bit, code_one, self.code);
        self.range = std::hint::select_unpredictable(bit, range_one, bound);
        *p = adapt(pv, 0u32.wrapping_sub(u32::from(bit)));
        bit
    }

    /// Decodes one bit with the adaptive probability `p` and updates `p`.
    ///
    /// Branch-free apart from renormalisation, which is one well-predicted branch on skewed
    /// streams (see [`RangeDecoder::decode_bit_dense`] for dense ones).
    #[inline(always)]
    pub fn decode_bit(&mut self, p: &mut u16) -> bool {
        let bit = self.decide(p);
        if self.range < TOP {
            self.normalize();
        }
        bit
    }

    /// [`RangeDecoder::decode_bit`] with a branch-free renormalisation: the same result, faster
    /// on dense streams (a byte every few decisions, at unpredictable times: TS, U-dc, ECHAM5
    /// +6-8%), slower on skewed ones where renormalisation is rare and well predicted (radar
    /// fields of 90% zeros: -9%). The caller picks by the stream's density.
    #[inline(always)]
    pub fn decode_bit_dense(&mut self, p: &mut u16) -> bool {
        let bit = self.decide(p);
        self.normalize();
        bit
    }

    /// Shifts in bytes until `range >= TOP`: what a loop of one byte at a time does, without
    /// its data-dependent branch. `range` is at least `TOP` before a decision and at least
    /// `256 * 15` after one (`bound >= (range >> 16) * 15` and `range - bound >=
    /// (range >> 16) * 15`, as `15 <= p <= 65521`), so 0, 1 or 2 bytes are needed: `sh` is
    /// 0, 8 or 16, and `range.leading_zeros() & 24` is `8 * (leading_zeros / 8)`.
    #[inline(always)]
    fn normalize(&mut self) {
        let sh = self.range.leading_zeros() & 24;
        let n = (sh / 8) as usize;
        let window = match self.rest.first_chunk::<4>() {
            Some(w) => {
                // `n <= 3 < 4 <= rest.len()`: no bounds check is emitted.
                self.rest = &self.rest[n..];
                u32::from_be_bytes(*w)
            }
            None => self.tail_window(n),
        };
        self.range <<= sh;
        // The top 32 bits of `code:window` shifted left by `sh` (a funnel shift).
        self.code = (((u64::from(self.code) << 32) | u64::from(window)) << sh >> 32) as u32;
    }

    /// The next 4 bytes near the end of the stream, zeros past it; consumes `n` of them and
    /// counts those past the end.
    #[cold]
    #[inline(never)]
    fn tail_window(&mut self, n: usize) -> u32 {
        let mut w = 0u32;
        for k in 0..4 {
            w = (w << 8) | u32::from(self.rest.get(k).copied().unwrap_or(0));
        }
        let take = n.min(self.rest.len());
        self.over_read += n - take;
        self.rest = &self.rest[take..];
        w
    }

    /// A tree decode with `decode` as the decision. Trees of at most two levels over four
    /// probabilities (the residual mantissa trees) take an unrolled path without a loop or
    /// bounds checks; the decisions are the same either way.
    #[inline(always)]
    fn tree_with(
        &mut self,
        probs: &mut [u16],
        n_bits: u32,
        decode: impl Fn(&mut Self, &mut u16) -> bool,
    ) -> u32 {
        if let Ok(p4) = <&mut [u16; 4]>::try_from(&mut *probs) {
            match n_bits {
                0 => return 0,
                1 => return u32::from(decode(self, &mut p4[1])),
                2 => {
                    let hi = usize::from(decode(self, &mut p4[1]));
                    let lo = usize::from(decode(self, &mut p4[2 + hi]));
                    return ((hi << 1) | lo) as u32;
                }
                _ => {}
            }
        }
        tree_decode(probs, n_bits, |p| decode(self, p))
    }

    /// Inverse of [`RangeEncoder::encode_tree`].
    #[inline]
    pub fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        self.tree_with(probs, n_bits, Self::decode_bit)
    }

    /// [`RangeDecoder::decode_tree`] with [`RangeDecoder::decode_bit_dense`].
    #[inline]
    pub fn decode_tree_dense(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        self.tree_with(probs, n_bits, Self::decode_bit_dense)
    }

    /// Checks the stream was not over-read (a truncated or corrupt stream).
    pub fn finish(self) -> Result<()> {
        if self.over_read > 0 {
            return Err(FormatError::Truncated(format!(
                "range-coded stream read {} bytes past its end",
                self.over_read
            )));
        }
        Ok(())
    }
}

/// Encoder half of the wide range coder: adaptive binary decisions with 16-bit probabilities
/// as in [`RangeEncoder`], over a 64-bit interval renormalised 32 bits at a time, adapting at
/// rate 5, `WIDE_SHIFT` (causal route header version 6, format 1.3).
///
/// With a 32-bit interval, a byte leaves the coder every few decisions of a dense stream, at
/// unpredictable times, so the decoder renormalises without a branch on every decision
/// ([`RangeDecoder::decode_bit_dense`]): about half of a decision's instructions. With 64 bits,
/// `range >= 2^32` before a decision and at least `2^16 * 31` after it, so one shift of 32
/// bits restores it, about once per 32 bits of coded information: a rare, well-predicted
/// branch. Carries are added into the bytes already written, as in [`RangeEncoder`].
/// Measured (decoding TREFHT, version-5 model in both coders): 564M -> 478M instructions, but
/// only 2% less CPU time; the decoder is bound by mispredicted branches on decoded bits more
/// than by instructions (see `residual::code_len_tree`).
#[derive(Debug)]
pub struct WideEncoder {
    /// Low end of the interval below the bytes written.
    low: u64,
    range: u64,
    out: Vec<u8>,
}

impl Default for WideEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl WideEncoder {
    /// A new encoder with an empty output buffer.
    pub fn new() -> Self {
        Self {
            low: 0,
            range: u64::MAX,
            out: Vec::new(),
        }
    }

    /// Adds a carry out of `low` to the bytes written so far. The interval never leaves
    /// `[0, 1)` of the stream's value, so a carry always finds a byte below `0xFF`.
    fn propagate_carry(&mut self) {
        add_carry(&mut self.out);
    }

    /// Codes `bit` with the adaptive probability `p` and updates `p`.
    #[inline(always)]
    pub fn encode_bit(&mut self, p: &mut u16, bit: bool) {
        let pv = u32::from(*p);
        let bound = (self.range >> 16) * u64::from(pv);
        // Both outcomes selected without a branch: a residual's bits are close to random, and
        // a branch on `bit` here mispredicted 1.4M times encoding TREFHT (callgrind).
        let (low, carry) = self
            .low
            .overflowing_add(std::hint::select_unpredictable(bit, bound, 0));
        self.low = low;
        if carry {
            self.propagate_carry();
        }
        self.range = std::hint::select_unpredictable(bit, self.range.wrapping_sub(bound), bound);
        *p = adapt_with::<WIDE_SHIFT>(pv, 0u32.wrapping_sub(u32::from(bit)));
        if self.range >> 32 == 0 {
            self.out
                .extend_from_slice(&((self.low >> 32) as u32).to_be_bytes());
            self.low <<= 32;
            self.range <<= 32;
        }
    }

    /// Codes the low `n_bits` bits of `value` (MSB first) through a binary tree of adaptive
    /// probabilities `probs` (length at least `1 << n_bits`), as [`RangeEncoder::encode_tree`].
    #[inline]
    pub fn encode_tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32) {
        tree_encode(probs, n_bits, value, |p, bit| self.encode_bit(p, bit));
    }

    /// Flushes the coder and returns the bytes (the 8 bytes of `low` end the stream).
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&self.low.to_be_bytes());
        self.out
    }
}

/// Decoder half of the wide range coder ([`WideEncoder`]), over untrusted bytes: reading past
/// the end yields zeros and is reported by [`WideDecoder::finish`].
#[derive(Debug)]
pub struct WideDecoder<'a> {
    rest: &'a [u8],
    range: u64,
    code: u64,
    over_read: usize,
}

impl<'a> WideDecoder<'a> {
    /// Starts decoding `data` (as produced by [`WideEncoder::finish`]).
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let Some((head, rest)) = data.split_first_chunk::<8>() else {
            return Err(FormatError::Truncated(format!(
                "range-coded stream of {} bytes (at least 8 needed)",
                data.len()
            )));
        };
        Ok(Self {
            rest,
            range: u64::MAX,
            code: u64::from_be_bytes(*head),
            over_read: 0,
        })
    }

    /// Decodes one bit with the adaptive probability `p` and updates `p`. Both outcomes are
    /// computed and selected (see [`RangeDecoder`]); the renormalisation is a rare branch.
    #[inline(always)]
    pub fn decode_bit(&mut self, p: &mut u16) -> bool {
        let pv = u32::from(*p);
        let bound = (self.range >> 16) * u64::from(pv);
        let bit = self.code >= bound;
        let code_one = self.code.wrapping_sub(bound);
        let range_one = self.range.wrapping_sub(bound);
        self.code = std::hint::select_unpredictable(bit, code_one, self.code);
        self.range = std::hint::select_unpredictable(bit, range_one, bound);
        *p = adapt_with::<WIDE_SHIFT>(pv, 0u32.wrapping_sub(u32::from(bit)));
        if self.range >> 32 == 0 {
            self.refill();
        }
        bit
    }

    /// Shifts in the next 4 bytes (zeros past the end, counted).
    #[inline]
    fn refill(&mut self) {
        let window = match self.rest.split_first_chunk::<4>() {
            Some((w, rest)) => {
                self.rest = rest;
                u32::from_be_bytes(*w)
            }
            None => {
                let mut w = 0u32;
                for k in 0..4 {
                    w = (w << 8) | u32::from(self.rest.get(k).copied().unwrap_or(0));
                }
                self.over_read += 4 - self.rest.len();
                self.rest = &[];
                w
            }
        };
        self.code = (self.code << 32) | u64::from(window);
        self.range <<= 32;
    }

    /// Inverse of [`WideEncoder::encode_tree`].
    ///
    /// Rejected: loading both children's probabilities before each bit is decoded and then
    /// selecting one, so that the next decision does not wait on a load that depends on the
    /// bit. Decode CPU of 10 files (median of 9) 253 -> 255 ms (TREFHT +3.7%, t-echam5 +6%,
    /// THETA-levitus -2.7%): the decoder runs at about 5 instructions a cycle (~560 a value on
    /// TREFHT), so it is bound by instruction count, not by this chain's latency.
    #[inline]
    pub fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        tree_decode(probs, n_bits, |p| self.decode_bit(p))
    }

    /// Checks the stream was not over-read (a truncated or corrupt stream).
    pub fn finish(self) -> Result<()> {
        if self.over_read > 0 {
            return Err(FormatError::Truncated(format!(
                "range-coded stream read {} bytes past its end",
                self.over_read
            )));
        }
        Ok(())
    }
}

/// Adds a carry to the bytes written so far (a run of `0xFF` bytes at the end turns into zeros
/// and the byte before it is incremented).
#[cold]
#[inline(never)]
fn add_carry(out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = b.wrapping_add(1);
        if *b != 0 {
            break;
        }
    }
}

/// The low `n_bits` bits of `value`, MSB first, as decisions `encode(p, bit)` down a binary tree
/// of probabilities `probs` (node 1 is the root).
#[inline(always)]
fn tree_encode(probs: &mut [u16], n_bits: u32, value: u32, mut encode: impl FnMut(&mut u16, bool)) {
    let mut node = 1usize;
    for k in (0..n_bits).rev() {
        let bit = (value >> k) & 1 != 0;
        if let Some(p) = probs.get_mut(node) {
            encode(p, bit);
        }
        node = (node << 1) | usize::from(bit);
    }
}

/// Inverse of [`tree_encode`] with the decision `decode(p)`.
#[inline(always)]
fn tree_decode(probs: &mut [u16], n_bits: u32, mut decode: impl FnMut(&mut u16) -> bool) -> u32 {
    let mut node = 1usize;
    for _ in 0..n_bits {
        let bit = match probs.get_mut(node) {
            Some(p) => decode(p),
            None => false,
        };
        node = (node << 1) | usize::from(bit);
    }
    (node as u32) & ((1u32 << n_bits) - 1)
}

/// An adaptive binary encoder ([`RangeEncoder`], [`WideEncoder`]), for modelling code written
/// once over both.
pub trait BinaryEncoder {
    /// Codes `bit` with the adaptive probability `p` and updates `p`.
    fn encode_bit(&mut self, p: &mut u16, bit: bool);
    /// Codes the low `n_bits` bits of `value` through a binary tree of probabilities.
    fn encode_tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32);
    /// Flushes the coder and returns the bytes.
    fn finish(self) -> Vec<u8>;
}

/// The decoder of a [`BinaryEncoder`]'s stream.
pub trait BinaryDecoder {
    /// Decodes one bit with the adaptive probability `p` and updates `p`.
    fn decode_bit(&mut self, p: &mut u16) -> bool;
    /// Inverse of [`BinaryEncoder::encode_tree`].
    fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32;
    /// Checks the stream was not over-read.
    fn finish(self) -> Result<()>;
}

macro_rules! binary_encoder {
    ($t:ty) => {
        impl BinaryEncoder for $t {
            #[inline(always)]
            fn encode_bit(&mut self, p: &mut u16, bit: bool) {
                <$t>::encode_bit(self, p, bit);
            }
            #[inline(always)]
            fn encode_tree(&mut self, probs: &mut [u16], n_bits: u32, value: u32) {
                <$t>::encode_tree(self, probs, n_bits, value);
            }
            fn finish(self) -> Vec<u8> {
                <$t>::finish(self)
            }
        }
    };
}
binary_encoder!(RangeEncoder);
binary_encoder!(WideEncoder);

impl BinaryDecoder for RangeDecoder<'_> {
    #[inline(always)]
    fn decode_bit(&mut self, p: &mut u16) -> bool {
        RangeDecoder::decode_bit(self, p)
    }
    #[inline(always)]
    fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        RangeDecoder::decode_tree(self, probs, n_bits)
    }
    fn finish(self) -> Result<()> {
        RangeDecoder::finish(self)
    }
}

/// A [`RangeDecoder`] decoding with [`RangeDecoder::decode_bit_dense`].
#[derive(Debug)]
pub struct DenseRangeDecoder<'a>(pub RangeDecoder<'a>);

impl BinaryDecoder for DenseRangeDecoder<'_> {
    #[inline(always)]
    fn decode_bit(&mut self, p: &mut u16) -> bool {
        self.0.decode_bit_dense(p)
    }
    #[inline(always)]
    fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        self.0.decode_tree_dense(probs, n_bits)
    }
    fn finish(self) -> Result<()> {
        self.0.finish()
    }
}

impl BinaryDecoder for WideDecoder<'_> {
    #[inline(always)]
    fn decode_bit(&mut self, p: &mut u16) -> bool {
        WideDecoder::decode_bit(self, p)
    }
    #[inline(always)]
    fn decode_tree(&mut self, probs: &mut [u16], n_bits: u32) -> u32 {
        WideDecoder::decode_tree(self, probs, n_bits)
    }
    fn finish(self) -> Result<()> {
        WideDecoder::finish(self)
    }
}

/// Packs raw bits (LSB first) into bytes.
///
/// Fewer than 8 bits are pending after each write: every write stores 8 bytes of the
/// accumulator at the end of the bytes written (into zeroed room kept ahead of them) and
/// advances by the whole bytes it completed, so that no branch depends on the bits written.
/// The flush was a branch ("32 bits pending?") that mispredicted 362K times encoding TREFHT
/// (callgrind), as often as raw bits are written.
#[derive(Debug, Default)]
pub struct BitWriter {
    acc: u64,
    n_acc: u32,
    /// The bytes written (`..pos`), then zeroed room.
    out: Vec<u8>,
    pos: usize,
}

impl BitWriter {
    /// A new, empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the low `n_bits` (0..=64) bits of `value`.
    #[inline(always)]
    pub fn write(&mut self, value: u64, n_bits: u32) {
        if n_bits > 56 {
            self.write_small(value & 0xFFFF_FFFF, 32);
            self.write_small(value >> 32, n_bits - 32);
        } else {
            self.write_small(value, n_bits);
        }
    }

    /// Appends the low `n_bits` (0..=56) bits of `value`; `n_acc < 8` before and after.
    #[inline(always)]
    fn write_small(&mut self, value: u64, n_bits: u32) {
        let v = value & ((1u64 << n_bits) - 1);
        self.acc |= v << self.n_acc;
        self.n_acc += n_bits;
        if self.out.len() < self.pos + 8 {
            self.grow();
        }
        if let Some(w) = self.out.get_mut(self.pos..self.pos + 8) {
            w.copy_from_slice(&self.acc.to_le_bytes());
        }
        let whole = self.n_acc >> 3;
        self.pos += whole as usize;
        self.acc >>= whole * 8;
        self.n_acc &= 7;
    }

    /// More zeroed room (doubling).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let len = (self.out.len() * 2).max(self.pos + 64);
        self.out.resize(len, 0);
    }

    /// Flushes and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.truncate(self.pos);
        if self.n_acc > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads bits written by [`BitWriter`]; reading past the end yields zeros and is reported by
/// [`BitReader::finish`].
///
/// The accumulator is refilled 8 bytes at a time to 56..=63 valid bits (bits above `n_acc` hold
/// the start of the next unconsumed byte, which the next refill ORs in again unchanged), so a
/// read of up to 56 bits needs at most one refill and most reads none.
#[derive(Debug)]
pub struct BitReader<'a> {
    /// Bytes not yet taken into `acc`.
    rest: &'a [u8],
    /// Length of the whole stream.
    len: usize,
    acc: u64,
    n_acc: u32,
    /// Zero bytes taken into `acc` past the end of the stream.
    pad: usize,
}

impl<'a> BitReader<'a> {
    /// Starts reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            rest: data,
            len: data.len(),
            acc: 0,
            n_acc: 0,
            pad: 0,
        }
    }

    /// Tops the accumulator up to at least 56 bits (`n_acc < 56` on entry).
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(w) = self.rest.first_chunk::<8>() {
            self.acc |= u64::from_le_bytes(*w) << self.n_acc;
            // `k <= 7 < 8 <= rest.len()`: no bounds check is emitted.
            let k = ((63 - self.n_acc) >> 3) as usize;
            self.rest = &self.rest[k..];
            self.n_acc |= 56;
        } else {
            self.refill_tail();
        }
    }

    /// [`BitReader::refill`] within 8 bytes of the end: byte by byte, zeros past it.
    #[cold]
    #[inline(never)]
    fn refill_tail(&mut self) {
        while self.n_acc <= 56 {
            let b = match self.rest.split_first() {
                Some((&b, rest)) => {
                    self.rest = rest;
                    b
                }
                None => {
                    self.pad += 1;
                    0
                }
            };
            self.acc |= u64::from(b) << self.n_acc;
            self.n_acc += 8;
        }
    }

    /// Reads `n_bits` (0..=64) bits.
    #[inline(always)]
    pub fn read(&mut self, n_bits: u32) -> u64 {
        if n_bits > 56 {
            let lo = self.read_small(32);
            let hi = self.read_small(n_bits - 32);
            lo | (hi << 32)
        } else {
            self.read_small(n_bits)
        }
    }

    /// Reads `n_bits` (0..=56) bits.
    ///
    /// Rejected: refilling before every read instead of when the accumulator runs short (no
    /// branch on the bit count): decoding took 0.7% more CPU over 5 files.
    #[inline(always)]
    fn read_small(&mut self, n_bits: u32) -> u64 {
        if self.n_acc < n_bits {
            self.refill();
        }
        let v = self.acc & ((1u64 << n_bits) - 1);
        self.acc >>= n_bits;
        self.n_acc -= n_bits;
        v
    }

    /// Errors if more bits were read than the stream holds.
    pub fn finish(self) -> Result<()> {
        // Bytes taken into the accumulator past the end are zero padding; only a read that
        // consumed them is an error.
        let taken = (self.len - self.rest.len() + self.pad) as u64;
        let consumed_bits = taken * 8 - u64::from(self.n_acc);
        if consumed_bits > self.len as u64 * 8 {
            return Err(FormatError::Truncated(format!(
                "raw bit stream read {} bits past its end",
                consumed_bits - self.len as u64 * 8
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(bits: &[(u8, bool)], raw: &[(u64, u32)]) {
        let mut probs = [PROB_INIT; 4];
        let mut enc = RangeEncoder::new();
        for &(ctx, b) in bits {
            enc.encode_bit(&mut probs[usize::from(ctx & 3)], b);
        }
        let bytes = enc.finish();
        assert_eq!(bytes, same_bytes_as_reference(bits));
        let mut probs = [PROB_INIT; 4];
        let mut dec = RangeDecoder::new(&bytes).unwrap();
        for &(ctx, b) in bits {
            assert_eq!(dec.decode_bit(&mut probs[usize::from(ctx & 3)]), b);
        }
        dec.finish().unwrap();
        let mut probs = [PROB_INIT; 4];
        let mut dec = RangeDecoder::new(&bytes).unwrap();
        for &(ctx, b) in bits {
            assert_eq!(dec.decode_bit_dense(&mut probs[usize::from(ctx & 3)]), b);
        }
        dec.finish().unwrap();

        let mut w = BitWriter::new();
        for &(v, n) in raw {
            w.write(v, n);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in raw {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            assert_eq!(r.read(n), v & mask);
        }
        r.finish().unwrap();
    }

    /// The LZMA-style encoder of format 1.0 as first written (held-back cache byte, one byte
    /// per `shift_low`, two-formula probability update): the reference the faster
    /// [`RangeEncoder`] must match byte for byte.
    struct RefEncoder {
        low: u64,
        range: u32,
        cache: u8,
        cache_size: u64,
        out: Vec<u8>,
    }

    impl RefEncoder {
        fn new() -> Self {
            Self {
                low: 0,
                range: u32::MAX,
                cache: 0,
                cache_size: 1,
                out: Vec::new(),
            }
        }

        fn shift_low(&mut self) {
            if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
                let carry = (self.low >> 32) as u8;
                let mut temp = self.cache;
                loop {
                    self.out.push(temp.wrapping_add(carry));
                    temp = 0xFF;
                    self.cache_size -= 1;
                    if self.cache_size == 0 {
                        break;
                    }
                }
                self.cache = ((self.low >> 24) & 0xFF) as u8;
            }
            self.cache_size += 1;
            self.low = (self.low & 0x00FF_FFFF) << 8;
        }

        fn encode_bit(&mut self, p: &mut u16, bit: bool) {
            let pv = u32::from(*p);
            let bound = (self.range >> 16) * pv;
            if bit {
                self.low += u64::from(bound);
                self.range -= bound;
                *p = (pv - (pv >> SHIFT)) as u16;
            } else {
                self.range = bound;
                *p = (pv + (((1u32 << 16) - pv) >> SHIFT)) as u16;
            }
            while self.range < TOP {
                self.range <<= 8;
                self.shift_low();
            }
        }

        fn finish(mut self) -> Vec<u8> {
            for _ in 0..5 {
                self.shift_low();
            }
            self.out
        }
    }

    /// Codes `bits` (context, bit) with both encoders and checks the bytes are identical.
    fn same_bytes_as_reference(bits: &[(u8, bool)]) -> Vec<u8> {
        let mut probs = [PROB_INIT; 4];
        let mut enc = RangeEncoder::new();
        let mut ref_probs = [PROB_INIT; 4];
        let mut reference = RefEncoder::new();
        for &(ctx, b) in bits {
            enc.encode_bit(&mut probs[usize::from(ctx & 3)], b);
            reference.encode_bit(&mut ref_probs[usize::from(ctx & 3)], b);
        }
        assert_eq!(probs, ref_probs);
        let bytes = enc.finish();
        assert_eq!(bytes, reference.finish());
        bytes
    }

    /// The byte-at-a-time decoder of format 1.0 as first written: the reference for decoded
    /// decisions and over-read detection on arbitrary (also corrupt) input.
    struct RefDecoder<'a> {
        data: &'a [u8],
        pos: usize,
        range: u32,
        code: u32,
    }

    impl<'a> RefDecoder<'a> {
        fn new(data: &'a [u8]) -> Option<Self> {
            if data.len() < 5 {
                return None;
            }
            let mut d = Self {
                data,
                pos: 0,
                range: u32::MAX,
                code: 0,
            };
            for _ in 0..5 {
                d.code = (d.code << 8) | u32::from(d.next_byte());
            }
            Some(d)
        }

        fn next_byte(&mut self) -> u8 {
            let b = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            b
        }

        fn decode_bit(&mut self, p: &mut u16) -> bool {
            let pv = u32::from(*p);
            let bound = (self.range >> 16) * pv;
            let bit = self.code >= bound;
            if bit {
                self.code -= bound;
                self.range -= bound;
                *p = (pv - (pv >> SHIFT)) as u16;
            } else {
                self.range = bound;
                *p = (pv + (((1u32 << 16) - pv) >> SHIFT)) as u16;
            }
            while self.range < TOP {
                self.range <<= 8;
                self.code = (self.code << 8) | u32::from(self.next_byte());
            }
            bit
        }

        fn over_read(&self) -> bool {
            self.pos > self.data.len()
        }
    }

    /// The raw bit reader of format 1.0 as first written (32-bit refills, byte by byte at the
    /// end): the reference for values and over-read detection.
    struct RefBitReader<'a> {
        data: &'a [u8],
        pos: usize,
        acc: u64,
        n_acc: u32,
    }

    impl RefBitReader<'_> {
        fn read_small(&mut self, n_bits: u32) -> u64 {
            if n_bits == 0 {
                return 0;
            }
            if self.n_acc < n_bits {
                if let Some(c) = self.data.get(self.pos..self.pos + 4) {
                    let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    self.acc |= u64::from(w) << self.n_acc;
                    self.pos += 4;
                    self.n_acc += 32;
                } else {
                    while self.n_acc <= 56 {
                        let b = self.data.get(self.pos).copied().unwrap_or(0);
                        self.pos += 1;
                        self.acc |= u64::from(b) << self.n_acc;
                        self.n_acc += 8;
                    }
                }
            }
            let v = self.acc & ((1u64 << n_bits) - 1);
            self.acc >>= n_bits;
            self.n_acc -= n_bits;
            v
        }

        fn read(&mut self, n_bits: u32) -> u64 {
            if n_bits > 32 {
                let lo = self.read_small(32);
                lo | (self.read_small(n_bits - 32) << 32)
            } else {
                self.read_small(n_bits)
            }
        }

        fn over_read(&self) -> bool {
            (self.pos as u64) * 8 - u64::from(self.n_acc) > self.data.len() as u64 * 8
        }
    }

    /// Decodes `data` as `n` decisions over `n_ctx` contexts with the reference and with both
    /// fast variants: same decisions, same over-read verdict.
    fn decoders_agree(data: &[u8], n: usize, n_ctx: usize) {
        let Some(mut reference) = RefDecoder::new(data) else {
            assert!(RangeDecoder::new(data).is_err());
            return;
        };
        let mut ref_probs = vec![PROB_INIT; n_ctx];
        let want: Vec<bool> = (0..n)
            .map(|i| reference.decode_bit(&mut ref_probs[i % n_ctx]))
            .collect();
        for dense in [false, true] {
            let mut dec = RangeDecoder::new(data).unwrap();
            let mut probs = vec![PROB_INIT; n_ctx];
            for (i, &w) in want.iter().enumerate() {
                let p = &mut probs[i % n_ctx];
                let got = if dense {
                    dec.decode_bit_dense(p)
                } else {
                    dec.decode_bit(p)
                };
                assert_eq!(got, w, "decision {i} (dense {dense})");
            }
            assert_eq!(probs, ref_probs);
            assert_eq!(
                dec.finish().is_err(),
                reference.over_read(),
                "dense {dense}"
            );
        }
    }

    /// Reads `widths` from `data` with the reference and the fast reader.
    fn bit_readers_agree(data: &[u8], widths: &[u32]) {
        let mut reference = RefBitReader {
            data,
            pos: 0,
            acc: 0,
            n_acc: 0,
        };
        let mut r = BitReader::new(data);
        for &n in widths {
            assert_eq!(r.read(n), reference.read(n), "width {n}");
        }
        assert_eq!(r.finish().is_err(), reference.over_read());
    }

    #[test]
    fn small_trees_encode_as_reference() {
        let mut probs = [[PROB_INIT; 4]; 2];
        let mut enc = RangeEncoder::new();
        let mut ref_probs = [[PROB_INIT; 4]; 2];
        let mut reference = RefEncoder::new();
        for i in 0..20_000u32 {
            let n = i % 4;
            let v = i.wrapping_mul(2_654_435_761) >> 27;
            enc.encode_tree(&mut probs[(i % 2) as usize], n, v);
            let mut node = 1usize;
            for k in (0..n).rev() {
                let bit = (v >> k) & 1 != 0;
                if let Some(p) = ref_probs[(i % 2) as usize].get_mut(node) {
                    reference.encode_bit(p, bit);
                }
                node = (node << 1) | usize::from(bit);
            }
        }
        assert_eq!(probs, ref_probs);
        assert_eq!(enc.finish(), reference.finish());
    }

    #[test]
    fn decoders_match_reference_at_every_truncation() {
        let bits: Vec<(u8, bool)> = (0..3000u32)
            .map(|i| ((i % 4) as u8, (i.wrapping_mul(2_654_435_761) >> 29) < 3))
            .collect();
        let bytes = same_bytes_as_reference(&bits);
        for cut in 0..=bytes.len() {
            decoders_agree(&bytes[..cut], bits.len(), 4);
        }
        let mut w = BitWriter::new();
        let widths: Vec<u32> = (0..300u32).map(|i| (i * 7) % 65).collect();
        for (i, &n) in widths.iter().enumerate() {
            w.write((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), n);
        }
        let raw = w.finish();
        for cut in 0..=raw.len() {
            bit_readers_agree(&raw[..cut], &widths);
        }
    }

    #[test]
    fn adapt_matches_the_two_formulas() {
        for pv in 0..=u32::from(u16::MAX) {
            let up = pv + (((1u32 << 16) - pv) >> SHIFT);
            let down = pv - (pv >> SHIFT);
            if up <= u32::from(u16::MAX) {
                assert_eq!(u32::from(adapt(pv, 0)), up, "up from {pv}");
            }
            assert_eq!(u32::from(adapt(pv, u32::MAX)), down, "down from {pv}");
        }
    }

    #[test]
    fn encoder_matches_reference_on_carry_heavy_streams() {
        // Long runs of ones at a skewed probability push `low` up against 2^32 and produce
        // carries through runs of 0xFF bytes; runs of zeros make 0xFF-free stretches.
        for period in [1usize, 2, 3, 7, 50, 1000] {
            let bits: Vec<(u8, bool)> = (0..200_000)
                .map(|i| ((i % 4) as u8, (i / period) % 2 == 0 || i % 11 == 0))
                .collect();
            same_bytes_as_reference(&bits);
        }
        let ones: Vec<(u8, bool)> = (0..100_000).map(|_| (0, true)).collect();
        same_bytes_as_reference(&ones);
        let zeros: Vec<(u8, bool)> = (0..100_000).map(|_| (0, false)).collect();
        same_bytes_as_reference(&zeros);
        same_bytes_as_reference(&[]);
    }

    #[test]
    fn skewed_runs_are_nearly_free() {
        let mut p = PROB_INIT;
        let mut enc = RangeEncoder::new();
        for _ in 0..1_000_000 {
            enc.encode_bit(&mut p, false);
        }
        let bytes = enc.finish();
        // 1e6 decisions at the saturated probability: well under 0.002 bit each.
        assert!(bytes.len() < 250, "{} bytes", bytes.len());
    }

    #[test]
    fn tree_roundtrip() {
        let mut probs = vec![PROB_INIT; 128];
        let mut enc = RangeEncoder::new();
        for v in 0..128u32 {
            enc.encode_tree(&mut probs, 7, v);
        }
        let bytes = enc.finish();
        let mut probs = vec![PROB_INIT; 128];
        let mut dec = RangeDecoder::new(&bytes).unwrap();
        for v in 0..128u32 {
            assert_eq!(dec.decode_tree(&mut probs, 7), v);
        }
        dec.finish().unwrap();
    }

    #[test]
    fn truncated_streams_error() {
        let mut p = PROB_INIT;
        let mut enc = RangeEncoder::new();
        for i in 0..10_000 {
            enc.encode_bit(&mut p, i % 3 == 0);
        }
        let bytes = enc.finish();
        for cut in 0..bytes.len() {
            let Ok(mut dec) = RangeDecoder::new(&bytes[..cut]) else {
                continue;
            };
            let mut p = PROB_INIT;
            for _ in 0..10_000 {
                dec.decode_bit(&mut p);
            }
            assert!(dec.finish().is_err(), "cut at {cut} not detected");
            let Ok(mut dec) = RangeDecoder::new(&bytes[..cut]) else {
                continue;
            };
            let mut p = PROB_INIT;
            for _ in 0..10_000 {
                dec.decode_bit_dense(&mut p);
            }
            assert!(dec.finish().is_err(), "dense: cut at {cut} not detected");
        }
        let mut w = BitWriter::new();
        for i in 0..100u64 {
            w.write(i, 13);
        }
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let mut r = BitReader::new(&bytes[..cut]);
            for _ in 0..100 {
                r.read(13);
            }
            assert!(r.finish().is_err(), "cut at {cut} not detected");
        }
    }

    /// Reference for [`WideEncoder`]: LZMA's held-back digit and count of pending all-ones
    /// digits, with 32-bit digits, a 128-bit `low` (carry in bit 64) and the two update formulas
    /// of the probabilities written out.
    struct RefWideEncoder {
        low: u128,
        range: u64,
        cache: Option<u32>,
        pending: usize,
        out: Vec<u8>,
    }

    impl RefWideEncoder {
        fn new() -> Self {
            Self {
                low: 0,
                range: u64::MAX,
                cache: None,
                pending: 0,
                out: Vec::new(),
            }
        }

        fn shift_low(&mut self) {
            let carry = (self.low >> 64) as u32;
            let digit = ((self.low >> 32) & 0xFFFF_FFFF) as u32;
            if digit != u32::MAX || carry != 0 {
                if let Some(c) = self.cache {
                    self.out.extend_from_slice(&(c + carry).to_be_bytes());
                } else {
                    assert_eq!(carry, 0, "carry before the first digit");
                }
                for _ in 0..self.pending {
                    self.out
                        .extend_from_slice(&u32::MAX.wrapping_add(carry).to_be_bytes());
                }
                self.pending = 0;
                self.cache = Some(digit);
            } else {
                self.pending += 1;
            }
            self.low = (self.low & 0xFFFF_FFFF) << 32;
        }

        fn encode_bit(&mut self, p: &mut u16, bit: bool) {
            let pv = u64::from(*p);
            let bound = (self.range >> 16) * pv;
            if bit {
                self.low += u128::from(bound);
                self.range -= bound;
                *p = (pv - (pv >> WIDE_SHIFT)) as u16;
            } else {
                self.range = bound;
                *p = (pv + ((65536 - pv) >> WIDE_SHIFT)) as u16;
            }
            if self.range < 1 << 32 {
                self.shift_low();
                self.range <<= 32;
            }
        }

        fn finish(mut self) -> Vec<u8> {
            for _ in 0..3 {
                self.shift_low();
            }
            self.out
        }
    }

    /// Encodes `bits` with [`WideEncoder`], checks the bytes against [`RefWideEncoder`] and
    /// that [`WideDecoder`] decodes them back, and returns them.
    fn wide_roundtrip(bits: &[(u8, bool)]) -> Vec<u8> {
        let (mut probs, mut ref_probs) = ([PROB_INIT; 4], [PROB_INIT; 4]);
        let mut enc = WideEncoder::new();
        let mut reference = RefWideEncoder::new();
        for &(ctx, b) in bits {
            enc.encode_bit(&mut probs[usize::from(ctx & 3)], b);
            reference.encode_bit(&mut ref_probs[usize::from(ctx & 3)], b);
        }
        let bytes = enc.finish();
        assert_eq!(bytes, reference.finish());
        let mut probs = [PROB_INIT; 4];
        let mut dec = WideDecoder::new(&bytes).unwrap();
        for &(ctx, b) in bits {
            assert_eq!(dec.decode_bit(&mut probs[usize::from(ctx & 3)]), b);
        }
        dec.finish().unwrap();
        bytes
    }

    #[test]
    fn wide_coder_matches_reference_on_carry_heavy_streams() {
        for period in [1usize, 2, 3, 7, 50, 1000] {
            let bits: Vec<(u8, bool)> = (0..200_000)
                .map(|i| ((i % 4) as u8, (i / period) % 2 == 0 || i % 11 == 0))
                .collect();
            wide_roundtrip(&bits);
        }
        for b in [false, true] {
            let run: Vec<(u8, bool)> = (0..100_000).map(|_| (0, b)).collect();
            wide_roundtrip(&run);
        }
        assert_eq!(wide_roundtrip(&[]).len(), 8);
    }

    #[test]
    fn wide_coder_skewed_runs_are_nearly_free_and_trees_roundtrip() {
        let mut p = PROB_INIT;
        let mut enc = WideEncoder::new();
        for _ in 0..1_000_000 {
            enc.encode_bit(&mut p, false);
        }
        let bytes = enc.finish();
        // Rate 5 saturates at 31/65536: 1e6 decisions cost well under 0.001 bit each.
        assert!(bytes.len() < 120, "{} bytes", bytes.len());

        let mut probs = vec![PROB_INIT; 128];
        let mut enc = WideEncoder::new();
        for v in (0..128u32).chain((0..300).map(|i| (i * 37) % 128)) {
            enc.encode_tree(&mut probs, 7, v);
        }
        let bytes = enc.finish();
        let mut probs = vec![PROB_INIT; 128];
        let mut dec = WideDecoder::new(&bytes).unwrap();
        for v in (0..128u32).chain((0..300).map(|i| (i * 37) % 128)) {
            assert_eq!(dec.decode_tree(&mut probs, 7), v);
        }
        dec.finish().unwrap();
    }

    #[test]
    fn wide_coder_detects_every_truncation() {
        // The decoder consumes exactly the bytes the encoder wrote, so every cut is an error.
        let bits: Vec<(u8, bool)> = (0..20_000u32)
            .map(|i| ((i % 4) as u8, (i.wrapping_mul(2_654_435_761) >> 29) < 3))
            .collect();
        let bytes = wide_roundtrip(&bits);
        for cut in 0..bytes.len() {
            let Ok(mut dec) = WideDecoder::new(&bytes[..cut]) else {
                assert!(cut < 8);
                continue;
            };
            let mut probs = [PROB_INIT; 4];
            for &(ctx, _) in &bits {
                dec.decode_bit(&mut probs[usize::from(ctx & 3)]);
            }
            assert!(dec.finish().is_err(), "cut at {cut} not detected");
        }
    }

    #[test]
    fn adapt_at_rate_5_matches_the_two_formulas() {
        for pv in 0..=u32::from(u16::MAX) {
            let up = pv + (((1u32 << 16) - pv) >> 5);
            let down = pv - (pv >> 5);
            if up <= u32::from(u16::MAX) {
                assert_eq!(u32::from(adapt_with::<5>(pv, 0)), up, "up from {pv}");
            }
            assert_eq!(
                u32::from(adapt_with::<5>(pv, u32::MAX)),
                down,
                "down from {pv}"
            );
        }
    }

    proptest! {
        /// The bytes are the plain LSB-first packing of the bits written, whatever the widths
        /// (the format's raw streams), with the last byte zero-padded.
        #[test]
        fn prop_bit_writer_packs_lsb_first(
            writes in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..400),
        ) {
            let mut w = BitWriter::new();
            let mut bits: Vec<bool> = Vec::new();
            for &(v, n) in &writes {
                w.write(v, n);
                bits.extend((0..n).map(|k| (v >> k) & 1 != 0));
            }
            let want: Vec<u8> = bits
                .chunks(8)
                .map(|c| c.iter().rev().fold(0u8, |b, &x| (b << 1) | u8::from(x)))
                .collect();
            prop_assert_eq!(w.finish(), want);
        }

        #[test]
        fn prop_wide_roundtrip(
            bits in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..3000),
        ) {
            wide_roundtrip(&bits);
        }

        #[test]
        fn prop_wide_garbage_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            n in 0usize..3000,
        ) {
            if let Ok(mut dec) = WideDecoder::new(&data) {
                let mut probs = [PROB_INIT; 4];
                let mut tree = [PROB_INIT; 16];
                for i in 0..n {
                    if i % 7 == 0 {
                        prop_assert!(dec.decode_tree(&mut tree, 4) < 16);
                    } else {
                        dec.decode_bit(&mut probs[i % 4]);
                    }
                }
                let _ = dec.finish();
            }
        }

        #[test]
        fn prop_roundtrip(
            bits in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..2000),
            raw in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..500),
        ) {
            roundtrip(&bits, &raw);
        }

        #[test]
        fn prop_garbage_decodes_as_reference(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            n in 0usize..3000,
            widths in proptest::collection::vec(0u32..=64, 0..200),
        ) {
            decoders_agree(&data, n, 3);
            bit_readers_agree(&data, &widths);
        }

        #[test]
        fn prop_small_trees_decode_as_reference(
            data in proptest::collection::vec(any::<u8>(), 5..300),
            widths in proptest::collection::vec(0u32..=3, 0..500),
        ) {
            // Reference: the generic tree walk over the byte-at-a-time decoder.
            let mut reference = RefDecoder::new(&data).unwrap();
            let mut ref_probs = [[PROB_INIT; 4]; 2];
            let want: Vec<u32> = widths
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let probs = &mut ref_probs[i % 2];
                    let mut node = 1usize;
                    for _ in 0..n {
                        let bit = match probs.get_mut(node) {
                            Some(p) => reference.decode_bit(p),
                            None => false,
                        };
                        node = (node << 1) | usize::from(bit);
                    }
                    (node as u32) & ((1u32 << n) - 1)
                })
                .collect();
            for dense in [false, true] {
                let mut dec = RangeDecoder::new(&data).unwrap();
                let mut probs = [[PROB_INIT; 4]; 2];
                for (i, (&n, &w)) in widths.iter().zip(&want).enumerate() {
                    let p = &mut probs[i % 2][..];
                    let got = if dense {
                        dec.decode_tree_dense(p, n)
                    } else {
                        dec.decode_tree(p, n)
                    };
                    prop_assert_eq!(got, w);
                }
                prop_assert_eq!(probs, ref_probs);
                prop_assert_eq!(dec.finish().is_err(), reference.over_read());
            }
        }

        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(mut dec) = RangeDecoder::new(&data) {
                let mut probs = vec![PROB_INIT; 128];
                for _ in 0..1000 {
                    dec.decode_tree(&mut probs, 7);
                }
                let _ = dec.finish();
            }
            if let Ok(mut dec) = RangeDecoder::new(&data) {
                let mut probs = vec![PROB_INIT; 128];
                for _ in 0..1000 {
                    dec.decode_tree_dense(&mut probs, 7);
                }
                let _ = dec.finish();
            }
            let mut r = BitReader::new(&data);
            for n in 0..200u32 {
                r.read(n % 65);
            }
            let _ = r.finish();
        }
    }
}
