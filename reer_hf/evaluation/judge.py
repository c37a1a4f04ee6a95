"""An LLM judge behind any OpenAI-compatible chat endpoint (a local ``vllm serve``, a hosted API).

The HTTP side is :class:`reer_hf.generation.OpenAIGenerator` (bounded concurrency, retries with exponential backoff on
network errors and HTTP 408/429/502/503/504, other HTTP errors not retried). On top of it the judge retries a reply
that does not parse, up to ``judge_max_parse_retries`` more calls, and turns every failure into a :class:`Judgement`
with ``ok=False``, the error and its kind: a failed item is recorded and counted, never given a default score.

Judge replies are read as data only: :func:`extract_json` runs ``json`` decoding on a fenced code block or the first
JSON object/array in the text; nothing the model writes is ever executed.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from reer_hf.core.text import strip_thinking

__all__ = [
    "FAILURE_KINDS",
    "Judge",
    "JudgeConfig",
    "JudgeRequest",
    "Judgement",
    "extract_json",
    "summarize",
]

#: ``network``: no reply after the retries; ``http``: a refused request (HTTP 4xx, 500), not retried;
#: ``parse``: replies came back but none parsed within the tries; ``missing``: never asked (a report made without the
#: judge stage found no stored judgement for it).
FAILURE_KINDS = ("network", "http", "parse", "missing")


@dataclass
class JudgeConfig:
    """The judge model and how it is called (BENCHMARKS.md, "Judges in this project")."""

    judge_model: str = field(
        default="gpt-4o-2024-05-13",
        metadata={"help": "Model name the endpoint knows (the original LongBench-Write judge: gpt-4o-2024-05-13)."},
    )
    judge_base_url: str = field(
        default="http://localhost:8000/v1", metadata={"help": "OpenAI-compatible endpoint (e.g. vllm serve)."}
    )
    judge_api_key_env: str | None = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key; None: no key."}
    )
    judge_temperature: float = field(default=0.5, metadata={"help": "Sampling temperature of the judge."})
    judge_top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of the judge."})
    judge_max_tokens: int = field(default=4096, metadata={"help": "Maximum new tokens of a judge reply."})
    judge_seed: int | None = field(
        default=None, metadata={"help": "Seed of the first try (each further try adds 1); None: no seed."}
    )
    judge_max_concurrency: int = field(default=16, metadata={"help": "Judge calls in flight at once."})
    judge_max_retries: int = field(
        default=5, metadata={"help": "Retries of a call on network errors (exponential backoff)."}
    )
    judge_max_parse_retries: int = field(
        default=4, metadata={"help": "Further calls when a reply does not parse (4: five tries, as LongBench-Write)."}
    )
    judge_backoff: float = field(default=1.0, metadata={"help": "Seconds before the first network retry (doubles)."})
    judge_timeout: float = field(default=600.0, metadata={"help": "Seconds per call."})

    def __post_init__(self):
        if self.judge_max_concurrency < 1:
            raise ValueError(f"judge_max_concurrency must be >= 1, got {self.judge_max_concurrency}")
        if min(self.judge_max_retries, self.judge_max_parse_retries) < 0:
            raise ValueError("judge_max_retries and judge_max_parse_retries must be >= 0")
        if self.judge_backoff < 0 or self.judge_timeout <= 0:
            raise ValueError("judge_backoff must be >= 0 and judge_timeout > 0")


@dataclass
class JudgeRequest:
    """One judge call: ``id`` keys the item (and criterion) it judges; ``meta`` travels to the judgement; ``parse``,
    when set, reads this request's reply instead of the one given to :meth:`Judge.judge` (a HelloBench reply is read
    against its own checklist length)."""

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


#: What a parse function may raise for a reply it rejects (missing keys, wrong types, out-of-range scores).
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


class Judge:
    """Sends judge requests, at most ``judge_max_concurrency`` at once, and returns one :class:`Judgement` each, in
    request order. ``parse`` turns a reply's text into the judgement's value and raises (``ValueError``, ``KeyError``,
    ``TypeError``, ``IndexError``) for a reply it rejects; such a reply is asked again, up to
    ``judge_max_parse_retries`` times. ``stats`` counts calls, judgements, failed (and per kind), parse_retries and
    network retries.
    """

    def __init__(self, config: JudgeConfig):
        from reer_hf.synthesis.config import GeneratorConfig
        from reer_hf.synthesis.generation import OpenAIGenerator

        self.config = config
        self._generator = OpenAIGenerator(
            GeneratorConfig(
                generator_model=config.judge_model,
                generator_backend="openai",
                generator_base_url=config.judge_base_url,
                generator_api_key_env=config.judge_api_key_env,
                generator_prefill_mode="none",
                generator_max_concurrency=config.judge_max_concurrency,
                generator_max_retries=config.judge_max_retries,
                generator_timeout=config.judge_timeout,
            ),
            backoff=config.judge_backoff,
        )
        self.stats: Counter = Counter()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._generator.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def judge(self, requests: Sequence[JudgeRequest], parse: Callable[[str], Any] = extract_json) -> list[Judgement]:
        if not requests:
            return []
        workers = min(self.config.judge_max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            out = list(pool.map(lambda r: self._judge_one(r, r.parse or parse), requests))
        with self._lock:
            self.stats["retries"] = self._generator.stats["retries"]
        return out

    def _count(self, **counts: int) -> None:
        with self._lock:
            self.stats.update(counts)

    def _judge_one(self, request: JudgeRequest, parse: Callable[[str], Any]) -> Judgement:
        from reer_hf.synthesis.generation import FINISH_ERROR, Request, Sampling

        cfg = self.config
        raw, error = "", ""
        tries = cfg.judge_max_parse_retries + 1
        for attempt in range(tries):
            if attempt:
                self._count(parse_retries=1)
            sampling = Sampling(
                n=1,
                temperature=cfg.judge_temperature,
                top_p=cfg.judge_top_p,
                max_new_tokens=cfg.judge_max_tokens,
                seed=None if cfg.judge_seed is None else cfg.judge_seed + attempt,
            )
            # one request per call from this thread: the judge's pool bounds the calls in flight
            completion = self._generator.generate([Request(request.messages)], sampling)[0][0]
            self._count(calls=1)
            if completion.finish_reason == FINISH_ERROR:
                kind = "network" if (completion.error or "").startswith("gave up after") else "http"
                return self._failed(request, kind, completion.error or "request failed", raw, attempt + 1)
            raw = completion.text
            try:
                value = parse(raw)
            except PARSE_ERRORS as e:
                error = f"{type(e).__name__}: {e}"
                continue
            self._count(judgements=1)
            return Judgement(request.id, True, value, raw, attempts=attempt + 1, meta=dict(request.meta))
        return self._failed(request, "parse", f"unparsable after {tries} tries: {error}", raw, tries)

    def _failed(self, request: JudgeRequest, kind: str, error: str, raw: str, attempts: int) -> Judgement:
        self._count(judgements=1, failed=1, **{f"failed_{kind}": 1})
        return Judgement(request.id, False, None, raw, error, kind, attempts, dict(request.meta))


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
