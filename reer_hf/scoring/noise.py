"""The scorer's numeric noise: how far its scores in the run dtype are from fp32 on the same rows.

A search decision (keep a rewrite because it lowers the score) is only as good as the score's precision: in bf16 the
rounding of a long forward pass moves a score by about as much as a typical accepted gain. The floor measured here is
what ``search_min_gain: auto`` requires a gain to clear.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reer_hf.scoring.engine import TransformersLogprobs
from reer_hf.scoring.scorer import STATUS_OK, Scorer

__all__ = ["NoiseFloor", "measure_noise_floor"]


@dataclass
class NoiseFloor:
    """|score in the run dtype - score in fp32| over the measured rows (``None`` when it could not be measured)."""

    max: float | None
    median: float | None
    rows: int
    dtype: str
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _dtype_of(scorer: Scorer) -> torch.dtype | None:
    model = getattr(scorer.backend, "model", None)
    return next(model.parameters()).dtype if model is not None else None


def measure_noise_floor(
    scorer: Scorer, queries: Sequence[str], thinkings: Sequence[str], answers: Sequence[str]
) -> NoiseFloor:
    """Score the rows with ``scorer`` as the search does, and with an fp32 copy of its model one row at a time; the
    floor is the largest difference (the median is reported beside it). A scorer that already runs in fp32 has no
    dtype noise (0.0 by definition); a backend without a model in reach (vLLM) cannot be measured here."""
    dtype = _dtype_of(scorer)
    if dtype is None:
        return NoiseFloor(None, None, 0, "unknown", "the scorer's backend holds no transformers model to copy")
    if dtype == torch.float32:
        return NoiseFloor(0.0, 0.0, len(queries), "fp32", "fp32 scores are the reference itself")
    run = scorer.score(queries, thinkings, answers)
    reset = getattr(scorer.backend, "reset", None)
    if reset:
        reset()  # the measurement must not leave its rows' prefix caches to the search
    reference_config = dataclasses.replace(scorer.config, scorer_carry_prefixes=0, scorer_compile=False)
    model = copy.deepcopy(scorer.backend.model).float()
    try:
        reference = Scorer(
            scorer.tokenizer,
            reference_config,
            backend=TransformersLogprobs(model, reference_config, scorer.backend.pad_token_id),
        )
        truth = [reference.score([q], [z], [a])[0] for q, z, a in zip(queries, thinkings, answers, strict=True)]
    finally:
        del model
    diffs = [
        abs(r.score - t.score)
        for r, t in zip(run, truth, strict=True)
        if r.status == STATUS_OK and t.status == STATUS_OK
    ]
    if not diffs:
        return NoiseFloor(None, None, 0, str(dtype).removeprefix("torch."), "no row could be scored")
    return NoiseFloor(max(diffs), statistics.median(diffs), len(diffs), str(dtype).removeprefix("torch."))
