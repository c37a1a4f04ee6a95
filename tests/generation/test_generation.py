"""The generator backends on real computation: transformers sampling with a tiny model, and the openai backend against
a real HTTP server on loopback (tests/openai_server.py) that scripts replies, errors and dropped connections."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
import torch
from openai_server import OpenAIServer, ServerReply, completion_body, scripted
from testing_utils import build_tiny_model

from reer_hf.core.endpoint import Endpoint
from reer_hf.generation import (
    ERROR_KINDS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    EndpointGenerator,
    GeneratorUnavailable,
    OpenAIGenerator,
    Request,
    Sampling,
    TransformersGenerator,
    VLLMGenerator,
    build_generator,
    generator_endpoint,
    render_prompt,
)
from reer_hf.generation.config import GeneratorConfig
from reer_hf.generation.openai_backend import _split_tokens

PREFILL = "<think>\nOkay, I am given"


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a writer."}, {"role": "user", "content": text}]


def user_text(payload: dict) -> str:
    """The user message of a chat payload, or the prompt of a completions payload: which request a call is."""
    return payload["messages"][1]["content"] if "messages" in payload else payload["prompt"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """A proxy from the environment must not see loopback calls."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ---------------------------------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny_generator(tiny_tokenizer) -> TransformersGenerator:
    model = build_tiny_model("llama", len(tiny_tokenizer)).eval()
    return TransformersGenerator(model, tiny_tokenizer, batch_size=16)


@pytest.fixture
def requests_5() -> list[Request]:
    return [Request(chat(f"Write about topic {i}. " * (i % 3 + 1)), prefill=PREFILL) for i in range(5)]


GREEDY = Sampling(n=1, temperature=0.0, max_new_tokens=10)


def texts(out: list[list[Completion]]) -> list[list[str]]:
    return [[c.text for c in cs] for cs in out]


def test_transformers_n_per_request_and_seeds(tiny_generator, requests_5):
    sampling = Sampling(n=3, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=1)
    out = tiny_generator.generate(requests_5, sampling)
    assert [len(cs) for cs in out] == [3] * 5
    assert all(c.finish_reason in (FINISH_STOP, FINISH_LENGTH) and 0 < c.n_tokens <= 8 for cs in out for c in cs)
    assert texts(tiny_generator.generate(requests_5, sampling)) == texts(out)
    other = tiny_generator.generate(requests_5, Sampling(n=3, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=2))
    assert texts(other) != texts(out)
    assert len({c.text for cs in out for c in cs}) > 5  # real sampling, not one text repeated


def test_transformers_greedy_in_request_order_whatever_the_batch_size(tiny_generator, requests_5):
    """Greedy decoding of a fp32 model with left padding and an attention mask is batch-invariant, so each request's
    completion must equal the completion of that request alone, whatever the batch size."""
    alone = [tiny_generator.generate([r], GREEDY)[0] for r in requests_5]
    for batch_size in (16, 2):
        generator = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, batch_size=batch_size)
        assert texts(generator.generate(requests_5, GREEDY)) == texts(alone)
    assert len({c.text for cs in alone for c in cs}) > 1  # different prompts, different texts: order is tested


def test_transformers_length_and_stop(tiny_generator, requests_5):
    full = tiny_generator.generate(requests_5[:1], GREEDY)[0][0]
    assert full.finish_reason == FINISH_LENGTH and full.n_tokens == GREEDY.max_new_tokens
    stop = re.search(r"[A-Za-z]{3,}", full.text).group()  # an ASCII word the model writes
    with_stop = Sampling(n=1, temperature=0.0, max_new_tokens=10, stop=[stop])
    cut = tiny_generator.generate(requests_5[:1], with_stop)[0][0]
    assert cut.finish_reason == FINISH_STOP
    assert cut.text == full.text[: full.text.index(stop)] and stop not in cut.text
    assert cut.n_tokens < GREEDY.max_new_tokens  # generation stopped at the stop string


def test_transformers_top_k_one_is_greedy(tiny_generator, requests_5):
    """top_k reaches the sampler: sampling at temperature 1 from the single most likely token is greedy decoding."""
    top1 = Sampling(n=1, temperature=1.0, top_p=1.0, top_k=1, max_new_tokens=10, seed=3)
    assert texts(tiny_generator.generate(requests_5, top1)) == texts(tiny_generator.generate(requests_5, GREEDY))
    free = Sampling(n=1, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=3)
    assert texts(tiny_generator.generate(requests_5, free)) != texts(tiny_generator.generate(requests_5, GREEDY))


def test_openai_top_k_is_sent_only_when_set():
    requests = [Request(chat("an essay"))]
    with OpenAIServer(lambda kind, payload: ["reply"]) as server:
        generator = OpenAIGenerator(openai_config(server, generator_prefill_mode="none"))
        generator.generate(requests, Sampling(top_k=20))
        generator.generate(requests, Sampling())
    with_k, without = server.requests
    assert with_k["top_k"] == 20 and "top_k" not in without


def test_openai_reasoning_content_is_put_back_as_thinking():
    """A server run with a reasoning parser (vllm serve --reasoning-parser) returns the thinking apart."""
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"content": "The answer.", "reasoning_content": "A plan."},
            }
        ],
        "usage": {"completion_tokens": 5},
    }
    with OpenAIServer(lambda kind, payload: ServerReply(body=body)) as server:
        out = OpenAIGenerator(openai_config(server, generator_prefill_mode="none")).generate(
            [Request(chat("x"))], Sampling()
        )
    assert out[0][0].text == "<think>\nA plan.\n</think>\n\nThe answer."


def test_transformers_prefill_is_in_the_prompt(tiny_generator, requests_5):
    tok = tiny_generator.tokenizer
    rendered = render_prompt(tok, requests_5[0])
    assert rendered.endswith("<|im_start|>assistant\n" + PREFILL)
    seen = []
    model = tiny_generator.model
    whole = TransformersGenerator(model, tok, carry_prompts=0)  # nothing carried: every prompt is prefilled whole
    hook = model.register_forward_pre_hook(lambda m, args, kw: seen.append(kw["input_ids"]), with_kwargs=True)
    try:
        whole.generate(requests_5[:2], GREEDY)
    finally:
        hook.remove()
    for prefill, request in zip(seen[:2], requests_5[:2], strict=True):  # one unpadded prefill per prompt
        assert tok.decode(prefill[0], skip_special_tokens=False) == render_prompt(tok, request)
    plain = [Request(r.messages) for r in requests_5[:2]]
    assert texts(tiny_generator.generate(plain, GREEDY)) != texts(tiny_generator.generate(requests_5[:2], GREEDY))


# ---------------------------------------------------------------------------------------------------------- openai


def openai_config(server: OpenAIServer, **kwargs) -> GeneratorConfig:
    defaults = dict(
        generator_backend="openai",
        generator_base_url=server.base_url,
        generator_model="served-model",
        generator_api_key_env="REER_TEST_API_KEY",
        generator_max_concurrency=4,
        generator_max_retries=3,
        generator_timeout=10.0,
    )
    return GeneratorConfig(**{**defaults, **kwargs})


def by_n(kind: str, payload: dict) -> list[str]:
    """``n`` choice texts that name their request (chat) and index."""
    tag = user_text(payload) if kind == "chat" else "completion"
    return [f"{tag} #{i}" for i in range(payload.get("n", 1))]


def test_openai_continue_mode_payload(monkeypatch):
    monkeypatch.delenv("REER_TEST_API_KEY", raising=False)
    requests = [Request(chat("first topic"), prefill=PREFILL), Request(chat("other topic"))]
    sampling = Sampling(n=2, temperature=0.7, top_p=0.9, max_new_tokens=64, seed=10, stop=["</think>"])
    with OpenAIServer(by_n) as server:
        generator = build_generator(openai_config(server))
        assert isinstance(generator, OpenAIGenerator)
        out = generator.generate(requests, sampling)
    assert texts(out) == [["first topic #0", "first topic #1"], ["other topic #0", "other topic #1"]]
    assert all(c.finish_reason == FINISH_STOP and c.n_tokens == 3 for cs in out for c in cs)
    assert {c.kind for c in server.calls} == {"chat"}
    assert not any("Authorization" in c.headers for c in server.calls)  # no key in the environment
    payloads = {user_text(p): p for p in server.requests}
    first, other = payloads["first topic"], payloads["other topic"]
    common = dict(model="served-model", temperature=0.7, top_p=0.9, max_tokens=64, n=2, stop=["</think>"])
    assert first == {
        **common,
        "seed": 10,
        "messages": [*requests[0].messages, {"role": "assistant", "content": PREFILL}],
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    assert other == {**common, "seed": 11, "messages": requests[1].messages}  # no pre-fill: a plain chat call


def test_openai_completions_mode_renders_the_tiny_chat_template(tiny_llama_dir, tiny_tokenizer):
    requests = [
        Request(chat("a poem about autumn"), prefill=PREFILL),
        Request(chat("a letter"), prefill="<analyze>\n"),
    ]
    with OpenAIServer(by_n) as server:
        config = openai_config(server, generator_prefill_mode="completions", generator_model=str(tiny_llama_dir))
        out = OpenAIGenerator(config).generate(requests, Sampling(n=1, max_new_tokens=16))
    assert {c.kind for c in server.calls} == {"completions"}
    prompts = sorted(p["prompt"] for p in server.requests)
    expected = sorted(render_prompt(tiny_tokenizer, r) for r in requests)
    assert prompts == expected
    assert any(p.endswith("<|im_start|>assistant\n" + PREFILL) and "a poem about autumn" in p for p in prompts)
    assert all("messages" not in p and p["model"] == str(tiny_llama_dir) for p in server.requests)
    assert "seed" not in server.requests[0] and "stop" not in server.requests[0]  # only when given
    assert [len(cs) for cs in out] == [1, 1] and out[0][0].text.endswith(" #0")


def test_openai_none_mode_sends_the_plain_chat():
    requests = [Request(chat("an essay"), prefill=PREFILL)]
    with OpenAIServer(lambda kind, payload: ["the whole reply"]) as server:
        out = OpenAIGenerator(openai_config(server, generator_prefill_mode="none")).generate(requests, Sampling())
    (payload,) = server.requests
    assert payload["messages"] == requests[0].messages and "continue_final_message" not in payload
    assert out[0][0].text == "the whole reply"


def test_openai_choices_in_order_missing_cut_and_finish_reasons():
    def handler(kind: str, payload: dict):
        text = user_text(payload)
        if text == "reversed":  # choices listed out of order: their "index" decides
            body = completion_body(kind, ["zero zero", "one", "two two two"])
            body["choices"].reverse()
            return ServerReply(body=body)
        if text == "fewer":
            return ["only one"]
        if text == "stop ignored":
            return ["before STOP after", "clean"]
        return ServerReply(body=completion_body(kind, ["a b c", "d"], finish_reason="length", usage=False))

    names = ["reversed", "fewer", "stop ignored", "truncated"]
    with OpenAIServer(handler) as server:
        generator = OpenAIGenerator(openai_config(server))
        out = generator.generate([Request(chat(n)) for n in names], Sampling(n=3, stop=["STOP"]))
    reversed_, fewer, stop, truncated = out
    assert [c.text for c in reversed_] == ["zero zero", "one", "two two two"]
    assert [c.n_tokens for c in reversed_] == [2, 1, 3]  # 6 words of usage shared in proportion to length
    assert fewer[0].text == "only one" and fewer[0].n_tokens == 2
    assert [c.finish_reason for c in fewer[1:]] == [FINISH_ERROR] * 2 and "1 usable of 3" in fewer[1].error
    assert [c.error_kind for c in fewer] == [None, "parse", "parse"]  # an incomplete reply
    assert [(c.text, c.finish_reason) for c in stop[:2]] == [("before ", FINISH_STOP), ("clean", FINISH_STOP)]
    assert [(c.text, c.n_tokens, c.finish_reason) for c in truncated[:2]] == [
        ("a b c", 3, FINISH_LENGTH),  # no usage in the reply: words
        ("d", 1, FINISH_LENGTH),
    ]
    assert truncated[2].finish_reason == FINISH_ERROR and stop[2].finish_reason == FINISH_ERROR
    assert generator.stats["errors"] == 4 and generator.stats["completions"] == 12


#: finish_reason as servers send it -> what the completion is: a stop, a cut, or a failure of kind "aborted"
FINISH_REASONS = {
    "stop": (FINISH_STOP, None),  # OpenAI, vLLM, SGLang, llama.cpp
    "eos_token": (FINISH_STOP, None),  # text-generation-inference
    "stop_sequence": (FINISH_STOP, None),  # text-generation-inference
    "eos": (FINISH_STOP, None),
    None: (FINISH_STOP, None),  # a server that sends no reason
    "length": (FINISH_LENGTH, None),
    "repetition": (FINISH_LENGTH, None),  # vLLM cut a loop
    "abort": (FINISH_ERROR, "aborted"),  # vLLM, SGLang: the server ended the request
    "error": (FINISH_ERROR, "aborted"),  # vLLM
    "content_filter": (FINISH_ERROR, "aborted"),  # OpenAI
    "tool_calls": (FINISH_ERROR, "aborted"),
}


def test_only_a_natural_end_is_a_stop_and_an_aborted_completion_is_a_transport_failure():
    reasons = list(FINISH_REASONS)

    def handler(kind: str, payload: dict):
        reason = reasons[int(user_text(payload))]
        return ServerReply(body=completion_body(kind, ["half a tho"], finish_reason=reason))

    requests = [Request(chat(str(i))) for i in range(len(reasons))]
    with OpenAIServer(handler) as server:
        generator = OpenAIGenerator(openai_config(server))
        out = generator.generate(requests, Sampling())
        for reason, (completion,) in zip(reasons, out, strict=True):
            finish, kind = FINISH_REASONS[reason]
            assert (completion.finish_reason, completion.error_kind) == (finish, kind), reason
            assert completion.text == ("" if kind else "half a tho")  # an aborted text is no data
            if kind:
                assert f"finish_reason {reason!r}" in completion.error
        generator.raise_on_transport = True  # the synthesis run: the piece fails, and a later run redoes it
        with pytest.raises(GeneratorUnavailable, match="finish_reason 'abort'"):
            generator.generate([requests[reasons.index("abort")]], Sampling())
    assert "aborted" in ERROR_KINDS


@pytest.mark.parametrize(("total", "expected"), [(0, [0, 0, 0, 0]), (7, [1, 4, 0, 2]), (100, [14, 57, 0, 29])])
def test_split_tokens_sums_to_the_usage(total, expected):
    assert _split_tokens(total, ["a", "bbbb", "", "cc"]) == expected  # in proportion to length, largest remainders
    assert _split_tokens(5, ["", ""]) in ([3, 2], [2, 3])


def test_openai_bounded_concurrency():
    requests = [Request(chat(f"request {i}")) for i in range(12)]
    with OpenAIServer(lambda kind, payload: ServerReply(texts=[user_text(payload)], delay=0.2)) as server:
        generator = OpenAIGenerator(openai_config(server, generator_max_concurrency=3))
        start = time.perf_counter()
        out = generator.generate(requests, Sampling(n=1))
        elapsed = time.perf_counter() - start
    assert [cs[0].text for cs in out] == [f"request {i}" for i in range(12)]
    assert 1 < server.max_in_flight <= 3
    assert elapsed >= 0.2 * 12 / 3 - 0.05  # never more than 3 at once


def flaky(*failures: ServerReply):
    """A handler whose request named "flaky" gets ``failures`` first, then succeeds; others succeed at once."""
    seen = Counter()
    lock = threading.Lock()

    def handler(kind: str, payload: dict):
        text = user_text(payload)
        with lock:
            attempt = seen[text]
            seen[text] += 1
        if text == "flaky" and attempt < len(failures):
            return failures[attempt]
        return [f"ok {text}"] * payload.get("n", 1)

    return handler


def test_openai_retries_network_errors_then_succeeds():
    failures = (ServerReply(503, "overloaded"), ServerReply(close_connection=True), ServerReply(429, "slow down"))
    requests = [Request(chat("flaky")), Request(chat("steady"))]
    with OpenAIServer(flaky(*failures)) as server:
        generator = OpenAIGenerator(openai_config(server), backoff=0.01)
        out = generator.generate(requests, Sampling(n=1))
    assert texts(out) == [["ok flaky"], ["ok steady"]]
    assert generator.stats["retries"] == 3 and generator.stats["errors"] == 0
    assert [user_text(p) for p in server.requests].count("flaky") == 4


def test_openai_retries_a_timeout():
    with OpenAIServer(flaky(ServerReply(texts=["late"], delay=1.0))) as server:
        generator = OpenAIGenerator(openai_config(server, generator_timeout=0.3), backoff=0.01)
        out = generator.generate([Request(chat("flaky"))], Sampling(n=1))
    assert texts(out) == [["ok flaky"]] and generator.stats["retries"] == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_openai_client_errors_are_not_retried(status):
    body = {"error": {"message": "max_tokens is too large for this model", "code": status}}
    requests = [Request(chat("steady 1")), Request(chat("flaky")), Request(chat("steady 2"))]
    with OpenAIServer(flaky(ServerReply(status, body))) as server:
        generator = OpenAIGenerator(openai_config(server), backoff=0.01)
        out = generator.generate(requests, Sampling(n=2))
    assert [user_text(p) for p in server.requests].count("flaky") == 1
    assert generator.stats["retries"] == 0 and generator.stats["errors"] == 2
    failed = out[1]
    assert [c.finish_reason for c in failed] == [FINISH_ERROR] * 2
    assert f"HTTP {status}" in failed[0].error and "max_tokens is too large" in failed[0].error
    assert [c.error_kind for c in failed] == ["http", "http"] and out[0][0].error_kind is None
    assert [c.text for c in out[0] + out[2]] == ["ok steady 1"] * 2 + ["ok steady 2"] * 2


@pytest.mark.parametrize(
    ("body", "message"),
    [("<html>bad gateway</html>", "not JSON"), ({"object": "error"}, "no choices"), ({"choices": []}, "no choices")],
)
def test_openai_malformed_replies_fail_without_retry(body, message):
    with OpenAIServer(flaky(ServerReply(200, body))) as server:
        generator = OpenAIGenerator(openai_config(server), backoff=0.01)
        out = generator.generate([Request(chat("flaky")), Request(chat("steady"))], Sampling(n=1))
    assert out[0][0].finish_reason == FINISH_ERROR and message in out[0][0].error
    assert out[0][0].error_kind == "parse"
    assert out[1][0].text == "ok steady"
    assert generator.stats["retries"] == 0 and len(server.requests) == 2


def test_openai_gives_up_after_max_retries():
    with OpenAIServer(lambda kind, payload: ServerReply(503, "still overloaded")) as server:
        generator = OpenAIGenerator(openai_config(server, generator_max_retries=2), backoff=0.01)
        out = generator.generate([Request(chat("doomed"))], Sampling(n=2))
    assert len(server.requests) == 3 and generator.stats["retries"] == 2
    assert [c.finish_reason for c in out[0]] == [FINISH_ERROR] * 2
    assert "gave up after 2 retries" in out[0][0].error and "HTTP 503" in out[0][0].error
    assert "still overloaded" in out[0][0].error
    assert [c.error_kind for c in out[0]] == ["network", "network"]


def test_openai_unreachable_server_is_a_failed_completion():
    with OpenAIServer() as server:
        config = openai_config(server, generator_max_retries=1)
    out = OpenAIGenerator(config, backoff=0.01).generate([Request(chat("x"))], Sampling(n=1))  # server is gone
    assert out[0][0].finish_reason == FINISH_ERROR and "ConnectionError" in out[0][0].error
    assert out[0][0].error_kind == "network"


def test_an_endpoint_of_ones_own_and_the_generator_options_endpoint(monkeypatch):
    """The judge's way: a generator on an :class:`Endpoint` built from other options; the ``openai`` backend builds
    the same type from the ``generator_*`` options."""
    monkeypatch.setenv("REER_TEST_API_KEY", "sk-own")
    with OpenAIServer(lambda kind, payload: ["judged"]) as server:
        endpoint = Endpoint(server.base_url, "critic", "REER_TEST_API_KEY", 5.0, 0, 2, 0.0)
        generator = EndpointGenerator(endpoint)
        out = generator.generate([Request(chat("x"), prefill=PREFILL)], Sampling(n=1))
        generator.close()
        config = openai_config(server, generator_prefill_mode="completions")
    assert out[0][0].text == "judged" and not generator.sees_prefill  # "none": the plain chat
    (call,) = server.calls
    assert call.payload["model"] == "critic" and call.payload["messages"] == chat("x")
    assert call.headers["Authorization"] == "Bearer sk-own"
    assert generator_endpoint(config, backoff=0.5) == Endpoint(
        config.generator_base_url, "served-model", "REER_TEST_API_KEY", 10.0, 3, 4, 0.5
    )
    assert OpenAIGenerator(config).endpoint == generator_endpoint(config, backoff=1.0)
    assert ERROR_KINDS == ("network", "http", "parse", "context", "aborted")
    with pytest.raises(ValueError, match="prefill_mode"):
        EndpointGenerator(endpoint, prefill_mode="sometimes")
    with pytest.raises(ValueError, match="max_concurrency"):
        Endpoint("http://h/v1", "critic", None, 5.0, 0, 0, 0.0)
    assert Endpoint("http://h/v1/", "m", None, 1.0, 0, 1, 0.0).url("completions") == "http://h/v1/completions"


def test_openai_api_key_header(monkeypatch):
    monkeypatch.setenv("REER_TEST_API_KEY", "sk-test-123")
    with OpenAIServer() as server:
        OpenAIGenerator(openai_config(server)).generate([Request(chat("x"))], Sampling(n=2))
    assert server.calls[0].headers["Authorization"] == "Bearer sk-test-123"


def test_scripted_server_replies_in_order():
    with OpenAIServer(scripted(["one"], ServerReply(404, "gone"))) as server:
        generator = OpenAIGenerator(openai_config(server, generator_max_concurrency=1, generator_max_retries=0))
        out = generator.generate([Request(chat("a")), Request(chat("b")), Request(chat("c"))], Sampling(n=1))
    assert out[0][0].text == "one" and "HTTP 404" in out[1][0].error
    assert "HTTP 500" in out[2][0].error and "no reply left" in out[2][0].error


# ------------------------------------------------------------------------------------------------------------ vllm


def test_vllm_missing_says_how_to_install():
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed")
    with pytest.raises(ImportError, match=r"pip install 'reer-hf\[vllm\]'"):
        build_generator(GeneratorConfig(generator_backend="vllm"))


@pytest.mark.gpu
def test_vllm_generator(demo_model_dir):
    """The demo model (a real Llama architecture with 64-dim heads, which every vLLM attention backend supports)."""
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    config = GeneratorConfig(
        generator_backend="vllm",
        generator_model=str(demo_model_dir),
        generator_dtype="bf16",
        generator_vllm_kwargs=dict(gpu_memory_utilization=0.3, max_model_len=2048, enforce_eager=True),
    )
    generator = build_generator(config)
    assert isinstance(generator, VLLMGenerator)
    requests = [Request(chat(f"Write a line about topic {i}."), prefill=PREFILL) for i in range(3)]
    sampling = Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=3)
    out = generator.generate(requests, sampling)
    assert [len(cs) for cs in out] == [2, 2, 2]
    for c in (c for cs in out for c in cs):
        assert c.error is None and 0 < c.n_tokens <= 8
        assert c.finish_reason == FINISH_STOP or c.n_tokens == 8
    assert texts(generator.generate(requests, sampling)) == texts(out)  # per-request seeds
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=8, stop=["\n\n"])
    first = generator.generate(requests, greedy)
    assert texts(generator.generate(requests, greedy)) == texts(first)
    assert all("\n\n" not in cs[0].text for cs in first)


def test_transformers_greedy_equals_generate_of_each_prompt_alone(tiny_tokenizer, requests_5):
    """The decoder against transformers' own ``generate``, one prompt at a time: prompts of different lengths in one
    batch (left padding), two samples of each from one prefill, rows leaving the batch at a stop string, and the
    repetition penalty over prompt and output."""
    model = build_tiny_model("llama", len(tiny_tokenizer)).eval()
    generator = TransformersGenerator(model, tiny_tokenizer)
    sampling = Sampling(n=2, temperature=0.0, max_new_tokens=16, repetition_penalty=1.3)
    out = generator.generate(requests_5, sampling)
    for request, completions in zip(requests_5, out, strict=True):
        ids = tiny_tokenizer(render_prompt(tiny_tokenizer, request), add_special_tokens=False, return_tensors="pt")
        reference = model.generate(
            **ids, max_new_tokens=16, do_sample=False, repetition_penalty=1.3, pad_token_id=tiny_tokenizer.pad_token_id
        )[0, ids["input_ids"].shape[1] :]
        expected = tiny_tokenizer.decode(reference, skip_special_tokens=True)
        assert [c.text for c in completions] == [expected, expected]
    # a stop string ends some rows early: the others go on as they would alone
    stop = re.search(r"[A-Za-z]{3,}", out[0][0].text).group()
    cut = Sampling(n=1, temperature=0.0, max_new_tokens=16, repetition_penalty=1.3, stop=[stop])
    together = generator.generate(requests_5, cut)
    assert texts(together) == [
        generator.generate([r], cut)[0] and texts(generator.generate([r], cut))[0] for r in requests_5
    ]
    assert any(c.n_tokens < 16 for cs in together for c in cs) and any(c.n_tokens == 16 for cs in together for c in cs)


def test_transformers_prefills_each_distinct_prompt_once(tiny_tokenizer, requests_5):
    model = build_tiny_model("llama", len(tiny_tokenizer)).eval()
    generator = TransformersGenerator(model, tiny_tokenizer, carry_prompts=0)  # each prompt prefilled whole
    generator.eos_ids = set()  # no sample ends early: every one is in the decode batch
    requests = [requests_5[0], requests_5[1], Request(requests_5[0].messages, requests_5[0].prefill)]  # one repeated
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        generator.generate(requests, Sampling(n=4, max_new_tokens=3, seed=0))
    finally:
        hook.remove()
    lengths = [
        len(tiny_tokenizer(render_prompt(tiny_tokenizer, r), add_special_tokens=False)["input_ids"]) for r in requests
    ]
    assert seen[:2] == [(1, lengths[0]), (1, lengths[1])]  # two distinct prompts, each run once
    assert seen[2] == (12, 1)  # then 3 requests x 4 samples decode together
    assert generator.stats["prompt_tokens"] == lengths[0] + lengths[1]
    assert generator.stats["prompt_tokens_requested"] == 4 * sum(lengths)


def test_transformers_samples_follow_their_request_seed_whatever_the_batch(tiny_generator, requests_5):
    """A request's samples come from its own seed and their index: the same alone, in another batch, in another
    position; another seed draws others."""
    seeded = [Request(r.messages, r.prefill, seed=100 + i) for i, r in enumerate(requests_5)]
    sampling = Sampling(n=2, temperature=1.0, top_p=0.9, max_new_tokens=8, seed=7)
    together = texts(tiny_generator.generate(seeded, sampling))
    alone = [texts(tiny_generator.generate([r], sampling))[0] for r in seeded]
    reversed_order = texts(tiny_generator.generate(seeded[::-1], sampling))[::-1]
    assert together == alone == reversed_order
    assert all(a != b for a, b in together)  # the two samples of a request differ
    reseeded = [Request(r.messages, r.prefill, seed=200 + i) for i, r in enumerate(requests_5)]
    assert texts(tiny_generator.generate(reseeded, sampling)) != together


def test_the_nucleus_is_the_one_transformers_keeps():
    """Every draw lies in the set transformers' TopPLogitsWarper keeps, and draws cover it."""
    from transformers.generation.logits_process import TopPLogitsWarper

    from reer_hf.generation.decoding import NUCLEUS_CANDIDATES, SamplingRule, choose

    torch.manual_seed(0)
    peaked = torch.full((1, 5000), -30.0)
    peaked[0, :6] = torch.tensor([3.0, 2.5, 2.0, 1.0, 0.5, 0.0])
    flat = torch.randn(1, 5000) * 0.1  # a nucleus far wider than NUCLEUS_CANDIDATES: the full sort
    for logits in (peaked, flat):
        kept = set(torch.isfinite(TopPLogitsWarper(0.85)(None, logits.clone()))[0].nonzero().flatten().tolist())
        rule = SamplingRule(temperature=1.0, top_p=0.85)
        g = torch.Generator().manual_seed(1)
        draws = {choose(logits, rule, [g])[0] for _ in range(400)}
        assert draws <= kept
        if len(kept) < 10:
            assert draws == kept
        else:
            assert len(kept) > NUCLEUS_CANDIDATES and len(draws) > 100


def test_generator_and_scorer_share_weights_whenever_the_resolved_dtype_agrees():
    from reer_hf.core.models import resolve_dtype
    from reer_hf.scoring.config import ScorerConfig
    from reer_hf.synthesis.runner import same_weights

    spelled = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float16: "fp16"}[resolve_dtype("auto", "cpu")]
    cpu = dict(generator_device="cpu")
    assert same_weights(
        GeneratorConfig(generator_dtype="auto", **cpu), ScorerConfig(scorer_dtype=spelled, scorer_device="cpu")
    )
    assert same_weights(
        GeneratorConfig(generator_dtype="fp32", **cpu), ScorerConfig(scorer_dtype="float32", scorer_device="cpu")
    )
    other = "fp32" if spelled != "fp32" else "bf16"
    assert not same_weights(
        GeneratorConfig(generator_dtype="auto", **cpu), ScorerConfig(scorer_dtype=other, scorer_device="cpu")
    )
    assert not same_weights(
        GeneratorConfig(generator_model="some/other-model", generator_dtype="fp32", **cpu),
        ScorerConfig(scorer_dtype="fp32", scorer_device="cpu"),
    )


def test_a_prompt_that_starts_like_an_earlier_one_prefills_only_what_it_adds(tiny_tokenizer):
    """The search's next step repeats the previous prompt's start: its prefill runs from the carried keys and values
    and decodes what a fresh prefill decodes."""
    model = build_tiny_model("llama", len(tiny_tokenizer)).eval()
    carried = TransformersGenerator(model, tiny_tokenizer, carry_prompts=4)
    fresh = TransformersGenerator(model, tiny_tokenizer, carry_prompts=0)
    first = Request(chat("The query and the answer, repeated at every step. " * 6 + "Segment one."), PREFILL)
    second = Request(chat("The query and the answer, repeated at every step. " * 6 + "Segment two, longer."), PREFILL)
    greedy = Sampling(n=2, temperature=0.0, max_new_tokens=8)
    carried.generate([first], greedy)
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: seen.append(kw["input_ids"].shape[1]), with_kwargs=True)
    try:
        out = carried.generate([second], greedy)
    finally:
        hook.remove()
    ids = [
        tiny_tokenizer(render_prompt(tiny_tokenizer, r), add_special_tokens=False)["input_ids"]
        for r in (first, second)
    ]
    shared = next(k for k, (a, b) in enumerate(zip(*ids, strict=False)) if a != b)
    assert seen[0] == len(ids[1]) - shared  # only the tokens after the shared start
    assert carried.stats["prompt_tokens_carried"] == shared > 50
    assert texts(out) == texts(fresh.generate([second], greedy))
    carried.reset()
    assert not carried.carry.entries
