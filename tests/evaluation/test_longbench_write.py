"""LongBench-Write: the length count and score against hand-computed numbers, the quality judge's reply parser and
aggregation, the items, judge requests and table cells."""

from __future__ import annotations

import json

import pytest

from reer_hf.core.text import detect_language
from reer_hf.evaluation.benchmarks import get_benchmark, judge_requests, load_items
from reer_hf.evaluation.benchmarks.longbench_write import (
    LONGBENCH_QUALITY_DIMENSIONS,
    aggregate_longbench_write,
    length_score,
    parse_longbench_quality,
    produced_length,
)
from reer_hf.evaluation.judgement import Judgement


@pytest.mark.parametrize(
    ("required", "produced", "expected"),
    [
        (100, 100, 100.0),
        (100, 160, 80.0),  # over: 1 - (1.6 - 1) / 3
        (100, 400, 0.0),  # over by 3x: exactly 0
        (100, 1000, 0.0),  # clipped at 0
        (100, 50, 50.0),  # under: 1 - (2 - 1) / 2
        (100, 80, 87.5),  # 1 - (1.25 - 1) / 2
        (100, 25, 0.0),  # clipped at 0
        (100, 0, 0.0),  # empty answer
    ],
)
def test_length_score_hand_computed(required, produced, expected):
    assert length_score(required, produced) == pytest.approx(expected)


def test_length_score_rejects_non_positive_requirement():
    with pytest.raises(ValueError, match="positive"):
        length_score(0, 10)


def test_produced_length_counts_english_words_and_chinese_characters():
    assert produced_length("Hello, world! It's 2024.") == 4  # Hello, world, It, s; numbers are not words
    assert produced_length("你好，世界。") == 4  # CJK characters; punctuation does not count
    assert produced_length("我写了 LongWriter 模型") == 6  # 我写了 + 模型 + one English word
    assert produced_length("") == 0
    assert detect_language("你好，世界。hello") == "zh"
    assert detect_language("hello world 你") == "en"


def test_parse_longbench_quality():
    ratings = dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 4)
    reply = "Scores:\n```json\n" + json.dumps({**ratings, "Accuracy": 2, "Comment": "fine"}) + "\n```"
    assert parse_longbench_quality(reply) == {**dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 4.0), "Accuracy": 2.0}
    for bad in ({**ratings, "Clarity": 6}, {**ratings, "Clarity": "5"}, {k: 3 for k in list(ratings)[:5]}):
        with pytest.raises(ValueError, match="rating 1-5"):
            parse_longbench_quality(json.dumps(bad))


def test_longbench_write_quality_hand_computed():
    top = dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 5.0)
    mid = {**dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 3.0), "Accuracy": 1.0}
    out = aggregate_longbench_write(
        [
            Judgement("0", True, top),
            Judgement("1", True, mid),
            Judgement("2", False, error="x", error_kind="parse"),
        ],
        length_score=80.0,
    )
    # dimension means: 4 (-> 75) for five dimensions, Accuracy 3 (-> 50)
    assert out["dimensions"]["Accuracy"] == pytest.approx(50.0) and out["dimensions"]["Clarity"] == pytest.approx(75.0)
    assert out["quality_score"] == pytest.approx((5 * 75 + 50) / 6)
    assert out["score"] == pytest.approx((80 + (5 * 75 + 50) / 6) / 2)
    assert (out["n"], out["n_ok"], out["n_failed"], out["failed_ids"]) == (3, 2, 1, ["2"])
    empty = aggregate_longbench_write([Judgement("2", False, error="x", error_kind="http")], length_score=80.0)
    assert empty["quality_score"] is None and empty["score"] is None and empty["dimensions"] == {}


def test_items_metrics_requests_and_cells(tmp_path):
    items = load_items("longbench_write", "builtin", max_items=2)
    assert [it["id"] for it in items] == ["longbench_write/all/0000", "longbench_write/all/0001"]
    assert all(it["benchmark"] == "longbench_write" and it["length"] == 100 for it in items)
    bench = get_benchmark("longbench_write")
    metrics = bench.metrics(items, ["word " * 100, "word " * 50])
    assert metrics["length_score"] == pytest.approx(75.0)
    assert metrics["items"][items[1]["id"]] == {"required": 100, "produced": 50, "length_score": 50.0}
    assert bench.metrics([], []) == {}
    (request,) = judge_requests(items[0], "rain " * 10)
    assert "Do not take the length" in request.messages[0]["content"] and request.meta["item_id"] == items[0]["id"]
    custom = tmp_path / "mine.md"
    custom.write_text("Rate {{ response }} for {{ instruction }}")
    (mine,) = judge_requests(items[0], "xyz", {"longbench_write": str(custom)})
    assert mine.messages[0]["content"] == f"Rate xyz for {items[0]['prompt']}"
    assert bench.cells({"length_score": 60.0}) == {"LB": None, "LB S_l": 60.0}
    assert bench.cells({"length_score": 60.0, "judged": {"score": 70.0}}) == {"LB": 70.0, "LB S_l": 60.0}
