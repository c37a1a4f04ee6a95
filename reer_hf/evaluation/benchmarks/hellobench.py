"""HelloBench (Quehry/HelloBench, MIT): open-ended tasks, each item judged against the checklist of its category.

The judge grades every checklist entry 0/0.25/0.5/0.75/1 (``llm_judge.py``); an item's score is the weighted sum of
its grades, the weights of its category (``weighted_scores.txt``) summing to 100; a task's score is the mean over its
items. The paper's ``HB-A`` is open-ended QA, ``HB-B`` heuristic text generation, both on the raw 0-100 scale (the
rescaled ``(score - 75) * 4`` of HelloBench's leaderboard is in the details).

The official protocol (``llm_judge.py``, ``results/scripts/compute.py``) sends ``SYS_PROMPT`` as a system turn and
``USER_PROMPT`` filled with ``str.format`` (the checklist as compact JSON) as the user turn, at temperature 0.8 with
seed 42 and 4096 new tokens; the response is first re-tokenized with ``nltk.word_tokenize`` and joined by spaces
(cut to 16,000 tokens beyond 15,000), which this module does when nltk and its tokenizer data are installed. The reply
is read after removing code fences, line breaks and backslashes; grades are cast with ``float``, taken in the order the
judge lists them, and must lie in [0, 1].
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cache, partial
from typing import Any

from reer_hf.core import official
from reer_hf.core.prompts import render
from reer_hf.core.text import strip_thinking
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
    "HELLOBENCH_COLUMNS",
    "HELLOBENCH_SCORES",
    "HELLOBENCH_TASKS",
    "HelloBench",
    "aggregate_hellobench",
    "hellobench_item_score",
    "hellobench_rescale",
    "load_hellobench",
    "load_hellobench_weights",
    "official_hellobench_messages",
    "official_response_tokenizer",
    "parse_hellobench_checklist",
    "parse_hellobench_checklist_official",
]

HELLOBENCH_TASKS = ("open_ended_qa", "summarization", "chat", "text_completion", "heuristic_text_generation")
#: The checklist grades a HelloBench judge may give.
HELLOBENCH_SCORES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The paper's HelloBench columns and the task each reports.
HELLOBENCH_COLUMNS = {"HB-A": "open_ended_qa", "HB-B": "heuristic_text_generation"}


def load_hellobench(root: str | os.PathLike | None = None, task: str = "heuristic_text_generation") -> list[dict]:
    """HelloBench rows of ``task`` (one of :data:`HELLOBENCH_TASKS`, or ``heuristic_text_generation_{2k,..,16k}``)
    with ``checklists`` decoded to a list of strings."""
    base = task.rsplit("_", 1)[0] if task.endswith(("_2k", "_4k", "_8k", "_16k")) else task
    if base not in HELLOBENCH_TASKS:
        raise ValueError(f"task must be one of {list(HELLOBENCH_TASKS)} (or a _2k.._16k copy), got {task!r}")
    rows = read_jsonl(benchmark_dir(root) / "hellobench" / f"{task}.jsonl")
    for row in rows:
        if isinstance(row.get("checklists"), str):
            row["checklists"] = json.loads(row["checklists"])
    return rows


def load_hellobench_weights(root: str | os.PathLike | None = None) -> dict[str, list[float]]:
    """Per-category checklist weights (each list sums to 100)."""
    data = read_json(benchmark_dir(root) / "hellobench" / "checklist_weights.json")
    return data.get("weights", data)


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


def parse_hellobench_checklist_official(text: str, num_checklist: int) -> list[float]:
    """The grades read as ``llm_judge.py`` and ``compute.py`` read them: code fences (json, python, bare), line
    breaks and backslashes removed, ``json`` decoding, a list of ``num_checklist`` entries, each ``checklist_id``
    cast with ``int`` and ``evaluation_score`` with ``float`` (``"0.75"`` counts), every grade in [0, 1]; the
    grades in the order the judge lists them, as ``compute.py`` weights them."""
    cleaned = strip_thinking(text)
    for token in ("```json", "```python", "```", "\n", "\\"):
        cleaned = cleaned.replace(token, "")
    entries = json.loads(cleaned)
    if not isinstance(entries, list) or len(entries) != num_checklist:
        raise ValueError(f"expected a list of {num_checklist} checklist entries: {text[:200]!r}")
    grades = []
    for entry in entries:
        int(entry["checklist_id"])
        grade = entry["evaluation_score"]
        grade = float(grade) if not isinstance(grade, bool) else float("nan")
        if not 0.0 <= grade <= 1.0:
            raise ValueError(f"evaluation_score {entry['evaluation_score']!r} is not in [0, 1]")
        grades.append(grade)
    return grades


@cache  # probed once: asked per request
def official_response_tokenizer() -> str:
    """``nltk`` when nltk and its word tokenizer data are installed (the official script's re-tokenization is then
    applied), else ``none`` (the response goes to the judge as written)."""
    try:
        import nltk

        nltk.word_tokenize("a b.")
    except (ImportError, LookupError):
        return "none"
    return "nltk"


def _official_response(response: str) -> str:
    if official_response_tokenizer() == "none":
        return response
    import nltk

    words = nltk.word_tokenize(response)
    return " ".join(words[:16000]) if len(words) > 15000 else " ".join(words)


def official_hellobench_messages(instruction: str, response: str, checklists: Sequence[str]) -> list[dict[str, str]]:
    """``SYS_PROMPT`` as the system turn, ``USER_PROMPT.format(...)`` as the user turn (``llm_judge.py``)."""
    checklist = [{"checklist_id": i, "checklist_content": c} for i, c in enumerate(checklists)]
    user = official.cached_text("hellobench:USER_PROMPT").format(
        instruction=instruction,
        response=_official_response(response),
        checklists=json.dumps(checklist, ensure_ascii=False),
        num_checklist=len(checklist),
    )
    return system_user_turns(official.cached_text("hellobench:SYS_PROMPT"), user)


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
        task_mean = mean(scores)
        out[task] = {
            "score": task_mean,
            "rescaled": None if task_mean is None else hellobench_rescale(task_mean),
            "n": len(group),
            "n_ok": len(scores),
            "n_failed": len(group) - len(scores),
            "items": items,
        }
    return out


class HelloBench(Benchmark):
    """The paper's ``HB-A`` and ``HB-B`` columns (raw 0-100)."""

    name = "hellobench"
    sampling = SamplingDefaults(temperature=0.8, top_p=1.0, top_k=None, max_new_tokens=16384)
    judge_sampling = JudgeSampling(temperature=0.8, top_p=1.0, max_tokens=4096, seed=42)
    official_sources = ("hellobench",)
    item_options = ("hellobench_tasks",)
    columns = tuple(HELLOBENCH_COLUMNS)

    def load_items(
        self,
        root: str | os.PathLike | None,
        *,
        max_items: int | None = None,
        hellobench_tasks: Sequence[str] = tuple(HELLOBENCH_COLUMNS.values()),
    ) -> list[dict[str, Any]]:
        return [
            {
                "id": f"hellobench/{task}/{row['id']}",
                "task": task,
                "prompt": row["instruction"],
                "lang": "en",
                "category": row["category"],
                "checklists": list(row["checklists"]),
            }
            for task in hellobench_tasks
            for row in head(load_hellobench(root, task), max_items)
        ]

    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        checklist = [{"checklist_id": i, "checklist_content": c} for i, c in enumerate(item["checklists"])]
        text = render(
            template,
            instruction=item["prompt"],
            response=answer,
            checklists_json=json.dumps(checklist, ensure_ascii=False, indent=1),
            num_checklist=len(checklist),
        )
        parse = partial(parse_hellobench_checklist, num_checklist=len(checklist))
        meta = {**request_meta(item), "category": item["category"]}
        return [JudgeRequest(item["id"], user_turn(text), meta, parse=parse)]

    def official_judge_requests(self, item: dict[str, Any], answer: str) -> list[JudgeRequest]:
        messages = official_hellobench_messages(item["prompt"], answer, item["checklists"])
        parse = partial(parse_hellobench_checklist_official, num_checklist=len(item["checklists"]))
        meta = {**request_meta(item), "category": item["category"]}
        return [JudgeRequest(item["id"], messages, meta, parse=parse)]

    def protocol(self, source: str) -> dict[str, Any]:
        return {"response_tokenizer": official_response_tokenizer()} if source == "official" else {}

    def aggregate(
        self,
        judgements: Sequence[Judgement],
        items: Sequence[dict[str, Any]],
        scores: dict[str, Any],
        root: str | os.PathLike | None,
    ) -> dict[str, Any]:
        return aggregate_hellobench(judgements, load_hellobench_weights(root))

    def judge_failures(self, judged: dict[str, Any]) -> int:
        return sum(t["n_failed"] for t in judged.values())

    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        judged = scores.get("judged") or {}
        return {column: (judged.get(task) or {}).get("score") for column, task in HELLOBENCH_COLUMNS.items()}

    def details(self, scores: dict[str, Any]) -> dict[str, Any]:
        judged = scores.get("judged") or {}
        return {
            task: {"score": t["score"], "rescaled": t["rescaled"], "n_ok": t["n_ok"]} for task, t in judged.items()
        }

    def markdown(self, details: dict[str, Any]) -> list[str]:
        if not details:
            return []
        lines = ["", "## HelloBench", "", "| task | score | rescaled (score - 75) * 4 | judged |", "|---|---|---|---|"]
        for task, t in details.items():
            lines.append(f"| {task} | {cell(t['score'])} | {cell(t['rescaled'])} | {t['n_ok']} |")
        return lines
