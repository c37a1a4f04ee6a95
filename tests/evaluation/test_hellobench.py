"""HelloBench: the checklist reply parser, item scores and task aggregation against hand-computed numbers, and the
judge request of an item read against its own checklist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reer_hf.evaluation.benchmarks import get_benchmark, judge_requests, load_items
from reer_hf.evaluation.benchmarks.hellobench import (
    aggregate_hellobench,
    hellobench_item_score,
    hellobench_rescale,
    parse_hellobench_checklist,
)
from reer_hf.evaluation.judgement import Judgement

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


def checklist_reply(grades: dict[int, float]) -> str:
    entries = [{"checklist_id": i, "reason": "because", "evaluation_score": g} for i, g in grades.items()]
    return "Evaluation:\n```json\n" + json.dumps(entries) + "\n```"


def test_parse_hellobench_checklist_orders_by_id():
    assert parse_hellobench_checklist(checklist_reply({2: 0.25, 0: 1, 1: 0.5}), 3) == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(
    ("grades", "match"),
    [
        ({0: 1, 1: 0.3}, "not one of"),  # not a grade
        ({0: 1}, "missing"),
        ({0: 1, 1: 1, 2: 1}, "bad or repeated"),  # id out of range
        ({0: True, 1: 1}, "not one of"),
    ],
)
def test_parse_hellobench_checklist_rejects(grades, match):
    with pytest.raises(ValueError, match=match):
        parse_hellobench_checklist(checklist_reply(grades), 2)
    with pytest.raises(ValueError, match="no JSON list"):
        parse_hellobench_checklist('{"checklist_id": 0}', 1)


def hb(id_: str, task: str, grades: list[float] | None) -> Judgement:
    meta = {"task": task, "category": "x"}
    if grades is None:
        return Judgement(id_, False, error="unparsable", error_kind="parse", meta=meta)
    return Judgement(id_, True, grades, meta=meta)


def test_hellobench_scores_hand_computed():
    weights = {"x": [10.0, 20.0, 30.0, 40.0]}
    assert hellobench_item_score([1, 0.5, 0.25, 0.75], weights["x"]) == pytest.approx(57.5)  # 10 + 10 + 7.5 + 30
    assert hellobench_rescale(73.75) == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="4 checklist weights"):
        hellobench_item_score([1, 1], weights["x"])
    out = aggregate_hellobench(
        [
            hb("a", "chat", [1, 0.5, 0.25, 0.75]),  # 57.5
            hb("b", "chat", [1, 1, 1, 0.75]),  # 90
            hb("c", "chat", None),  # failed: out of the mean, counted
            hb("d", "open_ended_qa", [1, 1, 1, 1]),  # 100
        ],
        weights,
    )
    chat = out["chat"]
    assert chat["score"] == pytest.approx(73.75) and chat["rescaled"] == pytest.approx(-5.0)
    assert (chat["n"], chat["n_ok"], chat["n_failed"]) == (3, 2, 1)
    assert chat["items"] == {"a": pytest.approx(57.5), "b": pytest.approx(90.0), "c": None}
    assert out["open_ended_qa"]["score"] == pytest.approx(100.0)
    assert out["open_ended_qa"]["rescaled"] == pytest.approx(100.0)
    only_failed = aggregate_hellobench([hb("c", "chat", None)], weights)["chat"]
    assert only_failed["score"] is None and only_failed["rescaled"] is None and only_failed["n_failed"] == 1


def test_request_is_read_against_the_items_own_checklist():
    (item,) = load_items("hellobench", DATA, hellobench_tasks=["heuristic_text_generation"], max_items=1)
    (request,) = judge_requests(item, "the answer")
    text = request.messages[0]["content"]
    assert item["prompt"] in text and "the answer" in text and f'"checklist_content": "{item["checklists"][0]}' in text
    assert request.meta["category"] == item["category"] == "keyword_writing"
    five = [{"checklist_id": i, "evaluation_score": 1} for i in range(5)]
    assert request.parse(json.dumps(five)) == [1.0] * 5
    with pytest.raises(ValueError):  # read against this item's five checklists
        request.parse(json.dumps(five[:3]))


def test_aggregate_reads_the_weights_of_the_data_folder():
    bench = get_benchmark("hellobench")
    meta = {"task": "heuristic_text_generation", "category": "keyword_writing"}
    judged = bench.aggregate([Judgement("a", True, [1.0] * 5, meta=meta)], [], {}, DATA)
    assert judged["heuristic_text_generation"]["score"] == pytest.approx(100.0)  # the weights sum to 100
    assert bench.cells({"judged": judged}) == {"HB-A": None, "HB-B": pytest.approx(100.0)}
    assert bench.judge_failures(judged) == 0
