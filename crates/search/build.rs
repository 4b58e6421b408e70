//! Build script of the `search` crate: the shared libtorch linking (`../torch-link.rs`), and the
//! C++ shim that reaches libtorch's c10d process groups for distributed runs (`csrc/dist.cpp`,
//! docs/distributed.md). c10d's own headers ship with libtorch. ProcessGroupGloo's header also
//! includes Gloo's, which `scripts/setup.sh` installs (Debian's `libgloo-dev`; only its
//! declarations are used, the code is libtorch's own Gloo). ProcessGroupNCCL's (when libtorch
//! has CUDA) needs CUDA headers the wheel's nvidia packages leave out, which setup installs into
//! `.libtorch/cuda-headers`. The shim is built with what is there, and with less when a part
//! does not compile against this libtorch (another version's c10d): a distributed run then says
//! what this build lacks, and the build never fails for it. Two smaller shims need libtorch's
//! headers alone: the CUDA caching allocator's statistics (`csrc/memory.cpp`, `search::observe::gpu`) and
//! the autocast dtype (`csrc/autocast.cpp`, `search::train::precision`); each is built without its body
//! when it does not compile, and its functions then say so.

#[path = "../torch-link.rs"]
mod torch_link;

use std::path::{Path, PathBuf};

fn main() {
    torch_link::main();
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports its libtorch directory");
    let lib_dir = Path::new(&lib);
    let include = lib_dir.join("../include");
    // The CUDA caching allocator's statistics (`search::observe::gpu`) and the autocast dtype
    // (`search::train::precision`).
    optional_shim(&include, "csrc/memory.cpp", "adl_memory", "ADL_NO_ALLOCATOR_STATS", "the CUDA allocator statistics");
    optional_shim(&include, "csrc/autocast.cpp", "adl_autocast", "ADL_NO_AUTOCAST_DTYPE", "setting the autocast dtype");
    let site = lib_dir.join("../..");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=ADL_CUDA_HEADERS");
    // The CUDA headers setup adds beside the libtorch it installs (the GPU bundle names its own).
    let cuda_headers =
        std::env::var("ADL_CUDA_HEADERS").map(PathBuf::from).unwrap_or_else(|_| site.join("../cuda-headers"));
    println!("cargo:rerun-if-changed={}", cuda_headers.display());

    let gloo: Option<PathBuf> = std::env::var("GLOO_INCLUDE_DIR")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/include", "/usr/local/include"].map(PathBuf::from))
        .find(|dir| dir.join("gloo/algorithm.h").is_file());
    if gloo.is_none() {
        println!(
            "cargo:warning=Gloo's headers were not found (scripts/setup.sh installs libgloo-dev): distributed CPU runs \
             are unavailable in this build"
        );
    }

    let mut cuda_includes: Vec<PathBuf> = Vec::new();
    for root in [site.join("nvidia"), cuda_headers.join("nvidia")] {
        if let Ok(entries) = std::fs::read_dir(&root) {
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path().join("include"))).collect();
            dirs.sort();
            cuda_includes.extend(dirs.into_iter().filter(|d| d.is_dir()));
        }
    }
    let has = |file: &str| cuda_includes.iter().any(|d| d.join(file).is_file());
    let cuda = lib_dir.join("libtorch_cuda.so").is_file();
    let nccl = cuda && ["nccl.h", "cuda_runtime_api.h", "crt/host_config.h", "nv/target"].iter().all(|f| has(f));
    if cuda && !nccl {
        println!(
            "cargo:warning=this libtorch has CUDA but the CUDA headers of the NCCL path are missing (scripts/setup.sh \
             installs them): distributed CUDA runs are unavailable in this build"
        );
    }

    let configure = |with_nccl: bool, with_gloo: bool, with_c10d: bool| {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .file("csrc/dist.cpp")
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .flag("-std=c++17")
            .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
            .flag("-DGLOG_USE_GLOG_EXPORT")
            .warnings(false);
        if !with_c10d {
            build.define("ADL_NO_C10D", None);
        }
        if let (true, Some(dir)) = (with_gloo, &gloo) {
            build.include(dir).define("USE_C10D_GLOO", None).define("ADL_WITH_GLOO", None);
        }
        if with_nccl {
            for dir in &cuda_includes {
                build.include(dir);
            }
            build.define("USE_C10D_NCCL", None).define("USE_CUDA", None).define("ADL_WITH_NCCL", None);
        }
        build
    };
    let attempts = [(nccl, true, true), (false, true, true), (false, false, true)];
    for (with_nccl, with_gloo, with_c10d) in attempts {
        if (with_nccl, with_gloo) == (false, true) && gloo.is_none() && !nccl {
            continue;
        }
        match configure(with_nccl, with_gloo, with_c10d).try_compile("adl_dist") {
            Ok(()) => {
                if with_nccl {
                    // The shim calls c10_cuda itself (streams, events), not only through torch_cuda.
                    println!("cargo:rustc-link-lib=c10_cuda");
                }
                return;
            }
            Err(e) => println!(
                "cargo:warning=the c10d shim (NCCL: {with_nccl}, Gloo: {with_gloo}) did not compile against this \
                 libtorch: {e}; trying with less"
            ),
        }
    }
    println!("cargo:warning=distributed runs are unavailable in this build: the c10d shim compiles only without c10d");
    configure(false, false, false).compile("adl_dist");
}

/// A small C++ shim `file` that needs libtorch's headers alone, compiled as `lib`; compiled with
/// `fallback` defined (its functions then say they are unavailable) when it does not compile
/// against this libtorch, so that the build never fails for it.
fn optional_shim(include: &Path, file: &str, lib: &str, fallback: &str, what: &str) {
    println!("cargo:rerun-if-changed={file}");
    let configure = |full: bool| {
        let mut build = cc::Build::new();
        build.cpp(true).file(file).include(include).flag("-std=c++17").flag("-D_GLIBCXX_USE_CXX11_ABI=1");
        build.warnings(false);
        if !full {
            build.define(fallback, None);
        }
        build
    };
    if let Err(e) = configure(true).try_compile(lib) {
        println!("cargo:warning={what} did not compile against this libtorch: {e}; it is unavailable in this build");
        configure(false).compile(lib);
    }
}
