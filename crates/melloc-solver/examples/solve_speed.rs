//! Times `PeriodicSolver::solve_into` (deterministic FFT) against `solve_estimate_into`
//! (RustFFT scalar) on grid shapes of the shared data sets.
//! `cargo run --release -p melloc-solver --example solve_speed [ROWSxCOLS ...]`
use std::time::Instant;

use melloc_core::Stencil;
use melloc_solver::PeriodicSolver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut shapes = Vec::new();
    for a in std::env::args().skip(1) {
        let (r, c) = a.split_once('x').ok_or("shape must be ROWSxCOLS")?;
        shapes.push((r.parse::<usize>()?, c.parse::<usize>()?));
    }
    if shapes.is_empty() {
        shapes = vec![(241, 480), (1750, 3500)];
    }
    let s = Stencil::new([0.1, -0.3, 0.2, 0.7, 1.0, 0.4, 0.05, 0.6, 0.1]);
    println!(
        "{:>12} {:>14} {:>14} {:>6} {:>10}",
        "shape", "ours ms", "rustfft ms", "ratio", "max diff"
    );
    for (nr, nc) in shapes {
        let n = nr * nc;
        let f: Vec<f64> = (0..n).map(|i| (i as f64 * 0.001).sin()).collect();
        let mut solver = PeriodicSolver::new(nr, nc)?;
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        let reps = (20_000_000 / n).clamp(3, 50);
        let mut best = (f64::MAX, f64::MAX);
        solver.solve_estimate_into(&s, &f, 0.0, &mut b)?; // plans RustFFT outside the timing
        for _ in 0..reps {
            let t = Instant::now();
            solver.solve_into(&s, &f, 0.0, &mut a)?;
            best.0 = best.0.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            solver.solve_estimate_into(&s, &f, 0.0, &mut b)?;
            best.1 = best.1.min(t.elapsed().as_secs_f64());
        }
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        println!(
            "{:>12} {:>14.2} {:>14.2} {:>6.2} {:>10.1e}",
            format!("{nr}x{nc}"),
            best.0 * 1e3,
            best.1 * 1e3,
            best.0 / best.1,
            diff
        );
    }
    Ok(())
}
