"""Text primitives every stage shares: the thinking/answer tags and their one splitter, the language detector, and
the comparison units (words, or CJK characters) that the filters, the reflection tools and the metrics count in."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "CJK_CHARS",
    "LANGUAGES",
    "THINK_CLOSE",
    "THINK_OPEN",
    "ThinkingSplit",
    "detect_language",
    "split_thinking",
    "strip_thinking",
    "unit_matches",
    "units",
]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
# Thinking and answer markers: the paper's, then OpenThoughts' (Bespoke-Stratos format), which the SFT mix reads.
THINKING_MARKERS = ((THINK_OPEN, THINK_CLOSE), ("<|begin_of_thought|>", "<|end_of_thought|>"))
ANSWER_MARKERS = ((ANSWER_OPEN, ANSWER_CLOSE), ("<|begin_of_solution|>", "<|end_of_solution|>"))
LANGUAGES = ("en", "zh")


class ThinkingSplit(NamedTuple):
    """A text cut into its thinking and its answer."""

    thinking: str | None  # None: the text has no thinking markers at all
    answer: str
    finished: bool  # False: a thinking was opened and never closed (no answer)


def unwrap_answer(text: str) -> str:
    """``text`` without an ``<answer>`` (or ``<|begin_of_solution|>``) wrapper, stripped; the closing tag may be
    missing (a reply cut by its token limit)."""
    text = text.strip()
    for open_tag, close_tag in ANSWER_MARKERS:
        if text.startswith(open_tag):
            text = text[len(open_tag) :]
            if text.rstrip().endswith(close_tag):
                text = text.rstrip()[: -len(close_tag)]
            text = text.strip()
    return text


def split_thinking(text: str) -> ThinkingSplit:
    """The one rule of what counts as the thinking, for data, model outputs and judge replies alike.

    The thinking is what precedes the first closing marker (``</think>``, or OpenThoughts' ``<|end_of_thought|>``),
    without its opening marker (a chat template may have pre-filled that); the answer is what follows the last one,
    without an answer wrapper, so no part of a thinking ever reaches a reference answer or a judged one. A text that
    opens a thinking and never closes it is unfinished: no answer. A text without markers is all answer (unwrapped).
    """

    for open_tag, close_tag in THINKING_MARKERS:
        end = text.find(close_tag)
        if end >= 0:
            head, rest = text[:end], text.rsplit(close_tag, 1)[1]
            start = head.find(open_tag)
            thinking = head[start + len(open_tag) :] if start >= 0 else head
            return ThinkingSplit(thinking.strip(), unwrap_answer(rest), True)
    stripped = text.lstrip()
    for open_tag, _ in THINKING_MARKERS:
        if stripped.startswith(open_tag):
            return ThinkingSplit(stripped[len(open_tag) :].strip(), "", False)
    return ThinkingSplit(None, unwrap_answer(text), True)


def strip_thinking(text: str) -> str:
    """The answer of a text that may hold a thinking (:func:`split_thinking`); empty for an unfinished thinking."""
    return split_thinking(text).answer


#: The one CJK character class: kana, CJK ideographs (extension A, the unified block, compatibility ideographs,
#: extensions B and later) and hangul syllables. The language detector counts these characters, and in ``zh`` text each
#: of them is one unit, so what makes a text Chinese is what is counted in it. Punctuation is in neither.
#: (LongBench-Write's length score keeps its own, narrower count, ``[\u4e00-\u9fff]``, as its official code does.)
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff"
_CJK = re.compile(f"[{CJK_CHARS}]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str, threshold: float = 0.3) -> str:
    """``zh`` when CJK characters (:data:`CJK_CHARS`) make up at least ``threshold`` of the letters, else ``en`` (about
    four latin letters count as one word, and a word weighs as much as one hanzi)."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return "zh" if cjk and cjk / (cjk + latin / 4) >= threshold else "en"


_UNIT_RE = {
    "en": re.compile(r"\w+(?:['’]\w+)*"),  # words; punctuation is dropped, an apostrophe inside a word is kept
    "zh": re.compile(rf"[{CJK_CHARS}]|[^\W{CJK_CHARS}]+"),  # each CJK character, and runs of other word chars
}


def check_language(lang: str) -> str:
    if lang not in _UNIT_RE:
        raise ValueError(f"Unsupported language {lang!r}; expected one of {sorted(_UNIT_RE)}")
    return lang


def unit_matches(text: str, lang: str) -> list[re.Match]:
    return list(_UNIT_RE[check_language(lang)].finditer(text))


def units(text: str, lang: str) -> list[str]:
    """The comparison units of ``text``: lowercased words without punctuation (``en``); each CJK character and each
    latin word or number (``zh``)."""
    return [m.group().lower() for m in unit_matches(text, lang)]
