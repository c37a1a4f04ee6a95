"""Quality filters of the synthesized trajectories (the paper's quality filters): pure text functions, no models.

Why each filter exists:

- **Leak guard** (:func:`leaked_span`). The search minimises the perplexity of the answer ``y`` given the thinking
  ``z``. Copying long spans of ``y`` into ``z`` lowers that score trivially (the scorer has just read the words it must
  predict), so a rewrite or trajectory that copies more than ``n`` consecutive words of the reference would win for
  the wrong reason and teach the student to "plan" by reciting. Spans that also occur in the query are allowed: both
  the thinking and the answer may legitimately quote the request.
- **End of thinking** (:func:`~reer_hf.core.reflection.reflection_in_tail`). A trajectory cut by the token limit,
  or still hesitating ("Wait, ...", "嗯……") in its last part, never reached a plan; training on it teaches the model
  not to conclude.
- **Repetition** (:func:`top_ngram_share`). Generators sometimes loop; a looping text has a few n-grams that cover a
  large share of all n-grams (the paper reports dropping texts whose top-3 trigrams exceed 30%).
- **Length** bounds and **dedup** (:func:`pair_key`) keep degenerate and duplicated items out.

The reflection phrases themselves are defined once, in :mod:`reer_hf.core.reflection`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING

from reer_hf.core.reflection import reflection_in_tail
from reer_hf.core.text import unit_matches, units

if TYPE_CHECKING:  # configs imports the model helpers (torch); the filters stay importable without them
    from reer_hf.synthesis.config import FilterConfig

__all__ = [
    "FILTER_REASONS",
    "evidence",
    "leak_evidence",
    "leaked_span",
    "pair_key",
    "thinking_verdict",
    "top_ngram",
    "top_ngram_share",
    "unfinished_evidence",
]

FILTER_REASONS = ("end_of_thinking", "repetition", "too_short", "too_long")


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
    matches = unit_matches(candidate, lang)
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


def top_ngram(text: str, n: int, lang: str = "en") -> tuple[str, int] | None:
    """The most frequent n-gram of ``text`` (its units joined, ``zh`` without spaces) and how often it occurs;
    ``None`` when ``text`` has fewer than ``n`` units. Ties go to the n-gram seen first."""
    seq = units(text, lang)
    if n < 1 or len(seq) < n:
        return None
    gram, count = Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)).most_common(1)[0]
    return ("" if lang == "zh" else " ").join(gram), count


def evidence(check: str, text: str | None = None, value: float | None = None, limit: float | None = None) -> dict:
    """What a filter saw when it removed a row (the ``drop_evidence`` column), so a reader can judge the decision:
    the ``check`` that decided, the ``text`` that shows it (a repeated n-gram, a leaked span, a reflection phrase, the
    last words of an unfinished thinking), the measured ``value`` and the ``limit`` it crossed."""
    return {"check": check, "text": text, "value": None if value is None else float(value), "limit": limit}


def unfinished_evidence(thinking: str, n_tokens: int | None = None, max_tokens: int | None = None) -> dict:
    """The evidence of a thinking cut by the token limit: its last words (where ``</think>`` should have come)."""
    return evidence("unfinished", thinking[-240:], n_tokens, max_tokens)


def leak_evidence(span: str, n: int, lang: str = "en") -> dict:
    """The evidence of a leak: the copied span, its length in units and the shortest length that counts."""
    return evidence("leak", span, len(units(span, lang)), 2 * n if lang == "zh" else n)


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def pair_key(query: str, answer: str) -> str:
    """A stable hex digest (SHA-256) of the whitespace-normalised, case-folded ``(query, answer)`` pair, for dedup."""
    payload = _normalise(query) + "\x1f" + _normalise(answer)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def thinking_verdict(
    thinking: str, finished: bool, lang: str, config: FilterConfig, n_tokens: int
) -> tuple[str, dict] | None:
    """The first filter that ``thinking`` fails, as ``(reason, evidence)`` (:func:`evidence`, measured where the
    decision is taken), or ``None`` when it passes them all.

    In order: ``"end_of_thinking"`` (cut by the token limit, i.e. not ``finished``, or a reflection phrase in the last
    ``config.filter_end_fraction``; when ``config.filter_end_of_thinking``), ``"repetition"`` (top-3
    ``config.filter_repetition_ngram``-gram share above ``config.filter_repetition_max``; when
    ``config.filter_repetition``; or more than ``config.filter_loop_max`` of the ``config.filter_loop_ngram``-grams
    repeating an earlier one), ``"too_short"`` / ``"too_long"`` (``n_tokens`` outside
    ``config.filter_min_thinking_tokens`` / ``config.filter_max_thinking_tokens``, each skipped when ``None``).
    """
    if config.filter_end_of_thinking:
        if not finished:
            return "end_of_thinking", unfinished_evidence(thinking)
        phrase = reflection_in_tail(thinking, config.filter_end_fraction, lang)
        if phrase is not None:
            cut = len(thinking) - int(len(thinking) * config.filter_end_fraction)
            where = thinking.find(phrase, cut) / max(len(thinking), 1)
            return "end_of_thinking", evidence("reflection_in_tail", phrase, where, 1 - config.filter_end_fraction)
    if config.filter_repetition:
        share = top_ngram_share(thinking, config.filter_repetition_ngram, 3, lang)
        if share > config.filter_repetition_max:
            gram = top_ngram(thinking, config.filter_repetition_ngram, lang)
            return "repetition", evidence("top_ngram_share", gram and gram[0], share, config.filter_repetition_max)
        loop = repeated_ngram_share(thinking, config.filter_loop_ngram, lang)
        if loop > config.filter_loop_max:
            gram = top_ngram(thinking, config.filter_loop_ngram, lang)
            return "repetition", evidence("loop_share", gram and gram[0], loop, config.filter_loop_max)
    low, high = config.filter_min_thinking_tokens, config.filter_max_thinking_tokens
    if low is not None and n_tokens < low:
        return "too_short", evidence("thinking_tokens", None, n_tokens, low)
    if high is not None and n_tokens > high:
        return "too_long", evidence("thinking_tokens", None, n_tokens, high)
    return None
