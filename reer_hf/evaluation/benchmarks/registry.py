"""The benchmark registry: name -> :class:`~reer_hf.evaluation.benchmarks.base.Benchmark`, which the options, the
run and the report look benchmarks up in instead of naming them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from reer_hf.evaluation.benchmarks.base import Benchmark
from reer_hf.evaluation.judgement import JudgeRequest

__all__ = ["BENCHMARKS", "get_benchmark", "judge_requests", "load_items", "register", "unregister"]

_REGISTRY: dict[str, Benchmark] = {}
#: The registered benchmarks by name, in registration order (a live, read-only view: its keys are the names).
BENCHMARKS: Mapping[str, Benchmark] = MappingProxyType(_REGISTRY)

_REQUIRED = ("name", "sampling", "columns")


def register(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` under its ``name``; a name taken by another benchmark is refused."""
    missing = [attr for attr in _REQUIRED if not hasattr(benchmark, attr)]
    if missing:
        raise TypeError(f"{type(benchmark).__name__} lacks {missing}: set them as class attributes")
    if benchmark.name in _REGISTRY and _REGISTRY[benchmark.name] is not benchmark:
        raise ValueError(f"a benchmark named {benchmark.name!r} is already registered")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def unregister(name: str) -> None:
    """Remove benchmark ``name`` (a plug-in or a test that registered one of its own)."""
    _REGISTRY.pop(name, None)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown benchmark {name!r}; registered: {list(_REGISTRY)}")
    return _REGISTRY[name]


def load_items(
    name: str, root: str | os.PathLike | None = None, *, max_items: int | None = None, **options: Any
) -> list[dict[str, Any]]:
    """The items of benchmark ``name`` in file order, each tagged with the benchmark; ``options`` are the
    benchmark's ``item_options`` (e.g. ``longbench_subset``); ``max_items`` keeps the first N of each file."""
    items = get_benchmark(name).load_items(root, max_items=max_items, **options)
    for item in items:
        item["benchmark"] = name
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: item ids repeat; the data has duplicate ids")
    return items


def judge_requests(
    item: dict[str, Any],
    answer: str,
    templates: dict[str, str] | None = None,
    sources: dict[str, str] | None = None,
) -> list[JudgeRequest]:
    """The judge calls that score ``answer`` (thinking already stripped) to ``item``: with the official protocol
    when ``sources`` maps its benchmark to ``official``, else with its builtin prompt or the template file
    ``templates`` maps its benchmark to."""
    benchmark = get_benchmark(item["benchmark"])
    if (sources or {}).get(benchmark.name, "builtin") == "official":
        return benchmark.official_judge_requests(item, answer)
    return benchmark.judge_requests(item, answer, (templates or {}).get(benchmark.name) or benchmark.template)
