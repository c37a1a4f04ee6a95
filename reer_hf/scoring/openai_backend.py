"""The served backend of the scorer (``scorer_backend="openai"``): prompt log-probs from a vLLM server's
``/v1/completions`` with ``prompt_logprobs`` (vLLM's extension of the OpenAI API), the way the official REER code
scores.

The scored span is cut locally, exactly as in-process, and the server gets token ids, never text, so it cannot
tokenize differently. Ids only mean the same on both sides when the server's tokenizer is the local one: before the
first scoring the server tokenizes a probe (vLLM's ``/tokenize``, ``/detokenize``), and the ``decoded_token`` of every
reply is compared with the local tokenizer's. Two kinds of failure stay apart:

- :class:`ScorerUnavailable`: a request got no usable reply after its retries (network, a refused request, a body
  that is not JSON). That says nothing about the row, so it never becomes a score: the caller redoes the work later.
- :class:`ScorerServerError`: the server answers, but not what the score needs (no prompt log-probs, another
  tokenizer, a context shorter than ``scorer_max_length``). Asking again cannot help; the server must be fixed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import torch

from reer_hf.core.endpoint import Endpoint, EndpointClient, EndpointError
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.engine import ScoredRow

__all__ = ["OpenAILogprobs", "ScorerServerError", "ScorerUnavailable", "scorer_endpoint"]

logger = logging.getLogger(__name__)

#: How servers word a prompt too long for the model, in a 400/413/422 reply: the generator backend's words, and vLLM's
#: for a prompt that fills the context exactly (no room left for the one token it generates).
CONTEXT_REJECTION = re.compile(
    r"context (length|window|size)|too long|longer than|reduce the length|max_tokens must be at least 1", re.I
)
#: English and CJK text of the probe the server tokenizes; the scorer's own chat rendering is appended to it.
PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog; naïve café, 3.14 and 1,000 words.\n"
    "秋天的风吹过田野，树叶一片片落下。我想写一首关于秋天的诗。🍂\n"
)
#: ``decoded_token`` fields compared per reply (spread over the scored positions): a few catch another vocabulary.
DECODED_CHECKS = 4
QUOTE = 300  # characters of a reply quoted in an error


class ScorerUnavailable(RuntimeError):
    """Scoring requests that got no usable reply after their retries (:class:`~reer_hf.core.endpoint.EndpointError`
    of any kind): a fact about the server, not the rows, so no score is made of it."""

    def __init__(self, where: str, failed: int, total: int, error: str):
        super().__init__(f"{failed} of {total} scorer requests to {where} failed; the last error: {error}")
        self.where, self.failed, self.total, self.error = where, failed, total, error


class ScorerServerError(ValueError):
    """The server answers, but not what the score needs: a misconfigured server, which retrying cannot fix."""


def scorer_endpoint(config: ScorerConfig, backoff: float = 1.0) -> Endpoint:
    """The endpoint the ``scorer_*`` options name; ``backoff``: seconds before the first retry."""
    return Endpoint.from_options(config, "scorer", backoff=backoff)


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text[:QUOTE] + ("..." if len(text) > QUOTE else ""))


def _first_difference(a: Sequence, b: Sequence) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


class OpenAILogprobs:
    """Log-probs of the scored tokens from a served model: one ``/completions`` request per row (``max_tokens=1``,
    ``prompt_logprobs=0``), at most ``scorer_max_concurrency`` in flight, results in input order.

    ``stats`` counts calls, requests, prompt tokens, retries and the ``decoded_token`` fields checked."""

    def __init__(self, config: ScorerConfig, tokenizer, backoff: float = 1.0):
        self.config = config
        self.tokenizer = tokenizer
        self.endpoint = scorer_endpoint(config, backoff)
        self.client = EndpointClient(self.endpoint)
        # vLLM serves /tokenize and /detokenize at the server's root, not under /v1
        root = self.endpoint.base_url.rstrip("/").removesuffix("/v1")
        self.root_client = EndpointClient(replace(self.endpoint, base_url=root))
        self.max_positions = config.scorer_max_length
        self.stats: Counter = Counter()
        # check_server ran (the server's tokenizer and context compared with the local ones), and did so through
        # /tokenize (else only the replies' decoded_token fields vouch for the server's tokenizer)
        self.checked = self.tokenize_checked = False
        self._lock = threading.Lock()  # stats, and the local tokenizer, from the request threads

    @property
    def where(self) -> str:
        """The server, as error messages name it."""
        return f"{self.endpoint.base_url} (model {self.endpoint.model!r})"

    def close(self) -> None:
        self.client.close()
        self.root_client.close()

    def __call__(self, rows: Sequence[ScoredRow]) -> list[torch.Tensor]:
        if not rows:
            return []
        if not self.checked:
            self.check_server()
        workers = min(self.endpoint.max_concurrency, len(rows))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-scorer") as pool:
            outcomes = list(pool.map(self._score_row, rows))
        with self._lock:
            self.stats["calls"] += 1
            self.stats["requests"] += len(rows)
            self.stats["prompt_tokens"] += sum(len(r.input_ids) for r in rows)
            self.stats["retries"] = self.client.retries + self.root_client.retries
        refused = next((o for o in outcomes if isinstance(o, ScorerServerError)), None)
        if refused is not None:
            raise refused
        lost = [o for o in outcomes if isinstance(o, EndpointError)]
        if lost:
            raise ScorerUnavailable(self.where, len(lost), len(rows), str(lost[-1]))
        if not self.tokenize_checked and not self.stats["decoded_checked"]:
            logger.warning(
                "Nothing checked the tokenizer of the scorer server at %s (no /tokenize, no decoded_token "
                "fields): its scores are right only if it runs scorer_model's tokenizer",
                self.where,
            )
        return outcomes  # type: ignore[return-value]

    # ---- one row --------------------------------------------------------------------------------------------------
    def _score_row(self, row: ScoredRow) -> torch.Tensor | EndpointError | ScorerServerError:
        """The row's log-probs, or the failure it ended in (raised by the caller once every row is done)."""
        payload = {
            "model": self.endpoint.model,
            "prompt": list(row.input_ids),
            "max_tokens": 1,  # vLLM generates at least one token; its log-prob is not asked for
            "temperature": 0,
            "prompt_logprobs": 0,  # the log-prob of each prompt token itself (vLLM may add the top-1)
            "add_special_tokens": False,
        }
        try:
            data, body = self.client.post("completions", payload, retry_unparsable=True)
            return self._parse(row, data, body)
        except EndpointError as e:
            if e.status in (400, 413, 422) and CONTEXT_REJECTION.search(str(e)):
                return ScorerServerError(
                    f"The scorer server at {self.where} refuses a prompt of {len(row.input_ids)} tokens as too long "
                    f"({e}); set scorer_max_length below the server's max_model_len"
                )
            return e
        except ScorerServerError as e:
            return e

    def _parse(self, row: ScoredRow, data: Any, body: str) -> torch.Tensor:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            url = self.endpoint.url("completions")
            raise EndpointError(f"malformed reply from {url} (no choices): {body[:QUOTE]!r}", "parse")
        entries = choices[0].get("prompt_logprobs")
        ids = row.input_ids
        if not isinstance(entries, list) or len(entries) != len(ids):
            what = (
                f"{len(entries)} prompt_logprobs entries for a prompt of {len(ids)} tokens"
                if isinstance(entries, list)
                else "no prompt_logprobs"
            )
            raise ScorerServerError(
                f"The scorer server at {self.where} returned {what}; the openai scorer needs a server that answers "
                f"prompt_logprobs with one entry per prompt token (vllm serve). It returned: {_quote(body)}"
            )
        logprobs = []
        for t in row.scored:
            entry = entries[t]
            item = entry.get(str(ids[t])) if isinstance(entry, dict) else None
            value = item.get("logprob") if isinstance(item, dict) else None
            if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
                raise ScorerServerError(
                    f"The scorer server at {self.where} gave no log-prob of the sent token {ids[t]} at prompt "
                    f"position {t}; it returned {_quote(entry)} there"
                )
            logprobs.append(float(value))
        self._check_decoded(row, entries)
        return torch.tensor(logprobs, dtype=torch.float64)

    def _check_decoded(self, row: ScoredRow, entries: list) -> None:
        """Compare a few ``decoded_token`` fields of the reply with the local tokenizer's reading of the sent ids."""
        last = len(row.scored) - 1
        picks = sorted({row.scored[round(k * last / (DECODED_CHECKS - 1))] for k in range(DECODED_CHECKS)})
        checked = 0
        with self._lock:  # the local tokenizer is not shared across threads
            for t in picks:
                token = row.input_ids[t]
                decoded = entries[t][str(token)].get("decoded_token")
                local = self.tokenizer.decode([token])
                if not isinstance(decoded, str) or not decoded or "\ufffd" in decoded + local:
                    continue  # not sent, or a piece of a character that neither side can show alone
                checked += 1
                raw = self.tokenizer.convert_ids_to_tokens(token)
                if decoded not in (local, raw) and decoded.strip() != local.strip():
                    raise ScorerServerError(
                        f"The scorer server at {self.where} reads token {token} (prompt position {t}) as "
                        f"{decoded!r}, the local tokenizer of scorer_model as {local!r}: the server runs another "
                        "tokenizer, so the ids sent mean other text there. Serve scorer_model's tokenizer."
                    )
            self.stats["decoded_checked"] += checked

    # ---- the server's tokenizer and context -----------------------------------------------------------------------
    def probe(self) -> str:
        """The text both tokenizers must read alike: English, CJK and the scorer's chat rendering with its thinking
        format and answer suffix (the special tokens every scored sequence holds)."""
        messages = [{"role": "user", "content": "Write two lines about autumn. 写两句关于秋天的诗。"}]
        if self.config.scorer_system_prompt:
            messages.insert(0, {"role": "system", "content": self.config.scorer_system_prompt})
        chat = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        thinking = self.config.scorer_thinking_format.replace("{thinking}", "Hmm, the rhythm first. 先写节奏。")
        return PROBE_TEXT + chat + thinking + "Leaves fall.\n\n落叶。" + self.config.scorer_answer_suffix

    def check_server(self) -> None:
        """Refuse a server whose tokenizer differs from the local one, or whose context cannot hold
        ``scorer_max_length`` tokens (:class:`ScorerServerError`); without ``/tokenize`` (HTTP 404) only the
        ``decoded_token`` fields of the replies are checked. Runs before the first scoring."""
        text = self.probe()
        local = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        model = self.endpoint.model
        reply = self._root_post("tokenize", {"model": model, "prompt": text, "add_special_tokens": False})
        if isinstance(reply, EndpointError):  # vLLM also answers 404 for a model it does not serve: quote the reply
            logger.warning(
                "The scorer server at %s has no /tokenize (%s): its tokenizer is checked only through the "
                "decoded_token fields of its replies",
                self.where,
                reply,
            )
        else:
            served = reply.get("tokens")
            if not isinstance(served, list):
                raise ScorerServerError(
                    f"/tokenize of the scorer server at {self.where} gave no tokens: {_quote(reply)}"
                )
            if served != local:
                k = _first_difference(served, local)
                raise ScorerServerError(
                    f"The scorer server at {self.where} tokenizes a probe text differently from scorer_model's "
                    f"tokenizer: they first differ at token {k} (server {served[k : k + 5]}, local "
                    f"{local[k : k + 5]}; {len(served)} and {len(local)} tokens). The ids the scorer sends would mean "
                    "other text there; serve scorer_model's tokenizer."
                )
            self._check_context(reply.get("max_model_len"))
            back = self._root_post("detokenize", {"model": model, "tokens": local})
            expected = self.tokenizer.decode(local)
            if isinstance(back, dict) and back.get("prompt") != expected:
                got = back.get("prompt")
                k = _first_difference(got, expected) if isinstance(got, str) else 0
                raise ScorerServerError(
                    f"/detokenize of the scorer server at {self.where} reads the probe's ids as other text than the "
                    f"local tokenizer, from character {k}: server {_quote(back)}, local {_quote(expected[k:])}"
                )
            self.tokenize_checked = True
        self.checked = True

    def _check_context(self, max_model_len: Any) -> None:
        """A context of ``max_model_len`` tokens scores prompts of one token less (vLLM generates one); a longer
        ``scorer_max_length`` would let rows through that the server refuses, so it is refused here, at once."""
        if not isinstance(max_model_len, int) or isinstance(max_model_len, bool):
            return
        limit = max_model_len - 1
        if self.max_positions is None or self.max_positions > limit:
            raise ScorerServerError(
                f"The scorer server at {self.where} serves a context of {max_model_len} tokens, so it scores prompts "
                f"of at most {limit} tokens, but scorer_max_length is {self.max_positions}: set scorer_max_length to "
                f"{limit} or less (longer rows then get scorer_too_long_score, as in-process), or serve a longer "
                "context (vllm serve --max-model-len)"
            )

    def _root_post(self, route: str, payload: dict[str, Any]) -> dict | EndpointError:
        """The reply of a route at the server's root, or its HTTP 404 (the server has no such route)."""
        try:
            data, body = self.root_client.post(route, payload, retry_unparsable=True)
        except EndpointError as e:
            if e.status == 404:
                return e
            raise ScorerUnavailable(self.where, 1, 1, str(e)) from e
        if not isinstance(data, dict):
            raise ScorerServerError(f"/{route} of the scorer server at {self.where} returned {_quote(body)}")
        return data
