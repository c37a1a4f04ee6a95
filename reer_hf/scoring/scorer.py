"""The REER score: how probable a known-good answer ``y`` is after a query ``x`` and a thinking trajectory ``z``.

Definition (REER.md section 2): the scorer's chat template renders ``[system, user: inference_template(x)]`` with the
generation prompt, then ``"<think>\\n" + z + "\\n</think>\\n<answer>\\n" + y + "\\n</answer>"`` is appended and
teacher-forced. The tokens of ``y`` after its first segment are scored: each log-probability is clipped to
``[-2, 0]`` and the score is ``-mean(clipped)`` (lower is better). Too-long sequences score 1000.0.

Why it is built this way (the scorer is the search's hot path, up to 21 scorings per item):
- The scored tokens are found with the tokenizer's offsets inside the tokenization of the *whole* sequence, never by
  tokenizing pieces separately (BPE merges across piece boundaries).
- Rows are sorted by length and packed under a padded-token budget; results come back in input order.
- Only the scored positions go through the LM head and the log-softmax (the head over 50-150K logits is a large
  share of a naive pass).
- Rows with the same query and answer (the K candidates of a search step) share their common token prefix: it is run
  once into a KV cache and every candidate continues from it (``scorer_prefix_reuse``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reer_hf.core.prompts import render
from reer_hf.core.segment import segment_spans
from reer_hf.core.text import detect_language
from reer_hf.scoring import attention, fusion
from reer_hf.scoring.config import ScorerConfig

STATUS_OK = "ok"
STATUS_TOO_LONG = "too_long"
STATUS_EMPTY_ANSWER = "empty_answer"
STATUS_INVALID_INPUT = "invalid_input"
STATUS_NO_SCORED_TOKENS = "no_scored_tokens"
_TRAILING_THINK = re.compile(r"<think>\s*$")


@dataclass
class ScoreResult:
    """One row's result. ``score`` is the clipped mean NLL (the search's objective), ``nll`` the unclipped one and
    ``ppl = exp(nll)`` the perplexity of the scored answer tokens; ``exp(score)`` is the released code's "ppl"."""

    score: float
    nll: float
    ppl: float
    n_scored: int
    n_tokens: int
    status: str

    def columns(self, prefix: str = "score") -> dict[str, Any]:
        values = asdict(self)
        return {prefix if key == "score" else f"{prefix}_{key}": value for key, value in values.items()}


@dataclass
class EncodedRow:
    """A tokenized scoring sequence: ``scored`` are the positions of the tokens whose log-probs count."""

    input_ids: list[int]
    scored: list[int]
    group: tuple | None = None


def _rejected(status: str, n_tokens: int = 0, score: float = math.nan) -> ScoreResult:
    return ScoreResult(score=score, nll=math.nan, ppl=math.nan, n_scored=0, n_tokens=n_tokens, status=status)


class TransformersLogprobs:
    """Log-probs of chosen tokens with a transformers causal LM: budgeted batches, prefix reuse, carried prefixes.

    Rows of one (query, answer) group run their common token prefix once into a KV cache and continue from it. With
    ``scorer_carry_prefixes`` that cache outlives the call: the next search step's prefix (the same context plus one
    more accepted segment) only computes the tokens it adds. Cached keys/values are those of the very same tokens at
    the same positions, so the scores do not change (up to floating-point batch effects).
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
        self._carried: OrderedDict[tuple, tuple[list[int], Any]] = OrderedDict()
        self.stats: Counter = Counter()  # forward calls and tokens, for benchmarks and tests

    @property
    def max_positions(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def __call__(self, rows: Sequence[EncodedRow]) -> list[torch.Tensor]:
        with (
            torch.inference_mode(),
            attention.using(self.model, self.fast_attention),
            fusion.using(self.model, self.compile),
        ):
            return self._logprobs(rows)

    def _logprobs(self, rows: Sequence[EncodedRow]) -> list[torch.Tensor]:
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
        self._carried.clear()

    # ---- planning -------------------------------------------------------------------------------------------------
    def _plan(self, rows: Sequence[EncodedRow]) -> tuple[list[int], list[tuple[int, list[int]]]]:
        """Split rows into singles and prefix groups ``(prefix_len, member indices)``."""
        if not self.config.scorer_prefix_reuse:
            return list(range(len(rows))), []
        by_key: dict[tuple, list[int]] = defaultdict(list)
        singles: list[int] = []
        for i, row in enumerate(rows):
            (by_key[row.group] if row.group is not None else singles).append(i)
        groups = []
        for key, members in by_key.items():
            if len(members) < 2 and key not in self._carried:
                singles.extend(members)
                continue
            prefix = _common_prefix_length([rows[i].input_ids for i in members])
            # Keep every position whose hidden state is needed (first scored - 1) in the suffix pass.
            prefix = min(prefix, min(rows[i].scored[0] for i in members) - 1)
            prefix -= prefix % self.align  # the few tokens cut off run in every member's suffix
            if prefix >= self.config.scorer_min_prefix_tokens:
                groups.append((prefix, members))
            else:
                singles.extend(members)
        return sorted(singles), groups

    def _pack_singles(self, rows: Sequence[EncodedRow], indices: list[int]) -> list[list[int]]:
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

    def _run_plain(self, rows: list[EncodedRow]) -> list[torch.Tensor]:
        ids, mask = self._padded([r.input_ids for r in rows])
        if bool(mask.all()):
            mask = None  # no padding: the plain causal kernel
        hidden = self._forward(ids, mask, self._positions(0, ids.shape[1]).expand(ids.shape[0], -1))
        return self._gather_logprobs(hidden, rows, [0] * len(rows))

    def _carried_cache(self, key: tuple, prefix_ids: list[int]):
        """``(cache, cached)``: the group's carried cache cropped to its longest common prefix with ``prefix_ids``
        (``cached`` tokens), or a new empty one."""
        from transformers import DynamicCache

        cache, cached = None, 0
        if key in self._carried:
            old_ids, cache = self._carried.pop(key)
            cached = _common_prefix_length([old_ids, prefix_ids])
            cached -= cached % self.align
            if cached == 0:
                cache = None
            elif cached < len(old_ids):
                cache.crop(cached - len(old_ids))
        if cache is None:
            cache, cached = DynamicCache(config=self.model.config), 0
        self.stats["carried_tokens"] += cached
        return cache, cached

    def _run_group(self, rows: Sequence[EncodedRow], prefix: int, members: list[int]) -> list[torch.Tensor]:
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
        cache, cached = self._carried_cache(member_rows[0].group, prefix_ids)
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
                cache.crop(prefix - len(row.input_ids))  # keep exactly the shared prefix
                cached = prefix
        if self.config.scorer_carry_prefixes:
            self._carried[member_rows[0].group] = (prefix_ids, cache)
            while len(self._carried) > self.config.scorer_carry_prefixes:
                self._carried.popitem(last=False)
        return logprobs

    def _run_packed(self, rows: list[EncodedRow], prefix: int, cache, cached: int) -> list[torch.Tensor]:
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
            pack: list[EncodedRow] = []
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
            cache.crop(prefix - cache.get_seq_length())  # keep exactly the shared prefix (always < 0 here)
            cached = prefix
        return logprobs

    def _gather_logprobs(self, hidden: torch.Tensor, rows: list[EncodedRow], starts: list[int]) -> list[torch.Tensor]:
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


class VLLMLogprobs:
    """Prompt log-probs from a vLLM offline engine (optional; imported only when used)."""

    def __init__(self, model_path: str, config: ScorerConfig, dtype: str = "auto", max_model_len: int | None = None):
        try:
            from vllm import LLM
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError("scorer_backend='vllm' needs vLLM: pip install 'reer-hf[vllm]' (GPU only)") from err
        kwargs = {"dtype": "bfloat16" if dtype == "auto" else dtype, **(config.scorer_vllm_kwargs or {})}
        if max_model_len:
            kwargs.setdefault("max_model_len", max_model_len)
        self.llm = LLM(model=model_path, **kwargs)
        self.max_positions = max_model_len
        self.stats: Counter = Counter()

    def __call__(self, rows: Sequence[EncodedRow]) -> list[torch.Tensor]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=r.input_ids) for r in rows], params, use_tqdm=False)
        self.stats["forward_calls"] += 1
        result = []
        for row, output in zip(rows, outputs, strict=True):
            logprobs = output.prompt_logprobs
            result.append(
                torch.tensor([logprobs[t][row.input_ids[t]].logprob for t in row.scored], dtype=torch.float32)
            )
        return result


class Scorer:
    """Scores (query, thinking, answer) rows with the REER score; see the module docstring for the definition."""

    def __init__(self, tokenizer, config: ScorerConfig | None = None, model=None, backend=None):
        self.config = config or ScorerConfig()
        self.tokenizer = tokenizer
        if backend is None:
            if model is None:
                raise ValueError("Scorer needs a model or a backend")
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            backend = TransformersLogprobs(model, self.config, pad_token_id=pad)
        self.backend = backend
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("The scorer needs a fast tokenizer (offset mappings locate the answer tokens)")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "The scorer's tokenizer has no chat template; the scoring context is rendered with it. Set one, e.g. "
                "reer_hf/templates/chatml.jinja."
            )
        limits = [n for n in (self.config.scorer_max_length, getattr(backend, "max_positions", None)) if n]
        self.max_length = min(limits) if limits else None
        self._contexts: dict[tuple[str, str], str] = {}

    @classmethod
    def from_config(cls, config: ScorerConfig) -> Scorer:
        """Load the scorer model named by the config with its backend."""
        from reer_hf.core.models import load_causal_lm, load_tokenizer, resolve_model

        if config.scorer_backend == "vllm":
            tokenizer = load_tokenizer(config.scorer_model)
            backend = VLLMLogprobs(
                resolve_model(config.scorer_model), config, config.scorer_dtype, config.scorer_max_length
            )
            return cls(tokenizer, config, backend=backend)
        model, tokenizer = load_causal_lm(
            config.scorer_model,
            dtype=config.scorer_dtype,
            device=config.scorer_device,
            attn_implementation=config.scorer_attn_implementation,
        )
        return cls(tokenizer, config, model=model)

    # ---- building the scored sequence -----------------------------------------------------------------------------
    def context(self, query: str) -> str:
        """The rendered scoring context for ``query`` (cached: the K candidates of a step share it)."""
        lang = detect_language(query)
        key = (query, lang)
        if key not in self._contexts:
            messages = []
            if self.config.scorer_system_prompt:
                messages.append({"role": "system", "content": self.config.scorer_system_prompt})
            messages.append(
                {
                    "role": "user",
                    "content": render(
                        self.config.scorer_inference_template,
                        lang,
                        query=query,
                        reflection=self.config.scorer_reflection,
                    ),
                }
            )
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if len(self._contexts) > 4096:
                self._contexts.clear()
            self._contexts[key] = _TRAILING_THINK.sub("", text)
        return self._contexts[key]

    def build(self, query: str, thinking: str, answer: str) -> tuple[str, int, int]:
        """The full text and the character span ``[start, end)`` of the scored part of the answer."""
        head = self.context(query) + self.config.scorer_thinking_format.replace("{thinking}", thinking)
        spans = segment_spans(answer, self.config.scorer_segment_min_chars)
        # A single-segment answer has nothing after its first segment: then the whole answer is scored.
        if self.config.scorer_first_segment_context and len(spans) >= 2:
            start = spans[1][0]
        else:
            start = len(answer) - len(answer.lstrip())
        return head + answer + self.config.scorer_answer_suffix, len(head) + start, len(head) + len(answer)

    def encode(self, queries, thinkings, answers) -> list[EncodedRow | ScoreResult]:
        """Tokenize every valid row (one batched tokenizer call); invalid rows become rejected results."""
        out: list[EncodedRow | ScoreResult | None] = [None] * len(queries)
        texts, spans, keys, where = [], [], [], []
        for i, (query, thinking, answer) in enumerate(zip(queries, thinkings, answers, strict=True)):
            thinking = "" if thinking is None else thinking
            if not all(isinstance(v, str) for v in (query, thinking, answer)):
                out[i] = _rejected(STATUS_INVALID_INPUT)
            elif not answer.strip():
                out[i] = _rejected(STATUS_EMPTY_ANSWER)
            else:
                text, lo, hi = self.build(query, thinking, answer)
                texts.append(text)
                spans.append((lo, hi))
                keys.append((query, answer))
                where.append(i)
        if texts:
            encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            for k, i in enumerate(where):
                ids, offsets = encoded["input_ids"][k], encoded["offset_mapping"][k]
                lo, hi = spans[k]
                if self.max_length is not None and len(ids) > self.max_length:
                    out[i] = _rejected(STATUS_TOO_LONG, len(ids), self.config.scorer_too_long_score)
                    continue
                scored = [t for t, (start, _) in enumerate(offsets) if lo <= start < hi and t > 0]
                if not scored:
                    out[i] = _rejected(STATUS_NO_SCORED_TOKENS, len(ids))
                    continue
                out[i] = EncodedRow(input_ids=ids, scored=scored, group=keys[k])
        return out  # type: ignore[return-value]

    # ---- scoring --------------------------------------------------------------------------------------------------
    def reduce(self, logprobs: torch.Tensor, n_tokens: int) -> ScoreResult:
        """Turn a row's scored-token log-probs into its result (clip, means, perplexity)."""
        lp = logprobs.double()
        nll = float(-lp.mean())
        if self.config.scorer_clip:
            lp = lp.clamp(self.config.scorer_clip_min, self.config.scorer_clip_max)
        score = float(-lp.mean())
        return ScoreResult(
            score=score,
            nll=nll,
            ppl=math.exp(min(nll, 700.0)),
            n_scored=len(logprobs),
            n_tokens=n_tokens,
            status=STATUS_OK,
        )

    def score(self, queries: Sequence, thinkings: Sequence | None, answers: Sequence) -> list[ScoreResult]:
        """Score rows given as parallel lists (``thinkings`` may be None: no thinking); results in input order."""
        thinkings = [""] * len(queries) if thinkings is None else thinkings
        encoded = self.encode(queries, thinkings, answers)
        todo = [i for i, e in enumerate(encoded) if isinstance(e, EncodedRow)]
        results: list[ScoreResult] = [e if isinstance(e, ScoreResult) else None for e in encoded]  # type: ignore
        if todo:
            logprobs = self.backend([encoded[i] for i in todo])
            for i, lp in zip(todo, logprobs, strict=True):
                results[i] = self.reduce(lp, len(encoded[i].input_ids))
        return results

    def score_batch(
        self,
        batch: dict[str, list],
        query_column: str = "query",
        thinking_column: str | None = "thinking",
        answer_column: str = "answer",
        prefix: str = "score",
    ) -> dict[str, list]:
        """``dataset.map(scorer.score_batch, batched=True)``: adds ``score``, ``score_nll``, ``score_ppl``,
        ``score_n_scored``, ``score_n_tokens`` and ``score_status`` (names follow ``prefix``)."""
        if query_column not in batch or answer_column not in batch:
            raise KeyError(f"Columns {query_column!r} and {answer_column!r} are needed; found {sorted(batch)}")
        thinkings = batch[thinking_column] if thinking_column and thinking_column in batch else None
        results = self.score(batch[query_column], thinkings, batch[answer_column])
        columns: dict[str, list] = defaultdict(list)
        for result in results:
            for key, value in result.columns(prefix).items():
                columns[key].append(value)
        return dict(columns)


def _common_prefix_length(sequences: list[list[int]]) -> int:
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for s in sequences[1:]:
        k = 0
        while k < length and s[k] == first[k]:
            k += 1
        length = k
    return length
