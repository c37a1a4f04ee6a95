"""The geometry of the report's charts (histograms, bars, a row's score path) as plain numbers and labels, which the
report's template draws as inline SVG: the page needs no plotting library, no script and no network to show them."""

from __future__ import annotations

import math
from collections.abc import Sequence

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 30, 10, 34


def number(value: float | None, digits: int = 4) -> str:
    """A score or a gain as the report writes it: 4 decimals, or 3 significant digits for small magnitudes."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    if abs(value) < 0.01 or abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def histogram(
    series: Sequence[tuple[str, str, Sequence[float]]],
    bins: int = 24,
    log: bool = False,
    marks: Sequence[tuple[float, str]] = (),
) -> dict | None:
    """Side-by-side bars of each ``(css class, label, values)`` series over shared bins (``log``: bins of log10 of
    the values, which must be positive), with vertical ``marks`` ``(value, label)`` such as the noise margin; None
    when there are no values."""
    pool = [v for _, _, values in series for v in values]
    if not pool:
        return None
    shift = math.log10 if log else float
    points = [shift(v) for v in pool] + [shift(v) for v, _ in marks if not log or v > 0]
    lo, hi = min(points), max(points)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    counts = []
    for _, _, values in series:
        row = [0] * bins
        for v in values:
            row[min(int((shift(v) - lo) / (hi - lo) * bins), bins - 1)] += 1
        counts.append(row)
    top = max(max(row) for row in counts) or 1
    slot = width / bins
    bar = slot / len(series)

    def x_of(point: float) -> float:
        return round(LEFT + (point - lo) / (hi - lo) * width, 1)

    bars = []
    for s, ((cls, label, _), row) in enumerate(zip(series, counts, strict=True)):
        for b, count in enumerate(row):
            if not count:
                continue
            a, z = lo + (hi - lo) * b / bins, lo + (hi - lo) * (b + 1) / bins
            h = count / top * height
            span = f"{number(10**a if log else a)} to {number(10**z if log else z)}"
            bars.append(
                {
                    "cls": cls,
                    "x": round(LEFT + b * slot + s * bar, 1),
                    "y": round(TOP + height - h, 1),
                    "w": round(max(bar - 1, 1), 1),
                    "h": round(h, 1),
                    "title": f"{label}: {count} in {span}",
                }
            )
    xticks = [{"x": x_of(t), "label": number(10**t if log else t)} for t in _ticks(lo, hi)]
    yticks = [{"y": round(TOP + height - t / top * height, 1), "label": f"{t:g}"} for t in _ticks(0, top, 3)]
    lines = [{"x": x_of(shift(v)), "label": label} for v, label in marks if not log or v > 0]
    legend = [{"cls": cls, "label": f"{label} ({len(values)})"} for cls, label, values in series]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "base": TOP + height,
        "right": WIDTH - RIGHT,
        "bars": bars,
        "xticks": xticks,
        "yticks": yticks,
        "marks": lines,
        "legend": legend,
        "log": log,
    }


def hbars(items: Sequence[tuple[str, float]], unit: str = "") -> list[dict]:
    """Horizontal bars of ``(label, value)`` pairs, their lengths as percentages of the largest value; ``text`` is
    the value as shown (a count, or seconds to a tenth with ``unit="s"``)."""
    top = max((v for _, v in items), default=0) or 1
    return [
        {
            "label": label,
            "pct": round(100 * value / top, 1),
            "text": f"{value:,.1f} s" if unit == "s" else f"{value:,}",
        }
        for label, value in items
    ]


def sparkline(path: Sequence[dict], width: int = 220, height: int = 44) -> dict | None:
    """A row's score path (``{"score", "accepted"}`` points, ``z0`` first) as polyline points and dots; the lower a
    point, the lower (better) its score. None for a path of fewer than two points."""
    scores = [p["score"] for p in path]
    if len(scores) < 2:
        return None
    lo, hi = min(scores), max(scores)
    span = hi - lo or 1.0
    pad = 6
    xs = [pad + i * (width - 2 * pad) / (len(scores) - 1) for i in range(len(scores))]
    ys = [pad + (hi - s) / span * (height - 2 * pad) for s in scores]  # the lowest score at the bottom
    dots = [
        {"x": round(x, 1), "y": round(y, 1), "accepted": p["accepted"], "title": f"{p['score']:.6f}"}
        for x, y, p in zip(xs, ys, path, strict=True)
    ]
    return {
        "width": width,
        "height": height,
        "points": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
    }
