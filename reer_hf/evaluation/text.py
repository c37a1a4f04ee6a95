"""Pure text statistics of the answers and the thinking, reported for every benchmark (no models, no network): the
diversity of the answers (distinct-n) and how often the thinking reflects (reflection phrases per 1,000 units).
They are the implementation behind the ``distinct_n`` and ``reflection_profile`` metrics of
:mod:`reer_hf.evaluation.metrics`, through which the run computes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reer_hf.core.reflection import reflection_profile
from reer_hf.core.text import detect_language, units

__all__ = ["distinct_n", "reflection_rates"]


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


def reflection_rates(texts: Sequence[str], langs: str | Sequence[str] = "auto") -> dict[str, Any]:
    """The reflection-phrase profile of ``texts`` (:func:`reer_hf.core.reflection.reflection_profile`), each text in
    its language (``"en"``, ``"zh"``, or ``"auto"``: detected per text, since a model may think in English about a
    Chinese prompt), with ``per_1k`` over all texts and the ``langs`` used."""
    if isinstance(langs, str):
        langs = [langs] * len(texts)
    langs = [detect_language(t) if lang == "auto" else lang for t, lang in zip(texts, langs, strict=True)]
    out = reflection_profile(texts, langs)
    n_units = out["en"]["units"] + out["zh"]["units"]
    n_reflections = out["en"]["reflections"] + out["zh"]["reflections"]
    return {"per_1k": 1000.0 * n_reflections / n_units if n_units else 0.0, **out, "langs": langs}
