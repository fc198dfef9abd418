//! ZFP (LLNL) in reversible (lossless) mode, given the real dimensions, through `zfp-sys`.
#![allow(unsafe_code)]

use std::ffi::c_void;

use anyhow::{bail, Result};
use melloc_core::DType;
use zfp_sys as sys;

use super::dims_fastest_first_3d;
use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// ZFP reversible mode, serial execution, full ZFP header in the stream. Dimensions are passed
/// in ZFP's convention (`nx` fastest): a C-order `d0 x d1 x d2` array is `nx=d2, ny=d1, nz=d0`;
/// singleton dimensions are dropped and 4-D is merged to 3-D by joining the slowest dimensions.
#[derive(Debug)]
pub struct ZfpReversible;

fn zfp_type(dtype: DType) -> sys::zfp_type {
    match dtype {
        DType::F32 => sys::zfp_type_zfp_type_float,
        DType::F64 => sys::zfp_type_zfp_type_double,
    }
}

/// Builds a field over `ptr`.
///
/// # Safety
/// `ptr` must point to `product(dims)` values of `dtype` that stay alive while the field is used.
unsafe fn make_field(ptr: *mut c_void, dtype: DType, dims: &[u64]) -> Result<*mut sys::zfp_field> {
    let [nx, ny, nz] = dims_fastest_first_3d(dims).map(|x| x as usize);
    let t = zfp_type(dtype);
    // SAFETY: forwarded from the caller; zfp only stores the pointer and sizes.
    let field = unsafe {
        if nz > 1 {
            sys::zfp_field_3d(ptr, t, nx, ny, nz)
        } else if ny > 1 {
            sys::zfp_field_2d(ptr, t, nx, ny)
        } else {
            sys::zfp_field_1d(ptr, t, nx)
        }
    };
    if field.is_null() {
        bail!("zfp_field allocation failed");
    }
    Ok(field)
}

impl Codec for ZfpReversible {
    fn id(&self) -> &'static str {
        "zfp"
    }
    fn label(&self) -> &'static str {
        "ZFP (reversible)"
    }
    fn settings(&self) -> String {
        "zfp-sys 0.4 (ZFP 1.0, static, serial), `zfp_stream_set_reversible`, real dimensions \
         (nx fastest), 4-D merged to 3-D, ZFP_HEADER_FULL in the stream"
            .into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let f = input.field;
        // SAFETY: the field points at `f.bytes` (product(dims) values of f.dtype, checked at load
        // time); zfp only reads through it during `zfp_compress`. The output bit stream wraps
        // `buf`, sized by `zfp_stream_maximum_size` for this field and mode, and both outlive
        // the stream. Every zfp object is freed exactly once before returning.
        unsafe {
            let field = make_field(f.bytes.as_ptr() as *mut c_void, f.dtype, &f.dims)?;
            let zfp = sys::zfp_stream_open(std::ptr::null_mut());
            if zfp.is_null() {
                sys::zfp_field_free(field);
                bail!("zfp_stream_open failed");
            }
            sys::zfp_stream_set_reversible(zfp);
            let cap = sys::zfp_stream_maximum_size(zfp, field);
            if cap == 0 {
                sys::zfp_stream_close(zfp);
                sys::zfp_field_free(field);
                bail!("zfp_stream_maximum_size returned 0");
            }
            let mut buf = vec![0u8; cap];
            let bs = sys::stream_open(buf.as_mut_ptr().cast::<c_void>(), cap);
            sys::zfp_stream_set_bit_stream(zfp, bs);
            sys::zfp_stream_rewind(zfp);
            let header_bits = sys::zfp_write_header(zfp, field, sys::ZFP_HEADER_FULL);
            let n = if header_bits == 0 {
                0
            } else {
                sys::zfp_compress(zfp, field)
            };
            sys::zfp_stream_close(zfp);
            sys::stream_close(bs);
            sys::zfp_field_free(field);
            if n == 0 || n > cap {
                bail!("zfp_compress failed (header bits {header_bits}, bytes {n})");
            }
            buf.truncate(n);
            Ok(buf)
        }
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        let mut out = vec![0u8; field.bytes.len()];
        // SAFETY: the field points at `out`, which holds product(dims) values of the dtype; the
        // header read back must describe the same type and size (checked) before
        // `zfp_decompress` writes through it. The bit stream reads `compressed` (bounded by its
        // length; zfp only reads in decompression). Every zfp object is freed once.
        unsafe {
            let zf = make_field(out.as_mut_ptr().cast::<c_void>(), field.dtype, &field.dims)?;
            let expected = ((*zf).type_, (*zf).nx, (*zf).ny, (*zf).nz);
            let zfp = sys::zfp_stream_open(std::ptr::null_mut());
            if zfp.is_null() {
                sys::zfp_field_free(zf);
                bail!("zfp_stream_open failed");
            }
            let bs = sys::stream_open(compressed.as_ptr() as *mut c_void, compressed.len());
            sys::zfp_stream_set_bit_stream(zfp, bs);
            sys::zfp_stream_rewind(zfp);
            let header_bits = sys::zfp_read_header(zfp, zf, sys::ZFP_HEADER_FULL);
            let got = ((*zf).type_, (*zf).nx, (*zf).ny, (*zf).nz);
            let ok = header_bits != 0 && got == expected;
            let n = if ok { sys::zfp_decompress(zfp, zf) } else { 0 };
            sys::zfp_stream_close(zfp);
            sys::stream_close(bs);
            sys::zfp_field_free(zf);
            if !ok {
                bail!("zfp header does not match the field (read {header_bits} bits)");
            }
            if n == 0 {
                bail!("zfp_decompress failed");
            }
        }
        Ok(Output::Bytes(out))
    }
}
