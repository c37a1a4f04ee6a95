"""The evaluation run end to end: items from benchmark files, generation (scripted and with the tiny model), the judge
behind a real OpenAI-compatible server on loopback (valid, malformed and refused replies), the scores against
hand-computed numbers, the report and plots, the comparison of two runs, and resuming after an interruption."""

from __future__ import annotations

import json
import re
import statistics
import threading
from collections import Counter
from pathlib import Path

import pytest
from openai_server import OpenAIServer, ServerReply
from testing_utils import build_tiny_model, write_jsonl

from reer_hf.core.text import split_thinking
from reer_hf.evaluation.benchmarks import load_items
from reer_hf.evaluation.benchmarks.longbench_write import length_score, produced_length
from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.generate import GENERATION_STATUSES, generate_answers, sampling_for
from reer_hf.evaluation.reasoning import REASONING_DIMENSIONS
from reer_hf.evaluation.results import score_benchmark
from reer_hf.evaluation.run import evaluate
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import (
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    Generator,
    Request,
    Sampling,
    TransformersGenerator,
)
from reer_hf.generation.config import GeneratorConfig


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ---- a small benchmark folder, laid out as the real data ----

LB_ROWS = [
    {"prompt": "Write ten words about rain.", "type": "t", "length": 10},
    {"prompt": "写十个字的秋天。", "type": "t", "length": 10},
    {"prompt": "Write five words about snow.", "type": "t", "length": 5},
]
HB_ROWS = [
    {"id": "open_ended_qa_000", "category": "Science", "instruction": "Explain tides.", "checklists": ["a", "b", "c"]},
    {"id": "open_ended_qa_001", "category": "Science", "instruction": "Explain stars.", "checklists": ["d", "e", "f"]},
]
WB_CRITERIA = [
    {"name": f"c{i}", "criteria_description": f"criterion {i}", "1-2": "poor", "9-10": "excellent"}
    for i in range(1, 6)
]
WB_ROWS = [
    {"index": 1, "domain1": "Academic & Engineering", "domain2": "Paper", "lang": "en", "query": "Write an abstract."},
    {"index": 2, "domain1": "Literature & Arts", "domain2": "Poem", "lang": "en", "query": "Write a poem."},
]
THINK = "<think>\nHmm, wait. Let me think about the reader first.\n</think>\n\n"
ANSWERS = {
    "Write ten words about rain.": THINK + " ".join(["rain"] * 10),  # 10 of 10 words: S_l 100
    "写十个字的秋天。": THINK + "秋" * 20,  # 20 of 10 characters: S_l 100 * (1 - 1/3)
    "Write five words about snow.": THINK + "",  # empty answer: S_l 0
}


def write_benchmarks(root: Path) -> Path:
    for sub in ("hellobench", "writingbench"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "longbench_write.jsonl", LB_ROWS)
    write_jsonl(root / "hellobench" / "open_ended_qa.jsonl", HB_ROWS)
    (root / "hellobench" / "checklist_weights.json").write_text(json.dumps({"weights": {"Science": [50, 30, 20]}}))
    write_jsonl(root / "writingbench" / "benchmark_all.jsonl", [{**r, "checklist": WB_CRITERIA} for r in WB_ROWS])
    return root


class ScriptedGenerator(Generator):
    """Answers each prompt with a fixed text (test infrastructure, so that scores can be computed by hand)."""

    def __init__(self, answers: dict[str, str], fail_after_calls: int | None = None):
        super().__init__()
        self.answers = answers
        self.fail_after_calls = fail_after_calls
        self.prompts: list[str] = []

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        if self.fail_after_calls is not None and self.stats["calls"] >= self.fail_after_calls:
            raise RuntimeError("interrupted")
        out = []
        for r in requests:
            prompt = r.messages[-1]["content"]
            self.prompts.append(prompt)
            text = self.answers.get(prompt, THINK + "An answer of six plain words.")
            out.append([Completion(text, len(text.split()), FINISH_STOP)])
        return out


class JudgeScript:
    """Judge replies by the kind of prompt; LongBench item 3 first gets a malformed reply, WritingBench query 2's
    criterion c3 is always refused (HTTP 400)."""

    def __init__(self):
        self.seen: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, kind: str, payload: dict):
        text = payload["messages"][-1]["content"]
        with self.lock:
            self.seen[text] += 1
            count = self.seen[text]
        if "problem_deconstruction" in text:
            rating = 8 if "Write ten words about rain." in text else 6
            return [json.dumps({d: rating for d in REASONING_DIMENSIONS} | {"reason": "ok"})]
        if "Breadth and Depth" in text:
            if "Write five words about snow." in text and count == 1:
                return ["I would rate it highly, but here is no JSON."]
            rating = {"Write ten words about rain.": 4, "写十个字的秋天。": 5}.get(_between(text, "User Request"), 3)
            dims = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"]
            return [
                "Analysis first.\n```json\n" + json.dumps({"Analysis": "fine"} | dict.fromkeys(dims, rating)) + "\n```"
            ]
        if "checklist_id" in text:
            grades = [1, 0.5, 0] if "Explain tides." in text else [0.75, 0.75, 0.75]
            return [
                json.dumps([{"checklist_id": i, "reason": "r", "evaluation_score": g} for i, g in enumerate(grades)])
            ]
        name = re.search(r"- Name: (c\d)", text).group(1)
        if "Write a poem." in text and name == "c3":
            return ServerReply(400, body={"error": "refused"})
        return [json.dumps({"score": 5 + int(name[1]), "reason": "r"})]  # c1..c5 -> 6..10


def _between(text: str, tag: str) -> str:
    return text.split(f"<{tag}>")[1].split(f"</{tag}>")[0].strip()


def make_args(tmp_path: Path, root: Path, **kwargs) -> EvaluationScriptArguments:
    defaults = dict(
        benchmarks=["longbench_write", "hellobench", "writingbench"],
        benchmark_data=str(root),
        hellobench_tasks=["open_ended_qa"],
        output_dir=str(tmp_path / "run"),
        run_name="scripted",
        reasoning_max_items=None,
        save_every=2,
    )
    return EvaluationScriptArguments(**(defaults | kwargs))


def judge_config(server: OpenAIServer) -> JudgeConfig:
    return JudgeConfig(
        judge_base_url=server.base_url, judge_api_key_env=None, judge_model="judge-test", judge_backoff=0.01
    )


# ---- pure pieces ----


def test_split_thinking():
    assert split_thinking("<think>\nplan\n</think>\n\n<answer>\ntext\n</answer>") == ("plan", "text", True)
    assert split_thinking("plan</think>text") == ("plan", "text", True)  # the template pre-filled <think>
    assert split_thinking("  <think>never closed") == ("never closed", "", False)
    assert split_thinking("just an answer") == (None, "just an answer", True)


def test_sampling_follows_each_benchmark_unless_overridden(tmp_path):
    args = EvaluationScriptArguments(output_dir=str(tmp_path))
    wb, lb = sampling_for("writingbench", args), sampling_for("longbench_write", args)
    assert (wb.temperature, wb.top_p, wb.top_k, wb.max_new_tokens) == (0.7, 0.8, 20, 16384)
    assert (lb.temperature, lb.top_k, lb.max_new_tokens) == (0.5, None, 32768)
    args = EvaluationScriptArguments(output_dir=str(tmp_path), eval_temperature=0.0, eval_max_new_tokens=64)
    assert (sampling_for("hellobench", args).temperature, sampling_for("hellobench", args).max_new_tokens) == (0.0, 64)


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="benchmarks"):
        EvaluationScriptArguments(benchmarks=["mmlu"])
    with pytest.raises(ValueError, match="stages"):
        EvaluationScriptArguments(stages=["train"])
    with pytest.raises(ValueError, match="judge_templates"):
        EvaluationScriptArguments(judge_templates={"mmlu": "x.md"})
    with pytest.raises(ValueError, match="longbench_subset must be one of all, en, ruler"):
        EvaluationScriptArguments(longbench_subset="zh")  # a YAML value reaches the dataclass unchecked
    with pytest.raises(ValueError, match="writingbench_subset"):
        EvaluationScriptArguments(writingbench_subset="tone")


# ---- the run end to end ----


@pytest.mark.slow
def test_evaluate_end_to_end_against_hand_computed_scores(tmp_path):
    root = write_benchmarks(tmp_path / "data")
    script = JudgeScript()
    generator = ScriptedGenerator(ANSWERS)
    with OpenAIServer(script) as server:
        report = evaluate(
            make_args(tmp_path, root), GeneratorConfig(), judge_config(server), generator_factory=lambda cfg: generator
        )
        first_calls = len(server.requests)
    out = tmp_path / "run"
    results = json.loads((out / "results.json").read_text())
    lb = results["benchmarks"]["longbench_write"]

    # LongBench-Write: S_l (hand-computed), S_q over six dimensions after a malformed reply was asked again, S
    s_l = (100.0 + 100.0 * (1 - 1 / 3) + 0.0) / 3
    assert lb["length_score"] == pytest.approx(s_l)
    assert lb["generation"]["statuses"] == {"ok": 2, "empty_answer": 1}
    assert lb["judged"]["quality_score"] == pytest.approx(((4 + 5 + 3) / 3 - 1) * 25)
    assert lb["judged"]["score"] == pytest.approx((s_l + 75.0) / 2)
    assert lb["judged"]["n_failed"] == 0
    assert results["judge_stats"]["parse_retries"] == 1

    # HelloBench: weights 50/30/20 -> items 65 and 75, task 70, rescaled -20
    hb = results["benchmarks"]["hellobench"]["judged"]["open_ended_qa"]
    assert (hb["score"], hb["rescaled"], hb["n_ok"]) == (pytest.approx(70.0), pytest.approx(-20.0), 2)

    # WritingBench: query 1 (domain A) = mean(6..10) = 8; query 2 (domain D) lost a criterion: no score, counted
    wb = results["benchmarks"]["writingbench"]["judged"]
    assert wb["domains"]["A"]["score_x10"] == pytest.approx(80.0)
    assert wb["domains"]["D"] == {"score": None, "score_x10": None, "n": 1, "n_ok": 0, "n_failed": 1}
    assert wb["queries"]["2"]["failed_criteria"] == ["c3"]
    assert results["judge_stats"]["failed_http"] == 1

    # the reasoning profile: 7 items with thinking, one rated 8 and six rated 6
    rp_dims = results["reasoning_profile"]["dimensions"]
    expected = [8, 6, 6, 6, 6, 6, 6]
    assert results["reasoning_profile"]["n_ok"] == 7
    assert rp_dims["depth_of_analysis"]["mean"] == pytest.approx(statistics.mean(expected))
    assert rp_dims["depth_of_analysis"]["std"] == pytest.approx(statistics.pstdev(expected))

    # the reflection profile of the thinking, in the thinking's own language (English here, also for the Chinese
    # prompt): "Hmm", "wait." and "Let me think" in each 9-word thinking
    assert lb["reflection_profile"]["en"]["reflections"] == 3 * 3
    assert lb["reflection_profile"]["en"]["per_1k"] == pytest.approx(1000 * 9 / 27)

    # the report: the paper's table with our row, failures counted, plots written
    assert report["table"]["LB"] == pytest.approx((s_l + 75.0) / 2)
    assert report["table"]["HB-A"] == pytest.approx(70.0) and report["table"]["WB-A"] == pytest.approx(80.0)
    assert report["table"]["WB-D"] is None and report["failures"]["writingbench"]["judge"] == 1
    md = (out / "report.md").read_text()
    assert "| DeepWriter-8B | 91.28 |" in md and "judge-test" in md and "| **scripted** (ours) |" in md
    for name in ("reflection_profile.png", "writingbench_domains.png", "reasoning_profile_radar.png"):
        assert (out / name).stat().st_size > 10_000, name
    assert json.loads((out / "report.json").read_text())["table"] == report["table"]

    # resumed: nothing is generated again; only the refused judge call is asked again
    with OpenAIServer(JudgeScript()) as server:

        def no_generator(cfg):
            raise AssertionError("every item is already generated")

        again = evaluate(
            make_args(tmp_path, root), GeneratorConfig(), judge_config(server), generator_factory=no_generator
        )
        assert len(server.requests) == 1 and "Write a poem." in server.requests[0]["messages"][-1]["content"]
    assert again["table"] == report["table"]  # refused again, still counted
    assert first_calls == 3 + 1 + 2 + 10 + 7  # LB (+1 malformed), HB, WB criteria, reasoning
    assert set(again["partial"]) == {f"WB-{c}" for c in "A"}  # WB-D has no score at all; WB-A is starred
    assert "91.28 |" in (out / "report.md").read_text() and "80.00* |" in (out / "report.md").read_text()

    # stored failures kept as they are; the refused call failed in transport, was never stored, and is asked again
    with OpenAIServer(JudgeScript()) as server:
        evaluate(make_args(tmp_path, root, judge_retry_failed=False), GeneratorConfig(), judge_config(server))
        assert len(server.requests) == 1 and "Write a poem." in server.requests[0]["messages"][-1]["content"]

    # the report alone, from the stored generations and judgements, with no judge endpoint at all
    report_only = evaluate(make_args(tmp_path, root, stages=["report"]), GeneratorConfig(), JudgeConfig())
    assert report_only["table"] == report["table"] and report_only["judge"] == "judge-test"

    # a changed answer is judged anew (its hash changed); the others are not
    log = out / "generations" / "longbench_write.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    first = next(r for r in records if r["id"] == "longbench_write/all/0000")
    first.update(response=THINK + "rain " * 5, answer=("rain " * 5).strip())
    log.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    with OpenAIServer(JudgeScript()) as server:
        changed = evaluate(
            make_args(tmp_path, root, judge_retry_failed=False), GeneratorConfig(), judge_config(server)
        )
        asked = [p["messages"][-1]["content"] for p in server.requests]
        assert len(asked) == 2 and sum("rain rain rain rain rain" in a for a in asked) == 1  # and the refused one
    s_l_changed = (100.0 * (1 - (10 / 5 - 1) / 2) + 100.0 * (1 - 1 / 3) + 0.0) / 3  # 5 of 10 words: 50
    assert changed["table"]["LB S_l"] == pytest.approx(s_l_changed)

    # without the judge stage, a report over judgements that were never made counts them as missing
    fresh_root = tmp_path / "other"
    args = make_args(fresh_root, root, benchmarks=["longbench_write"], stages=["generate", "report"])
    evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: ScriptedGenerator(ANSWERS))
    (fresh_root / "run" / "judgements").mkdir()
    (fresh_root / "run" / "judgements" / "meta.json").write_text(json.dumps({"judge_model": "j"}))
    (fresh_root / "run" / "judgements" / "longbench_write.jsonl").write_text("")
    missing = evaluate(
        make_args(fresh_root, root, benchmarks=["longbench_write"], stages=["report"], reasoning_profile=False),
        GeneratorConfig(),
        JudgeConfig(),
    )
    assert missing["failures"]["longbench_write"]["judge"] == 3 and missing["table"]["LB"] is None


def test_model_behind_an_openai_server_with_the_benchmark_settings(tmp_path):
    """The model under evaluation may be any OpenAI-compatible server (the default generator factory): each request
    carries LongBench-Write's own sampling settings, and the thinking the server returns is split off."""
    root = write_benchmarks(tmp_path / "data")
    args = make_args(tmp_path, root, benchmarks=["longbench_write"], stages=["generate", "report"])
    config = GeneratorConfig(
        generator_model="served", generator_backend="openai", generator_api_key_env=None, generator_prefill_mode="none"
    )
    with OpenAIServer(lambda kind, payload: [ANSWERS[payload["messages"][-1]["content"]]], model="served") as server:
        config.generator_base_url = server.base_url
        report = evaluate(args, config, JudgeConfig())
    assert {(p["temperature"], p["top_p"], p["max_tokens"]) for p in server.requests} == {(0.5, 1.0, 32768)}
    assert sorted(p["seed"] for p in server.requests) == [42, 42, 43]  # per call (save_every 2): seed + index
    assert "top_k" not in server.requests[0]
    assert report["table"]["LB S_l"] == pytest.approx((100.0 + 100.0 * (1 - 1 / 3) + 0.0) / 3)
    records = JsonlLog(tmp_path / "run" / "generations" / "longbench_write.jsonl").read()
    assert {r["thinking"] for r in records} == {"Hmm, wait. Let me think about the reader first."}


def test_writingbench_sampling_reaches_the_server_and_top_k_zero_turns_it_off(tmp_path):
    root = write_benchmarks(tmp_path / "data")
    config = GeneratorConfig(
        generator_model="test-model",
        generator_backend="openai",
        generator_api_key_env=None,
        generator_prefill_mode="none",
    )
    for top_k, expected in ((None, 20), (0, None)):
        args = make_args(
            tmp_path / str(top_k), root, benchmarks=["writingbench"], stages=["generate"], eval_top_k=top_k
        )
        with OpenAIServer(lambda kind, payload: ["An answer."]) as server:
            config.generator_base_url = server.base_url
            evaluate(args, config, JudgeConfig())
        assert {(p["temperature"], p["top_p"], p.get("top_k"), p["max_tokens"]) for p in server.requests} == {
            (0.7, 0.8, expected, 16384)
        }


def test_truncated_and_unfinished_generations_are_scored_as_such(tmp_path):
    root = write_benchmarks(tmp_path / "data")

    class Cut(ScriptedGenerator):
        def _generate(self, requests, sampling):
            out = []
            for r in requests:
                prompt = r.messages[-1]["content"]
                if "rain" in prompt:  # the token limit hit inside the thinking: no answer at all
                    out.append([Completion("<think>\nstill planning the", 6, FINISH_LENGTH)])
                elif "秋" in prompt:  # the limit hit inside the answer: scored as it stands
                    out.append([Completion(THINK + "秋" * 5, 9, FINISH_LENGTH)])
                else:
                    out.append([Completion(THINK + "snow " * 5, 12, FINISH_STOP)])
            return out

    args = make_args(tmp_path, root, benchmarks=["longbench_write"], stages=["generate", "report"])
    report = evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: Cut({}))
    assert report["generation"]["longbench_write"] == {"ok": 1, "truncated": 1, "unfinished_thinking": 1}
    assert report["table"]["LB S_l"] == pytest.approx((0.0 + 100.0 * (1 - (10 / 5 - 1) / 2) + 100.0) / 3)
    assert "`unfinished_thinking`" in (tmp_path / "run" / "report.md").read_text()


def test_one_process_only_and_compare_to_checked_first(tmp_path, monkeypatch):
    root = write_benchmarks(tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="No report"):
        evaluate(make_args(tmp_path, root, compare_to=[str(tmp_path / "nowhere")]), GeneratorConfig(), JudgeConfig())
    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(RuntimeError, match="one process"):
        evaluate(make_args(tmp_path, root), GeneratorConfig(), JudgeConfig())


def test_judge_settings_must_match_to_resume(tmp_path):
    root = write_benchmarks(tmp_path / "data")
    with OpenAIServer(JudgeScript()) as server:
        args = make_args(tmp_path, root, benchmarks=["longbench_write"], reasoning_profile=False)
        evaluate(args, GeneratorConfig(), judge_config(server), generator_factory=lambda c: ScriptedGenerator(ANSWERS))
        other = judge_config(server)
        other.judge_model = "another-judge"
        with pytest.raises(ValueError, match="judge_model"):
            evaluate(args, GeneratorConfig(), other, generator_factory=lambda c: ScriptedGenerator(ANSWERS))
        calls = len(server.requests)
        args.overwrite_judgements = True  # the same answers, judged anew by the other judge; nothing regenerated

        def no_generator(cfg):
            raise AssertionError("the generations are kept")

        report = evaluate(args, GeneratorConfig(), other, generator_factory=no_generator)
        assert (
            report["judge"] == "another-judge" and len(server.requests) == calls + 3
        )  # one per item (the script was malformed only once)


def test_generation_resumes_after_an_interruption(tmp_path):
    root = write_benchmarks(tmp_path / "data")
    args = make_args(tmp_path, root, benchmarks=["longbench_write"], stages=["generate", "report"], save_every=1)
    crashing = ScriptedGenerator(ANSWERS, fail_after_calls=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: crashing)
    log = tmp_path / "run" / "generations" / "longbench_write.jsonl"
    (first,) = [json.loads(line) for line in log.read_text().splitlines()]
    with open(log, "a") as f:  # a crash in the middle of a write
        f.write('{"id": "longbench_write/all/0001", "resp')
    fresh = ScriptedGenerator(ANSWERS)
    report = evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: fresh)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == [f"longbench_write/all/{i:04d}" for i in range(3)]  # each once
    assert records[0] == first and len(fresh.prompts) == 2
    assert report["table"]["LB S_l"] == pytest.approx((100.0 + 100.0 * (1 - 1 / 3) + 0.0) / 3)
    assert report["table"]["LB"] is None  # no judge stage


def test_a_changed_model_is_refused_on_resume(tmp_path):
    root = write_benchmarks(tmp_path / "data")
    args = make_args(tmp_path, root, benchmarks=["longbench_write"], stages=["generate"])
    evaluate(
        args,
        GeneratorConfig(generator_model="a"),
        JudgeConfig(),
        generator_factory=lambda c: ScriptedGenerator(ANSWERS),
    )
    with pytest.raises(ValueError, match="model"):
        evaluate(
            args,
            GeneratorConfig(generator_model="b"),
            JudgeConfig(),
            generator_factory=lambda c: ScriptedGenerator(ANSWERS),
        )
    args.overwrite_output_dir = True
    evaluate(
        args,
        GeneratorConfig(generator_model="b"),
        JudgeConfig(),
        generator_factory=lambda c: ScriptedGenerator(ANSWERS),
    )


def test_failed_generations_are_recorded_and_redone(tmp_path):
    root = write_benchmarks(tmp_path / "data")

    class Flaky(ScriptedGenerator):
        def _generate(self, requests, sampling):
            out = super()._generate(requests, sampling)
            return [
                [Completion.failed("HTTP 500", "http")] if "snow" in r.messages[-1]["content"] else c
                for r, c in zip(requests, out, strict=True)
            ]

    args = make_args(tmp_path, root, benchmarks=["longbench_write"], stages=["generate", "report"])
    report = evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: Flaky(ANSWERS))
    assert report["failures"]["longbench_write"]["generation"] == 1
    assert report["table"]["LB S_l"] == pytest.approx((100.0 + 100.0 * (1 - 1 / 3)) / 2)  # left out, not scored 0
    fresh = ScriptedGenerator(ANSWERS)
    report = evaluate(args, GeneratorConfig(), JudgeConfig(), generator_factory=lambda c: fresh)
    assert (
        fresh.prompts == ["Write five words about snow."] and report["failures"]["longbench_write"]["generation"] == 0
    )


def test_jsonl_log_refuses_a_damaged_middle_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        JsonlLog(path).read()


def test_generation_with_the_tiny_model(tiny_tokenizer, tmp_path):
    items = load_items("longbench_write", "builtin", max_items=3)
    generator = TransformersGenerator(build_tiny_model("qwen3", len(tiny_tokenizer)), tiny_tokenizer, batch_size=2)
    sampling = Sampling(temperature=0.5, top_p=1.0, top_k=20, max_new_tokens=6, seed=0)
    log = JsonlLog(tmp_path / "g.jsonl")
    records = generate_answers(items, generator, sampling, log, prefill="<think>\n", progress=False)
    assert list(records) == [it["id"] for it in items]
    for r in records.values():
        assert r["status"] in GENERATION_STATUSES and r["status"] != "error"
        assert 0 < r["n_tokens"] <= 6 and r["response"].startswith("<think>\n")
    assert generator.stats["calls"] == 1 and len(log.read()) == 3
    again = generate_answers(items, None, sampling, log, progress=False)  # all done: no generator needed
    assert again == records
    scores = score_benchmark("longbench_write", items, records, None)
    by_hand = [length_score(it["length"], produced_length(records[it["id"]]["answer"])) for it in items]
    assert scores["length_score"] == pytest.approx(sum(by_hand) / 3)


def test_a_context_rejection_is_the_models_outcome_and_kept(tmp_path):
    """A prompt too long for the model under evaluation is recorded once; a resumed run does not ask again (a
    transport failure, by contrast, is never stored and is asked again)."""

    class TooLong(Generator):
        def _generate(self, requests, sampling):
            return [[Completion.failed("prompt is longer than the context length", "context")] for _ in requests]

    item = {
        "id": "lb/0",
        "benchmark": "longbench_write",
        "task": "all",
        "prompt": "Write.",
        "lang": "en",
        "length": 10,
    }
    log = JsonlLog(tmp_path / "generations.jsonl")
    generator = TooLong()
    first = generate_answers([item], generator, Sampling(), log, progress=False)
    again = generate_answers([item], generator, Sampling(), log, progress=False)
    assert first["lb/0"]["error_kind"] == again["lb/0"]["error_kind"] == "context"
    assert generator.stats["requests"] == 1 and len(log.read()) == 1


def test_the_help_texts_say_what_the_code_does(tmp_path):
    """reasoning_max_items picks its items by a hash of their ids, as its help says (not in benchmark order); the
    generator help, which recipes/eval.py shows for the model under evaluation, names no paper model."""
    import dataclasses
    import hashlib

    from reer_hf.evaluation.run import _reasoning_requests

    helps = {
        f.name: f.metadata["help"] for c in (EvaluationScriptArguments, GeneratorConfig) for f in dataclasses.fields(c)
    }
    assert "hash of their ids" in helps["reasoning_max_items"] and "order" not in helps["reasoning_max_items"]
    assert "model under evaluation" in helps["generator_model"]
    assert not re.search(r"Qwen|paper", helps["generator_model"])
    root = write_benchmarks(tmp_path / "data")
    items = {"longbench_write": load_items("longbench_write", str(root))}
    generations = {
        "longbench_write": {it["id"]: {"status": "ok", "thinking": "Plan."} for it in items["longbench_write"]}
    }
    args = make_args(tmp_path, root, reasoning_max_items=2)
    picked = [r.meta["item_id"] for r in _reasoning_requests(items, generations, args, JudgeConfig())]
    by_hash = sorted(
        (it["id"] for it in items["longbench_write"]), key=lambda i: hashlib.sha256(i.encode()).hexdigest()
    )
    assert picked == by_hash[:2] != [it["id"] for it in items["longbench_write"]][:2]
