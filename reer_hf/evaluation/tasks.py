"""Each benchmark as the evaluation recipe runs it: its items, its generation settings, its judge requests.

An *item* is a plain dict: ``id`` (unique in the run), ``benchmark``, ``task``, ``prompt`` (the user turn), ``lang``,
and what scoring needs: ``length`` (LongBench-Write), ``category`` and ``checklists`` (HelloBench), ``index``,
``domain1``, ``domain2`` and ``criteria`` (WritingBench). Judge prompts are the ``judge_*`` templates of
``reer_hf/prompts`` (or files of one's own); each request carries the parser of its reply.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from reer_hf.core.prompts import render
from reer_hf.core.text import detect_language
from reer_hf.evaluation import benchmarks as bm
from reer_hf.evaluation.judge import Judgement, JudgeRequest, extract_json

__all__ = [
    "BENCHMARKS",
    "GENERATION_DEFAULTS",
    "REASONING_DIMENSIONS",
    "aggregate_reasoning_profile",
    "judge_requests",
    "load_items",
    "parse_reasoning_profile",
    "reasoning_requests",
]

BENCHMARKS = ("longbench_write", "hellobench", "writingbench")

#: Generation settings of each benchmark's original code (BENCHMARKS.md); WritingBench gives no token limit, so it
#: gets HelloBench's.
GENERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "longbench_write": {"temperature": 0.5, "top_p": 1.0, "top_k": None, "max_new_tokens": 32768},
    "hellobench": {"temperature": 0.8, "top_p": 1.0, "top_k": None, "max_new_tokens": 16384},
    "writingbench": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_new_tokens": 16384},
}

#: The five judged dimensions of thinking (REER.md section 10), the keys of the reasoning judge's reply.
REASONING_DIMENSIONS = (
    "problem_deconstruction",
    "logical_consistency",
    "depth_of_analysis",
    "presentation_clarity",
    "factual_grounding",
)


def load_items(
    benchmark: str,
    root: str | os.PathLike | None = None,
    *,
    longbench_subset: str = "all",
    hellobench_tasks: Sequence[str] = ("open_ended_qa", "heuristic_text_generation"),
    writingbench_subset: str | None = None,
    max_items: int | None = None,
) -> list[dict[str, Any]]:
    """The items of ``benchmark`` (one of :data:`BENCHMARKS`) in file order; ``max_items`` keeps the first N of each
    file (each HelloBench task) for quick runs."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")

    def head(rows: list) -> list:
        return rows if max_items is None else rows[:max_items]

    items: list[dict[str, Any]] = []
    if benchmark == "longbench_write":
        for i, row in enumerate(head(bm.load_longbench_write(root, longbench_subset))):
            lang = detect_language(row["prompt"])
            items.append(
                {
                    "id": f"longbench_write/{longbench_subset}/{i:04d}",
                    "task": longbench_subset,
                    "prompt": row["prompt"],
                    "lang": lang,
                    "length": int(row["length"]),
                    "type": row.get("type"),
                }
            )
    elif benchmark == "hellobench":
        for task in hellobench_tasks:
            for row in head(bm.load_hellobench(root, task)):
                items.append(
                    {
                        "id": f"hellobench/{task}/{row['id']}",
                        "task": task,
                        "prompt": row["instruction"],
                        "lang": "en",
                        "category": row["category"],
                        "checklists": list(row["checklists"]),
                    }
                )
    else:
        for row in head(
            bm.load_writingbench(root, writingbench_subset, subset_criteria=writingbench_subset is not None)
        ):
            items.append(
                {
                    "id": f"writingbench/{row['index']}",
                    "task": writingbench_subset or "all",
                    "prompt": row["query"],
                    "lang": row.get("lang") or detect_language(row["query"]),
                    "index": row["index"],
                    "domain1": row["domain1"],
                    "domain2": row.get("domain2"),
                    "criteria": list(row["checklist"]),
                }
            )
    for item in items:
        item["benchmark"] = benchmark
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{benchmark}: item ids repeat; the data has duplicate ids")
    return items


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def judge_requests(item: dict[str, Any], answer: str, templates: dict[str, str] | None = None) -> list[JudgeRequest]:
    """The judge calls that score ``answer`` (thinking already stripped) to ``item``: one for LongBench-Write quality,
    one for a HelloBench checklist, one per criterion for WritingBench. ``templates`` maps a benchmark to a template
    file of one's own (default: ``reer_hf/prompts/judge_<benchmark>_en.md``)."""
    benchmark = item["benchmark"]
    template = (templates or {}).get(benchmark) or f"judge_{benchmark}"
    meta = {"benchmark": benchmark, "task": item["task"], "item_id": item["id"]}
    if benchmark == "longbench_write":
        messages = _user(render(template, instruction=item["prompt"], response=answer))
        return [JudgeRequest(item["id"], messages, meta, parse=bm.parse_longbench_quality)]
    if benchmark == "hellobench":
        checklist = [{"checklist_id": i, "checklist_content": c} for i, c in enumerate(item["checklists"])]
        text = render(
            template,
            instruction=item["prompt"],
            response=answer,
            checklists_json=json.dumps(checklist, ensure_ascii=False, indent=1),
            num_checklist=len(checklist),
        )
        parse = partial(bm.parse_hellobench_checklist, num_checklist=len(checklist))
        return [JudgeRequest(item["id"], _user(text), {**meta, "category": item["category"]}, parse=parse)]
    if benchmark == "writingbench":
        out = []
        for criterion in item["criteria"]:
            text = render(template, query=item["prompt"], response=answer, criterion=criterion)
            criterion_meta = {
                **meta,
                "index": item["index"],
                "domain1": item["domain1"],
                "criterion": criterion["name"],
            }
            out.append(
                JudgeRequest(
                    f"{item['id']}#{criterion['name']}", _user(text), criterion_meta, parse=bm.parse_writingbench_score
                )
            )
        return out
    raise ValueError(f"unknown benchmark {benchmark!r}")


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
    items: Iterable[dict[str, Any]], thinkings: dict[str, str], template: str | None = None
) -> list[JudgeRequest]:
    """One reasoning-profile call per item with non-empty thinking (``thinkings`` maps item id to its thinking)."""
    out = []
    for item in items:
        thinking = thinkings.get(item["id"])
        if thinking:
            text = render(template or "judge_reasoning", query=item["prompt"], thinking=thinking)
            meta = {"benchmark": item["benchmark"], "task": item["task"], "item_id": item["id"]}
            out.append(JudgeRequest(f"reasoning/{item['id']}", _user(text), meta, parse=parse_reasoning_profile))
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
