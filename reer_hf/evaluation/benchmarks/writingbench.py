"""WritingBench (X-PLUG/WritingBench, Apache-2.0): writing queries in six domains, each judged on its own five
criteria, 1-10 per criterion, one judge call each (``evaluate_benchmark.py``).

A query's score is the mean of its criterion scores; domain and overall scores are means over queries, on the 1-10
scale and the leaderboard's x10 scale. The paper's ``WB-A`` .. ``WB-F`` are the domains on the x10 scale.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from reer_hf.core.prompts import render
from reer_hf.core.text import detect_language
from reer_hf.evaluation.benchmarks.base import (
    Benchmark,
    SamplingDefaults,
    cell,
    head,
    mean,
    request_meta,
    user_turn,
)
from reer_hf.evaluation.benchmarks.data import benchmark_dir, read_json, read_jsonl
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, extract_json

__all__ = [
    "WRITINGBENCH_DOMAINS",
    "WritingBench",
    "aggregate_writingbench",
    "load_writingbench",
    "parse_writingbench_score",
]

#: WritingBench's domain letters (the paper's WB-A .. WB-F) and their ``domain1`` names.
WRITINGBENCH_DOMAINS = {
    "A": "Academic & Engineering",
    "B": "Finance & Business",
    "C": "Politics & Law",
    "D": "Literature & Arts",
    "E": "Education",
    "F": "Advertising & Marketing",
}
_DOMAIN_LETTER = {name: letter for letter, name in WRITINGBENCH_DOMAINS.items()}


def load_writingbench(
    root: str | os.PathLike | None = None, subset: str | None = None, subset_criteria: bool = False
) -> list[dict[str, Any]]:
    """WritingBench queries; ``subset`` ``style``, ``format`` or ``length`` keeps that requirement subset (its
    "R" rows), and ``subset_criteria`` also keeps only that requirement's criteria of each query (its "C" rows)."""
    folder = benchmark_dir(root) / "writingbench"
    rows = read_jsonl(folder / "benchmark_all.jsonl")
    if subset is None:
        if subset_criteria:
            raise ValueError("subset_criteria needs a subset (style, format or length)")
        return rows
    dims = read_json(folder / "requirement_subsets.json")["dimensions"]
    if subset not in dims:
        raise ValueError(f"subset must be one of {sorted(dims)}, got {subset!r}")
    spec = {k: json.loads(v) if isinstance(v, str) else v for k, v in dims[subset].items()}
    keep = set(spec["R_indices"])
    rows = [r for r in rows if r["index"] in keep]
    if subset_criteria:
        names = {int(k): set(v) for k, v in spec["C_criteria"].items()}
        rows = [
            {**r, "checklist": [c for c in r["checklist"] if c["name"] in names.get(r["index"], ())]} for r in rows
        ]
    return rows


def parse_writingbench_score(text: str) -> int:
    """The integer 1-10 ``score`` of a WritingBench judge reply ``{"score", "reason"}``; ``ValueError`` otherwise."""
    value = extract_json(text, dict)
    score = value.get("score")
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score)
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 10:
        raise ValueError(f"score must be an integer 1-10, got {score!r}")
    return score


def aggregate_writingbench(judgements: Iterable[Judgement], n_criteria: int | dict[Any, int] = 5) -> dict[str, Any]:
    """WritingBench scores from one judgement per (query, criterion): ``value`` the 1-10 score, ``meta`` holding
    ``index``, ``domain1`` and ``criterion`` (its name).

    A query's score is the mean of its criterion scores; a query with a failed criterion, or with other than
    ``n_criteria`` criteria judged, has no score (``None``) and is counted in ``n_failed``: it is left out of the
    domain and overall means rather than scored on part of its criteria. ``n_criteria`` may map a query index to its
    own count (a requirement subset keeps fewer criteria per query). Domain (letters A-F of
    :data:`WRITINGBENCH_DOMAINS`) and overall scores are means over queries, on the 1-10 scale (``score``) and the
    leaderboard's x10 scale (``score_x10``). ``queries`` holds each query's criterion scores and score.
    """
    by_query: dict[Any, list[Judgement]] = defaultdict(list)
    for j in judgements:
        by_query[j.meta["index"]].append(j)
    queries: dict[Any, dict[str, Any]] = {}
    for index, group in by_query.items():
        expected = n_criteria.get(index, 5) if isinstance(n_criteria, dict) else n_criteria
        complete = all(j.ok for j in group) and len(group) == expected
        criteria = {j.meta["criterion"]: j.value if j.ok else None for j in group}
        queries[index] = {
            "domain1": group[0].meta["domain1"],
            "criteria": criteria,
            "score": mean([j.value for j in group]) if complete else None,
            "failed_criteria": [j.meta["criterion"] for j in group if not j.ok],
        }

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [q["score"] for q in rows if q["score"] is not None]
        average = mean(scores)
        return {
            "score": average,
            "score_x10": None if average is None else 10.0 * average,
            "n": len(rows),
            "n_ok": len(scores),
            "n_failed": len(rows) - len(scores),
        }

    domains = {}
    for letter, name in WRITINGBENCH_DOMAINS.items():
        rows = [q for q in queries.values() if q["domain1"] == name]
        if rows:
            domains[letter] = summary(rows)
    unknown = sorted({q["domain1"] for q in queries.values()} - set(_DOMAIN_LETTER))
    for name in unknown:
        domains[name] = summary([q for q in queries.values() if q["domain1"] == name])
    return {"overall": summary(list(queries.values())), "domains": domains, "queries": queries}


class WritingBench(Benchmark):
    """The paper's ``WB-A`` .. ``WB-F`` columns (domains, x10 scale)."""

    name = "writingbench"
    #: WritingBench's code gives no token limit: HelloBench's is used.
    sampling = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=16384)
    item_options = ("writingbench_subset",)
    columns = tuple(f"WB-{letter}" for letter in WRITINGBENCH_DOMAINS)

    def load_items(
        self, root: str | os.PathLike | None, *, max_items: int | None = None, writingbench_subset: str | None = None
    ) -> list[dict[str, Any]]:
        rows = load_writingbench(root, writingbench_subset, subset_criteria=writingbench_subset is not None)
        return [
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
            for row in head(rows, max_items)
        ]

    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        out = []
        for criterion in item["criteria"]:
            text = render(template, query=item["prompt"], response=answer, criterion=criterion)
            meta = {
                **request_meta(item),
                "index": item["index"],
                "domain1": item["domain1"],
                "criterion": criterion["name"],
            }
            request_id = f"{item['id']}#{criterion['name']}"
            out.append(JudgeRequest(request_id, user_turn(text), meta, parse=parse_writingbench_score))
        return out

    def aggregate(
        self,
        judgements: Sequence[Judgement],
        items: Sequence[dict[str, Any]],
        scores: dict[str, Any],
        root: str | os.PathLike | None,
    ) -> dict[str, Any]:
        return aggregate_writingbench(judgements, {it["index"]: len(it["criteria"]) for it in items})

    def judge_failures(self, judged: dict[str, Any]) -> int:
        return judged.get("overall", {}).get("n_failed", 0)

    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        domains = (scores.get("judged") or {}).get("domains", {})
        return {f"WB-{letter}": (domains.get(letter) or {}).get("score_x10") for letter in WRITINGBENCH_DOMAINS}

    def details(self, scores: dict[str, Any]) -> dict[str, Any]:
        judged = scores.get("judged") or {}
        return {"overall": judged.get("overall"), "domains": judged.get("domains")}

    def markdown(self, details: dict[str, Any]) -> list[str]:
        if not details.get("overall"):
            return []
        lines = ["", "## WritingBench", "", "| domain | score (1-10) | x10 | judged queries |", "|---|---|---|---|"]
        for letter, d in {**details["domains"], "overall": details["overall"]}.items():
            lines.append(f"| {letter} | {cell(d['score'])} | {cell(d['score_x10'])} | {d['n_ok']} of {d['n']} |")
        return lines
