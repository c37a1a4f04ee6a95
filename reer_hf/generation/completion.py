"""What every generator backend speaks: requests, sampling, completions, and how a completion ended.

A completion ended in one of three ways: a stop (end of sequence or a stop string), a cut (the token limit), or a
failure whose ``error_kind`` says why. Servers word the first two differently, and also end completions for reasons
of their own: vLLM and SGLang ``abort`` a request (a client gone, a server shutting down, a scheduler preempting it),
vLLM reports an ``error``, a hosted API filters content. Such a text is no answer of the model's, so only the
servers' words for a natural end count as a stop (:func:`finished`); any other reason fails the completion with kind
``aborted``, a transport kind: the synthesis run redoes its piece, as it does for a lost request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reer_hf.core import endpoint as endpoints

__all__ = [
    "ERROR_KINDS",
    "FINISH_ERROR",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "LENGTH_REASONS",
    "STOP_REASONS",
    "TRANSPORT_KINDS",
    "Completion",
    "ErrorKind",
    "GeneratorUnavailable",
    "Request",
    "Sampling",
    "cut_at_stop",
    "finished",
]

FINISH_STOP = "stop"  # end of sequence or a stop string
FINISH_LENGTH = "length"  # the new-token limit
FINISH_ERROR = "error"

#: How servers say a completion ended naturally: ``stop`` (OpenAI, vLLM, SGLang, llama.cpp), ``eos_token`` and
#: ``stop_sequence`` (text-generation-inference), ``eos``; None where a server sends no reason at all.
STOP_REASONS: frozenset[str | None] = frozenset({"stop", "eos", "eos_token", "stop_sequence", None})
#: How they say it was cut: ``length`` (the token limit or the model's context), and vLLM's ``repetition`` (a loop it
#: cut), which like a cut is the model's own doing and stays the row's.
LENGTH_REASONS: frozenset[str] = frozenset({"length", "repetition"})

#: Why a completion failed: the endpoint kinds (``network``: no answer after the retries; ``http``: a refused request;
#: ``parse``: an answer that is not a usable reply, :data:`reer_hf.core.endpoint.ERROR_KINDS`), ``context``: the
#: prompt leaves no room to generate in the model's context, and ``aborted``: the server ended the completion for a
#: reason that is neither a stop nor a cut (``abort``, ``error``, ``content_filter``, ...).
ErrorKind = Literal["network", "http", "parse", "context", "aborted"]
ERROR_KINDS: tuple[ErrorKind, ...] = (*endpoints.ERROR_KINDS, "context", "aborted")
#: The kinds that say nothing about the request's content: the server was unreachable, refused the call for a reason of
#: its own (a 5xx, a bad key, an unknown model), sent no usable reply or ended the completion itself. ``context`` is
#: the model's: the prompt is too long for it, which asking again cannot change.
TRANSPORT_KINDS: frozenset[str] = frozenset({*endpoints.ERROR_KINDS, "aborted"})


class GeneratorUnavailable(RuntimeError):
    """Requests that failed on the way to or from the generator (:data:`TRANSPORT_KINDS`) after their retries."""

    def __init__(self, where: str, failed: int, total: int, error: str):
        super().__init__(f"{failed} of {total} generator requests to {where} failed; the last error: {error}")
        self.where, self.failed, self.total, self.error = where, failed, total, error


@dataclass
class Request:
    """One chat prompt; ``prefill`` starts the assistant turn and the model continues it. ``seed``: the request's own
    seed (its samples are drawn from it whatever else is in the call); None: the sampling's seed plus the request's
    index in the call."""

    messages: list[dict[str, str]]
    prefill: str = ""
    seed: int | None = None


@dataclass
class Sampling:
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.85
    top_k: int | None = None  # None: off (the search's setting); WritingBench samples with top_k=20
    max_new_tokens: int = 8000
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    repetition_penalty: float = 1.0  # 1.0: off (the paper's setting); small models loop without it


@dataclass
class Completion:
    """The continuation of the pre-fill; ``text`` excludes the pre-fill and the stop string."""

    text: str
    n_tokens: int
    finish_reason: str
    error: str | None = None
    error_kind: ErrorKind | None = None  # one of ERROR_KINDS when finish_reason is "error", else None

    @classmethod
    def failed(cls, error: str, kind: ErrorKind) -> Completion:
        return cls(text="", n_tokens=0, finish_reason=FINISH_ERROR, error=error, error_kind=kind)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def finished(text: str, n_tokens: int, reason: Any) -> Completion:
    """The completion of a text that ended for ``reason``, as a server or vLLM words it: a stop
    (:data:`STOP_REASONS`), a cut (:data:`LENGTH_REASONS`), else a failure of kind ``aborted`` that keeps nothing of
    the text, which the server did not let the model finish. That includes ``tool_calls`` and ``content_filter``: a
    generator that answers a writing prompt that way is misconfigured, and the run stops on it (its pieces fail and
    the outage rule ends the run) rather than storing a text the model did not finish."""
    if reason is None or (isinstance(reason, str) and reason in STOP_REASONS):
        return Completion(text, n_tokens, FINISH_STOP)
    if isinstance(reason, str) and reason in LENGTH_REASONS:
        return Completion(text, n_tokens, FINISH_LENGTH)
    error = f"the generator ended the completion with finish_reason {reason!r} (neither a stop nor the token limit)"
    return Completion.failed(f"{error} after {n_tokens} tokens", "aborted")
