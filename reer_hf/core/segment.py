"""Paragraph segmentation of thinking trajectories and answers, as the official REER code cuts them.

The text is cut into pieces at separators: a blank line (two newlines in a row, with all the whitespace that follows),
never inside a LaTeX display block ``\\[ ... \\]``, which stays whole. Separators and pieces shorter than
``min_chars`` characters (raw length) wait in a buffer that is prefixed to the next piece of ``min_chars`` or more,
which ends a segment; what is left in the buffer at the end joins the last segment. If that gives at most one segment,
the text is cut at single newlines instead. So the segments keep their separators and concatenate back to the text,
and a segment's buffered prefix (dialogue lines, short list items) belongs to the paragraph that follows it.

:func:`segment_bounds` gives the segments as contiguous character spans (what the scorer needs to find "everything
after the first segment"), :func:`segment` their text, and :func:`segment_spans` each segment's own text without the
whitespace around it (the units the search rewrites).
"""

from __future__ import annotations

__all__ = ["MIN_SEGMENT_CHARS", "segment", "segment_bounds", "segment_spans"]

MIN_SEGMENT_CHARS = 100
_LATEX_OPEN, _LATEX_CLOSE = "\\[", "\\]"


def _pieces(text: str, separator: str) -> list[tuple[int, int, bool]]:
    """``(start, end, is_separator)`` of the text's pieces in order. A separator is ``separator`` and every
    whitespace character after its first one; the piece before it is recorded even when empty."""
    pieces: list[tuple[int, int, bool]] = []
    start = i = 0
    n = len(text)
    while i < n:
        if text.startswith(_LATEX_OPEN, i):
            close = text.find(_LATEX_CLOSE, i + 2)
            i = n if close < 0 else close + 2  # an unclosed block runs to the end of the text
        elif text.startswith(separator, i):
            pieces.append((start, i, False))
            j = i + 1
            while j < n and not text[j].strip():
                j += 1
            pieces.append((i, j, True))
            start = i = j
        else:
            i += 1
    if start < n:
        pieces.append((start, n, False))
    return pieces


def _merge(text: str, pieces: list[tuple[int, int, bool]], min_chars: int) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    pending: int | None = None  # start of the buffered separators and short pieces
    for start, end, is_separator in pieces:
        if is_separator or not text[start:end].strip() or end - start < min_chars:
            pending = start if pending is None else pending
            continue
        bounds.append((start if pending is None else pending, end))
        pending = None
    if pending is not None:
        if bounds:
            bounds[-1] = (bounds[-1][0], len(text))
        else:
            bounds.append((pending, len(text)))
    return bounds


def segment_bounds(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[tuple[int, int]]:
    """Contiguous spans ``(start, end)`` of the segments, covering the whole text; ``[]`` for the empty text."""
    bounds = _merge(text, _pieces(text, "\n\n"), min_chars)
    if len(bounds) <= 1:
        bounds = _merge(text, _pieces(text, "\n"), min_chars)
    return bounds


def segment(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[str]:
    """The segments of ``text`` with their separators: they concatenate back to ``text``."""
    return [text[start:end] for start, end in segment_bounds(text, min_chars)]


def segment_spans(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[tuple[int, int]]:
    """Spans of each segment's own text, without the whitespace around it; ``[]`` for blank text."""
    spans = []
    for start, end in segment_bounds(text, min_chars):
        chunk = text[start:end]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start + lead, start + len(chunk.rstrip())))
    return spans
