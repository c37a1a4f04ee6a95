"""PrefixCache: carried shared-prefix KV caches come back cropped to what the new prefix still shares, leave least
recently used first, and the scorer's engine keeps them there."""

from __future__ import annotations

import pytest
import torch
from testing_utils import build_tiny_model
from transformers import DynamicCache

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.engine import PrefixCache, common_prefix_length
from reer_hf.scoring.scorer import Scorer

VOCAB = 512
IDS = [(7 * i + 3) % VOCAB for i in range(24)]


@pytest.fixture(scope="module")
def model():
    return build_tiny_model("llama", VOCAB).eval()


def kv_cache(model, ids: list[int]) -> DynamicCache:
    """The real KV cache of ``ids`` after one forward of the tiny model."""
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return cache


def assert_same_keys(cache: DynamicCache, reference: DynamicCache) -> None:
    assert cache.get_seq_length() == reference.get_seq_length()
    for layer, ref in zip(cache.layers, reference.layers, strict=True):
        torch.testing.assert_close(layer.keys, ref.keys)
        torch.testing.assert_close(layer.values, ref.values)


def test_a_miss_gives_a_new_empty_cache(model):
    prefixes = PrefixCache(model.config, capacity=4)
    cache, cached = prefixes.get(("q", "a"), IDS)
    assert isinstance(cache, DynamicCache) and cached == 0 and cache.get_seq_length() == 0
    assert len(prefixes) == 0


def test_get_crops_back_to_the_shared_prefix(model):
    """A group's next prefix shares the old one's first 13 tokens: the cache comes back holding exactly those (the
    keys/values of the same tokens at the same positions), rounded down to ``align``, and is taken out."""
    prefixes = PrefixCache(model.config, capacity=4)
    changed = IDS[:13] + [(t + 1) % VOCAB for t in IDS[13:]]
    assert common_prefix_length([IDS, changed]) == 13
    for align, kept in ((1, 13), (8, 8)):
        prefixes.put("group", IDS, kv_cache(model, IDS))
        cache, cached = prefixes.get("group", changed, align)
        assert cached == kept and "group" not in prefixes
        assert_same_keys(cache, kv_cache(model, IDS[:kept]))
    # A prefix that extends the carried one keeps all of it; one that shares nothing gets a new cache.
    prefixes.put("group", IDS[:10], kv_cache(model, IDS[:10]))
    cache, cached = prefixes.get("group", IDS)
    assert cached == 10 and cache.get_seq_length() == 10
    prefixes.put("group", IDS[:10], cache)
    cache, cached = prefixes.get("group", [(IDS[0] + 1) % VOCAB] + IDS[1:])
    assert cached == 0 and cache.get_seq_length() == 0


def test_put_keeps_exactly_the_prefix(model):
    """A cache that ran past the prefix (a member's suffix) is carried cropped to the prefix."""
    prefixes = PrefixCache(model.config, capacity=4)
    prefixes.put("group", IDS[:16], kv_cache(model, IDS))
    cache, cached = prefixes.get("group", IDS[:16])
    assert cached == 16
    assert_same_keys(cache, kv_cache(model, IDS[:16]))


def test_least_recently_used_leaves_first(model):
    prefixes = PrefixCache(model.config, capacity=2)
    for key in ("a", "b"):
        prefixes.put(key, IDS[:8], kv_cache(model, IDS[:8]))
    assert prefixes.keys() == ["a", "b"]
    cache, _ = prefixes.get("a", IDS[:8])  # "a" is used again: put back, it becomes the most recent
    prefixes.put("a", IDS[:8], cache)
    assert prefixes.keys() == ["b", "a"]
    prefixes.put("c", IDS[:8], kv_cache(model, IDS[:8]))
    assert prefixes.keys() == ["a", "c"] and len(prefixes) == 2 and "b" not in prefixes
    off = PrefixCache(model.config, capacity=0)  # scorer_carry_prefixes=0 carries nothing
    off.put("a", IDS[:8], kv_cache(model, IDS[:8]))
    assert len(off) == 0


def test_reset_drops_everything(model):
    prefixes = PrefixCache(model.config, capacity=4)
    for key in ("a", "b", "c"):
        prefixes.put(key, IDS[:8], kv_cache(model, IDS[:8]))
    assert len(prefixes) == 3
    prefixes.reset()
    assert len(prefixes) == 0 and prefixes.keys() == []
    assert prefixes.get("a", IDS[:8])[1] == 0


def test_the_engine_carries_group_prefixes_between_calls(model, tiny_tokenizer, pairs):
    """Three calls over two (query, answer) groups, K=2 candidates each: the second call's prefix extends the first's,
    the third's shares only part of it (the carried cache is cropped back). With room for both groups the later calls
    start from the carried caches; with room for one, each group evicts the other before it comes back. The scores
    (unclipped NLLs) are those of a scorer without any reuse."""
    p = [text[:200] for pair in pairs for text in pair["answer"].split("\n\n")]  # short paragraphs of real prose
    groups = [(pairs[i]["query"], pairs[i]["answer"][:400]) for i in range(2)]
    heads = [[p[0]], [p[0], p[1]], [p[0][:100] + p[2]]]
    calls = []
    for step, head in enumerate(heads):
        thinkings = ["\n\n".join(head + [p[5 + 2 * step + k]]) for k in range(2)]
        queries, answers = zip(*[g for g in groups for _ in thinkings], strict=True)
        calls.append((list(queries), thinkings * 2, list(answers)))

    def run(**options):
        config = ScorerConfig(scorer_dtype="fp32", scorer_device="cpu", **options)
        scorer = Scorer(tiny_tokenizer, config, model=model)
        return scorer, [[r.nll for r in scorer.score(*rows)] for rows in calls]  # a random model: every score clips

    _, want = run(scorer_prefix_reuse=False)
    for capacity in (2, 1):
        scorer, got = run(scorer_carry_prefixes=capacity)
        assert got == [pytest.approx(w, abs=1e-5) for w in want]
        assert scorer.backend.prefix_cache.keys() == groups[-capacity:]  # the most recently used groups stay
        assert (scorer.backend.stats["carried_tokens"] > 0) is (capacity == 2)
        scorer.backend.reset()
        assert len(scorer.backend.prefix_cache) == 0
