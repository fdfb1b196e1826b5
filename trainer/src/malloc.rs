//! glibc `malloc` settings for the training process: keep large freed blocks for reuse.
//!
//! Why: glibc serves every allocation above its mmap threshold (128 KiB at first, raised
//! towards 32 MiB as large blocks are freed) with a fresh `mmap` and unmaps it on `free`, and
//! gives heap memory above its trim threshold back to the kernel. A training step allocates
//! and frees the same large activations, gradients and GEMM outputs every step, so the kernel
//! page-faulted and zeroed each of them again: 499 k page faults in a 17-step `bench` run
//! against 81 k with these settings, and the LM head's forward GEMM (a fresh 32 MiB output)
//! at 50 GFLOP/s against 64 on one thread (docs/performance.md). The process keeps up to
//! 1 GiB of freed heap instead, as PyTorch's caching allocator does on GPUs.
//!
//! Skipped when `GLIBC_TUNABLES` is set, so that a user's own malloc tuning wins.
#![allow(unsafe_code)]

/// Allocations below this come from the heap and are reused (glibc's largest allowed value).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free heap memory at the top beyond this goes back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra heap requested from the kernel each time the heap grows.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 64 << 20;

/// Apply the settings (once, at start-up, before the large allocations). Returns whether
/// they were applied: `false` off glibc, with `GLIBC_TUNABLES` set, or if glibc refused one.
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (libc::M_TOP_PAD, TOP_PAD),
        ];
        // SAFETY: `mallopt` only sets allocator parameters; it returns 0 for a refused value.
        settings.iter().all(|&(param, value)| unsafe { libc::mallopt(param, value) } == 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        // The test binary's own allocator; the values are within glibc's limits.
        if std::env::var_os("GLIBC_TUNABLES").is_none() {
            assert!(super::keep_freed_memory());
        }
    }
}
