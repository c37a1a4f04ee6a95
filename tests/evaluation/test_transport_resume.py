"""Transport failures are redone, never data: a run against a generator and a judge on loopback that drop
connections, answer 503 and 500 and send bodies that are no reply leaves none of those in its logs; the run started
again without faults then gives the same generations, judgements and scores as a run that never saw a fault. The
model's own outcomes (a truncated answer) and the judge's unusable replies stay recorded."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from openai_server import OpenAIServer, ServerReply, completion_body
from testing_utils import write_jsonl

from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.run import evaluate
from reer_hf.evaluation.store import JsonlLog
from reer_hf.generation import OpenAIGenerator
from reer_hf.generation.config import GeneratorConfig

DIMS = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"]
PROMPTS = [f"Write {n} words about topic {n}." for n in range(1, 9)]
CRITERIA = [{"name": f"c{i}", "criteria_description": f"criterion {i}"} for i in (1, 2)]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def write_data(root: Path) -> Path:
    (root / "writingbench").mkdir(parents=True)
    write_jsonl(root / "longbench_write.jsonl", [{"prompt": p, "type": "t", "length": 5} for p in PROMPTS])
    rows = [
        {"index": i, "domain1": "Education", "lang": "en", "query": p, "checklist": CRITERIA}
        for i, p in enumerate(PROMPTS[:4])
    ]
    write_jsonl(root / "writingbench" / "benchmark_all.jsonl", rows)
    return root


def model(kind: str, payload: dict) -> ServerReply:
    """A deterministic model: the answer depends on the prompt only; prompt 8 runs out of tokens (the model's)."""
    prompt = payload["messages"][-1]["content"]
    n = int(prompt.split()[1])
    finish = "length" if n == 8 else "stop"
    return ServerReply(body=completion_body(kind, [" ".join(["word"] * n)], finish_reason=finish))


def judge(kind: str, payload: dict) -> ServerReply:
    """A deterministic judge: ratings from the prompt; the answer of 3 words always gets an unusable reply."""
    text = payload["messages"][-1]["content"]
    if "Breadth and Depth" in text:
        n = text.count("word")
        if n == 3:
            return ServerReply(texts=["I cannot rate this."])
        return ServerReply(texts=[json.dumps(dict.fromkeys(DIMS, 1 + n % 5))])
    return ServerReply(texts=[json.dumps({"score": 1 + (len(text) + text.count("c2")) % 10, "reason": "r"})])


class Faults:
    """Injects transport faults by arrival order: 503 (retried by the client), 500 (refused, not retried), a body
    that is no reply, a dropped connection; everything else is the handler's reply."""

    def __init__(self, handler, schedule: dict[int, str] | None):
        self.handler, self.schedule = handler, schedule
        self.n, self.injected, self.lock = 0, {}, threading.Lock()

    def __call__(self, kind: str, payload: dict) -> ServerReply:
        with self.lock:
            self.n += 1
            fault = next((f for m, f in (self.schedule or {}).items() if self.n % m == 0), None)
            if fault:
                self.injected[fault] = self.injected.get(fault, 0) + 1
        if fault == "503":
            return ServerReply(503, {"error": {"message": "overloaded"}})
        if fault == "500":
            return ServerReply(500, {"error": {"message": "internal"}})
        if fault == "body":
            return ServerReply(body="<html>bad gateway</html>")
        if fault == "drop":
            return ServerReply(close_connection=True)
        return self.handler(kind, payload)


#: every 2nd request 503, every 3rd a body that is no reply, every 5th dropped, every 7th 500 (first match wins)
SCHEDULE = {2: "503", 3: "body", 5: "drop", 7: "500"}


def run(out: Path, root: Path, schedule: dict[int, str] | None) -> tuple[dict, Faults, Faults]:
    args = EvaluationScriptArguments(
        benchmarks=["longbench_write", "writingbench"],
        benchmark_data=str(root),
        output_dir=str(out),
        reasoning_profile=False,
        save_every=3,
    )
    gen_faults, judge_faults = Faults(model, schedule), Faults(judge, schedule)
    with OpenAIServer(gen_faults) as gen_server, OpenAIServer(judge_faults) as judge_server:
        gen_cfg = GeneratorConfig(
            generator_model="test-model",  # the served name: the health check asks for it
            generator_backend="openai",
            generator_base_url=gen_server.base_url,
            generator_api_key_env=None,
            generator_prefill_mode="none",
            generator_max_retries=1,
            generator_max_concurrency=1,
            generator_outage_consecutive=0,  # the faults are what this run is for: no outage stop
            generator_outage_share=1.0,
        )
        judge_cfg = JudgeConfig(
            judge_base_url=judge_server.base_url,
            judge_api_key_env=None,
            judge_max_retries=1,
            judge_backoff=0.0,
            judge_max_parse_retries=1,
            judge_max_concurrency=1,
        )
        report = evaluate(args, gen_cfg, judge_cfg, generator_factory=lambda cfg: OpenAIGenerator(cfg, backoff=0.0))
    return report, gen_faults, judge_faults


def outcome(out: Path) -> dict:
    """What a run leaves: the stored records in force (the last one per item and answer; a failed judgement asked again
    is appended after the first), the order they came in aside, and the scores."""
    logs = {}
    for sub in ("generations", "judgements"):
        for path in sorted((out / sub).glob("*.jsonl")):
            latest = {}
            for r in JsonlLog(path).read():
                latest[(r["id"], (r.get("meta") or {}).get("answer_sha"))] = r
            logs[f"{sub}/{path.name}"] = sorted(
                json.dumps({k: v for k, v in r.items() if k not in ("attempts", "error")}, sort_keys=True)
                for r in latest.values()
            )
    results = json.loads((out / "results.json").read_text())
    judged = {b: s.get("judged") for b, s in results["benchmarks"].items()}
    return {"logs": logs, "judged": judged, "length": results["benchmarks"]["longbench_write"]["length_score"]}


@pytest.mark.slow
def test_a_faulty_run_started_again_equals_a_fault_free_run(tmp_path):
    root = write_data(tmp_path / "data")
    clean, _, _ = run(tmp_path / "clean", root, None)

    faulty, gen_faults, judge_faults = run(tmp_path / "faulty", root, SCHEDULE)
    assert set(gen_faults.injected) == {"503", "body", "drop", "500"} == set(judge_faults.injected)
    stats = json.loads((tmp_path / "faulty" / "results.json").read_text())
    assert stats["judge_stats"]["retries"] > 0 and stats["judge_stats"]["transport_failed"] > 0
    assert faulty["transport"]["generation_transport_failed"] > 0 and faulty["transport"]["generation_retries"] > 0
    assert "failed in transport (not stored" in (tmp_path / "faulty" / "report.md").read_text()
    # nothing of a transport failure was written: every stored generation is the model's, every judgement a reply's
    for record in JsonlLog(tmp_path / "faulty" / "generations" / "longbench_write.jsonl").read():
        assert record["status"] != "error" and record["error_kind"] is None
    for name in ("longbench_write", "writingbench"):
        for record in JsonlLog(tmp_path / "faulty" / "judgements" / f"{name}.jsonl").read():
            assert record["ok"] or record["error_kind"] == "parse"

    again, gen_faults, judge_faults = run(tmp_path / "faulty", root, None)
    assert outcome(tmp_path / "faulty") == outcome(tmp_path / "clean")
    assert again["table"] == clean["table"] and again["failures"] == clean["failures"]
    # the model's truncation and the judge's unusable reply are outcomes, kept and not asked again
    assert clean["generation"]["longbench_write"] == {"ok": 7, "truncated": 1}
    assert clean["failures"]["longbench_write"]["judge"] == 1
    stored = JsonlLog(tmp_path / "faulty" / "judgements" / "longbench_write.jsonl").read()
    assert {r["error_kind"] for r in stored if not r["ok"]} == {"parse"}
    # a third start asks for nothing at all (the unusable reply is asked again: judge_retry_failed)
    _, gen_faults, judge_faults = run(tmp_path / "faulty", root, None)
    assert gen_faults.n == 0 and judge_faults.n == 2  # one parse-failed item, asked twice


def quick_args(tmp_path: Path) -> EvaluationScriptArguments:
    root = write_data(tmp_path / "data")
    return EvaluationScriptArguments(
        benchmarks=["longbench_write"],
        benchmark_data=str(root),
        output_dir=str(tmp_path / "out"),
        stages=["generate", "report"],
        save_every=1,
    )


def openai_generator(server: OpenAIServer, **options) -> GeneratorConfig:
    defaults = dict(generator_model="test-model", generator_prefill_mode="none", generator_max_retries=0)
    defaults.update(options)
    return GeneratorConfig(
        generator_backend="openai", generator_base_url=server.base_url, generator_api_key_env=None, **defaults
    )


def test_the_health_check_stops_an_evaluation_whose_server_does_not_serve_the_model(tmp_path):
    from reer_hf.generation.health import GeneratorOutage

    args = quick_args(tmp_path)
    with OpenAIServer(model) as server:
        with pytest.raises(GeneratorOutage, match=r"does not serve generator_model 'other'.*\['test-model'\]"):
            evaluate(args, openai_generator(server, generator_model="other"), JudgeConfig())
        assert server.requests == []  # refused before any generation call
        unchecked = openai_generator(server, generator_model="other", generator_health_check=False)
        report = evaluate(args, unchecked, JudgeConfig())
    assert report["generation"]["longbench_write"] == {"ok": 7, "truncated": 1}


@pytest.mark.parametrize(
    ("options", "calls", "why"),
    [
        ({"generator_outage_consecutive": 2}, 2, "2 generation calls in a row failed"),
        ({"generator_outage_consecutive": 0, "generator_outage_window": 4}, 4, "4 of the last 4 generation calls"),
    ],
)
def test_a_generator_outage_stops_the_evaluation_early(tmp_path, options, calls, why):
    """A server that answers 503 to everything: the run stops at the generator_outage_* thresholds, not after
    failing every item; nothing of the failed calls is written, and the error says how to go on."""
    from reer_hf.generation.health import GeneratorOutage

    down = Faults(model, {1: "503"})
    with OpenAIServer(down) as server, pytest.raises(GeneratorOutage, match=why) as outage:
        evaluate(quick_args(tmp_path), openai_generator(server, **options), JudgeConfig())
    assert down.n == calls  # one request per call (save_every 1), no retries
    assert "generates only the answers not written yet" in str(outage.value)
    assert JsonlLog(tmp_path / "out" / "generations" / "longbench_write.jsonl").read() == []
