//! Every peer built into this binary roundtrips awkward fields bit for bit through the same
//! `measure` loop the bench uses (melloc itself is tested in its own crates).
#![allow(clippy::unwrap_used)]

use melloc_bench::codec::all_codecs;
use melloc_bench::dataset::Field;
use melloc_bench::runner::{measure, Prepared, Status, TimingPolicy};
use melloc_core::DType;

fn f32_field(dims: &[u64]) -> Field {
    let n: u64 = dims.iter().product();
    let special = [
        f32::from_bits(0x7fc0_1234), // NaN with payload
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1), // smallest subnormal
        9.969_21e36,       // netCDF fill
    ];
    let values: Vec<f32> = (0..n)
        .map(|i| {
            if i % 37 == 5 {
                special[(i / 37) as usize % special.len()]
            } else {
                let x = i as f32 * 0.013;
                280.0 + 10.0 * x.sin() + 0.001 * (i % 7) as f32
            }
        })
        .collect();
    Field {
        name: "synthetic.f32".into(),
        dtype: DType::F32,
        dims: dims.to_vec(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn f64_field(dims: &[u64]) -> Field {
    let n: u64 = dims.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|i| match i % 41 {
            3 => f64::from_bits(0x7ff8_0000_0000_beef),
            4 => -0.0,
            5 => f64::from_bits(3),
            _ => 101_325.0 + (i as f64 * 0.07).cos() * 250.0,
        })
        .collect();
    Field {
        name: "synthetic.f64".into(),
        dtype: DType::F64,
        dims: dims.to_vec(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

#[test]
fn peers_roundtrip_awkward_fields() {
    let policy = TimingPolicy {
        repeats: 1,
        cell_budget_s: 0.0,
        threads: 1,
    };
    let fields = [
        f32_field(&[7, 13, 17]),
        f32_field(&[1, 1001]),
        f32_field(&[3, 2, 5, 11]),
        f32_field(&[1]),
        f64_field(&[19, 23]),
        f64_field(&[5, 4, 3]),
    ];
    for field in &fields {
        let prepared = Prepared::new(field);
        for codec in all_codecs() {
            if codec.id().starts_with("melloc") {
                continue;
            }
            let m = measure(codec.as_ref(), "test", &prepared, &policy);
            match &m.status {
                Status::Ok | Status::NotApplicable(_) => {}
                Status::Failed(e) => {
                    panic!("{} on {:?} {:?}: {e}", codec.id(), field.dtype, field.dims)
                }
            }
        }
    }
}
