"""The transformers forward engine of the scorer: log-probs of chosen tokens, fast.

:class:`TransformersLogprobs` plans a call's rows (singles, and groups that share a token prefix), packs them under a
token budget, runs them (padded, plain, one padded pass per group on GPUs, one packed pass per group on CPUs) and sends
only the scored positions through the LM head. :class:`PrefixCache` keeps the shared prefixes' KV caches from one call
to the next, so a search step computes only what its prefix adds to the previous step's.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

import reer_hf.scoring.attention as attention
import reer_hf.scoring.fusion as fusion
from reer_hf.scoring.config import ScorerConfig

if TYPE_CHECKING:  # importing transformers takes seconds; the classes are imported where they are first needed
    from transformers import DynamicCache


class ScoredRow(Protocol):
    """What a log-prob backend reads of a row (:class:`~reer_hf.scoring.scorer.EncodedRow` is one): its token ids, the
    positions whose log-probs count, and the key of the group whose rows may share a prefix."""

    input_ids: list[int]
    scored: list[int]
    group: tuple | None


class PrefixCache:
    """KV caches of shared token prefixes, carried from one scorer call to the next (least recently used out first).

    In the search, the rows of a (query, answer) group at step ``s + 1`` share a prefix that extends the one of step
    ``s`` by an accepted segment. Keeping the group's cache lets the next call compute only the tokens its prefix adds;
    cached keys/values are those of the very same tokens at the same positions, so scores do not change. Entries are
    taken out with :meth:`get` (cropped to what the new prefix still shares) and put back with :meth:`put` (cropped
    to the prefix), which also makes them the most recently used; past ``capacity`` entries the oldest is dropped.
    """

    def __init__(self, model_config, capacity: int):
        self.model_config = model_config
        self.capacity = capacity
        self._entries: OrderedDict[tuple, tuple[list[int], DynamicCache]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[tuple]:
        """The carried groups, least recently used first (the next to be dropped)."""
        return list(self._entries)

    def get(self, key: tuple, prefix_ids: list[int], align: int = 1) -> tuple[DynamicCache, int]:
        """``(cache, cached)``: the group's carried cache, taken out and cropped to its longest common prefix with
        ``prefix_ids`` rounded down to a multiple of ``align`` (``cached`` tokens), or a new empty cache and 0."""
        from transformers import DynamicCache

        cache, cached = None, 0
        if key in self._entries:
            old_ids, cache = self._entries.pop(key)
            cached = common_prefix_length([old_ids, prefix_ids])
            cached -= cached % align
            if cached == 0:
                cache = None
            else:
                self.crop(cache, cached)
        if cache is None:
            cache, cached = DynamicCache(config=self.model_config), 0
        return cache, cached

    def put(self, key: tuple, prefix_ids: list[int], cache: DynamicCache) -> None:
        """Carry ``cache``, cropped to ``prefix_ids``, as the group's most recent entry; drop the least recently used
        entries past the capacity (a capacity of 0 carries nothing)."""
        if not self.capacity:
            return
        self.crop(cache, len(prefix_ids))
        self._entries.pop(key, None)  # a re-put key moves to the most recent end
        self._entries[key] = (list(prefix_ids), cache)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def reset(self) -> None:
        """Drop every carried cache."""
        self._entries.clear()

    @staticmethod
    def crop(cache: DynamicCache, length: int) -> None:
        """Keep the first ``length`` positions of ``cache`` (``DynamicCache.crop`` takes how many to remove)."""
        excess = cache.get_seq_length() - length
        if excess > 0:
            cache.crop(-excess)


class TransformersLogprobs:
    """Log-probs of chosen tokens with a transformers causal LM: budgeted batches, prefix reuse, carried prefixes.

    Rows of one (query, answer) group run their common token prefix once into a KV cache and continue from it. With
    ``scorer_carry_prefixes`` that cache outlives the call in :attr:`prefix_cache`: the next search step's prefix (the
    same context plus one more accepted segment) only computes the tokens it adds. Cached keys/values are those of the
    very same tokens at the same positions, so the scores do not change (up to floating-point batch effects).
    """

    def __init__(self, model, config: ScorerConfig, pad_token_id: int = 0):
        self.model = model
        self.config = config
        self.pad_token_id = pad_token_id
        self.backbone = getattr(model, model.base_model_prefix)
        self.lm_head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.device = next(model.parameters()).device
        self.fast_attention = config.scorer_fast_attention and attention.supports(model.config)
        self.compile = config.scorer_compile and fusion.probe(model)
        # The packed CPU pass attends to the shared prefix in one non-causal call, fast only for some key lengths.
        self.align = attention.KEY_ALIGN if self.fast_attention and self.device.type == "cpu" else 1
        # On CPUs a batch is no faster than its rows one by one, so padding is pure waste there.
        pad = config.scorer_pad_batches
        self.pad_batches = self.device.type == "cuda" if pad is None else pad
        self.prefix_cache = PrefixCache(model.config, config.scorer_carry_prefixes)
        self.stats: Counter = Counter()  # forward calls and tokens, for benchmarks and tests

    @property
    def max_positions(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def __call__(self, rows: Sequence[ScoredRow]) -> list[torch.Tensor]:
        with (
            torch.inference_mode(),
            attention.using(self.model, self.fast_attention),
            fusion.using(self.model, self.compile),
        ):
            return self._logprobs(rows)

    def _logprobs(self, rows: Sequence[ScoredRow]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(rows)
        singles, groups = self._plan(rows)
        for batch in self._pack_singles(rows, singles):
            for i, lp in zip(batch, self._run_plain([rows[i] for i in batch]), strict=True):
                out[i] = lp
        for prefix, members in groups:
            for i, lp in zip(members, self._run_group(rows, prefix, members), strict=True):
                out[i] = lp
        return out  # type: ignore[return-value]

    def reset(self) -> None:
        """Forget the carried prefix caches (the search calls this when it moves to new rows)."""
        self.prefix_cache.reset()

    # ---- planning -------------------------------------------------------------------------------------------------
    def _plan(self, rows: Sequence[ScoredRow]) -> tuple[list[int], list[tuple[int, list[int]]]]:
        """Split rows into singles and prefix groups ``(prefix_len, member indices)``."""
        if not self.config.scorer_prefix_reuse:
            return list(range(len(rows))), []
        by_key: dict[tuple, list[int]] = defaultdict(list)
        singles: list[int] = []
        for i, row in enumerate(rows):
            (by_key[row.group] if row.group is not None else singles).append(i)
        groups = []
        for key, members in by_key.items():
            if len(members) < 2 and key not in self.prefix_cache:
                singles.extend(members)
                continue
            prefix = common_prefix_length([rows[i].input_ids for i in members])
            # Keep every position whose hidden state is needed (first scored - 1) in the suffix pass.
            prefix = min(prefix, min(rows[i].scored[0] for i in members) - 1)
            prefix -= prefix % self.align  # the few tokens cut off run in every member's suffix
            if prefix >= self.config.scorer_min_prefix_tokens:
                groups.append((prefix, members))
            else:
                singles.extend(members)
        return sorted(singles), groups

    def _pack_singles(self, rows: Sequence[ScoredRow], indices: list[int]) -> list[list[int]]:
        order = sorted(indices, key=lambda i: len(rows[i].input_ids), reverse=True)
        budget = self.config.scorer_token_budget
        batches: list[list[int]] = []
        for i in order:
            last = batches[-1] if batches else None
            width = len(rows[last[0]].input_ids) if last else 0
            fits = last and (len(last) + 1) * width <= budget
            if fits and (self.pad_batches or len(rows[i].input_ids) == width):
                last.append(i)
            else:
                batches.append([i])
        return batches

    # ---- computation ----------------------------------------------------------------------------------------------
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor, cache=None, pairs=None):
        new = ids.new_full((ids.shape[0],), ids.shape[1]) if mask is None else mask[:, -ids.shape[1] :].sum(1)
        past = cache.get_seq_length() if cache is not None else 0
        self.stats["forward_calls"] += 1
        self.stats["forward_tokens"] += int(new.sum())
        # query-key pairs the attention computes (causal): what reuse saves there is far less than in tokens
        self.stats["attention_pairs"] += int((new * past + new * (new + 1) // 2).sum()) if pairs is None else pairs
        out = self.backbone(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=cache is not None,
        )
        return out.last_hidden_state

    def _padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for b, seq in enumerate(sequences):
            ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[b, : len(seq)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _positions(self, start: int | torch.Tensor, length: int) -> torch.Tensor:
        offsets = start if isinstance(start, torch.Tensor) else torch.tensor([[start]], device=self.device)
        return offsets + torch.arange(length, device=self.device).unsqueeze(0)

    def _run_plain(self, rows: list[ScoredRow]) -> list[torch.Tensor]:
        ids, mask = self._padded([r.input_ids for r in rows])
        if bool(mask.all()):
            mask = None  # no padding: the plain causal kernel
        hidden = self._forward(ids, mask, self._positions(0, ids.shape[1]).expand(ids.shape[0], -1))
        return self._gather_logprobs(hidden, rows, [0] * len(rows))

    def _run_group(self, rows: Sequence[ScoredRow], prefix: int, members: list[int]) -> list[torch.Tensor]:
        """One group: its members' suffixes after their shared prefix (one padded pass on GPUs, one packed pass on
        CPUs, one by one where the mask-free attention does not apply).

        Batched members are right-padded (pad tokens come after every real token, so they are never attended) and
        run on an expanded view of the prefix cache. Packed or one by one, the pass starts from whatever the carried
        cache already holds, so the part of the prefix it lacks is computed inside it (no pass of its own), and the
        cache is cropped back to the prefix afterwards.
        """
        from transformers import DynamicCache

        member_rows = [rows[i] for i in members]
        prefix_ids = member_rows[0].input_ids[:prefix]
        cache, cached = self.prefix_cache.get(member_rows[0].group, prefix_ids, self.align)
        self.stats["carried_tokens"] += cached
        self.stats["shared_prefix_tokens"] += prefix * (len(members) - 1)
        n = len(members)
        if self.pad_batches and n > 1:
            if cached < prefix:  # extend the cache to the whole prefix first
                new = torch.tensor([prefix_ids[cached:]], device=self.device)
                mask = torch.ones((1, prefix), dtype=torch.long, device=self.device) if cached else None
                self._forward(new, mask, self._positions(cached, new.shape[1]), cache)
            view = DynamicCache(config=self.model.config)
            for layer_idx, layer in enumerate(cache.layers):
                view.update(layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1), layer_idx)
            ids, suffix_mask = self._padded([r.input_ids[prefix:] for r in member_rows])
            mask = torch.cat([torch.ones_like(suffix_mask[:, :1]).expand(-1, prefix), suffix_mask], dim=1)
            hidden = self._forward(ids, mask, self._positions(prefix, ids.shape[1]).expand(n, -1), view)
            logprobs = self._gather_logprobs(hidden, member_rows, [prefix] * n)
        elif self.fast_attention and self.device.type == "cpu":
            logprobs = self._run_packed(member_rows, prefix, cache, cached)
        else:  # one member at a time on the cache itself
            logprobs = []
            for row in member_rows:
                ids = torch.tensor([row.input_ids[cached:]], device=self.device)
                mask = torch.ones((1, len(row.input_ids)), dtype=torch.long, device=self.device) if cached else None
                hidden = self._forward(ids, mask, self._positions(cached, ids.shape[1]), cache)
                logprobs.extend(self._gather_logprobs(hidden, [row], [cached]))
                PrefixCache.crop(cache, prefix)  # keep exactly the shared prefix
                cached = prefix
        self.prefix_cache.put(member_rows[0].group, prefix_ids, cache)
        return logprobs

    def _run_packed(self, rows: list[ScoredRow], prefix: int, cache: DynamicCache, cached: int) -> list[torch.Tensor]:
        """The members of a group packed into one sequence after the cache (CPU): first the part of the shared prefix
        the cache lacks, then each member's suffix, each attending to the shared prefix and causally to itself
        (:func:`attention.packed`). Packs stay under the token budget; the cache is cropped back to the prefix."""
        logprobs: list[torch.Tensor] = []
        budget = self.config.scorer_token_budget
        pending = list(rows)
        while pending:
            ids = rows[0].input_ids[cached:prefix]  # the prefix extension, if any (first pack only)
            segments = [attention.Segment(0, len(ids), cached, cached)] if ids else []
            positions = list(range(cached, prefix))
            pack: list[ScoredRow] = []
            while pending and (not pack or len(ids) + len(pending[0].input_ids) - prefix <= budget):
                row = pending.pop(0)
                start, n = len(ids), len(row.input_ids) - prefix
                segments.append(attention.Segment(start, start + n, prefix, cached + start))
                ids = ids + row.input_ids[prefix:]
                positions.extend(range(prefix, prefix + n))
                pack.append(row)
            ids_t, positions_t = torch.tensor([ids], device=self.device), torch.tensor([positions], device=self.device)
            with attention.packed(segments):
                hidden = self._forward(ids_t, None, positions_t, cache, pairs=sum(g.pairs for g in segments))
            for seg, row in zip(segments[-len(pack) :], pack, strict=True):
                logprobs.extend(self._gather_logprobs(hidden[:, seg.start : seg.end], [row], [prefix]))
            PrefixCache.crop(cache, prefix)  # keep exactly the shared prefix
            cached = prefix
        return logprobs

    def _gather_logprobs(self, hidden: torch.Tensor, rows: list[ScoredRow], starts: list[int]) -> list[torch.Tensor]:
        """Log-probs of each row's scored tokens; ``hidden[b, j]`` is the state of absolute position ``starts[b] + j``.

        The state at position ``t - 1`` predicts token ``t``; only those states go through the LM head.
        """
        b_idx, p_idx, targets, counts = [], [], [], []
        for b, (row, start) in enumerate(zip(rows, starts, strict=True)):
            b_idx.extend([b] * len(row.scored))
            p_idx.extend(t - 1 - start for t in row.scored)
            targets.extend(row.input_ids[t] for t in row.scored)
            counts.append(len(row.scored))
        states = hidden[torch.tensor(b_idx, device=self.device), torch.tensor(p_idx, device=self.device)]
        targets_t = torch.tensor(targets, device=self.device)
        chunks = []
        step = self.config.scorer_logits_chunk or (64 if self.device.type == "cpu" else 1024)
        for lo in range(0, states.shape[0], step):
            logits = self.lm_head(states[lo : lo + step]).float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            # log p(target) = -cross_entropy: one fused log-softmax + gather, fp32
            chunks.append(-F.cross_entropy(logits, targets_t[lo : lo + step], reduction="none"))
        flat = torch.cat(chunks).cpu() if chunks else torch.empty(0)
        return list(torch.split(flat, counts))


def common_prefix_length(sequences: Sequence[Sequence[Any]]) -> int:
    """How many leading items all ``sequences`` share."""
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for s in sequences[1:]:
        k = 0
        while k < length and s[k] == first[k]:
            k += 1
        length = k
    return length
