"""The generator LLM behind one small interface: transformers ``generate``, the vLLM offline engine, or any
OpenAI-compatible server.

Every backend takes chat requests whose assistant turn may be pre-filled (``"<think>\\n" + opener``,
``"<analyze>\\n"``) and returns, per request, ``n`` completions: the text after the pre-fill (without the stop string),
its token count and why it ended. A failure of one request (a network error after the retries, a refused request)
becomes a completion with ``finish_reason="error"`` and the message, so one bad row never stops a batch; a backend that
cannot work at all (missing model, missing package) raises.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests as http
import torch
from requests.adapters import HTTPAdapter

from reer_hf.synthesis.config import GeneratorConfig

FINISH_STOP = "stop"  # end of sequence or a stop string
FINISH_LENGTH = "length"  # the new-token limit
FINISH_ERROR = "error"


@dataclass
class Request:
    """One chat prompt; ``prefill`` starts the assistant turn and the model continues it."""

    messages: list[dict[str, str]]
    prefill: str = ""


@dataclass
class Sampling:
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.85
    top_k: int | None = None  # None: off (the search's setting); WritingBench samples with top_k=20
    max_new_tokens: int = 8000
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    repetition_penalty: float = 1.0  # 1.0: off (the paper's setting); small models loop without it


@dataclass
class Completion:
    """The continuation of the pre-fill; ``text`` excludes the pre-fill and the stop string."""

    text: str
    n_tokens: int
    finish_reason: str
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> Completion:
        return cls(text="", n_tokens=0, finish_reason=FINISH_ERROR, error=error)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


class Generator(ABC):
    """``generate(requests, sampling)`` returns ``sampling.n`` completions per request, in request order."""

    #: whether the model continues the pre-fill (False for servers without pre-fill: the reply starts afresh)
    sees_prefill: bool = True

    def __init__(self):
        self.stats: Counter = Counter()  # calls, requests, completions, tokens, errors, seconds

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        start = time.perf_counter()
        out = self._generate(list(requests), sampling) if requests else []
        self.stats["calls"] += 1
        self.stats["requests"] += len(requests)
        for completions in out:
            self.stats["completions"] += len(completions)
            self.stats["tokens"] += sum(c.n_tokens for c in completions)
            self.stats["errors"] += sum(c.finish_reason == FINISH_ERROR for c in completions)
        self.stats["seconds"] += time.perf_counter() - start
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


def _finish(reason: Any) -> str:
    """Servers and vLLM say ``stop``, ``length``, ``abort``, ``tool_calls``, ...; only ``length`` means truncated."""
    return FINISH_LENGTH if reason == FINISH_LENGTH else FINISH_STOP


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


class _RequestFailed(Exception):
    """A request that ends as failed completions (after the retries, or at once for a refused request)."""


class OpenAIGenerator(Generator):
    """Any OpenAI-compatible server (``vllm serve``, SGLang, hosted APIs), one HTTP call per request with ``n`` choices
    and at most ``generator_max_concurrency`` calls in flight.

    The pre-fill modes: ``continue`` sends the pre-fill as a final assistant message with ``continue_final_message``
    (a vLLM/SGLang extension of the chat API); ``completions`` renders the prompt with the generator's own chat
    template and sends it to ``/completions``; ``none`` (APIs without pre-fill) sends the plain chat and takes the
    reply as the continuation: ``Completion.text`` is still what follows the pre-fill, which the caller prepends,
    although the model never saw it.

    Network errors (connection errors, timeouts, HTTP 408/429/5xx gateway errors) are retried with exponential backoff
    (``backoff * 2**k`` seconds, at least the server's ``Retry-After``); other HTTP errors and malformed replies are
    not, since repeating them cannot help. ``stats["retries"]`` counts the retries.
    """

    RETRY_STATUS = frozenset({408, 429, 502, 503, 504})  # timeouts, rate limits, gateways
    NETWORK_ERRORS = (http.ConnectionError, http.Timeout, http.exceptions.ChunkedEncodingError)
    MAX_RETRY_AFTER = 60.0

    def __init__(self, config: GeneratorConfig, backoff: float = 1.0):
        super().__init__()
        self.config = config
        self.base_url = config.generator_base_url.rstrip("/")
        self.backoff = backoff
        self.chat = config.generator_prefill_mode != "completions"
        self.sees_prefill = config.generator_prefill_mode != "none"
        self.endpoint = f"{self.base_url}/{'chat/completions' if self.chat else 'completions'}"
        self.headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.generator_api_key_env) if config.generator_api_key_env else None
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.session = http.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=config.generator_max_concurrency)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._tokenizer = None
        self._lock = threading.Lock()  # guards self.stats, which the worker threads update

    @property
    def tokenizer(self):
        """The generator's tokenizer, loaded on first use: only the ``completions`` mode renders prompts here."""
        if self._tokenizer is None:
            from reer_hf.core.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.config.generator_model)
        return self._tokenizer

    def close(self) -> None:
        self.session.close()

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        payloads = [self._payload(i, r, sampling) for i, r in enumerate(requests)]  # renders in this thread
        workers = min(self.config.generator_max_concurrency, len(payloads))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-generator") as pool:
            return list(pool.map(lambda payload: self._complete(payload, sampling), payloads))

    def _payload(self, index: int, request: Request, sampling: Sampling) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.config.generator_model,
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
        mode = self.config.generator_prefill_mode
        if mode == "completions":
            payload["prompt"] = render_prompt(self.tokenizer, request)
            payload["add_special_tokens"] = False  # the template has its own BOS; vLLM would add a second one
        elif mode == "continue" and request.prefill:
            payload["messages"] = [*request.messages, {"role": "assistant", "content": request.prefill}]
            payload.update(continue_final_message=True, add_generation_prompt=False)
        else:
            payload["messages"] = list(request.messages)
        return payload

    def _complete(self, payload: dict[str, Any], sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of one request; every failure becomes failed completions."""
        try:
            return self._parse(self._post(payload), sampling)
        except _RequestFailed as e:
            return [Completion.failed(str(e)) for _ in range(sampling.n)]

    def _post(self, payload: dict[str, Any]) -> http.Response:
        """POST with retries on network errors; the response of status 2xx, else ``_RequestFailed``."""
        error, wait = "", 0.0
        for attempt in range(self.config.generator_max_retries + 1):
            if attempt:
                time.sleep(max(self.backoff * 2 ** (attempt - 1), wait))
                with self._lock:
                    self.stats["retries"] += 1
            wait = 0.0
            try:
                response = self.session.post(
                    self.endpoint, json=payload, headers=self.headers, timeout=self.config.generator_timeout
                )
            except self.NETWORK_ERRORS as e:
                error = f"{type(e).__name__}: {e}"
                continue
            except http.RequestException as e:  # an invalid URL, too many redirects: repeating cannot help
                raise _RequestFailed(f"{type(e).__name__} from {self.endpoint}: {e}") from e
            if response.ok:
                return response
            error = f"HTTP {response.status_code} from {self.endpoint}: {response.text[:500]}"
            if response.status_code not in self.RETRY_STATUS:
                raise _RequestFailed(error)
            wait = self._retry_after(response)
        retries = self.config.generator_max_retries
        raise _RequestFailed(f"gave up after {retries} {'retry' if retries == 1 else 'retries'}: {error}")

    def _retry_after(self, response: http.Response) -> float:
        try:
            return min(float(response.headers.get("Retry-After", 0)), self.MAX_RETRY_AFTER)
        except ValueError:  # the HTTP-date form
            return 0.0

    def _parse(self, response: http.Response, sampling: Sampling) -> list[Completion]:
        """The ``n`` completions of a reply; choices the server left out become failed completions."""
        try:
            data = response.json()
        except ValueError:
            raise _RequestFailed(f"malformed reply from {self.endpoint} (not JSON): {response.text[:300]!r}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            raise _RequestFailed(f"malformed reply from {self.endpoint} (no choices): {response.text[:300]!r}")
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
                    text = f"<think>\n{reasoning.strip()}\n</think>\n\n{text}"
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
                out.append(Completion.failed(error))
                continue
            text, stopped = cut_at_stop(texts[i], sampling.stop)  # for servers that ignore `stop`
            reason = FINISH_STOP if stopped else _finish(by_index[i].get("finish_reason"))
            out.append(Completion(text, counts[i], reason))
        return out


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
        from reer_hf.core.models import resolve_dtype, resolve_model

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
                results.append([Completion.failed(too_long) for _ in range(sampling.n)])
                continue
            output = by_index[i]
            completions = []
            for j in range(sampling.n):
                if j >= len(output.outputs):
                    completions.append(Completion.failed(f"vLLM returned {len(output.outputs)} of {sampling.n}"))
                    continue
                sample = output.outputs[j]
                text, stopped = cut_at_stop(sample.text, sampling.stop)
                reason = FINISH_STOP if stopped else _finish(sample.finish_reason)
                completions.append(Completion(text, len(sample.token_ids), reason))
            results.append(completions)
        return results


def build_generator(config: GeneratorConfig, shared: tuple | None = None) -> Generator:
    """The backend named by ``config``; ``shared`` is an already loaded ``(model, tokenizer)`` to reuse (the demo
    runs one model in both roles)."""
    if config.generator_backend == "transformers":
        if shared is None:
            from reer_hf.core.models import load_causal_lm

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
