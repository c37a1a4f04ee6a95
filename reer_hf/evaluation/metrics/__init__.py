"""The deterministic metrics, each a local ``evaluate`` module (``metrics/<name>/<name>.py``) that loads offline.

from reer_hf.evaluation import metrics

length = metrics.load("longbench_write_length")  # == evaluate.load(metrics.path_of("longbench_write_length"))
length.compute(predictions=answers, references=required_lengths)["length_score"]
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METRICS", "load", "path_of"]

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
