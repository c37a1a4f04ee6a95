"""The ``openai`` scorer backend against a real loopback server that answers prompt log-probs from a real tiny model,
as ``vllm serve`` does (``tests/openai_server.py``): the same scores as in-process, every misconfigured server refused
with what it returned, every lost request an error (never a score), bounded concurrency, and no noise floor."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from openai_server import NOT_FOUND, OpenAIServer, ServerReply, logprobs_handler
from testing_utils import build_tiny_tokenizer
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from reer_hf.scoring import (
    STATUS_EMPTY_ANSWER,
    STATUS_OK,
    STATUS_TOO_LONG,
    EncodedRow,
    OpenAILogprobs,
    Scorer,
    ScorerConfig,
    ScorerServerError,
    ScorerUnavailable,
)
from reer_hf.scoring.noise import measure_noise_floor

ZH_QUERY = "写一段关于秋天的文字，语气安静。"
ZH_ANSWER = (
    "秋天的风吹过田野，树叶一片片落下，远处的山变成了金黄色。村口的老槐树下坐着几个老人，他们慢慢地说着今年的收成。🍂\n\n"
    "太阳落山的时候，炊烟从屋顶升起来，空气里有烤红薯的香味。我站在门口，看着路上的人一个个走回家，心里很安静。✨"
)
THINKINGS = ["Okay, the reader wants the voice first.\n\nHmm, maybe the rhythm matters more.", "", "Wait, no."]
MAX_LENGTH = 4000  # below the tiny models' 4096 positions, which the test server reports as its max_model_len


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def load(path):
    """The model in fp32, the scorer's tokenizer and a second copy of it for the server (as a server loads its own)."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return (tiny_llama_dir, *load(tiny_llama_dir))


def served_config(base_url: str, path, **overrides) -> ScorerConfig:
    values = dict(scorer_model=str(path), scorer_backend="openai", scorer_base_url=base_url)
    return ScorerConfig(**{"scorer_max_length": MAX_LENGTH, "scorer_dtype": "fp32", **values, **overrides})


def served_scorer(base_url: str, path, tokenizer, **overrides) -> Scorer:
    """A scorer served at ``base_url`` with no wait between retries (as the generator's fault tests use)."""
    config = served_config(base_url, path, **overrides)
    return Scorer(tokenizer, config, backend=OpenAILogprobs(config, tokenizer, backoff=0.0))


def rows(pairs):
    """Rows of several lengths, a Chinese one, K=2 candidates sharing a query and answer, one row over the context
    and one with an empty answer (the last two are settled locally, as in-process)."""
    queries, thinkings, answers = [], [], []
    for i, pair in enumerate(pairs[:3]):
        for k in range(2):
            queries.append(pair["query"])
            thinkings.append(THINKINGS[(i + k) % len(THINKINGS)])
            answers.append(pair["answer"][: 300 + 500 * i])
    queries += [ZH_QUERY, ZH_QUERY, pairs[3]["query"], pairs[4]["query"]]
    thinkings += [THINKINGS[0], THINKINGS[2], "", ""]
    answers += [ZH_ANSWER, ZH_ANSWER, pairs[3]["answer"] * 12, "  "]
    return queries, thinkings, answers


def kinds(server: OpenAIServer) -> list[str]:
    return [c.kind for c in server.calls]


def test_served_scores_equal_the_in_process_fp32_scores(tiny_model_dir, pairs):
    """The same rows scored in-process (fp32) and by the served model give the same scores to 1e-5, token for token,
    and the server gets exactly vLLM's request: the ids cut here, one token to generate, prompt_logprobs 0."""
    model, tokenizer, server_tokenizer = load(tiny_model_dir)
    queries, thinkings, answers = rows(pairs)
    local = Scorer(tokenizer, ScorerConfig(scorer_dtype="fp32", scorer_max_length=MAX_LENGTH), model=model)
    want = local.score(queries, thinkings, answers)
    with OpenAIServer(logprobs_model=(model, server_tokenizer)) as server:
        scorer = Scorer.from_config(served_config(server.base_url, tiny_model_dir))
        assert isinstance(scorer.backend, OpenAILogprobs)
        got = scorer.score(queries, thinkings, answers)
        encoded = [e for e in scorer.encode(queries, thinkings, answers) if isinstance(e, EncodedRow)]
        raw = scorer.backend(encoded)
    assert [r.status for r in got] == [r.status for r in want]
    assert [r.status for r in got][-2:] == [STATUS_TOO_LONG, STATUS_EMPTY_ANSWER]
    assert got[-2].score == want[-2].score == 1000.0
    for a, b in zip(got, want, strict=True):
        assert (a.n_scored, a.n_tokens) == (b.n_scored, b.n_tokens)
        if a.status == STATUS_OK:
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert a.nll == pytest.approx(b.nll, abs=1e-5)
    for lp, reference in zip(raw, local.backend(encoded), strict=True):  # every scored token, not just the means
        assert lp.tolist() == pytest.approx(reference.tolist(), abs=1e-5)

    assert kinds(server)[:2] == ["tokenize", "detokenize"] and kinds(server).count("tokenize") == 1  # checked once
    sent = [c.payload for c in server.calls if c.kind == "completions"]
    assert len(sent) == 2 * len(encoded)  # one request per row the scorer did not settle itself, per call
    assert sorted(p["prompt"] for p in sent[: len(encoded)]) == sorted(e.input_ids for e in encoded)
    assert all(
        set(p) == {"model", "prompt", "max_tokens", "temperature", "prompt_logprobs", "add_special_tokens"}
        for p in sent
    )
    assert {
        (p["model"], p["max_tokens"], p["temperature"], p["prompt_logprobs"], p["add_special_tokens"]) for p in sent
    } == {(str(tiny_model_dir), 1, 0, 0, False)}
    assert scorer.backend.stats["decoded_checked"] > 0  # the replies' decoded tokens were compared too


def _truncated(body: dict) -> dict:
    body["choices"][0]["prompt_logprobs"].pop()
    return body


def _sent_id_missing(body: dict) -> dict:
    entries = body["choices"][0]["prompt_logprobs"]
    for t in range(1, len(entries)):  # each position holds one other token, never the one sent
        sent, item = list(entries[t].items())[-1]  # the test server puts the sent token last
        entries[t] = {str(int(sent) + 1): item}
    return body


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (lambda body: {**body, "choices": [{"index": 0, "text": "reply 0"}]}, r"returned no prompt_logprobs.*reply 0"),
        (_truncated, r"returned (\d+) prompt_logprobs entries for a prompt of (?!\1)\d+ tokens.*prompt_logprobs"),
        (
            _sent_id_missing,
            r"no log-prob of the sent token (\d+) at prompt position \d+; it returned '\{\"(?!\1\")\d+\": \{\"logprob",
        ),
    ],
    ids=["no-prompt-logprobs", "fewer-entries", "sent-id-missing"],
)
def test_a_server_without_the_prompt_logprobs_is_refused_with_what_it_returned(llama, pairs, edit, refusal):
    path, model, tokenizer, server_tokenizer = llama
    served = logprobs_handler(model, server_tokenizer)

    def handler(kind: str, payload: dict):
        reply = served(kind, payload)
        return ServerReply(body=edit(reply.body)) if kind == "completions" else reply

    with OpenAIServer(handler) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with pytest.raises(ScorerServerError, match=refusal) as refused:
            scorer.score([pairs[0]["query"]], [""], [pairs[0]["answer"][:400]])
    assert isinstance(refused.value, ValueError) and not isinstance(refused.value, ScorerUnavailable)
    assert kinds(server).count("completions") == 1  # a misconfigured server is not asked again


def shifted(tokenizer) -> PreTrainedTokenizerFast:
    """``tokenizer`` with every ordinary token's id moved up by one (the last wrapping to the first): the same text
    pieces under other ids, as a server running another model's tokenizer of the same size."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    special = {t["id"] for t in state["added_tokens"]}
    plain = sorted(i for i in state["model"]["vocab"].values() if i not in special)
    moved = dict(zip(plain, plain[1:] + plain[:1], strict=True))
    state["model"]["vocab"] = {piece: moved.get(i, i) for piece, i in state["model"]["vocab"].items()}
    out = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)), eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    out.chat_template = tokenizer.chat_template
    return out


@pytest.mark.parametrize("other", ["shifted-ids", "smaller-vocab"])
def test_a_server_with_another_tokenizer_is_refused_before_anything_is_scored(llama, pairs, other):
    path, model, tokenizer, _ = llama
    served_tokenizer = shifted(tokenizer) if other == "shifted-ids" else build_tiny_tokenizer(vocab_size=400)
    text = pairs[0]["answer"] + ZH_ANSWER
    assert served_tokenizer(text)["input_ids"] != tokenizer(text)["input_ids"]
    with OpenAIServer(logprobs_model=(model, served_tokenizer)) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with pytest.raises(ScorerServerError, match=r"tokenizes a probe text differently.*first differ at token \d+"):
            scorer.score([pairs[0]["query"]], [""], [pairs[0]["answer"][:400]])
    assert kinds(server) == ["tokenize"] and not scorer.backend.checked  # nothing was sent to be scored


def test_a_server_that_detokenizes_otherwise_is_refused(llama, pairs):
    path, model, tokenizer, server_tokenizer = llama
    served = logprobs_handler(model, server_tokenizer)

    def handler(kind: str, payload: dict):
        return ServerReply(body={"prompt": "Other text."}) if kind == "detokenize" else served(kind, payload)

    with OpenAIServer(handler) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with pytest.raises(ScorerServerError, match=r"/detokenize .* other text .*character 0: server '\{\"prompt"):
            scorer.score([pairs[0]["query"]], [""], [pairs[0]["answer"][:400]])
    assert kinds(server) == ["tokenize", "detokenize"]


def test_without_tokenize_the_decoded_tokens_of_the_replies_are_checked(llama, pairs, caplog):
    """A server without /tokenize (404): the replies' decoded_token fields are compared with the local tokenizer's
    reading of the sent ids, which refuses a shifted vocabulary and lets the right one through, with a warning."""
    path, model, tokenizer, server_tokenizer = llama
    query, answer = pairs[0]["query"], pairs[0]["answer"][:600]

    def without_tokenize(served):
        return lambda kind, payload: ServerReply(404, NOT_FOUND) if kind == "tokenize" else served(kind, payload)

    with OpenAIServer(without_tokenize(logprobs_handler(model, shifted(tokenizer)))) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with pytest.raises(
            ScorerServerError, match=r"reads token \d+ \(prompt position \d+\) as .* another tokenizer"
        ):
            scorer.score([query], [""], [answer])
    with OpenAIServer(without_tokenize(logprobs_handler(model, server_tokenizer))) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with caplog.at_level(logging.WARNING, logger="reer_hf.scoring.openai_backend"):
            (result,) = scorer.score([query], [""], [answer])
    assert result.status == STATUS_OK and scorer.backend.stats["decoded_checked"] > 0
    assert "has no /tokenize (HTTP 404" in caplog.text and "Nothing checked" not in caplog.text
    assert kinds(server) == ["tokenize", "completions"]

    def undecoded(kind: str, payload: dict):  # nor decoded_token fields: nothing can vouch for the tokenizer
        reply = without_tokenize(logprobs_handler(model, server_tokenizer))(kind, payload)
        for entry in reply.body["choices"][0]["prompt_logprobs"][1:] if kind == "completions" else []:
            for item in entry.values():
                item["decoded_token"] = None
        return reply

    with OpenAIServer(undecoded) as server, caplog.at_level(logging.WARNING, logger="reer_hf.scoring.openai_backend"):
        (bare,) = served_scorer(server.base_url, path, tokenizer).score([query], [""], [answer])
    assert bare.score == result.score and "Nothing checked the tokenizer" in caplog.text


def test_a_context_shorter_than_scorer_max_length_is_refused_at_once(llama, pairs):
    path, model, tokenizer, server_tokenizer = llama
    handler = logprobs_handler(model, server_tokenizer, max_model_len=2048)
    with OpenAIServer(handler) as server:
        for max_length in (4000, None, 2048):
            scorer = served_scorer(server.base_url, path, tokenizer, scorer_max_length=max_length)
            with pytest.raises(ScorerServerError, match=r"context of 2048 tokens.*set scorer_max_length to 2047"):
                scorer.score([pairs[0]["query"]], [""], [pairs[0]["answer"][:400]])
        assert "completions" not in kinds(server)
        (result,) = served_scorer(server.base_url, path, tokenizer, scorer_max_length=2047).score(
            [pairs[0]["query"]], [""], [pairs[0]["answer"][:400]]
        )
    assert result.status == STATUS_OK


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (ServerReply(503, {"error": {"message": "overloaded"}}), r"HTTP 503.*overloaded"),
        (ServerReply(close_connection=True), r"ConnectionError"),
        (ServerReply(body="<html>bad gateway</html>"), r"not JSON.*bad gateway"),
        (ServerReply(404, {"message": "The model `x` does not exist."}), r"HTTP 404.*does not exist"),
    ],
    ids=["503", "dropped-connection", "not-json", "refused-request"],
)
def test_a_request_without_a_usable_reply_raises_scorer_unavailable(llama, pairs, fault, error):
    """No usable reply after the retries is ScorerUnavailable (where, how many, the last error), never a score; a
    request the server refused (an HTTP error other than "not now") is not retried."""
    path, model, tokenizer, server_tokenizer = llama
    served = logprobs_handler(model, server_tokenizer)
    with OpenAIServer(lambda kind, payload: fault if kind == "completions" else served(kind, payload)) as server:
        scorer = served_scorer(server.base_url, path, tokenizer, scorer_max_retries=2)
        with pytest.raises(ScorerUnavailable, match=error) as lost:
            scorer.score([pairs[0]["query"]] * 2, ["", "Hmm."], [pairs[0]["answer"][:400]] * 2)
        assert (lost.value.failed, lost.value.total) == (2, 2) and server.base_url in lost.value.where
    tries = 1 if fault.status == 404 else 3
    assert kinds(server).count("completions") == 2 * tries


def test_a_context_rejection_is_a_server_error_and_one_lost_request_fails_the_call(llama, pairs):
    path, model, tokenizer, server_tokenizer = llama
    served = logprobs_handler(model, server_tokenizer)
    too_long = ServerReply(400, {"message": "This model's maximum context length is 100 tokens."})
    queries, answers = [pairs[0]["query"], pairs[1]["query"]], [pairs[0]["answer"][:400], pairs[1]["answer"][:400]]
    with OpenAIServer(lambda kind, payload: too_long if kind == "completions" else served(kind, payload)) as server:
        scorer = served_scorer(server.base_url, path, tokenizer)
        with pytest.raises(ScorerServerError, match=r"refuses a prompt of \d+ tokens as too long.*scorer_max_length"):
            scorer.score(queries, None, answers)

    lost_prompt: list[int] = []

    def one_lost(kind: str, payload: dict):  # the second pair's request never gets an answer
        if kind == "completions" and payload["prompt"] == lost_prompt:
            return ServerReply(503)
        return served(kind, payload)

    with OpenAIServer(one_lost) as server:
        scorer = served_scorer(server.base_url, path, tokenizer, scorer_max_retries=1)
        lost_prompt.extend(scorer.encode(queries[1:], [""], answers[1:])[0].input_ids)
        with pytest.raises(
            ScorerUnavailable, match=r"^1 of 2 scorer requests to .* failed; the last error: .*HTTP 503"
        ):
            scorer.score(queries, None, answers)
        assert scorer.backend.stats["retries"] == 1


def test_an_unreachable_server_raises_scorer_unavailable(llama, pairs):
    path, _, tokenizer, _ = llama
    with OpenAIServer() as server:
        base_url = server.base_url
    scorer = served_scorer(base_url, path, tokenizer, scorer_max_retries=1)  # the port is closed now
    with pytest.raises(ScorerUnavailable, match=r"1 of 1 scorer requests to .* failed.*ConnectionError"):
        scorer.score([pairs[0]["query"]], [""], [pairs[0]["answer"][:400]])
    assert not scorer.backend.checked


def test_concurrency_is_bounded_by_scorer_max_concurrency(llama, pairs):
    path, model, tokenizer, server_tokenizer = llama
    served = logprobs_handler(model, server_tokenizer)

    def slow(kind: str, payload: dict):
        reply = served(kind, payload)
        reply.delay = 0.1 if kind == "completions" else 0.0
        return reply

    queries, thinkings, answers = rows(pairs)
    want = Scorer(tokenizer, ScorerConfig(scorer_dtype="fp32", scorer_max_length=MAX_LENGTH), model=model).score(
        queries, thinkings, answers
    )
    with OpenAIServer(slow) as server:
        got = served_scorer(server.base_url, path, tokenizer, scorer_max_concurrency=3).score(
            queries, thinkings, answers
        )
    assert server.max_in_flight == 3  # 8 rows, 3 at a time, each held by the server for 0.1 s
    assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5, nan_ok=True)  # input order


def test_search_min_gain_auto_is_refused_with_an_openai_scorer_as_with_vllm(llama):
    """A served scorer holds no model to copy in fp32, so its noise floor cannot be measured: ``search_min_gain
    auto`` stops the run and asks for a number, in the same words as for a vLLM scorer."""
    from reer_hf.synthesis.noise_floor import NoiseFloorUnavailable, check_backend, require

    path, _, tokenizer, _ = llama
    messages = {}
    for backend in ("vllm", "openai"):
        with pytest.raises(
            NoiseFloorUnavailable, match=f"{backend} scorer holds no transformers model.*a number"
        ) as e:
            check_backend(ScorerConfig(scorer_backend=backend))
        messages[backend] = str(e.value)
    assert messages["openai"] == messages["vllm"].replace("vllm", "openai")
    with OpenAIServer() as server:  # measuring it asks nothing of the server
        scorer = served_scorer(server.base_url, path, tokenizer)
        floor = measure_noise_floor(scorer, ["q"], [""], ["a"])
    assert floor.max is None and "holds no transformers model" in floor.note and not server.calls
    with pytest.raises(NoiseFloorUnavailable, match="it cannot be measured.*search_min_gain to a number"):
        require(floor)
