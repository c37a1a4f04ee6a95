"""Every score of one benchmark, as ``results.json`` holds it: generation counts, the deterministic metrics every
benchmark gets (distinct-n of the answers, the reflection profile of the thinking), the benchmark's own metrics and,
after the judge stage, its judged scores. The deterministic metrics are computed through their ``evaluate`` modules
(:mod:`reer_hf.evaluation.metrics`)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reer_hf.evaluation import metrics
from reer_hf.evaluation.benchmarks.base import mean
from reer_hf.evaluation.benchmarks.registry import get_benchmark
from reer_hf.evaluation.generate import GENERATION_STATUSES
from reer_hf.evaluation.judgement import Judgement
from reer_hf.generation import TRANSPORT_KINDS

__all__ = ["score_benchmark"]


def score_benchmark(
    benchmark: str,
    items: Sequence[dict[str, Any]],
    generations: dict[str, dict[str, Any]],
    judgements: Sequence[Judgement] | None,
    root: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every score of one benchmark: generation counts, deterministic metrics (distinct-n, reflection profile of the
    thinking, the benchmark's own such as LongBench-Write's S_l) and, with ``judgements``, the judged scores (``root``:
    the data folder, for what aggregation reads there). Items whose generation failed are left out of every score and
    counted (``generation.failed_ids``; ``transport_failed`` those that failed in transport, redone by the next run).
    ``options`` (the benchmark's ``report_options``) are kept in ``options`` for its table cells."""
    bench = get_benchmark(benchmark)
    usable = [it for it in items if generations[it["id"]]["status"] != "error"]
    statuses = Counter(generations[it["id"]]["status"] for it in items)
    answers = [generations[it["id"]]["answer"] for it in usable]
    thinkings = [(generations[it["id"]]["thinking"], it["lang"]) for it in usable]
    with_thinking = [(t, lang) for t, lang in thinkings if t]
    out: dict[str, Any] = {
        "generation": {
            "n": len(items),
            "statuses": {s: statuses[s] for s in GENERATION_STATUSES if statuses[s]},
            "failed_ids": [it["id"] for it in items if generations[it["id"]]["status"] == "error"],
            "transport_failed": sum(
                generations[it["id"]]["status"] == "error"
                and generations[it["id"]].get("error_kind") in TRANSPORT_KINDS
                for it in items
            ),
            "mean_new_tokens": mean([generations[it["id"]]["n_tokens"] for it in usable]),
            "share_with_thinking": len(with_thinking) / len(usable) if usable else None,
        }
    }
    if answers:
        out["distinct_n"] = metrics.compute("distinct_n", predictions=answers, max_n=2)
    if with_thinking:
        # each thinking in its own language (a model may think in English about a Chinese prompt)
        profile = metrics.compute("reflection_profile", predictions=[t for t, _ in with_thinking], langs="auto")
        out["reflection_profile"] = {k: profile[k] for k in ("per_1k", "en", "zh")}
    if options:
        out["options"] = dict(options)
    out.update(bench.metrics(usable, answers))
    if judgements is not None:
        out["judged"] = bench.aggregate(judgements, usable, out, root)
    return out
