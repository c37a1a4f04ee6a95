"""The generator LLM behind one small interface: transformers ``generate``, the vLLM offline engine, or any
OpenAI-compatible server.

Every backend takes chat requests whose assistant turn may be pre-filled (``"<think>\\n" + opener``,
``"<analyze>\\n"``) and returns, per request, ``n`` completions: the text after the pre-fill (without the stop string),
its token count and why it ended (the types and the finish reasons are :mod:`~reer_hf.synthesis.completion`'s). A
failure of one request (a network error after the retries, a refused request, an unusable reply, a completion the
server ended itself, such as vLLM's ``abort``) becomes a completion with ``finish_reason="error"``, the message and its
``error_kind``, so one bad row never stops a batch and callers branch on the kind; a backend that cannot work at all
(missing model, missing package) raises. A caller for whom a failure on the way to the server is no fact about the
row (the synthesis run, whose data must not depend on the server's health) sets ``raise_on_transport``: such failures
then raise :class:`GeneratorUnavailable` instead.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, get_args

import torch

from reer_hf.core.endpoint import Endpoint, EndpointClient, EndpointError
from reer_hf.core.models import load_causal_lm, load_tokenizer, resolve_dtype, resolve_model
from reer_hf.core.text import THINK_CLOSE, THINK_OPEN
from reer_hf.synthesis.completion import (
    ERROR_KINDS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP,
    TRANSPORT_KINDS,
    Completion,
    ErrorKind,
    GeneratorUnavailable,
    Request,
    Sampling,
    cut_at_stop,
    finished,
)
from reer_hf.synthesis.config import GeneratorConfig

__all__ = [  # the types of completion.py too, so callers import every generator name from here
    "ERROR_KINDS",
    "FINISH_ERROR",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "TRANSPORT_KINDS",
    "Completion",
    "EndpointGenerator",
    "ErrorKind",
    "Generator",
    "GeneratorUnavailable",
    "OpenAIGenerator",
    "Request",
    "Sampling",
    "TransformersGenerator",
    "VLLMGenerator",
    "build_generator",
    "cut_at_stop",
    "generator_endpoint",
    "render_prompt",
]

#: How servers word a prompt too long for the model (vLLM, SGLang, OpenAI), in a 400/413/422 reply.
CONTEXT_REJECTION = re.compile(r"context (length|window|size)|too long|longer than|reduce the length", re.I)


class Generator(ABC):
    """``generate(requests, sampling)`` returns ``sampling.n`` completions per request, in request order."""

    #: whether the model continues the pre-fill (False for servers without pre-fill: the reply starts afresh)
    sees_prefill: bool = True
    #: raise GeneratorUnavailable when a request fails in transport, instead of returning its failed completions
    #: (the openai backend then also retries a body that is not JSON, as it retries network errors)
    raise_on_transport: bool = False

    @property
    def where(self) -> str:
        """The generator, as error messages name it."""
        return type(self).__name__

    def __init__(self):
        self.stats: Counter = Counter()  # calls, requests, completions, tokens, errors, seconds
        self._stats_lock = threading.Lock()  # the judge calls one generator from many threads

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        start = time.perf_counter()
        out = self._generate(list(requests), sampling) if requests else []
        with self._stats_lock:
            self.stats["calls"] += 1
            self.stats["requests"] += len(requests)
            for completions in out:
                self.stats["completions"] += len(completions)
                self.stats["tokens"] += sum(c.n_tokens for c in completions)
                self.stats["errors"] += sum(c.finish_reason == FINISH_ERROR for c in completions)
            self.stats["seconds"] += time.perf_counter() - start
        lost = [e for cs in out if (e := next((c.error for c in cs if c.error_kind in TRANSPORT_KINDS), None))]
        if lost and self.raise_on_transport:
            raise GeneratorUnavailable(self.where, len(lost), len(out), lost[-1])
        return out

    @abstractmethod
    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]: ...


def render_prompt(tokenizer, request: Request) -> str:
    """The prompt text of a request: the chat template with the generation prompt, then the pre-fill."""
    text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
    return text + request.prefill


class TransformersGenerator(Generator):
    """Local batched sampling with ``model.generate`` (left padding, ``n`` return sequences per prompt)."""

    def __init__(self, model, tokenizer, batch_size: int = 16, share_prompt: bool = True):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.share_prompt = share_prompt
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    @torch.inference_mode()
    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for lo in range(0, len(requests), self.batch_size):
            chunk = requests[lo : lo + self.batch_size]
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed + lo)
            out.extend(self._generate_chunk(chunk, sampling))
        return out

    def _generate_chunk(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        prompts = [render_prompt(self.tokenizer, r) for r in requests]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = side
        enc = enc.to(self.model.device)
        sample = sampling.temperature > 0
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            num_return_sequences=sampling.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids) or None,
        )
        if sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0)
        if sampling.repetition_penalty != 1.0:
            kwargs.update(repetition_penalty=sampling.repetition_penalty)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.n > 1 and self.share_prompt and enc["input_ids"].shape[1] > 1:
            enc, kwargs["past_key_values"] = self._shared_prefill(enc, sampling.n)
            kwargs["num_return_sequences"] = 1
        generated = self.model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :].tolist()
        pad = self.tokenizer.pad_token_id
        results = []
        for b in range(len(requests)):
            completions = []
            for ids in generated[b * sampling.n : (b + 1) * sampling.n]:
                ended = next((t for t, tok in enumerate(ids) if tok in self.eos_ids), None)
                ids = ids if ended is None else ids[:ended]
                while ids and ids[-1] == pad and pad not in self.eos_ids:  # after a stop string
                    ids = ids[:-1]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                text, stopped = cut_at_stop(text, sampling.stop)
                finished = ended is not None or stopped or len(ids) < sampling.max_new_tokens
                n_tokens = len(ids) + (ended is not None)
                completions.append(Completion(text, n_tokens, FINISH_STOP if finished else FINISH_LENGTH))
            results.append(completions)
        return results

    def _shared_prefill(self, enc, n: int):
        """Run each prompt once into a KV cache and give its ``n`` samples copies of it: ``num_return_sequences``
        would prefill every prompt ``n`` times (the edit prompt holds the query, the answer and the whole thinking).
        ``generate`` then only runs the prompts' last tokens; positions follow the left padding as it computes them.
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        self.model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            past_key_values=cache,
            use_cache=True,
        )
        cache.batch_repeat_interleave(n)
        expanded = {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0)}
        return expanded, cache


def _split_tokens(total: int, texts: Sequence[str]) -> list[int]:
    """Share a call's ``usage.completion_tokens`` among its choices in proportion to their lengths in characters.

    OpenAI-compatible servers report usage per call, not per choice, so with ``n > 1`` the per-completion counts are
    an approximation (exact for ``n == 1``); they still sum to the server's total."""
    weights = [len(t) for t in texts]
    if not sum(weights):
        weights = [1] * len(texts)
    shares = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[: total - sum(counts)]:
        counts[i] += 1  # largest remainders first, so the sum is exact
    return counts


PrefillMode = Literal["continue", "completions", "none"]


class EndpointGenerator(Generator):
    """Any OpenAI-compatible endpoint (``vllm serve``, SGLang, hosted APIs), one HTTP call per request with ``n``
    choices and at most ``endpoint.max_concurrency`` calls in flight; the judge calls its model through this class.

    The pre-fill modes: ``continue`` sends the pre-fill as a final assistant message with ``continue_final_message``
    (a vLLM/SGLang extension of the chat API); ``completions`` renders the prompt with the served model's own chat
    template and sends it to ``/completions``; ``none`` (APIs without pre-fill) sends the plain chat and takes the
    reply as the continuation: ``Completion.text`` is still what follows the pre-fill, which the caller prepends,
    although the model never saw it.

    Retries and backoff are :class:`~reer_hf.core.endpoint.EndpointClient`'s (network errors only); a request that
    still fails becomes failed completions whose ``error_kind`` says why (``context``: the server rejects the prompt
    as too long for the model). ``stats["retries"]`` counts the retries.
    """

    def __init__(self, endpoint: Endpoint, prefill_mode: PrefillMode = "none"):
        super().__init__()
        if prefill_mode not in get_args(PrefillMode):
            raise ValueError(f"prefill_mode must be one of {get_args(PrefillMode)}, got {prefill_mode!r}")
        self.endpoint = endpoint
        self.prefill_mode = prefill_mode
        self.chat = prefill_mode != "completions"
        self.sees_prefill = prefill_mode != "none"
        self.route = "chat/completions" if self.chat else "completions"
        self.client = EndpointClient(endpoint)
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The served model's tokenizer, loaded on first use: only the ``completions`` mode renders prompts here."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.endpoint.model)
        return self._tokenizer

    @property
    def where(self) -> str:
        return f"{self.endpoint.base_url} (model {self.endpoint.model!r})"

    def close(self) -> None:
        self.client.close()

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        payloads = [self._payload(i, r, sampling) for i, r in enumerate(requests)]  # renders in this thread
        if len(payloads) == 1:  # one request (the judge's calls): no pool of its own
            out = [self._complete(payloads[0], sampling)]
        else:
            workers = min(self.endpoint.max_concurrency, len(payloads))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-generator") as pool:
                out = list(pool.map(lambda payload: self._complete(payload, sampling), payloads))
        with self._stats_lock:
            self.stats["retries"] = self.client.retries
        return out

    def _payload(self, index: int, request: Request, sampling: Sampling) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.endpoint.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "n": sampling.n,
        }
        if sampling.stop:
            payload["stop"] = list(sampling.stop)
        if sampling.repetition_penalty != 1.0:  # a vLLM / SGLang extension of the OpenAI API
            payload["repetition_penalty"] = sampling.repetition_penalty
        if sampling.top_k:  # idem; sent only when set, so plain OpenAI endpoints never see it
            payload["top_k"] = sampling.top_k
        if sampling.seed is not None:  # one seed per request, so replies do not depend on the order of the calls
            payload["seed"] = sampling.seed + index
        if self.prefill_mode == "completions":
            payload["prompt"] = render_prompt(self.tokenizer, request)
            payload["add_special_tokens"] = False  # the template has its own BOS; vLLM would add a second one
        elif self.prefill_mode == "continue" and request.prefill:
            payload["messages"] = [*request.messages, {"role": "assistant", "content": request.prefill}]
            payload.update(continue_final_message=True, add_generation_prompt=False)
        else:
            payload["messages"] = list(request.messages)
        return payload

    def _complete(self, payload: dict[str, Any], sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of one request; every failure becomes failed completions of its kind."""
        try:
            return self._parse(*self.client.post(self.route, payload, self.raise_on_transport), sampling)
        except EndpointError as e:
            too_long = e.status in (400, 413, 422) and CONTEXT_REJECTION.search(str(e))
            return [Completion.failed(str(e), "context" if too_long else e.kind) for _ in range(sampling.n)]

    def _parse(self, data: Any, body: str, sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of a reply; choices the server left out become failed completions."""
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            url = self.endpoint.url(self.route)
            raise EndpointError(f"malformed reply from {url} (no choices): {body[:300]!r}", "parse")
        by_index: dict[int, dict] = {}
        for position, choice in enumerate(choices):
            if isinstance(choice, dict):
                index = choice.get("index")
                by_index.setdefault(index if isinstance(index, int) else position, choice)
        texts: dict[int, str] = {}
        for i, choice in by_index.items():
            if self.chat:
                message = choice.get("message")
                text = (message.get("content") or "") if isinstance(message, dict) else None  # null: empty reply
                # a server run with a reasoning parser returns the thinking apart: put it back where the model wrote it
                reasoning = message.get("reasoning_content") or message.get("reasoning") if text is not None else None
                if isinstance(reasoning, str) and reasoning.strip():
                    text = f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{text}"
            else:
                text = choice.get("text")
            if 0 <= i < sampling.n and isinstance(text, str):
                texts[i] = text
        usage = data.get("usage")
        total = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(total, int) and total >= 0 and texts:
            counts = dict(zip(texts, _split_tokens(total, list(texts.values())), strict=True))
        else:  # no usage: words are the best count at hand
            counts = {i: len(text.split()) for i, text in texts.items()}
        out = []
        for i in range(sampling.n):
            if i not in texts:
                error = f"the server returned {len(texts)} usable of {sampling.n} choices, none for choice {i}"
                out.append(Completion.failed(error, "parse"))
                continue
            text, stopped = cut_at_stop(texts[i], sampling.stop)  # for servers that ignore `stop`
            out.append(finished(text, counts[i], FINISH_STOP if stopped else by_index[i].get("finish_reason")))
        return out


def generator_endpoint(config: GeneratorConfig, backoff: float) -> Endpoint:
    """The endpoint the ``generator_*`` options name (the ``openai`` backend); ``backoff``: seconds before the first
    network retry."""
    return Endpoint.from_options(config, "generator", backoff=backoff)


class OpenAIGenerator(EndpointGenerator):
    """The ``openai`` backend: the endpoint and pre-fill mode of the ``generator_*`` options (``backoff``: seconds
    before the first network retry, doubling)."""

    def __init__(self, config: GeneratorConfig, backoff: float = 1.0):
        super().__init__(generator_endpoint(config, backoff), config.generator_prefill_mode)
        self.config = config


class VLLMGenerator(Generator):
    """The vLLM offline engine (GPU only, optional): continuous batching with ``n`` samples per prompt.

    Prompts are rendered with the model's chat template plus the pre-fill, as in ``TransformersGenerator``, and passed
    as token ids so vLLM adds no second BOS.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError(
                "generator_backend='vllm' needs vLLM: pip install 'reer-hf[vllm]' (GPU only), or use the transformers "
                "or openai backend"
            ) from e
        self.config = config
        self._sampling_params = SamplingParams
        kwargs = dict(config.generator_vllm_kwargs or {})
        if config.generator_dtype == "auto":
            kwargs.setdefault("dtype", "auto")  # vLLM picks: the checkpoint dtype, fp32 ones in half precision
        else:
            kwargs.setdefault("dtype", str(resolve_dtype(config.generator_dtype)).removeprefix("torch."))
        self.llm = LLM(model=resolve_model(config.generator_model), **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        ids = [self.tokenizer.encode(render_prompt(self.tokenizer, r), add_special_tokens=False) for r in requests]
        # A prompt that leaves no room to generate fails alone (vLLM would raise for the whole batch).
        fits = [i for i, p in enumerate(ids) if len(p) < self.max_model_len]
        params = [
            self._sampling_params(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=min(sampling.max_new_tokens, self.max_model_len - len(ids[i])),
                seed=None if sampling.seed is None else sampling.seed + i,  # as the openai backend
                stop=list(sampling.stop) or None,
                repetition_penalty=sampling.repetition_penalty,
                **({"top_k": sampling.top_k} if sampling.top_k else {}),
            )
            for i in fits
        ]
        prompts = [{"prompt_token_ids": ids[i]} for i in fits]
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        by_index = dict(zip(fits, outputs, strict=True))
        too_long = f"prompt longer than the generator's context ({self.max_model_len} tokens)"
        results = []
        for i in range(len(requests)):
            if i not in by_index:
                results.append([Completion.failed(too_long, "context") for _ in range(sampling.n)])
                continue
            output = by_index[i]
            completions = []
            for j in range(sampling.n):
                if j >= len(output.outputs):
                    completions.append(
                        Completion.failed(f"vLLM returned {len(output.outputs)} of {sampling.n}", "parse")
                    )
                    continue
                sample = output.outputs[j]
                text, stopped = cut_at_stop(sample.text, sampling.stop)
                reason = FINISH_STOP if stopped else sample.finish_reason
                completions.append(finished(text, len(sample.token_ids), reason))
            results.append(completions)
        return results


def build_generator(config: GeneratorConfig, shared: tuple | None = None) -> Generator:
    """The backend named by ``config``; ``shared`` is an already loaded ``(model, tokenizer)`` to reuse (the demo
    runs one model in both roles)."""
    if config.generator_backend == "transformers":
        if shared is None:
            shared = load_causal_lm(
                config.generator_model,
                dtype=config.generator_dtype,
                device=config.generator_device,
                attn_implementation=config.generator_attn_implementation,
            )
        model, tokenizer = shared
        return TransformersGenerator(model, tokenizer, batch_size=config.generator_batch_size)
    if config.generator_backend == "vllm":
        return VLLMGenerator(config)
    return OpenAIGenerator(config)
