"""The generator interface every backend implements, and the prompt text a local backend renders.

Every backend takes chat requests whose assistant turn may be pre-filled (``"<think>\\n" + opener``,
``"<analyze>\\n"``) and returns, per request, ``n`` completions: the text after the pre-fill (without the stop string),
its token count and why it ended (:mod:`~reer_hf.generation.completion`). A failure of one request (a network error
after the retries, a refused request, an unusable reply, a completion the server ended itself, such as vLLM's
``abort``) becomes a completion with ``finish_reason="error"``, the message and its ``error_kind``, so one bad row
never stops a batch and callers branch on the kind; a backend that cannot work at all (missing model, missing package)
raises. A caller for whom a failure on the way to the server is no fact about the row (the synthesis run, whose data
must not depend on the server's health) sets ``raise_on_transport``: such failures then raise
:class:`~reer_hf.generation.completion.GeneratorUnavailable` instead.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

from reer_hf.generation.completion import (
    FINISH_ERROR,
    TRANSPORT_KINDS,
    Completion,
    GeneratorUnavailable,
    Request,
    Sampling,
)


class Generator(ABC):
    """``generate(requests, sampling)`` returns ``sampling.n`` completions per request, in request order."""

    #: whether the model continues the pre-fill (False for servers without pre-fill: the reply starts afresh)
    sees_prefill: bool = True
    #: raise GeneratorUnavailable when a request fails in transport, instead of returning its failed completions
    #: (the openai backend then also retries a body that is not JSON, as it retries network errors)
    raise_on_transport: bool = False

    @property
    def where(self) -> str:
        """The generator, as error messages name it."""
        return type(self).__name__

    def __init__(self):
        self.stats: Counter = Counter()  # calls, requests, completions, tokens, errors, seconds
        self._stats_lock = threading.Lock()  # the judge calls one generator from many threads

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        start = time.perf_counter()
        out = self._generate(list(requests), sampling) if requests else []
        with self._stats_lock:
            self.stats["calls"] += 1
            self.stats["requests"] += len(requests)
            for completions in out:
                self.stats["completions"] += len(completions)
                self.stats["tokens"] += sum(c.n_tokens for c in completions)
                self.stats["errors"] += sum(c.finish_reason == FINISH_ERROR for c in completions)
            self.stats["seconds"] += time.perf_counter() - start
        lost = [e for cs in out if (e := next((c.error for c in cs if c.error_kind in TRANSPORT_KINDS), None))]
        if lost and self.raise_on_transport:
            raise GeneratorUnavailable(self.where, len(lost), len(out), lost[-1])
        return out

    @abstractmethod
    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]: ...


def render_prompt(tokenizer, request: Request) -> str:
    """The prompt text of a request: the chat template with the generation prompt, then the pre-fill."""
    text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
    return text + request.prefill
