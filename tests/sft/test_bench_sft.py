"""benchmarks/bench_sft.py runs on this CPU (--quick: a tiny Qwen3) and reports its figures; the padding-free layout
gives the plain layout's loss on the same conversations (no timing asserted: timings are the benchmark's output).
Liger's process-wide patches of modeling_qwen3 end with the fast variant (a fake patch stands in for liger-kernel,
not installed here), and the JSON says whether the fast variant ran the recipe's kernels."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    "liger_ran",
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
    # neither flash attention nor Liger ran: the JSON says the speedup is not config_full_fast.yaml's
    assert plain["attn_implementation"] == "sdpa" and not plain["liger_ran"] and not fast["liger_ran"]
    assert result["fast_is_recipe"] is False and len(result["fast_not_recipe"]) == 2


@pytest.mark.slow
def test_bench_sft_writes_a_qwen3_8b_folder_for_the_scorer_benchmark(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    run_bench("--save_random_qwen3_8b", str(tmp_path / "qwen3-8b"))
    config = AutoConfig.from_pretrained(tmp_path / "qwen3-8b")
    dims = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads)
    assert config.model_type == "qwen3" and dims == (4096, 36, 32, 8)
    assert (config.intermediate_size, config.vocab_size) == (12288, 151936)
    assert len(AutoTokenizer.from_pretrained(tmp_path / "qwen3-8b")) <= config.vocab_size


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # bench_sft imports its sibling bench_scorer
    return importlib.import_module("bench_sft")


@pytest.fixture
def fake_liger():
    """A stand-in for apply_liger_kernel_to_qwen3: replaces modeling_qwen3's apply_rotary_pos_emb, Qwen3RMSNorm and
    Qwen3MLP for the whole process, rebinds a class method and renames the class, as Liger does; its kernels fail at
    run time (as Triton kernels do where they cannot run)."""
    from transformers.models.qwen3 import modeling_qwen3 as m

    original = {name: getattr(m, name) for name in ("apply_rotary_pos_emb", "Qwen3RMSNorm", "Qwen3MLP")}
    original_forward = m.Qwen3ForCausalLM.forward

    def failing_rope(*args, **kwargs):
        raise RuntimeError("fake Liger kernel: no Triton here")

    class FakeLigerRMSNorm(m.Qwen3RMSNorm):
        pass

    class FakeLigerMLP(m.Qwen3MLP):
        pass

    def apply(model):
        m.apply_rotary_pos_emb = failing_rope
        m.Qwen3RMSNorm, m.Qwen3MLP = FakeLigerRMSNorm, FakeLigerMLP
        m.Qwen3ForCausalLM.forward = lambda self, *a, **k: None
        m.Qwen3RMSNorm.__name__ = "LigerRMSNorm"
        original["Qwen3RMSNorm"].__name__ = "LigerRMSNorm"
        m.liger_added = True

    yield m, original, apply
    for name, value in original.items():  # whatever the test did, the next tests see the real module
        setattr(m, name, value)
    m.Qwen3ForCausalLM.forward = original_forward
    original["Qwen3RMSNorm"].__name__ = "Qwen3RMSNorm"
    vars(m).pop("liger_added", None)


def test_liger_patches_are_undone_for_models_built_afterwards(bench, fake_liger):
    m, original, apply = fake_liger
    forward = m.Qwen3ForCausalLM.forward
    model = bench.build_model(bench.TINY, torch.float32, torch.device("cpu"))
    with bench.module_patches_undone(m):
        assert bench.use_liger(model, apply=apply) == "applied"
        assert m.Qwen3RMSNorm is not original["Qwen3RMSNorm"]  # patched inside
    assert {name: getattr(m, name) for name in original} == original
    assert m.Qwen3ForCausalLM.forward is forward and not hasattr(m, "liger_added")
    assert original["Qwen3RMSNorm"].__name__ == "Qwen3RMSNorm"
    rebuilt = bench.build_model(bench.TINY, torch.float32, torch.device("cpu"))
    layer = rebuilt.model.layers[0]
    norm = original["Qwen3RMSNorm"]
    assert type(layer.input_layernorm) is norm and type(rebuilt.model.norm) is norm
    assert type(layer.mlp) is original["Qwen3MLP"]


def test_use_liger_reports_a_missing_package(bench):
    def missing(model):
        raise ImportError("No module named 'liger_kernel'")

    assert bench.use_liger(None, apply=missing).startswith("not installed")


@pytest.mark.slow
def test_fast_variant_retries_without_liger_when_its_kernels_fail(bench, fake_liger, monkeypatch, capsys):
    """Liger applied, its kernels failing at run time: the retry runs the plain modeling code (before the fix it still
    called Liger's patched functions and failed too); the JSON says Liger did not run and this is not the recipe."""
    m, original, apply = fake_liger
    use_liger = bench.use_liger
    monkeypatch.setattr(bench, "use_liger", lambda model: use_liger(model, apply=apply))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = bench.main(["--quick", "--device", "cpu", "--steps", "1"])
    fast = result["fast"]
    assert "error" not in fast and fast["attn_implementation"] == "sdpa"
    assert fast["liger"].startswith("failed at run time") and "fake Liger kernel" in fast["liger"]
    assert fast["liger_ran"] is False and result["fast_is_recipe"] is False
    assert any("Liger" in gap for gap in result["fast_not_recipe"])
    assert {name: getattr(m, name) for name in original} == original
    assert result["loss_rel_diff"] < 1e-6
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["fast_is_recipe"] is False


def test_fast_recipe_gaps(bench):
    ran = {"attn_implementation": "kernels-community/flash-attn2", "liger": "applied", "liger_ran": True}
    assert bench.fast_recipe_gaps(ran) == []
    assert bench.fast_recipe_gaps({**ran, "attn_implementation": "flash_attention_2"}) == []
    sdpa = bench.fast_recipe_gaps({**ran, "attn_implementation": "sdpa", "attn_refused": {"flash_attention_2": "x"}})
    assert len(sdpa) == 1 and "sdpa" in sdpa[0]
    assert len(bench.fast_recipe_gaps({**ran, "liger": "off", "liger_ran": False})) == 1
    assert bench.fast_recipe_gaps({"error": "nothing ran"}) == ["nothing ran"]
