"""WritingBench (X-PLUG/WritingBench, Apache-2.0): writing queries in six domains, each judged on its own five
criteria, 1-10 per criterion, one judge call each (``evaluate_benchmark.py``).

A query's score is the mean of its criterion scores; domain and overall scores are means over queries, on the 1-10
scale and the leaderboard's x10 scale. The paper's ``WB-A`` .. ``WB-F`` are the domains on the x10 scale.

The official protocol (``prompt.py``, ``evaluate_benchmark.py``, ``evaluator/llm.py``) sends ``evaluate_system`` as a
system turn and ``evaluate_prompt`` filled with ``str.format`` (the criterion as its Python ``dict`` text, the
response cut after ``</think>\n\n``) as the user turn, at temperature 1.0, top-p 0.95 and 2048 new tokens; the reply
is ``json`` decoded after stripping the characters ``json|``` `` from both ends and must hold an integer ``score`` 1-10
and a string ``reason``. ``calculate_scores.py`` also reports the overall mean over every criterion score and, per
requirement subset (style, format, length), ``R`` (the mean score of its queries) and ``C`` (the mean of its own
criteria's scores on those queries).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from reer_hf.core import official
from reer_hf.core.prompts import render
from reer_hf.core.text import THINK_CLOSE, detect_language, strip_thinking
from reer_hf.evaluation.benchmarks.base import (
    Benchmark,
    SamplingDefaults,
    cell,
    head,
    mean,
    request_meta,
    system_user_turns,
    user_turn,
)
from reer_hf.evaluation.benchmarks.data import benchmark_dir, read_json, read_jsonl
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, JudgeSampling, extract_json

__all__ = [
    "WRITINGBENCH_DOMAINS",
    "WritingBench",
    "aggregate_writingbench",
    "load_requirement_subsets",
    "load_writingbench",
    "official_writingbench_messages",
    "parse_writingbench_score",
    "parse_writingbench_score_official",
    "requirement_scores",
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
#: The characters the official check strips from both ends of a reply (``str.strip`` takes a set of characters).
_STRIPPED = "".join(sorted(set("json|`")))
_DOMAIN_LETTER = {name: letter for letter, name in WRITINGBENCH_DOMAINS.items()}


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def load_requirement_subsets(root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]] | None:
    """Each requirement subset's queries (``R``: indices) and criteria (``C``: index -> criterion names), from
    ``requirement_subsets.json``; None when the folder has no such file."""
    path = benchmark_dir(root) / "writingbench" / "requirement_subsets.json"
    if not path.is_file():
        return None
    out = {}
    for name, spec in read_json(path)["dimensions"].items():
        criteria = _decoded(spec["C_criteria"])
        out[name] = {"R": list(_decoded(spec["R_indices"])), "C": {int(k): list(v) for k, v in criteria.items()}}
    return out


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
    spec = {k: _decoded(v) for k, v in dims[subset].items()}
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


def parse_writingbench_score_official(text: str) -> int:
    """The score read as ``evaluate_benchmark.py`` checks it: ``json`` decoding after stripping the characters
    ``json|``` `` from both ends, ``score`` one of 1..10 (``7.0`` counts, ``"7"`` does not) and ``reason`` a
    string; ``ValueError`` otherwise."""
    value = json.loads(strip_thinking(text).strip(_STRIPPED))
    if not isinstance(value, dict) or "score" not in value or "reason" not in value:
        raise ValueError(f"the reply lacks 'score' or 'reason': {text[:200]!r}")
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or score not in range(1, 11):
        raise ValueError(f"score must be an integer 1-10, got {score!r}")
    if not isinstance(value["reason"], str):
        raise ValueError(f"reason must be a string, got {value['reason']!r}")
    return int(score)


def _after_thinking(response: str) -> str:
    """``process_gen_field``: the text after the first ``</think>`` followed by a blank line, else all of it."""
    marker = f"{THINK_CLOSE}\n\n"
    position = response.find(marker)
    return response if position == -1 else response[position + len(marker) :]


def official_writingbench_messages(query: str, response: str, criterion: dict[str, Any]) -> list[dict[str, str]]:
    """``evaluate_system`` as the system turn, ``evaluate_prompt.format(query, response, criteria)`` as the user
    turn; the criterion is formatted as the official script formats its ``dict`` (its Python text)."""
    user = official.cached_text("writingbench:evaluate_prompt").format(
        query=query, response=_after_thinking(response), criteria=criterion
    )
    return system_user_turns(official.cached_text("writingbench:evaluate_system"), user)


def requirement_scores(queries: dict[Any, dict[str, Any]], subsets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per requirement subset, as ``calculate_scores.py``: ``R`` the mean score of its queries that have one, ``C``
    the mean of its own criteria's scores on those queries (1-10, and x10); None where no query of it has a score
    (the official script writes 0)."""
    out = {}
    for name, spec in subsets.items():
        scored = [index for index in spec["R"] if (queries.get(index) or {}).get("score") is not None]
        r_scores = [queries[index]["score"] for index in scored]
        named = [queries[index]["criteria"].get(c) for index in scored for c in spec["C"].get(index, [])]
        c_scores = [v for v in named if v is not None]
        r, c = mean(r_scores), mean(c_scores)
        out[name] = {
            "R": r,
            "R_x10": None if r is None else 10.0 * r,
            "C": c,
            "C_x10": None if c is None else 10.0 * c,
            "n_R": len(r_scores),
            "n_C": len(c_scores),
        }
    return out


def aggregate_writingbench(
    judgements: Iterable[Judgement],
    n_criteria: int | dict[Any, int] = 5,
    subsets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """WritingBench scores from one judgement per (query, criterion): ``value`` the 1-10 score, ``meta`` holding
    ``index``, ``domain1`` and ``criterion`` (its name).

    A query's score is the mean of its criterion scores; a query with a failed criterion, or with other than
    ``n_criteria`` criteria judged, has no score (``None``) and is counted in ``n_failed``: it is left out of the
    domain and overall means rather than scored on part of its criteria. ``n_criteria`` may map a query index to its
    own count (a requirement subset keeps fewer criteria per query). Domain (letters A-F of
    :data:`WRITINGBENCH_DOMAINS`) and overall scores are means over queries, on the 1-10 scale (``score``) and the
    leaderboard's x10 scale (``score_x10``); ``overall`` also holds ``calculate_scores.py``'s Overall, the mean over
    every criterion score of the scored queries (``criterion_mean``). ``queries`` holds each query's criterion
    scores and score; with ``subsets`` (:func:`load_requirement_subsets`), ``requirements`` holds
    :func:`requirement_scores`.
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
    overall = summary(list(queries.values()))
    pooled = mean([v for q in queries.values() if q["score"] is not None for v in q["criteria"].values()])
    overall.update(criterion_mean=pooled, criterion_mean_x10=None if pooled is None else 10.0 * pooled)
    out = {"overall": overall, "domains": domains, "queries": queries}
    if subsets:
        out["requirements"] = requirement_scores(queries, subsets)
    return out


class WritingBench(Benchmark):
    """The paper's ``WB-A`` .. ``WB-F`` columns (domains, x10 scale)."""

    name = "writingbench"
    #: WritingBench's code gives no token limit: HelloBench's is used.
    sampling = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=16384)
    judge_sampling = JudgeSampling(temperature=1.0, top_p=0.95, max_tokens=2048)
    official_sources = ("writingbench",)
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

    @staticmethod
    def _request(item: dict[str, Any], criterion: dict[str, Any], messages: list[dict], parse) -> JudgeRequest:
        """One judge request per criterion: the same id and meta whichever prompt asks it."""
        meta = {
            **request_meta(item),
            "index": item["index"],
            "domain1": item["domain1"],
            "criterion": criterion["name"],
        }
        return JudgeRequest(f"{item['id']}#{criterion['name']}", messages, meta, parse=parse)

    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        return [
            self._request(
                item,
                criterion,
                user_turn(render(template, query=item["prompt"], response=answer, criterion=criterion)),
                parse_writingbench_score,
            )
            for criterion in item["criteria"]
        ]

    def official_judge_requests(self, item: dict[str, Any], answer: str) -> list[JudgeRequest]:
        return [
            self._request(
                item,
                criterion,
                official_writingbench_messages(item["prompt"], answer, criterion),
                parse_writingbench_score_official,
            )
            for criterion in item["criteria"]
        ]

    def aggregate(
        self,
        judgements: Sequence[Judgement],
        items: Sequence[dict[str, Any]],
        scores: dict[str, Any],
        root: str | os.PathLike | None,
    ) -> dict[str, Any]:
        # the subsets are read off a run over every query and criterion, as calculate_scores.py reads them
        whole = bool(items) and all(it["task"] == "all" for it in items)
        subsets = load_requirement_subsets(root) if whole else None
        return aggregate_writingbench(judgements, {it["index"]: len(it["criteria"]) for it in items}, subsets)

    def judge_failures(self, judged: dict[str, Any]) -> int:
        return judged.get("overall", {}).get("n_failed", 0)

    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        domains = (scores.get("judged") or {}).get("domains", {})
        return {f"WB-{letter}": (domains.get(letter) or {}).get("score_x10") for letter in WRITINGBENCH_DOMAINS}

    def details(self, scores: dict[str, Any]) -> dict[str, Any]:
        judged = scores.get("judged") or {}
        return {
            "overall": judged.get("overall"),
            "domains": judged.get("domains"),
            "requirements": judged.get("requirements"),
        }

    def markdown(self, details: dict[str, Any]) -> list[str]:
        if not details.get("overall"):
            return []
        lines = ["", "## WritingBench", "", "| domain | score (1-10) | x10 | judged queries |", "|---|---|---|---|"]
        for letter, d in {**details["domains"], "overall": details["overall"]}.items():
            lines.append(f"| {letter} | {cell(d['score'])} | {cell(d['score_x10'])} | {d['n_ok']} of {d['n']} |")
        overall = details["overall"]
        lines += [
            "",
            f"Mean over every criterion score (calculate_scores.py's Overall): {cell(overall.get('criterion_mean'))}",
        ]
        if details.get("requirements"):
            lines += ["", "| requirement | R (x10) | C (x10) | queries |", "|---|---|---|---|"]
            for name, r in details["requirements"].items():
                lines.append(f"| {name} | {cell(r['R_x10'])} | {cell(r['C_x10'])} | {r['n_R']} |")
        return lines
