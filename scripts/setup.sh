#!/usr/bin/env bash
# Installs, from PyPI only, into the git-ignored, project-local .libtorch/:
# - .libtorch/site: libtorch 2.13.0, the version tch 0.26 binds, from the wheel `torch==2.13.0`.
#   .cargo/config.toml points LIBTORCH there, so every cargo command in this workspace builds
#   and links against it.
# - .libtorch/tools: the official Cityscapes evaluation (`cityscapesscripts`), which the tests
#   run to check that `search eval` computes the same numbers, TensorBoard's event reader,
#   which they run to read our event files back, and onnx and onnxruntime, with which
#   `search export` writes ONNX and the tests run it.
# - Gloo's headers (Debian's libgloo-dev, with apt-get when run as root) and, into
#   .libtorch/cuda-headers, the CUDA headers NCCL's path needs, for distributed runs.
# Run it as often as you like: a complete install is not repeated. See docs/setup.md.
set -euo pipefail

TORCH_VERSION=2.13.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.libtorch/site"
staging="$root/.libtorch/site.partial"
marker="$dest/.autodeeplab-installed"

# The official evaluation and the only packages it imports, TensorBoard's event reader (the
# test that reads our event files back), and onnx (which torch's ONNX exporter needs, for
# `search export`) and onnxruntime (which the tests and docs/deploy.md run the exported network
# with), each with the packages it imports; pinned, without dependency resolution
# (cityscapesscripts declares a `typing` backport that breaks Python 3).
TOOLS="cityscapesscripts==2.3.0 numpy==2.4.6 pillow==13.0.0 pyquaternion==0.9.9 tensorboard==2.20.0 protobuf==6.33.1 absl-py==2.3.1 packaging==26.4 onnx==1.23.2 ml_dtypes==0.6.0 typing_extensions==4.16.0 onnxruntime==1.32.0 flatbuffers==25.12.19"
tools="$root/.libtorch/tools"

# The CUDA headers that c10d's NCCL header needs and the torch wheel's CUDA packages leave out
# (crt/ and CCCL's nv/), for the distributed shim's NCCL path; pinned to the CUDA release the
# wheel's cuda-toolkit requirement installs; headers only (18 MB), next to .libtorch/site.
CUDA_HEADERS="nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85"
cuda_headers="$root/.libtorch/cuda-headers"

torch_done=false
if [[ -f "$marker" && "$(cat "$marker")" == "torch==$TORCH_VERSION" && -f "$dest/torch/lib/libtorch_cpu.so" ]]; then
  torch_done=true
fi
# Gloo's headers (Debian's libgloo-dev) for the distributed shim of the `search` crate: only
# their declarations are compiled in, the engine is libtorch's own Gloo (docs/distributed.md).
gloo_headers() {
  [[ -f "${GLOO_INCLUDE_DIR:-/nonexistent}/gloo/algorithm.h" || -f /usr/include/gloo/algorithm.h || -f /usr/local/include/gloo/algorithm.h ]]
}
if ! gloo_headers; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing Gloo's headers (libgloo-dev) for distributed runs"
    apt-get install -y --no-install-recommends libgloo-dev >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends libgloo-dev >/dev/null; } \
      || echo "setup: WARNING: could not install libgloo-dev; distributed CPU runs (and their tests) need it" >&2
  else
    echo "setup: WARNING: Gloo's headers are missing: install libgloo-dev (sudo apt-get install libgloo-dev) or set" >&2
    echo "       GLOO_INCLUDE_DIR, then rebuild; until then distributed CPU runs (and their tests) are unavailable" >&2
  fi
fi

python="${PYTHON:-python3}"
python_checked=false
# Python with pip, checked once and only when something has to be installed.
check_python() {
  $python_checked && return 0
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup: '$python' not found. libtorch is installed from PyPI with pip, so this needs Python >= 3.10 with pip" >&2
    echo "       (Debian/Ubuntu: apt-get install python3 python3-pip; or set PYTHON=/path/to/python3)." >&2
    exit 1
  fi
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "setup: '$python' has no pip. Install it (Debian/Ubuntu: apt-get install python3-pip," >&2
    echo "       or '$python -m ensurepip --upgrade'), or set PYTHON to a python3 that has pip." >&2
    exit 1
  fi
  python_checked=true
}
pip_install() {
  # No pip cache: it would hold a second copy of every wheel (about 3.5 GB for torch) on a disk
  # that CI shares.
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --disable-pip-version-check --no-input \
    --no-cache-dir --no-warn-script-location "$@"
}
# Pinned packages without dependency resolution into their own folder: staged, then renamed,
# with the package list as the marker (a changed list installs again).
install_pinned() { # what, folder, packages
  local what="$1" folder="$2" packages="$3"
  if [[ -f "$folder/.autodeeplab-installed" && "$(cat "$folder/.autodeeplab-installed")" == "$packages" ]]; then
    return 0
  fi
  check_python
  echo "setup: installing $what into ${folder#"$root/"} ($packages)"
  rm -rf "$folder.partial"
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  pip_install --no-deps --target "$folder.partial" $packages
  rm -rf "$folder"
  mv "$folder.partial" "$folder"
  echo "$packages" > "$folder/.autodeeplab-installed"
}

install_pinned "the official Cityscapes evaluation and the Python tools of the tests" "$tools" "$TOOLS"
install_pinned "the CUDA headers of the NCCL path" "$cuda_headers" "$CUDA_HEADERS"
if $torch_done; then
  echo "setup: libtorch $TORCH_VERSION already installed in .libtorch/site"
  exit 0
fi

check_python
echo "setup: installing torch==$TORCH_VERSION (libtorch and the CUDA libraries it links, about 4 GB) into .libtorch/site"
rm -rf "$staging" "$staging.deps"
mkdir -p "$root/.libtorch"
# The wheels are unpacked as they come: the install peaks near 5 GB. Say so before pip fails
# half-way with "No space left on device".
free_kib="$(df -Pk "$root/.libtorch" | awk 'NR == 2 { print $4 }')"
if [[ -n "$free_kib" && "$free_kib" -lt $((5 * 1024 * 1024)) ]]; then
  echo "setup: $root/.libtorch has $((free_kib / 1024)) MiB free; installing libtorch needs about 5 GiB" >&2
  exit 1
fi
# First the torch wheel alone, then what it requires except triton (the compiler behind
# torch.compile, 0.7 GB, which neither libtorch nor `import torch` loads). pip cannot leave out
# one requirement, so the list comes from the wheel's own metadata.
pip_install --no-deps --target "$staging" "torch==$TORCH_VERSION"
requirements="$root/.libtorch/torch-requirements.txt"
"$python" - "$staging" > "$requirements" <<'PY'
import email, glob, sys
(meta,) = glob.glob(f"{sys.argv[1]}/torch-*.dist-info/METADATA")
for req in email.message_from_file(open(meta)).get_all("Requires-Dist") or []:
    name = req.split(";")[0].strip().lower()
    if "extra ==" in req or name.startswith("triton"):
        continue
    print(req)
PY
pip_install --target "$staging.deps" -r "$requirements"
# Move the requirements beside torch; their console scripts (bin/) are not needed.
for entry in "$staging.deps"/*; do
  name="$(basename "$entry")"
  if [[ "$name" != bin && ! -e "$staging/$name" ]]; then
    mv "$entry" "$staging/$name"
  fi
done
rm -rf "$staging.deps" "$requirements"

installed="$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" "$staging/torch/version.py")"
if [[ "${installed%%+*}" != "$TORCH_VERSION" ]]; then
  echo "setup: pip installed torch '$installed', expected $TORCH_VERSION" >&2
  exit 1
fi
if [[ ! -f "$staging/torch/lib/libtorch_cpu.so" ]]; then
  echo "setup: the torch wheel has no lib/libtorch_cpu.so; this platform's wheel cannot serve as libtorch" >&2
  exit 1
fi

# Swap in the finished install in one step, so an interrupted run never looks complete.
rm -rf "$dest"
mv "$staging" "$dest"
echo "torch==$TORCH_VERSION" > "$marker"
echo "setup: libtorch $installed installed in .libtorch/site"
