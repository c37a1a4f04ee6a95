"""The ``openai`` generator backend: any OpenAI-compatible server (``vllm serve``, SGLang, a hosted API); the
evaluation's judge calls its model through :class:`EndpointGenerator` too."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, get_args

from reer_hf.core.endpoint import Endpoint, EndpointClient, EndpointError
from reer_hf.core.models import load_tokenizer
from reer_hf.core.text import THINK_CLOSE, THINK_OPEN
from reer_hf.generation.base import Generator, render_prompt
from reer_hf.generation.completion import FINISH_STOP, Completion, Request, Sampling, cut_at_stop, finished
from reer_hf.generation.config import GeneratorConfig

#: How servers word a prompt too long for the model (vLLM, SGLang, OpenAI), in a 400/413/422 reply.
CONTEXT_REJECTION = re.compile(r"context (length|window|size)|too long|longer than|reduce the length", re.I)


def _split_tokens(total: int, texts: Sequence[str]) -> list[int]:
    """Share a call's ``usage.completion_tokens`` among its choices in proportion to their lengths in characters.

    OpenAI-compatible servers report usage per call, not per choice, so with ``n > 1`` the per-completion counts are
    an approximation (exact for ``n == 1``); they still sum to the server's total."""
    weights = [len(t) for t in texts]
    if not sum(weights):
        weights = [1] * len(texts)
    shares = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[: total - sum(counts)]:
        counts[i] += 1  # largest remainders first, so the sum is exact
    return counts


PrefillMode = Literal["continue", "completions", "none"]


class EndpointGenerator(Generator):
    """Any OpenAI-compatible endpoint (``vllm serve``, SGLang, hosted APIs), one HTTP call per request with ``n``
    choices and at most ``endpoint.max_concurrency`` calls in flight; the judge calls its model through this class.

    The pre-fill modes: ``continue`` sends the pre-fill as a final assistant message with ``continue_final_message``
    (a vLLM/SGLang extension of the chat API); ``completions`` renders the prompt with the served model's own chat
    template and sends it to ``/completions``; ``none`` (APIs without pre-fill) sends the plain chat and takes the
    reply as the continuation: ``Completion.text`` is still what follows the pre-fill, which the caller prepends,
    although the model never saw it.

    Retries and backoff are :class:`~reer_hf.core.endpoint.EndpointClient`'s (network errors only); a request that
    still fails becomes failed completions whose ``error_kind`` says why (``context``: the server rejects the prompt
    as too long for the model). ``stats["retries"]`` counts the retries.
    """

    def __init__(self, endpoint: Endpoint, prefill_mode: PrefillMode = "none"):
        super().__init__()
        if prefill_mode not in get_args(PrefillMode):
            raise ValueError(f"prefill_mode must be one of {get_args(PrefillMode)}, got {prefill_mode!r}")
        self.endpoint = endpoint
        self.prefill_mode = prefill_mode
        self.chat = prefill_mode != "completions"
        self.sees_prefill = prefill_mode != "none"
        self.route = "chat/completions" if self.chat else "completions"
        self.client = EndpointClient(endpoint)
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The served model's tokenizer, loaded on first use: only the ``completions`` mode renders prompts here."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.endpoint.model)
        return self._tokenizer

    @property
    def where(self) -> str:
        return f"{self.endpoint.base_url} (model {self.endpoint.model!r})"

    def close(self) -> None:
        self.client.close()

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        payloads = [self._payload(i, r, sampling) for i, r in enumerate(requests)]  # renders in this thread
        if len(payloads) == 1:  # one request (the judge's calls): no pool of its own
            out = [self._complete(payloads[0], sampling)]
        else:
            workers = min(self.endpoint.max_concurrency, len(payloads))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-generator") as pool:
                out = list(pool.map(lambda payload: self._complete(payload, sampling), payloads))
        with self._stats_lock:
            self.stats["retries"] = self.client.retries
        return out

    def _payload(self, index: int, request: Request, sampling: Sampling) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.endpoint.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "n": sampling.n,
        }
        if sampling.stop:
            payload["stop"] = list(sampling.stop)
        if sampling.repetition_penalty != 1.0:  # a vLLM / SGLang extension of the OpenAI API
            payload["repetition_penalty"] = sampling.repetition_penalty
        if sampling.top_k:  # idem; sent only when set, so plain OpenAI endpoints never see it
            payload["top_k"] = sampling.top_k
        if request.seed is not None:  # the request's own seed, else one per request of the call
            payload["seed"] = request.seed
        elif sampling.seed is not None:  # so replies do not depend on the order of the calls
            payload["seed"] = sampling.seed + index
        if self.prefill_mode == "completions":
            payload["prompt"] = render_prompt(self.tokenizer, request)
            payload["add_special_tokens"] = False  # the template has its own BOS; vLLM would add a second one
        elif self.prefill_mode == "continue" and request.prefill:
            payload["messages"] = [*request.messages, {"role": "assistant", "content": request.prefill}]
            payload.update(continue_final_message=True, add_generation_prompt=False)
        else:
            payload["messages"] = list(request.messages)
        return payload

    def _complete(self, payload: dict[str, Any], sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of one request; every failure becomes failed completions of its kind."""
        try:
            return self._parse(*self.client.post(self.route, payload, self.raise_on_transport), sampling)
        except EndpointError as e:
            too_long = e.status in (400, 413, 422) and CONTEXT_REJECTION.search(str(e))
            return [Completion.failed(str(e), "context" if too_long else e.kind) for _ in range(sampling.n)]

    def _parse(self, data: Any, body: str, sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of a reply; choices the server left out become failed completions."""
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            url = self.endpoint.url(self.route)
            raise EndpointError(f"malformed reply from {url} (no choices): {body[:300]!r}", "parse")
        by_index: dict[int, dict] = {}
        for position, choice in enumerate(choices):
            if isinstance(choice, dict):
                index = choice.get("index")
                by_index.setdefault(index if isinstance(index, int) else position, choice)
        texts: dict[int, str] = {}
        for i, choice in by_index.items():
            if self.chat:
                message = choice.get("message")
                text = (message.get("content") or "") if isinstance(message, dict) else None  # null: empty reply
                # a server run with a reasoning parser returns the thinking apart: put it back where the model wrote it
                reasoning = message.get("reasoning_content") or message.get("reasoning") if text is not None else None
                if isinstance(reasoning, str) and reasoning.strip():
                    text = f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{text}"
            else:
                text = choice.get("text")
            if 0 <= i < sampling.n and isinstance(text, str):
                texts[i] = text
        usage = data.get("usage")
        total = usage.get("completion_tokens") if isinstance(usage, dict) else None
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(prompt, int) and prompt >= 0:
            with self._stats_lock:  # as the server counts them: once per request, whatever n
                self.stats["prompt_tokens"] += prompt
                self.stats["prompt_tokens_requested"] += prompt * sampling.n
        if isinstance(total, int) and total >= 0 and texts:
            counts = dict(zip(texts, _split_tokens(total, list(texts.values())), strict=True))
        else:  # no usage: words are the best count at hand
            counts = {i: len(text.split()) for i, text in texts.items()}
        out = []
        for i in range(sampling.n):
            if i not in texts:
                error = f"the server returned {len(texts)} usable of {sampling.n} choices, none for choice {i}"
                out.append(Completion.failed(error, "parse"))
                continue
            text, stopped = cut_at_stop(texts[i], sampling.stop)  # for servers that ignore `stop`
            out.append(finished(text, counts[i], FINISH_STOP if stopped else by_index[i].get("finish_reason")))
        return out


def generator_endpoint(config: GeneratorConfig, backoff: float) -> Endpoint:
    """The endpoint the ``generator_*`` options name (the ``openai`` backend); ``backoff``: seconds before the first
    network retry."""
    return Endpoint.from_options(config, "generator", backoff=backoff)


class OpenAIGenerator(EndpointGenerator):
    """The ``openai`` backend: the endpoint and pre-fill mode of the ``generator_*`` options (``backoff``: seconds
    before the first network retry, doubling)."""

    def __init__(self, config: GeneratorConfig, backoff: float = 1.0):
        super().__init__(generator_endpoint(config, backoff), config.generator_prefill_mode)
        self.config = config
