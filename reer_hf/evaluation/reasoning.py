"""The reasoning profile: the judge rates a model's thinking (not its answer) on the five dimensions the paper compares
models on, 1-10 each, with our rubric (``reer_hf/prompts/judge_reasoning_en.md``). It spans benchmarks, so it is no
benchmark of its own."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from reer_hf.core.prompts import render
from reer_hf.evaluation.benchmarks.base import request_meta, user_turn
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, extract_json

__all__ = [
    "REASONING_DIMENSIONS",
    "aggregate_reasoning_profile",
    "parse_reasoning_profile",
    "reasoning_requests",
]

#: The five judged dimensions of thinking, the keys of the reasoning judge's reply.
REASONING_DIMENSIONS = (
    "problem_deconstruction",
    "logical_consistency",
    "depth_of_analysis",
    "presentation_clarity",
    "factual_grounding",
)


def parse_reasoning_profile(text: str) -> dict[str, float]:
    """The five 1-10 ratings of a reasoning-profile reply; ``ValueError`` unless all five are numbers 1-10."""
    value = extract_json(text, dict)
    ratings = {}
    for dim in REASONING_DIMENSIONS:
        rating = value.get(dim)
        if isinstance(rating, str) and rating.strip().isdigit():
            rating = int(rating)
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 10:
            raise ValueError(f"{dim!r} must be a rating 1-10, got {rating!r}")
        ratings[dim] = float(rating)
    return ratings


def reasoning_requests(
    items: Iterable[dict[str, Any]], thinkings: dict[str, str | None], template: str | None = None
) -> list[JudgeRequest]:
    """One reasoning-profile call per item with non-empty thinking (``thinkings`` maps item id to its thinking)."""
    out = []
    for item in items:
        thinking = thinkings.get(item["id"])
        if thinking:
            text = render(template or "judge_reasoning", query=item["prompt"], thinking=thinking)
            out.append(
                JudgeRequest(
                    f"reasoning/{item['id']}", user_turn(text), request_meta(item), parse=parse_reasoning_profile
                )
            )
    return out


def aggregate_reasoning_profile(judgements: Iterable[Judgement]) -> dict[str, Any]:
    """Per dimension: mean, population standard deviation, min and max of the ratings (1-10) over the successful
    judgements; failures counted, never scored."""
    judgements = list(judgements)
    ok = [j.value for j in judgements if j.ok]
    dims = {}
    for dim in REASONING_DIMENSIONS:
        values = [v[dim] for v in ok]
        if values:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))
            dims[dim] = {"mean": mean, "std": std, "min": min(values), "max": max(values)}
    return {
        "dimensions": dims,
        "n": len(judgements),
        "n_ok": len(ok),
        "n_failed": len(judgements) - len(ok),
        "failed_ids": [j.id for j in judgements if not j.ok],
    }
