"""The REER scorer: the perplexity of an answer given a query and a thinking, batched for the search's hot path.

``from reer_hf.scoring import Scorer, ScorerConfig``. :mod:`~reer_hf.scoring.scorer` builds and reduces the scored
sequences; :mod:`~reer_hf.scoring.engine` runs them through a transformers model (packing, shared-prefix KV caches
held by :class:`~reer_hf.scoring.engine.PrefixCache`, the lean LM head); :mod:`~reer_hf.scoring.attention` and
:mod:`~reer_hf.scoring.fusion` make those passes fast; :mod:`~reer_hf.scoring.vllm_backend` scores with vLLM instead,
:mod:`~reer_hf.scoring.openai_backend` with a vLLM server (as the official code does); :mod:`~reer_hf.scoring.dataset`
scores a whole dataset (``recipes/score.py``).
"""

from reer_hf.scoring.config import ScorerConfig, ScoreScriptArguments
from reer_hf.scoring.engine import PrefixCache, TransformersLogprobs
from reer_hf.scoring.openai_backend import OpenAILogprobs, ScorerServerError, ScorerUnavailable
from reer_hf.scoring.scorer import (
    STATUS_EMPTY_ANSWER,
    STATUS_INVALID_INPUT,
    STATUS_NO_SCORED_TOKENS,
    STATUS_OK,
    STATUS_TOO_LONG,
    EncodedRow,
    Scorer,
    ScoreResult,
)
from reer_hf.scoring.vllm_backend import VLLMLogprobs

__all__ = [
    "STATUS_EMPTY_ANSWER",
    "STATUS_INVALID_INPUT",
    "STATUS_NO_SCORED_TOKENS",
    "STATUS_OK",
    "STATUS_TOO_LONG",
    "EncodedRow",
    "OpenAILogprobs",
    "PrefixCache",
    "ScoreResult",
    "ScoreScriptArguments",
    "Scorer",
    "ScorerConfig",
    "ScorerServerError",
    "ScorerUnavailable",
    "TransformersLogprobs",
    "VLLMLogprobs",
]
