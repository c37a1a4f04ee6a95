"""The ``transformers`` generator backend: local batched sampling with a transformers model, through
:func:`~reer_hf.generation.decoding.decode` (one prefill per distinct prompt, its samples decoded from it)."""

from __future__ import annotations

from reer_hf.core.threads import adjust_torch_threads
from reer_hf.generation.base import Generator, render_prompt
from reer_hf.generation.completion import FINISH_LENGTH, FINISH_STOP, Completion, Request, Sampling, cut_at_stop
from reer_hf.generation.decoding import ENDED_EOS, ENDED_LENGTH, DecodeStats, PromptCache, SamplingRule, decode


def sample_seed(base: int | None, sample: int) -> int | None:
    """The seed of a request's ``sample``-th sample: a function of the request's seed and the index alone, so a
    sample is the same whatever else shares its batch (None: unseeded)."""
    return None if base is None else (base * 1_000_003 + sample) % (2**63)


class TransformersGenerator(Generator):
    """Local sampling with a transformers model, ``batch_size`` requests (each with its ``n`` samples) per call of
    the decoder. A request's seed is its own (``Request.seed``) or ``sampling.seed`` plus its index in the call.
    ``carry_prompts``: prompts whose prefill is kept for later calls
    (:class:`~reer_hf.generation.decoding.PromptCache`; 0: none); :meth:`reset` forgets them."""

    def __init__(self, model, tokenizer, batch_size: int = 16, carry_prompts: int = 64):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_ids = self._eos_ids()
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.decode_stats = DecodeStats()
        self.carry = PromptCache(carry_prompts) if carry_prompts else None

    def reset(self) -> None:
        """Forget the carried prompts (the search calls it at each batch, whose rows are new)."""
        if self.carry:
            self.carry.clear()

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for lo in range(0, len(requests), self.batch_size):
            adjust_torch_threads()  # other processes come and go: never more threads than the cores they leave
            out.extend(self._generate_chunk(requests[lo : lo + self.batch_size], sampling, lo))
        return out

    def _stopped(self, stop: list[str]):
        """Whether a sample's text holds a stop string, looking only at its last tokens (enough for the longest)."""
        window = 2 * max(len(s) for s in stop) + 8

        def stopped(ids: list[int]) -> bool:
            tail = self.tokenizer.decode(ids[-window:], skip_special_tokens=True)
            return any(s in tail for s in stop)

        return stopped

    def _generate_chunk(self, requests: list[Request], sampling: Sampling, offset: int) -> list[list[Completion]]:
        texts = [render_prompt(self.tokenizer, r) for r in requests]
        distinct = list(dict.fromkeys(texts))
        prompts = self.tokenizer(distinct, add_special_tokens=False)["input_ids"]
        slot = {text: i for i, text in enumerate(distinct)}
        samples, where, too_long = [], [], set()
        for i, (request, text) in enumerate(zip(requests, texts, strict=True)):
            if self.max_positions and len(prompts[slot[text]]) >= self.max_positions:
                too_long.add(i)
                continue
            base = (
                request.seed
                if request.seed is not None
                else None
                if sampling.seed is None
                else sampling.seed + offset + i
            )
            for j in range(sampling.n):
                samples.append((slot[text], sample_seed(base, j)))
                where.append(i)
        rule = SamplingRule(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
            max_new_tokens=sampling.max_new_tokens,
        )
        stopped = self._stopped(list(sampling.stop)) if sampling.stop else None
        stats = self.decode_stats
        before = stats.prompt_tokens, stats.requested_prompt_tokens, stats.carried_prompt_tokens
        decoded = (
            decode(self.model, prompts, samples, rule, self.eos_ids, stopped, stats, self.carry) if samples else []
        )
        with self._stats_lock:
            self.stats["prompt_tokens"] += stats.prompt_tokens - before[0]
            self.stats["prompt_tokens_requested"] += stats.requested_prompt_tokens - before[1]
            self.stats["prompt_tokens_carried"] += stats.carried_prompt_tokens - before[2]
        results: list[list[Completion]] = [[] for _ in requests]
        for i in too_long:
            error = f"prompt longer than the generator's context ({self.max_positions} tokens)"
            results[i] = [Completion.failed(error, "context") for _ in range(sampling.n)]
        for i, (ids, ended) in zip(where, decoded, strict=True):
            text, _ = cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), sampling.stop)
            n_tokens = len(ids) + (ended == ENDED_EOS)
            results[i].append(Completion(text, n_tokens, FINISH_LENGTH if ended == ENDED_LENGTH else FINISH_STOP))
        return results
