"""ScorerConfig: choices come from the Literal hints, resume-safe options are marked, and an unset reflection switch
renders the paper's prompt."""

from __future__ import annotations

import pytest

from reer_hf.core.models import resolve_dtype
from reer_hf.core.options import choices, resume_safe_names
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer


def test_an_unknown_backend_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"scorer_backend must be one of transformers, vllm, openai; got 'bogus'"):
        ScorerConfig(scorer_backend="bogus")
    with pytest.raises(ValueError, match=r"scorer_dtype must be one of auto, bf16, .*fp32"):
        ScorerConfig(scorer_dtype="int8")


def test_every_dtype_choice_is_one_the_loader_accepts():
    assert ScorerConfig().scorer_dtype == "auto"
    for name in choices(ScorerConfig, "scorer_dtype"):
        resolve_dtype(name)  # raises on a name it does not know


def test_resume_safe_options():
    assert resume_safe_names(ScorerConfig) == {
        "scorer_device",
        "scorer_token_budget",
        "scorer_carry_prefixes",
        "scorer_pad_batches",
        "scorer_fast_attention",
        "scorer_attn_implementation",
        "scorer_logits_chunk",
        "scorer_vllm_kwargs",
        "scorer_base_url",
        "scorer_api_key_env",
        "scorer_timeout",
        "scorer_max_retries",
        "scorer_max_concurrency",
    }


def test_unset_reflection_renders_the_reflection_prompt(tiny_tokenizer):
    """None (no synthesis run to follow) asks for reflection phrases, as True does; False does not."""

    def context(reflection: bool | None) -> str:
        config = ScorerConfig(scorer_reflection=reflection)
        return Scorer(tiny_tokenizer, config, backend=lambda rows: []).context("Write a poem about the sea.")

    assert ScorerConfig().scorer_reflection is None
    assert context(None) == context(True) != context(False)


def test_the_openai_options_are_checked_when_set():
    for bad in ({"scorer_timeout": 0.0}, {"scorer_max_retries": -1}, {"scorer_max_concurrency": 0}):
        with pytest.raises(ValueError, match="scorer_timeout must be > 0, scorer_max_retries >= 0"):
            ScorerConfig(**bad)
    config = ScorerConfig(scorer_backend="openai")
    assert (config.scorer_base_url, config.scorer_api_key_env) == ("http://localhost:8001/v1", "OPENAI_API_KEY")
