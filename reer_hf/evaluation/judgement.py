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
    "DEFAULT_JUDGE_SAMPLING",
    "FAILURE_KINDS",
    "PARSE_ERRORS",
    "TRANSPORT_KINDS",
    "JudgeRequest",
    "JudgeSampling",
    "Judgement",
    "extract_json",
    "summarize",
]

#: ``network``: no reply after the retries; ``http``: a refused request (an HTTP error status), not retried;
#: ``body``: every try came back with a body that is no reply; ``parse``: replies came back but none parsed within
#: the tries; ``context``: the request is too long for the judge's context (asking again cannot change that);
#: ``missing``: never asked (a report made without the judge stage found no stored judgement for it).
FAILURE_KINDS = ("network", "http", "body", "parse", "context", "missing")
#: The failures of the transport, not of the judge: never stored, so the next run asks again. ``parse`` (the judge
#: answered, unusably) and ``context`` (the request cannot fit) are recorded outcomes.
TRANSPORT_KINDS = ("network", "http", "body")

#: What a parse function may raise for a reply it rejects (missing keys, wrong types, out-of-range scores).
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True)
class JudgeSampling:
    """How the judge samples one benchmark's replies; each benchmark's default is its official script's. ``seed`` is
    the first try's (each further try adds 1, so a deterministic server does not repeat an unusable reply)."""

    temperature: float
    top_p: float = 1.0
    max_tokens: int = 4096
    seed: int | None = None


#: The sampling of a request that names none (the reasoning profile; LongBench-Write's judge temperature).
DEFAULT_JUDGE_SAMPLING = JudgeSampling(temperature=0.5, top_p=1.0, max_tokens=4096)


@dataclass
class JudgeRequest:
    """One judge call: ``id`` keys the item (and criterion) it judges; ``meta`` travels to the judgement; ``parse``,
    when set, reads this request's reply instead of the one given to the judge (a HelloBench reply is read against
    its own checklist length); ``sampling``, when set, replaces the judge's own."""

    id: str
    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[str], Any] | None = field(default=None, repr=False, compare=False)
    sampling: JudgeSampling | None = field(default=None, compare=False)


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

    @property
    def transport_failed(self) -> bool:
        """A failure of the transport (:data:`TRANSPORT_KINDS`): no stored result, asked again by the next run."""
        return not self.ok and self.error_kind in TRANSPORT_KINDS

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
