"""WritingBench: the criterion reply parser, query/domain/overall aggregation against hand-computed numbers, and one
judge request per criterion."""

from __future__ import annotations

from pathlib import Path

import pytest

from reer_hf.evaluation.benchmarks import get_benchmark, judge_requests, load_items
from reer_hf.evaluation.benchmarks.writingbench import (
    WRITINGBENCH_DOMAINS,
    aggregate_writingbench,
    parse_writingbench_score,
)
from reer_hf.evaluation.judgement import Judgement

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


@pytest.mark.parametrize(
    ("text", "score"),
    [('{"score": 7, "reason": "ok"}', 7), ('<think>{"score": 1}</think>{"score": 10}', 10), ('{"score": 6.0}', 6)],
)
def test_parse_writingbench_score(text, score):
    assert parse_writingbench_score(text) == score


@pytest.mark.parametrize("text", ['{"score": 0}', '{"score": 11}', '{"score": 6.5}', '{"reason": "x"}', "seven"])
def test_parse_writingbench_score_rejects(text):
    with pytest.raises(ValueError):
        parse_writingbench_score(text)


def wb(index: int, domain: str, scores: list[int | None]) -> list[Judgement]:
    out = []
    for k, s in enumerate(scores):
        meta = {"index": index, "domain1": WRITINGBENCH_DOMAINS[domain], "criterion": f"c{k}"}
        ok = s is not None
        out.append(
            Judgement(f"{index}/c{k}", ok, s, error=None if ok else "x", error_kind=None if ok else "http", meta=meta)
        )
    return out


def test_writingbench_scores_hand_computed():
    out = aggregate_writingbench(
        wb(1, "A", [6, 7, 8, 9, 10])  # 8.0
        + wb(2, "A", [5, 5, 5, 5, 5])  # 5.0
        + wb(3, "D", [10, 9, None, 7, 6])  # a failed criterion: no score, counted
        + wb(4, "D", [4, 4, 4, 4, 3])  # 3.8
        + wb(5, "F", [9, 9, 9, 9])  # only 4 of 5 criteria judged: no score
    )
    a, d, f = out["domains"]["A"], out["domains"]["D"], out["domains"]["F"]
    assert a["score"] == pytest.approx(6.5) and a["score_x10"] == pytest.approx(65.0)
    assert (a["n"], a["n_ok"], a["n_failed"]) == (2, 2, 0)
    assert d["score"] == pytest.approx(3.8) and d["score_x10"] == pytest.approx(38.0)
    assert (d["n"], d["n_ok"], d["n_failed"]) == (2, 1, 1)
    assert f["score"] is None and f["score_x10"] is None and f["n_failed"] == 1
    assert set(out["domains"]) == {"A", "D", "F"}
    overall = out["overall"]
    assert overall["score"] == pytest.approx((8 + 5 + 3.8) / 3) and overall["score_x10"] == pytest.approx(56.0)
    assert (overall["n"], overall["n_ok"], overall["n_failed"]) == (5, 3, 2)
    q3 = out["queries"][3]
    assert q3["score"] is None and q3["failed_criteria"] == ["c2"]
    assert q3["criteria"] == {"c0": 10, "c1": 9, "c2": None, "c3": 7, "c4": 6}


def test_one_request_per_criterion_and_the_subset_count():
    (item,) = load_items("writingbench", DATA, max_items=1)
    requests = judge_requests(item, "an abstract")
    assert [r.meta["criterion"] for r in requests] == [c["name"] for c in item["criteria"]]
    assert all(r.id == f"{item['id']}#{r.meta['criterion']}" for r in requests)
    first = item["criteria"][0]
    assert first["criteria_description"] in requests[0].messages[0]["content"]
    assert f"9-10: {first['9-10']}" in requests[0].messages[0]["content"]
    assert requests[0].parse('{"score": 9, "reason": "r"}') == 9
    # a requirement subset keeps one criterion per query: a query judged on it alone has a score
    bench = get_benchmark("writingbench")
    subset = load_items("writingbench", DATA, writingbench_subset="style")
    meta = {"index": 202, "domain1": WRITINGBENCH_DOMAINS["D"], "criterion": "Poetic Language Quality"}
    judged = bench.aggregate([Judgement("x", True, 7, meta=meta)], subset, {}, DATA)
    assert judged["domains"]["D"]["score_x10"] == pytest.approx(70.0) and bench.judge_failures(judged) == 0
    assert bench.cells({"judged": judged})["WB-D"] == pytest.approx(70.0)
