"""The three benchmarks of the paper (BENCHMARKS.md): data loaders, judge-reply parsers and score aggregation.

Loaders read the files from a local folder laid out as ``shared/data/benchmarks``::

    <root>/longbench_write.jsonl, longbench_write_en.jsonl, longwrite_ruler.jsonl
    <root>/hellobench/<task>.jsonl, <task>_checklist.json, checklist_weights.json
    <root>/writingbench/benchmark_all.jsonl, requirement_subsets.json

``root`` is the argument, else the environment variable ``REER_BENCHMARK_DATA``, else ``data/benchmarks`` (relative
to the working directory); a given ``root`` may also be a Hub dataset id (``owner/name``) holding the same layout, or
``builtin``: the LongBench-Write files bundled with the package (``reer_hf/assets/benchmarks``, Apache-2.0).
Aggregation functions are pure: they take :class:`~reer_hf.evaluation.judge.Judgement` records (whose ``meta`` says
which item they judge) and leave failed judgements out of every mean, counting them.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reer_hf.evaluation.judge import Judgement, extract_json

__all__ = [
    "DATA_ENV",
    "DEFAULT_DATA_DIR",
    "HELLOBENCH_SCORES",
    "HELLOBENCH_TASKS",
    "LONGBENCH_SUBSETS",
    "LONGBENCH_QUALITY_DIMENSIONS",
    "WRITINGBENCH_DOMAINS",
    "aggregate_hellobench",
    "aggregate_longbench_write",
    "aggregate_writingbench",
    "benchmark_dir",
    "hellobench_item_score",
    "hellobench_rescale",
    "load_hellobench",
    "load_hellobench_weights",
    "load_longbench_write",
    "load_writingbench",
    "parse_hellobench_checklist",
    "parse_longbench_quality",
    "parse_writingbench_score",
]

DATA_ENV = "REER_BENCHMARK_DATA"
DEFAULT_DATA_DIR = "data/benchmarks"
BUILTIN_DATA_DIR = Path(__file__).resolve().parent.parent / "assets" / "benchmarks"

LONGBENCH_SUBSETS = {
    "all": "longbench_write.jsonl",
    "en": "longbench_write_en.jsonl",
    "ruler": "longwrite_ruler.jsonl",
}
#: The six dimensions the LongBench-Write quality judge rates 1-5 (the keys of its JSON reply).
LONGBENCH_QUALITY_DIMENSIONS = (
    "Relevance",
    "Accuracy",
    "Coherence",
    "Clarity",
    "Breadth and Depth",
    "Reading Experience",
)
HELLOBENCH_TASKS = ("open_ended_qa", "summarization", "chat", "text_completion", "heuristic_text_generation")
#: The checklist grades a HelloBench judge may give.
HELLOBENCH_SCORES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: WritingBench's domain letters (REER.md section 8) and their ``domain1`` names.
WRITINGBENCH_DOMAINS = {
    "A": "Academic & Engineering",
    "B": "Finance & Business",
    "C": "Politics & Law",
    "D": "Literature & Arts",
    "E": "Education",
    "F": "Advertising & Marketing",
}
_DOMAIN_LETTER = {name: letter for letter, name in WRITINGBENCH_DOMAINS.items()}


# ---- loaders ----


_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def benchmark_dir(root: str | os.PathLike | None = None) -> Path:
    """The benchmark data folder: ``root``, else ``$REER_BENCHMARK_DATA``, else ``data/benchmarks``.

    A given ``root`` (or ``$REER_BENCHMARK_DATA``) that is not a folder but looks like ``owner/name`` is taken as a
    Hub dataset repository with the same layout, fetched (or found in the cache, offline) with
    ``huggingface_hub.snapshot_download``."""
    spec = root if root is not None else os.environ.get(DATA_ENV)
    if spec == "builtin":
        return BUILTIN_DATA_DIR
    path = Path(spec if spec is not None else DEFAULT_DATA_DIR)
    if path.is_dir():
        return path
    hint = f"pass the folder or a Hub dataset id, or set ${DATA_ENV} (layout: reer_hf/evaluation/benchmarks.py)"
    if spec is not None and _HUB_ID.fullmatch(str(spec)):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id=str(spec), repo_type="dataset"))
        except Exception as e:  # offline without a cached copy, no such repository, no access
            raise FileNotFoundError(
                f"{spec} is no folder, and fetching it as a Hub dataset failed ({type(e).__name__}: {e}); {hint}"
            ) from e
    raise FileNotFoundError(f"No benchmark data folder at {path}: {hint}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"No {path.name} in {path.parent} (layout: reer_hf/evaluation/benchmarks.py)")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_longbench_write(root: str | os.PathLike | None = None, subset: str = "all") -> list[dict[str, Any]]:
    """LongBench-Write rows ``{prompt, type, length}``: ``all`` (120), ``en`` (60) or ``ruler`` (48)."""
    if subset not in LONGBENCH_SUBSETS:
        raise ValueError(f"subset must be one of {list(LONGBENCH_SUBSETS)}, got {subset!r}")
    return _read_jsonl(benchmark_dir(root) / LONGBENCH_SUBSETS[subset])


def load_hellobench(root: str | os.PathLike | None = None, task: str = "heuristic_text_generation") -> list[dict]:
    """HelloBench rows of ``task`` (one of :data:`HELLOBENCH_TASKS`, or ``heuristic_text_generation_{2k,..,16k}``)
    with ``checklists`` decoded to a list of strings."""
    base = task.rsplit("_", 1)[0] if task.endswith(("_2k", "_4k", "_8k", "_16k")) else task
    if base not in HELLOBENCH_TASKS:
        raise ValueError(f"task must be one of {list(HELLOBENCH_TASKS)} (or a _2k.._16k copy), got {task!r}")
    rows = _read_jsonl(benchmark_dir(root) / "hellobench" / f"{task}.jsonl")
    for row in rows:
        if isinstance(row.get("checklists"), str):
            row["checklists"] = json.loads(row["checklists"])
    return rows


def load_hellobench_weights(root: str | os.PathLike | None = None) -> dict[str, list[float]]:
    """Per-category checklist weights (each list sums to 100)."""
    with open(benchmark_dir(root) / "hellobench" / "checklist_weights.json", encoding="utf-8") as f:
        data = json.load(f)
    return data.get("weights", data)


def load_writingbench(
    root: str | os.PathLike | None = None, subset: str | None = None, subset_criteria: bool = False
) -> list[dict[str, Any]]:
    """WritingBench queries; ``subset`` ``style``, ``format`` or ``length`` keeps that requirement subset (its
    "R" rows), and ``subset_criteria`` also keeps only that requirement's criteria of each query (its "C" rows)."""
    folder = benchmark_dir(root) / "writingbench"
    rows = _read_jsonl(folder / "benchmark_all.jsonl")
    if subset is None:
        if subset_criteria:
            raise ValueError("subset_criteria needs a subset (style, format or length)")
        return rows
    with open(folder / "requirement_subsets.json", encoding="utf-8") as f:
        dims = json.load(f)["dimensions"]
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


# ---- judge replies ----


def parse_longbench_quality(text: str) -> dict[str, float]:
    """The six 1-5 ratings of a LongBench-Write quality judge reply (a JSON object keyed by
    :data:`LONGBENCH_QUALITY_DIMENSIONS`; other keys are ignored); ``ValueError`` unless all six are numbers 1-5."""
    value = extract_json(text, dict)
    ratings = {}
    for dim in LONGBENCH_QUALITY_DIMENSIONS:
        rating = value.get(dim)
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 5:
            raise ValueError(f"{dim!r} must be a rating 1-5, got {rating!r}")
        ratings[dim] = float(rating)
    return ratings


def parse_hellobench_checklist(text: str, num_checklist: int) -> list[float]:
    """The grades of a HelloBench judge reply (a JSON list of ``{checklist_id, reason, evaluation_score}``), ordered by
    ``checklist_id``; ``ValueError`` unless every id 0..``num_checklist``-1 appears once with a grade in
    :data:`HELLOBENCH_SCORES`."""
    entries = extract_json(text, list)
    grades: dict[int, float] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"checklist entry is not an object: {entry!r}")
        cid, grade = entry.get("checklist_id"), entry.get("evaluation_score")
        if isinstance(cid, str) and cid.strip().isdigit():
            cid = int(cid)
        if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid < num_checklist or cid in grades:
            raise ValueError(f"bad or repeated checklist_id {cid!r} (expected 0..{num_checklist - 1} once each)")
        if isinstance(grade, bool) or not isinstance(grade, int | float) or float(grade) not in HELLOBENCH_SCORES:
            raise ValueError(f"evaluation_score {grade!r} of checklist {cid} is not one of {HELLOBENCH_SCORES}")
        grades[cid] = float(grade)
    if len(grades) != num_checklist:
        missing = sorted(set(range(num_checklist)) - set(grades))
        raise ValueError(f"checklist ids {missing} are missing from the reply")
    return [grades[i] for i in range(num_checklist)]


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


# ---- aggregation ----


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate_longbench_write(judgements: Iterable[Judgement], length_score: float | None = None) -> dict[str, Any]:
    """LongBench-Write quality S_q from one judgement per item (``value``: :func:`parse_longbench_quality`): each
    dimension's mean rating over the items judged successfully, mapped ``(mean - 1) * 25`` onto 0-100
    (``dimensions``), S_q their mean (``quality_score``); with the length score S_l, the overall
    ``score = (S_l + S_q) / 2``. Failed judgements are left out and counted."""
    judgements = list(judgements)
    ok = [j.value for j in judgements if j.ok]
    dims = {d: (_mean([v[d] for v in ok]) - 1.0) * 25.0 for d in LONGBENCH_QUALITY_DIMENSIONS} if ok else {}
    quality = _mean(list(dims.values()))
    both = quality is not None and length_score is not None
    return {
        "quality_score": quality,
        "dimensions": dims,
        "length_score": length_score,
        "score": (length_score + quality) / 2.0 if both else None,
        "n": len(judgements),
        "n_ok": len(ok),
        "n_failed": len(judgements) - len(ok),
        "failed_ids": [j.id for j in judgements if not j.ok],
    }


def hellobench_item_score(grades: Sequence[float], weights: Sequence[float]) -> float:
    """``sum(weight_i * grade_i)``: in [0, 100] since the weights sum to 100."""
    if len(grades) != len(weights):
        raise ValueError(f"{len(grades)} grades for {len(weights)} checklist weights")
    return sum(w * g for w, g in zip(weights, grades, strict=True))


def hellobench_rescale(score: float) -> float:
    """HelloBench's reported scale: ``(score - 75) * 4``."""
    return (score - 75.0) * 4.0


def aggregate_hellobench(judgements: Iterable[Judgement], weights: dict[str, list[float]]) -> dict[str, Any]:
    """Per task: the mean weighted item score (``score``, 0-100) and its rescaled form (``rescaled``), over the items
    judged successfully; ``n``, ``n_ok``, ``n_failed`` count the items. Each judgement's ``value`` is the list of
    grades (:func:`parse_hellobench_checklist`) and its ``meta`` holds ``task`` and ``category``; ``items`` maps a
    judgement id to its raw score (None when it failed)."""
    by_task: dict[str, list[Judgement]] = defaultdict(list)
    for j in judgements:
        by_task[j.meta["task"]].append(j)
    out: dict[str, Any] = {}
    for task, group in by_task.items():
        items = {j.id: hellobench_item_score(j.value, weights[j.meta["category"]]) if j.ok else None for j in group}
        scores = [s for s in items.values() if s is not None]
        mean = _mean(scores)
        out[task] = {
            "score": mean,
            "rescaled": None if mean is None else hellobench_rescale(mean),
            "n": len(group),
            "n_ok": len(scores),
            "n_failed": len(group) - len(scores),
            "items": items,
        }
    return out


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
            "score": _mean([j.value for j in group]) if complete else None,
            "failed_criteria": [j.meta["criterion"] for j in group if not j.ok],
        }

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [q["score"] for q in rows if q["score"] is not None]
        mean = _mean(scores)
        return {
            "score": mean,
            "score_x10": None if mean is None else 10.0 * mean,
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
