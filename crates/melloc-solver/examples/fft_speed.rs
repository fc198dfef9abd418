//! Times `DftPlan` against RustFFT's scalar planner on the lengths of the shared data sets.
//! `cargo run --release -p melloc-solver --example fft_speed [len ...]`
use std::time::Instant;

use melloc_solver::DftPlan;
use rustfft::num_complex::Complex;
use rustfft::FftPlannerScalar;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let lens = if args.is_empty() {
        vec![97, 241, 480, 1750, 3500, 8761, 4096, 163842]
    } else {
        args
    };
    println!(
        "{:>8} {:>12} {:>12} {:>6}",
        "n", "ours ns/el", "rustfft", "ratio"
    );
    for n in lens {
        let batch = (1 << 20) / n + 1;
        let x: Vec<Complex<f64>> = (0..n * batch)
            .map(|i| Complex::new((i as f64).sin(), (i as f64 * 0.5).cos()))
            .collect();
        let plan = DftPlan::new(n)?;
        let mut sc = vec![Complex::new(0.0, 0.0); plan.scratch_len()];
        let rf = FftPlannerScalar::<f64>::new().plan_fft_forward(n);
        let mut rsc = vec![Complex::new(0.0, 0.0); rf.get_inplace_scratch_len()];
        let mut best = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let mut d = x.clone();
            let t = Instant::now();
            plan.forward(&mut d, &mut sc)?;
            best.0 = best.0.min(t.elapsed().as_secs_f64());
            let mut d = x.clone();
            let t = Instant::now();
            rf.process_with_scratch(&mut d, &mut rsc);
            best.1 = best.1.min(t.elapsed().as_secs_f64());
        }
        let per = |t: f64| t * 1e9 / (n * batch) as f64;
        println!(
            "{n:>8} {:>12.2} {:>12.2} {:>6.2}",
            per(best.0),
            per(best.1),
            best.0 / best.1
        );
    }
    Ok(())
}
