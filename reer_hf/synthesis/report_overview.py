"""The report's overview of a whole run, computed from every row (Arrow columns, so a run of tens of thousands of rows
takes a second or two): counts by status and drop reason, the scores before and after, the gains the search accepted
against the margin they had to clear, acceptance per step, and the time each component took (from the summary)."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reer_hf.synthesis.report_charts import hbars, histogram
from reer_hf.synthesis.trajectory import STATUS_FILTERED, STATUS_OK

#: Summary figures the overview draws itself; the rest of summary.json is listed as it is.
TIMINGS = (
    ("generator", "generator_seconds"),
    ("scorer", "scorer_seconds"),
)


def column(table: pa.Table, name: str) -> list:
    """A column as Python values (``None`` for every row when an older output lacks it)."""
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def floats(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)


def trace_steps(table: pa.Table) -> dict[str, np.ndarray]:
    """Every trace step of every row, as arrays (``segment``, ``accepted``, ``best_gain``, ``margin``) and the
    flat list of candidate statuses; fields an older output lacks are NaN."""
    flat = pc.list_flatten(table.column("trace"))
    steps = pa.concat_arrays(flat.chunks) if flat.num_chunks else pa.array([], type=flat.type)
    names = {steps.type.field(i).name for i in range(steps.type.num_fields)}
    out: dict[str, np.ndarray] = {}
    for name in ("segment", "best_gain", "margin"):
        values = steps.field(name).cast(pa.float64()) if name in names else pa.nulls(len(steps), pa.float64())
        out[name] = values.to_numpy(zero_copy_only=False).astype(float)
    accepted = steps.field("accepted").fill_null(False) if "accepted" in names else pa.array([False] * len(steps))
    out["accepted"] = accepted.to_numpy(zero_copy_only=False).astype(bool)
    statuses = pc.list_flatten(steps.field("candidate_status")) if "candidate_status" in names else pa.array([])
    out["candidate_status"] = statuses
    return out


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {"n": 0}
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return {"n": len(values), "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}


def overview(table: pa.Table, summary: dict, config: dict) -> dict:
    """The run at a glance, from every row of ``table`` (the run's columns) and the run's ``summary`` and ``config``
    (either may be empty: an output rebuilt from its pieces alone has no summary yet)."""
    status = column(table, "status")
    reason = column(table, "drop_reason")
    counts = Counter(status)
    reasons = Counter(f"{s}:{r}" for s, r in zip(status, reason, strict=True) if r)
    initial, final = floats(table, "initial_score"), floats(table, "final_score")
    searched = np.isin(np.array(status, dtype=object), [STATUS_OK, STATUS_FILTERED]) & ~np.isnan(initial)
    searched &= ~np.isnan(final)
    gain = initial - final
    steps = trace_steps(table)
    best, margin, accepted = steps["best_gain"], steps["margin"], steps["accepted"]
    margin0 = np.nan_to_num(margin, nan=0.0)
    taken = best[accepted & ~np.isnan(best)]
    held = best[~accepted & (best > 0) & (best <= margin0)]
    margins = sorted({float(m) for m in margin[~np.isnan(margin)]})
    noise = summary.get("noise_floor") or {}
    run_margin = margins[-1] if margins else None
    marks = [(run_margin, f"margin {run_margin:.3g}")] if run_margin else []
    per_step = []
    segments = steps["segment"]
    for s in sorted({int(x) for x in segments[~np.isnan(segments)]}):
        mask = segments == s
        per_step.append((f"step {s + 1}", int(accepted[mask].sum()), int(mask.sum())))
    candidate_counts = Counter(steps["candidate_status"].to_pylist())
    return {
        "rows": table.num_rows,
        "kept": counts.get(STATUS_OK, 0),
        "status": sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))),
        "removed": table.num_rows - counts.get(STATUS_OK, 0),
        "reasons": hbars(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "scored": int(searched.sum()),
        "improved": int((searched & (gain > 0)).sum()),
        "worsened": int((searched & (gain < 0)).sum()),
        "initial": _quantiles(initial[searched]),
        "final": _quantiles(final[searched]),
        "mean_drop": float(gain[searched].mean()) if searched.any() else None,
        "scores_chart": histogram(
            [("before", "z0", initial[searched].tolist()), ("after", "z*", final[searched].tolist())]
        ),
        "gains_chart": histogram(
            [("accepted", "accepted", taken[taken > 0].tolist()), ("below", "below the margin", held.tolist())],
            log=True,
            marks=marks,
        ),
        "accepted": len(taken),
        "accepted_median": float(statistics.median(taken)) if len(taken) else None,
        "below_margin": len(held),
        "margins": margins,
        "noise": noise,
        "min_gain": config.get("search_min_gain"),
        "steps": [
            {"label": label, "accepted": a, "attempted": n, "pct": round(100 * a / n, 1)} for label, a, n in per_step
        ],
        "candidates": sorted(candidate_counts.items(), key=lambda kv: -kv[1]),
        "timings": timings(summary),
        "figures": [(key, json.dumps(value, ensure_ascii=False)) for key, value in summary.items()],
    }


def timings(summary: dict) -> dict | None:
    """Seconds per component from the summary: the generator, the scorer, the rest of the search (prompts, parsing,
    filters), and what the run spent outside the search (loading, merging, writing); None without a summary."""
    if "wall_seconds" not in summary:
        return None
    parts = [(label, float(summary.get(key) or 0.0)) for label, key in TIMINGS]
    search = float(summary.get("search_seconds") or 0.0)
    rest = search - sum(v for _, v in parts)
    if rest > 0:
        parts.append(("rest of the search", rest))
    outside = float(summary["wall_seconds"]) - search
    if outside > 0:
        parts.append(("outside the search (load, merge, save)", outside))
    return {"bars": hbars(parts, "s"), "wall": float(summary["wall_seconds"]), "search": search}
