"""Pure text statistics behind the deterministic metrics (BENCHMARKS.md, REER.md section 10): no models, no network.

- :func:`produced_length` / :func:`length_score`: LongBench-Write's length count and per-item length score S_l.
- :func:`distinct_n`: the share of distinct n-grams among all n-grams of a set of texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reer_hf.core.text import units

__all__ = [
    "distinct_n",
    "length_score",
    "produced_length",
]

# LongBench-Write's own count (THUDM/LongWriter evaluation/eval_length.py): CJK characters plus English words.
_LB_CJK = re.compile(r"[\u4e00-\u9fff]")
_LB_WORD = re.compile(r"\b[a-zA-Z]+\b")


def produced_length(text: str) -> int:
    """LongBench-Write's produced length: the number of CJK characters ``[\\u4e00-\\u9fff]`` plus the number of
    English words ``\\b[a-zA-Z]+\\b`` (so one count serves English and Chinese prompts)."""
    return len(_LB_CJK.findall(text)) + len(_LB_WORD.findall(text))


def length_score(required: int, produced: int) -> float:
    """LongBench-Write's length score of one item in [0, 100]: ``100 * max(0, 1 - (y/x - 1)/3)`` when the answer is
    longer than required (y > x), else ``100 * max(0, 1 - (x/y - 1)/2)``; an empty answer (y = 0) scores 0."""
    x, y = required, produced
    if x <= 0:
        raise ValueError(f"the required length must be positive, got {x}")
    if y <= 0:
        return 0.0
    if y > x:
        return 100.0 * max(0.0, 1.0 - (y / x - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (x / y - 1.0) / 2.0)


def distinct_n(texts: Sequence[str], max_n: int = 2) -> dict[str, float]:
    """``distinct-k`` for k = 1..``max_n`` (Li et al., 2016): distinct k-grams / all k-grams, pooled over ``texts``
    (k-grams do not cross texts); 0.0 when there is no k-gram. Tokens: lowercased words without punctuation, each
    CJK character one token (:func:`reer_hf.core.text.units` with ``"zh"``, which also splits English into words)."""
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    seqs = [units(t, "zh") for t in texts]
    out = {}
    for k in range(1, max_n + 1):
        grams = [tuple(s[i : i + k]) for s in seqs for i in range(len(s) - k + 1)]
        out[f"distinct_{k}"] = len(set(grams)) / len(grams) if grams else 0.0
    return out
