"""Generator faults in a synthesis run, against a real server on loopback that answers deterministically: requests
lost in transport fail their piece and never become data, a restart redoes exactly the missing pieces, an outage
stops the run, the health check refuses a server that cannot serve the model, and a prompt too long for the model is
still the row's own failure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from pathlib import Path

import pytest
from datasets import load_from_disk
from openai_server import OpenAIServer, ServerReply, completion_body
from test_search import ANSWER, QUERY, Writer, prefill_of, user_text
from test_synthesis import configs, scripted

import reer_hf.synthesis.runner as synthesis
from reer_hf.generation import GeneratorUnavailable, OpenAIGenerator, Request, Sampling
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.health import GeneratorOutage, PieceFailures, PiecesFailed, check_generator

ROWS = 8  # with map_batch_size 2: four pieces
FAULTS = {
    "503": ServerReply(503, {"error": {"message": "Service Unavailable"}}),
    "drop": ServerReply(close_connection=True),
    "garbage": ServerReply(body="<html>502 Bad Gateway</html>"),
}
CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 2048 tokens. However, you requested 9000 tokens. Please "
        "reduce the length of the messages or completion.",
        "code": 400,
    }
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [{"question": f"{QUERY} Version {i}.", "answer": ANSWER} for i in range(ROWS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    """Retries after 10 ms instead of the default second, so a faulty run takes seconds."""
    monkeypatch.setattr(synthesis, "build_generator", lambda config, shared=None: OpenAIGenerator(config, 0.01))


class Faulty:
    """The deterministic ``Writer`` behind a share ``rate`` of failing requests. Whether an attempt fails is a hash
    of the request and its attempt number, so a run fails the same requests whatever the order of the calls."""

    def __init__(self, rate: float, down: bool = False):
        self.rate = rate
        self.down = down  # every request fails (an outage)
        self.writer = Writer()
        self.attempts: dict[str, int] = {}
        self.faults = 0
        self.lock = threading.Lock()

    def __call__(self, kind: str, payload: dict):
        key = json.dumps(payload, sort_keys=True)
        with self.lock:
            attempt = self.attempts[key] = self.attempts.get(key, -1) + 1
        digest = hashlib.sha256(f"{key}#{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if self.down or draw < self.rate:
            with self.lock:
                self.faults += 1
            return FAULTS[sorted(FAULTS)[digest[8] % len(FAULTS)]]
        return self.writer(kind, payload)


def generator(server: OpenAIServer, retries: int = 1, **kwargs) -> GeneratorConfig:
    return dataclasses.replace(scripted(server), generator_max_retries=retries, **kwargs)


def rows_of(out: Path) -> list[dict]:
    return load_from_disk(str(out / "dataset")).to_list()


def written(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / "pieces").glob("piece-*.parquet"))


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory, tiny_llama_dir) -> tuple[list[dict], dict]:
    """The rows and summary of a run without faults, which every faulty run must end up writing."""
    tmp = tmp_path_factory.mktemp("fault-free")
    path = tmp / "pairs.jsonl"
    rows = [{"question": f"{QUERY} Version {i}.", "answer": ANSWER} for i in range(ROWS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        with OpenAIServer(Writer()) as server:
            summary = synthesis.synthesize(
                *configs(tmp / "out", path, tiny_llama_dir, generator(server)), process_index=0, num_processes=1
            )
    return rows_of(tmp / "out"), summary


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "retries"), [(0.2, 0), (0.4, 0), (0.6, 1)])
def test_faults_fail_pieces_and_a_restart_writes_the_fault_free_data(
    rate, retries, tmp_path, pairs_file, tiny_llama_dir, fault_free
):
    expected, clean = fault_free
    assert [r["status"] for r in expected] == ["ok"] * ROWS
    out = tmp_path / "faulty"
    faulty = Faulty(rate)
    with OpenAIServer(faulty) as server:
        never_stop = generator(server, retries, generator_outage_consecutive=0, generator_outage_share=1.0)
        run = configs(out, pairs_file, tiny_llama_dir, never_stop)
        with pytest.raises(PiecesFailed) as failed:
            synthesis.synthesize(*run, process_index=0, num_processes=1)
        assert faulty.faults > 0
        missing = sorted({f"piece-{k:06d}" for k in range(ROWS // 2)} - set(written(out)))
        assert missing, "some piece must fail at this rate"
        message = str(failed.value)
        assert all(name in message for name in missing) and "run the same command again" in message
        assert server.base_url in message and "'test-model'" in message
        assert not (out / "dataset").exists()  # no dataset with holes
        for name in missing:  # each failed attempt is on record until the piece is written
            assert len(json.loads((out / "pieces" / f"{name}.failed.json").read_text())) == 1

        faulty.rate = 0.0  # the server is healthy again
        before = len(server.requests)
        summary = synthesis.synthesize(*run, process_index=0, num_processes=1)
        redone = len(server.requests) - before
    assert redone == 2 * (1 + 2) * len(missing)  # only the missing pieces: 2 rows, 1 + max_step requests each
    assert rows_of(out) == expected
    assert summary["generator_failed_pieces"] == len(missing) and summary["generator_failed_seconds"] > 0
    assert summary["generator_errors"] == 0 and summary["kept"] == clean["kept"] == ROWS
    assert (summary["generator_retries"] > 0) == (retries > 0) and not list((out / "pieces").glob("*.failed.json"))
    print(f"rate {rate}, retries {retries}: {faulty.faults} faults, {len(missing)} of {ROWS // 2} pieces failed")


@pytest.mark.slow
def test_a_process_with_failed_pieces_stops_the_merge(tmp_path, pairs_file, tiny_llama_dir, fault_free):
    """Sharded: the process whose pieces failed says so to the main one, which stops instead of waiting for them."""
    out = tmp_path / "sharded"
    faulty = Faulty(0.4)
    with OpenAIServer(faulty) as server:
        # a margin given as a number: rank 1 runs before the main process here, with no noise floor to wait for
        gen = generator(server, 0, generator_outage_consecutive=0)
        run = configs(out, pairs_file, tiny_llama_dir, gen, search_min_gain="0")
        with pytest.raises(PiecesFailed):
            synthesis.synthesize(*run, process_index=1, num_processes=2)
        assert (out / "pieces" / "failed-1.txt").is_file()
        pieces = synthesis.plan_pieces(ROWS, 2)
        with pytest.raises(RuntimeError, match="Another process failed: process 1: PiecesFailed"):
            synthesis._merge(pieces, out / "pieces", timeout=60)  # what the main process, polling, sees
        faulty.rate = 0.0
        assert synthesis.synthesize(*run, process_index=1, num_processes=2) is None
        synthesis.synthesize(*run, process_index=0, num_processes=2)
    assert rows_of(out) == fault_free[0]


@pytest.mark.slow
def test_an_outage_stops_the_run_and_keeps_the_pieces_done(
    tmp_path, pairs_file, tiny_llama_dir, monkeypatch, fault_free
):
    out = tmp_path / "outage"
    faulty = Faulty(0.0)
    real = synthesis._search_piece
    pieces = []

    def then_down(*args, **kwargs):
        error = real(*args, **kwargs)
        pieces.append(error)
        faulty.down = True  # the server goes down after the first piece
        return error

    monkeypatch.setattr(synthesis, "_search_piece", then_down)
    with OpenAIServer(faulty) as server:
        run = configs(out, pairs_file, tiny_llama_dir, generator(server, generator_outage_consecutive=2))
        with pytest.raises(GeneratorOutage) as outage:
            synthesis.synthesize(*run, process_index=0, num_processes=1)
        message = str(outage.value)
        assert len(pieces) == 3 and written(out) == ["piece-000000"]  # the last piece never started
        assert server.base_url in message and "'test-model'" in message and "2 pieces in a row" in message
        assert "gave up after 1 retry" in message or "malformed reply" in message  # the last error
        assert "run the same command again" in message

        monkeypatch.setattr(synthesis, "_search_piece", real)
        faulty.down = False
        synthesis.synthesize(*run, process_index=0, num_processes=1)
    assert rows_of(out) == fault_free[0]


@pytest.mark.slow
def test_an_aborted_completion_fails_its_piece_and_is_no_data(tmp_path, pairs_file, tiny_llama_dir, fault_free):
    """The server ends one initial rollout with finish_reason "abort" (vLLM, SGLang): its half-written text is no
    answer of the model's, so its piece is not written, and a restart writes the fault-free data."""
    writer = Writer()
    aborted: list[str] = []

    def handler(kind: str, payload: dict):
        if "Version 5." in user_text(payload) and prefill_of(payload).startswith("<think>") and not aborted:
            aborted.append(user_text(payload))
            return ServerReply(body=completion_body(kind, ["Okay, I am given a req"], finish_reason="abort"))
        return writer(kind, payload)

    out = tmp_path / "aborted"
    with OpenAIServer(handler) as server:
        run = configs(out, pairs_file, tiny_llama_dir, generator(server))
        with pytest.raises(PiecesFailed, match=r"piece-000002.*finish_reason 'abort'"):
            synthesis.synthesize(*run, process_index=0, num_processes=1)
        assert aborted and written(out) == ["piece-000000", "piece-000001", "piece-000003"]
        synthesis.synthesize(*run, process_index=0, num_processes=1)
    assert rows_of(out) == fault_free[0]


@pytest.mark.slow
def test_a_context_length_rejection_is_the_rows_own(tmp_path, pairs_file, tiny_llama_dir):
    writer = Writer()

    def handler(kind: str, payload: dict):
        if "Version 3." in user_text(payload):
            return ServerReply(400, CONTEXT_ERROR)
        return writer(kind, payload)

    out = tmp_path / "context"
    with OpenAIServer(handler) as server:
        summary = synthesis.synthesize(
            *configs(out, pairs_file, tiny_llama_dir, generator(server)), process_index=0, num_processes=1
        )
    rows = rows_of(out)
    assert [(r["status"], r["drop_reason"]) for r in rows][3] == ("dropped", "generator_error")
    assert [r["status"] for r in rows].count("ok") == ROWS - 1
    assert summary["generator_failed_pieces"] == 0 and len(written(out)) == ROWS // 2


def test_health_check_passes_for_a_served_model_and_refuses_others(tmp_path, pairs_file, tiny_llama_dir):
    with OpenAIServer(Writer()) as server:
        check_generator(generator(server))
        with pytest.raises(GeneratorOutage, match=r"does not serve generator_model 'other'.*\['test-model'\]"):
            check_generator(generator(server, generator_model="other"))
        check_generator(generator(server, generator_model="other", generator_health_check=False))
        # in a run: refused before any model loads (the scorer path does not exist)
        run = configs(
            tmp_path / "run", pairs_file, tmp_path / "no-such-scorer", generator(server, generator_model="x")
        )
        with pytest.raises(GeneratorOutage, match="does not serve"):
            synthesis.synthesize(*run, process_index=0, num_processes=1)
        gone = generator(server)
    with pytest.raises(GeneratorOutage, match=r"Cannot reach the generator at http://127\.0\.0\.1.*'test-model'"):
        check_generator(gone)  # the server has stopped
    check_generator(GeneratorConfig(generator_base_url=gone.generator_base_url))  # other backends: nothing to check


def test_health_check_explains_a_server_without_models(monkeypatch):
    with OpenAIServer(Writer()) as server:
        config = generator(server, generator_base_url=server.base_url.removesuffix("/v1") + "/other")
        with pytest.raises(GeneratorOutage, match="generator_health_check false"):
            check_generator(config)


def test_transport_failures_raise_only_when_asked():
    replies = {"ok": ["fine"], "bad": ServerReply(body="not json"), "long": ServerReply(400, CONTEXT_ERROR)}
    with OpenAIServer(lambda kind, payload: replies[payload["messages"][-1]["content"]]) as server:
        gen = OpenAIGenerator(generator(server, retries=0), backoff=0.0)
        chat = [Request([{"role": "user", "content": t}]) for t in ("ok", "bad", "long")]
        out = gen.generate(chat, Sampling())
        assert [c[0].error_kind for c in out] == [None, "parse", "context"]  # recorded, as the judge needs
        gen.raise_on_transport = True
        assert gen.generate([chat[0], chat[2]], Sampling())[1][0].error_kind == "context"  # the row's own
        with pytest.raises(GeneratorUnavailable, match=r"1 of 2 generator requests to http://.*'test-model'.*JSON"):
            gen.generate(chat[:2], Sampling())
    garbled = iter([ServerReply(body="<html>cut")])  # a body that is no JSON is asked again, as a network error

    def once(kind: str, payload: dict):
        return next(garbled, ["fine"])

    with OpenAIServer(once) as server:
        gen = OpenAIGenerator(generator(server, retries=1), backoff=0.0)
        gen.raise_on_transport = True
        assert gen.generate(chat[:1], Sampling())[0][0].text == "fine" and gen.stats["retries"] == 1


def test_outage_thresholds(tmp_path):
    error = GeneratorUnavailable("http://x/v1 (model 'm')", 1, 1, "HTTP 503")
    consecutive = PieceFailures(GeneratorConfig(generator_outage_consecutive=2), "http://x/v1", tmp_path)
    consecutive.add("piece-000000", error)
    consecutive.add("piece-000001", None)
    consecutive.add("piece-000002", error)
    with pytest.raises(GeneratorOutage, match="2 pieces in a row.*HTTP 503"):
        consecutive.add("piece-000003", error)
    share = PieceFailures(
        GeneratorConfig(generator_outage_consecutive=0, generator_outage_share=0.5, generator_outage_window=4),
        "http://x/v1",
        tmp_path,
    )
    for k, failed in enumerate([True, False, True]):  # the window is not full yet
        share.add(f"piece-{k:06d}", error if failed else None)
    with pytest.raises(GeneratorOutage, match="3 of the last 4 pieces failed"):
        share.add("piece-000003", error)
    with pytest.raises(PiecesFailed, match="piece-000000, piece-000002, piece-000003"):
        share.raise_if_any()
    PieceFailures(GeneratorConfig(), "x", tmp_path).raise_if_any()  # nothing failed: nothing raised
    with pytest.raises(ValueError, match="generator_outage_share"):
        GeneratorConfig(generator_outage_share=0.0)


@pytest.mark.slow
def test_a_served_scorer_that_fails_fails_its_piece_and_a_restart_writes_the_same_data(
    tmp_path, pairs_file, tiny_llama_dir
):
    """The scorer served as the official code serves it (prompt log-probs from a real model behind loopback): scorer
    requests lost in transport fail their piece like the generator's, never a row, and a restart redoes the piece."""
    from openai_server import logprobs_handler
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    served = logprobs_handler(model, tokenizer, fallback=Writer())
    scored = {"count": 0, "fail": range(0)}

    def handler(kind: str, payload: dict):
        if "prompt_logprobs" in payload:
            scored["count"] += 1
            if scored["count"] in scored["fail"]:
                return FAULTS["503"]
        return served(kind, payload)

    def run(out: Path, server: OpenAIServer):
        args, gen, search, filters, scorer = configs(out, pairs_file, tiny_llama_dir, generator(server, 0))
        scorer = dataclasses.replace(
            scorer,
            scorer_backend="openai",
            scorer_base_url=server.base_url,
            scorer_max_retries=0,
            scorer_max_length=4000,
        )
        search = dataclasses.replace(search, search_min_gain="0")  # a served scorer's noise floor is not measured
        never_stop = dataclasses.replace(gen, generator_outage_consecutive=0, generator_outage_share=1.0)
        return synthesis.synthesize(args, never_stop, search, filters, scorer, process_index=0, num_processes=1)

    with OpenAIServer(handler) as server:
        clean = run(tmp_path / "clean", server)
        scored["count"], scored["fail"] = 0, {15}  # a scorer request of a middle piece is lost
        with pytest.raises(PiecesFailed, match="ScorerUnavailable|scorer") as failed:
            run(tmp_path / "faulty", server)
        assert server.base_url in str(failed.value)
        assert len(written(tmp_path / "faulty")) == ROWS // 2 - 1  # one piece failed, the others were written
        scored["fail"] = range(0)
        summary = run(tmp_path / "faulty", server)
    assert rows_of(tmp_path / "faulty") == rows_of(tmp_path / "clean")
    assert summary["generator_failed_pieces"] == 1 and summary["kept"] == clean["kept"]
