"""The judge client against a real OpenAI-compatible server on loopback (tests/openai_server.py): valid and malformed
replies, retries on network errors and on unparsable replies, refused requests, failure kinds read from the failed
completion's ``error_kind``, the concurrency bound, aggregation."""

from __future__ import annotations

import json

import pytest
from openai_server import OpenAIServer, ServerReply, scripted

from reer_hf.core.endpoint import Endpoint
from reer_hf.evaluation.config import JudgeConfig
from reer_hf.evaluation.judge import Judge
from reer_hf.evaluation.judgement import Judgement, JudgeRequest, extract_json, summarize
from reer_hf.generation import EndpointGenerator


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def make_judge(server: OpenAIServer, **kwargs) -> Judge:
    kwargs = {"judge_backoff": 0.01, "judge_api_key_env": None, "judge_model": "test-model", **kwargs}
    return Judge(JudgeConfig(judge_base_url=server.base_url, **kwargs))


def request(i: int = 0) -> JudgeRequest:
    return JudgeRequest(id=f"item-{i}", messages=[{"role": "user", "content": f"judge {i}"}], meta={"i": i})


def score_of(text: str) -> int:
    value = extract_json(text, dict)
    if not isinstance(value.get("score"), int) or not 1 <= value["score"] <= 10:
        raise ValueError(f"score missing or out of range: {value!r}")
    return value["score"]


# ---- JSON extraction (pure) ----


def test_extract_json_forms():
    assert extract_json('{"score": 7, "reason": "ok"}') == {"score": 7, "reason": "ok"}
    assert extract_json('Here:\n```json\n{"score": 3}\n```\nDone.') == {"score": 3}
    assert extract_json('Sure. {"score": 5, "reason": "a {brace} inside"} Hope it helps {x}') == {
        "score": 5,
        "reason": "a {brace} inside",
    }
    assert extract_json('<think>maybe {"score": 1}</think>\n{"score": 9}') == {"score": 9}
    hello = '[{"checklist_id": 0, "reason": "r", "evaluation_score": 0.75}]'
    assert extract_json(f"Result: {hello}") == json.loads(hello)
    assert extract_json('see [1] then {"a": 1}', dict) == {"a": 1}  # values of other types are skipped


@pytest.mark.parametrize("text", ["no json here", "{'score': 7}", '{"score": 7', "__import__('os').system('x')", ""])
def test_extract_json_rejects_without_executing(text):
    with pytest.raises(ValueError, match="no JSON"):
        extract_json(text)


def test_config_validation():
    with pytest.raises(ValueError, match="judge_max_concurrency"):
        JudgeConfig(judge_max_concurrency=0)
    with pytest.raises(ValueError, match="judge_max_parse_retries"):
        JudgeConfig(judge_max_parse_retries=-1)


# ---- against the loopback server ----


def test_valid_reply():
    with OpenAIServer(scripted(['{"score": 8, "reason": "clear"}'])) as server, make_judge(server) as judge:
        (j,) = judge.judge([request()], parse=score_of)
        payload = server.calls[0].payload
    assert j.ok and j.value == 8 and j.attempts == 1 and j.error is None and j.meta == {"i": 0}
    assert payload["model"] == "test-model" and payload["messages"] == request().messages
    assert payload["temperature"] == 0.5 and "seed" not in payload
    assert judge.stats["calls"] == 1 and judge.stats["failed"] == 0


def test_malformed_then_valid_is_retried():
    replies = scripted(["I think it deserves a 7."], ['{"score": 11}'], ['```json\n{"score": 6}\n```'])
    with OpenAIServer(replies) as server, make_judge(server, judge_seed=42) as judge:
        (j,) = judge.judge([request()], parse=score_of)
        seeds = [c.payload["seed"] for c in server.calls]
    assert j.ok and j.value == 6 and j.attempts == 3
    assert seeds == [42, 43, 44]  # each try its own seed, so a seeded judge does not repeat itself
    assert judge.stats["parse_retries"] == 2 and judge.stats["calls"] == 3


def test_always_malformed_is_recorded_after_the_limit():
    with (
        OpenAIServer(lambda kind, payload: ["not json"]) as server,
        make_judge(server, judge_max_parse_retries=2) as j,
    ):
        (out,) = j.judge([request()], parse=score_of)
        n_calls = len(server.calls)
    assert n_calls == 3
    assert not out.ok and out.value is None and out.error_kind == "parse" and out.attempts == 3
    assert "unparsable after 3 tries" in out.error and out.raw == "not json"
    assert j.stats["failed"] == 1 and j.stats["failed_parse"] == 1


def test_http_503_then_success_is_retried():
    replies = scripted(ServerReply(503, {"error": {"message": "busy"}}), ['{"score": 4}'])
    with OpenAIServer(replies) as server, make_judge(server) as judge:
        (j,) = judge.judge([request()], parse=score_of)
        n_calls = len(server.calls)
    assert j.ok and j.value == 4 and n_calls == 2
    assert judge.stats["retries"] == 1 and judge.stats["parse_retries"] == 0


def test_network_failure_after_the_retries_is_recorded():
    with OpenAIServer(lambda kind, payload: ServerReply(503)) as server, make_judge(server, judge_max_retries=2) as j:
        (out,) = j.judge([request()], parse=score_of)
        n_calls = len(server.calls)
    assert n_calls == 3 and not out.ok and out.error_kind == "network" and "503" in out.error


def test_http_400_is_not_retried_and_a_context_rejection_is_recorded():
    refused = scripted(ServerReply(400, {"error": {"message": "unknown parameter"}}))
    with OpenAIServer(refused) as server, make_judge(server) as judge:
        (j,) = judge.judge([request()], parse=score_of)
        n_calls = len(server.calls)
    assert n_calls == 1 and j.attempts == 1 and judge.stats["retries"] == 0
    assert not j.ok and j.error_kind == "http" and "400" in j.error and j.transport_failed  # asked again next run
    too_long = scripted(ServerReply(400, {"error": {"message": "This model's maximum context length is 4096 tokens"}}))
    with OpenAIServer(too_long) as server, make_judge(server) as judge:
        (j,) = judge.judge([request()], parse=score_of)
    assert not j.ok and j.error_kind == "context" and not j.transport_failed  # the judge's own limit: recorded
    assert judge.stats["failed_context"] == 1


def kinds_seen(monkeypatch) -> list[str | None]:
    """The ``error_kind`` of every completion the judge's generator returns."""
    seen: list[str | None] = []
    generate = EndpointGenerator.generate

    def spy(self, requests, sampling):
        out = generate(self, requests, sampling)
        seen.extend(c.error_kind for cs in out for c in cs)
        return out

    monkeypatch.setattr(EndpointGenerator, "generate", spy)
    return seen


def test_failure_kind_comes_from_the_completion(monkeypatch):
    """A refused request (HTTP 4xx) fails at once as ``http``, a connection dropped through every retry as
    ``network``: the kind the endpoint gave the failed completion, whatever its message says."""
    seen = kinds_seen(monkeypatch)
    replies = scripted(ServerReply(403, "gave up after nothing: a message that names the wrong kind"))
    with OpenAIServer(replies) as server, make_judge(server) as judge:
        (refused,) = judge.judge([request()], parse=score_of)
    assert (refused.error_kind, refused.attempts, seen) == ("http", 1, ["http"])
    assert "HTTP 403" in refused.error

    seen.clear()
    dropped = ServerReply(close_connection=True)
    with OpenAIServer(lambda kind, payload: dropped) as server, make_judge(server, judge_max_retries=1) as judge:
        (lost,) = judge.judge([request()], parse=score_of)
        n_calls = len(server.calls)
    assert (lost.error_kind, seen, n_calls) == ("network", ["network"], 2)
    assert judge.stats["failed_network"] == 1 and judge.stats["retries"] == 1


def test_unusable_body_is_asked_again_as_a_parse_failure(monkeypatch):
    seen = kinds_seen(monkeypatch)
    replies = scripted(ServerReply(body="<html>proxy error</html>"), ['{"score": 5}'])
    with OpenAIServer(replies) as server, make_judge(server) as judge:
        (j,) = judge.judge([request()], parse=score_of)
    assert j.ok and j.value == 5 and j.attempts == 2 and seen == ["parse", None]
    empty = ServerReply(body={"choices": []})
    with OpenAIServer(lambda kind, payload: empty) as server, make_judge(server, judge_max_parse_retries=1) as judge:
        (j,) = judge.judge([request()], parse=score_of)
    # no reply in any try: a failure of the transport (never stored), not of the judge
    assert not j.ok and j.error_kind == "body" and j.transport_failed and j.attempts == 2 and "no choices" in j.error


def test_concurrency_bound_and_order():
    def handler(kind, payload):
        i = int(payload["messages"][0]["content"].split()[-1])
        return ServerReply(texts=[json.dumps({"score": 1 + i % 10})], delay=0.05)

    with OpenAIServer(handler) as server, make_judge(server, judge_max_concurrency=3) as judge:
        out = judge.judge([request(i) for i in range(12)], parse=score_of)
        max_in_flight = server.max_in_flight
    assert max_in_flight == 3
    assert [j.id for j in out] == [f"item-{i}" for i in range(12)]
    assert [j.value for j in out] == [1 + i % 10 for i in range(12)]


def test_the_judge_calls_the_endpoint_of_its_options():
    config = JudgeConfig(judge_base_url="http://judge:9/v1", judge_model="critic", judge_max_retries=2)
    judge = Judge(config)
    assert judge._generator.endpoint == Endpoint(
        base_url="http://judge:9/v1",
        model="critic",
        api_key_env="OPENAI_API_KEY",
        timeout=600.0,
        max_retries=2,
        max_concurrency=16,
        backoff=1.0,
    )
    assert not judge._generator.sees_prefill  # the plain chat: the judge pre-fills nothing
    judge.close()


def test_empty_request_list():
    judge = Judge(JudgeConfig(judge_api_key_env=None))
    assert judge.judge([]) == []


def test_summarize_ignores_failures_but_counts_them():
    replies = scripted(['{"score": 8}'], ServerReply(400), ["nope"], ['{"score": 4}'])
    with OpenAIServer(replies) as server, make_judge(server, judge_max_parse_retries=0, judge_max_concurrency=1) as j:
        out = j.judge([request(i) for i in range(4)], parse=score_of)
    summary = summarize(out)
    assert summary["mean"] == pytest.approx(6.0)
    assert (summary["n"], summary["n_ok"], summary["n_failed"]) == (4, 2, 2)
    assert summary["failures"] == {"http": 1, "parse": 1}
    assert summary["failed_ids"] == ["item-1", "item-2"]
    assert summarize([Judgement("a", False, error="x", error_kind="parse")])["mean"] is None
    assert summarize([Judgement("a", True, {"s": 2})], score=lambda v: v["s"])["mean"] == 2.0
    assert out[0].to_dict()["value"] == 8


def test_config_parses_from_the_command_line():
    from transformers import HfArgumentParser

    args = ["--judge_model", "critic", "--judge_seed", "42", "--judge_max_parse_retries", "2"]
    (config,) = HfArgumentParser(JudgeConfig).parse_args_into_dataclasses(args)
    assert (config.judge_model, config.judge_seed, config.judge_max_parse_retries) == ("critic", 42, 2)


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("REER_TEST_JUDGE_KEY", "sk-judge")
    with OpenAIServer(scripted(['{"score": 2}'])) as server:
        with make_judge(server, judge_api_key_env="REER_TEST_JUDGE_KEY") as judge:
            (j,) = judge.judge([request()], parse=score_of)
        headers = {k.lower(): v for k, v in server.calls[0].headers.items()}
    assert j.ok and headers["authorization"] == "Bearer sk-judge"
