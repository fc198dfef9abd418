//! The streaming entry points: `compress_stream` writes exactly the bytes of `compress`
//! whatever the shape, chunking, thread count and read sizes; `decompress_stream` writes exactly
//! the original bytes; and both fail with a clear error (input, output or data) instead of
//! panicking or succeeding on bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{Cursor, Read, Write};

use melloc_format::{
    compress, compress_bytes, compress_stream, decompress_bytes, decompress_stream, inspect,
    CompressConfig, DType, DecompressConfig, Float, FormatError, RouteSpec, Shape,
};

/// A smooth field with some noise, NaN and -0.0, as little-endian bytes.
fn field<T: Float>(n: usize, from_f64: impl Fn(f64) -> T) -> (Vec<T>, Vec<u8>) {
    let values: Vec<T> = (0..n)
        .map(|i| match i % 97 {
            13 => from_f64(f64::NAN),
            14 => from_f64(-0.0),
            _ => from_f64(280.0 + (i as f64 * 0.013).sin() * 7.0 + (i % 5) as f64 * 0.01),
        })
        .collect();
    let mut bytes = Vec::new();
    T::extend_le_bytes(&values, &mut bytes);
    (values, bytes)
}

/// A reader that hands out at most `step` bytes per call (odd sizes split values).
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.step.min(buf.len()).min(self.bytes.len());
        buf[..k].copy_from_slice(&self.bytes[..k]);
        self.bytes = &self.bytes[k..];
        Ok(k)
    }
}

/// Compresses through `compress_stream` after a prefix already in the sink, and returns the
/// file (without the prefix) and the summary.
fn streamed(
    bytes: &[u8],
    dtype: DType,
    shape: &Shape,
    cfg: &CompressConfig,
    step: usize,
) -> (Vec<u8>, melloc_format::Compressed) {
    let mut out = Cursor::new(Vec::new());
    out.write_all(b"prefix").unwrap();
    let reader = Trickle { bytes, step };
    let summary = compress_stream(reader, dtype, shape, cfg, &mut out).unwrap();
    let out = out.into_inner();
    assert_eq!(&out[..6], b"prefix");
    (out[6..].to_vec(), summary)
}

#[test]
fn stream_writes_the_bytes_of_compress() {
    // (dims, chunk bytes): whole slices, row bands, row pieces, one chunk, a ragged last chunk.
    let cases: [(&[u64], usize); 6] = [
        (&[7, 30, 40], 3 * 30 * 40 * 4),
        (&[90, 70], 11 * 70 * 4),
        (&[3, 5, 900], 256 * 4),
        (&[20, 20], 1 << 20),
        (&[5, 33, 17], 2 * 33 * 17 * 4 + 5),
        (&[1, 4000], 999 * 4),
    ];
    for (dims, chunk_bytes) in cases {
        let shape = Shape::new(dims).unwrap();
        let n = shape.n_elements() as usize;
        let (values, bytes) = field::<f32>(n, |x| x as f32);
        for threads in [1, 2, 3] {
            let cfg = CompressConfig::default()
                .with_chunk_bytes(chunk_bytes)
                .with_threads(threads);
            let reference = compress(&values, &shape, &cfg).unwrap();
            assert_eq!(
                compress_bytes(&bytes, DType::F32, &shape, &cfg).unwrap(),
                reference
            );
            for step in [1 << 20, 4093, 3] {
                if step == 3 && n > 20_000 {
                    continue;
                }
                let (file, summary) = streamed(&bytes, DType::F32, &shape, &cfg, step);
                assert!(
                    file == reference,
                    "{dims:?} {chunk_bytes} T{threads} step {step}"
                );
                assert_eq!(summary.n_bytes, file.len() as u64);
                let info = inspect(&file).unwrap();
                let routes: Vec<_> = info.chunks.iter().map(|c| c.route).collect();
                assert_eq!(summary.routes, routes);
            }
        }
    }
}

#[test]
fn stream_of_f64_with_every_route_roundtrips_bit_exactly() {
    let shape = Shape::new(&[6, 50, 60]).unwrap();
    let (values, bytes) = field::<f64>(6 * 50 * 60, |x| x);
    for route in [
        RouteSpec::Auto,
        RouteSpec::Causal,
        RouteSpec::Paper,
        RouteSpec::Raw,
    ] {
        let cfg = CompressConfig::default()
            .with_route(route)
            .with_chunk_bytes(50 * 60 * 8)
            .with_threads(2);
        let (file, _) = streamed(&bytes, DType::F64, &shape, &cfg, 1000);
        assert!(
            file == compress(&values, &shape, &cfg).unwrap(),
            "{route:?}"
        );
        for threads in [1, 2, 4] {
            let dcfg = DecompressConfig::default().with_threads(threads);
            let mut out = Vec::new();
            let (dtype, back_shape) = decompress_stream(&file, &dcfg, &mut out).unwrap();
            assert_eq!((dtype, &back_shape), (DType::F64, &shape));
            assert!(out == bytes, "{route:?} T{threads}");
            assert_eq!(decompress_bytes(&file, &dcfg).unwrap().bytes, bytes);
        }
    }
}

#[test]
fn short_and_long_inputs_are_input_errors() {
    let shape = Shape::new(&[8, 20, 30]).unwrap();
    let (_, bytes) = field::<f32>(8 * 20 * 30, |x| x as f32);
    let cfg = CompressConfig::default().with_chunk_bytes(2 * 20 * 30 * 4);
    for cut in [0, 1, 2399, 2400, 9600, bytes.len() - 1] {
        let mut out = Cursor::new(Vec::new());
        let err = compress_stream(&bytes[..cut], DType::F32, &shape, &cfg, &mut out).unwrap_err();
        let FormatError::Input(msg) = &err else {
            panic!("cut {cut}: {err}");
        };
        assert!(
            msg.contains(&format!("ended after {cut} bytes")) && msg.contains("19200 bytes"),
            "cut {cut}: {msg}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let mut out = Cursor::new(Vec::new());
    let err = compress_stream(&longer[..], DType::F32, &shape, &cfg, &mut out).unwrap_err();
    assert!(
        matches!(&err, FormatError::Input(m) if m.contains("longer than the 19200 bytes")),
        "{err}"
    );
}

/// A reader that fails after `ok` bytes.
struct Failing<'a> {
    bytes: &'a [u8],
    ok: usize,
}

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("disk on fire"));
        }
        let k = self.ok.min(buf.len()).min(self.bytes.len());
        buf[..k].copy_from_slice(&self.bytes[..k]);
        self.bytes = &self.bytes[k..];
        self.ok -= k;
        Ok(k)
    }
}

/// A sink that accepts `room` bytes, then fails.
struct Full {
    inner: Cursor<Vec<u8>>,
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("no space left"));
        }
        let k = self.room.min(buf.len());
        self.room -= k;
        self.inner.write(&buf[..k])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for Full {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn reader_and_writer_failures_say_which() {
    let shape = Shape::new(&[8, 20, 30]).unwrap();
    let (_, bytes) = field::<f32>(8 * 20 * 30, |x| x as f32);
    for threads in [1, 2] {
        let cfg = CompressConfig::default()
            .with_chunk_bytes(20 * 30 * 4)
            .with_threads(threads);
        let reader = Failing {
            bytes: &bytes,
            ok: 5000,
        };
        let mut out = Cursor::new(Vec::new());
        let err = compress_stream(reader, DType::F32, &shape, &cfg, &mut out).unwrap_err();
        assert!(
            matches!(&err, FormatError::Input(m) if m.contains("at byte 5000 of 19200: disk on fire")),
            "{err}"
        );
        let full = compress(&field::<f32>(8 * 20 * 30, |x| x as f32).0, &shape, &cfg).unwrap();
        for room in [0, 100, full.len() / 2, full.len() - 1] {
            let mut out = Full {
                inner: Cursor::new(Vec::new()),
                room,
            };
            let err = compress_stream(&bytes[..], DType::F32, &shape, &cfg, &mut out).unwrap_err();
            assert!(
                matches!(&err, FormatError::Output(e) if e.to_string() == "no space left"),
                "room {room}: {err}"
            );
        }
        // The header's place is written twice (zeros, then the header), nothing else.
        let head = melloc_format::container::header_len(&shape, 8) as usize;
        let mut out = Full {
            inner: Cursor::new(Vec::new()),
            room: full.len() + head - 1,
        };
        let err = compress_stream(&bytes[..], DType::F32, &shape, &cfg, &mut out).unwrap_err();
        assert!(matches!(&err, FormatError::Output(_)), "{err}");
        let mut out = Full {
            inner: Cursor::new(Vec::new()),
            room: full.len() + head,
        };
        compress_stream(&bytes[..], DType::F32, &shape, &cfg, &mut out).unwrap();
        assert!(out.inner.into_inner() == full);
        // Decompression into a sink that fills up.
        let mut out = Full {
            inner: Cursor::new(Vec::new()),
            room: 3000,
        };
        let dcfg = DecompressConfig::default().with_threads(threads);
        let err = decompress_stream(&full, &dcfg, &mut out).unwrap_err();
        assert!(matches!(&err, FormatError::Output(_)), "{err}");
    }
}

#[test]
fn stream_decoding_of_damaged_files_fails_cleanly() {
    let shape = Shape::new(&[4, 9, 11]).unwrap();
    let (values, bytes) = field::<f32>(4 * 9 * 11, |x| x as f32);
    let cfg = CompressConfig::default().with_chunk_bytes(9 * 11 * 4);
    let file = compress(&values, &shape, &cfg).unwrap();
    let dcfg = DecompressConfig::default().with_threads(2);
    for cut in 0..file.len() {
        let mut out = Vec::new();
        assert!(
            decompress_stream(&file[..cut], &dcfg, &mut out).is_err(),
            "cut {cut}"
        );
    }
    for pos in 0..file.len() {
        let mut bad = file.clone();
        bad[pos] ^= 0x04;
        let mut out = Vec::new();
        // A flip the checksums cannot see must still give the original data.
        if decompress_stream(&bad, &dcfg, &mut out).is_ok() {
            assert!(out == bytes, "flip at {pos} decoded to other data");
        }
    }
}
