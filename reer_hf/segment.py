"""Public import path of the paragraph segmentation: ``from reer_hf.segment import segment, segment_spans``.

It lives in :mod:`reer_hf.core.segment` because the scorer (the scored span) and the search (the units it rewrites)
must cut texts the same way.
"""

from reer_hf.core.segment import MIN_SEGMENT_CHARS, segment, segment_spans

__all__ = ["MIN_SEGMENT_CHARS", "segment", "segment_spans"]
