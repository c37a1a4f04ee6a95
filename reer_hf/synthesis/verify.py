"""Do a synthesis run's reported improvements hold in fp32? Re-score each improved row's ``z0`` and ``z_star`` with
an fp32 scorer, one plain forward per row (no batching, no shared prefixes), and compare.

A search that ran its scorer in bf16 compares scores rounded at about the size of a typical accepted gain; this check
tells whether the trajectories it kept are better for real. It re-scores with the scorer options the run saved in its
output folder (``run_config.json``), so a run with the official prompts, another system turn, reflection off or the
official one-segment rule is checked against its own objective, not the default one.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import STATUS_OK, Scorer
from reer_hf.synthesis.report import RUN_CONFIG_FILE

__all__ = ["plain_fp32_config", "run_scorer_config", "verify_improvements"]


def plain_fp32_config(config: ScorerConfig) -> ScorerConfig:
    """``config`` in fp32 with every shortcut off: each row one forward pass of its own, with transformers (a vLLM
    scorer's run too) and the default attention kernel (flash kernels have no fp32)."""
    return dataclasses.replace(
        config,
        scorer_backend="transformers",
        scorer_dtype="fp32",
        scorer_attn_implementation=None,
        scorer_prefix_reuse=False,
        scorer_carry_prefixes=0,
        scorer_pad_batches=False,
        scorer_compile=False,
    )


def run_scorer_config(output_dir: str | Path) -> ScorerConfig:
    """The scorer options a ``recipes/synthesize.py`` run ran with, read from its ``run_config.json``."""
    path = Path(output_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the fp32 check re-scores with the scorer options a synthesis run saves there, and "
            f"{output_dir} holds none (not a recipes/synthesize.py output folder, or one from a version that saved "
            "none: run it again to verify it)"
        )
    saved = json.loads(path.read_text())
    names = [f.name for f in dataclasses.fields(ScorerConfig)]
    missing = [name for name in names if name not in saved]
    if missing:
        raise ValueError(f"{path} lacks the scorer options {missing}: it was not written with this scorer's options")
    return ScorerConfig(**{name: saved[name] for name in names})


def verify_improvements(rows: list[dict], scorer: Scorer) -> dict:
    """For each row whose ``final_score`` is below its ``initial_score``, the fp32 scores of ``z0`` and ``z_star``
    (scored one row at a time) and whether the improvement holds; the totals."""
    improved = [
        r
        for r in rows
        if r.get("initial_score") is not None and r.get("final_score") is not None
        if r["final_score"] < r["initial_score"]
    ]
    per_row = []
    for row in improved:
        before = scorer.score([row["query"]], [row["z0"]], [row["answer"]])[0]
        after = scorer.score([row["query"]], [row["z_star"]], [row["answer"]])[0]
        ok = before.status == STATUS_OK and after.status == STATUS_OK
        per_row.append(
            {
                "reported_gain": row["initial_score"] - row["final_score"],
                "fp32_gain": before.score - after.score if ok else None,
                "holds": ok and after.score < before.score,
                "reported_vs_fp32": max(
                    abs(row["initial_score"] - before.score), abs(row["final_score"] - after.score)
                )
                if ok
                else None,
            }
        )
    drift = [r["reported_vs_fp32"] for r in per_row if r["reported_vs_fp32"] is not None]
    return {
        "rows": len(rows),
        "improved_reported": len(improved),
        "improved_in_fp32": sum(r["holds"] for r in per_row),
        "reversed": sum(not r["holds"] for r in per_row),
        "median_reported_gain": statistics.median([r["reported_gain"] for r in per_row]) if per_row else None,
        "max_score_drift_from_fp32": max(drift) if drift else None,
        "per_row": per_row,
    }
