"""The LLM judge behind any OpenAI-compatible chat endpoint (a local ``vllm serve``, a hosted API), and judging a set
of requests resumably against a log of earlier judgements.

The HTTP side is the endpoint generator of :mod:`reer_hf.generation` on the judge's
:class:`~reer_hf.core.endpoint.Endpoint` (bounded concurrency, retries with exponential backoff on network errors and
HTTP 408/429/502/503/504, other HTTP errors not retried). On top of it the judge retries a reply that does not parse,
up to ``judge_max_parse_retries`` more calls, and turns every failure into a :class:`Judgement` with ``ok=False``, the
error and its kind, read from the failed completion's ``error_kind``: a failed item is counted, never given a default
score. Only a reply the judge gave and the parser rejected is stored as a failure; a failure of the transport (no
reply, a refused request, bodies that are no reply) is left out of the log, so the next run asks again.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from reer_hf.evaluation.config import JudgeConfig
from reer_hf.evaluation.judgement import (
    DEFAULT_JUDGE_SAMPLING,
    PARSE_ERRORS,
    Judgement,
    JudgeRequest,
    extract_json,
)
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import FINISH_ERROR, EndpointGenerator, Request, Sampling

__all__ = ["Judge", "judge_all"]


class Judge:
    """Sends judge requests, at most ``judge_max_concurrency`` at once, and returns one :class:`Judgement` each, in
    request order. ``parse`` turns a reply's text into the judgement's value and raises (``ValueError``, ``KeyError``,
    ``TypeError``, ``IndexError``) for a reply it rejects; such a reply, or a body that is no reply at all (failure
    kind ``body``), is asked again, up to ``judge_max_parse_retries`` times. A request samples with its own
    ``sampling`` (else the ``judge_*`` options over :data:`DEFAULT_JUDGE_SAMPLING`). ``stats`` counts calls,
    judgements, failed (and per kind), transport_failed, parse_retries and network retries.
    """

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._generator = EndpointGenerator(config.endpoint(), prefill_mode="none")
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
            self.stats["retries"] = self._generator.client.retries
        return out

    def _count(self, **counts: int) -> None:
        with self._lock:
            self.stats.update(counts)

    def _judge_one(self, request: JudgeRequest, parse: Callable[[str], Any]) -> Judgement:
        cfg = self.config
        chosen = request.sampling or cfg.sampling(None, DEFAULT_JUDGE_SAMPLING)
        raw, error, replied = "", "", False
        tries = cfg.judge_max_parse_retries + 1
        for attempt in range(tries):
            if attempt:
                self._count(parse_retries=1)
            sampling = Sampling(
                n=1,
                temperature=chosen.temperature,
                top_p=chosen.top_p,
                max_new_tokens=chosen.max_tokens,
                seed=None if chosen.seed is None else chosen.seed + attempt,
            )
            # one request per call from this thread: the judge's pool bounds the calls in flight
            completion = self._generator.generate([Request(request.messages)], sampling)[0][0]
            self._count(calls=1)
            if completion.finish_reason == FINISH_ERROR:
                if completion.error_kind == "parse":  # a body that is no reply: asked again like an unparsable one
                    error = completion.error or "unusable reply"
                    continue
                kind = completion.error_kind if completion.error_kind in ("network", "context") else "http"
                return self._failed(request, kind, completion.error or "request failed", raw, attempt + 1)
            raw, replied = completion.text, True
            try:
                value = parse(raw)
            except PARSE_ERRORS as e:
                error = f"{type(e).__name__}: {e}"
                continue
            self._count(judgements=1)
            return Judgement(request.id, True, value, raw, attempts=attempt + 1, meta=dict(request.meta))
        kind = "parse" if replied else "body"  # no reply at all in any try: the transport failed, not the judge
        what = "unparsable" if replied else "no reply"
        return self._failed(request, kind, f"{what} after {tries} tries: {error}", raw, tries)

    def _failed(self, request: JudgeRequest, kind: str, error: str, raw: str, attempts: int) -> Judgement:
        judgement = Judgement(request.id, False, None, raw, error, kind, attempts, dict(request.meta))
        self._count(judgements=1, failed=1, transport_failed=int(judgement.transport_failed), **{f"failed_{kind}": 1})
        return judgement


def judge_all(
    requests: Sequence[JudgeRequest],
    judge: Judge | None,
    log: JsonlLog,
    *,
    retry_failed: bool = True,
    chunk_size: int = 64,
    progress: bool = True,
    desc: str = "judge",
) -> list[Judgement]:
    """One judgement per request, in request order, asking the judge only for requests ``log`` has no judgement of
    (a request's ``meta["answer_sha"]`` ties it to the answer it judges; failed ones are asked again when
    ``retry_failed``). A failure of the transport is returned (this run counts it) but never stored, so the next run
    asks again whatever ``retry_failed`` says. With ``judge`` None nothing is asked: requests without a stored
    judgement come back failed, of kind ``missing`` (a report rebuilt from an earlier run's judgements)."""
    stored: dict[tuple[str, str | None], Judgement] = {}
    for record in log.read():
        j = Judgement(**record)
        if j.transport_failed:  # written by an older run: a transport failure is redone, never a result
            continue
        if j.ok or not retry_failed:
            stored[(j.id, j.meta.get("answer_sha"))] = j

    def key(r: JudgeRequest) -> tuple[str, str | None]:
        return r.id, r.meta.get("answer_sha")

    pending = [r for r in requests if key(r) not in stored]
    if judge is None:
        missing = "not judged: run the judge stage"
        return [
            stored.get(key(r)) or Judgement(r.id, False, None, "", missing, "missing", 0, dict(r.meta))
            for r in requests
        ]
    bar = tqdm(total=len(requests), initial=len(requests) - len(pending), desc=desc, disable=not progress)
    for lo in range(0, len(pending), chunk_size):
        chunk = pending[lo : lo + chunk_size]
        judged = judge.judge(chunk)
        log.append([j.to_dict() for j in judged if not j.transport_failed])
        stored.update((key(r), j) for r, j in zip(chunk, judged, strict=True))
        bar.update(len(chunk))
    bar.close()
    return [stored[key(r)] for r in requests]
