//! Process-wide settings for programs that compress or decompress many chunks: the `melloc`
//! command-line tool and the bench call [`keep_freed_memory`] first thing. A library never
//! changes them on its own; a program embedding melloc decides for itself.

/// Asks the C allocator to keep freed memory for reuse instead of handing it back to the
/// operating system; returns whether the settings took. With glibc's defaults, a block of
/// 128 KiB or more (adaptively up to 32 MiB) is its own `mmap`, and freeing it (or trimming the
/// heap) returns its pages, so every chunk of a large file, and every candidate of a chunk,
/// page-faults its working set in again: 41K page faults compressing PrecipRate-mrms (6 chunks)
/// at one thread. With the `mmap` threshold at glibc's maximum (32 MiB) and a 1 GiB trim
/// threshold, freed blocks are reused: 12.7K page faults, and compressing PrecipRate-mrms took
/// 26% less CPU, RATE-opera 23%, TREFHT 7%, fice 6% (median of 5, CLI, one thread), for
/// 0.2-1.8 MB more peak RSS (TREFHT 18.8 -> 19.8 MB). Each allocator arena (one per worker
/// thread) keeps its own freed memory, so the peak grows with `-T` on multi-chunk files
/// (PrecipRate-mrms: 2.35x the input at one thread, 3.42x at two; 1.51x and 2.75x since the CLI
/// streams its input and output chunk by chunk). Does nothing (and returns `false`) on other
/// platforms.
///
/// Rejected: mimalloc as the CLI's global allocator. Compressing took 20% less CPU over 8
/// files (PrecipRate-mrms -29%), but peak RSS grew 2-3x (TREFHT 19 -> 54 MB, THETA-levitus
/// 24 -> 70 MB), against a budget of 3x the input.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's largest accepted `mmap` threshold on 64-bit targets.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: `mallopt` only sets parameters of glibc's allocator (it takes the allocator's
        // lock); no memory is touched and no pointer is passed.
        #[allow(unsafe_code)]
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::keep_freed_memory());
    }
}
