//! FPZIP (LLNL), lossless mode (full precision), given the real dimensions, through `fpzip-sys`.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use anyhow::{bail, Context, Result};
use fpzip_sys as sys;
use melloc_core::DType;

use super::dims_fastest_first_3d;
use crate::codec::{Codec, Input, Output};
use crate::dataset::Field;

/// FPZIP with `prec = 0` (full precision, lossless) on the field as `nx, ny, nz` (fastest first;
/// 4-D merged to 3-D by joining the slow dimensions), with fpzip's own header in the stream.
#[derive(Debug)]
pub struct Fpzip;

fn dims_i32(field: &Field) -> Result<[c_int; 3]> {
    let d = dims_fastest_first_3d(&field.dims);
    let mut out = [0 as c_int; 3];
    for (o, x) in out.iter_mut().zip(d) {
        *o = c_int::try_from(x).context("FPZIP dimensions must fit in a C int")?;
    }
    Ok(out)
}

fn fpzip_type(dtype: DType) -> c_int {
    match dtype {
        DType::F32 => sys::FPZIP_TYPE_FLOAT as c_int,
        DType::F64 => sys::FPZIP_TYPE_DOUBLE as c_int,
    }
}

fn last_error() -> String {
    // SAFETY: `fpzip_errno` is a plain global int written by the library on the same thread
    // (the bench calls FPZIP from one thread at a time).
    let e = unsafe { sys::fpzip_errno };
    format!("fpzip error code {e}")
}

impl Codec for Fpzip {
    fn id(&self) -> &'static str {
        "fpzip"
    }
    fn label(&self) -> &'static str {
        "FPZIP"
    }
    fn settings(&self) -> String {
        "fpzip-sys 0.3 (FPZIP 1.3), prec = 0 (lossless), real dimensions nx,ny,nz fastest first, \
         4-D merged to 3-D, fpzip header included"
            .into()
    }
    fn compress(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let f = input.field;
        let [nx, ny, nz] = dims_i32(f)?;
        // FPZIP may expand incompressible data a little; leave ample room.
        let cap = f.bytes.len() + f.bytes.len() / 4 + 1024;
        let mut buf = vec![0u8; cap];
        // SAFETY: `buf` outlives the stream and is `cap` bytes long; FPZIP writes at most `cap`
        // bytes (it reports an overflow instead). `f.bytes` holds exactly nx*ny*nz values of the
        // declared type (checked when the file was loaded: size == product(dims) * elem size).
        // The handle is closed exactly once on every path.
        unsafe {
            let fpz = sys::fpzip_write_to_buffer(buf.as_mut_ptr().cast::<c_void>(), cap);
            if fpz.is_null() {
                bail!("fpzip_write_to_buffer failed");
            }
            (*fpz).type_ = fpzip_type(f.dtype);
            (*fpz).prec = 0;
            (*fpz).nx = nx;
            (*fpz).ny = ny;
            (*fpz).nz = nz;
            (*fpz).nf = 1;
            if sys::fpzip_write_header(fpz) == 0 {
                let e = last_error();
                sys::fpzip_write_close(fpz);
                bail!("fpzip_write_header: {e}");
            }
            let n = sys::fpzip_write(fpz, f.bytes.as_ptr().cast::<c_void>());
            let e = last_error();
            sys::fpzip_write_close(fpz);
            if n == 0 || n > cap {
                bail!("fpzip_write: {e}");
            }
            buf.truncate(n);
        }
        Ok(buf)
    }
    fn decompress(&self, compressed: &[u8], field: &Field, _threads: usize) -> Result<Output> {
        let [nx, ny, nz] = dims_i32(field)?;
        let mut out = vec![0u8; field.bytes.len()];
        // SAFETY: the stream is read from `compressed`, which `compress` produced (trusted
        // input in the bench; FPZIP's buffer reader has no length bound). The header's type and
        // dimensions are checked against the field before `fpzip_read` writes nx*ny*nz values
        // into `out`, which holds exactly that many bytes. The handle is closed on every path.
        unsafe {
            let fpz = sys::fpzip_read_from_buffer(compressed.as_ptr().cast::<c_void>());
            if fpz.is_null() {
                bail!("fpzip_read_from_buffer failed");
            }
            if sys::fpzip_read_header(fpz) == 0 {
                let e = last_error();
                sys::fpzip_read_close(fpz);
                bail!("fpzip_read_header: {e}");
            }
            let h = *fpz;
            if h.type_ != fpzip_type(field.dtype)
                || (h.nx, h.ny, h.nz, h.nf) != (nx, ny, nz, 1)
                || h.prec != 0 && h.prec != 8 * field.dtype.n_bytes() as c_int
            {
                sys::fpzip_read_close(fpz);
                bail!(
                    "fpzip header (type {}, prec {}, {}x{}x{}x{}) does not match the field",
                    h.type_,
                    h.prec,
                    h.nx,
                    h.ny,
                    h.nz,
                    h.nf
                );
            }
            let n = sys::fpzip_read(fpz, out.as_mut_ptr().cast::<c_void>());
            let e = last_error();
            sys::fpzip_read_close(fpz);
            if n == 0 {
                bail!("fpzip_read: {e}");
            }
        }
        Ok(Output::Bytes(out))
    }
}
