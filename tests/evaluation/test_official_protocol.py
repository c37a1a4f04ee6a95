"""Each benchmark's official judge protocol: the prompts filled from synthetic copies of the pinned upstream files
(cached through ``official.fetch(..., file=)`` with the registry pinned to their digests), the messages each official
script would build (written out by hand), the replies in each official shape read through a real judge on loopback,
the per-benchmark judge sampling in the payloads, and WritingBench's requirement subsets worked by hand."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from openai_server import OpenAIServer, scripted
from testing_utils import write_jsonl

from reer_hf.core import official
from reer_hf.evaluation.benchmarks import hellobench, judge_requests, load_items
from reer_hf.evaluation.benchmarks.hellobench import parse_hellobench_checklist_official
from reer_hf.evaluation.benchmarks.longbench_write import parse_longbench_quality_official
from reer_hf.evaluation.benchmarks.writingbench import (
    WRITINGBENCH_DOMAINS,
    aggregate_writingbench,
    parse_writingbench_score_official,
)
from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.judge import Judge
from reer_hf.evaluation.judgement import Judgement, JudgeRequest
from reer_hf.evaluation.run import evaluate
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import FINISH_STOP, Completion, Generator, Request, Sampling
from reer_hf.generation.config import GeneratorConfig

FAKE_JUDGE_TXT = (
    "Rate strictly.\n<User Request>\n$INST$\n</User Request>\n<Response>\n$RESPONSE$\n</Response>\nJSON only."
)
FAKE_LLM_JUDGE = (
    'SYS_PROMPT = """Fake checklist evaluator."""\n'
    'USER_PROMPT = """I: {{\\"instruction\\": {instruction}}}\n'
    'R: {{\\"response\\": {response}}}\n'
    'C: {{\\"checklists\\": {checklists}}}\n'
    'N: {num_checklist}"""\n'
)
FAKE_PROMPT = (
    'evaluate_system = """\nFake evaluator.\n""".strip()\n'
    'evaluate_prompt = """\nCriteria ```{criteria}```\nQuery ```{query}```\nResponse ```{response}```\n'
    'Again ```{criteria}```\n{{"score": 1-10, "reason": "..."}}\n""".strip()\n'
)
FAKES = {"longbench_write": FAKE_JUDGE_TXT, "hellobench": FAKE_LLM_JUDGE, "writingbench": FAKE_PROMPT}
DIMS = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"]
CRITERIA = [
    {"name": "c1", "criteria_description": "clear", "1-2": "poor", "9-10": "excellent"},
    {"name": "c2", "criteria_description": "apt", "1-2": "off", "9-10": "spot on"},
]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def pinned(tmp_path, monkeypatch):
    """Synthetic upstream files, the registry pinned to their digests, cached from local copies (no network)."""
    monkeypatch.setenv("REER_HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(official.BASE_URL_ENV, "http://127.0.0.1:9")  # any download would fail
    monkeypatch.setattr(hellobench, "official_response_tokenizer", lambda: "none")  # the answer as written
    for name, content in FAKES.items():
        copy = tmp_path / "upstream" / Path(official.SOURCES[name].path).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(content, encoding="utf-8")
        digest = hashlib.sha256(content.encode()).hexdigest()
        monkeypatch.setitem(official.SOURCES, name, dataclasses.replace(official.SOURCES[name], sha256=digest))
        official.fetch(name, file=copy)


def write_data(root: Path) -> Path:
    (root / "hellobench").mkdir(parents=True)
    (root / "writingbench").mkdir()
    write_jsonl(root / "longbench_write.jsonl", [{"prompt": "Write about $RESPONSE$ rain.", "type": "t", "length": 3}])
    write_jsonl(
        root / "hellobench" / "open_ended_qa.jsonl",
        [{"id": "q0", "category": "Science", "instruction": "Explain tides.", "checklists": ["a", "b"]}],
    )
    (root / "hellobench" / "checklist_weights.json").write_text(json.dumps({"weights": {"Science": [60, 40]}}))
    wb = {"index": 7, "domain1": "Education", "domain2": "Lesson", "lang": "en", "query": "Plan a lesson."}
    write_jsonl(root / "writingbench" / "benchmark_all.jsonl", [{**wb, "checklist": CRITERIA}])
    return root


def official_items(root: Path) -> dict[str, dict]:
    return {
        name: load_items(name, root, **options)[0]
        for name, options in (
            ("longbench_write", {}),
            ("hellobench", {"hellobench_tasks": ["open_ended_qa"]}),
            ("writingbench", {}),
        )
    }


# ---- the messages each official script builds ----


def test_official_messages_equal_what_each_script_builds(pinned, tmp_path):
    items = official_items(write_data(tmp_path / "data"))
    sources = dict.fromkeys(items, "official")

    (lb,) = judge_requests(items["longbench_write"], "Drops.", sources=sources)
    # eval_quality.py: $INST$ first, then $RESPONSE$ (so a prompt holding "$RESPONSE$" gets the answer too); no system
    expected = "Rate strictly.\n<User Request>\nWrite about Drops. rain.\n</User Request>\n<Response>\nDrops.\n"
    assert lb.messages == [{"role": "user", "content": expected + "</Response>\nJSON only."}]

    (hb,) = judge_requests(items["hellobench"], 'Tides "rise".', sources=sources)
    user = (
        'I: {"instruction": Explain tides.}\nR: {"response": Tides "rise".}\n'
        'C: {"checklists": [{"checklist_id": 0, "checklist_content": "a"}, '
        '{"checklist_id": 1, "checklist_content": "b"}]}\nN: 2'
    )
    assert hb.messages == [
        {"role": "system", "content": "Fake checklist evaluator."},
        {"role": "user", "content": user},
    ]

    c1, c2 = judge_requests(items["writingbench"], "Step one.</think>\n\nThe plan.", sources=sources)
    criterion = "{'name': 'c1', 'criteria_description': 'clear', '1-2': 'poor', '9-10': 'excellent'}"
    user = (
        f"Criteria ```{criterion}```\nQuery ```Plan a lesson.```\nResponse ```The plan.```\n"
        f'Again ```{criterion}```\n{{"score": 1-10, "reason": "..."}}'
    )
    assert c1.messages == [{"role": "system", "content": "Fake evaluator."}, {"role": "user", "content": user}]
    assert "'name': 'c2'" in c2.messages[1]["content"] and c2.meta["criterion"] == "c2"

    builtin = judge_requests(items["hellobench"], "x")[0]  # the default stays the builtin prompt, one user turn
    assert [m["role"] for m in builtin.messages] == ["user"]


def test_a_template_for_an_official_benchmark_is_refused():
    with pytest.raises(ValueError, match="choose one"):
        EvaluationScriptArguments(
            judge_prompt_sources={"writingbench": "official"}, judge_templates={"writingbench": "x"}
        )
    with pytest.raises(ValueError, match="judge_prompt_sources"):
        EvaluationScriptArguments(judge_prompt_sources={"writingbench": "upstream"})
    with pytest.raises(ValueError, match="judge_sampling"):
        JudgeConfig(judge_sampling={"writingbench": {"temp": 1}})
    with pytest.raises(ValueError, match="report_lb_column"):
        EvaluationScriptArguments(report_lb_column="S_x")


# ---- the official reply shapes ----

LB_OK = {"Analysis": "Good.", **dict.fromkeys(DIMS, 4)}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Brief analysis.\n```json\n" + json.dumps(LB_OK) + "\n```", 4.0),
        ('{"Analysis": "line one\nline two", ' + ", ".join(f'"{d}": "3"' for d in DIMS) + "}", 3.0),  # raw breaks
        ('<think>rating</think>{"Analysis": "a", ' + ", ".join(f'"{d}": 5.0' for d in DIMS) + "}", 5.0),
    ],
)
def test_longbench_official_reply_shapes(reply, expected):
    assert parse_longbench_quality_official(reply) == dict.fromkeys(DIMS, expected)


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps({**LB_OK, "Clarity": 7}),  # out of range: the official script would average it
        json.dumps({k: v for k, v in LB_OK.items() if k != "Clarity"}),
        "```json{" + json.dumps(LB_OK)[1:] + "```",  # a fence without its line break: no body, as upstream
        "I rate it highly.",
        json.dumps({**LB_OK, "Clarity": "high"}),
    ],
)
def test_longbench_official_rejects(reply):
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse_longbench_quality_official(reply)


def hb_reply(scores: list, fence: str = "```python") -> str:
    entries = [{"checklist_id": str(i), "reason": "r", "evaluation_score": s} for i, s in enumerate(scores)]
    return f"{fence}\n" + json.dumps(entries, indent=2) + "\n```"


def test_hellobench_official_reply_shapes():
    assert parse_hellobench_checklist_official(hb_reply(["0.75", 1]), 2) == [0.75, 1.0]
    assert parse_hellobench_checklist_official(hb_reply([0.3, "0"], "```json"), 2) == [0.3, 0.0]  # any float in [0, 1]
    listed_backwards = json.dumps(
        [{"checklist_id": 1, "evaluation_score": 1}, {"checklist_id": 0, "evaluation_score": 0}]
    )
    assert parse_hellobench_checklist_official(listed_backwards, 2) == [1.0, 0.0]  # compute.py: in the listed order
    for bad in (hb_reply([1.5, 1]), hb_reply([1]), hb_reply(["high", 1]), "[{]", '[{"evaluation_score": 1}, 2]'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            parse_hellobench_checklist_official(bad, 2)


def test_writingbench_official_reply_shapes():
    assert parse_writingbench_score_official('```json\n{"score": 8, "reason": "Strong."}\n```') == 8
    assert parse_writingbench_score_official('json\n{"score": 6.0, "reason": "ok"}') == 6
    for bad in (
        '{"score": "8", "reason": "r"}',
        '{"score": 11, "reason": "r"}',
        '{"score": 8}',
        '{"score": 8, "reason": 1}',
    ):
        with pytest.raises(ValueError):
            parse_writingbench_score_official(bad)


def test_the_judge_asks_again_then_records_an_unusable_reply():
    """Through a real judge on loopback: an out-of-range reply is asked again; garbage in every try is a recorded
    parse failure, never a default score."""
    parse = parse_writingbench_score_official
    replies = scripted(['{"score": 0, "reason": "r"}'], ['```json\n{"score": 9, "reason": "r"}\n```'], *[["n/a"]] * 3)
    with OpenAIServer(replies) as server:
        config = JudgeConfig(judge_base_url=server.base_url, judge_api_key_env=None, judge_max_parse_retries=2)
        with Judge(config) as judge:
            good, bad = (
                judge.judge([JudgeRequest(f"r{i}", [{"role": "user", "content": "x"}], parse=parse)]) for i in (0, 1)
            )
    assert good[0].ok and good[0].value == 9 and good[0].attempts == 2
    assert not bad[0].ok and bad[0].error_kind == "parse" and not bad[0].transport_failed and bad[0].value is None


# ---- the judge sampling in the payloads ----


class Fixed(Generator):
    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        return [[Completion("<think>\nPlan.\n</think>\n\nThe answer.", 4, FINISH_STOP)] for _ in requests]


def official_judge(kind: str, payload: dict) -> list[str]:
    """Replies in each benchmark's official shape, told apart by the prompt."""
    messages = payload["messages"]
    if messages[0]["content"] == "Fake checklist evaluator.":
        return [hb_reply(["0.75", 0.5])]
    if messages[0]["content"] == "Fake evaluator.":
        score = 8 if "'name': 'c1'" in messages[1]["content"] else 6
        return ["```json\n" + json.dumps({"score": score, "reason": "r"}) + "\n```"]
    if "problem_deconstruction" in messages[-1]["content"]:
        return ['{"reason": "r"}']  # the reasoning profile: not under test here
    return ["Fine.\n```json\n" + json.dumps({"Analysis": "a\nb", **dict.fromkeys(DIMS, "4")}) + "\n```"]


@pytest.mark.slow
def test_official_run_sends_each_benchmark_its_sampling_and_reports_it(pinned, tmp_path):
    root = write_data(tmp_path / "data")
    args = EvaluationScriptArguments(
        benchmark_data=str(root),
        hellobench_tasks=["open_ended_qa"],
        output_dir=str(tmp_path / "run"),
        judge_prompt_source="official",
        report_lb_column="S_q",
        reasoning_max_items=1,
    )
    with OpenAIServer(official_judge) as server:
        config = JudgeConfig(judge_base_url=server.base_url, judge_api_key_env=None, judge_max_parse_retries=0)
        report = evaluate(args, GeneratorConfig(), config, generator_factory=lambda cfg: Fixed())
        payloads = server.requests

    def sent(p: dict) -> tuple:
        return p["temperature"], p["top_p"], p["max_tokens"], p.get("seed")

    by_kind = {}
    for p in payloads:
        first = p["messages"][0]["content"]
        kind = {"Fake checklist evaluator.": "hb", "Fake evaluator.": "wb"}.get(first)
        kind = kind or ("lb" if first.startswith("Rate strictly.") else "reasoning")
        by_kind.setdefault(kind, set()).add(sent(p))
    assert by_kind == {
        "lb": {(0.5, 1.0, 1024, None)},
        "hb": {(0.8, 1.0, 4096, 42)},
        "wb": {(1.0, 0.95, 2048, None)},
        "reasoning": {(0.5, 1.0, 4096, None)},
    }
    s_q = (4 - 1) * 25.0
    assert report["table"]["LB"] == pytest.approx(s_q)  # the LB column shows S_q, as asked
    assert report["table"]["HB-A"] == pytest.approx(60 * 0.75 + 40 * 0.5)
    assert report["table"]["WB-E"] == pytest.approx(70.0)
    md = (tmp_path / "run" / "report.md").read_text()
    assert "LB = LongBench-Write S_q, the judged quality alone" in md and "## Judge protocol" in md
    assert "THUDM/LongWriter@3fcfdff43deceb49f7936c6bf25ad88d61df0bfa:evaluation/judge.txt" in md
    meta = json.loads((tmp_path / "run" / "judgements" / "meta.json").read_text())
    assert meta["protocol"]["hellobench"]["sampling"] == {
        "temperature": 0.8,
        "top_p": 1.0,
        "max_tokens": 4096,
        "seed": 42,
    }
    assert meta["protocol"]["hellobench"]["prompt"]["response_tokenizer"] == "none"
    assert len(JsonlLog(tmp_path / "run" / "judgements" / "writingbench.jsonl").read()) == 2

    # overrides: one setting for every benchmark, and one benchmark's own over it; the settings differ, so a resumed
    # run in the same folder is refused, and a fresh one sends them
    args.output_dir = str(tmp_path / "run2")
    with OpenAIServer(official_judge) as server:
        config = JudgeConfig(
            judge_base_url=server.base_url,
            judge_api_key_env=None,
            judge_max_tokens=512,
            judge_sampling={"writingbench": {"temperature": 0.2, "seed": 7}, "hellobench": {"seed": None}},
        )
        evaluate(args, GeneratorConfig(), config, generator_factory=lambda cfg: Fixed())
        sent_now = {sent(p) for p in server.requests}
    assert {(0.2, 0.95, 512, 7), (0.2, 0.95, 512, 8), (0.8, 1.0, 512, None), (0.5, 1.0, 512, None)} >= sent_now
    assert (0.8, 1.0, 512, None) in sent_now and (0.2, 0.95, 512, 7) in sent_now


# ---- WritingBench's requirement subsets, worked by hand ----


def wb(index: int, domain: str, scores: dict[str, int | None]) -> list[Judgement]:
    meta = {"index": index, "domain1": WRITINGBENCH_DOMAINS[domain]}
    return [
        Judgement(
            f"{index}#{c}",
            s is not None,
            s,
            error_kind=None if s is not None else "parse",
            meta={**meta, "criterion": c},
        )
        for c, s in scores.items()
    ]


def test_writingbench_requirement_subsets_as_calculate_scores():
    judgements = (
        wb(1, "A", {"tone": 6, "form": 8, "x": 10})  # query 8.0
        + wb(2, "D", {"tone": 9, "form": 3, "x": 3})  # query 5.0
        + wb(3, "D", {"tone": 2, "form": None, "x": 5})  # a failed criterion: no score, out of R and C
        + wb(4, "E", {"tone": 4, "form": 4, "x": 7})  # 5.0, in no subset
    )
    subsets = {
        "style": {"R": [1, 2, 3], "C": {1: ["tone"], 2: ["tone"], 3: ["tone"]}},
        "format": {"R": [2, 3], "C": {2: ["form", "x"], 3: ["form"]}},
        "length": {"R": [3], "C": {3: ["x"]}},
    }
    out = aggregate_writingbench(judgements, 3, subsets)
    style, fmt, length = (out["requirements"][k] for k in ("style", "format", "length"))
    assert style["R"] == pytest.approx((8 + 5) / 2) and style["C"] == pytest.approx((6 + 9) / 2)
    assert (style["R_x10"], style["n_R"], style["n_C"]) == (pytest.approx(65.0), 2, 2)
    assert fmt["R"] == pytest.approx(5.0) and fmt["C"] == pytest.approx((3 + 3) / 2) and fmt["n_C"] == 2
    assert length == {"R": None, "R_x10": None, "C": None, "C_x10": None, "n_R": 0, "n_C": 0}
    # calculate_scores.py's Overall: the mean over every criterion score of the scored queries (not of query means)
    assert out["overall"]["criterion_mean"] == pytest.approx((24 + 15 + 15) / 9)
    assert out["overall"]["score"] == pytest.approx((8 + 5 + 5) / 3)
