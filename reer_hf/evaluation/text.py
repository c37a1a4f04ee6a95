"""Pure text statistics behind the deterministic metrics (BENCHMARKS.md, REER.md section 10): no models, no network.

- :func:`produced_length` / :func:`length_score`: LongBench-Write's length count and per-item length score S_l.
- :func:`reflection_profile`: how often each reflection phrase family of :data:`reer_hf.filters.REFLECTION_PHRASES`
  occurs, per 1,000 words (English) or per 1,000 characters (Chinese).
- :func:`distinct_n`: the share of distinct n-grams among all n-grams of a set of texts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from reer_hf.filters import REFLECTION_PHRASES, reflection_pattern, units

__all__ = [
    "detect_lang",
    "distinct_n",
    "length_score",
    "produced_length",
    "reflection_profile",
    "split_thinking",
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


def detect_lang(text: str) -> str:
    """``"zh"`` when ``text`` has more CJK characters than English words, else ``"en"``."""
    return "zh" if len(_LB_CJK.findall(text)) > len(_LB_WORD.findall(text)) else "en"


@lru_cache(maxsize=8)
def _family_patterns(lang: str) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in REFLECTION_PHRASES[lang])


def _family_of(text: str, match: re.Match, lang: str) -> str:
    """The family (its pattern in ``REFLECTION_PHRASES``) that produced ``match`` of the combined pattern: the combined
    pattern is an alternation, so it is the first family that matches at the same position."""
    for pattern in _family_patterns(lang):
        if pattern.match(text, match.start()):
            return pattern.pattern
    raise AssertionError(f"no reflection family matches {match.group()!r}")  # unreachable: same patterns, same flags


def reflection_profile(texts: Sequence[str], langs: Sequence[str]) -> dict:
    """Reflection phrases per 1,000 units in ``texts`` (each with its language, ``"en"`` or ``"zh"``).

    Units are :func:`reer_hf.filters.units`: words for English (punctuation dropped), and for Chinese each CJK
    character (plus each latin word or number), so Chinese rates are per 1,000 characters. Matches are those of
    :func:`reer_hf.filters.find_reflections` (non-overlapping, so "But wait," counts once), each attributed to the
    phrase family (its regular expression) that matched. Rates pool all texts of a language: total matches / total
    units * 1000; ``per_item`` holds each text's own rate (``None`` for a text without units).
    """
    if len(texts) != len(langs):
        raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
    counts = {lang: Counter() for lang in REFLECTION_PHRASES}
    n_units = Counter()
    n_texts = Counter()
    per_item: list[float | None] = []
    for text, lang in zip(texts, langs, strict=True):
        if lang not in REFLECTION_PHRASES:
            raise ValueError(f"Unsupported language {lang!r}; expected one of {sorted(REFLECTION_PHRASES)}")
        size = len(units(text, lang))
        matches = list(reflection_pattern(lang).finditer(text))
        for m in matches:
            counts[lang][_family_of(text, m, lang)] += 1
        n_units[lang] += size
        n_texts[lang] += 1
        per_item.append(1000.0 * len(matches) / size if size else None)
    out: dict = {"per_item": per_item}
    for lang, families in REFLECTION_PHRASES.items():
        total = n_units[lang]

        def rate(count: int, total: int = total) -> float:
            return 1000.0 * count / total if total else 0.0

        out[lang] = {
            "texts": n_texts[lang],
            "units": total,
            "reflections": sum(counts[lang].values()),
            "per_1k": rate(sum(counts[lang].values())),
            "families": {p: rate(counts[lang][p]) for p in families},
            "family_counts": {p: counts[lang][p] for p in families},
        }
    return out


def distinct_n(texts: Sequence[str], max_n: int = 2) -> dict[str, float]:
    """``distinct-k`` for k = 1..``max_n`` (Li et al., 2016): distinct k-grams / all k-grams, pooled over ``texts``
    (k-grams do not cross texts); 0.0 when there is no k-gram. Tokens: lowercased words without punctuation, each
    CJK character one token (:func:`reer_hf.filters.units` with ``"zh"``, which also splits English into words)."""
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    seqs = [units(t, "zh") for t in texts]
    out = {}
    for k in range(1, max_n + 1):
        grams = [tuple(s[i : i + k]) for s in seqs for i in range(len(s) - k + 1)]
        out[f"distinct_{k}"] = len(set(grams)) / len(grams) if grams else 0.0
    return out


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_TAGS = re.compile(r"^\s*<answer>\s*(.*?)\s*(?:</answer>\s*)?$", re.DOTALL)


def split_thinking(text: str) -> tuple[str | None, str, bool]:
    """``(thinking, answer, finished)`` of a model response.

    With a ``</think>``, the thinking is what precedes the first one (without its ``<think>``), the answer what
    follows it (without ``<answer>`` tags, the paper's answer format); a response that opens ``<think>`` and never
    closes it is unfinished thinking: no answer (``finished`` False; it is scored as an empty answer); a response
    without tags is all answer (thinking None).
    """
    end = text.find(_THINK_CLOSE)
    if end >= 0:
        head, answer = text[:end], text[end + len(_THINK_CLOSE) :]
        start = head.find(_THINK_OPEN)
        thinking = head[start + len(_THINK_OPEN) :] if start >= 0 else head
        tagged = _ANSWER_TAGS.match(answer)
        return thinking.strip(), (tagged.group(1) if tagged else answer).strip(), True
    if text.lstrip().startswith(_THINK_OPEN):
        return text.lstrip()[len(_THINK_OPEN) :].strip(), "", False
    return None, text.strip(), True
