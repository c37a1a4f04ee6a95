"""The reasoning profile: the five-dimension reply parser, the requests (thinking only) and the aggregation."""

from __future__ import annotations

import json

import pytest

from reer_hf.evaluation.judgement import Judgement
from reer_hf.evaluation.reasoning import (
    REASONING_DIMENSIONS,
    aggregate_reasoning_profile,
    parse_reasoning_profile,
    reasoning_requests,
)


def test_reasoning_profile_parse_and_aggregate():
    reply = json.dumps(dict.fromkeys(REASONING_DIMENSIONS, "7") | {"reason": "x"})
    assert parse_reasoning_profile(reply) == dict.fromkeys(REASONING_DIMENSIONS, 7.0)
    with pytest.raises(ValueError, match="depth_of_analysis"):
        parse_reasoning_profile(json.dumps(dict.fromkeys(REASONING_DIMENSIONS, 5) | {"depth_of_analysis": 11}))
    judgements = [
        Judgement("a", True, dict.fromkeys(REASONING_DIMENSIONS, 4.0)),
        Judgement("b", True, dict.fromkeys(REASONING_DIMENSIONS, 8.0)),
        Judgement("c", False, error="x", error_kind="parse"),
    ]
    agg = aggregate_reasoning_profile(judgements)
    assert agg["dimensions"]["factual_grounding"] == {"mean": 6.0, "std": 2.0, "min": 4.0, "max": 8.0}
    assert (agg["n_ok"], agg["n_failed"], agg["failed_ids"]) == (2, 1, ["c"])


def test_requests_only_for_items_with_thinking():
    items = [{"id": f"b/{i}", "benchmark": "b", "task": "t", "prompt": f"Write {i}."} for i in range(3)]
    requests = reasoning_requests(items, {"b/0": "A plan.", "b/1": "", "b/2": None})
    (request,) = requests
    assert request.id == "reasoning/b/0" and request.meta == {"benchmark": "b", "task": "t", "item_id": "b/0"}
    text = request.messages[0]["content"]
    assert "A plan." in text and "Write 0." in text and "problem_deconstruction" in text
    assert request.parse(json.dumps(dict.fromkeys(REASONING_DIMENSIONS, 9))) == dict.fromkeys(
        REASONING_DIMENSIONS, 9.0
    )
