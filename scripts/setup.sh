#!/usr/bin/env bash
# Installs libtorch 2.13.0, the version tch 0.26 binds, from the PyPI wheel `torch==2.13.0`
# into .libtorch/site (git-ignored, project-local). .cargo/config.toml points LIBTORCH there,
# so every cargo command in this workspace builds and links against it. Run it as often as you
# like: once the install is complete it does nothing. See docs/setup.md.
set -euo pipefail

TORCH_VERSION=2.13.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.libtorch/site"
staging="$root/.libtorch/site.partial"
marker="$dest/.autodeeplab-installed"

if [[ -f "$marker" && "$(cat "$marker")" == "torch==$TORCH_VERSION" && -f "$dest/torch/lib/libtorch_cpu.so" ]]; then
  echo "setup: libtorch $TORCH_VERSION already installed in .libtorch/site"
  exit 0
fi

python="${PYTHON:-python3}"
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

echo "setup: installing torch==$TORCH_VERSION (libtorch and its CUDA libraries, about 4.7 GB) into .libtorch/site"
rm -rf "$staging"
mkdir -p "$root/.libtorch"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --disable-pip-version-check --no-input \
  --no-warn-script-location --target "$staging" "torch==$TORCH_VERSION"

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
