//! Prints how each file of a data folder integerises (grid or ordered bits, fixes, exceptions).
//! Usage: `cargo run --release -p melloc-core --example integerize_data -- ../shared/data`
use melloc_core::integer::{integerize, Integerized};
use melloc_core::Float;

fn report<T: Float>(name: &str, bytes: &[u8]) {
    let values = T::vec_from_le_bytes(bytes);
    let z: Integerized = integerize(&values);
    let n_exc = z.exception_bits.len();
    let (lo, hi) = z
        .ints
        .iter()
        .zip(&z.is_exception)
        .filter(|(_, &e)| !e)
        .fold((i64::MAX, i64::MIN), |(lo, hi), (&k, _)| {
            (lo.min(k), hi.max(k))
        });
    println!(
        "{name:40} {:45} fixes {:8} exceptions {:8} int span {}",
        z.kind.describe(),
        z.n_fixes(),
        n_exc,
        hi.saturating_sub(lo)
    );
}

fn per_slice(path: &std::path::Path) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((_, shape)) = melloc_core::shape::parse_sdrbench_name(&name) else {
        return;
    };
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let values = f32::vec_from_le_bytes(&bytes);
    let l = shape.slices();
    let n = (l.n_rows * l.n_cols) as usize;
    for (s, slice) in values.chunks(n).enumerate().take(6) {
        let z = integerize(slice);
        let (lo, hi) = z
            .ints
            .iter()
            .fold((i64::MAX, i64::MIN), |(a, b), &k| (a.min(k), b.max(k)));
        println!(
            "  slice {s}: {} fixes {} span {}",
            z.kind.describe(),
            z.n_fixes(),
            hi - lo
        );
    }
}

fn main() -> std::io::Result<()> {
    if let Ok(p) = std::env::var("PER_SLICE") {
        per_slice(std::path::Path::new(&p));
        return Ok(());
    }
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data".into());
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&p)?;
        if name.ends_with(".f32") {
            report::<f32>(&name, &bytes);
        } else if name.ends_with(".f64") {
            report::<f64>(&name, &bytes);
        }
    }
    Ok(())
}
