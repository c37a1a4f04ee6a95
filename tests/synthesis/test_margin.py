"""Search decisions above the scorer's noise: the current trajectory is scored in the same pass as its candidates,
and a gain must clear the margin (search_min_gain) to be accepted; or the official rule, against the kept score."""

from __future__ import annotations

import pytest
from openai_server import OpenAIServer
from test_search import Writer, filter_config, make_searcher, rows, run, search_config, tiny_scorer  # noqa: F401

from reer_hf.scoring.noise import NoiseFloor
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import SearchConfig
from reer_hf.synthesis.noise_floor import NoiseFloorUnavailable


def test_the_incumbent_is_scored_in_the_same_pass_as_its_candidates(tiny_scorer):  # noqa: F811
    calls: list[list[str]] = []
    real = tiny_scorer.score

    def spy(queries, thinkings, answers):
        calls.append(list(thinkings))
        results = real(queries, thinkings, answers)
        spy.last = dict(zip(thinkings, (r.score for r in results), strict=True))
        return results

    tiny_scorer.score = spy
    try:
        with OpenAIServer(Writer()) as server:
            searcher = make_searcher(server, tiny_scorer, search_config(search_max_step=1, search_min_gain="0"))
            out = run(searcher, rows(1))
    finally:
        del tiny_scorer.score
    (step,) = out[0]["trace"]
    edit_call = calls[-1]
    assert len(edit_call) == 3  # two candidates and the incumbent, one pass
    z0 = out[0]["z0"]
    assert z0 in edit_call and step["incumbent_score"] == spy.last[z0]
    for candidate_score, gain in zip(step["candidate_scores"], step["candidate_gains"], strict=True):
        assert gain == step["incumbent_score"] - candidate_score
    assert step["accepted"] == (step["best_gain"] > 0)


def shorter(target: str, payload: dict) -> list[str]:
    """Two rewrites: the target's first half, and a short plan (the tiny model scores some of them better)."""
    return [
        f"Ok.\n</analyze>\n<refine>\n{target[: len(target) // 2]}\n",
        "Ok.\n</analyze>\n<refine>\nA short plan for the story, step by step.\n",
    ]


def test_a_gain_below_the_margin_is_rejected_and_recorded(tiny_scorer):  # noqa: F811
    with OpenAIServer(Writer(edit=shorter)) as server:
        open_door = run(make_searcher(server, tiny_scorer, search_config(search_min_gain="0")), rows(2))
        strict = run(make_searcher(server, tiny_scorer, search_config(search_min_gain="1000")), rows(2))
    accepted = [s for r in open_door for s in r["trace"] if s["accepted"]]
    assert accepted, "the scripted rewrites must improve some steps with no margin"
    steps = [s for r in strict for s in r["trace"]]
    assert not any(s["accepted"] for s in steps)
    positive = [s for s in steps if s["best_gain"] is not None and s["best_gain"] > 0]
    assert len(positive) >= 1  # the gains that were accepted with no margin are refused with one
    for s in positive:
        assert s["margin"] == 1000.0 and "below_margin" in s["candidate_status"] and s["cleared"].count(True) == 0
    assert all(r["z_star"] == r["z0"] for r in strict)


def test_auto_margin_is_the_measured_floor(tiny_scorer):  # noqa: F811
    with OpenAIServer(Writer()) as server:
        searcher = make_searcher(server, tiny_scorer, search_config())
    assert searcher.config.search_min_gain == "auto"
    with pytest.raises(NoiseFloorUnavailable, match="it was not measured"):  # never a silent 0
        _ = searcher.min_gain
    searcher.noise_floor = NoiseFloor(0.25, 0.1, 8, "bfloat16")
    assert searcher.min_gain == 0.25
    floor = searcher.measure_noise([r["query"] for r in rows(2)], [r["answer"] for r in rows(2)])
    assert floor.dtype == "fp32" and floor.max == 0.0 and searcher.min_gain == 0.0  # an fp32 scorer has no dtype noise


class Served:
    """A scorer backend that computes real log-probs but holds no transformers model in reach, as vLLM's prompt
    log-probs do: its numeric noise cannot be measured against an fp32 copy."""

    def __init__(self, backend):
        self.backend = backend

    def __call__(self, rows):
        return self.backend(rows)


def test_an_auto_margin_that_cannot_be_measured_stops_the_search(tiny_scorer):  # noqa: F811
    served = Scorer(tiny_scorer.tokenizer, tiny_scorer.config, backend=Served(tiny_scorer.backend))
    with OpenAIServer(Writer()) as server:
        with pytest.raises(NoiseFloorUnavailable, match="holds no transformers model.*search_min_gain to a number"):
            run(make_searcher(server, served, search_config()), rows(1))
        out = run(make_searcher(server, served, search_config(search_min_gain="0")), rows(1))  # a number: no floor
    assert out[0]["status"] == "ok" and out[0]["trace"][0]["margin"] == 0.0
    with pytest.raises(ValueError, match="search_noise_rows >= 1"):
        SearchConfig(search_noise_rows=0)  # auto with nothing to measure it on
    SearchConfig(search_noise_rows=0, search_min_gain="0")
    SearchConfig(search_noise_rows=0, search_acceptance="official")  # the official rule has no margin to measure


def test_official_acceptance_compares_with_the_kept_score(tiny_scorer):  # noqa: F811
    """search_acceptance official: each candidate against the score kept from the pass that scored the current
    trajectory (no re-score of it), accepted when lower by any margin, so the kept scores never rise."""
    calls: list[list[str]] = []
    real = tiny_scorer.score

    def spy(queries, thinkings, answers):
        calls.append(list(thinkings))
        return real(queries, thinkings, answers)

    tiny_scorer.score = spy
    try:
        with OpenAIServer(Writer(edit=shorter)) as server:
            official = search_config(search_acceptance="official")
            assert official.search_min_gain == "auto" and not official.measures_noise  # nothing to measure
            out = run(make_searcher(server, tiny_scorer, official), rows(2))
    finally:
        del tiny_scorer.score
    steps = [s for r in out for s in r["trace"]]
    assert any(s["accepted"] for s in steps) and not all(s["accepted"] for s in steps)
    for row in out:
        kept = row["initial_score"]
        for step in row["trace"]:
            assert step["incumbent_score"] == kept and step["margin"] == 0.0  # the earlier pass's score, as kept
            best = min(s for s in step["candidate_scores"] if s is not None)
            assert step["accepted"] == (best < kept)
            assert step["best_gain"] == kept - best
            assert step["score_after"] == (best if step["accepted"] else kept) <= kept  # never rises
            kept = step["score_after"]
        assert row["final_score"] == kept
    for call in calls[1:]:  # the edit passes hold the candidates only: no trajectory is scored twice
        assert not {r["z0"] for r in out} & set(call) and len(call) == 2 * len(out)
