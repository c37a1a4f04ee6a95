"""scorer_compile: the compiled norms, MLPs and rotary embedding give the eager scores, in every scorer path, and
leave the model as they found it; where compiling fails the scorer runs eagerly."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reer_hf.scoring import fusion
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer

# One xdist worker runs every compiling test: the first torch.compile in a process pays inductor's start-up.
pytestmark = pytest.mark.xdist_group("compile")


def fp32_config(**overrides) -> ScorerConfig:
    return ScorerConfig(scorer_dtype="fp32", scorer_device="cpu", **overrides)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def search_steps(pairs, steps: int = 3):
    """A lock-step pass over two (query, answer) pairs, K=2 candidates per step, the first one accepted."""
    paragraphs = [p for pair in pairs for p in pair["answer"].split("\n\n")]
    z = paragraphs[:5]
    (q, y), (q2, y2) = (pairs[0]["query"], pairs[0]["answer"]), (pairs[1]["query"], pairs[1]["answer"][:500])
    out = []
    for step in range(steps):
        candidates = ["\n\n".join(z[:step] + [paragraphs[10 + step + k]] + z[step + 1 :]) for k in range(2)]
        out.append(([q, q, q2, q2], candidates + candidates[::-1], [y, y, y2, y2]))
        z[step] = paragraphs[10 + step]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [False, True])
def test_compiled_scores_equal_eager(tiny, pairs, reuse):
    """Plain, packed and carried passes: the compiled scorer gives the eager scores (fp32, 1e-5), and compiled."""
    import torch._dynamo  # seconds to import: only the tests that compile pay for it

    model, tokenizer = tiny
    compiled = Scorer(tokenizer, fp32_config(scorer_compile=True, scorer_prefix_reuse=reuse), model=model)
    eager = Scorer(tokenizer, fp32_config(scorer_prefix_reuse=reuse), model=model)
    assert compiled.backend.compile and not eager.backend.compile
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for rows in search_steps(pairs):
        got, want = compiled.score(*rows), eager.score(*rows)
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
        assert [r.nll for r in got] == pytest.approx([r.nll for r in want], abs=1e-5)
        assert all(r.status == "ok" for r in got)
    # lengths change from call to call and the layers share one graph per block: no recompiles after the probe
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == before
    if reuse:
        assert compiled.backend.stats["carried_tokens"] > 0


@pytest.mark.slow
def test_compiled_batch_invariance(tiny, pairs):
    """With compiled blocks a row's score still does not depend on the token budget or the order of the rows."""
    model, tokenizer = tiny
    rows = search_steps(pairs, 1)[0]
    base = Scorer(tokenizer, fp32_config(scorer_compile=True), model=model).score(*rows)
    for budget in (1, 64, 10**6):
        scorer = Scorer(tokenizer, fp32_config(scorer_compile=True, scorer_token_budget=budget), model=model)
        reversed_rows = [list(reversed(column)) for column in rows]
        got = list(reversed(scorer.score(*reversed_rows)))
        assert [r.score for r in got] == pytest.approx([r.score for r in base], abs=1e-5)


@pytest.mark.slow
def test_using_patches_inside_and_restores(tiny):
    """Inside ``using`` the norms, MLPs and the rotary embedding are compiled; afterwards the model is as it was, and
    a module that already had its own ``forward`` (an offload hook) is left alone."""
    model, _ = tiny
    layer = model.model.layers[0]
    home = sys.modules[type(layer.self_attn).__module__]
    rope = home.apply_rotary_pos_emb
    calls = []
    hooked = layer.mlp
    original = hooked.forward
    hooked.forward = lambda x: calls.append(x.shape) or original(x)
    try:
        with torch.inference_mode(), fusion.using(model) as on:
            assert on
            assert "forward" in layer.input_layernorm.__dict__ and "forward" in model.model.norm.__dict__
            assert home.apply_rotary_pos_emb is not rope and home.apply_rotary_pos_emb._reer_fused
            with fusion.using(model):  # nested: nothing patched twice, and the outer patch survives the inner exit
                pass
            assert home.apply_rotary_pos_emb._reer_fused
            model.model(input_ids=torch.arange(6).unsqueeze(0))
        assert calls  # the hooked MLP kept its hook
        assert home.apply_rotary_pos_emb is rope
        assert "forward" not in layer.input_layernorm.__dict__ and "forward" not in model.model.layers[1].mlp.__dict__
    finally:
        del hooked.forward


@pytest.mark.slow
def test_falls_back_to_eager_when_compiling_fails(tiny, pairs, monkeypatch, caplog):
    model, tokenizer = tiny

    def broken(function):
        def fail(*args, **kwargs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return fail

    monkeypatch.setattr(fusion, "_compiled", broken)
    rows = search_steps(pairs, 1)[0]
    with caplog.at_level(logging.WARNING, logger="reer_hf.scoring.fusion"):
        scorer = Scorer(tokenizer, fp32_config(scorer_compile=True), model=model)
    assert not scorer.backend.compile
    assert "runs eagerly" in caplog.text and "InvalidCxxCompiler" in caplog.text
    assert "forward" not in model.model.layers[0].mlp.__dict__  # the failed probe restored the model
    want = Scorer(tokenizer, fp32_config(), model=model).score(*rows)
    assert [r.score for r in scorer.score(*rows)] == pytest.approx([r.score for r in want], abs=1e-6)
