"""benchmarks/bench_search.py runs end to end on a tiny model and reports generation against its plain-forward limit
(no timing asserted: timings are the benchmark's output, not a test's)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole search, twice, and the limit's forward passes

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_search.py"


def test_bench_search_reports_generation_against_its_limit(tiny_llama_dir, capsys):
    spec = importlib.util.spec_from_file_location("bench_search", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--model", str(tiny_llama_dir), "--rows", "2", "--max_step", "1", "--max_new_tokens", "24"]
    summary = bench.main([*argv, "--edit_max_new_tokens", "8", "--dtype", "fp32", "--threads", "1"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    limit = summary["generation_vs_limit"]
    calls = limit["calls"]
    assert len(calls) == summary["lockstep"]["generator_calls"] >= 1  # the initial call, then each step
    first = calls[0]
    assert first["requests"] == 2 and first["prompt_tokens"] > 0 and first["generated_tokens"] > 0
    for call in calls:
        assert call["prefill_tok_s"] > 0 and call["prefill_limit_tok_s"] > 0 and call["limit_seconds"] > 0
        assert call["prompt_tokens"] <= call["prompt_tokens_requested"]
    if len(calls) > 1:  # a step's K samples share their prompt's one prefill
        assert limit["prefill_tokens_saved_by_sharing"] >= calls[1]["prompt_tokens"] > 0
    assert limit["fraction_of_limit"] > 0
    assert summary["threads"] == 1 and abs(sum(summary["wall_time_share"].values()) - 1) < 0.01
