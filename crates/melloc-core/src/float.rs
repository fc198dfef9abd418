//! The sealed [`Float`] trait: one generic code path for `f32` and `f64`.
//!
//! Besides conversions it provides the **ordered-bits mapping**: the monotone bijection from an
//! IEEE-754 bit pattern to an unsigned integer such that `a < b` (as finite floats) implies
//! `ordered(a) < ordered(b)`. It is defined for *every* bit pattern (NaN payloads, -0.0, +-inf,
//! subnormals) and is exactly invertible, so residuals taken between mapped integers are lossless.

use std::fmt::Debug;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Element type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary64.
    F64,
}

impl DType {
    /// Bytes per element.
    pub const fn n_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The lower-case name used on the command line and in file names (`f32`, `f64`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(DType::F32),
            "f64" | "float64" | "double" => Ok(DType::F64),
            other => Err(format!("unknown dtype `{other}` (expected f32 or f64)")),
        }
    }
}

/// `f32` or `f64`. Sealed: no other implementations exist.
pub trait Float: sealed::Sealed + Copy + Send + Sync + Debug + PartialOrd + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Bytes per value.
    const N_BYTES: usize;
    /// Bits per value.
    const N_BITS: u32;
    /// Number of explicit mantissa bits (23 or 52).
    const MANTISSA_BITS: u32;

    /// The raw IEEE bit pattern, zero-extended to 64 bits.
    fn to_bits_u64(self) -> u64;
    /// Inverse of [`Float::to_bits_u64`]; the upper bits are ignored for `f32`.
    fn from_bits_u64(bits: u64) -> Self;
    /// Exact widening (f32 -> f64 is exact) or identity.
    fn to_f64(self) -> f64;
    /// Round-to-nearest-even narrowing (f64 -> f32) or identity.
    fn from_f64(v: f64) -> Self;
    /// `true` for finite values (not NaN, not +-inf).
    fn is_finite_value(self) -> bool;

    /// The ordered-bits mapping (monotone in the float order, a bijection on all bit patterns).
    #[inline]
    fn to_ordered(self) -> u64 {
        let bits = self.to_bits_u64();
        let sign = 1u64 << (Self::N_BITS - 1);
        let mask = if Self::N_BITS == 64 {
            u64::MAX
        } else {
            (1u64 << Self::N_BITS) - 1
        };
        if bits & sign != 0 {
            !bits & mask
        } else {
            bits | sign
        }
    }

    /// Inverse of [`Float::to_ordered`].
    #[inline]
    fn from_ordered(ordered: u64) -> Self {
        let sign = 1u64 << (Self::N_BITS - 1);
        let mask = if Self::N_BITS == 64 {
            u64::MAX
        } else {
            (1u64 << Self::N_BITS) - 1
        };
        let ordered = ordered & mask;
        let bits = if ordered & sign != 0 {
            ordered & !sign
        } else {
            !ordered & mask
        };
        Self::from_bits_u64(bits)
    }

    /// Reads little-endian values; `bytes.len()` must be a multiple of `N_BYTES` (a trailing
    /// partial value is ignored, callers validate the length first).
    fn vec_from_le_bytes(bytes: &[u8]) -> Vec<Self>;
    /// Appends the values of little-endian `bytes` to `out` (a trailing partial value is
    /// ignored), so a reader can convert block by block without a temporary vector.
    fn extend_from_le_bytes(bytes: &[u8], out: &mut Vec<Self>);
    /// Appends the little-endian bytes of `values` to `out`.
    fn extend_le_bytes(values: &[Self], out: &mut Vec<u8>);
    /// `values` as their little-endian bytes without a copy, on little-endian hosts (a
    /// compile-time property); `None` elsewhere, where callers convert.
    fn as_le_bytes(values: &[Self]) -> Option<&[u8]>;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    const N_BYTES: usize = 4;
    const N_BITS: u32 = 32;
    const MANTISSA_BITS: u32 = 23;

    #[inline]
    fn to_bits_u64(self) -> u64 {
        u64::from(self.to_bits())
    }
    #[inline]
    fn from_bits_u64(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn is_finite_value(self) -> bool {
        self.is_finite()
    }
    fn vec_from_le_bytes(bytes: &[u8]) -> Vec<Self> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
    fn extend_from_le_bytes(bytes: &[u8], out: &mut Vec<Self>) {
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    // Sized once, then written in place: pushing 4-8 bytes at a time cost ~14 instructions
    // per value (a capacity check each); decompressing TREFHT 701.0M -> 690.2M instructions.
    fn as_le_bytes(values: &[Self]) -> Option<&[u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice(values))
    }
    fn extend_le_bytes(values: &[Self], out: &mut Vec<u8>) {
        if let Some(b) = Self::as_le_bytes(values) {
            out.extend_from_slice(b);
            return;
        }
        let start = out.len();
        out.resize(start + values.len() * 4, 0);
        for (c, v) in out[start..].chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    const N_BYTES: usize = 8;
    const N_BITS: u32 = 64;
    const MANTISSA_BITS: u32 = 52;

    #[inline]
    fn to_bits_u64(self) -> u64 {
        self.to_bits()
    }
    #[inline]
    fn from_bits_u64(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn is_finite_value(self) -> bool {
        self.is_finite()
    }
    fn vec_from_le_bytes(bytes: &[u8]) -> Vec<Self> {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }
    fn extend_from_le_bytes(bytes: &[u8], out: &mut Vec<Self>) {
        out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
    }
    // Sized once, then written in place: pushing 4-8 bytes at a time cost ~14 instructions
    // per value (a capacity check each); decompressing TREFHT 701.0M -> 690.2M instructions.
    fn as_le_bytes(values: &[Self]) -> Option<&[u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice(values))
    }
    fn extend_le_bytes(values: &[Self], out: &mut Vec<u8>) {
        if let Some(b) = Self::as_le_bytes(values) {
            out.extend_from_slice(b);
            return;
        }
        let start = out.len();
        out.resize(start + values.len() * 8, 0);
        for (c, v) in out[start..].chunks_exact_mut(8).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The zero-copy view is exactly the per-value little-endian conversion.
        #[test]
        fn le_byte_view_is_the_conversion(a in prop::collection::vec(any::<u32>(), 0..64),
                                          b in prop::collection::vec(any::<u64>(), 0..64)) {
            let a: Vec<f32> = a.into_iter().map(f32::from_bits).collect();
            let b: Vec<f64> = b.into_iter().map(f64::from_bits).collect();
            let conv_a: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            let conv_b: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
            if let Some(view) = f32::as_le_bytes(&a) {
                prop_assert_eq!(view, &conv_a[..]);
            }
            if let Some(view) = f64::as_le_bytes(&b) {
                prop_assert_eq!(view, &conv_b[..]);
            }
            let (mut out_a, mut out_b) = (vec![7u8], vec![7u8]);
            f32::extend_le_bytes(&a, &mut out_a);
            f64::extend_le_bytes(&b, &mut out_b);
            prop_assert_eq!(&out_a[1..], &conv_a[..]);
            prop_assert_eq!(&out_b[1..], &conv_b[..]);
        }
    }

    #[test]
    fn le_bytes_roundtrip_in_blocks() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32).sin() * 1e3).collect();
        let b: Vec<f64> = (0..1000u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let mut ab = vec![7u8];
        f32::extend_le_bytes(&a, &mut ab);
        let expect: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(ab[1..], expect[..]);
        let mut back = Vec::new();
        for block in ab[1..].chunks(12) {
            f32::extend_from_le_bytes(block, &mut back);
        }
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut bb = Vec::new();
        f64::extend_le_bytes(&b, &mut bb);
        let mut back = Vec::new();
        f64::extend_from_le_bytes(&bb, &mut back);
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    fn check_order<T: Float>(vals: &[T]) {
        for w in vals.windows(2) {
            assert!(
                w[0].to_ordered() < w[1].to_ordered(),
                "{:?} !< {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn ordered_is_monotone_on_special_values() {
        check_order(&[
            f32::NEG_INFINITY,
            -1.0e30,
            -1.0,
            -f32::MIN_POSITIVE,
            -1.0e-45,
            -0.0,
            0.0,
            1.0e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ]);
        check_order(&[
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            5e-324,
            1.0,
            f64::INFINITY,
        ]);
    }

    proptest! {
        #[test]
        fn ordered_roundtrips_every_f32_pattern(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            let o = v.to_ordered();
            prop_assert!(o <= u64::from(u32::MAX));
            prop_assert_eq!(f32::from_ordered(o).to_bits(), bits);
        }

        #[test]
        fn ordered_roundtrips_every_f64_pattern(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(f64::from_ordered(v.to_ordered()).to_bits(), bits);
        }

        #[test]
        fn ordered_is_monotone_f32(
            a in prop::num::f32::ANY.prop_filter("finite", |v| v.is_finite()),
            b in prop::num::f32::ANY.prop_filter("finite", |v| v.is_finite()),
        ) {
            // Ordered pairs without rejecting half the cases (`prop_assume!` ran out of
            // rejects at 4000 cases); equal values (and -0.0 / +0.0) are not `<`.
            let (a, b) = if a < b { (a, b) } else { (b, a) };
            if a < b {
                prop_assert!(a.to_ordered() < b.to_ordered());
            } else {
                prop_assert!(a.to_bits() == b.to_bits() || a == 0.0);
            }
        }
    }
}
