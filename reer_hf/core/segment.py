"""Paragraph segmentation of thinking trajectories and answers (REER.md section 4).

Split on blank lines, never inside a LaTeX display block ``\\[ ... \\]``; merge whitespace-only pieces and pieces
shorter than ``min_chars`` into the following one (a trailing leftover joins the last segment); if that leaves at most
one segment, split on single newlines instead. Segments are returned with their character spans in the original text
so the scorer can find "everything after the first segment" exactly.
"""

from __future__ import annotations

import re

BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
NEWLINE = re.compile(r"\n\s*")
LATEX_DISPLAY = re.compile(r"\\\[.*?\\\]", re.DOTALL)
MIN_SEGMENT_CHARS = 100


def _pieces(text: str, separator: re.Pattern) -> list[tuple[int, int]]:
    """Spans of the text between separators, skipping separators that fall inside a LaTeX display block."""
    protected = [m.span() for m in LATEX_DISPLAY.finditer(text)]
    spans, start = [], 0
    for match in separator.finditer(text):
        if any(lo < match.start() < hi for lo, hi in protected):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _merge(text: str, pieces: list[tuple[int, int]], min_chars: int) -> list[tuple[int, int]]:
    segments: list[tuple[int, int]] = []
    pending: int | None = None  # start of short/blank pieces waiting for the next one
    for start, end in pieces:
        start = start if pending is None else pending
        if len(text[start:end].strip()) < min_chars:
            pending = start
            continue
        segments.append((start, end))
        pending = None
    if pending is not None:
        if segments:
            segments[-1] = (segments[-1][0], len(text))
        elif text[pending:].strip():
            segments.append((pending, len(text)))
    # Trim surrounding whitespace so a span covers the segment's own text only.
    trimmed = []
    for start, end in segments:
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        trimmed.append((start + lead, start + len(chunk.rstrip())))
    return trimmed


def segment_spans(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the segments of ``text``; ``[]`` for blank text."""
    if not text.strip():
        return []
    spans = _merge(text, _pieces(text, BLANK_LINE), min_chars)
    if len(spans) <= 1:
        spans = _merge(text, _pieces(text, NEWLINE), min_chars)
    return spans


def segment(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[str]:
    """The segments of ``text`` (paragraphs, or lines when the text has no usable paragraphs)."""
    return [text[start:end] for start, end in segment_spans(text, min_chars)]
