"""The benchmarks of the paper's table, one module each behind a registry.

:mod:`~.base` defines what a benchmark provides, :mod:`~.registry` finds it by name, :mod:`~.data` locates the files.
A new benchmark is one module with a :class:`~.base.Benchmark` subclass, registered below.
"""

from reer_hf.evaluation.benchmarks.base import Benchmark, SamplingDefaults
from reer_hf.evaluation.benchmarks.hellobench import HelloBench
from reer_hf.evaluation.benchmarks.longbench_write import LongBenchWrite
from reer_hf.evaluation.benchmarks.registry import (
    BENCHMARKS,
    get_benchmark,
    judge_requests,
    load_items,
    register,
    unregister,
)
from reer_hf.evaluation.benchmarks.writingbench import WritingBench

register(LongBenchWrite())
register(HelloBench())
register(WritingBench())

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "SamplingDefaults",
    "get_benchmark",
    "judge_requests",
    "load_items",
    "register",
    "unregister",
]
