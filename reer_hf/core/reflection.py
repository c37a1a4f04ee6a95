"""Human-like reflection phrases ("Hmm", "But wait", "让我想想"): the one definition of what counts as one, and the
three things the stages do with them: find them (the end-of-thinking filter, the reflection metric), remove them
(the "no reflection tokens" SFT ablation) and profile them (per-family rates in an evaluation report)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from reer_hf.core.text import units

__all__ = [
    "REFLECTION_PHRASES",
    "find_reflections",
    "reflection_in_tail",
    "reflection_pattern",
    "reflection_profile",
    "remove_reflections",
]

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

    Units are :func:`reer_hf.core.text.units`: words for English (punctuation dropped), and for Chinese each CJK
    character (plus each latin word or number), so Chinese rates are per 1,000 characters. Matches are those of
    :func:`find_reflections` (non-overlapping, so "But wait," counts once), each attributed to the
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


# Ablation: no reflection tokens
#
# Rules (English and Chinese; REFLECTION_PHRASES defines the phrases). Applied line by line until no
# removable phrase is left, only to the thinking of REER rows (never to the answer or the public data):
#   1. A phrase is removed together with the punctuation and spaces that follow it ("Hmm... ", "But wait, ",
#      "Let me think. ", "嗯，", "等等，"); "wait"/"hmm"/"hold on" also take a following "no" that is followed by
#      punctuation ("Wait, no, ..."), "wait a second/minute/moment" goes whole, and "换个角度" takes a following
#      来看/来说/想.
#   2. A phrase that carries the sentence is replaced by its plain form instead: "maybe/perhaps I should" ->
#      "I should", "or maybe" -> "or", "let me think/rethink/reconsider/step back" followed by a word -> "I think/...",
#      "let me see" followed by a word -> "I check".
#   3. "wait" used as a verb ("sit and wait for news", a sentence opening "Wait for the reader ...") is content and
#      stays.
#   4. Tidying: the first letter after a phrase removed at a sentence start is capitalised; a phrase that ended its
#      sentence ("the ending, hmm.") gives its full stop to the text before it, whose dangling comma goes; an
#      interjection between two commas ("the storm, hmm, is") takes the first comma with it; a line left empty is
#      removed along with one of the blank lines around it. Everything else is left exactly as it was.

_EN_TRAIL_RE = r"(?:[ \t]*(?:\.\.\.|[,;:…!?.—–]|-(?=\s)))*[ \t]*"
_EN_TRAIL = re.compile(_EN_TRAIL_RE)
_ZH_TRAIL = re.compile(r"[ \t]*[，,、；;：:…！!？?。.—～~]*[ \t]*")
_NO_AFTER = re.compile(r"no(?=[,.!…;:—])" + _EN_TRAIL_RE, re.IGNORECASE)
_WAIT_SPAN = re.compile(r"[ \t]+a (?:second|minute|moment)\b", re.IGNORECASE)
_ZH_ANGLE_TAIL = re.compile(r"(?:来|去)?(?:看|说|想)?")
_TERMINALS = ".!?。！？"
_COMMAS = ",，、;；:："
_SENTENCE_END = re.compile(r"(?:^|[.!?…。！？][\"'”’)\]]*|[\"“‘(\[])\s*$")
_LET_ME = re.compile(r"let me (think|re-?think|reconsider|see|step back)", re.IGNORECASE)
_LET_ME_PLAIN = {"think": "think", "rethink": "rethink", "re-think": "rethink", "reconsider": "reconsider"}


@dataclass
class _Span:
    start: int
    end: int
    replacement: str = ""
    interjection: bool = False  # "hmm" / "嗯": between two commas, the comma before it goes too


def _is_sentence_start(prefix: str) -> bool:
    return bool(_SENTENCE_END.search(prefix.rstrip(" \t")))


def _removal_spans(line: str) -> list[_Span]:
    matches = sorted(
        [(m, "en") for m in reflection_pattern("en").finditer(line)]
        + [(m, "zh") for m in reflection_pattern("zh").finditer(line)],
        key=lambda pair: (pair[0].start(), -pair[0].end()),
    )
    spans: list[_Span] = []
    for m, lang in matches:
        if spans and m.start() < spans[-1].end:
            continue  # overlaps a span already taken
        text, end = m.group(), m.end()
        after = line[end:]
        if lang == "zh":
            if text.startswith("换个"):
                end += _ZH_ANGLE_TAIL.match(line, end).end() - end
            end = _ZH_TRAIL.match(line, end).end()
            spans.append(_Span(m.start(), end, interjection=text.startswith("嗯")))
            continue
        lowered = text.lower()
        next_is_word = bool(re.match(r"[ \t]*[^\W\d_]", after))
        verb_wait = "wait" in lowered and lowered.split()[0] in ("wait", "and", "and,")
        if verb_wait and next_is_word and not _WAIT_SPAN.match(after):
            continue  # "wait" as a verb: a word follows, and not "a second/minute/moment"
        let_me = _LET_ME.fullmatch(text)
        if (plain := re.fullmatch(r"(?:maybe|perhaps) (I should)", text, re.IGNORECASE)) is not None:
            spans.append(_Span(m.start(), end, plain.group(1)))
            continue
        if lowered == "or maybe":
            spans.append(_Span(m.start(), end, text[:2]))
            continue
        if let_me is not None and next_is_word:
            verb = let_me.group(1).lower()
            spans.append(_Span(m.start(), end, "I " + ("check" if verb == "see" else _LET_ME_PLAIN.get(verb, verb))))
            continue
        if "wait" in lowered and (extra := _WAIT_SPAN.match(line, end)):
            end = extra.end()
        end = _EN_TRAIL.match(line, end).end()
        if re.fullmatch(r"hm+|.*wait|hold on", lowered, re.IGNORECASE) and (no := _NO_AFTER.match(line, end)):
            end = no.end()
        spans.append(_Span(m.start(), end, interjection=bool(re.fullmatch(r"hm+", lowered))))
    return spans


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def _apply_spans(line: str, spans: list[_Span]) -> str:
    out = ""
    pos = 0
    capitalise_next = False
    for span in spans:
        gap = line[pos : span.start]
        if gap:
            out += _capitalise(gap) if capitalise_next else gap
            capitalise_next = False
        at_start = _is_sentence_start(out)
        removed = line[span.start : span.end]
        if span.replacement:
            repl = span.replacement
            out += _capitalise(repl) if at_start else repl
            capitalise_next = False
        else:
            terminal = next((c for c in removed if c in _TERMINALS), None)
            rest = line[span.end :]
            if terminal and not at_start and not rest[:1].islower():
                # the phrase ended its sentence: the text before it gets the full stop, its dangling comma goes
                out = out.rstrip(" \t")
                if out and out[-1] in _COMMAS:
                    out = out[:-1]
                out += terminal
                if rest.strip() and removed[-1:] in (" ", "\t"):
                    out += " "
            else:
                trimmed = out.rstrip(" \t")
                if span.interjection and not at_start and trimmed[-1:] in ",，" and removed.rstrip()[-1:] in ",，":
                    out = trimmed[:-1] + ("" if trimmed[-1] == "，" else " ")  # "the storm, hmm, is" -> "the storm is"
                capitalise_next = capitalise_next or at_start
        pos = span.end
    tail = line[pos:]
    out += _capitalise(tail) if capitalise_next else tail
    return out


def _clean_line(line: str, max_passes: int = 4) -> str:
    for _ in range(max_passes):
        spans = _removal_spans(line)
        if not spans:
            break
        new = _apply_spans(line, spans)
        if new == line:
            break
        line = new
    return line


def remove_reflections(text: str) -> str:
    """``text`` without its reflection phrases, by the rules above; a text without any comes back unchanged."""
    lines = text.split("\n")
    out: list[str] = []
    emptied: list[int] = []
    for line in lines:
        new = _clean_line(line)
        if new != line:
            lead = line[: len(line) - len(line.lstrip(" \t"))]
            new = lead + new.strip(" \t") if new.strip() else ""
            if not new:
                emptied.append(len(out))
                continue  # the line held only reflection: it goes
        out.append(new)
    # A line removed between two blank lines (or a blank line and an end of the text) leaves one blank line too many.
    for index in reversed(emptied):
        before_blank = index == 0 or not out[index - 1].strip()
        after_blank = index >= len(out) or not out[index].strip()
        if before_blank and after_blank:
            if index < len(out):
                del out[index]
            elif index > 0:
                del out[index - 1]
    return "\n".join(out)
