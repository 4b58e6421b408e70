//! Build script of the `search` crate: the shared libtorch linking (`../torch-link.rs`), and the
//! C++ shim that reaches libtorch's c10d process groups for distributed runs (`csrc/dist.cpp`,
//! docs/distributed.md). c10d's own headers ship with libtorch; ProcessGroupGloo's header also
//! includes Gloo's, which `scripts/setup.sh` installs (Debian's `libgloo-dev`; only its
//! declarations are used, the code is libtorch's own Gloo). Without them the shim is built
//! without Gloo and a distributed CPU run says so.

#[path = "../torch-link.rs"]
mod torch_link;

use std::path::{Path, PathBuf};

fn main() {
    torch_link::main();
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports its libtorch directory");
    let include = Path::new(&lib).join("../include");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    let gloo: Option<PathBuf> = std::env::var("GLOO_INCLUDE_DIR")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/include", "/usr/local/include"].map(PathBuf::from))
        .find(|dir| dir.join("gloo/algorithm.h").is_file());
    let base = || {
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
        build
    };
    let mut build = base();
    match &gloo {
        Some(dir) => {
            println!("cargo:rerun-if-changed={}", dir.join("gloo/algorithm.h").display());
            build.include(dir).define("USE_C10D_GLOO", None).define("ADL_WITH_GLOO", None);
        }
        None => println!(
            "cargo:warning=Gloo's headers were not found (scripts/setup.sh installs libgloo-dev): distributed CPU runs \
             are not available in this build"
        ),
    }
    // A libtorch whose c10d headers differ (another version) must not break the build: the
    // shim is then built without c10d, and distributed runs say so.
    if let Err(e) = build.try_compile("adl_dist") {
        println!(
            "cargo:warning=the c10d shim did not compile against this libtorch ({e}); distributed runs are \
             unavailable in this build"
        );
        base().define("ADL_NO_C10D", None).compile("adl_dist");
    }
}
