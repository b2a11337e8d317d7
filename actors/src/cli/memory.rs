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

/// The number of glibc arenas the gateway allocates from unless `MALLOC_ARENA_MAX` says
/// otherwise.
///
/// glibc gives threads arenas of their own (up to eight per core) so they do not wait on one
/// lock; each arena keeps its own free pages and the blocks still in use pin pages in all of
/// them. The gateway's threads allocate little at a time and glibc's per-thread cache serves
/// most small blocks without the arena lock, so one arena costs no measurable speed and keeps
/// memory in one place: the memory bench (1,000 devices x 11 metrics, a client on every
/// variable) averaged 135 MiB with glibc's default, 125 MiB with two arenas and 121 MiB with
/// one; mimalloc (178 MiB) and jemalloc (197 MiB; 126 MiB tuned) did no better
/// (docs/performance.md "Allocator").
pub const ARENAS: i32 = 1;

/// Limits glibc to [`ARENAS`] arenas (call before the first threads start). An operator's
/// `MALLOC_ARENA_MAX` wins. Returns whether the limit was set here.
pub fn limit_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; any value is valid for M_ARENA_MAX.
    unsafe {
        return libc::mallopt(libc::M_ARENA_MAX, ARENAS) == 1;
    }
    #[allow(unreachable_code)]
    false
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

    /// The number of arenas in glibc's own report (`malloc_info`).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn arenas() -> usize {
        let mut buffer: *mut libc::c_char = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: open_memstream allocates the buffer it reports; we read it after fclose
        // (which flushes it) and free it once.
        unsafe {
            let stream = libc::open_memstream(&mut buffer, &mut size);
            assert!(!stream.is_null(), "open_memstream failed");
            assert_eq!(libc::malloc_info(0, stream), 0, "malloc_info failed");
            libc::fclose(stream);
            let text = std::slice::from_raw_parts(buffer as *const u8, size);
            let count = String::from_utf8_lossy(text).matches("<heap nr=").count();
            libc::free(buffer.cast());
            count
        }
    }

    /// Threads started after the limit allocate from the arenas there are: eight threads
    /// allocating at once add none (without the limit each would get an arena of its own).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn threads_started_after_the_limit_share_the_arenas_there_are() {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            eprintln!("MALLOC_ARENA_MAX is set: the operator's value wins, nothing to check");
            return;
        }
        assert!(limit_arenas(), "mallopt refused M_ARENA_MAX");
        let before = arenas();
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let blocks: Vec<Vec<u8>> =
                        (0..1_000).map(|j| vec![(i + j) as u8; 200]).collect();
                    start.wait();
                    blocks.len()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), 1_000);
        }
        let after = arenas();
        assert!(
            after <= before,
            "the arenas grew from {before} to {after} despite the limit"
        );
    }

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
