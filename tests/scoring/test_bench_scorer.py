"""benchmarks/bench_scorer.py runs end to end on a tiny model and reports its figures (no timing asserted: timings are
the benchmark's output, not a test's)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("compile")]  # the whole benchmark, twice, compiled once

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scorer.py"
KEYS = {
    "model",
    "dtype",
    "rows",
    "tokens",
    "naive_tokens_per_s",
    "scorer_tokens_per_s",
    "speedup",
    "prefix_reuse_speedup",
    "max_abs_score_diff_fp32",
    "dtype_noise_max",
    "dtype_noise_median",
    "peak_rss_mb",
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scorer", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("compile_flag", "steps"),
    [([], ["--max_step", "3"]), (["--no_compile"], ["--max_step", "6", "--step_stride", "2"])],  # 3 steps each
)
def test_bench_scorer_runs_and_reports(bench, tiny_llama_dir, capsys, compile_flag, steps):
    args = [
        "--model",
        str(tiny_llama_dir),
        "--dtype",
        "fp32",
        "--pairs",
        "2",
        "--fp32_check_rows",
        "2",
    ]
    result = bench.main(args + steps + compile_flag)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the last line is the JSON object
    assert printed == result and set(result) >= KEYS
    assert result["compile"] is not bool(compile_flag)
    assert result["step_stride"] == (2 if compile_flag else 1)
    assert result["steps"] == 3 and result["rows"] % 2 == 0 and 2 * 3 <= result["rows"] <= 2 * 2 * 3  # K=2 per pair
    # the scorer is exact against the naive computation, and reuse removes tokens and attention pairs
    assert result["max_abs_score_diff_fp32"] <= 1e-5 and result["max_abs_nll_diff_fp32"] <= 1e-5
    assert 0 <= result["dtype_noise_median"] <= result["dtype_noise_max"] <= 1e-5  # fp32 runs: no dtype noise
    assert result["forward_token_ratio"] > 1 and result["attention_pair_ratio"] > 1
    assert result["forward_tokens"]["naive"] == result["forward_tokens"]["plain"] == result["tokens"]
    assert all(math.isfinite(result[key]) and result[key] > 0 for key in ("speedup", "prefix_reuse_speedup"))
