"""Quality filters of the synthesized trajectories (REER.md section 6): pure text functions, no models.

Why each filter exists:

- **Leak guard** (:func:`leaked_span`). The search minimises the perplexity of the answer ``y`` given the thinking
  ``z``. Copying long spans of ``y`` into ``z`` lowers that score trivially (the scorer has just read the words it must
  predict), so a rewrite or trajectory that copies more than ``n`` consecutive words of the reference would win for
  the wrong reason and teach the student to "plan" by reciting. Spans that also occur in the query are allowed: both
  the thinking and the answer may legitimately quote the request.
- **End of thinking** (:func:`reflection_in_tail`). A trajectory cut by the token limit, or still hesitating ("Wait,
  ...", "嗯……") in its last part, never reached a plan; training on it teaches the model not to conclude.
- **Repetition** (:func:`top_ngram_share`). Generators sometimes loop; a looping text has a few n-grams that cover a
  large share of all n-grams (the paper reports dropping texts whose top-3 trigrams exceed 30%).
- **Length** bounds and **dedup** (:func:`pair_key`) keep degenerate and duplicated items out.

:data:`REFLECTION_PHRASES` is shared with the SFT "no reflection tokens" ablation and the reflection-frequency metric;
:func:`reflection_pattern` compiles it and :func:`find_reflections` lists the phrases found in a text.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # configs imports the model helpers (torch); the filters stay importable without them
    from reer_hf.configs import FilterConfig

__all__ = [
    "FILTER_REASONS",
    "REFLECTION_PHRASES",
    "check_thinking",
    "find_reflections",
    "leaked_span",
    "pair_key",
    "reflection_in_tail",
    "reflection_pattern",
    "top_ngram_share",
    "units",
]

FILTER_REASONS = ("end_of_thinking", "repetition", "too_short", "too_long")

# Characters that start a Chinese clause: a phrase such as 或者/也许/等等 counts as reflection only right after
# one of them (or at the start of a line), so that "苹果、香蕉等等" (etc.) or "写成诗或者散文" (or) in running
# prose do not match.
_ZH_CLAUSE_START = r"(?:^|(?<=[\s，。！？；：、,.!?;:“”\"'‘’「」『』（）()《》…—-]))"

#: Self-reflection phrase families, as regular expressions (matched case-insensitively, ``re.MULTILINE``), per
#: language. English ones are bounded by ``\b`` so that "wait" never matches "waiter" or "awaited"; "wait" and
#: "hold on" count only in their reflective use ("Wait, no", "but wait", "wait a second", a sentence that opens with
#: "Wait"; "hold on" not followed by "to"; a plain "I can't wait." still matches). Chinese ones that are also
#: ordinary words (或者 "or", 也许 "perhaps", 等等 "etc.", 不对, 不行, 等一下 "in a moment") count only at the start
#: of a clause; the rest count anywhere.
REFLECTION_PHRASES: dict[str, list[str]] = {
    "en": [
        r"\bhm+\b",  # Hmm, Hmmm, hm
        r"\b(?:but|oh|no|and),?\s+wait\b",  # But wait, Oh wait, No, wait
        r"(?:^|(?<=[.!?…\"“(]\s)|(?<=[.!?…\"“(]))wait\b",  # a sentence that opens with "Wait"
        r"\bwait(?=\s*(?:[,.!?…:;—–]|-|\ba (?:second|minute|moment)\b))",  # "wait," "wait..." "wait a second"
        r"\blet me (?:think|re-?think|reconsider|see|step back)\b",
        r"\balternatively\b",
        r"\b(?:maybe|perhaps) I should\b",
        r"\bor maybe\b",
        r"\bon second thoughts?\b",
        r"\bactually,?\s+no\b",
        r"\bhold on\b(?!\s+to\b)",
        r"\bthen again\b",
        r"\bscratch that\b",
    ],
    "zh": [
        r"嗯+",
        r"让我(?:再)?想一?想",  # 让我想想 / 让我再想想 / 让我想一想
        r"再想一?想",  # 再想想 / 再想一想
        r"转念一想",
        r"话说回来",
        r"慢着",
        r"换个(?:思路|角度|方式)",
        _ZH_CLAUSE_START + r"(?:等等|等一下|等一等)",
        _ZH_CLAUSE_START + r"(?:不对|不行|或者|也许)",
    ],
}

_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff"
_UNIT_RE = {
    "en": re.compile(r"\w+(?:['’]\w+)*"),  # words; punctuation is dropped, an apostrophe inside a word is kept
    "zh": re.compile(rf"[{_CJK_CHARS}]|[^\W{_CJK_CHARS}]+"),  # each CJK character, and runs of other word chars
}


def _check_lang(lang: str) -> str:
    if lang not in _UNIT_RE:
        raise ValueError(f"Unsupported language {lang!r}; expected one of {sorted(_UNIT_RE)}")
    return lang


def _unit_matches(text: str, lang: str) -> list[re.Match]:
    return list(_UNIT_RE[_check_lang(lang)].finditer(text))


def units(text: str, lang: str) -> list[str]:
    """The comparison units of ``text``: lowercased words without punctuation (``en``); each CJK character and each
    latin word or number (``zh``)."""
    return [m.group().lower() for m in _unit_matches(text, lang)]


def _ngrams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


def leaked_span(candidate: str, reference: str, n: int, lang: str = "en", allowed: str = "") -> str | None:
    """The first span of at least ``n`` consecutive units (``zh``: ``2 * n`` characters) of ``candidate`` that also
    occurs in ``reference`` but not in ``allowed`` (e.g. the query), as the candidate's text; ``None`` if none.

    The reference's n-grams are hashed into a set, so the check is linear in the lengths of the texts. A found span is
    extended while each following n-gram is also in the reference (and not allowed).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = 2 * n if lang == "zh" else n
    matches = _unit_matches(candidate, lang)
    if len(matches) < k:
        return None
    ref_grams = _ngrams(units(reference, lang), k)
    if not ref_grams:
        return None
    allowed_grams = _ngrams(units(allowed, lang), k) if allowed else set()
    cand = [m.group().lower() for m in matches]

    def leaked(i: int) -> bool:
        gram = tuple(cand[i : i + k])
        return gram in ref_grams and gram not in allowed_grams

    last = len(cand) - k
    for i in range(last + 1):
        if leaked(i):
            j = i
            while j < last and leaked(j + 1):
                j += 1
            return candidate[matches[i].start() : matches[j + k - 1].end()]
    return None


def top_ngram_share(text: str, n: int = 3, top: int = 3, lang: str = "en") -> float:
    """Share of all n-gram occurrences of ``text`` covered by its ``top`` most frequent n-grams that occur at least
    twice: near 0 for normal prose, high for a looping text; 0.0 when ``text`` has fewer than ``n`` units."""
    seq = units(text, lang)
    total = len(seq) - n + 1
    if n < 1 or total < 1:
        return 0.0
    counts = Counter(tuple(seq[i : i + n]) for i in range(total))
    return sum(c for _, c in counts.most_common(top) if c >= 2) / total


def repeated_ngram_share(text: str, n: int = 10, lang: str = "en") -> float:
    """Share of the n-gram occurrences of ``text`` that repeat an earlier one: near 0 for prose, whatever its length,
    and high for a text that loops over a sentence of any length (which ``top_ngram_share`` misses for long ones)."""
    seq = units(text, lang)
    total = len(seq) - n + 1
    if n < 1 or total < 1:
        return 0.0
    return 1.0 - len({tuple(seq[i : i + n]) for i in range(total)}) / total


@lru_cache(maxsize=8)
def reflection_pattern(lang: str) -> re.Pattern:
    """One compiled regex (case-insensitive, multiline) for all of ``REFLECTION_PHRASES[lang]``."""
    if lang not in REFLECTION_PHRASES:
        raise ValueError(f"Unsupported language {lang!r}; expected one of {sorted(REFLECTION_PHRASES)}")
    return re.compile("|".join(f"(?:{p})" for p in REFLECTION_PHRASES[lang]), re.IGNORECASE | re.MULTILINE)


def find_reflections(text: str, lang: str) -> list[str]:
    """Every reflection phrase found in ``text``, in order, as written there."""
    return [m.group() for m in reflection_pattern(lang).finditer(text)]


def reflection_in_tail(text: str, fraction: float, lang: str) -> str | None:
    """The first reflection phrase that starts within the last ``fraction`` of the characters of ``text``, as
    written there, or ``None``. The whole text is scanned so that word boundaries at the cut are exact."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    cut = len(text) - int(len(text) * fraction)
    for m in reflection_pattern(lang).finditer(text):
        if m.start() >= cut:
            return m.group()
    return None


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def pair_key(query: str, answer: str) -> str:
    """A stable hex digest (SHA-256) of the whitespace-normalised, case-folded ``(query, answer)`` pair, for dedup."""
    payload = _normalise(query) + "\x1f" + _normalise(answer)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def check_thinking(thinking: str, finished: bool, lang: str, config: FilterConfig, n_tokens: int) -> str | None:
    """The reason of the first filter that ``thinking`` fails, or ``None`` when it passes them all.

    In order: ``"end_of_thinking"`` (cut by the token limit, i.e. not ``finished``, or a reflection phrase in the last
    ``config.filter_end_fraction``; when ``config.filter_end_of_thinking``), ``"repetition"`` (top-3
    ``config.filter_repetition_ngram``-gram share above ``config.filter_repetition_max``; when
    ``config.filter_repetition``; or more than ``config.filter_loop_max`` of the ``config.filter_loop_ngram``-grams
    repeating an earlier one), ``"too_short"`` / ``"too_long"`` (``n_tokens`` outside
    ``config.filter_min_thinking_tokens`` / ``config.filter_max_thinking_tokens``, each skipped when ``None``).
    """
    if config.filter_end_of_thinking and (
        not finished or reflection_in_tail(thinking, config.filter_end_fraction, lang) is not None
    ):
        return "end_of_thinking"
    if config.filter_repetition and (
        top_ngram_share(thinking, config.filter_repetition_ngram, 3, lang) > config.filter_repetition_max
        or repeated_ngram_share(thinking, config.filter_loop_ngram, lang) > config.filter_loop_max
    ):
        return "repetition"
    if config.filter_min_thinking_tokens is not None and n_tokens < config.filter_min_thinking_tokens:
        return "too_short"
    if config.filter_max_thinking_tokens is not None and n_tokens > config.filter_max_thinking_tokens:
        return "too_long"
    return None
