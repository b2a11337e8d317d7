//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for reuse; a daemon with
//! a few dozen threads whose start-up (configuration parsing, the first poll of every device,
//! the first subscription of thousands of items) briefly needs far more memory than it keeps
//! ends up holding most of that peak for good. Measured on the memory bench (1,000 devices x
//! 11 metrics): 218 MiB resident without a trim, 89 MiB with one (docs/performance.md). So the
//! binary asks glibc to return free pages now and then; the call takes a few milliseconds on a
//! thread of its own and changes nothing for the allocations in use.

use std::time::{Duration, Instant};

/// How often freed memory is returned.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Returns the free pages of every arena to the system; how long it took.
pub fn release_freed_memory() -> Duration {
    let started = Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes the arena locks
    // itself and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    started.elapsed()
}

/// Trims every [`TRIM_INTERVAL`] on a thread of its own for the life of the process.
pub fn start_trimming() {
    let spawned = std::thread::Builder::new()
        .name("memory-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            let took = release_freed_memory();
            tracing::trace!(event = "memory_trimmed", micros = took.as_micros() as u64);
        });
    if let Err(err) = spawned {
        tracing::warn!(event = "memory_trim_unavailable", error = %err, "freed memory stays with the allocator");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory freed by the process is given back: resident size drops after a trim.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_gives_freed_memory_back_to_the_system() {
        fn resident_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap()
        }
        // Many small blocks (below the mmap threshold, so they live in the heap), touched,
        // then freed except one at the end that keeps the heap from shrinking by itself.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 4_000]).collect();
        let keep = blocks.pop();
        let before_free = resident_kib();
        drop(blocks);
        let freed = resident_kib();
        release_freed_memory();
        let trimmed = resident_kib();
        drop(keep);
        assert!(
            trimmed + 100_000 < before_free,
            "the trim gave back less than 100 MB of 160 MB freed: {before_free} KiB in use, \
             {freed} KiB after free, {trimmed} KiB after the trim"
        );
    }
}
