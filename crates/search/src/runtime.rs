//! Process-wide runtime tuning, applied once at start-up by the binary, before any tensor
//! exists (docs/performance.md): the allocator's purge policy, oneDNN's primitive cache, and
//! torch's thread count. The binary installs mimalloc as the global allocator (its `override`
//! feature also serves libtorch's `malloc`, `free` and `posix_memalign`): with glibc's allocator
//! about a fifth of a small-crop search step went to `_int_malloc` and chunk consolidation.

extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
}

/// Everything this module tunes; call first thing in `main`.
pub fn tune() {
    keep_freed_memory_mapped();
    size_onednn_primitive_cache();
}

/// "mimalloc" when a CPU tensor libtorch allocates lies in mimalloc's heap (the override
/// reaches libtorch), else "system".
pub fn tensor_allocator() -> &'static str {
    let t = tch::Tensor::zeros([4096], (tch::Kind::Float, tch::Device::Cpu));
    // SAFETY: a query of mimalloc's address ranges; the pointer is only compared, not read.
    if unsafe { mi_is_in_heap_region(t.data_ptr()) } {
        "mimalloc"
    } else {
        "system"
    }
}

/// Keeps freed memory mapped instead of handing it back to the OS: a search step frees and
/// re-allocates the same activations every step, and with mimalloc's defaults each step
/// re-faulted them (845k page faults and a third of the time in the kernel on a crop-321,
/// 6-layer bench; 92k without). Freed memory is purged with `MADV_FREE` (the kernel may take it
/// back under memory pressure) rather than decommitted, and never eagerly. Each option is set
/// only if it still has mimalloc 3's documented default (the crate is pinned), so that a
/// renumbered option enum is left alone rather than misconfigured, and only if the user has not
/// set it in the environment (`MIMALLOC_PURGE_DECOMMITS`, `MIMALLOC_PURGE_DELAY`).
fn keep_freed_memory_mapped() {
    // (index in `mi_option_e`, its environment variable, documented default, our value)
    let options: [(std::ffi::c_int, &str, std::ffi::c_long, std::ffi::c_long); 2] =
        [(5, "MIMALLOC_PURGE_DECOMMITS", 1, 0), (16, "MIMALLOC_PURGE_DELAY", 1000, -1)];
    for (option, variable, default, value) in options {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        // SAFETY: plain getters and setters of mimalloc's option table, linked in by the allocator.
        unsafe {
            if mi_option_get(option) == default {
                mi_option_set(option, value);
            }
        }
    }
}

/// oneDNN (libtorch's CPU convolutions) caches 1024 compiled primitives by default; the search
/// network's convolutions come in more shapes than that (four levels, mixed ops of 1 to 5 edges,
/// 1 to 3 batched transitions, forward and two backward passes each), so the default cache
/// thrashes and primitives are rebuilt every step. 16384 entries cost no measurable memory.
/// oneDNN reads the variable on its first convolution, after this; a user's setting wins.
fn size_onednn_primitive_cache() {
    const VARIABLE: &str = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";
    if std::env::var_os(VARIABLE).is_none() {
        std::env::set_var(VARIABLE, "16384");
    }
}

/// Sets torch's intra-op threads: `flag` (`--threads`) wins over `config` (a config's
/// `execution.threads`); with neither, libtorch's choice stands.
pub fn set_threads(flag: Option<i32>, config: Option<i32>) -> anyhow::Result<()> {
    if let Some(threads) = flag.or(config) {
        anyhow::ensure!(threads >= 1, "--threads {threads}: needs at least one thread");
        tch::set_num_threads(threads);
    }
    Ok(())
}
