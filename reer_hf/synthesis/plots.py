"""The synthesis run's plot: what the search did to each row's score (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path


def plot_scores(ds, path: Path) -> Path:
    """Initial vs final REER score per searched row (points below the diagonal improved) and acceptance per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (s0, s1, st)
        for s0, s1, st in zip(ds["initial_score"], ds["final_score"], ds["status"], strict=True)
        if s0 is not None and s1 is not None
    ]
    attempts: dict[int, int] = {}
    accepted: dict[int, int] = {}
    for trace in ds["trace"]:
        for step in trace:
            attempts[step["segment"]] = attempts.get(step["segment"], 0) + 1
            accepted[step["segment"]] = accepted.get(step["segment"], 0) + int(step["accepted"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2))
    for status, colour in (("ok", "tab:blue"), ("filtered", "tab:orange")):
        xs = [a for a, _, s in pairs if s == status]
        ys = [b for _, b, s in pairs if s == status]
        if xs:
            ax.scatter(xs, ys, s=18, alpha=0.7, color=colour, label=f"{status} ({len(xs)})")
    if pairs:
        lo = min(min(a, b) for a, b, _ in pairs)
        hi = max(max(a, b) for a, b, _ in pairs)
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="no change")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("initial score (z0)")
    ax.set_ylabel("final score (z*)")
    ax.set_title("REER score per row (lower is better)")
    steps = sorted(attempts)
    bx.bar([s + 1 for s in steps], [accepted[s] / attempts[s] for s in steps], color="tab:green")
    bx.set_xticks([s + 1 for s in steps])
    bx.set_xlabel("segment (search step)")
    bx.set_ylabel("share of rows that accepted a rewrite")
    bx.set_ylim(0, 1)
    bx.set_title("Acceptance per step")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
