"""What a benchmark is to the evaluation run: the one interface each benchmark module implements, so the run, the
report and the plots handle every benchmark alike and a new one is one new file plus its registration.

An *item* is a plain dict: ``id`` (unique in the run), ``benchmark``, ``task``, ``prompt`` (the user turn), ``lang``,
and whatever the benchmark's own scoring needs (LongBench-Write's required ``length``, a HelloBench ``checklists``,
WritingBench's ``criteria``). A benchmark's *scores* are its block of ``results.json``: ``generation`` counts,
``distinct_n``, ``reflection_profile`` (the run computes those for every benchmark), what :meth:`Benchmark.metrics`
adds, and, after the judge stage, ``judged`` (what :meth:`Benchmark.aggregate` returns).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from reer_hf.evaluation.judgement import DEFAULT_JUDGE_SAMPLING, Judgement, JudgeRequest, JudgeSampling

__all__ = [
    "Benchmark",
    "SamplingDefaults",
    "cell",
    "head",
    "mean",
    "request_meta",
    "system_user_turns",
    "user_turn",
]


@dataclass(frozen=True)
class SamplingDefaults:
    """How a benchmark's own code samples answers; each value yields to the run's ``eval_*`` option when that is set
    (``top_k`` None: off)."""

    temperature: float
    top_p: float
    top_k: int | None
    max_new_tokens: int


class Benchmark(ABC):
    """One benchmark: its items, how answers to them are sampled and judged, how judgements become scores, and which
    cells of the report's table it fills.

    Subclasses set the class attributes and implement the abstract methods; :meth:`metrics`, :meth:`details` and
    :meth:`markdown` have empty defaults for a benchmark without deterministic metrics or a report section.
    """

    #: The name in ``--benchmarks``, in ``results.json`` and in item ids.
    name: ClassVar[str]
    #: The generation settings of the benchmark's own code.
    sampling: ClassVar[SamplingDefaults]
    #: The judge's sampling in the benchmark's official script (the default whatever the prompt's source).
    judge_sampling: ClassVar[JudgeSampling] = DEFAULT_JUDGE_SAMPLING
    #: Where the official judge prompt lives (``reer_hf.core.official`` source names); empty: none.
    official_sources: ClassVar[tuple[str, ...]] = ()
    #: Options of ``EvaluationScriptArguments`` that choose what :meth:`cells` shows (kept in ``scores["options"]``).
    report_options: ClassVar[tuple[str, ...]] = ()
    #: Options of ``EvaluationScriptArguments`` that :meth:`load_items` takes as keyword arguments.
    item_options: ClassVar[tuple[str, ...]] = ()
    #: The report-table cells :meth:`cells` fills, in order: the paper's column codes
    #: (:data:`reer_hf.core.paper.COLUMN_NAMES`) or columns of its own, shown after the paper's.
    columns: ClassVar[tuple[str, ...]]
    #: Those of :attr:`columns` computed without the judge: starred as partial only when a generation failed.
    judge_free_columns: ClassVar[tuple[str, ...]] = ()

    @property
    def template(self) -> str:
        """The default judge prompt (a name in ``reer_hf/prompts`` or a file path); ``judge_templates`` overrides."""
        return f"judge_{self.name}"

    @abstractmethod
    def load_items(
        self, root: str | os.PathLike | None, *, max_items: int | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        """The items in file order, from the data folder ``root`` (:func:`~.data.benchmark_dir`); ``max_items``
        keeps the first N of each file; ``options`` are the :attr:`item_options`."""

    @abstractmethod
    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        """The judge calls that score ``answer`` (thinking already stripped) to ``item``, each with its parser."""

    def official_judge_requests(self, item: dict[str, Any], answer: str) -> list[JudgeRequest]:
        """The judge calls the benchmark's official script makes: its own prompt (fetched through
        :mod:`reer_hf.core.official`), filled and laid out in messages as that script does, with its reply parser."""
        raise ValueError(f"{self.name} has no official judge protocol; judge it with the builtin prompt")

    def protocol(self, source: str) -> dict[str, Any]:
        """What the judge meta records of this benchmark's official protocol beyond the pinned sources."""
        return {}

    def metrics(self, items: Sequence[dict[str, Any]], answers: Sequence[str]) -> dict[str, Any]:
        """Deterministic scores of the answers (no judge), added to the benchmark's scores."""
        return {}

    @abstractmethod
    def aggregate(
        self,
        judgements: Sequence[Judgement],
        items: Sequence[dict[str, Any]],
        scores: dict[str, Any],
        root: str | os.PathLike | None,
    ) -> dict[str, Any]:
        """The judged scores (``scores["judged"]``) from one judgement per request of the ``items`` whose generation
        succeeded; failed judgements are left out of every mean and counted."""

    @abstractmethod
    def judge_failures(self, judged: dict[str, Any]) -> int:
        """How many units (items, queries) of the judged scores lost a judgement."""

    @abstractmethod
    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        """This run's values of :attr:`columns` (None where not computed)."""

    def table_note(self, scores: dict[str, Any]) -> str | None:
        """What this benchmark's table cells mean, for the report's header (None: the paper's meaning)."""
        return None

    def details(self, scores: dict[str, Any]) -> dict[str, Any] | None:
        """The figures behind the table cells, for ``report.json`` (None: none to show)."""
        return None

    def markdown(self, details: dict[str, Any]) -> list[str]:
        """The benchmark's section of ``report.md`` (lines), from :meth:`details`."""
        return []


def head(rows: list, max_items: int | None) -> list:
    """The first ``max_items`` rows (all when None)."""
    return rows if max_items is None else rows[:max_items]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def user_turn(text: str) -> list[dict[str, str]]:
    """A conversation of one user message: how every judge prompt is sent."""
    return [{"role": "user", "content": text}]


def system_user_turns(system: str, user: str) -> list[dict[str, str]]:
    """A system turn then a user turn: how HelloBench's and WritingBench's official scripts send their prompts."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def request_meta(item: dict[str, Any]) -> dict[str, Any]:
    """The meta every judge request carries: which item it judges."""
    return {"benchmark": item["benchmark"], "task": item["task"], "item_id": item["id"]}


def cell(value: float | None, partial: bool = False) -> str:
    """A number as report.md shows it: two decimals, starred when partial, a dash when missing."""
    return "—" if value is None else f"{value:.2f}" + ("*" if partial else "")
