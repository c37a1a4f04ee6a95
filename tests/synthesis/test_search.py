"""The REER search on real computation: a real HTTP generator server on loopback (scripted replies, so every path is
reachable) or the tiny transformers model as generator, and the tiny model as the scorer."""

from __future__ import annotations

import math
import re
import uuid

import pytest
from datasets import Dataset
from openai_server import OpenAIServer, ServerReply

from reer_hf.core.formats import to_messages
from reer_hf.core.models import load_causal_lm
from reer_hf.generation import OpenAIGenerator, TransformersGenerator
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import FilterConfig, SearchConfig
from reer_hf.synthesis.search import Searcher
from reer_hf.synthesis.trajectory import lead_words, search_features, split_trajectory

THINKING = [
    " wants a short piece about a quiet town, and I think the reader is someone who likes slow, careful stories "
    "told with warmth.",
    "So the core goal is a calm mood: the piece must make the reader feel the rhythm of ordinary days and the small "
    "habits of the people who live there.",
    "Now I decide on the content. A baker opens her shop before dawn, a boy delivers papers, and an old man feeds "
    "the birds in the square every morning.",
    "Finally the structure: three short scenes from morning to evening, a gentle opening image and an ending that "
    "returns to the baker as the lights go out.",
]
ANSWER = (
    "Before the sun rose over Millbrook, Martha had already lit the ovens and the smell of bread drifted through the "
    "empty streets like a promise.\n\n"
    "The paper boy pedalled past at six, tossing rolled news onto porches, whistling a tune nobody had taught him.\n\n"
    "By evening the square was quiet again, and Martha turned the sign on her door, content with another ordinary day."
)
QUERY = "Write a short, calm story about a day in a small town."
ZH_QUERY = "请写一篇关于秋天的短文，语气安静。"
ZH_ANSWER = (
    "秋天的风吹过田野，树叶一片片落下，村口的老槐树也慢慢变黄了。人们开始收割稻谷，空气里都是稻草的味道，孩子们在田埂上奔跑，"
    "笑声传得很远很远，一直传到河对岸。\n\n"
    "傍晚的时候，炊烟升起来，母亲在门口喊我们回家吃饭。我想，这就是秋天最安静的样子，也是我最想留住的样子，年年如此。"
)
ZH_THINKING = [
    "，用户想要一篇安静的秋天短文。我先想读者是谁：大概是喜欢慢节奏文字的人，他们希望在短短几段里感到季节的气息和生活的温度，"
    "所以语气要轻，要柔和，句子也不能太长，要给读者留出想象和呼吸的空间，让他们自己慢慢走进这个季节里去。",
    "接下来想内容。可以写田野、落叶和收割，再写傍晚的炊烟和母亲的呼唤，这样从白天写到黄昏，画面自然流动，情感也慢慢收拢，"
    "最后落在家的感觉上。我还要注意细节要具体，比如稻草的味道、孩子的笑声和门口的呼唤，这些声音和气味比形容词更能打动人。",
    "最后是结构：两段就够了，第一段写白天的田野，第二段写傍晚回家，结尾点明这是秋天最安静的样子，让读者自己去回味。"
    "整篇不用小标题，也不用列表，就像一个人在傍晚轻轻地讲给朋友听那样自然。",
]


def paragraphs(parts: list[str]) -> str:
    return "\n\n".join(parts)


def user_text(payload: dict) -> str:
    return next(m["content"] for m in payload["messages"] if m["role"] == "user")


def prefill_of(payload: dict) -> str:
    last = payload["messages"][-1]
    return last["content"] if last["role"] == "assistant" else ""


class Writer:
    """A scripted generator: trajectories for initial requests, K seeded variants of the target for edits."""

    def __init__(self, initial=None, edit=None):
        self.initial = initial
        self.edit = edit

    def __call__(self, kind: str, payload: dict):
        user = user_text(payload)
        if prefill_of(payload).startswith("<think>"):
            if self.initial:
                return self.initial(user, payload)
            return [paragraphs(ZH_THINKING if "秋天" in user else THINKING)]
        target = re.search(r"<target>\n(.*?)\n</target>", user, re.S).group(1)
        if self.edit:
            return self.edit(target, payload)
        seed = payload.get("seed", 0)
        return [
            f"It sets up the plan.\n</analyze>\n<refine>\n{target} Variant {seed % 97}-{k}: the reader is patient "
            f"and the details stay concrete.\n"
            for k in range(payload.get("n", 1))
        ]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def tiny_scorer(tiny_llama_dir) -> Scorer:
    model, tokenizer = load_causal_lm(str(tiny_llama_dir), dtype="fp32", device="cpu")
    # A random tiny model puts every token below the paper's clip bound; unclipped scores can move.
    return Scorer(tokenizer, ScorerConfig(scorer_clip=False, scorer_max_length=4096), model=model)


def search_config(**kwargs) -> SearchConfig:
    values = dict(
        search_max_step=3,
        search_num_expansion=2,
        search_stop_thresh=0.0,
        search_min_rollout_tokens=10,
        search_max_new_tokens=64,
    )
    values.update(kwargs)
    return SearchConfig(**values)


def filter_config(**kwargs) -> FilterConfig:
    values = dict(filter_min_thinking_tokens=None)
    values.update(kwargs)
    return FilterConfig(**values)


def make_searcher(server, scorer, search=None, filters=None, max_retries: int = 5) -> Searcher:
    config = GeneratorConfig(
        generator_backend="openai",
        generator_base_url=server.base_url,
        generator_model="w",
        generator_max_retries=max_retries,
    )
    return Searcher(
        OpenAIGenerator(config, backoff=0.01),
        scorer,
        search or search_config(),
        filters or filter_config(),
        to_messages=lambda q, z, a: to_messages(q, z, a, "You are a helpful assistant."),
    )


def run(searcher: Searcher, rows: list[dict], batch_size: int = 64) -> Dataset:
    ds = Dataset.from_list(rows)
    features = ds.features.copy()
    features.update(search_features())
    # a fingerprint of its own, as the runner gives its maps: otherwise datasets pickles the searcher (models and all)
    # to hash it, which is most of a small test's time
    fingerprint = uuid.uuid4().hex
    return ds.map(
        searcher,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        features=features,
        new_fingerprint=fingerprint,
    )


def rows(n: int) -> list[dict]:
    return [{"query": f"{QUERY} Version {i}.", "answer": ANSWER} for i in range(n)]


@pytest.mark.parametrize("n_rows", [2, 6])
def test_lockstep_calls_do_not_grow_with_rows(tiny_scorer, n_rows):
    with OpenAIServer(Writer()) as server:
        searcher = make_searcher(server, tiny_scorer)
        out = run(searcher, rows(n_rows))
    assert set(out["status"]) == {"ok"}
    assert all(len(trace) == 3 for trace in out["trace"])
    # one initial generation and one scoring, then one of each per step: whatever the number of rows
    assert searcher.generator.stats["calls"] == 1 + 3
    assert searcher.stats["scorer_calls"] == 1 + 3
    assert len(server.requests) == n_rows * (1 + 3)
    assert all(p["n"] == 2 for p in server.requests[n_rows:])


HINTS = [
    "I picture Martha, a baker, lighting her ovens before dawn while the bread smell fills the empty streets.",
    "Maybe a paper boy whistling on his bicycle, and the square going quiet when Martha turns her sign at night.",
]


@pytest.fixture(scope="module")
def demo_scorer(demo_model_fp32) -> Scorer:
    """The real demo model with the paper's clipped score: rewrites that anticipate the answer score lower."""
    model, tokenizer = demo_model_fp32
    return Scorer(tokenizer, ScorerConfig(), model=model)


@pytest.mark.slow
@pytest.mark.xdist_group("demo_model")  # the 135M model in fp32, loaded once
def test_scores_never_rise_and_z_star_holds_the_accepted_rewrites(demo_scorer):
    def edit(target, payload):
        return [f"Role.\n</analyze>\n<refine>\n{target} {HINTS[k % 2]}\n" for k in range(payload["n"])]

    _SCORER[:] = [demo_scorer]
    carried = demo_scorer.backend.stats["carried_tokens"]
    with OpenAIServer(Writer(edit=edit)) as server:
        out = run(make_searcher(server, demo_scorer), rows(3))
        edits = [p for p in server.requests if not prefill_of(p).startswith("<think>")]
    # each step's prefix comes from the cache carried from the step before
    assert demo_scorer.backend.stats["carried_tokens"] > carried
    # the edit prompt of step s shows the trajectory as accepted so far: every accepted rewrite before the target
    for i, row in enumerate(out):
        prompts = [user_text(p) for p in edits if f"Version {i}." in user_text(p)]
        assert len(prompts) == len(row["trace"])
        for step in row["trace"]:
            if step["accepted"]:
                rewrite = step["candidates"][step["chosen"]]
                later = prompts[step["segment"] + 1 :]
                assert all(rewrite in p.split("<thinking>")[1].split("[[TARGET]]")[0] for p in later)
    accepted_any = False
    for row in out:
        assert row["final_score"] <= row["initial_score"]
        previous = row["initial_score"]
        segments, _ = split_trajectory(row["z_star"], 100)
        original, _ = split_trajectory(row["z0"], 100)
        for step in row["trace"]:
            scores = [s for s in step["candidate_scores"] if s is not None]
            assert step["score_after"] <= previous
            if step["accepted"]:
                accepted_any = True
                assert step["score_after"] == pytest.approx(min(scores)) and min(scores) < previous
                assert any(hint in segments[step["segment"]] for hint in HINTS)
            else:
                assert step["score_after"] == previous
                assert segments[step["segment"]] == original[step["segment"]]
            previous = step["score_after"]
        assert row["final_score"] == pytest.approx(previous)
        if row["z_star"] != row["z0"]:
            assert row["final_score"] < row["initial_score"]
        # the final score is the score of z* itself
        (again,) = searcher_score(row)
        assert again == pytest.approx(row["final_score"], abs=1e-5)
    assert accepted_any


def searcher_score(row) -> list[float]:
    return [r.score for r in _SCORER[0].score([row["query"]], [row["z_star"]], [row["answer"]])]


_SCORER: list[Scorer] = []


def test_threshold_stops_before_any_edit(tiny_scorer):
    with OpenAIServer(Writer()) as server:
        out = run(make_searcher(server, tiny_scorer, search_config(search_stop_thresh=1e9)), rows(2))
        assert len(server.requests) == 2  # the initial rollouts only
    assert out["stop_reason"] == ["threshold", "threshold"]
    assert out["trace"] == [[], []]
    assert out["z_star"] == out["z0"]


def test_output_columns_and_messages(tiny_scorer):
    with OpenAIServer(Writer()) as server:
        out = run(make_searcher(server, tiny_scorer), rows(1))
    row = out[0]
    for column in ("query", "answer", "z0", "z_star", "initial_score", "final_score", "trace", "status", "language"):
        assert column in out.column_names
    assert row["z0"].startswith(("Okay, I am given", "Alright, the user", "Alright"))
    assert row["n_segments"] == 4 and row["language"] == "en" and row["status"] == "ok"
    assert row["drop_reason"] is None and row["stop_reason"] == "max_step"
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][2]["content"] == f"<think>\n{row['z_star']}\n</think>\n<answer>\n{ANSWER}\n</answer>"
    assert row["generated_tokens"] > 0 and row["scored_tokens"] > 0 and row["z_star_tokens"] > 0


def test_chinese_rows_use_chinese_prompts_and_openers(tiny_scorer):
    with OpenAIServer(Writer()) as server:
        # the loopback server counts tokens as words, and Chinese has no spaces
        searcher = make_searcher(server, tiny_scorer, search_config(search_min_rollout_tokens=1))
        out = run(searcher, [{"query": ZH_QUERY, "answer": ZH_ANSWER}])
        initial = server.requests[0]
    assert out[0]["language"] == "zh" and out[0]["status"] == "ok", out[0]["drop_reason"]
    assert prefill_of(initial) in ("<think>\n好的", "<think>\n嗯")
    assert "秋天" in user_text(initial) and "参考" in user_text(initial)


def test_bad_inputs_are_recorded_and_the_run_goes_on(tiny_llama_dir):
    model, tokenizer = load_causal_lm(str(tiny_llama_dir), dtype="fp32", device="cpu")
    scorer = Scorer(tokenizer, ScorerConfig(scorer_clip=False, scorer_max_length=1200), model=model)
    bad = [
        {"query": None, "answer": ANSWER},
        {"query": QUERY, "answer": "   "},
        {"query": QUERY, "answer": 42},
        {"query": QUERY, "answer": ANSWER * 20},  # longer than the scorer's context even without thinking
        {"query": QUERY + " fail", "answer": ANSWER},  # the generator answers HTTP 400 for this row
        {"query": QUERY, "answer": ANSWER},  # a good row
    ]

    def initial(user, payload):
        if "fail" in user:
            return ServerReply(400, body={"error": "context too long"})
        return [paragraphs(THINKING)]

    with OpenAIServer(Writer(initial=initial)) as server:
        # a typed dataset column cannot mix str and int, so the batch goes to the map function as map would pass it
        out = make_searcher(server, scorer)({k: [r[k] for r in bad] for k in bad[0]}, list(range(len(bad))))
    assert out["status"] == ["invalid", "invalid", "invalid", "dropped", "dropped", "ok"]
    assert out["drop_reason"][:5] == [
        "query_missing",
        "answer_empty",
        "answer_not_text",
        "answer_too_long",
        "generator_error",
    ]
    assert all(len(column) == len(bad) for column in out.values())


@pytest.mark.parametrize(
    "reply, status",
    [
        ("I will not follow the format.", "no_refine"),
        ("Fine.\n</analyze>\n<refine>\n   \n", "empty_rewrite"),
        ("Fine.\n</analyze>\n<refine>\nA <think> tag inside</think> is not a paragraph.\n", "malformed"),
        ("Fine.\n</analyze>\n<refine>\nThe plan. <answer>Once upon a time</answer>\n", "malformed"),
        (None, "unchanged"),
        (ServerReply(503), "generator_error"),
        (ServerReply(body="{not json"), "generator_error"),
        (
            ServerReply(body={"choices": [{"index": 0, "message": {"content": "cut"}, "finish_reason": "length"}]}),
            "truncated",
        ),
    ],
)
def test_bad_rewrites_are_rejected_with_a_reason(tiny_scorer, reply, status):
    def edit(target, payload):
        if reply is None:
            return [f"Same.\n</analyze>\n<refine>\n{target}\n"] * payload["n"]
        return reply if isinstance(reply, ServerReply) else [reply] * payload["n"]

    searcher = None
    with OpenAIServer(Writer(edit=edit)) as server:
        searcher = make_searcher(server, tiny_scorer, search_config(search_max_step=1), max_retries=0)
        out = run(searcher, rows(1))
    (step,) = out[0]["trace"]
    expected = 1 if status in ("generator_error", "truncated") and isinstance(reply, ServerReply) else 2
    assert step["candidate_status"] == [status] * expected + ["generator_error"] * (2 - expected)
    assert not step["accepted"] and out[0]["status"] == "ok" and out[0]["z_star"] == out[0]["z0"]


def test_malformed_rewrites_are_kept_when_the_filter_is_off(tiny_scorer):
    """The official code keeps a rewrite that holds the format's tags; filter_malformed false does the same."""

    def edit(target, payload):
        return [f"Fine.\n</analyze>\n<refine>\n{target} It ends <answer>here</answer>.\n"] * payload["n"]

    with OpenAIServer(Writer(edit=edit)) as server:
        relaxed = make_searcher(
            server, tiny_scorer, search_config(search_max_step=1), filter_config(filter_malformed=False)
        )
        (step,) = run(relaxed, rows(1))[0]["trace"]
    assert "malformed" not in step["candidate_status"] and all("<answer>" in c for c in step["candidates"])


def test_leak_guard_rejects_copies_of_the_answer(tiny_scorer):
    copied = " ".join(ANSWER.split()[:14])

    def edit(target, payload):
        return [f"Ok.\n</analyze>\n<refine>\n{target} {copied}\n", f"Ok.\n</analyze>\n<refine>\n{target} Better.\n"]

    with OpenAIServer(Writer(edit=edit)) as server:
        out = run(make_searcher(server, tiny_scorer, search_config(search_max_step=1)), rows(1))
    assert out[0]["trace"][0]["candidate_status"] == ["leak", "scored"]

    def initial(user, payload):
        return [paragraphs(THINKING[:2] + [f"I could open with this: {copied}."] + THINKING[2:])]

    with OpenAIServer(Writer(initial=initial)) as server:
        out = run(make_searcher(server, tiny_scorer), rows(1))
        leaked = out[0]
        off = run(make_searcher(server, tiny_scorer, filters=filter_config(filter_leak_guard=False)), rows(1))[0]
    assert (leaked["status"], leaked["drop_reason"]) == ("dropped", "leak")
    assert off["status"] == "ok"


@pytest.mark.parametrize(
    "initial_text, finish, filters, reason",
    [
        (paragraphs(["The user wants a calm story and I keep saying so again. " * 2] * 12), "stop", {}, "repetition"),
        (paragraphs(THINKING), "length", {}, "end_of_thinking"),
        (paragraphs(THINKING[:3] + [THINKING[3] + " Hmm, maybe not."]), "stop", {}, "end_of_thinking"),
        (paragraphs(THINKING), "stop", {"filter_min_thinking_tokens": 10_000}, "too_short"),
        (paragraphs(THINKING), "stop", {"filter_max_thinking_tokens": 10}, "too_long"),
    ],
)
def test_filters_on_the_final_trajectory(tiny_scorer, initial_text, finish, filters, reason):
    def initial(user, payload):
        body = {
            "choices": [{"index": 0, "message": {"content": initial_text}, "finish_reason": finish}],
            "usage": {"completion_tokens": 200},
        }
        return ServerReply(body=body)

    with OpenAIServer(Writer(initial=initial)) as server:
        searcher = make_searcher(server, tiny_scorer, search_config(search_max_step=1), filter_config(**filters))
        out = run(searcher, rows(1))
        switched_off = {k: False for k in ("filter_end_of_thinking", "filter_repetition")}
        relaxed = filter_config(**switched_off)
        kept = run(make_searcher(server, tiny_scorer, search_config(search_max_step=1), relaxed), rows(1))
    assert (out[0]["status"], out[0]["drop_reason"]) == ("filtered", reason)
    assert out[0]["z_star"]  # filtered rows keep their data
    # a rollout cut by the token limit is filtered before any scoring or search; the others after the search
    assert (out[0]["final_score"] is None) == (finish == "length")
    if reason in ("repetition", "end_of_thinking"):
        assert kept[0]["status"] == "ok"


def test_single_segment_and_short_rollouts_are_dropped(tiny_scorer):
    def initial(user, payload):
        return ["one short thought"] if "Version 0" in user else [" ".join(["word"] * 40)]

    with OpenAIServer(Writer(initial=initial)) as server:
        out = run(make_searcher(server, tiny_scorer), rows(2))
    assert out["drop_reason"] == ["short_rollout", "single_segment"]
    assert out["z0"][0] is not None  # what the generator wrote is kept for inspection


def test_duplicates_are_searched_once(tiny_scorer):
    from reer_hf.synthesis.runner import mark_duplicates

    data = rows(2) + [{"query": "  " + rows(1)[0]["query"].upper(), "answer": ANSWER + "\n"}]
    ds = mark_duplicates(Dataset.from_list(data))
    assert ds["duplicate_of"] == [None, None, 0]
    with OpenAIServer(Writer()) as server:
        searcher = make_searcher(server, tiny_scorer, search_config(search_max_step=1))
        features = ds.features.copy()
        features.update(search_features())
        out = ds.map(searcher, batched=True, with_indices=True, features=features, new_fingerprint=uuid.uuid4().hex)
        assert len(server.requests) == 2 * 2
    assert out["status"] == ["ok", "ok", "duplicate"] and out["drop_reason"][2] == "duplicate"


def test_transformers_generator_in_the_search(tiny_llama_dir, tiny_scorer):
    """The real sampling path end to end: a row-count-independent number of calls, a status for every row."""
    model, tokenizer = load_causal_lm(str(tiny_llama_dir), dtype="fp32", device="cpu")
    calls = []
    for n in (1, 3):
        generator = TransformersGenerator(model, tokenizer, batch_size=4)
        searcher = Searcher(
            generator,
            tiny_scorer,
            search_config(search_min_rollout_tokens=1, search_segment_min_chars=1, search_edit_format="refine"),
            filter_config(filter_repetition=False, filter_end_of_thinking=False),
        )
        out = run(searcher, rows(n))
        assert all(status in ("ok", "dropped", "filtered") for status in out["status"])
        assert all(z is not None for z in out["z0"])
        calls.append((generator.stats["calls"], searcher.stats["scorer_calls"]))
    assert all(g <= 1 + 3 and s <= 1 + 3 for g, s in calls)


def test_refine_format_prefills_the_target_opening_words(tiny_scorer):
    with OpenAIServer(Writer(edit=lambda target, payload: [" rest of it.\n"] * payload["n"])) as server:
        searcher = make_searcher(server, tiny_scorer, search_config(search_max_step=1, search_edit_format="refine"))
        out = run(searcher, rows(1))
        edit = server.requests[-1]
    first = out[0]["z0"].split("\n\n")[0]
    assert prefill_of(edit) == "<refine>\n" + lead_words(first, 3)
    assert edit["stop"] == ["</refine>", "\n\n"]
    assert out[0]["trace"][0]["candidate_status"] == ["scored", "scored"]


@pytest.mark.slow
def test_reruns_are_identical_and_openers_follow_rows(tiny_scorer):
    """Openers are drawn per row (whatever the batching); sampling seeds per map batch from its first row."""
    with OpenAIServer(Writer()) as server:
        a = run(make_searcher(server, tiny_scorer), rows(4), batch_size=2)
        b = run(make_searcher(server, tiny_scorer), rows(4), batch_size=2)
        c = run(make_searcher(server, tiny_scorer), rows(4), batch_size=1)
        seeds = {p["seed"] for p in server.requests if prefill_of(p).startswith("<think>")}
    assert a.to_list() == b.to_list()
    assert not any(math.isnan(s) for s in a["final_score"])
    assert [z.split(" wants")[0] for z in a["z0"]] == [z.split(" wants")[0] for z in c["z0"]]
    assert len(seeds) == 4  # batches of 2 and of 1 from different first rows: distinct seeds


def test_rows_leave_the_lockstep_when_their_segments_run_out(tiny_scorer):
    def initial(user, payload):  # row 0 has two segments, the others four
        return [paragraphs(THINKING[:2] if "Version 0." in user else THINKING)]

    with OpenAIServer(Writer(initial=initial)) as server:
        searcher = make_searcher(server, tiny_scorer)
        out = run(searcher, rows(3))
        edits = [user_text(p) for p in server.requests if not prefill_of(p).startswith("<think>")]
    assert [len(t) for t in out["trace"]] == [2, 3, 3]
    assert out["stop_reason"] == ["segments_exhausted", "max_step", "max_step"]
    assert sum("Version 0." in e for e in edits) == 2 and len(edits) == 2 + 3 + 3
    assert searcher.generator.stats["calls"] == 1 + 3  # step 3 ran for the two rows still active, in one call


def test_refine_format_on_a_merged_segment_rewrites_its_first_paragraph(tiny_scorer):
    short = "Hmm, let me think."  # under 100 characters: merged into the paragraph that follows it
    merged = [THINKING[0], short + "\n\n" + THINKING[1], THINKING[2], THINKING[3]]

    with OpenAIServer(
        Writer(
            initial=lambda user, payload: [paragraphs(merged)],
            edit=lambda target, payload: [" I slow down and picture the reader first."] * payload["n"],
        )
    ) as server:
        search = search_config(search_max_step=2, search_edit_format="refine", search_refine_lead_words=2)
        out = run(make_searcher(server, tiny_scorer, search), rows(1))
    (row,) = out
    candidate = row["trace"][1]["candidates"][0]
    assert candidate == "Hmm, let I slow down and picture the reader first.\n\n" + THINKING[1]
