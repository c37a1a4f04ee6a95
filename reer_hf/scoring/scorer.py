"""The REER score: how probable a known-good answer ``y`` is after a query ``x`` and a thinking trajectory ``z``.

Definition (the paper's search objective): the scorer's chat template renders ``[system, user: inference_template(x)]``
with the generation prompt, then ``"<think>\\n" + z + "\\n</think>\\n<answer>\\n" + y + "\\n</answer>"`` is appended
and teacher-forced. The tokens of ``y`` after its first segment are scored: each log-probability is clipped to
``[-2, 0]`` and the score is ``-mean(clipped)`` (lower is better). Too-long sequences score 1000.0.

This module builds the scored sequences and reduces their log-probs; a backend computes those log-probs:
:class:`~reer_hf.scoring.engine.TransformersLogprobs` (default), :class:`~reer_hf.scoring.vllm_backend.VLLMLogprobs` or
:class:`~reer_hf.scoring.openai_backend.OpenAILogprobs` (a vLLM server, sent the token ids built here).

Why it is built this way (the scorer is the search's hot path, up to 21 scorings per item):
- The scored tokens are found with the tokenizer's offsets inside the tokenization of the *whole* sequence, never by
  tokenizing pieces separately (BPE merges across piece boundaries).
- Rows are sorted by length and packed under a padded-token budget; results come back in input order.
- Only the scored positions go through the LM head and the log-softmax (the head over 50-150K logits is a large
  share of a naive pass).
- Rows with the same query and answer (the K candidates of a search step) share their common token prefix: it is run
  once into a KV cache and every candidate continues from it (``scorer_prefix_reuse``); the cache is carried to the
  next step (:class:`~reer_hf.scoring.engine.PrefixCache`).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from reer_hf.core.models import load_causal_lm, load_tokenizer, resolve_model
from reer_hf.core.prompts import official_prompt, render
from reer_hf.core.segment import segment_bounds
from reer_hf.core.text import THINK_OPEN, detect_language
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.engine import TransformersLogprobs
from reer_hf.scoring.openai_backend import OpenAILogprobs
from reer_hf.scoring.vllm_backend import VLLMLogprobs

STATUS_OK = "ok"
STATUS_TOO_LONG = "too_long"
STATUS_EMPTY_ANSWER = "empty_answer"
STATUS_INVALID_INPUT = "invalid_input"
STATUS_NO_SCORED_TOKENS = "no_scored_tokens"
_TRAILING_THINK = re.compile(re.escape(THINK_OPEN) + r"\s*$")


@dataclass
class ScoreResult:
    """One row's result. ``score`` is the clipped mean NLL (the search's objective), ``nll`` the unclipped one and
    ``ppl = exp(nll)`` the perplexity of the scored answer tokens; ``exp(score)`` is the released code's "ppl"."""

    score: float
    nll: float
    ppl: float
    n_scored: int
    n_tokens: int
    status: str

    def columns(self, prefix: str = "score") -> dict[str, Any]:
        values = asdict(self)
        return {prefix if key == "score" else f"{prefix}_{key}": value for key, value in values.items()}


@dataclass
class EncodedRow:
    """A tokenized scoring sequence: ``scored`` are the positions of the tokens whose log-probs count; rows with the
    same ``group`` (their query and answer) may share a prefix KV cache."""

    input_ids: list[int]
    scored: list[int]
    group: tuple | None = None


def scored_tokens(offsets: Sequence[tuple[int, int]], lo: int, hi: int) -> range:
    """The tokens the official score averages over for the characters ``[lo, hi)``: from the last token that starts
    at or before ``lo`` to the first one after it that ends at or past ``hi``, so a token straddling either boundary
    counts (and for ``lo == hi``, the one token there)."""
    first = next((t for t in range(len(offsets) - 1, -1, -1) if offsets[t][0] <= lo), None)
    if first is None:
        return range(0)
    last = next((t for t in range(first, len(offsets)) if offsets[t][1] >= hi), len(offsets) - 1)
    return range(first, last + 1)


def _rejected(status: str, n_tokens: int = 0, score: float = math.nan) -> ScoreResult:
    return ScoreResult(score=score, nll=math.nan, ppl=math.nan, n_scored=0, n_tokens=n_tokens, status=status)


class Scorer:
    """Scores (query, thinking, answer) rows with the REER score; see the module docstring for the definition."""

    def __init__(self, tokenizer, config: ScorerConfig | None = None, model=None, backend=None):
        self.config = config or ScorerConfig()
        self.tokenizer = tokenizer
        if backend is None:
            if model is None:
                raise ValueError("Scorer needs a model or a backend")
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            backend = TransformersLogprobs(model, self.config, pad_token_id=pad)
        self.backend = backend
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("The scorer needs a fast tokenizer (offset mappings locate the answer tokens)")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "The scorer's tokenizer has no chat template; the scoring context is rendered with it. Set one, e.g. "
                "reer_hf/templates/chatml.jinja."
            )
        limits = [n for n in (self.config.scorer_max_length, getattr(backend, "max_positions", None)) if n]
        self.max_length = min(limits) if limits else None
        self._contexts: dict[tuple[str, str], str] = {}

    @classmethod
    def from_config(cls, config: ScorerConfig) -> Scorer:
        """Load the scorer model named by the config with its backend."""
        if config.scorer_backend == "vllm":
            tokenizer = load_tokenizer(config.scorer_model)
            backend = VLLMLogprobs(
                resolve_model(config.scorer_model), config, config.scorer_dtype, config.scorer_max_length
            )
            return cls(tokenizer, config, backend=backend)
        if config.scorer_backend == "openai":  # the served model; its tokenizer cuts the scored span here
            tokenizer = load_tokenizer(config.scorer_model)
            return cls(tokenizer, config, backend=OpenAILogprobs(config, tokenizer))
        model, tokenizer = load_causal_lm(
            config.scorer_model,
            dtype=config.scorer_dtype,
            device=config.scorer_device,
            attn_implementation=config.scorer_attn_implementation,
        )
        return cls(tokenizer, config, model=model)

    # ---- building the scored sequence -----------------------------------------------------------------------------
    def context(self, query: str) -> str:
        """The rendered scoring context for ``query`` (cached: the K candidates of a step share it)."""
        lang = detect_language(query)
        key = (query, lang)
        if key not in self._contexts:
            # None means "not set by a synthesis run": scoring alone follows the paper and asks for reflection.
            reflection = True if self.config.scorer_reflection is None else self.config.scorer_reflection
            messages = []
            if self.config.scorer_system_prompt:
                messages.append({"role": "system", "content": self.config.scorer_system_prompt})
            if self.config.scorer_prompt_source == "official":
                content = official_prompt("inference", lang, query)
            else:
                content = render(self.config.scorer_inference_template, lang, query=query, reflection=reflection)
            messages.append({"role": "user", "content": content})
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if len(self._contexts) > 4096:
                self._contexts.clear()
            self._contexts[key] = _TRAILING_THINK.sub("", text)
        return self._contexts[key]

    def build(self, query: str, thinking: str, answer: str) -> tuple[str, int, int]:
        """The full text and the character span ``[start, end)`` of the scored part of the answer: from the end of
        its first segment (the separator after it included) to its end, as the official code takes it."""
        head = self.context(query) + self.config.scorer_thinking_format.replace("{thinking}", thinking)
        bounds = segment_bounds(answer, self.config.scorer_segment_min_chars)
        if not self.config.scorer_first_segment_context:
            start = 0
        elif len(bounds) >= 2:
            start = bounds[0][1]
        elif self.config.scorer_single_segment == "official":
            start = len(answer)
        else:  # one segment: nothing after it, so the whole answer is scored
            start = 0
        return head + answer + self.config.scorer_answer_suffix, len(head) + start, len(head) + len(answer)

    def encode(self, queries, thinkings, answers) -> list[EncodedRow | ScoreResult]:
        """Tokenize every valid row (one batched tokenizer call); invalid rows become rejected results."""
        out: list[EncodedRow | ScoreResult | None] = [None] * len(queries)
        texts, spans, keys, where = [], [], [], []
        for i, (query, thinking, answer) in enumerate(zip(queries, thinkings, answers, strict=True)):
            thinking = "" if thinking is None else thinking
            if not all(isinstance(v, str) for v in (query, thinking, answer)):
                out[i] = _rejected(STATUS_INVALID_INPUT)
            elif not answer.strip():
                out[i] = _rejected(STATUS_EMPTY_ANSWER)
            else:
                text, lo, hi = self.build(query, thinking, answer)
                texts.append(text)
                spans.append((lo, hi))
                keys.append((query, answer))
                where.append(i)
        if texts:
            encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            for k, i in enumerate(where):
                ids, offsets = encoded["input_ids"][k], encoded["offset_mapping"][k]
                lo, hi = spans[k]
                if self.max_length is not None and len(ids) > self.max_length:
                    out[i] = _rejected(STATUS_TOO_LONG, len(ids), self.config.scorer_too_long_score)
                    continue
                scored = [t for t in scored_tokens(offsets, lo, hi) if t > 0]  # the first token has no prediction
                if not scored:
                    out[i] = _rejected(STATUS_NO_SCORED_TOKENS, len(ids))
                    continue
                out[i] = EncodedRow(input_ids=ids, scored=scored, group=keys[k])
        return out  # type: ignore[return-value]

    # ---- scoring --------------------------------------------------------------------------------------------------
    def reduce(self, logprobs: torch.Tensor, n_tokens: int) -> ScoreResult:
        """Turn a row's scored-token log-probs into its result (clip, means, perplexity)."""
        lp = logprobs.double()
        nll = float(-lp.mean())
        if self.config.scorer_clip:
            lp = lp.clamp(self.config.scorer_clip_min, self.config.scorer_clip_max)
        score = float(-lp.mean())
        return ScoreResult(
            score=score,
            nll=nll,
            ppl=math.exp(min(nll, 700.0)),
            n_scored=len(logprobs),
            n_tokens=n_tokens,
            status=STATUS_OK,
        )

    def score(self, queries: Sequence, thinkings: Sequence | None, answers: Sequence) -> list[ScoreResult]:
        """Score rows given as parallel lists (``thinkings`` may be None: no thinking); results in input order."""
        thinkings = [""] * len(queries) if thinkings is None else thinkings
        encoded = self.encode(queries, thinkings, answers)
        todo = [i for i, e in enumerate(encoded) if isinstance(e, EncodedRow)]
        results: list[ScoreResult] = [e if isinstance(e, ScoreResult) else None for e in encoded]  # type: ignore
        if todo:
            logprobs = self.backend([encoded[i] for i in todo])
            for i, lp in zip(todo, logprobs, strict=True):
                results[i] = self.reduce(lp, len(encoded[i].input_ids))
        return results

    def score_batch(
        self,
        batch: dict[str, list],
        query_column: str = "query",
        thinking_column: str | None = "thinking",
        answer_column: str = "answer",
        prefix: str = "score",
    ) -> dict[str, list]:
        """``dataset.map(scorer.score_batch, batched=True)``: adds ``score``, ``score_nll``, ``score_ppl``,
        ``score_n_scored``, ``score_n_tokens`` and ``score_status`` (names follow ``prefix``)."""
        if query_column not in batch or answer_column not in batch:
            raise KeyError(f"Columns {query_column!r} and {answer_column!r} are needed; found {sorted(batch)}")
        thinkings = batch[thinking_column] if thinking_column and thinking_column in batch else None
        results = self.score(batch[query_column], thinkings, batch[answer_column])
        columns: dict[str, list] = defaultdict(list)
        for result in results:
            for key, value in result.columns(prefix).items():
                columns[key].append(value)
        return dict(columns)
