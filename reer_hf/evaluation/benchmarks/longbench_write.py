"""LongBench-Write (THUDM/LongWriter ``evaluation/``, Apache-2.0): writing requests with a required length, scored
on length (S_l, no judge) and on quality (S_q, six judged dimensions); the paper's ``LB`` is ``S = (S_l + S_q) / 2``.

The length count and score follow ``evaluation/eval_length.py``, the quality judge ``evaluation/eval_quality.py``:
its official protocol sends ``judge.txt`` with ``$INST$`` and ``$RESPONSE$`` replaced, as one user turn, at
temperature 0.5 with 1024 new tokens, and reads the reply after cutting a ```` ```json ```` fence and every line break.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from reer_hf.core import official
from reer_hf.core.prompts import render
from reer_hf.core.text import detect_language, strip_thinking
from reer_hf.evaluation import metrics
from reer_hf.evaluation.benchmarks.base import (
    Benchmark,
    SamplingDefaults,
    cell,
    head,
    mean,
    request_meta,
    user_turn,
)
from reer_hf.evaluation.benchmarks.data import benchmark_dir, read_jsonl
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, JudgeSampling, extract_json

__all__ = [
    "LONGBENCH_QUALITY_DIMENSIONS",
    "LONGBENCH_SUBSETS",
    "LongBenchWrite",
    "aggregate_longbench_write",
    "LB_COLUMNS",
    "length_score",
    "load_longbench_write",
    "official_longbench_messages",
    "parse_longbench_quality",
    "parse_longbench_quality_official",
    "produced_length",
]

#: What the table's LB column may show (``report_lb_column``): the scores' keys and their meaning.
LB_COLUMNS = {
    "S": ("score", "S = (S_l + S_q) / 2, the paper's LB"),
    "S_q": ("quality_score", "S_q, the judged quality alone"),
    "S_l": ("length_score", "S_l, the length score alone (no judge)"),
}
_FENCED_JSON = re.compile(r"```json\n(.*?)\n```", re.DOTALL)

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

# LongBench-Write's own count (THUDM/LongWriter evaluation/eval_length.py): CJK characters plus English words. Its
# CJK class is the unified block alone, narrower than reer_hf.core.text.CJK_CHARS on purpose: S_l is the benchmark's.
_LB_CJK = re.compile(r"[\u4e00-\u9fff]")
_LB_WORD = re.compile(r"\b[a-zA-Z]+\b")


def produced_length(text: str) -> int:
    """LongBench-Write's produced length: the number of CJK characters ``[\\u4e00-\\u9fff]`` plus the number of
    English words ``\\b[a-zA-Z]+\\b`` (so one count serves English and Chinese prompts)."""
    return len(_LB_CJK.findall(text)) + len(_LB_WORD.findall(text))


def length_score(required: int, produced: int) -> float:
    """LongBench-Write's length score of one item in [0, 100]: ``100 * max(0, 1 - (y/x - 1)/3)`` when the answer is
    longer than required (y > x), else ``100 * max(0, 1 - (x/y - 1)/2)``; an empty answer (y = 0) scores 0."""
    x, y = required, produced
    if x <= 0:
        raise ValueError(f"the required length must be positive, got {x}")
    if y <= 0:
        return 0.0
    if y > x:
        return 100.0 * max(0.0, 1.0 - (y / x - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (x / y - 1.0) / 2.0)


def load_longbench_write(root: str | os.PathLike | None = None, subset: str = "all") -> list[dict[str, Any]]:
    """LongBench-Write rows ``{prompt, type, length}``: ``all`` (120), ``en`` (60) or ``ruler`` (48)."""
    if subset not in LONGBENCH_SUBSETS:
        raise ValueError(f"subset must be one of {list(LONGBENCH_SUBSETS)}, got {subset!r}")
    return read_jsonl(benchmark_dir(root) / LONGBENCH_SUBSETS[subset])


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


def _rating(value: dict, dim: str) -> float:
    rating = value[dim]
    if isinstance(rating, bool):
        raise ValueError(f"{dim!r} must be a rating 1-5, got {rating!r}")
    rating = float(rating)  # as the official aggregation: "4" and 4 alike
    if not 1 <= rating <= 5:
        raise ValueError(f"{dim!r} must be a rating 1-5, got {rating!r}")
    return rating


def parse_longbench_quality_official(text: str) -> dict[str, float]:
    """The six ratings read as ``eval_quality.py`` reads them: the body of a ```` ```json ```` fence when the reply
    has one, every line break removed, ``json`` decoding, all six dimensions present, each cast with ``float``; the
    1-5 range is checked here too (the official script would average a 7)."""
    body = strip_thinking(text)  # what the official script sees: the message content, without a reasoning part
    if "```json" in body:
        match = _FENCED_JSON.search(body)
        if match is None:
            raise ValueError("a ```json fence without a body")
        body = match.group(1)
    value = json.loads(body.replace("\n", ""))
    if not isinstance(value, dict):
        raise ValueError(f"the reply is no JSON object: {text[:200]!r}")
    missing = [dim for dim in LONGBENCH_QUALITY_DIMENSIONS if dim not in value]
    if missing:
        raise ValueError(f"dimensions {missing} are missing from the reply")
    return {dim: _rating(value, dim) for dim in LONGBENCH_QUALITY_DIMENSIONS}


def official_longbench_messages(prompt: str, response: str) -> list[dict[str, str]]:
    """``judge.txt`` with ``$INST$`` then ``$RESPONSE$`` replaced, as one user turn (``eval_quality.py``)."""
    return user_turn(
        official.cached_text("longbench_write:judge").replace("$INST$", prompt).replace("$RESPONSE$", response)
    )


def aggregate_longbench_write(judgements: Iterable[Judgement], length_score: float | None = None) -> dict[str, Any]:
    """LongBench-Write quality S_q from one judgement per item (``value``: :func:`parse_longbench_quality`): each
    dimension's mean rating over the items judged successfully, mapped ``(mean - 1) * 25`` onto 0-100
    (``dimensions``), S_q their mean (``quality_score``); with the length score S_l, the overall
    ``score = (S_l + S_q) / 2``. Failed judgements are left out and counted."""
    judgements = list(judgements)
    ok = [j.value for j in judgements if j.ok]
    dims = {d: (mean([v[d] for v in ok]) - 1.0) * 25.0 for d in LONGBENCH_QUALITY_DIMENSIONS} if ok else {}
    quality = mean(list(dims.values()))
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


class LongBenchWrite(Benchmark):
    """The paper's ``LB`` column (S) and ``LB S_l`` (the length score alone, which needs no judge)."""

    name = "longbench_write"
    sampling = SamplingDefaults(temperature=0.5, top_p=1.0, top_k=None, max_new_tokens=32768)
    judge_sampling = JudgeSampling(temperature=0.5, top_p=1.0, max_tokens=1024)
    official_sources = ("longbench_write",)
    item_options = ("longbench_subset",)
    report_options = ("report_lb_column",)
    columns = ("LB", "LB S_l")
    judge_free_columns = ("LB S_l",)

    def load_items(
        self, root: str | os.PathLike | None, *, max_items: int | None = None, longbench_subset: str = "all"
    ) -> list[dict[str, Any]]:
        return [
            {
                "id": f"longbench_write/{longbench_subset}/{i:04d}",
                "task": longbench_subset,
                "prompt": row["prompt"],
                "lang": detect_language(row["prompt"]),
                "length": int(row["length"]),
                "type": row.get("type"),
            }
            for i, row in enumerate(head(load_longbench_write(root, longbench_subset), max_items))
        ]

    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        messages = user_turn(render(template, instruction=item["prompt"], response=answer))
        return [JudgeRequest(item["id"], messages, request_meta(item), parse=parse_longbench_quality)]

    def official_judge_requests(self, item: dict[str, Any], answer: str) -> list[JudgeRequest]:
        messages = official_longbench_messages(item["prompt"], answer)
        return [JudgeRequest(item["id"], messages, request_meta(item), parse=parse_longbench_quality_official)]

    def metrics(self, items: Sequence[dict[str, Any]], answers: Sequence[str]) -> dict[str, Any]:
        """S_l (``length_score``, the mean over items) and each item's required and produced length and score, by
        the ``longbench_write_length`` metric (:func:`length_score` and :func:`produced_length` behind it)."""
        if not items:
            return {}
        required = [it["length"] for it in items]
        scored = metrics.compute("longbench_write_length", predictions=list(answers), references=required)
        produced, scores = scored["produced_lengths"], scored["scores"]
        return {
            "length_score": scored["length_score"],
            "items": {
                it["id"]: {"required": it["length"], "produced": y, "length_score": s}
                for it, y, s in zip(items, produced, scores, strict=True)
            },
        }

    def aggregate(
        self,
        judgements: Sequence[Judgement],
        items: Sequence[dict[str, Any]],
        scores: dict[str, Any],
        root: str | os.PathLike | None,
    ) -> dict[str, Any]:
        return aggregate_longbench_write(judgements, scores.get("length_score"))

    def judge_failures(self, judged: dict[str, Any]) -> int:
        return judged.get("n_failed", 0)

    @staticmethod
    def _lb_column(scores: dict[str, Any]) -> str:
        return (scores.get("options") or {}).get("report_lb_column", "S")

    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        key = LB_COLUMNS[self._lb_column(scores)][0]
        shown = scores.get("length_score") if key == "length_score" else (scores.get("judged") or {}).get(key)
        return {"LB": shown, "LB S_l": scores.get("length_score")}

    def table_note(self, scores: dict[str, Any]) -> str | None:
        return f"LB = LongBench-Write {LB_COLUMNS[self._lb_column(scores)][1]}"

    def details(self, scores: dict[str, Any]) -> dict[str, Any]:
        judged = scores.get("judged") or {}
        return {
            "S_l": scores.get("length_score"),
            "S_q": judged.get("quality_score"),
            "S": judged.get("score"),
            "table_column": self._lb_column(scores),
            "quality_dimensions": judged.get("dimensions"),
        }

    def markdown(self, details: dict[str, Any]) -> list[str]:
        lines = [
            "",
            "## LongBench-Write",
            "",
            f"S_l {cell(details['S_l'])}, S_q {cell(details['S_q'])}, S {cell(details['S'])}; the table's LB "
            f"column shows {details.get('table_column', 'S')}.",
        ]
        if details["quality_dimensions"]:
            lines.append("; ".join(f"{d} {cell(v)}" for d, v in details["quality_dimensions"].items()))
        return lines
