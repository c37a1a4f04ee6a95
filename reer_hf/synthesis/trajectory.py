"""What the search works on: a row's trajectory state while it is searched, its segments and separators, the tags of
the format, and the columns the search writes (fixed ``datasets.Features``, so map batches and shards agree)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reer_hf.core.segment import segment_spans
from reer_hf.core.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, detect_language
from reer_hf.scoring.scorer import STATUS_OK

STATUS_INVALID = "invalid"
STATUS_DUPLICATE = "duplicate"
STATUS_DROPPED = "dropped"
STATUS_FILTERED = "filtered"
STATUSES = (STATUS_OK, STATUS_DROPPED, STATUS_FILTERED, STATUS_INVALID, STATUS_DUPLICATE)

# The edit format's own tags; the thinking and answer tags are the core's (reer_hf.core.text), re-exported here.
REFINE_OPEN, REFINE_CLOSE = "<refine>", "</refine>"
ANALYZE_OPEN, ANALYZE_CLOSE = "<analyze>", "</analyze>"
_TAGS = (THINK_OPEN, THINK_CLOSE, REFINE_OPEN, REFINE_CLOSE, ANALYZE_OPEN, ANALYZE_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
SEPARATOR = "\n\n"


def search_features():
    """The ``datasets.Features`` of the columns the search adds (fixed, so map batches and shards always agree)."""
    from datasets import Features, List, Value

    step = {
        "segment": Value("int32"),
        "candidates": List(Value("string")),
        "candidate_scores": List(Value("float64")),
        "candidate_status": List(Value("string")),
        "candidate_gains": List(Value("float64")),
        "cleared": List(Value("bool")),
        "incumbent_score": Value("float64"),
        "best_gain": Value("float64"),
        "margin": Value("float64"),
        "chosen": Value("int32"),
        "accepted": Value("bool"),
        "score_after": Value("float64"),
    }
    return Features(
        {
            "language": Value("string"),
            "z0": Value("string"),
            "z_star": Value("string"),
            "initial_score": Value("float64"),
            "final_score": Value("float64"),
            "initial_nll": Value("float64"),
            "final_nll": Value("float64"),
            "n_segments": Value("int32"),
            "trace": List(step),
            "status": Value("string"),
            "drop_reason": Value("string"),
            # what the filter saw (reer_hf.synthesis.filters.evidence): None for kept rows and other drops
            "drop_evidence": {
                "check": Value("string"),
                "text": Value("string"),
                "value": Value("float64"),
                "limit": Value("float64"),
            },
            "stop_reason": Value("string"),
            "z_star_tokens": Value("int32"),
            "generated_tokens": Value("int64"),
            "scored_tokens": Value("int64"),
            "messages": List({"role": Value("string"), "content": Value("string")}),
        }
    )


@dataclass
class SearchItem:
    """One row's state during the search."""

    index: int
    query: Any
    answer: Any
    lang: str = "en"
    answer_lang: str = "en"
    status: str = STATUS_OK
    drop_reason: str | None = None
    evidence: dict | None = None
    stop_reason: str | None = None
    z0: str | None = None
    finished: bool = True
    segments: list[str] = field(default_factory=list)
    seps: list[str] = field(default_factory=list)
    initial_score: float | None = None
    initial_nll: float | None = None
    score: float | None = None
    nll: float | None = None
    trace: list[dict] = field(default_factory=list)
    generated_tokens: int = 0
    scored_tokens: int = 0
    z_star_tokens: int | None = None

    def drop(self, reason: str, status: str = STATUS_DROPPED, evidence: dict | None = None) -> None:
        self.status, self.drop_reason, self.evidence = status, reason, evidence

    @property
    def active(self) -> bool:
        return self.status == STATUS_OK and self.stop_reason is None

    def thinking(self, replace: int | None = None, rewrite: str | None = None) -> str:
        """The trajectory, optionally with segment ``replace`` swapped for ``rewrite`` (blank lines around it)."""
        parts, seps = list(self.segments), list(self.seps)
        if replace is not None:
            parts[replace] = rewrite
            if replace > 0:
                seps[replace - 1] = SEPARATOR
            if replace < len(seps):
                seps[replace] = SEPARATOR
        out = parts[0] if parts else ""
        for sep, part in zip(seps, parts[1:], strict=True):
            out += sep + part
        return out


def lead_words(text: str, n: int) -> str:
    """The first ``n`` words of ``text`` (Chinese: the first ``2 * n`` characters), as written there."""
    if n <= 0:
        return ""
    if detect_language(text) == "zh":
        return text[: 2 * n]
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    return text[: ends[min(n, len(ends)) - 1]] if ends else ""


def split_trajectory(text: str, min_chars: int) -> tuple[list[str], list[str]]:
    """Segments of a trajectory and the separators between them, so that joining them gives the text back."""
    spans = segment_spans(text, min_chars)
    segments = [text[a:b] for a, b in spans]
    seps = [text[spans[k][1] : spans[k + 1][0]] for k in range(len(spans) - 1)]
    return segments, seps
