"""The scorer's numeric noise floor: zero by definition in fp32, positive in bf16, measured on real forwards."""

from __future__ import annotations

import torch
from testing_utils import build_tiny_model

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.noise import measure_noise_floor
from reer_hf.scoring.scorer import Scorer


def rows(pairs, n=3):
    return [p["query"] for p in pairs[:n]], [""] * n, [p["answer"] for p in pairs[:n]]


def test_noise_floor_is_zero_in_fp32_and_positive_in_bf16(tiny_tokenizer, pairs):
    config = ScorerConfig(scorer_clip=False, scorer_max_length=None)
    fp32 = measure_noise_floor(
        Scorer(tiny_tokenizer, config, model=build_tiny_model("llama", len(tiny_tokenizer))), *rows(pairs)
    )
    assert (fp32.max, fp32.median, fp32.dtype) == (0.0, 0.0, "fp32")
    model = build_tiny_model("llama", len(tiny_tokenizer)).to(torch.bfloat16)
    bf16 = measure_noise_floor(Scorer(tiny_tokenizer, config, model=model), *rows(pairs))
    assert bf16.dtype == "bfloat16" and bf16.rows == 3 and bf16.max > 0 and bf16.max >= bf16.median > 0
    assert next(model.parameters()).dtype == torch.bfloat16  # the fp32 reference is a copy


def test_a_backend_without_a_model_is_reported_unmeasured(tiny_tokenizer, pairs):
    floor = measure_noise_floor(Scorer(tiny_tokenizer, ScorerConfig(), backend=lambda rows: []), *rows(pairs))
    assert floor.max is None and floor.rows == 0 and floor.note
