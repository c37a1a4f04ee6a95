"""One OpenAI-compatible endpoint type (a ``vllm serve``, SGLang, a hosted API) and the HTTP client behind it.

The generator's ``openai`` backend, the evaluation judge and the scorer's ``openai`` backend call a model this way;
each builds an :class:`Endpoint` from its own options (``generator_*``, ``judge_*``, ``scorer_*``), so retries,
backoff, concurrency and the API key behave the same for all; the retries follow the project's one policy
(:mod:`reer_hf.core.retry`). A call that fails raises :class:`EndpointError` whose ``kind`` says why, so callers branch
on data, never on the wording of a message.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields
from typing import Any, Literal

import requests as http
from requests.adapters import HTTPAdapter

from reer_hf.core.retry import RetriesExhausted, RetryPolicy

__all__ = ["ERROR_KINDS", "Endpoint", "EndpointClient", "EndpointError", "ErrorKind", "served_models"]

#: ``network``: no answer after the retries (connection errors, timeouts, HTTP 408/429/502/503/504);
#: ``http``: a request the server refused (another HTTP error status, an invalid URL), which repeating cannot help;
#: ``parse``: an answer came back but its body is not the reply the caller expects.
ErrorKind = Literal["network", "http", "parse"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("network", "http", "parse")


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served and how it is called. Every field comes from its caller's options (no defaults here,
    so no second default competes with the option's)."""

    base_url: str  # e.g. http://localhost:8000/v1
    model: str  # the model name the server knows
    api_key_env: str | None  # environment variable holding the API key; None: send no key
    timeout: float  # seconds per HTTP call
    max_retries: int  # retries of a call on network errors
    max_concurrency: int  # calls in flight at once
    backoff: float  # seconds before the first retry (doubles each time)

    def __post_init__(self):
        if self.max_concurrency < 1 or self.max_retries < 0:
            raise ValueError(f"max_concurrency must be >= 1 and max_retries >= 0, got {self}")
        if self.timeout <= 0 or self.backoff < 0:
            raise ValueError(f"timeout must be > 0 and backoff >= 0, got {self}")

    @classmethod
    def from_options(cls, options: Any, prefix: str, **given: Any) -> Endpoint:
        """The endpoint a stage's ``{prefix}_*`` options name (``generator_base_url``, ``judge_timeout``, ...), so the
        generator and the judge map their options the same way; ``given`` fills what the options lack."""
        values = {f.name: getattr(options, f"{prefix}_{f.name}") for f in fields(cls) if f.name not in given}
        return cls(**values, **given)

    def url(self, route: str) -> str:
        """The URL of ``route`` (``chat/completions``, ``completions``) under the base URL."""
        return f"{self.base_url.rstrip('/')}/{route}"

    def headers(self) -> dict[str, str]:
        """JSON headers, with ``Authorization: Bearer`` when the key variable is set and non-empty."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


class EndpointError(Exception):
    """A call that ended without a usable reply; ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(self, message: str, kind: ErrorKind, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status  # the HTTP status of a refused request, so callers can tell rejections apart


class EndpointClient:
    """POSTs JSON to an :class:`Endpoint` over one pooled session, safe to call from ``max_concurrency`` threads.

    Network errors and HTTP 408/429/502/503/504 are retried by :class:`~reer_hf.core.retry.RetryPolicy` (the
    endpoint's ``max_retries`` and ``backoff``); other HTTP errors are not, since repeating them cannot help.
    ``retries`` counts the retries made so far.
    """

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.policy = RetryPolicy(endpoint.max_retries, endpoint.backoff)
        self.headers = endpoint.headers()
        self.session = http.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=endpoint.max_concurrency)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._retries = 0
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        with self._lock:
            return self._retries

    def close(self) -> None:
        self.session.close()

    def post(self, route: str, payload: dict[str, Any], retry_unparsable: bool = False) -> tuple[Any, str]:
        """The decoded JSON body of a 2xx reply to ``payload`` at ``route``, with the body's text (for messages that
        quote it); :class:`EndpointError` otherwise. ``retry_unparsable``: a 2xx body that is not JSON (a proxy's error
        page, a reply cut short) is retried like a network error, for callers that would otherwise redo more work."""
        url = self.endpoint.url(route)

        def malformed(response: http.Response) -> str | None:  # a retry_unparsable caller's reason to ask again
            if response.ok:
                try:
                    response.json()
                except ValueError:
                    return f"malformed reply from {url} (not JSON): {response.text[:300]!r}"
            return None

        try:
            response = self.policy.send(
                lambda: self.session.post(url, json=payload, headers=self.headers, timeout=self.endpoint.timeout),
                unusable=malformed if retry_unparsable else None,
                on_retry=self._count_retry,
            )
        except RetriesExhausted as e:
            raise EndpointError(str(e), e.kind) from None
        except http.RequestException as e:  # an invalid URL, too many redirects: repeating cannot help
            raise EndpointError(f"{type(e).__name__} from {url}: {e}", "http") from e
        if not response.ok:
            status = response.status_code
            raise EndpointError(f"HTTP {status} from {url}: {response.text[:500]}", "http", status)
        try:
            return response.json(), response.text
        except ValueError:
            raise EndpointError(f"malformed reply from {url} (not JSON): {response.text[:300]!r}", "parse") from None

    def _count_retry(self, _: str) -> None:
        with self._lock:
            self._retries += 1


def served_models(endpoint: Endpoint, timeout: float = 30.0) -> list[str]:
    """The model names ``GET {base_url}/models`` lists, asked once (the policy with no retry: a health check fails
    fast rather than wait out the retries); :class:`EndpointError` when the server cannot be reached or gives no model
    list."""
    url = endpoint.url("models")
    try:
        response = RetryPolicy(0, 0.0).send(
            lambda: http.get(url, headers=endpoint.headers(), timeout=min(timeout, endpoint.timeout))
        )
    except RetriesExhausted as e:
        raise EndpointError(e.error, "network") from None
    except http.RequestException as e:
        raise EndpointError(f"{type(e).__name__}: {e}", "network") from e
    if not response.ok:
        status = response.status_code
        raise EndpointError(f"HTTP {status} from {url}: {response.text[:300]}", "http", status)
    try:
        data = response.json()["data"]
        return [str(m["id"]) for m in data]
    except (ValueError, KeyError, TypeError):
        raise EndpointError(f"no model list from {url}: {response.text[:300]!r}", "parse") from None
