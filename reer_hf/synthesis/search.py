"""The REER search (the paper's search) in lock-step over the rows of a ``datasets.map`` batch.

For every row at once: one generator call writes the initial trajectories ``z0``; one scorer call scores them; then,
segment by segment, one generator call proposes K rewrites for every still-active row and one scorer call scores all
of them (the K candidates of a row share their prefix, which the scorer computes once and carries to the next step).
A row leaves the lock-step when its score falls below the threshold or its segments run out, so the number of
generator and scorer calls per batch is ``2 + 2 * max_step`` whatever the number of rows.

Nothing is dropped silently: every row comes out with a ``status`` (``ok``, ``dropped``, ``filtered``, ``invalid``,
``duplicate``) and, when not ``ok``, a ``drop_reason``; every candidate has a status in the trace.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter

from reer_hf.core.prompts import official_prompt, official_text, render
from reer_hf.core.text import detect_language, strip_thinking
from reer_hf.generation import FINISH_ERROR, FINISH_LENGTH, Generator, Request, Sampling
from reer_hf.scoring.noise import NoiseFloor
from reer_hf.scoring.scorer import STATUS_OK, Scorer
from reer_hf.synthesis.config import FilterConfig, SearchConfig
from reer_hf.synthesis.filters import leak_evidence, leaked_span, thinking_verdict, unfinished_evidence
from reer_hf.synthesis.noise_floor import measure, require
from reer_hf.synthesis.trajectory import (
    _TAGS,
    ANALYZE_OPEN,
    REFINE_CLOSE,
    REFINE_OPEN,
    SEPARATOR,
    STATUS_DUPLICATE,
    STATUS_FILTERED,
    STATUS_INVALID,
    THINK_CLOSE,
    THINK_OPEN,
    SearchItem,
    lead_words,
    search_features,
    split_trajectory,
)


class Searcher:
    """``dataset.map(searcher, batched=True, with_indices=True)``: the REER search on a batch of rows.

    ``generator`` and ``scorer`` may be the same model (the demo) or different ones (the paper: a 32B instruct
    generator served by vLLM, an 8B base scorer). ``to_messages`` builds the SFT ``messages`` of a kept row.
    """

    def __init__(
        self,
        generator: Generator,
        scorer: Scorer,
        config: SearchConfig | None = None,
        filters: FilterConfig | None = None,
        to_messages=None,
        query_column: str = "query",
        answer_column: str = "answer",
    ):
        self.generator = generator
        self.scorer = scorer
        self.config = config or SearchConfig()
        self.filters = filters or FilterConfig()
        self.to_messages = to_messages
        self.query_column = query_column
        self.answer_column = answer_column
        self.stats: Counter = Counter()
        self.on_step = None  # optional callback(step, n_active) for progress displays
        self.noise_floor: NoiseFloor | None = None  # the run's (measure_noise, or set by the run), for min_gain auto
        official = self.config.search_prompt_source == "official"
        system = self.config.search_system_prompt
        self.system_prompt = (official_text("default_sys") if official else None) if system is None else system
        self.official_prompts = official

    def measure_noise(self, queries: list[str], answers: list[str]) -> NoiseFloor:
        """Measure the scorer's numeric noise on these rows (an empty thinking each), once and before the search, so
        every batch decides with the same margin; raises when it cannot be measured (a synthesis run measures it
        once for all its processes and sets ``noise_floor`` instead)."""
        self.noise_floor = measure(self.scorer, self.config, queries, answers)
        return self.noise_floor

    @property
    def min_gain(self) -> float:
        """The margin a rewrite's gain must clear: the option; for ``auto``, the measured floor under same-pass
        acceptance (an error while there is none, never a silent 0) and none under the official rule."""
        if self.config.search_min_gain != "auto":
            return float(self.config.search_min_gain)
        return require(self.noise_floor).max if self.config.measures_noise else 0.0

    def _messages(self, content: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": "user", "content": content}]

    def _edit_prefill(self, lang: str) -> str:
        """What an edit reply starts with before its tag: the option, else the official sentence with official
        prompts (the official code pre-fills it, then ``<analyze>``), else nothing."""
        if self.config.search_edit_prefill is not None:
            return self.config.search_edit_prefill
        return official_text(f"edit_prefill_{'zh' if lang == 'zh' else 'en'}") if self.official_prompts else ""

    # ---- the map function -----------------------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: list[int], offset: int = 0) -> dict[str, list]:
        start = time.perf_counter()
        if self.config.measures_noise and self.noise_floor is None:  # used on its own: the first batch's rows
            self.measure_noise(batch[self.query_column], batch[self.answer_column])
        for reset in (getattr(self.scorer.backend, "reset", None), getattr(self.generator, "reset", None)):
            if reset:
                reset()  # carried prefixes and prompts belong to the previous batch's rows
        n = len(batch[self.query_column])
        duplicates = batch.get("duplicate_of") or [None] * n
        items = [
            SearchItem(index=offset + i, query=q, answer=a)
            for i, q, a in zip(indices, batch[self.query_column], batch[self.answer_column], strict=True)
        ]
        for item, dup in zip(items, duplicates, strict=True):
            self._validate(item, dup)
        self._initial(items)
        for step in range(self.config.search_max_step):
            active = [it for it in items if it.active and step < len(it.segments)]
            for it in items:
                if it.active and step >= len(it.segments):
                    it.stop_reason = "segments_exhausted"
            if not active:
                break
            if self.on_step:
                self.on_step(step, len(active))
            self._refine_step(active, step)
        for it in items:
            if it.active:
                it.stop_reason = "max_step"
            self._finish(it)
        self.stats["batches"] += 1
        self.stats["rows"] += n
        self.stats["seconds"] += time.perf_counter() - start
        return self._columns(items)

    # ---- phases ---------------------------------------------------------------------------------------------------
    def _validate(self, item: SearchItem, duplicate_of) -> None:
        for name, value in (("query", item.query), ("answer", item.answer)):
            if not isinstance(value, str):
                return item.drop(f"{name}_not_text" if value is not None else f"{name}_missing", STATUS_INVALID)
            if not value.strip():
                return item.drop(f"{name}_empty", STATUS_INVALID)
        if THINK_CLOSE in item.answer:  # the reference is what follows the last </think> (the paper's search)
            item.answer = strip_thinking(item.answer)
            if not item.answer:
                return item.drop("answer_empty", STATUS_INVALID)
        item.lang = detect_language(item.query)
        item.answer_lang = detect_language(item.answer)
        if duplicate_of is not None:
            return item.drop("duplicate", STATUS_DUPLICATE)  # of the row in the duplicate_of column
        # An answer that cannot fit the scorer's context even with no thinking is dropped before any generation.
        probe = self.scorer.encode([item.query], [""], [item.answer])[0]
        if getattr(probe, "status", STATUS_OK) != STATUS_OK:
            item.drop(f"answer_{probe.status}")

    def _opener(self, item: SearchItem) -> str:
        cfg = self.config
        openers = cfg.search_openers_zh if item.lang == "zh" else cfg.search_openers_en
        weights = cfg.search_opener_weights_zh if item.lang == "zh" else cfg.search_opener_weights_en
        rng = random.Random(f"{cfg.search_seed}-{item.index}")  # per row: independent of batching
        return rng.choices(openers, weights=weights, k=1)[0]

    def _initial_prompt(self, it: SearchItem) -> str:
        if self.official_prompts:
            return official_prompt("initial", it.lang, it.query, it.answer)
        cfg = self.config
        return render(
            cfg.search_initial_prompt, it.lang, query=it.query, answer=it.answer, reflection=cfg.search_reflection
        )

    def _seed(self, item: SearchItem, phase: int) -> int:
        """The generator seed of a row's request in a phase (0: the initial trajectory, s + 1: step s): a function of
        the seed option, the row and the phase alone, so a row's samples do not depend on how rows are batched,
        sharded or resumed."""
        return ((self.config.search_seed * 1_000_003 + item.index) * 1009 + phase) % (2**62)

    def _initial(self, items: list[SearchItem]) -> None:
        todo = [it for it in items if it.status == STATUS_OK]
        if not todo:
            return
        cfg = self.config
        # a server without pre-fill never sees the opener, so it is not part of the trajectory either
        openers = [self._opener(it) if self.generator.sees_prefill else "" for it in todo]
        requests = [
            Request(self._messages(self._initial_prompt(it)), f"{THINK_OPEN}\n{opener}", seed=self._seed(it, 0))
            for it, opener in zip(todo, openers, strict=True)
        ]
        sampling = Sampling(
            n=1,
            temperature=cfg.search_temperature,
            top_p=cfg.search_top_p,
            max_new_tokens=cfg.search_max_new_tokens,
            stop=[THINK_CLOSE],
            repetition_penalty=cfg.search_repetition_penalty,
        )
        completions = self._generate(requests, sampling)
        for it, opener, (completion,) in zip(todo, openers, completions, strict=True):
            it.generated_tokens += completion.n_tokens
            if completion.finish_reason == FINISH_ERROR:
                it.drop("generator_error")
                continue
            text = completion.text
            if text.lstrip().startswith(THINK_OPEN):  # a backend without pre-fill may repeat the tag
                text = text.lstrip()[len(THINK_OPEN) :]
                opener = ""
            it.z0 = (opener + text).split(THINK_CLOSE, 1)[0].strip()
            it.finished = completion.finish_reason != FINISH_LENGTH
            it.segments, it.seps = split_trajectory(it.z0, cfg.search_segment_min_chars)
            if completion.n_tokens < cfg.search_min_rollout_tokens:
                it.drop("short_rollout")
            elif not it.finished and self.filters.filter_end_of_thinking:  # cut by the token limit: no search fixes it
                evidence = unfinished_evidence(it.z0, completion.n_tokens, cfg.search_max_new_tokens)
                it.drop("end_of_thinking", STATUS_FILTERED, evidence)
            elif self.filters.filter_malformed and any(tag in it.z0 for tag in _TAGS):
                it.drop("malformed")
            elif len(it.segments) <= 1:
                it.drop("single_segment")
            elif span := self._leaks(it.z0, it):
                it.drop("leak", evidence=leak_evidence(span, self.filters.filter_leak_ngram, it.answer_lang))
        scored = [it for it in todo if it.status == STATUS_OK]
        results = self._score([(it, it.z0) for it in scored])
        for it, result in zip(scored, results, strict=True):
            if result.status != STATUS_OK:
                it.drop(f"score_{result.status}")
                continue
            it.initial_score = it.score = result.score
            it.initial_nll = it.nll = result.nll
            if it.score < cfg.search_stop_thresh:
                it.stop_reason = "threshold"

    def _refine_step(self, active: list[SearchItem], step: int) -> None:
        cfg = self.config
        requests, prefills = [], []
        for it in active:
            tag = f"{ANALYZE_OPEN}\n" if cfg.search_edit_format == "analyze" else f"{REFINE_OPEN}\n"
            prefill = self._edit_prefill(it.lang) + tag
            if cfg.search_edit_format == "refine" and cfg.search_refine_lead_words and self.generator.sees_prefill:
                prefill += lead_words(it.segments[step], cfg.search_refine_lead_words)
            prefills.append(prefill)
            before, after = it.thinking()[: self._offset(it, step)], it.thinking()[self._offset(it, step + 1) :]
            if self.official_prompts:
                target = it.segments[step]
                args = (it.query, it.answer, before.strip(), target, after.strip(), target)
                prompt = official_prompt("edit", it.lang, *args)
            else:
                prompt = render(
                    cfg.search_edit_prompt,
                    it.lang,
                    query=it.query,
                    answer=it.answer,
                    before=before.strip(),
                    target=it.segments[step],
                    after=after.strip(),
                    reflection=cfg.search_reflection,
                )
            requests.append(Request(self._messages(prompt), prefill, seed=self._seed(it, step + 1)))
        sampling = Sampling(
            n=cfg.search_num_expansion,
            temperature=cfg.search_temperature,
            top_p=cfg.search_top_p,
            max_new_tokens=cfg.edit_max_new_tokens,
            # refine format: one paragraph, so a small model that runs on past it is cut at the blank line
            stop=[REFINE_CLOSE, SEPARATOR] if cfg.search_edit_format == "refine" else [REFINE_CLOSE],
            repetition_penalty=cfg.search_repetition_penalty,
        )
        completions = self._generate(requests, sampling)
        pending: list[tuple[SearchItem, int, str]] = []  # (item, candidate slot, rewrite)
        records = []
        for it, samples, prefill in zip(active, completions, prefills, strict=True):
            record = {
                "segment": step,
                "candidates": [None] * len(samples),
                "candidate_scores": [None] * len(samples),
                "candidate_status": [""] * len(samples),
                "candidate_gains": [None] * len(samples),
                "cleared": [None] * len(samples),
                "incumbent_score": None,
                "best_gain": None,
                "margin": self.min_gain,
                "chosen": -1,
                "accepted": False,
                "score_after": it.score,
            }
            for k, completion in enumerate(samples):
                it.generated_tokens += completion.n_tokens
                rewrite, status = self._parse_rewrite(completion, prefill, it, step)
                record["candidate_status"][k] = status
                record["candidates"][k] = rewrite
                if rewrite is not None:
                    pending.append((it, k, rewrite))
            records.append(record)
        # same_pass: the current trajectory is one more member of each row's group, so it is scored in the same pass
        # (same batch, same prefix path) as its candidates and every gain compares numbers computed alike. official:
        # the official code's rule, each candidate against the score kept from the current trajectory's own pass.
        same_pass = cfg.search_acceptance == "same_pass"
        incumbents = list({id(it): it for it, _, _ in pending}.values()) if same_pass else []
        scored = self._score(
            [(it, it.thinking(step, rewrite)) for it, _, rewrite in pending]
            + [(it, it.thinking()) for it in incumbents]
        )
        results = scored[: len(pending)]
        now: dict[int, float | None] = {id(it): it.score for it in active}
        if same_pass:
            now = {
                id(it): r.score if r.status == STATUS_OK else None
                for it, r in zip(incumbents, scored[len(pending) :], strict=True)
            }
        margin = self.min_gain
        best: dict[int, tuple[float, float, str, int]] = {}
        by_item = {id(it): rec for it, rec in zip(active, records, strict=True)}
        for (it, k, rewrite), result in zip(pending, results, strict=True):
            record = by_item[id(it)]
            record["candidate_status"][k] = "scored" if result.status == STATUS_OK else result.status
            record["candidate_scores"][k] = result.score if not math.isnan(result.score) else None
            current = now[id(it)]
            if result.status == STATUS_OK and current is not None:
                gain = current - result.score
                record["candidate_gains"][k] = gain
                record["cleared"][k] = gain > margin
                if 0 < gain <= margin:
                    record["candidate_status"][k] = "below_margin"
            if result.status == STATUS_OK and (id(it) not in best or result.score < best[id(it)][0]):
                best[id(it)] = (result.score, result.nll, rewrite, k)
        for it, record in zip(active, records, strict=True):
            record["incumbent_score"] = now.get(id(it))
            if id(it) in best:
                record["chosen"] = best[id(it)][3]
                record["best_gain"] = record["candidate_gains"][best[id(it)][3]]
            if id(it) in best and record["best_gain"] is not None and record["best_gain"] > margin:
                score, nll, rewrite, _ = best[id(it)]
                it.segments[step] = rewrite
                if step > 0:
                    it.seps[step - 1] = SEPARATOR
                if step < len(it.seps):
                    it.seps[step] = SEPARATOR
                it.score, it.nll = score, nll
                record["accepted"] = True
            record["score_after"] = it.score
            it.trace.append(record)
            self.stats["candidates"] += len(record["candidate_status"])
            self.stats["accepted"] += record["accepted"]
            if it.score < cfg.search_stop_thresh:
                it.stop_reason = "threshold"

    def _finish(self, it: SearchItem) -> None:
        if it.status != STATUS_OK:
            return
        z_star = it.thinking()
        it.z_star_tokens = len(self.scorer.tokenizer(z_star, add_special_tokens=False)["input_ids"])
        verdict = thinking_verdict(z_star, it.finished, it.lang, self.filters, it.z_star_tokens)
        if verdict:
            it.drop(verdict[0], STATUS_FILTERED, verdict[1])

    # ---- helpers --------------------------------------------------------------------------------------------------
    @staticmethod
    def _offset(it: SearchItem, step: int) -> int:
        """Character offset of segment ``step`` in the current trajectory (its end for ``step == len``)."""
        offset = 0
        for k in range(step):
            offset += len(it.segments[k]) + (len(it.seps[k]) if k < len(it.seps) else 0)
        return offset

    def _parse_rewrite(self, completion, prefill: str, it: SearchItem, step: int) -> tuple[str | None, str]:
        """The rewrite inside a completion, or None with the reason it was rejected."""
        if completion.finish_reason == FINISH_ERROR:
            return None, "generator_error"
        if completion.finish_reason == FINISH_LENGTH:
            return None, "truncated"
        text = prefill + completion.text
        if REFINE_OPEN not in text:
            return None, "no_refine"
        rewrite = text.rsplit(REFINE_OPEN, 1)[1].split(REFINE_CLOSE, 1)[0].strip()
        if not rewrite:
            return None, "empty_rewrite"
        target = it.segments[step]
        if self.config.search_edit_format == "refine" and SEPARATOR in target:
            # refine stops at a blank line, so it rewrote the first paragraph of a merged segment; keep the rest
            rewrite = rewrite + SEPARATOR + target.split(SEPARATOR, 1)[1]
        if self.filters.filter_malformed and any(tag in rewrite for tag in _TAGS):
            return None, "malformed"
        if rewrite == it.segments[step].strip():
            return None, "unchanged"
        if self._leaks(rewrite, it):
            return None, "leak"
        return rewrite, "pending"

    def _leaks(self, text: str, it: SearchItem) -> str | None:
        """The span of the answer that ``text`` copies (the leak guard), or None."""
        if not self.filters.filter_leak_guard:
            return None
        return leaked_span(text, it.answer, self.filters.filter_leak_ngram, it.answer_lang, allowed=it.query)

    def _generate(self, requests: list[Request], sampling: Sampling):
        start = time.perf_counter()
        out = self.generator.generate(requests, sampling)
        self.stats["generator_calls"] += 1
        self.stats["generator_seconds"] += time.perf_counter() - start
        return out

    def _score(self, pairs: list[tuple[SearchItem, str]]):
        if not pairs:
            return []
        start = time.perf_counter()
        results = self.scorer.score(
            [it.query for it, _ in pairs], [z for _, z in pairs], [it.answer for it, _ in pairs]
        )
        self.stats["scorer_calls"] += 1
        self.stats["scorer_seconds"] += time.perf_counter() - start
        for (it, _), result in zip(pairs, results, strict=True):
            it.scored_tokens += result.n_tokens
            self.stats["scored_tokens"] += result.n_tokens
        return results

    def _columns(self, items: list[SearchItem]) -> dict[str, list]:
        columns: dict[str, list] = {name: [] for name in search_features()}
        for it in items:
            z_star = it.thinking() if it.z0 is not None and it.segments else it.z0
            kept = it.status == STATUS_OK
            messages = self.to_messages(it.query, z_star, it.answer) if kept and self.to_messages else None
            values = {
                "language": it.lang,
                "z0": it.z0,
                "z_star": z_star,
                "initial_score": it.initial_score,
                "final_score": it.score,
                "initial_nll": it.initial_nll,
                "final_nll": it.nll,
                "n_segments": len(it.segments) if it.z0 is not None else None,
                "trace": it.trace,
                "status": it.status,
                "drop_reason": it.drop_reason,
                "drop_evidence": it.evidence,
                "stop_reason": it.stop_reason,
                "z_star_tokens": it.z_star_tokens,
                "generated_tokens": it.generated_tokens,
                "scored_tokens": it.scored_tokens,
                "messages": messages,
            }
            for name, value in values.items():
                columns[name].append(value)
        return columns
