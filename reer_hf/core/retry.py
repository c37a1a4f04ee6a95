"""The one retry policy of every HTTP call the project makes itself: the OpenAI-compatible endpoint of the generator
and the judge (:mod:`reer_hf.core.endpoint`) and the download of the pinned upstream files
(:mod:`reer_hf.core.official`). Hub transfers go through ``huggingface_hub``, which retries on its own.

What is retried: network errors (connection errors, timeouts, a body cut off) and the statuses that mean "not now"
(408 timeout, 429 rate limit, 502, 503 and 504 from a gateway); any other status is final, since repeating the call
cannot change it. How long: ``backoff * 2**(k - 1)`` seconds before retry ``k``, or what the server's ``Retry-After``
asks when that is longer (at most :data:`MAX_RETRY_AFTER`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import requests

__all__ = ["MAX_RETRY_AFTER", "NETWORK_ERRORS", "RETRY_STATUS", "RetriesExhausted", "RetryPolicy"]

RETRY_STATUS = frozenset({408, 429, 502, 503, 504})  # timeouts, rate limits, gateways
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
MAX_RETRY_AFTER = 60.0


class RetriesExhausted(Exception):
    """Every try of a call failed in a way worth retrying; ``error`` is the last failure, ``cause`` its short name
    (``ConnectionError``, ``HTTP 503``, ``unusable body``), ``kind`` its sort (``network``: no answer or a "not now"
    status; ``parse``: an answer whose body the caller could not use)."""

    def __init__(self, error: str, cause: str, kind: Literal["network", "parse"], retries: int):
        super().__init__(f"gave up after {retries} {'retry' if retries == 1 else 'retries'}: {error}")
        self.error, self.cause, self.kind, self.retries = error, cause, kind, retries


def retry_after(response: requests.Response) -> float:
    """The seconds a ``Retry-After`` header asks for (0 without one, or in its HTTP-date form), capped."""
    try:
        return min(float(response.headers.get("Retry-After", 0)), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a call is retried and the first wait (see the module docstring for what and how long)."""

    max_retries: int
    backoff: float  # seconds before the first retry; doubles with each retry

    def __post_init__(self):
        if self.max_retries < 0 or self.backoff < 0:
            raise ValueError(f"max_retries and backoff must be >= 0, got {self}")

    def delay(self, retry: int, asked: float = 0.0) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), at least the ``asked`` ``Retry-After``."""
        return max(self.backoff * 2 ** (retry - 1), asked)

    def send(
        self,
        call: Callable[[], requests.Response],
        *,
        unusable: Callable[[requests.Response], str | None] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> requests.Response:
        """``call()`` until its response is final: any status but :data:`RETRY_STATUS`, unless ``unusable`` names a
        reason to retry it anyway (a 2xx body that is no reply). ``on_retry`` hears each retry's cause before its
        wait. Raises :class:`RetriesExhausted` after ``max_retries`` retries; other ``requests`` errors (an invalid
        URL, too many redirects) propagate at once, since repeating cannot help."""
        error, cause, kind, asked = "", "", "network", 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                if on_retry is not None:
                    on_retry(error)
                time.sleep(self.delay(attempt, asked))
            asked = 0.0
            try:
                response = call()
            except NETWORK_ERRORS as e:
                error, cause, kind = f"{type(e).__name__}: {e}", type(e).__name__, "network"
                continue
            if response.status_code in RETRY_STATUS:
                cause, kind = f"HTTP {response.status_code}", "network"
                error = f"{cause} from {response.url}: {response.text[:500]}"
                asked = retry_after(response)
                continue
            reason = unusable(response) if unusable is not None else None
            if reason is None:
                return response
            error, cause, kind = reason, "unusable body", "parse"
        raise RetriesExhausted(error, cause, kind, self.max_retries)
