//! Runs one route (`causal`, the default, or `paper`) over every file of a data directory
//! (default `/work/shared/data`),
//! checks bit-exactness, and prints per-file ratio and single-thread MB/s next to `xz -6` and
//! `zstd -19` of the same raw bytes, plus the aggregate ratio and geometric means.
//!
//! ```text
//! cargo run -p melloc-format --release --example route_ratio -- [DIR] [CHUNK_MB] [FILTER] [ROUTE]
//! ```
//!
//! Files are named `VAR_d0_d1[_d2].f32|f64` (C order, slowest first). A 3-D file is cut into
//! chunks of whole slices of about CHUNK_MB (default 4); a 2-D file into chunks of whole rows.
//! Sizes count every section as the container stores it (zstd -9 when smaller, else raw) plus
//! 16 bytes per section for the container's framing. Times are the route's encode/decode only
//! (no back end, no verification). The bench (`cargo xtask bench`) is the reference; this is
//! the quick loop for working on one route.
//! Peer sizes come from the `xz` and `zstd` binaries, cached in `/tmp/melloc_peers.txt`.
//! `MELLOC_REPEATS=N` times every chunk N times and keeps the fastest; `MELLOC_CPU_TIME=1`
//! times on-CPU time of the thread instead of wall time (both for shared machines), and then
//! keeps the mean of the N runs (the CPU clock advances in scheduler ticks, see `Times`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use melloc_core::{BlockDims, Float};
use melloc_format::route::{self, RouteConfig, RouteId};

const SECTION_OVERHEAD: usize = 16;
const PEER_CACHE: &str = "/tmp/melloc_peers.txt";

fn peer_size(cmd: &str, args: &[&str], path: &Path) -> Option<usize> {
    let out = Command::new(cmd).args(args).arg(path).output().ok()?;
    out.status.success().then_some(out.stdout.len())
}

fn load_cache() -> HashMap<String, (usize, usize)> {
    let mut m = HashMap::new();
    if let Ok(s) = std::fs::read_to_string(PEER_CACHE) {
        for line in s.lines() {
            let p: Vec<&str> = line.split_whitespace().collect();
            if let [name, xz, zs] = p[..] {
                if let (Ok(x), Ok(z)) = (xz.parse(), zs.parse()) {
                    m.insert(name.to_string(), (x, z));
                }
            }
        }
    }
    m
}

/// Wall time, or with `MELLOC_CPU_TIME` set the thread's on-CPU time from
/// `/proc/thread-self/schedstat` (time spent waiting for a shared core is not counted).
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Clock {
    fn start() -> Self {
        let cpu_ns = if std::env::var_os("MELLOC_CPU_TIME").is_some() {
            thread_cpu_ns()
        } else {
            None
        };
        Self {
            wall: Instant::now(),
            cpu_ns,
        }
    }
    fn elapsed(&self) -> f64 {
        match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 * 1e-9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// The timings of the repeats of one chunk: the fastest wall time, or with `MELLOC_CPU_TIME`
/// the mean CPU time. The kernel updates the thread's schedstat at scheduler ticks (~4 ms),
/// so a single reading is quantised to ticks and the fastest of several is biased low (a
/// chunk shorter than a tick read as 0 s, "inf" MB/s); the sum over repeats is not.
#[derive(Default)]
struct Times {
    min: Option<f64>,
    sum: f64,
    n: usize,
}

impl Times {
    fn add(&mut self, t: f64) {
        self.min = Some(self.min.map_or(t, |m| m.min(t)));
        self.sum += t;
        self.n += 1;
    }
    fn result(&self) -> f64 {
        if std::env::var_os("MELLOC_CPU_TIME").is_some() {
            self.sum / self.n.max(1) as f64
        } else {
            self.min.unwrap_or(0.0)
        }
    }
}

struct Outcome {
    out_bytes: usize,
    enc_s: f64,
    dec_s: f64,
}

fn run<T: Float>(
    id: RouteId,
    bytes: &[u8],
    dims: &[usize],
    chunk_bytes: usize,
) -> Result<Outcome, String> {
    let values = T::vec_from_le_bytes(bytes);
    let (n_s, n_r, n_c) = match dims {
        [n] => (1, 1, *n),
        [r, c] => (1, *r, *c),
        [s, r, c] => (*s, *r, *c),
        _ => return Err(format!("unsupported dims {dims:?}")),
    };
    // Chunk along the slowest axis in whole slices (3-D) or whole rows (2-D).
    let (unit_len, n_units, mk): (usize, usize, Box<dyn Fn(usize) -> BlockDims>) = if n_s > 1 {
        (
            n_r * n_c,
            n_s,
            Box::new(move |u| BlockDims::new(u, n_r, n_c)),
        )
    } else {
        (n_c, n_r, Box::new(move |u| BlockDims::new(1, u, n_c)))
    };
    let per_chunk = (chunk_bytes / (unit_len * T::N_BYTES)).clamp(1, n_units);
    let mut out = Outcome {
        out_bytes: 0,
        enc_s: 0.0,
        dec_s: 0.0,
    };
    let cfg = RouteConfig::default();
    let repeats: usize = std::env::var("MELLOC_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut u0 = 0;
    while u0 < n_units {
        let u = per_chunk.min(n_units - u0);
        let block = &values[u0 * unit_len..(u0 + u) * unit_len];
        let bd = mk(u);
        // Timings over `MELLOC_REPEATS` runs (default 1): the machine is shared.
        let mut times = Times::default();
        let mut secs = Vec::new();
        for _ in 0..repeats {
            let t = Clock::start();
            secs = route::encode(id, block, bd, &cfg).map_err(|e| e.to_string())?;
            times.add(t.elapsed());
        }
        out.enc_s += times.result();
        if u0 == 0 && std::env::var_os("MELLOC_VERBOSE").is_some() {
            if let Ok(info) = route::describe(id, &secs, bd, T::DTYPE) {
                eprintln!("  {} | {}", info.integerisation, info.notes.join(" | "));
            }
            let sz: Vec<usize> = secs.iter().map(|s| s.data.len()).collect();
            eprintln!("  section bytes {sz:?}");
        }
        out.out_bytes += secs
            .iter()
            .map(|s| {
                let z = zstd::bulk::compress(&s.data, 9).map_or(usize::MAX, |c| c.len());
                z.min(s.data.len()) + SECTION_OVERHEAD
            })
            .sum::<usize>();
        let mut times = Times::default();
        let mut back: Vec<T> = Vec::new();
        for _ in 0..repeats {
            let t = Clock::start();
            back = route::decode(id, &secs, bd).map_err(|e| e.to_string())?;
            times.add(t.elapsed());
        }
        out.dec_s += times.result();
        if back.len() != block.len()
            || back
                .iter()
                .zip(block)
                .any(|(a, b)| a.to_bits_u64() != b.to_bits_u64())
        {
            return Err("NOT BIT-EXACT".into());
        }
        u0 += u;
    }
    Ok(out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("/work/shared/data", String::as_str);
    let chunk_mb: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4.0);
    let filter = args.get(3).cloned().unwrap_or_default();
    let (id, rname) = match args.get(4).map_or("causal", String::as_str) {
        "causal" => (RouteId::Causal, "causal"),
        "paper" => (RouteId::Paper, "paper"),
        other => {
            eprintln!("unknown route `{other}` (expected causal or paper)");
            std::process::exit(2);
        }
    };
    let mut cache = load_cache();
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| (n.ends_with(".f32") || n.ends_with(".f64")) && n.contains(&filter))
            .collect(),
        Err(e) => {
            eprintln!("cannot read {dir}: {e}");
            std::process::exit(2);
        }
    };
    names.sort();
    println!(
        "| file | MB | {rname} | xz -6 | zstd -19 | {rname}/best | enc MB/s | dec MB/s |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let (mut tot_in, mut tot_out, mut tot_xz, mut tot_zs) = (0usize, 0usize, 0usize, 0usize);
    let (mut lg, mut lg_xz, mut lg_zs, mut lg_best) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut enc_s, mut dec_s) = (0.0f64, 0.0f64);
    let mut n_files = 0usize;
    let mut failures = 0usize;
    for name in &names {
        let path = Path::new(dir).join(name);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let stem = &name[..name.len() - 4];
        let dims: Vec<usize> = stem
            .split('_')
            .skip(1)
            .filter_map(|d| d.parse().ok())
            .collect();
        let (xz, zs) = match cache.get(name) {
            Some(&p) => p,
            None => {
                let xz = peer_size("xz", &["-6", "-c"], &path).unwrap_or(bytes.len());
                let zs = peer_size("zstd", &["-19", "-c", "-q"], &path).unwrap_or(bytes.len());
                cache.insert(name.clone(), (xz, zs));
                let lines: String = cache
                    .iter()
                    .map(|(k, (x, z))| format!("{k} {x} {z}\n"))
                    .collect();
                let _ = std::fs::write(PEER_CACHE, lines);
                (xz, zs)
            }
        };
        let chunk = (chunk_mb * 1e6) as usize;
        let res = if name.ends_with(".f32") {
            run::<f32>(id, &bytes, &dims, chunk)
        } else {
            run::<f64>(id, &bytes, &dims, chunk)
        };
        let o = match res {
            Ok(o) => o,
            Err(e) => {
                println!("| {name} | FAILED: {e} |");
                failures += 1;
                continue;
            }
        };
        let mb = bytes.len() as f64 / 1e6;
        let r = bytes.len() as f64 / o.out_bytes as f64;
        let rx = bytes.len() as f64 / xz as f64;
        let rz = bytes.len() as f64 / zs as f64;
        let best = rx.max(rz);
        println!(
            "| {name} | {mb:.2} | {r:.3} | {rx:.3} | {rz:.3} | {:.3} | {:.1} | {:.1} |",
            r / best,
            mb / o.enc_s,
            mb / o.dec_s
        );
        tot_in += bytes.len();
        tot_out += o.out_bytes;
        tot_xz += xz;
        tot_zs += zs;
        lg += r.ln();
        lg_xz += rx.ln();
        lg_zs += rz.ln();
        lg_best += best.ln();
        enc_s += o.enc_s;
        dec_s += o.dec_s;
        n_files += 1;
    }
    let nf = n_files.max(1) as f64;
    println!(
        "\n{n_files} files, {:.1} MB. aggregate: {rname} {:.3}, xz {:.3}, zstd {:.3}. geomean: {rname} {:.3}, xz {:.3}, zstd {:.3}, best(xz,zstd) {:.3}. MB/s: enc {:.1}, dec {:.1}",
        tot_in as f64 / 1e6,
        tot_in as f64 / tot_out.max(1) as f64,
        tot_in as f64 / tot_xz.max(1) as f64,
        tot_in as f64 / tot_zs.max(1) as f64,
        (lg / nf).exp(),
        (lg_xz / nf).exp(),
        (lg_zs / nf).exp(),
        (lg_best / nf).exp(),
        tot_in as f64 / 1e6 / enc_s,
        tot_in as f64 / 1e6 / dec_s,
    );
    if failures > 0 {
        eprintln!("{failures} files FAILED");
        std::process::exit(1);
    }
}
