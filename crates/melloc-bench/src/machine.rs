//! What the run happened on: CPU, cores, OS, compiler.

use std::time::{SystemTime, UNIX_EPOCH};

/// Facts recorded with every result.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo (`model name`).
    pub cpu: String,
    /// Logical CPUs listed in /proc/cpuinfo.
    pub logical_cpus: usize,
    /// CPUs this process may use (`std::thread::available_parallelism`).
    pub available: usize,
    /// Kernel release.
    pub os: String,
    /// The rustc that built this binary.
    pub rustc: String,
    /// Build profile of this binary.
    pub profile: &'static str,
    /// UTC start time, ISO 8601.
    pub started_utc: String,
}

impl Machine {
    /// Reads the facts (missing ones become "unknown").
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let logical_cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let available = std::thread::available_parallelism().map_or(0, |n| n.get());
        let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        Self {
            cpu,
            logical_cpus,
            available,
            os,
            rustc: env!("MELLOC_BENCH_RUSTC").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug (timings are NOT representative)"
            } else {
                "release"
            },
            started_utc: utc_now(),
        }
    }
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
