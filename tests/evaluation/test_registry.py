"""The benchmark registry: every registered benchmark has the parts the run and the report use, and a benchmark of a
test's own, registered here, runs through the stages (generate, judge against the loopback server, report) with no
other change anywhere."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from openai_server import OpenAIServer
from testing_utils import write_jsonl

from reer_hf.core.options import choices
from reer_hf.core.paper import COLUMN_NAMES
from reer_hf.core.prompts import template_source
from reer_hf.evaluation.benchmarks import (
    BENCHMARKS,
    Benchmark,
    SamplingDefaults,
    get_benchmark,
    register,
    unregister,
)
from reer_hf.evaluation.benchmarks.base import mean, request_meta, user_turn
from reer_hf.evaluation.benchmarks.longbench_write import LONGBENCH_SUBSETS
from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, extract_json
from reer_hf.evaluation.run import evaluate
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import FINISH_STOP, Completion, Generator, Request, Sampling
from reer_hf.generation.config import GeneratorConfig

OPTIONS = {f.name for f in dataclasses.fields(EvaluationScriptArguments)}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_every_registered_benchmark_has_the_required_parts(name):
    bench = BENCHMARKS[name]
    assert isinstance(bench, Benchmark) and bench.name == name and get_benchmark(name) is bench
    assert not type(bench).__abstractmethods__
    assert isinstance(bench.sampling, SamplingDefaults) and bench.sampling.max_new_tokens > 0
    assert bench.sampling.temperature >= 0 and 0 < bench.sampling.top_p <= 1
    assert set(bench.item_options) <= OPTIONS, "item options must be options of recipes/eval.py"
    assert bench.columns and set(bench.judge_free_columns) <= set(bench.columns)
    assert template_source(bench.template)  # its judge prompt ships with the package
    assert bench.cells({}) == dict.fromkeys(bench.columns)  # nothing computed: every cell empty, none missing
    assert bench.judge_failures({}) == 0


def test_the_registered_benchmarks_fill_the_paper_table():
    filled = [c for bench in BENCHMARKS.values() for c in bench.columns if c in COLUMN_NAMES]
    assert sorted(filled) == sorted(COLUMN_NAMES) and len(filled) == len(set(filled))


def test_option_choices_match_the_benchmarks():
    assert choices(EvaluationScriptArguments, "longbench_subset") == tuple(LONGBENCH_SUBSETS)
    assert choices(EvaluationScriptArguments, "writingbench_subset") == ("style", "format", "length", None)


def test_register_refuses_clashes_and_incomplete_benchmarks():
    with pytest.raises(ValueError, match="already registered"):
        register(type(BENCHMARKS["hellobench"])())
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'"):
        get_benchmark("mmlu")
    incomplete = SimpleNamespace(sampling=BENCHMARKS["hellobench"].sampling, columns=("X",))
    with pytest.raises(TypeError, match="name"):
        register(incomplete)


# ---- a benchmark of the test's own: one class, registered, nothing else changed ----


class Toy(Benchmark):
    """Rhymes: each item asks for a word, the judge scores the answer 1-10; the table gets a ``TOY`` column."""

    name = "toy"
    sampling = SamplingDefaults(temperature=0.3, top_p=0.9, top_k=None, max_new_tokens=7)
    columns = ("TOY",)

    def __init__(self, template: Path):
        self._template = str(template)

    @property
    def template(self) -> str:
        return self._template

    def load_items(self, root: str | os.PathLike | None, *, max_items: int | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in (Path(root) / "toy.jsonl").read_text().splitlines()]
        return [
            {"id": f"toy/{i}", "task": "rhyme", "prompt": row["prompt"], "lang": "en"}
            for i, row in enumerate(rows[:max_items])
        ]

    def judge_requests(self, item: dict[str, Any], answer: str, template: str) -> list[JudgeRequest]:
        text = Path(template).read_text().replace("{answer}", answer)
        return [
            JudgeRequest(item["id"], user_turn(text), request_meta(item), parse=lambda t: extract_json(t)["score"])
        ]

    def aggregate(self, judgements: list[Judgement], items, scores, root) -> dict[str, Any]:
        return {"score": mean([j.value for j in judgements if j.ok]), "n_failed": sum(not j.ok for j in judgements)}

    def judge_failures(self, judged: dict[str, Any]) -> int:
        return judged.get("n_failed", 0)

    def cells(self, scores: dict[str, Any]) -> dict[str, float | None]:
        return {"TOY": (scores.get("judged") or {}).get("score")}


class Echo(Generator):
    """Answers "Word: <prompt>"; keeps the sampling it was asked with."""

    def __init__(self):
        super().__init__()
        self.samplings: list[Sampling] = []

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        self.samplings.append(sampling)
        return [[Completion(f"Word: {r.messages[-1]['content']}", 2, FINISH_STOP)] for r in requests]


@pytest.fixture
def toy(tmp_path):
    template = tmp_path / "judge_toy.md"
    template.write_text("Score this rhyme from 1 to 10 as JSON: {answer}")
    benchmark = register(Toy(template))
    yield benchmark
    unregister("toy")
    assert "toy" not in BENCHMARKS


def test_a_registered_benchmark_runs_through_every_stage(toy, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "toy.jsonl", [{"prompt": "cat"}, {"prompt": "dog"}, {"prompt": "sun"}])
    scores = {"cat": 4, "dog": 8}  # "sun" is refused: failed, counted, never scored

    def judge(kind: str, payload: dict):
        word = payload["messages"][-1]["content"].rsplit(" ", 1)[-1]
        if word not in scores:
            return []  # no choices: no reply, asked again, then a transport failure (counted, never stored)
        return [json.dumps({"score": scores[word]})]

    args = EvaluationScriptArguments(
        benchmarks=["toy"],
        benchmark_data=str(data),
        output_dir=str(tmp_path / "run"),
        run_name="toy-run",
        reasoning_profile=False,
    )
    generator = Echo()
    with OpenAIServer(judge) as server:
        judge_cfg = JudgeConfig(
            judge_base_url=server.base_url, judge_api_key_env=None, judge_backoff=0.0, judge_max_parse_retries=1
        )
        report = evaluate(args, GeneratorConfig(), judge_cfg, generator_factory=lambda cfg: generator)
    (sampling,) = generator.samplings
    assert (sampling.temperature, sampling.top_p, sampling.max_new_tokens) == (0.3, 0.9, 7)  # the toy's own
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    toy_scores = results["benchmarks"]["toy"]
    assert toy_scores["generation"]["statuses"] == {"ok": 3}
    assert toy_scores["judged"] == {"score": pytest.approx(6.0), "n_failed": 1}
    assert results["judge_stats"]["failed_body"] == 1 and results["judge_stats"]["transport_failed"] == 1
    assert report["table"]["TOY"] == pytest.approx(6.0) and report["partial"] == ["TOY"]
    assert report["failures"]["toy"] == {"generation": 0, "judge": 1}
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| LB S_l | TOY |" in md and "| **toy-run** (ours) |" in md and "| 6.00* |" in md
    meta = json.loads((tmp_path / "run" / "judgements" / "meta.json").read_text())
    assert meta["protocol"]["toy"]["prompt_source"] == "builtin" and "builtin" in meta["protocol"]["toy"]["prompt"]
    stored = JsonlLog(tmp_path / "run" / "judgements" / "toy.jsonl").read()
    assert len(stored) == 2 and all(r["ok"] for r in stored)  # the two judgements; the transport failure: unstored
