#!/usr/bin/env bash
# Builds `.gpu/`: the `search` binary and the CUDA test binary, stripped, for a GPU host that has
# PyTorch but no network and no Rust (../shared/docs/gpu-device.md, docs/setup.md), with
# `.gpu/run.sh`, the one prepared pass to run there.
#
#   scripts/gpu-bundle.sh [--torch 2.11.0]
#
# 1. Installs the `torch==VERSION` wheel from PyPI into the git-ignored .libtorch/gpu-VERSION/
#    (once: staged, checked, then renamed, like scripts/setup.sh).
# 2. Copies the working tree into the git-ignored .gpu-build/tree, pins tch and torch-sys to the
#    version that binds that libtorch (tch 0.24 for 2.11, 0.26 for 2.13), and builds there with
#    LIBTORCH pointing at the wheel. If the tree no longer compiles against that tch, it says
#    which items broke.
# 3. Strips the binaries into .gpu/bin, copies run.sh and the configs, checks the size (< 60 MiB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch=2.11.0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --torch) torch="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu-bundle: unknown argument '$1' (usage: scripts/gpu-bundle.sh [--torch 2.11.0])" >&2; exit 2 ;;
  esac
done
case "$torch" in
  2.11.0) tch=0.24.0 ;;
  2.13.0) tch=0.26.0 ;;
  *) echo "gpu-bundle: no known tch release binds libtorch $torch (known: 2.11.0 -> tch 0.24.0, 2.13.0 -> tch 0.26.0)" >&2; exit 2 ;;
esac
start=$(date +%s)

# 1. The wheel.
site="$root/.libtorch/gpu-$torch"
marker="$site/.autodeeplab-installed"
if [[ -f "$marker" && "$(cat "$marker")" == "torch==$torch" && -f "$site/torch/lib/libtorch_cpu.so" ]]; then
  echo "gpu-bundle: torch $torch already installed in $site"
else
  python="${PYTHON:-python3}"
  command -v "$python" >/dev/null || { echo "gpu-bundle: '$python' not found (set PYTHON)" >&2; exit 1; }
  echo "gpu-bundle: installing torch==$torch into $site (several GB, once)"
  rm -rf "$site.partial"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --disable-pip-version-check --no-input \
    --no-warn-script-location --target "$site.partial" "torch==$torch"
  installed="$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" "$site.partial/torch/version.py")"
  if [[ "${installed%%+*}" != "$torch" || ! -f "$site.partial/torch/lib/libtorch_cpu.so" ]]; then
    echo "gpu-bundle: pip installed torch '$installed' without lib/libtorch_cpu.so; expected $torch" >&2
    exit 1
  fi
  rm -rf "$site"
  mv "$site.partial" "$site"
  echo "torch==$torch" > "$marker"
fi

# 2. A copy of the tree with the matching pins.
# The CUDA headers c10d's NCCL header needs and the wheel's nvidia packages leave out (crt/ and
# CCCL's nv/), of the wheel's own CUDA release, for the distributed shim's NCCL path.
headers="$site-cuda-headers"
if [[ ! -f "$headers/.autodeeplab-installed" ]]; then
  runtime="$(ls -d "$site"/nvidia_cuda_runtime*.dist-info 2>/dev/null | head -1)"
  version="$(basename "$runtime" | sed -n 's/^nvidia_cuda_runtime[a-z0-9_]*-\([0-9]*\)\.\([0-9]*\)\..*/\1.\2/p')"
  major="${version%%.*}"
  case "$major" in
    12) packages="nvidia-cuda-nvcc-cu12==$version.* nvidia-cuda-cccl-cu12==$version.*" ;;
    13) packages="nvidia-cuda-crt==$version.* nvidia-cuda-cccl==$version.*" ;;
    *) packages="" ;;
  esac
  if [[ -n "$packages" ]]; then
    echo "gpu-bundle: installing the CUDA $version headers of the NCCL path ($packages)"
    rm -rf "$headers.partial"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    PIP_ROOT_USER_ACTION=ignore "${PYTHON:-python3}" -m pip install --disable-pip-version-check --no-input \
      --no-cache-dir --no-warn-script-location --no-deps --target "$headers.partial" $packages
    rm -rf "$headers"
    mv "$headers.partial" "$headers"
    echo "$packages" > "$headers/.autodeeplab-installed"
  else
    echo "gpu-bundle: no CUDA runtime package found in $site: the bundle is built without NCCL"
  fi
fi
export ADL_CUDA_HEADERS="$headers"

build="$root/.gpu-build"
tree="$build/tree"
rm -rf "$tree"
mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree")
sed -i -e "s/^tch = \"=[0-9.]*\"/tch = \"=$tch\"/" -e "s/^torch-sys = \"=[0-9.]*\"/torch-sys = \"=$tch\"/" "$tree/Cargo.toml"
grep -q "^tch = \"=$tch\"" "$tree/Cargo.toml" || { echo "gpu-bundle: could not pin tch in $tree/Cargo.toml" >&2; exit 1; }
export LIBTORCH="$site/torch" CARGO_TARGET_DIR="$build/target"
log="$build/build.log"
echo "gpu-bundle: building against libtorch $torch with tch $tch (log: $log)"
if ! (cd "$tree" && cargo build --release -p search --bin search && \
      cargo test --release -p search --test cuda --no-run --message-format=json > "$build/tests.json") > "$log" 2>&1; then
  echo "gpu-bundle: the tree does not build against tch $tch / libtorch $torch; what broke:" >&2
  grep -E "^(error|warning: unused)|^  --> " "$log" | head -40 >&2 || tail -40 "$log" >&2
  exit 1
fi
cuda_tests="$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "cuda" and m.get("executable"):
        print(m["executable"])
' "$build/tests.json" | tail -1)"
[[ -x "$cuda_tests" ]] || { echo "gpu-bundle: the CUDA test binary was not found in $build/tests.json" >&2; exit 1; }

# 3. The bundle.
out="$root/.gpu"
rm -rf "$out.partial"
mkdir -p "$out.partial/bin"
strip -o "$out.partial/bin/search" "$CARGO_TARGET_DIR/release/search"
strip -o "$out.partial/bin/cuda-tests" "$cuda_tests"
cp "$root/scripts/gpu-run.sh" "$out.partial/run.sh"
chmod +x "$out.partial/run.sh"
cp -r "$root/configs" "$out.partial/configs"
printf 'torch %s\ntch %s\ncommit %s\nbuilt %s\n' "$torch" "$tch" "$(cd "$root" && git rev-parse --short HEAD)" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out.partial/BUILD"
size=$(du -sm "$out.partial" | cut -f1)
if (( size >= 60 )); then
  echo "gpu-bundle: the bundle is $size MiB, over the 60 MiB limit" >&2
  exit 1
fi
rm -rf "$out"
mv "$out.partial" "$out"
echo "gpu-bundle: .gpu/ ready, $size MiB, in $(( $(date +%s) - start )) s (torch $torch, tch $tch)"
