"""What a judge is asked and what it answered: requests, judgement records, JSON extraction from replies, and the
mean-with-failures summary. Benchmarks build requests and read judgements through this module alone, so they never
depend on the HTTP client (:mod:`reer_hf.evaluation.judge`).

Judge replies are read as data only: :func:`extract_json` runs ``json`` decoding on a fenced code block or the first
JSON object/array in the text; nothing the model writes is ever executed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from reer_hf.core.text import strip_thinking

__all__ = [
    "FAILURE_KINDS",
    "PARSE_ERRORS",
    "JudgeRequest",
    "Judgement",
    "extract_json",
    "summarize",
]

#: ``network``: no reply after the retries; ``http``: a refused request (HTTP 4xx, 500), not retried;
#: ``parse``: replies (or bodies that are no reply) came back but none parsed within the tries; ``missing``: never
#: asked (a report made without the judge stage found no stored judgement for it).
FAILURE_KINDS = ("network", "http", "parse", "missing")

#: What a parse function may raise for a reply it rejects (missing keys, wrong types, out-of-range scores).
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


@dataclass
class JudgeRequest:
    """One judge call: ``id`` keys the item (and criterion) it judges; ``meta`` travels to the judgement; ``parse``,
    when set, reads this request's reply instead of the one given to the judge (a HelloBench reply is read against
    its own checklist length)."""

    id: str
    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[str], Any] | None = field(default=None, repr=False, compare=False)


@dataclass
class Judgement:
    """The outcome of one request: ``value`` is the parsed reply when ``ok``; otherwise ``error`` and ``error_kind``
    (one of :data:`FAILURE_KINDS`) say why, and ``raw`` holds the last reply, if any."""

    id: str
    ok: bool
    value: Any = None
    raw: str = ""
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str, expect: type | tuple[type, ...] = (dict, list)) -> Any:
    """The JSON value in a judge reply, decoded with ``json`` only (never evaluated): after dropping a leading
    thinking (:func:`strip_thinking`), the first fenced code block that decodes, else the whole text, else the first
    ``{...}`` or ``[...]`` that decodes, keeping only values of type ``expect``. ``ValueError`` when there is none."""
    body = strip_thinking(text)
    candidates = [m.group(1).strip() for m in _FENCE.finditer(body)] + [body.strip()]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, expect):
            return value
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[{\[]", body):
        try:
            value, _ = decoder.raw_decode(body, m.start())
        except ValueError:
            continue
        if isinstance(value, expect):
            return value
    raise ValueError(f"no JSON {_type_names(expect)} in the reply: {text[:200]!r}")


def _type_names(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(t.__name__ for t in types)


def summarize(judgements: Iterable[Judgement], score: Callable[[Any], float] | None = None) -> dict[str, Any]:
    """Mean score over the successful judgements; failures are left out of the mean but counted (``n_failed``, and
    per kind in ``failures``). ``score`` maps a judgement's value to a number (default: the value itself);
    ``mean`` is None when no judgement succeeded."""
    judgements = list(judgements)
    scores = [(score or float)(j.value) for j in judgements if j.ok]
    failures = Counter(j.error_kind for j in judgements if not j.ok)
    return {
        "mean": sum(scores) / len(scores) if scores else None,
        "n": len(judgements),
        "n_ok": len(scores),
        "n_failed": len(judgements) - len(scores),
        "failures": {kind: failures[kind] for kind in FAILURE_KINDS if failures[kind]},
        "failed_ids": [j.id for j in judgements if not j.ok],
    }
