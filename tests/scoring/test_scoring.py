"""The REER scorer: exact against a hand-written reference, invariant to batching, and every option does its job."""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reer_hf.core.segment import segment_spans
from reer_hf.scoring import attention
from reer_hf.scoring.attention import KEY_ALIGN
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import STATUS_EMPTY_ANSWER, STATUS_INVALID_INPUT, STATUS_OK, STATUS_TOO_LONG, Scorer

THINKINGS = [
    "Okay, I am given a scene to write. The reader wants the voice first.\n\nHmm, maybe the rhythm matters more.",
    "Alright, the user wants a passage in a repetitive, plain style.\n\nWait, no, I should start with the place.",
    "",
]
ZH_QUERY = "写一段关于秋天的文字，语气安静。"
ZH_ANSWER = (
    "秋天的风吹过田野，树叶一片片落下，远处的山变成了金黄色。村口的老槐树下坐着几个老人，他们慢慢地说着今年的收成，"
    "说着孩子们什么时候回家。🍂\n\n"
    "太阳落山的时候，炊烟从屋顶升起来，空气里有烤红薯的香味。我站在门口，看着路上的人一个个走回家，心里很安静。✨"
    "这样的傍晚，一年里只有几次，每一次都让人想把它写下来。"
)


def fp32_config(**overrides) -> ScorerConfig:
    return ScorerConfig(scorer_dtype="fp32", scorer_device="cpu", **overrides)


def load(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def rows_from(pairs, n=4):
    """Rows as the search makes them: K candidates per (query, answer) plus rows of other pairs."""
    queries, thinkings, answers = [], [], []
    for i, pair in enumerate(pairs[:n]):
        for k in range(2):
            queries.append(pair["query"])
            thinkings.append(THINKINGS[(i + k) % len(THINKINGS)])
            answers.append(pair["answer"][: 600 + 150 * i])
    return queries, thinkings, answers


def reference_score(model, tokenizer, scorer: Scorer, query, thinking, answer, clip=(-2.0, 0.0)):
    """Independent computation: one full forward, log-softmax over all logits, the scored tokens found char by char."""
    text, lo, hi = scorer.build(query, thinking, answer)
    enc = tokenizer(text, add_special_tokens=False)
    # Upstream's rule, walked over the characters: from the last token starting at or before lo (a token straddling
    # the boundary counts; of the byte tokens of one character, the last) to the first one reaching hi.
    chars = [enc.token_to_chars(t) for t in range(len(enc["input_ids"]))]
    first = max(t for t, c in enumerate(chars) if c.start <= lo)
    last = min(t for t, c in enumerate(chars) if t >= first and c.end >= hi)
    scored = list(range(first, last + 1))
    assert chars[first].start <= lo and chars[last].end >= hi  # together they cover the scored text
    ids = torch.tensor([enc["input_ids"]], device=model.device)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)[0]
    lp = torch.stack([logprobs[t - 1, ids[0, t]] for t in scored]).double()
    nll = float(-lp.mean())
    score = float(-lp.clamp(*clip).mean()) if clip else nll
    return score, nll, len(scored)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load(tiny_model_dir)


def test_matches_reference_on_tiny_models(tiny, pairs):
    model, tokenizer = tiny
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    queries, thinkings, answers = rows_from(pairs)
    results = scorer.score(queries, thinkings, answers)
    for q, z, y, result in zip(queries, thinkings, answers, results, strict=True):
        score, nll, n = reference_score(model, tokenizer, scorer, q, z, y)
        assert result.status == STATUS_OK
        assert result.n_scored == n
        assert result.score == pytest.approx(score, abs=1e-5)
        assert result.nll == pytest.approx(nll, abs=1e-5)
        assert result.ppl == pytest.approx(math.exp(nll), rel=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group("demo_model")  # the 135M model in fp32, loaded once
def test_matches_reference_on_demo_model(demo_model_fp32, pairs):
    model, tokenizer = demo_model_fp32
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    queries, thinkings, answers = rows_from(pairs, n=2)
    results = scorer.score(queries, thinkings, answers)
    for q, z, y, result in zip(queries, thinkings, answers, results, strict=True):
        score, nll, n = reference_score(model, tokenizer, scorer, q, z, y)
        assert (result.status, result.n_scored) == (STATUS_OK, n)
        assert result.score == pytest.approx(score, abs=1e-4)
        assert result.nll == pytest.approx(nll, abs=1e-4)
        # Fluent human prose under a real model: a sane perplexity, and clipping lowers the score.
        assert 1.0 < result.ppl < 50.0
        assert result.score < result.nll


@pytest.mark.slow
def test_batch_invariance(tiny, pairs):
    """Scores do not depend on token budget, batch composition, order, padding side or prefix reuse."""
    model, tokenizer = tiny
    queries, thinkings, answers = rows_from(pairs)
    base = [
        r.score
        for r in Scorer(tokenizer, fp32_config(scorer_prefix_reuse=False), model=model).score(
            queries, thinkings, answers
        )
    ]
    variants = [
        fp32_config(scorer_token_budget=1, scorer_prefix_reuse=False),  # one row per forward
        fp32_config(scorer_token_budget=10**6, scorer_prefix_reuse=False, scorer_pad_batches=True),  # one forward
        fp32_config(scorer_token_budget=10**6, scorer_prefix_reuse=False, scorer_fast_attention=False),  # masks
        fp32_config(scorer_fast_attention=False, scorer_pad_batches=True),  # model's attention, batched members
        fp32_config(scorer_carry_prefixes=0),  # prefix reuse, members packed, nothing carried across calls
        fp32_config(scorer_fast_attention=False),  # prefix reuse, members one by one with the model's attention
        fp32_config(scorer_token_budget=1),  # prefix reuse, one member per packed pass
        fp32_config(scorer_pad_batches=True),  # prefix reuse, members batched on a view of the carried cache
        fp32_config(scorer_token_budget=2500, scorer_logits_chunk=7, scorer_pad_batches=True),
    ]
    for config in variants:
        scores = [r.score for r in Scorer(tokenizer, config, model=model).score(queries, thinkings, answers)]
        assert scores == pytest.approx(base, abs=1e-5), config

    scorer = Scorer(tokenizer, fp32_config(), model=model)
    order = list(range(len(queries)))
    random.Random(0).shuffle(order)
    shuffled = scorer.score([queries[i] for i in order], [thinkings[i] for i in order], [answers[i] for i in order])
    assert [shuffled[order.index(i)].score for i in range(len(order))] == pytest.approx(base, abs=1e-5)

    for i in range(len(queries)):  # each row alone
        assert scorer.score([queries[i]], [thinkings[i]], [answers[i]])[0].score == pytest.approx(base[i], abs=1e-5)

    tokenizer.padding_side = "left"
    try:
        left = [r.score for r in Scorer(tokenizer, fp32_config(), model=model).score(queries, thinkings, answers)]
    finally:
        tokenizer.padding_side = "right"
    assert left == pytest.approx(base, abs=1e-5)


def test_prefix_reuse_shares_the_prefix_pass(tiny, pairs):
    model, tokenizer = tiny
    queries, thinkings, answers = rows_from(pairs, n=2)
    config = fp32_config(scorer_token_budget=10**6, scorer_carry_prefixes=0, scorer_pad_batches=True)
    scorer = Scorer(tokenizer, config, model=model)
    encoded = scorer.encode(queries, thinkings, answers)
    singles, groups = scorer.backend._plan(encoded)
    assert singles == [] and len(groups) == 2  # one group per (query, answer), K=2 members each
    for prefix, members in groups:
        first = encoded[members[0]].input_ids
        assert all(encoded[i].input_ids[:prefix] == first[:prefix] for i in members)
        context = len(tokenizer(scorer.context(queries[members[0]]), add_special_tokens=False)["input_ids"])
        assert prefix % KEY_ALIGN == 0 and prefix > context - KEY_ALIGN  # the context, cut to the kernel's alignment
    scorer.score(queries, thinkings, answers)
    stats = scorer.backend.stats
    assert stats["forward_calls"] == 2 * len(groups)  # per group: one prefix pass, one pass for all its members
    total = sum(len(e.input_ids) for e in encoded)
    assert stats["forward_tokens"] == total - stats["shared_prefix_tokens"] > 0
    # attention still spans the prefix: each member's suffix attends to it (causal pairs, counted exactly)
    plain = Scorer(tokenizer, fp32_config(scorer_prefix_reuse=False), model=model)
    plain.score(queries, thinkings, answers)
    causal_pairs = sum(len(e.input_ids) * (len(e.input_ids) + 1) // 2 for e in encoded)
    assert plain.backend.stats["attention_pairs"] == causal_pairs
    saved = sum(prefix * (prefix + 1) // 2 * (len(members) - 1) for prefix, members in groups)
    assert stats["attention_pairs"] == plain.backend.stats["attention_pairs"] - saved


@pytest.mark.slow
@pytest.mark.parametrize("batched", [False, True], ids=["members-packed", "groups-batched"])
def test_carried_prefixes_across_steps(tiny, pairs, batched):
    """A lock-step pass over two rows: each step's prefix extends the last; carried caches give the same scores."""
    model, tokenizer = tiny
    paragraphs = [p for pair in pairs for p in pair["answer"].split("\n\n")]
    z = paragraphs[:6]
    carried = Scorer(tokenizer, fp32_config(scorer_carry_prefixes=4, scorer_pad_batches=batched), model=model)
    fresh = Scorer(tokenizer, fp32_config(scorer_prefix_reuse=False), model=model)
    (q, y), (q2, y2) = (pairs[0]["query"], pairs[0]["answer"]), (pairs[1]["query"], pairs[1]["answer"])
    for step in range(4):
        candidates = ["\n\n".join(z[:step] + [paragraphs[10 + step + k]] + z[step + 1 :]) for k in range(2)]
        other = ["\n\n".join(z[: step + 1] + [paragraphs[20 + step + k]]) for k in range(2)]  # another prefix length
        got = carried.score([q, q, q2, q2], candidates + other, [y, y, y2, y2])
        want = fresh.score([q, q, q2, q2], candidates + other, [y, y, y2, y2])
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
        assert [r.nll for r in got] == pytest.approx([r.nll for r in want], abs=1e-5)
        z[step] = paragraphs[10 + step]  # accept the first candidate
    stats = carried.backend.stats
    assert stats["carried_tokens"] > 0
    if not batched:  # CPU: a group's members and its prefix extension are packed into one pass
        assert stats["forward_calls"] == 2 * 4
        assert stats["attention_pairs"] < fresh.backend.stats["attention_pairs"]
    assert stats["forward_tokens"] < fresh.backend.stats["forward_tokens"] - stats["carried_tokens"] // 2
    assert len(carried.backend.prefix_cache) == 2  # one carried prefix per (query, answer) group
    carried.backend.reset()
    assert len(carried.backend.prefix_cache) == 0


@pytest.mark.slow
def test_shared_prefixes_are_aligned_for_the_cpu_kernel(tiny, pairs, monkeypatch):
    """The shared keys of a packed pass (a group's prefix, the carried part) are a multiple of KEY_ALIGN long, the CPU
    flash kernel's fast path; the few tokens cut off run in the members' suffixes, and the scores do not change."""
    model, tokenizer = tiny
    shared: list[int] = []
    original = attention.packed_attention

    def spy(query, key, value, scale, segments):
        shared.extend(seg.shared for seg in segments)
        return original(query, key, value, scale, segments)

    monkeypatch.setattr(attention, "packed_attention", spy)
    paragraphs = [p for pair in pairs for p in pair["answer"].split("\n\n")]
    q, y, z = pairs[0]["query"], pairs[0]["answer"], paragraphs[:5]
    fresh = Scorer(tokenizer, fp32_config(scorer_prefix_reuse=False), model=model)
    seen = {}
    for align in (KEY_ALIGN, 1):
        scorer = Scorer(tokenizer, fp32_config(scorer_carry_prefixes=2, scorer_pad_batches=False), model=model)
        assert scorer.backend.align == KEY_ALIGN
        scorer.backend.align = align
        shared.clear()
        for step in range(3):
            candidates = ["\n\n".join(z[:step] + [paragraphs[10 + step + k]] + z[step + 1 :]) for k in range(2)]
            got = scorer.score([q, q], candidates, [y, y])
            want = fresh.score([q, q], candidates, [y, y])
            assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
        seen[align] = sorted(set(shared) - {0})
    assert seen[KEY_ALIGN] and all(n % KEY_ALIGN == 0 for n in seen[KEY_ALIGN])
    assert any(n % KEY_ALIGN for n in seen[1])  # unaligned, the same rows give other key lengths


def test_packed_members_respect_the_token_budget(tiny, pairs):
    """CPU packs a group's members into one pass under the token budget; a budget below one member packs each alone."""
    model, tokenizer = tiny
    paragraphs = pairs[0]["answer"].split("\n\n")
    q, y = pairs[0]["query"], pairs[0]["answer"]
    thinkings = ["\n\n".join(paragraphs[:2] + [paragraphs[3 + k]]) for k in range(3)]
    want = Scorer(tokenizer, fp32_config(scorer_prefix_reuse=False), model=model).score([q] * 3, thinkings, [y] * 3)
    calls = {}
    for budget in (10**6, 1):
        scorer = Scorer(tokenizer, fp32_config(scorer_token_budget=budget, scorer_pad_batches=False), model=model)
        got = scorer.score([q] * 3, thinkings, [y] * 3)
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
        calls[budget] = scorer.backend.stats["forward_calls"]
    assert calls == {10**6: 1, 1: 3}


def test_clip_options(tiny, pairs):
    model, tokenizer = tiny
    q, z, y = pairs[0]["query"], THINKINGS[0], pairs[0]["answer"]
    # A random tiny model gives every token a log-prob far below -2: the clipped score is exactly 2.
    clipped = Scorer(tokenizer, fp32_config(), model=model).score([q], [z], [y])[0]
    assert clipped.nll > 4.0 and clipped.score == pytest.approx(2.0, abs=1e-12)
    unclipped = Scorer(tokenizer, fp32_config(scorer_clip=False), model=model).score([q], [z], [y])[0]
    assert unclipped.score == pytest.approx(unclipped.nll, abs=1e-12) == pytest.approx(clipped.nll, abs=1e-12)
    wide = Scorer(tokenizer, fp32_config(scorer_clip_min=-50.0), model=model).score([q], [z], [y])[0]
    assert wide.score == pytest.approx(wide.nll, abs=1e-12)  # nothing below -50: clipping is a no-op
    # Bounds around the tokens' own log-probs clip some tokens from above and some from below.
    bounds = (clipped.nll - 0.05, clipped.nll + 0.05)
    bounds = (-bounds[1], -bounds[0])
    narrow = Scorer(tokenizer, fp32_config(scorer_clip_min=bounds[0], scorer_clip_max=bounds[1]), model=model)
    result = narrow.score([q], [z], [y])[0]
    ref, _, _ = reference_score(model, tokenizer, narrow, q, z, y, bounds)
    assert result.score == pytest.approx(ref, abs=1e-6)
    assert -bounds[1] <= result.score <= -bounds[0] and result.score != pytest.approx(result.nll, abs=1e-6)


def test_first_segment_context(tiny, pairs):
    model, tokenizer = tiny
    q, z = pairs[1]["query"], THINKINGS[1]
    first, second = (
        "A" * 30 + " first paragraph of the answer, long enough to be a segment. " * 2,
        "Second part. " * 12,
    )
    y = f"{first}\n\n{second}"
    assert len(segment_spans(y)) == 2
    on = Scorer(tokenizer, fp32_config(scorer_clip=False), model=model)
    off = Scorer(tokenizer, fp32_config(scorer_clip=False, scorer_first_segment_context=False), model=model)
    r_on, r_off = on.score([q], [z], [y])[0], off.score([q], [z], [y])[0]
    n_second = len(tokenizer("\n\n" + second, add_special_tokens=False)["input_ids"])
    assert abs(r_on.n_scored - n_second) <= 1  # the separator and the second segment (+ a token straddling the end)
    assert r_off.n_scored > r_on.n_scored + 20
    assert r_on.score != pytest.approx(r_off.score, abs=1e-4)
    # The scored part of the answer is exactly what follows the first segment, its separator included.
    text, lo, hi = on.build(q, z, y)
    assert text[lo:hi] == "\n\n" + second
    # A single-segment answer has nothing after its first segment: the whole answer is scored.
    single = on.score([q], [z], [second])[0]
    n_alone = len(tokenizer(second, add_special_tokens=False)["input_ids"])
    assert single.status == STATUS_OK and abs(single.n_scored - n_alone) <= 1


def test_too_long_does_not_stop_the_batch(tiny, pairs):
    model, tokenizer = tiny
    queries, thinkings, answers = rows_from(pairs, n=2)
    lengths = [
        len(e.input_ids) for e in Scorer(tokenizer, fp32_config(), model=model).encode(queries, thinkings, answers)
    ]
    limit = sorted(lengths)[len(lengths) // 2]
    scorer = Scorer(tokenizer, fp32_config(scorer_max_length=limit), model=model)
    results = scorer.score(queries, thinkings, answers)
    alone = Scorer(tokenizer, fp32_config(), model=model)
    for n, q, z, y, result in zip(lengths, queries, thinkings, answers, results, strict=True):
        if n > limit:
            assert (result.status, result.score, result.n_tokens) == (STATUS_TOO_LONG, 1000.0, n)
        else:
            assert result.status == STATUS_OK
            assert result.score == pytest.approx(alone.score([q], [z], [y])[0].score, abs=1e-5)
    assert {r.status for r in results} == {STATUS_OK, STATUS_TOO_LONG}


def test_bad_rows_get_a_status(tiny, pairs):
    model, tokenizer = tiny
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    q, y = pairs[0]["query"], pairs[0]["answer"]
    results = scorer.score([q, q, q, None, q, q], ["z", "z", 5, "z", None, "z"], ["", "  \n\t ", y, y, y, y])
    assert [r.status for r in results] == [
        STATUS_EMPTY_ANSWER,
        STATUS_EMPTY_ANSWER,
        STATUS_INVALID_INPUT,
        STATUS_INVALID_INPUT,
        STATUS_OK,  # no thinking: scored with an empty trajectory
        STATUS_OK,
    ]
    assert all(math.isnan(r.score) for r in results[:4])
    assert results[4].score == pytest.approx(scorer.score([q], [""], [y])[0].score, abs=1e-6)


def test_chinese_and_emoji(tiny):
    model, tokenizer = tiny
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    assert "请求如下" in scorer.context(ZH_QUERY)  # the Chinese inference template is picked for a Chinese query
    thinking = "好的，我先想一想读者是谁。\n\n嗯，也许应该从风开始写。🙂"
    result = scorer.score([ZH_QUERY], [thinking], [ZH_ANSWER])[0]
    score, nll, n = reference_score(model, tokenizer, scorer, ZH_QUERY, thinking, ZH_ANSWER)
    assert result.status == STATUS_OK and result.n_scored == n > 20
    assert result.nll == pytest.approx(nll, abs=1e-5)


def test_context_rendering(tiny_llama_dir):
    model, tokenizer = load(tiny_llama_dir)
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    context = scorer.context("Write a haiku.")
    assert context.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert context.endswith("Write a haiku.<|im_end|>\n<|im_start|>assistant\n")
    text, lo, hi = scorer.build("Write a haiku.", "plan", "Line one of the poem.")
    assert text == context + "<think>\nplan\n</think>\n<answer>\nLine one of the poem.\n</answer>"
    assert text[lo:hi] == "Line one of the poem."
    # A template that opens the thinking itself: the trailing <think> is removed (the format adds its own).
    tokenizer.chat_template = tokenizer.chat_template + "{%- if add_generation_prompt %}{{ '<think>\\n' }}{%- endif %}"
    thinking_scorer = Scorer(tokenizer, fp32_config(scorer_system_prompt=None), model=model)
    context = thinking_scorer.context("Write a haiku.")
    assert context.startswith("<|im_start|>user\n") and context.endswith("<|im_start|>assistant\n")


def test_config_validation():
    with pytest.raises(ValueError, match="thinking"):
        ScorerConfig(scorer_thinking_format="<think>\n</think>")
    with pytest.raises(ValueError, match="clip_min"):
        ScorerConfig(scorer_clip_min=1.0)


def test_dataset_map(tiny_llama_dir, pairs):
    """``datasets.map`` with ``score_batch`` (one architecture: the wrapper does not depend on it)."""
    from datasets import Dataset

    model, tokenizer = load(tiny_llama_dir)
    scorer = Scorer(tokenizer, fp32_config(), model=model)
    queries, thinkings, answers = rows_from(pairs, n=3)
    answers[1] = ""
    ds = Dataset.from_dict({"query": queries, "thinking": thinkings, "answer": answers})
    scored = ds.map(scorer.score_batch, batched=True, batch_size=4, load_from_cache_file=False)
    assert scored.column_names == [
        "query",
        "thinking",
        "answer",
        "score",
        "score_nll",
        "score_ppl",
        "score_n_scored",
        "score_n_tokens",
        "score_status",
    ]
    direct = scorer.score(queries, thinkings, answers)
    assert scored["score_status"] == [r.status for r in direct]
    assert scored["score"][0] == pytest.approx(direct[0].score, abs=1e-6)
    assert scored["score_status"][1] == STATUS_EMPTY_ANSWER
    with pytest.raises(KeyError, match="found"):
        scorer.score_batch({"question": ["q"], "answer": ["a"]})


@pytest.mark.gpu
def test_gpu_matches_reference_and_batching(tiny_model_dir, pairs):
    """On CUDA: fp32 batch invariance and exactness; bf16 close to a bf16 reference."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda().eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    queries, thinkings, answers = rows_from(pairs)
    config = ScorerConfig(scorer_dtype="fp32", scorer_device="cuda")
    results = Scorer(tokenizer, config, model=model).score(queries, thinkings, answers)
    one_by_one = Scorer(tokenizer, ScorerConfig(scorer_token_budget=1, scorer_prefix_reuse=False), model=model)
    for q, z, y, result in zip(queries, thinkings, answers, results, strict=True):
        assert result.score == pytest.approx(one_by_one.score([q], [z], [y])[0].score, abs=1e-5)
        _, nll, _ = reference_score(model, tokenizer, one_by_one, q, z, y)
        assert result.nll == pytest.approx(nll, abs=1e-4)
    model = model.to(torch.bfloat16)
    bf16 = Scorer(tokenizer, ScorerConfig(scorer_dtype="bf16"), model=model).score(queries, thinkings, answers)
    for q, z, y, result in zip(queries, thinkings, answers, bf16, strict=True):
        _, nll, _ = reference_score(model, tokenizer, one_by_one, q, z, y)
        assert result.nll == pytest.approx(nll, abs=2e-2)


@pytest.mark.gpu
def test_vllm_backend_agrees_with_transformers(tiny_llama_dir, pairs):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    queries, thinkings, answers = rows_from(pairs, n=2)
    hf = Scorer.from_config(ScorerConfig(scorer_model=str(tiny_llama_dir), scorer_dtype="fp32", scorer_device="cuda"))
    vl = Scorer.from_config(
        ScorerConfig(
            scorer_model=str(tiny_llama_dir),
            scorer_backend="vllm",
            scorer_dtype="float32",
            scorer_max_length=4096,
            scorer_vllm_kwargs={"gpu_memory_utilization": 0.3, "enforce_eager": True},
        )
    )
    for a, b in zip(hf.score(queries, thinkings, answers), vl.score(queries, thinkings, answers), strict=True):
        assert a.n_scored == b.n_scored
        assert a.nll == pytest.approx(b.nll, abs=1e-3)
