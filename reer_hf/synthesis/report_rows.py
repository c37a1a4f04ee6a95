"""One row of a synthesis run as the report shows it: the trajectory with each accepted rewrite as a word diff against
the segment it replaced, every step's candidates sorted into accepted / cleared / below margin / worse / rejected, the
score path from ``z0`` to ``z*`` and, for a removed row, what its filter saw.

Plain data for the report's template (which escapes every text): nothing here builds HTML. The trace records the
candidates but not the segments they replaced, so the trajectory is replayed from ``z0``: cut as the search cut it
(``search_segment_min_chars``), each accepted candidate put in its segment's place, and the result checked against the
stored ``z_star``; a row whose replay does not give ``z_star`` back shows its rewrites without a diff, and says so.
"""

from __future__ import annotations

import difflib
import re

from reer_hf.core.segment import MIN_SEGMENT_CHARS
from reer_hf.synthesis.trajectory import SEPARATOR, STATUS_OK, split_trajectory

#: Words, runs of whitespace, single CJK characters and single punctuation marks: the units a diff compares.
_TOKEN_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|\s+|[^\W\u3400-\u9fff\uf900-\ufaff]+|[^\w\s]")
#: Above this many token pairs a segment's diff is shown as a whole replacement (difflib is quadratic at worst).
MAX_DIFF_PAIRS = 4_000_000
#: Characters of a candidate that was not accepted shown in the step tables (the accepted one is always whole).
CANDIDATE_CHARS = 1200

#: Candidate outcomes, in the order the report's legend lists them.
OUTCOMES = ("accepted", "cleared", "below_margin", "worse", "rejected")
#: What each drop reason means, as the report says it (reasons built from a status are explained in ``explain``).
REASONS = {
    "duplicate": "the same query and answer as an earlier row (normalised), which was searched instead",
    "generator_error": "the generator failed to write the initial trajectory",
    "short_rollout": "the initial trajectory is shorter than search_min_rollout_tokens",
    "malformed": "the initial trajectory holds a tag of the format (<think>, <refine>, <answer>, ...)",
    "single_segment": "the initial trajectory is one segment: there is nothing to rewrite segment by segment",
    "leak": "the initial trajectory copies a span of the answer (the leak guard)",
    "end_of_thinking": "the thinking was cut by the token limit, or still hesitates at its end",
    "repetition": "the thinking loops over the same n-grams",
    "too_short": "fewer thinking tokens than filter_min_thinking_tokens",
    "too_long": "more thinking tokens than filter_max_thinking_tokens",
}
#: Reasons whose filter records its evidence (``drop_evidence``).
EVIDENCED = ("leak", "end_of_thinking", "repetition", "too_short", "too_long")


def explain(reason: str | None) -> str:
    """A drop reason in words."""
    if not reason:
        return ""
    if reason in REASONS:
        return REASONS[reason]
    field, _, what = reason.partition("_")
    if field in ("query", "answer") and what in ("not_text", "missing", "empty"):
        return f"the {field} is {what.replace('_', ' ')}"
    if field == "answer":
        return f"the answer alone does not fit the scorer ({what})"
    if field == "score":
        return f"the scorer could not score the initial trajectory ({what})"
    return reason


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``(kind, text)`` runs that turn ``old`` into ``new``: ``same``, ``del`` (removed) or ``ins`` (added), word by
    word (Chinese: character by character), whitespace kept so the runs read as the text."""
    a, b = _TOKEN_RE.findall(old), _TOKEN_RE.findall(new)
    if len(a) * len(b) > MAX_DIFF_PAIRS:
        return [("del", old), ("ins", new)]
    runs: list[tuple[str, str]] = []

    def add(kind: str, tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + text)
        else:
            runs.append((kind, text))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            add("same", a[i1:i2])
        else:
            add("del", a[i1:i2])
            add("ins", b[j1:j2])
    return runs


def diff_counts(runs: list[tuple[str, str]]) -> dict[str, int]:
    """Words (Chinese: characters) added and removed by a :func:`word_diff`."""
    counts = {"added": 0, "removed": 0}
    for kind, text in runs:
        if kind != "same":
            words = sum(1 for t in _TOKEN_RE.findall(text) if not t.isspace())
            counts["added" if kind == "ins" else "removed"] += words
    return counts


def candidate_outcome(step: dict, k: int) -> str:
    """What became of candidate ``k`` of a trace step: ``accepted``; ``cleared`` (beat the current trajectory by more
    than the margin, but another candidate beat it by more); ``below_margin`` (better, by no more than the margin);
    ``worse`` (no better than the current trajectory); ``rejected`` (never scored, or not comparable)."""
    status = step["candidate_status"][k]
    gains = step.get("candidate_gains") or []
    gain = gains[k] if k < len(gains) else None
    if step.get("accepted") and step.get("chosen") == k:
        return "accepted"
    if status == "below_margin":
        return "below_margin"
    if status != "scored" or gain is None:
        return "rejected"
    if gain <= 0:
        return "worse"
    margin = step.get("margin") or 0.0
    return "cleared" if gain > margin else "below_margin"


def step_view(step: dict) -> dict:
    """A trace step for the report: its candidates with outcome, score, gain and (shortened) text."""
    candidates = []
    gains = step.get("candidate_gains") or []
    for k, status in enumerate(step["candidate_status"]):
        text = step["candidates"][k] if k < len(step["candidates"]) else None
        outcome = candidate_outcome(step, k)
        cut = text is not None and outcome != "accepted" and len(text) > CANDIDATE_CHARS
        candidates.append(
            {
                "k": k,
                "outcome": outcome,
                "status": status,
                "score": step["candidate_scores"][k] if k < len(step["candidate_scores"]) else None,
                "gain": gains[k] if k < len(gains) else None,
                "text": text[:CANDIDATE_CHARS] if cut else text,
                "cut": len(text) - CANDIDATE_CHARS if cut else 0,
            }
        )
    return {
        "segment": step["segment"],
        "accepted": bool(step.get("accepted")),
        "incumbent": step.get("incumbent_score"),
        "best_gain": step.get("best_gain"),
        "margin": step.get("margin"),
        "score_after": step.get("score_after"),
        "candidates": candidates,
    }


def replay(z0: str, trace: list[dict], min_chars: int) -> tuple[list[str], list[str], list[str]] | None:
    """``z0``'s segments, the final segments and their separators after the accepted rewrites of ``trace``, as the
    search applied them; ``None`` when a step names a segment ``z0`` does not have."""
    segments, seps = split_trajectory(z0, min_chars)
    final = list(segments)
    for step in trace:
        chosen = step.get("chosen", -1)
        if not step.get("accepted") or chosen is None or chosen < 0:
            continue
        s = step["segment"]
        if s >= len(final) or step["candidates"][chosen] is None:
            return None
        final[s] = step["candidates"][chosen]
        if s > 0:
            seps[s - 1] = SEPARATOR
        if s < len(seps):
            seps[s] = SEPARATOR
    return segments, final, seps


def _join(parts: list[str], seps: list[str]) -> str:
    out = parts[0] if parts else ""
    for sep, part in zip(seps, parts[1:], strict=True):
        out += sep + part
    return out


def trajectory_view(z0: str | None, z_star: str | None, trace: list[dict], min_chars: int) -> dict:
    """The trajectory as segments, each rewritten one with its diff and the step that accepted it; ``replayed`` is
    False (and ``segments`` holds ``z_star`` whole) when the replay of the trace does not give ``z_star`` back."""
    if not z0:
        return {"replayed": False, "segments": [], "rewrites": 0}
    accepted = {s["segment"]: s for s in trace if s.get("accepted")}
    done = replay(z0, trace, min_chars)
    if done is None or _join(done[1], done[2]) != (z_star or z0):
        text = z_star or z0
        return {"replayed": False, "segments": [{"text": text}], "rewrites": len(accepted)}
    segments = []
    for index, (old, new) in enumerate(zip(done[0], done[1], strict=True)):
        step = accepted.get(index)
        if step is None:
            segments.append({"index": index, "text": old})
            continue
        runs = word_diff(old, new)
        segments.append(
            {"index": index, "text": new, "diff": runs, "counts": diff_counts(runs), "gain": step.get("best_gain")}
        )
    return {"replayed": True, "segments": segments, "rewrites": len(accepted)}


def score_path(row: dict) -> list[dict]:
    """``z0``'s score, then the score after each step (marked where a rewrite was accepted): the path to ``z*``."""
    if row.get("initial_score") is None:
        return []
    path = [{"step": None, "score": row["initial_score"], "accepted": False}]
    for step in row.get("trace") or []:
        if step.get("score_after") is not None:
            path.append(
                {"step": step["segment"], "score": step["score_after"], "accepted": bool(step.get("accepted"))}
            )
    return path


def row_gain(initial: float | None, final: float | None) -> float | None:
    """How much the search lowered a row's score (negative: the final score is above the first one measured)."""
    return None if initial is None or final is None else initial - final


def _in_tail(thinking: str, phrase: str, start: float) -> dict[str, str]:
    """The words around the reflection ``phrase`` in the tail of ``thinking`` (from ``start``, a share of its
    characters, where the filter began to read), so the report can show the phrase where it stands."""
    cut = len(thinking) - int(len(thinking) * round(1 - start, 9))  # as the filter cuts (its end fraction)
    at = thinking.find(phrase, cut)
    if at < 0:
        return {"before": "", "after": ""}
    return {"before": thinking[max(cut, at - 200) : at], "after": thinking[at + len(phrase) :]}


def evidence_view(row: dict, config: dict) -> dict | None:
    """A removed row's evidence as stored by its filter (``drop_evidence``); for an output that stored none, the part
    that can be read off the row itself (token counts against the run's bounds), else ``None``."""
    stored = row.get("drop_evidence")
    if stored and stored.get("check"):
        view = dict(stored)
        if view["check"] == "reflection_in_tail" and row.get("z_star") and view.get("text"):
            view.update(_in_tail(row["z_star"], view["text"], view.get("limit") or 0.9))
        return view
    reason, tokens = row.get("drop_reason"), row.get("z_star_tokens")
    bound = {"too_short": "filter_min_thinking_tokens", "too_long": "filter_max_thinking_tokens"}.get(reason or "")
    if bound and tokens is not None:
        return {"check": "thinking_tokens", "text": None, "value": tokens, "limit": config.get(bound)}
    return None


def row_view(row: dict, index: int, why: str, config: dict) -> dict:
    """Everything the report shows of one row (``index``: its place in the output; ``why``: why the sample has it)."""
    min_chars = config.get("search_segment_min_chars") or MIN_SEGMENT_CHARS
    trace = row.get("trace") or []
    gain = row_gain(row.get("initial_score"), row.get("final_score"))
    status = row.get("status") or STATUS_OK
    return {
        "index": index,
        "why": why,
        "status": status,
        "reason": row.get("drop_reason") or "",
        "explain": explain(row.get("drop_reason")),
        "evidenced": row.get("drop_reason") in EVIDENCED,
        "stop_reason": row.get("stop_reason"),
        "language": row.get("language"),
        "rollout": row.get("rollout"),
        "query": row.get("query"),
        "answer": row.get("answer"),
        "z0": row.get("z0"),
        "initial": row.get("initial_score"),
        "final": row.get("final_score"),
        "gain": gain,
        "tokens": row.get("z_star_tokens"),
        "trajectory": trajectory_view(row.get("z0"), row.get("z_star"), trace, min_chars),
        "steps": [step_view(s) for s in trace],
        "path": score_path(row),
        "evidence": evidence_view(row, config) if status != STATUS_OK else None,
    }
