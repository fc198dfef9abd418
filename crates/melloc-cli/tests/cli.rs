//! Behaviour of the `melloc` binary: help text, roundtrips, zstd-style file handling, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{field_f32, field_f64, listing, melloc_in, write};

/// Filters for text that varies between runs: speeds and temporary directories.
fn filters(dir: Option<&Path>) -> Vec<(String, String)> {
    let mut f = vec![(r"\d+\.\d+ MB/s".to_string(), "[SPEED]".to_string())];
    if let Some(d) = dir {
        f.insert(
            0,
            (regex_escape(&d.display().to_string()), "[TMP]".to_string()),
        );
    }
    f
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

macro_rules! snap {
    ($name:expr, $text:expr, $filters:expr) => {{
        let filters = $filters;
        let refs: Vec<(&str, &str)> = filters
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        insta::with_settings!({ filters => refs, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $text);
        });
    }};
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------- help text

#[test]
fn help_texts() {
    let dir = tmp();
    for (name, args) in [
        ("help_top", vec!["--help"]),
        ("help_compress", vec!["compress", "--help"]),
        ("help_decompress", vec!["decompress", "--help"]),
        ("help_info", vec!["info", "--help"]),
        ("help_test", vec!["test", "--help"]),
        ("help_demo", vec!["demo", "--help"]),
    ] {
        let r = melloc_in(dir.path(), &args, None);
        r.assert_ok();
        snap!(name, r.stdout_text(), filters(None));
    }
}

#[test]
fn short_flags_select_subcommands() {
    let dir = tmp();
    let r = melloc_in(dir.path(), &["-d", "--help"], None);
    assert!(r.stdout_text().starts_with("Decompress"));
    let r = melloc_in(dir.path(), &["-t", "--help"], None);
    assert!(r.stdout_text().starts_with("Decompress and verify"));
    let r = melloc_in(dir.path(), &["-l", "--help"], None);
    assert!(r.stdout_text().starts_with("Show header"));
    // No subcommand: usage on stderr, exit 2.
    let r = melloc_in(dir.path(), &[], None);
    assert_eq!(r.code, Some(2));
}

// ---------------------------------------------------------------- roundtrips

#[test]
fn roundtrip_with_shape_from_name() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[6, 20, 30]);
    write(d, "T-test_6_20_30.f32", &data);
    let r = melloc_in(d, &["compress", "T-test_6_20_30.f32"], None);
    r.assert_ok();
    assert!(
        r.stderr.contains(
            "dtype f32 and shape 6x20x30 (C order, slowest first) inferred from the file name"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("T-test_6_20_30.f32: 14400 -> "),
        "{}",
        r.stderr
    );
    // input kept by default
    assert_eq!(listing(d), ["T-test_6_20_30.f32", "T-test_6_20_30.f32.mlc"]);
    // decompress to the default name after moving the original away
    std::fs::rename(d.join("T-test_6_20_30.f32"), d.join("orig.f32")).unwrap();
    melloc_in(d, &["-d", "T-test_6_20_30.f32.mlc"], None).assert_ok();
    assert_eq!(std::fs::read(d.join("T-test_6_20_30.f32")).unwrap(), data);
    // -q prints nothing
    let r = melloc_in(d, &["-q", "-d", "-f", "T-test_6_20_30.f32.mlc"], None);
    r.assert_ok();
    assert_eq!(r.stderr, "");
}

#[test]
fn roundtrip_with_explicit_flags_and_options() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f64(&[5, 7, 9]);
    write(d, "data.bin", &data);
    // no dtype / shape: a clear error
    let r = melloc_in(d, &["compress", "data.bin"], None);
    r.assert_failed();
    snap!("error_no_dtype", r.stderr, filters(None));
    for (i, extra) in [
        vec![],
        vec!["--route", "raw", "--backend", "lz4"],
        vec!["--route", "causal", "--preset", "fast"],
        vec![
            "--route",
            "paper",
            "--backend",
            "zstd:3",
            "--chunk-mb",
            "0.001",
        ],
        vec!["--preset", "max", "-T2", "--backend", "none"],
    ]
    .into_iter()
    .enumerate()
    {
        let out = format!("c{i}.mlc");
        let mut args = vec![
            "compress", "data.bin", "--dtype", "f64", "--shape", "5x7x9", "-o", &out,
        ];
        args.extend(extra.iter().copied());
        melloc_in(d, &args, None).assert_ok();
        let back = format!("c{i}.out");
        melloc_in(d, &["decompress", &out, "-o", &back], None).assert_ok();
        assert_eq!(
            std::fs::read(d.join(&back)).unwrap(),
            data,
            "options {extra:?}"
        );
    }
}

#[test]
fn stdin_and_stdout() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[40, 50]);
    write(d, "f_40_50.f32", &data);
    // -c: compressed stream on stdout, no file written
    let r = melloc_in(d, &["compress", "-c", "f_40_50.f32"], None);
    r.assert_ok();
    let compressed = r.stdout.clone();
    assert_eq!(listing(d), ["f_40_50.f32"]);
    // `-` in: decompress from stdin to stdout
    let r = melloc_in(d, &["-d", "-"], Some(&compressed));
    r.assert_ok();
    assert_eq!(r.stdout, data);
    // raw stdin needs the layout flags
    let r = melloc_in(d, &["compress", "-"], Some(&data));
    r.assert_failed();
    assert!(r.stderr.contains("<stdin>"), "{}", r.stderr);
    let r = melloc_in(
        d,
        &["compress", "--dtype", "f32", "--shape", "40x50", "-"],
        Some(&data),
    );
    r.assert_ok();
    let r = melloc_in(d, &["-d", "-c", "-"], Some(&r.stdout));
    assert_eq!(r.stdout, data);
    // `-t` from stdin
    melloc_in(d, &["-t", "-"], Some(&compressed)).assert_ok();
    // -o - is stdout too
    let r = melloc_in(d, &["-d", "-", "-o", "-"], Some(&compressed));
    assert_eq!(r.stdout, data);
}

#[test]
fn streamed_outputs_are_the_same_everywhere() {
    // 16 chunks of one slice (8000 bytes): files at 1 and 2 threads, stdout, and stdin input
    // all give the same bytes; decompressing to a file (streamed) and to stdout gives the data.
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[16, 40, 50]);
    write(d, "s_16_40_50.f32", &data);
    let chunked = ["--chunk-mb", "0.01"];
    let run = |extra: &[&str], stdin: Option<&[u8]>| {
        let mut args = vec!["compress"];
        args.extend_from_slice(&chunked);
        args.extend_from_slice(extra);
        let r = melloc_in(d, &args, stdin);
        r.assert_ok();
        r.stdout
    };
    run(&["-T", "1", "s_16_40_50.f32", "-o", "t1.mlc"], None);
    run(&["-T", "2", "s_16_40_50.f32", "-o", "t2.mlc"], None);
    let piped = run(&["-T", "2", "-c", "s_16_40_50.f32"], None);
    let from_stdin = [
        "-T", "2", "--dtype", "f32", "--shape", "16x40x50", "-", "-o", "t3.mlc",
    ];
    run(&from_stdin, Some(&data));
    let t1 = std::fs::read(d.join("t1.mlc")).unwrap();
    assert!(std::fs::read(d.join("t2.mlc")).unwrap() == t1);
    assert!(std::fs::read(d.join("t3.mlc")).unwrap() == t1);
    assert!(piped == t1);
    melloc_in(d, &["-d", "-T", "2", "t1.mlc", "-o", "back.f32"], None).assert_ok();
    assert!(std::fs::read(d.join("back.f32")).unwrap() == data);
    let r = melloc_in(d, &["-d", "-T", "2", "-c", "t1.mlc"], None);
    r.assert_ok();
    assert!(r.stdout == data);
    melloc_in(d, &["-t", "-T", "2", "t1.mlc"], None).assert_ok();
}

#[test]
fn short_or_long_stdin_names_the_stage_and_leaves_no_file() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[16, 40, 50]);
    let mut longer = data.clone();
    longer.extend_from_slice(&[0; 4]);
    let cases = [
        (&data[..1000], "the data ended after 1000 bytes, in chunk 0"),
        (
            &data[..data.len() - 6],
            "the data ended after 127994 bytes, in chunk 15",
        ),
        (
            &longer[..],
            "the data is longer than the 128000 bytes the shape needs",
        ),
    ];
    for (input, message) in cases {
        for threads in ["1", "2"] {
            let args = [
                "compress",
                "-T",
                threads,
                "--chunk-mb",
                "0.01",
                "--dtype",
                "f32",
                "--shape",
                "16x40x50",
                "-",
                "-o",
                "out.mlc",
            ];
            let r = melloc_in(d, &args, Some(input));
            r.assert_failed();
            let expected = format!("melloc: error: reading <stdin>: {message}");
            assert!(r.stderr.contains(&expected), "{}", r.stderr);
            assert!(listing(d).is_empty(), "{:?}", listing(d));
        }
    }
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tmp();
    let d = dir.path();
    write(d, "a_10_10.f32", &field_f32(&[10, 10]));
    melloc_in(d, &["compress", "a_10_10.f32"], None).assert_ok();
    let before = std::fs::read(d.join("a_10_10.f32.mlc")).unwrap();
    let r = melloc_in(d, &["compress", "a_10_10.f32", "--backend", "none"], None);
    r.assert_failed();
    snap!("error_exists", r.stderr, filters(None));
    assert_eq!(std::fs::read(d.join("a_10_10.f32.mlc")).unwrap(), before);
    let r = melloc_in(d, &["-d", "a_10_10.f32.mlc"], None);
    r.assert_failed();
    assert!(r.stderr.contains("a_10_10.f32 already exists; use -f"));
    melloc_in(
        d,
        &["compress", "-f", "a_10_10.f32", "--backend", "none"],
        None,
    )
    .assert_ok();
    assert_ne!(std::fs::read(d.join("a_10_10.f32.mlc")).unwrap(), before);
    // -o onto the input itself
    let r = melloc_in(
        d,
        &["compress", "-f", "a_10_10.f32", "-o", "a_10_10.f32"],
        None,
    );
    r.assert_failed();
    assert!(
        r.stderr.contains("output would overwrite the input"),
        "{}",
        r.stderr
    );
    // decompressing a file without the suffix needs -o
    let r = melloc_in(d, &["-d", "a_10_10.f32"], None);
    r.assert_failed();
    snap!("error_suffix", r.stderr, filters(None));
    assert_eq!(listing(d), ["a_10_10.f32", "a_10_10.f32.mlc"]);
}

#[test]
fn rm_removes_input_after_success() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[3, 8, 9]);
    write(d, "b_3_8_9.f32", &data);
    melloc_in(d, &["compress", "--rm", "b_3_8_9.f32"], None).assert_ok();
    assert_eq!(listing(d), ["b_3_8_9.f32.mlc"]);
    melloc_in(d, &["-d", "--rm", "b_3_8_9.f32.mlc"], None).assert_ok();
    assert_eq!(listing(d), ["b_3_8_9.f32"]);
    assert_eq!(std::fs::read(d.join("b_3_8_9.f32")).unwrap(), data);
    // a failure keeps the input
    write(d, "c_3_3.f32", &[0u8; 35]);
    melloc_in(d, &["compress", "--rm", "c_3_3.f32"], None).assert_failed();
    assert_eq!(listing(d), ["b_3_8_9.f32", "c_3_3.f32"]);
}

#[test]
fn wrong_size_is_a_clear_error() {
    let dir = tmp();
    let d = dir.path();
    write(d, "x_10_10.f32", &[0u8; 396]);
    let r = melloc_in(d, &["compress", "x_10_10.f32"], None);
    r.assert_failed();
    snap!("error_size_from_name", r.stderr, filters(None));
    let r = melloc_in(d, &["compress", "x_10_10.f32", "--shape", "9x12"], None);
    r.assert_failed();
    snap!("error_size_from_flags", r.stderr, filters(None));
    let r = melloc_in(
        d,
        &["compress", "x_10_10.f32", "--shape", "9x1x1x1x1"],
        None,
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(listing(d), ["x_10_10.f32"]);
}

#[test]
fn several_inputs_continue_after_an_error() {
    let dir = tmp();
    let d = dir.path();
    write(d, "p_4_4.f32", &field_f32(&[4, 4]));
    write(d, "q_4_4.f32", &[0u8; 10]);
    write(d, "r_4_4.f32", &field_f32(&[4, 4]));
    let r = melloc_in(
        d,
        &["compress", "p_4_4.f32", "q_4_4.f32", "r_4_4.f32"],
        None,
    );
    r.assert_failed();
    assert!(r.stderr.contains("reading q_4_4.f32"), "{}", r.stderr);
    assert!(d.join("p_4_4.f32.mlc").exists() && d.join("r_4_4.f32.mlc").exists());
    assert!(!d.join("q_4_4.f32.mlc").exists());
    let r = melloc_in(
        d,
        &["compress", "p_4_4.f32", "r_4_4.f32", "-o", "x.mlc"],
        None,
    );
    r.assert_failed();
    assert!(
        r.stderr.contains("-o FILE takes a single input"),
        "{}",
        r.stderr
    );
    melloc_in(d, &["-t", "p_4_4.f32.mlc", "r_4_4.f32.mlc"], None).assert_ok();
}

// ---------------------------------------------------------------- corruption and `test`

#[test]
fn corrupted_file_fails_and_leaves_no_output() {
    let dir = tmp();
    let d = dir.path();
    write(d, "g_12_30_40.f32", &field_f32(&[12, 30, 40]));
    melloc_in(d, &["compress", "--rm", "g_12_30_40.f32"], None).assert_ok();
    let good = std::fs::read(d.join("g_12_30_40.f32.mlc")).unwrap();
    melloc_in(d, &["test", "g_12_30_40.f32.mlc"], None)
        .assert_ok()
        .stderr
        .contains("OK");
    // flip one bit in the middle and in the last byte
    for pos in [good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        write(d, "bad.mlc", &bad);
        let r = melloc_in(d, &["-d", "bad.mlc"], None);
        r.assert_failed();
        assert!(
            r.stderr.contains("melloc: error: decompressing bad.mlc: "),
            "{}",
            r.stderr
        );
        let r = melloc_in(d, &["-t", "bad.mlc"], None);
        r.assert_failed();
        assert!(r.stderr.contains("testing bad.mlc: "), "{}", r.stderr);
        assert_eq!(listing(d), ["bad.mlc", "g_12_30_40.f32.mlc"], "pos {pos}");
    }
    // truncated, and not a melloc file at all
    write(d, "bad.mlc", &good[..good.len() / 3]);
    melloc_in(d, &["-d", "bad.mlc"], None).assert_failed();
    write(d, "bad.mlc", b"hello world, certainly not melloc");
    let r = melloc_in(d, &["-d", "bad.mlc"], None);
    r.assert_failed();
    snap!("error_not_melloc", r.stderr, filters(None));
    assert_eq!(listing(d), ["bad.mlc", "g_12_30_40.f32.mlc"]);
    let r = melloc_in(d, &["-t", "missing.mlc"], None);
    r.assert_failed();
    assert!(r.stderr.contains("reading missing.mlc"), "{}", r.stderr);
}

// ---------------------------------------------------------------- .npy

fn npy_bytes(dims: &[u64], data: &[u8], descr: &str, fortran: bool) -> Vec<u8> {
    let shape: Vec<String> = dims.iter().map(u64::to_string).collect();
    let shape = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!("({})", shape.join(", "))
    };
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_in_and_out() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f64(&[4, 6, 10]);
    let npy = npy_bytes(&[4, 6, 10], &data, "<f8", false);
    write(d, "v.npy", &npy);
    melloc_in(d, &["compress", "v.npy"], None).assert_ok();
    let r = melloc_in(d, &["info", "--json", "v.npy.mlc"], None);
    r.assert_ok();
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j["dtype"], "f64");
    assert_eq!(j["shape"], serde_json::json!([4, 6, 10]));
    // default name v.npy.mlc -> v.npy is written as .npy
    std::fs::remove_file(d.join("v.npy")).unwrap();
    melloc_in(d, &["-d", "v.npy.mlc"], None).assert_ok();
    let back = std::fs::read(d.join("v.npy")).unwrap();
    let header = npyz::NpyHeader::from_reader(&back[..]).unwrap();
    assert_eq!(header.shape(), &[4, 6, 10]);
    assert!(back.ends_with(&data));
    assert_eq!(back.len() % 64, data.len() % 64);
    // -o raw: values only; --npy / -o x.npy: with header
    melloc_in(d, &["-d", "v.npy.mlc", "-o", "v.raw"], None).assert_ok();
    assert_eq!(std::fs::read(d.join("v.raw")).unwrap(), data);
    melloc_in(d, &["-d", "v.npy.mlc", "-o", "w.npy"], None).assert_ok();
    assert_eq!(std::fs::read(d.join("w.npy")).unwrap(), back);
    melloc_in(d, &["-d", "v.npy.mlc", "-c", "--npy"], None).assert_ok();
    // raw input decompressed with --npy gets X.npy
    write(d, "s_6_10.f32", &field_f32(&[6, 10]));
    melloc_in(d, &["compress", "--rm", "s_6_10.f32"], None).assert_ok();
    melloc_in(d, &["-d", "--npy", "s_6_10.f32.mlc"], None).assert_ok();
    let s = std::fs::read(d.join("s_6_10.f32.npy")).unwrap();
    let header = npyz::NpyHeader::from_reader(&s[..]).unwrap();
    assert_eq!(header.shape(), &[6, 10]);
    assert!(s.ends_with(&field_f32(&[6, 10])));
    // a .npy whose header contradicts the flags
    let r = melloc_in(
        d,
        &["compress", "w.npy", "-o", "z.mlc", "--dtype", "f32"],
        None,
    );
    r.assert_failed();
    assert!(
        r.stderr.contains("contradicts the .npy header"),
        "{}",
        r.stderr
    );
}

#[test]
fn npy_unsupported_layouts_are_clear_errors() {
    let dir = tmp();
    let d = dir.path();
    let data = field_f32(&[3, 4]);
    write(d, "fortran.npy", &npy_bytes(&[3, 4], &data, "<f4", true));
    write(d, "big.npy", &npy_bytes(&[3, 4], &data, ">f4", false));
    write(d, "int.npy", &npy_bytes(&[3, 4], &data, "<i4", false));
    write(d, "short.npy", &npy_bytes(&[3, 5], &data, "<f4", false));
    let mut all = String::new();
    for f in ["fortran.npy", "big.npy", "int.npy", "short.npy"] {
        let r = melloc_in(d, &["compress", f], None);
        r.assert_failed();
        all.push_str(&r.stderr);
    }
    snap!("error_npy", all, filters(None));
    assert_eq!(
        listing(d),
        ["big.npy", "fortran.npy", "int.npy", "short.npy"]
    );
}

// ---------------------------------------------------------------- info and demo

/// Sizes and ratios depend on the codec version: filtered out of the `info` snapshots.
fn info_filters() -> Vec<(String, String)> {
    let mut f = filters(None);
    f.push((r"\d+ -> \d+ bytes".into(), "[N] -> [N] bytes".into()));
    f.push((r"\(\d+\.\d+x\)".into(), "([RATIO])".into()));
    f.push((r"  \d+ bytes".into(), "  [N] bytes".into()));
    f
}

#[test]
fn info_human_and_json() {
    let dir = tmp();
    let d = dir.path();
    write(d, "h_3_16_24.f32", &field_f32(&[3, 16, 24]));
    melloc_in(
        d,
        &[
            "compress",
            "h_3_16_24.f32",
            "--route",
            "raw",
            "-o",
            "raw.mlc",
        ],
        None,
    )
    .assert_ok();
    let r = melloc_in(d, &["info", "raw.mlc"], None);
    r.assert_ok();
    snap!("info_raw", r.stdout_text(), info_filters());
    let r = melloc_in(d, &["-l", "--json", "raw.mlc"], None);
    r.assert_ok();
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j["shape"], serde_json::json!([3, 16, 24]));
    assert_eq!(j["original_bytes"], 3 * 16 * 24 * 4);
    assert_eq!(
        j["compressed_bytes"],
        std::fs::metadata(d.join("raw.mlc")).unwrap().len()
    );
    // several files: a JSON array; learned routes print without failing
    melloc_in(
        d,
        &[
            "compress",
            "h_3_16_24.f32",
            "--route",
            "paper",
            "-o",
            "p.mlc",
        ],
        None,
    )
    .assert_ok();
    melloc_in(d, &["compress", "h_3_16_24.f32", "-o", "a.mlc"], None).assert_ok();
    let r = melloc_in(d, &["info", "--json", "raw.mlc", "p.mlc", "a.mlc"], None);
    r.assert_ok();
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j.as_array().map(Vec::len), Some(3));
    let r = melloc_in(d, &["info", "--slices", "p.mlc", "a.mlc"], None);
    r.assert_ok();
    let text = r.stdout_text();
    assert!(text.contains("  dtype     f32\n"), "{text}");
    // the paper route reports what it learned (values depend on the codec: not snapshotted)
    let r = melloc_in(d, &["info", "p.mlc"], None);
    let text = r.stdout_text();
    if text.contains("route paper") {
        assert!(text.contains("    slice 0: pde "), "{text}");
        assert!(text.contains("f step"), "{text}");
        assert!(
            text.contains("    slices 1..3 (2 more; --slices lists them): "),
            "{text}"
        );
    }
    let r = melloc_in(d, &["info", "h_3_16_24.f32"], None);
    r.assert_failed();
    assert!(
        r.stderr.contains("reading the header of h_3_16_24.f32"),
        "{}",
        r.stderr
    );
}

#[test]
fn demo_roundtrips_every_route() {
    let dir = tmp();
    let d = dir.path();
    let r = melloc_in(d, &["demo", "--shape", "3x40x48", "--save", "."], None);
    r.assert_ok();
    let out = r.stdout_text();
    assert_eq!(out.matches("bit-exact").count(), 3, "{out}");
    assert!(out.contains("fill patch 9.96921e36"), "{out}");
    assert_eq!(listing(d), ["demo_3_40_48.f32"]);
    // the saved field goes through the other commands
    melloc_in(d, &["compress", "demo_3_40_48.f32"], None).assert_ok();
    melloc_in(d, &["test", "demo_3_40_48.f32.mlc"], None).assert_ok();
    let r = melloc_in(d, &["demo", "--shape", "50x60", "--dtype", "f64"], None);
    r.assert_ok();
}
