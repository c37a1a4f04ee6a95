"""benchmarks/bench_sft.py runs on this CPU (--quick: a tiny Qwen3) and reports its figures; the padding-free layout
gives the plain layout's loss on the same conversations (no timing asserted: timings are the benchmark's output)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_sft.py"
VARIANT_KEYS = {
    "micro_batches",
    "tokens",
    "seconds",
    "tokens_per_s",
    "mfu",
    "summed_loss",
    "peak_micro_batch_tokens",
    "peak_memory_gb",
    "attn_implementation",
    "liger",
    "padding_free",
    "conversations_per_micro_batch",
}


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_bench_sft_quick_on_cpu_reports_both_variants():
    result = json.loads(run_bench("--quick").stdout.strip().splitlines()[-1])  # the last line is the JSON object
    keys = {"model", "device", "max_length", "params", "measures", "plain", "fast", "speedup", "loss_rel_diff"}
    assert set(result) >= keys
    plain, fast = result["plain"], result["fast"]
    assert set(plain) >= VARIANT_KEYS and set(fast) >= VARIANT_KEYS
    assert (plain["padding_free"], fast["padding_free"]) == (False, True)
    assert (plain["conversations_per_micro_batch"], fast["conversations_per_micro_batch"]) == (1, 2)
    assert plain["tokens"] == fast["tokens"] and plain["micro_batches"] == 2 * fast["micro_batches"] == 4
    assert fast["peak_micro_batch_tokens"] == 2 * plain["peak_micro_batch_tokens"] == 2 * result["max_length"]
    # no flash-attn on this machine: the fast variant says so and runs sdpa on the packed row
    assert fast["attn_implementation"] == "sdpa" and "flash_attention_2" in fast["attn_refused"]
    assert result["loss_rel_diff"] < 1e-6  # fp32: the packed row's loss is the one-by-one loss
    assert result["speedup"] > 0 and all(math.isfinite(v["tokens_per_s"]) for v in (plain, fast))
    assert plain["mfu"] is None and plain["peak_memory_gb"] is None  # no GPU peak to measure against


@pytest.mark.slow
def test_bench_sft_writes_a_qwen3_8b_folder_for_the_scorer_benchmark(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    run_bench("--save_random_qwen3_8b", str(tmp_path / "qwen3-8b"))
    config = AutoConfig.from_pretrained(tmp_path / "qwen3-8b")
    dims = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads)
    assert config.model_type == "qwen3" and dims == (4096, 36, 32, 8)
    assert (config.intermediate_size, config.vocab_size) == (12288, 151936)
    assert len(AutoTokenizer.from_pretrained(tmp_path / "qwen3-8b")) <= config.vocab_size
