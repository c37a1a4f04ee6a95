"""Search decisions above the scorer's noise: the current trajectory is scored in the same pass as its candidates,
and a gain must clear the margin (search_min_gain) to be accepted."""

from __future__ import annotations

from openai_server import OpenAIServer
from test_search import Writer, filter_config, make_searcher, rows, run, search_config, tiny_scorer  # noqa: F401

from reer_hf.scoring.noise import NoiseFloor


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
    assert searcher.config.search_min_gain == "auto" and searcher.min_gain == 0.0  # not measured: any improvement
    searcher.noise_floor = NoiseFloor(0.25, 0.1, 8, "bfloat16")
    assert searcher.min_gain == 0.25
    floor = searcher.measure_noise([r["query"] for r in rows(2)], [r["answer"] for r in rows(2)])
    assert floor.dtype == "fp32" and floor.max == 0.0 and searcher.min_gain == 0.0  # an fp32 scorer has no dtype noise
