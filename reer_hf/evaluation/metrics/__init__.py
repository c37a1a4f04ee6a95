"""The deterministic metrics, each a local ``evaluate`` module (``metrics/<name>/<name>.py``) that loads offline.

The evaluation run computes distinct-n, the reflection profile and LongBench-Write's length score through these
modules (:func:`compute`); each module wraps the one implementation of its figure (``reer_hf.evaluation.text``,
``reer_hf.evaluation.benchmarks.longbench_write``). Alone:

from reer_hf.evaluation import metrics

length = metrics.load("longbench_write_length")  # == evaluate.load(metrics.path_of("longbench_write_length"))
length.compute(predictions=answers, references=required_lengths)["length_score"]
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "compute", "load", "path_of"]

_HERE = Path(__file__).resolve().parent

#: The metrics shipped here.
METRICS = ("distinct_n", "longbench_write_length", "reflection_profile")


def path_of(name: str) -> str:
    """The folder of metric ``name``, for ``evaluate.load``."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; expected one of {list(METRICS)}")
    return str(_HERE / name)


def load(name: str, **kwargs):
    """``evaluate.load(path_of(name), **kwargs)``: the metric, loaded from this package (no network)."""
    import evaluate

    return evaluate.load(path_of(name), **kwargs)


@cache
def _in_memory(name: str):
    return load(name, keep_in_memory=True)


def compute(name: str, **inputs: Any) -> dict[str, Any]:
    """Metric ``name`` on ``inputs``, as the evaluation run computes it: loaded once per process (a load costs 2 to
    20 ms, the first ``import evaluate`` about 3 s) and kept in memory, so a run writes no metric cache files."""
    return _in_memory(name).compute(**inputs)
