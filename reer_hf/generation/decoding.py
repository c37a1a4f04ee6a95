"""Sampling with a transformers model at the speed of its forward pass: one prefill per distinct prompt, every sample
of it decoded from that one prefill, finished samples leaving the batch, and a key/value buffer written in place.

Why not ``model.generate``: it prefills each of a prompt's ``n`` samples on its own (``num_return_sequences`` copies
the prompt), keeps finished rows in the batch until the longest one ends, and grows its ``DynamicCache`` with
``torch.cat``, which copies the whole cache at every decode step. Here:

- each distinct prompt runs once, unpadded, and its keys and values are copied into the slots of its samples; a
  prompt that starts like one of an earlier call (:class:`PromptCache`) computes only the tokens it adds;
- the cache is a buffer with room to grow (:class:`BufferedLayer`): a step writes one column, never copies the rest;
- a finished sample leaves the batch, and the left padding no remaining sample needs is cut off;
- each sample draws from its own ``torch.Generator``, seeded by its request and its index, so what it writes does not
  depend on the other rows of the batch (up to the float rounding of a batched forward);
- the logits processing is ``generate``'s, in its order: repetition penalty over prompt and output, temperature,
  top-k, top-p (the nucleus found among the top 256 tokens, by a full sort only where those do not reach it), and a
  sample is drawn among the nucleus alone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from reer_hf.core.threads import adjust_torch_threads

#: Columns a buffer gains when it is full (beyond what the current call asked for).
GROWTH = 256
#: Decode steps between two looks at the cores other processes keep busy (torch threads ``auto``).
THREADS_EVERY = 32
#: Tokens searched for the nucleus before a full sort.
NUCLEUS_CANDIDATES = 256

ENDED_EOS, ENDED_STOP, ENDED_LENGTH = "eos", "stop", "length"


class BufferedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of a buffer with spare columns: appending writes in place
    instead of ``torch.cat`` copying the whole layer. ``start`` cuts left padding no row needs any more."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.key_buffer = self.value_buffer = None
        self.start = self.end = 0

    def reserve(self, columns: int) -> None:
        """Room for ``columns`` more tokens without a copy."""
        if self.key_buffer is None or self.end + columns <= self.key_buffer.shape[-2]:
            return
        self._resize(self.end + columns + GROWTH)

    def _resize(self, capacity: int) -> None:
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_zeros((*old.shape[:2], capacity - self.start, old.shape[-1]))
            new[..., : self.end - self.start, :] = old[..., self.start : self.end, :]
            setattr(self, name, new)
        self.end -= self.start
        self.start = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self.key_buffer is None:
            shape = (*key_states.shape[:2], new + GROWTH, key_states.shape[-1])
            self.key_buffer = key_states.new_zeros(shape)
            self.value_buffer = value_states.new_zeros(shape)
        elif self.end + new > self.key_buffer.shape[-2]:
            self._resize(self.end + new + GROWTH)
        self.key_buffer[..., self.end : self.end + new, :] = key_states
        self.value_buffer[..., self.end : self.end + new, :] = value_states
        self.end += new
        self.keys = self.key_buffer[..., self.start : self.end, :]
        self.values = self.value_buffer[..., self.start : self.end, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.key_buffer = self.key_buffer[indices]
        self.value_buffer = self.value_buffer[indices]
        self._views()

    def drop_left(self, columns: int) -> None:
        """Forget the first ``columns`` cached positions (padding of rows that left the batch)."""
        self.start += columns
        self._views()

    def _views(self) -> None:
        self.keys = self.key_buffer[..., self.start : self.end, :]
        self.values = self.value_buffer[..., self.start : self.end, :]


def buffered_cache(config) -> DynamicCache:
    """A cache of :class:`BufferedLayer` for a model whose layers all attend to everything (no sliding window)."""
    cache = DynamicCache(config=config)
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        kinds = sorted({type(layer).__name__ for layer in cache.layers})
        raise ValueError(f"buffered decoding needs full-attention layers; this model's cache has {kinds}")
    cache.layers = [BufferedLayer() for _ in cache.layers]
    return cache


class PromptCache:
    """The prefilled keys and values of the last ``capacity`` prompts (least recently used dropped first), so a prompt
    that starts like an earlier one computes only what it adds: the search's next step of a row repeats the
    instructions, the query, the answer and the thinking before the segment. Memory: prompts x tokens x the model's
    key/value bytes per token."""

    def __init__(self, capacity: int, min_tokens: int = 16):
        self.capacity, self.min_tokens = capacity, min_tokens
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def clear(self) -> None:
        self.entries.clear()

    def start(self, ids: Sequence[int], config) -> tuple[DynamicCache, int]:
        """A cache holding the longest cached prefix of ``ids`` (all but its last token at most), and its length."""
        cache = DynamicCache(config=config)
        best, common = None, 0
        wanted = torch.tensor(ids)
        for key in self.entries:
            n = min(len(key), len(ids) - 1)
            if n <= common:
                continue
            differ = (torch.tensor(key[:n]) != wanted[:n]).nonzero()
            shared = int(differ[0]) if len(differ) else n
            if shared > common:
                best, common = key, shared
        if best is None or common < self.min_tokens:
            return cache, 0
        self.entries.move_to_end(best)
        for layer, (keys, values) in zip(cache.layers, self.entries[best], strict=True):
            layer.update(keys[..., :common, :], values[..., :common, :])
        return cache, common

    def add(self, ids: Sequence[int], cache: DynamicCache) -> None:
        if self.capacity < 1:
            return
        self.entries[tuple(ids)] = [(layer.keys, layer.values) for layer in cache.layers]
        self.entries.move_to_end(tuple(ids))
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


@dataclass
class SamplingRule:
    """How the next token is chosen, as ``generate`` takes it (temperature 0: greedy)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256


@dataclass
class DecodeStats:
    """What one call computed: tokens prefilled (once per distinct prompt) against tokens asked for (once per
    sample, what ``num_return_sequences`` prefills), decode steps, the tokens decoded, and the time of each phase."""

    prompt_tokens: int = 0
    carried_prompt_tokens: int = 0  # prompt tokens whose keys and values came from an earlier call's prompt
    requested_prompt_tokens: int = 0
    decoded_tokens: int = 0
    decode_steps: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)  # per decode step
    contexts: list[int] = field(default_factory=list)  # cached columns per decode step (padding included)


def process_logits(logits: torch.Tensor, seen: torch.Tensor | None, rule: SamplingRule) -> torch.Tensor:
    """``generate``'s logits processors up to the nucleus, in its order: repetition penalty (over ``seen`` tokens),
    temperature, top-k (masked tokens become -inf)."""
    logits = logits.float()
    if seen is not None and rule.repetition_penalty != 1.0:
        penalized = torch.where(logits < 0, logits * rule.repetition_penalty, logits / rule.repetition_penalty)
        logits = torch.where(seen, penalized, logits)
    if rule.temperature <= 0:
        return logits
    logits = logits / rule.temperature
    if rule.top_k:
        kth = torch.topk(logits, min(rule.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(weights, 1, generator=generator))


def choose(logits: torch.Tensor, rule: SamplingRule, generators: Sequence[torch.Generator | None]) -> list[int]:
    """One token per row: the argmax when greedy, else a draw from each row's own generator within its nucleus: the
    smallest set of most probable tokens whose probability reaches ``top_p``, as ``generate``'s TopP keeps it (every
    token whose more probable predecessors sum to less than ``top_p``). The nucleus is looked for among the top
    :data:`NUCLEUS_CANDIDATES` tokens; only a row it does not fit in sorts its whole vocabulary."""
    if rule.temperature <= 0:
        return logits.argmax(-1).tolist()
    probs = logits.softmax(-1)
    if rule.top_p >= 1.0:
        return [_draw(probs[i], g) for i, g in enumerate(generators)]
    top = torch.topk(probs, min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
    before = top.values.cumsum(-1) - top.values  # what the more probable tokens sum to
    fits = (before[:, -1] + top.values[:, -1] >= rule.top_p).tolist()
    tokens = []
    for i, g in enumerate(generators):
        if fits[i]:
            values, indices = top.values[i], top.indices[i]
            kept = before[i] < rule.top_p
        else:
            values, indices = probs[i].sort(descending=True)
            kept = values.cumsum(-1) - values < rule.top_p
        tokens.append(int(indices[_draw(values * kept, g)]))
    return tokens


@torch.inference_mode()
def decode(
    model,
    prompts: Sequence[Sequence[int]],
    samples: Sequence[tuple[int, int | None]],
    rule: SamplingRule,
    eos_ids: set[int],
    stopped: Callable[[list[int]], bool] | None = None,
    stats: DecodeStats | None = None,
    carry: PromptCache | None = None,
) -> list[tuple[list[int], str]]:
    """The continuation of each sample: ``samples`` are ``(prompt index, seed)`` pairs (seed None: unseeded), and
    each comes back as its new token ids (an end-of-sequence token left out) and why it ended (``eos``, ``stop``:
    ``stopped(ids)`` said so after a token, or ``length``). ``carry`` keeps prompts' prefills between calls."""
    stats = stats if stats is not None else DecodeStats()
    device = model.device
    vocab = model.get_output_embeddings().weight.shape[0]
    # each distinct prompt once, unpadded: its last logits and its keys and values
    start = time.perf_counter()
    used = sorted({p for p, _ in samples})
    prefilled: dict[int, tuple[torch.Tensor, DynamicCache]] = {}
    for p in used:
        cache, done = carry.start(prompts[p], model.config) if carry else (DynamicCache(config=model.config), 0)
        ids = torch.tensor([list(prompts[p])[done:]], device=device)
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        prefilled[p] = (out.logits[0, -1], cache)
        stats.prompt_tokens += ids.shape[1]
        stats.carried_prompt_tokens += done
        if carry:
            carry.add(prompts[p], cache)
    stats.requested_prompt_tokens += sum(len(prompts[p]) for p, _ in samples)
    # the samples' slots: prompt p's cache copied right-aligned into each of its samples' rows
    lengths = torch.tensor([len(prompts[p]) for p, _ in samples], device=device)
    width = int(lengths.max())
    pads = width - lengths
    cache = buffered_cache(model.config)
    for index, layer in enumerate(cache.layers):
        source = prefilled[used[0]][1].layers[index].keys
        shape = (len(samples), source.shape[1], width + min(rule.max_new_tokens, GROWTH), source.shape[-1])
        layer.lazy_initialization(source, source)
        layer.key_buffer, layer.value_buffer = source.new_zeros(shape), source.new_zeros(shape)
        for row, (p, _) in enumerate(samples):
            kv = prefilled[p][1].layers[index]
            layer.key_buffer[row, :, width - len(prompts[p]) : width] = kv.keys[0]
            layer.value_buffer[row, :, width - len(prompts[p]) : width] = kv.values[0]
        layer.end = width
        layer._views()
    logits = torch.stack([prefilled[p][0] for p, _ in samples])
    del prefilled
    seen = None
    if rule.repetition_penalty != 1.0:
        seen = torch.zeros(len(samples), vocab, dtype=torch.bool, device=device)
        for row, (p, _) in enumerate(samples):
            seen[row, torch.tensor(list(prompts[p]), device=device, dtype=torch.long)] = True
    generators = []
    for _, seed in samples:
        g = torch.Generator(device=device)
        g.manual_seed(seed if seed is not None else int(torch.seed()))
        generators.append(g)
    stats.prefill_seconds += time.perf_counter() - start

    start = time.perf_counter()
    outputs: list[list[int]] = [[] for _ in samples]
    ended: list[str] = [ENDED_LENGTH] * len(samples)
    active = list(range(len(samples)))  # sample index of each batch row
    for step in range(rule.max_new_tokens):
        if step and step % THREADS_EVERY == 0:
            adjust_torch_threads()
        tokens = choose(process_logits(logits, seen, rule), rule, [generators[i] for i in active])
        keep = []
        for row, (i, token) in enumerate(zip(active, tokens, strict=True)):
            if token in eos_ids:
                ended[i] = ENDED_EOS
                continue
            outputs[i].append(token)
            if stopped is not None and stopped(outputs[i]):
                ended[i] = ENDED_STOP
            elif len(outputs[i]) < rule.max_new_tokens:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):  # finished samples leave the batch, and the padding only they needed goes
            rows = torch.tensor(keep, device=device)
            active = [active[row] for row in keep]
            tokens = [tokens[row] for row in keep]
            seen = seen[rows] if seen is not None else None
            pads = pads[rows]
            trim = int(pads.min())
            for layer in cache.layers:
                layer.batch_select_indices(rows)
                if trim:
                    layer.drop_left(trim)
            pads = pads - trim
            width -= trim
        new = torch.tensor(tokens, device=device)[:, None]
        if seen is not None:
            seen.scatter_(1, new, True)
        length = width + step + 1  # cached columns after this token
        # no mask where no row is padded: attention then runs on the grouped key/value heads without one
        mask = (torch.arange(length, device=device)[None, :] >= pads[:, None]).long() if bool(pads.any()) else None
        positions = (lengths.new_tensor([len(outputs[i]) - 1 for i in active]) + (width - pads))[:, None]
        for layer in cache.layers:
            layer.reserve(1)
        out = model(input_ids=new, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1]
        stats.decode_steps += 1
        stats.decoded_tokens += len(active)
        stats.batch_sizes.append(len(active))
        stats.contexts.append(length)
    stats.decode_seconds += time.perf_counter() - start
    return list(zip(outputs, ended, strict=True))
