#!/usr/bin/env bash
# On a CUDA machine: set up, build, run the CUDA tests, then a short timed search on synthetic
# Cityscapes-sized data with the paper's search settings, and print the step time and the peak
# GPU memory. Usage: scripts/gpu-check.sh [STEPS] (default 20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-20}"
scripts/setup.sh
cargo build --release
target/release/search env
cargo test --release --test cuda -- --ignored

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
target/release/search synth --out "$work/data" --train 16 --val 2 --size 2048x1024
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/gpu-mem.txt" &
  sampler=$!
fi
start=$(date +%s.%N)
target/release/search run --config configs/cityscapes-search.toml --data "$work/data" --out "$work/run" \
  --device cuda --set epochs=2 --set arch_start_epoch=0 --set "steps_per_epoch=$steps" \
  --set eval_every_epochs=0 --set log_every_steps=5 --set checkpoint.every_steps=0 > /dev/null
end=$(date +%s.%N)
[[ -n "${sampler:-}" ]] && kill "$sampler" 2>/dev/null || true
python3 - "$work/run/metrics.jsonl" <<'PY'
import json, sys, statistics
steps = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"step"' in l]
ips = [s["images_per_second"] for s in steps[1:]] or [s["images_per_second"] for s in steps]
print(f"search step (batch 2, crop 321, F=8, L=12, weight + arch step): median {2 / statistics.median(ips):.3f} s "
      f"({statistics.median(ips):.1f} images/s over {len(ips)} logged windows)")
PY
echo "wall time of the timed search: $(echo "$end - $start" | bc) s"
if [[ -s "$work/gpu-mem.txt" ]]; then
  echo "peak GPU memory (nvidia-smi, whole device): $(sort -n "$work/gpu-mem.txt" | tail -1) MiB"
fi
