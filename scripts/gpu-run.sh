#!/usr/bin/env bash
# `.gpu/run.sh`: the one prepared pass on a GPU host (built by scripts/gpu-bundle.sh; see
# docs/setup.md). Needs python3 with torch (the libtorch the bundle was built for) and OUT, the
# folder that receives the log and summary.json.
#
#   OUT=<folder> .gpu/run.sh [--device cuda|cpu] [--quick] [--budget SECONDS]
#
# Prints `search env`, runs the CUDA tests, times the search steps at the paper's settings (crop
# 321, F = 8, L = 12) at batch 2 and 8 (weight step, architecture step, images/s, peak GPU memory),
# then retraining steps of the paper's network (F = 20, crop 769, batch 8) in fp32 and under float16
# and bfloat16 autocast, and measures the latency table of a cost-aware search at 1024x2048, F = 20.
# `--device cpu` runs the same chain at tiny sizes (how it is tested without a GPU);
# It also runs `search dist-check` on one rank (NCCL on CUDA). `--quick` takes fewer steps.
# Every stage has its own time limit and all of them share one budget (`--budget`, 450 s by
# default, so that the pass with its summary ends within 8 minutes): a stage gets at most what is
# left of it, and a stage that would get under 15 s is skipped and recorded as such.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
device=cuda
quick=false
budget=450
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=true; shift ;;
    --budget) budget="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1' (usage: OUT=<folder> run.sh [--device cuda|cpu] [--quick] [--budget SECONDS])" >&2; exit 2 ;;
  esac
done
[[ -n "${OUT:-}" ]] || { echo "run.sh: set OUT to the folder that receives the results" >&2; exit 2; }
[[ "$device" == cuda || "$device" == cpu ]] || { echo "run.sh: --device cuda or cpu, not '$device'" >&2; exit 2; }
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "run.sh: --budget takes whole seconds, not '$budget'" >&2; exit 2; }
deadline=$((SECONDS + budget))
mkdir -p "$OUT"
log="$OUT/run.log"
exec > >(tee -a "$log") 2>&1

torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || {
  echo "run.sh: python3 cannot import torch; this bundle needs the host's PyTorch" >&2; exit 1; }
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
search="$here/bin/search"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== bundle"; cat "$here/BUILD"
echo "== search env"
"$search" env --json > "$OUT/env.json" && cat "$OUT/env.json"

status=()
stage() { # name, time limit (s), command...
  local name="$1" limit="$2"; shift 2
  local left=$((deadline - SECONDS))
  if (( left < 15 )); then
    echo "== $name: skipped, ${left} s of the ${budget} s budget left"
    status+=("{\"stage\": \"$name\", \"exit\": null, \"skipped\": \"out of time\", \"seconds\": 0}")
    return 0
  fi
  (( limit > left )) && limit=$left
  echo "== $name (at most $limit s)"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  status+=("{\"stage\": \"$name\", \"exit\": $rc, \"seconds\": $((SECONDS - start))}")
  return 0
}

if [[ "$device" == cuda ]]; then
  stage "cuda tests" 120 "$here/bin/cuda-tests" --ignored --test-threads 1
fi
# The collective engine on one rank: NCCL on CUDA (NCCL cannot run two ranks on one GPU), Gloo on
# the CPU; its JSON line says whether this build has NCCL at all.
stage "distributed engine, one rank" 60 bash -c "WORLD_SIZE=1 MASTER_PORT=29533 '$search' dist-check \
  --device $device --mib 64 --dist-timeout-s 50 > '$OUT/dist-check.json'"
if [[ "$device" == cuda ]]; then
  crop=321; layers=12; steps=5; batches="2 8"; retrain_crop=769; retrain_f=20; size=2048x1024; iterations=8
  $quick && steps=3 && iterations=4
else
  crop=33; layers=3; steps=2; batches="2 4"; retrain_crop=33; retrain_f=4; size=96x48; iterations=3
fi
for batch in $batches; do
  stage "search steps, batch $batch" 150 bash -c "'$search' bench --config '$here/configs/cityscapes-search.toml' \
    --crop $crop --batch $batch --steps $steps --warmup 1 --set model.layers=$layers --device $device \
    > '$OUT/bench-batch$batch.json'"
done
# The latency table of a cost-aware search (docs/cost-aware.md) at the deployment size.
stage "latency table" 90 "$search" cost-table --device "$device" --size "$size" \
  --filter-multiplier "$retrain_f" --out "$OUT/cost-table.json"
stage "synthetic data" 60 "$search" synth --out "$work/data" --train 16 --val 2 --size "$size"
# fp32, then autocast to float16 (loss-scaled) and to bfloat16; the last is skipped first when
# the budget runs short.
for precision in false float16 bfloat16; do
  [[ "$device" == cpu && "$precision" != false ]] && continue  # autocast is CUDA-only
  autocast=true; dtype=$precision
  [[ "$precision" == false ]] && autocast=false && dtype=float16
  stage "retraining steps, autocast $precision" 150 "$search" train --arch paper \
    --config "$here/configs/cityscapes-retrain-s.toml" --data "$work/data" --out "$work/train-$precision" --device "$device" \
    --set iterations=$iterations --set eval_every=0 --set log_every_steps=1 --set checkpoint.every_steps=0 \
    --set model.filter_multiplier=$retrain_f --set "data.transform.crop=${retrain_crop}x${retrain_crop}" \
    --set data.loader.batch=8 --set autocast=$autocast --set autocast_dtype=$dtype
  [[ -f "$work/train-$precision/metrics.jsonl" ]] && cp "$work/train-$precision/metrics.jsonl" "$OUT/retrain-autocast-$precision.jsonl"
done

printf '%s\n' "${status[@]}" > "$OUT/stages.jsonl"
python3 - "$OUT" "$device" <<'PY'
import json, os, statistics, sys
out, device = sys.argv[1], sys.argv[2]
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None
summary = {"device": device, "env": load("env.json"),
           "stages": [json.loads(l) for l in open(os.path.join(out, "stages.jsonl"))], "search": [], "retrain": []}
for name in sorted(os.listdir(out)):
    if name.startswith("bench-batch"):
        try:
            b = json.load(open(os.path.join(out, name)))
        except ValueError:
            continue
        summary["search"].append({k: b.get(k) for k in ["batch", "crop", "weight_step", "arch_step",
                                                        "arch_step_second_order", "second_order_ratio",
                                                        "images_per_second", "peak_gpu_mib_first_order",
                                                        "peak_gpu_mib", "gpu_memory_source", "peak_rss_mib", "recomputed_layers",
                                                        "activation_budget_mib"]})
    if name.startswith("retrain-autocast-"):
        steps = [json.loads(l) for l in open(os.path.join(out, name)) if '"kind":"step"' in l]
        ips = [s["images_per_second"] for s in steps[1:]] or [s["images_per_second"] for s in steps]
        summary["retrain"].append({"autocast": name[len("retrain-autocast-"):-len(".jsonl")], "steps": len(steps),
                                   "images_per_second_median": statistics.median(ips) if ips else None,
                                   "peak_gpu_mib": max((s.get("peak_gpu_mib") or 0 for s in steps), default=None) or None,
                                   "fp16_scale": steps[-1].get("fp16_scale") if steps else None,
                                   "fp16_skipped_steps": steps[-1].get("fp16_skipped_steps") if steps else None})
table = load("cost-table.json")
if table:
    summary["cost_table"] = {"components": len(table["entries"]), "height": table["height"], "width": table["width"],
                             "filter_multiplier": table["filter_multiplier"],
                             "latency_ms_sum": sum(e.get("latency_ms") or 0 for e in table["entries"])}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
