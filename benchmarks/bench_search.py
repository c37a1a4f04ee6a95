"""Benchmark the REER search: the lock-step batched ``datasets.map`` against the per-row loop a user would write,
and its generation against the hardware's limit.

Same model, dtype, pairs, budgets and seeds in one process, modes interleaved:
- naive: one row at a time (``map_batch_size=1``), generating with transformers' ``model.generate`` (each of the K
  samples prefilled on its own, ``num_return_sequences``), scoring without prefix reuse or carried caches;
- lockstep: every row in one map batch, generating with the project's decoder (one prefill per distinct prompt, its K
  samples decoded from it, finished samples leaving the batch), one scorer call for all candidates with the prefix
  shared by a row's candidates computed once and carried from step to step.
The two modes sample differently, so the comparison is throughput: rows/s, generated tokens/s and the time split.

For the lock-step run it also prints, per generator call (the initial trajectories, then each step): prompt tokens
prefilled and asked for, generated tokens, prefill and decode tokens/s, and the limit: the same model's plain forward
passes at the same prompt lengths and the same decode batches and contexts, timed in the same run, so generation is
reported as a fraction of what the hardware does. The last line of output is one JSON object.

    python benchmarks/bench_search.py --quick                         # CPU, the demo model, ~2 minutes on 2 cores
    python benchmarks/bench_search.py --device cuda --rows 8 --max_new_tokens 512
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from collections import Counter

import torch
from datasets import Dataset
from transformers import DynamicCache

from reer_hf.core.data import demo_pairs
from reer_hf.core.models import DEMO_MODEL, load_causal_lm, resolve_device, resolve_dtype
from reer_hf.core.threads import set_torch_threads
from reer_hf.generation import TransformersGenerator
from reer_hf.generation.base import render_prompt
from reer_hf.generation.completion import FINISH_LENGTH, FINISH_STOP, Completion, Request, Sampling, cut_at_stop
from reer_hf.generation.decoding import DecodeStats, buffered_cache
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import FilterConfig, SearchConfig
from reer_hf.synthesis.search import Searcher, search_features


class GenerateGenerator(TransformersGenerator):
    """The way a user would write it: ``model.generate`` per request with ``num_return_sequences`` (each sample
    prefills the prompt again; finished rows stay in the batch until the longest ends)."""

    def _generate_chunk(self, requests: list[Request], sampling: Sampling, offset: int) -> list[list[Completion]]:
        out = []
        for i, request in enumerate(requests):
            ids = self.tokenizer(render_prompt(self.tokenizer, request), return_tensors="pt", add_special_tokens=False)
            ids = ids.to(self.model.device)
            torch.manual_seed(request.seed if request.seed is not None else (sampling.seed or 0) + offset + i)
            kwargs = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            generated = self.model.generate(
                **ids,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=sampling.n,
                repetition_penalty=sampling.repetition_penalty,
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=list(sampling.stop) or None,
                tokenizer=self.tokenizer,
                **kwargs,
            )[:, ids["input_ids"].shape[1] :].tolist()
            self.stats["prompt_tokens"] += sampling.n * ids["input_ids"].shape[1]
            completions = []
            for row in generated:
                ended = next((t for t, tok in enumerate(row) if tok in self.eos_ids), None)
                row = row if ended is None else row[:ended]
                text, stopped = cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), sampling.stop)
                done = ended is not None or stopped or len(row) < sampling.max_new_tokens
                completions.append(Completion(text, len(row), FINISH_STOP if done else FINISH_LENGTH))
            out.append(completions)
        return out


class CallRecorder:
    """Wraps a generator's ``generate`` to keep, per call, what it prefilled and decoded and how long each took."""

    def __init__(self, generator: TransformersGenerator):
        self.generator, self.calls = generator, []
        self._generate = generator.generate
        generator.generate = self

    def __call__(self, requests, sampling):
        stats: DecodeStats = self.generator.decode_stats
        before = dataclasses.replace(stats, batch_sizes=[], contexts=[])  # the counters before this call
        steps = slice(len(stats.batch_sizes), None)
        start = time.perf_counter()
        out = self._generate(requests, sampling)
        seconds = time.perf_counter() - start
        self.calls.append(
            {
                "requests": len(requests),
                "samples": len(requests) * sampling.n,
                "prompt_tokens": stats.prompt_tokens - before.prompt_tokens,
                "prompt_tokens_requested": stats.requested_prompt_tokens - before.requested_prompt_tokens,
                "prompt_tokens_carried": stats.carried_prompt_tokens - before.carried_prompt_tokens,
                "generated_tokens": sum(c.n_tokens for cs in out for c in cs),
                "decode_steps": stats.decode_steps - before.decode_steps,
                "prefill_seconds": stats.prefill_seconds - before.prefill_seconds,
                "decode_seconds": stats.decode_seconds - before.decode_seconds,
                "seconds": seconds,
                "batches": stats.batch_sizes[steps],
                "contexts": stats.contexts[steps],
                "prompts": self.generator.tokenizer(
                    list(dict.fromkeys(render_prompt(self.generator.tokenizer, r) for r in requests)),
                    add_special_tokens=False,
                )["input_ids"],
            }
        )
        return out


@torch.inference_mode()
def plain_prefill_seconds(model, prompts: list[list[int]]) -> float:
    """The time of plain forward passes over these prompts (batch 1, the last logits). Real prompts, not random ids:
    random tokens give activations whose matmuls run far slower on CPUs (subnormal numbers), a limit that is none."""
    start = time.perf_counter()
    for ids in prompts:
        model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1)
    return time.perf_counter() - start


@torch.inference_mode()
def plain_decode_step_seconds(model, prompt: list[int], groups: dict[int, int], steps: int = 4) -> dict[int, float]:
    """Per batch size, the time of one plain forward decode step (a token per row) over a key/value cache of the given
    context: the cache of one real prompt (repeated to the longest context) cut to the context and copied to every
    row; the median of ``steps`` after a warm-up."""
    longest = max(groups.values())
    ids = (prompt * (longest // len(prompt) + 1))[:longest]
    full = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([ids], device=model.device), past_key_values=full, use_cache=True, logits_to_keep=1)
    out = {}
    for batch, context in groups.items():
        cache = buffered_cache(model.config)
        for layer, source in zip(cache.layers, full.layers, strict=True):
            keys = source.keys[..., :context, :].expand(batch, -1, -1, -1).contiguous()
            values = source.values[..., :context, :].expand(batch, -1, -1, -1).contiguous()
            layer.lazy_initialization(keys, values)
            layer.update(keys, values)
        times = []
        for i in range(steps + 1):
            for layer in cache.layers:
                layer.reserve(1)
            token = torch.tensor([[ids[(context + i) % len(ids)]]] * batch, device=model.device)
            start = time.perf_counter()
            position = torch.full((batch, 1), context + i, device=model.device)
            model(input_ids=token, past_key_values=cache, use_cache=True, position_ids=position)
            times.append(time.perf_counter() - start)
        out[batch] = sorted(times[1:])[len(times[1:]) // 2]
    return out


def generation_limit(model, calls: list[dict]) -> dict:
    """Each call's generation against plain forward passes doing the same work: its distinct prompts prefilled, and
    its decode steps at their batch sizes and contexts (steps grouped by batch size, at their mean context)."""
    out = []
    for call in calls:
        # plain forward passes at the distinct prompts' lengths give the prefill rate; the limit is that rate over the
        # tokens this call computed (what sharing and carrying saved is reported apart, not counted as speed)
        lengths = [len(ids) for ids in call["prompts"]]
        plain_rate = sum(lengths) / plain_prefill_seconds(model, call["prompts"])
        prefill = call["prompt_tokens"] / plain_rate
        groups: dict[int, list[int]] = {}
        for batch, context in zip(call["batches"], call["contexts"], strict=True):
            groups.setdefault(batch, []).append(context)
        means = {batch: round(sum(ctx) / len(ctx)) for batch, ctx in groups.items()}
        step = plain_decode_step_seconds(model, max(call["prompts"], key=len), means) if groups else {}
        decode = sum(len(ctx) * step[batch] for batch, ctx in groups.items())
        decoded = sum(call["batches"])
        out.append(
            {
                "requests": call["requests"],
                "samples": call["samples"],
                "prompt_tokens": call["prompt_tokens"],
                "prompt_tokens_requested": call["prompt_tokens_requested"],
                "prompt_tokens_carried": call["prompt_tokens_carried"],
                "generated_tokens": call["generated_tokens"],
                "decode_steps": call["decode_steps"],
                "mean_decode_batch": round(decoded / max(1, call["decode_steps"]), 2),
                "prefill_tok_s": round(call["prompt_tokens"] / call["prefill_seconds"], 1),
                "prefill_limit_tok_s": round(plain_rate, 1),
                "decode_tok_s": round(decoded / call["decode_seconds"], 1) if call["decode_seconds"] else None,
                "decode_limit_tok_s": round(decoded / decode, 1) if decode else None,
                "seconds": round(call["seconds"], 2),
                "prefill_seconds": round(call["prefill_seconds"], 2),
                "decode_seconds": round(call["decode_seconds"], 2),
                "limit_seconds": round(prefill + decode, 2),
            }
        )
    seconds = sum(c["seconds"] for c in out)
    limit = sum(c["limit_seconds"] for c in out)
    return {
        "calls": out,
        "prompt_tokens": sum(c["prompt_tokens"] for c in out),
        "prompt_tokens_requested": sum(c["prompt_tokens_requested"] for c in out),
        # prefill tokens not computed: the K samples of a prompt share its one prefill, and a prompt carries the start
        # it shares with an earlier one (the carried part of the saving)
        "prefill_tokens_saved_by_sharing": sum(c["prompt_tokens_requested"] - c["prompt_tokens"] for c in out),
        "prefill_tokens_carried": sum(c["prompt_tokens_carried"] for c in out),
        "generator_seconds": round(seconds, 2),
        "limit_seconds": round(limit, 2),
        "fraction_of_limit": round(limit / seconds, 3) if seconds else None,
    }


def run_mode(model, tokenizer, pairs, args, lockstep: bool) -> dict:
    scorer_cfg = ScorerConfig(
        scorer_model=args.model,
        scorer_prefix_reuse=lockstep,
        scorer_carry_prefixes=32 if lockstep else 0,
        scorer_max_length=8192,
    )
    search_cfg = SearchConfig(
        search_num_expansion=args.k,
        search_max_step=args.max_step,
        search_stop_thresh=0.0,  # never stop early: both modes do every step
        search_max_new_tokens=args.max_new_tokens,
        search_edit_max_new_tokens=args.edit_max_new_tokens,
        search_min_rollout_tokens=1,
        search_repetition_penalty=1.1,
        search_edit_format="refine",
        search_segment_min_chars=40,
        search_min_gain="0",  # any improvement: no noise floor measured (an fp32 model copy) inside the timed map
    )
    generator = (TransformersGenerator if lockstep else GenerateGenerator)(model, tokenizer, batch_size=64)
    recorder = CallRecorder(generator) if lockstep else None
    # The demo model rarely closes its thinking within these budgets: keep such rows in the search (as the demo does)
    filters = FilterConfig(filter_end_of_thinking=False)
    searcher = Searcher(generator, Scorer(tokenizer, scorer_cfg, model=model), search_cfg, filters)
    ds = Dataset.from_list(pairs)
    features = ds.features.copy()
    features.update(search_features())
    start = time.perf_counter()
    out = ds.map(
        searcher,
        batched=True,
        batch_size=len(pairs) if lockstep else 1,
        with_indices=True,
        features=features,
        load_from_cache_file=False,
        keep_in_memory=True,
    )
    seconds = time.perf_counter() - start
    steps = sum(len(t) for t in out["trace"])
    return {
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(out) / seconds, 4),
        "generated_tokens": generator.stats["tokens"],
        "generated_tokens_per_s": round(generator.stats["tokens"] / searcher.stats["generator_seconds"], 1),
        "generator_seconds": round(searcher.stats["generator_seconds"], 2),
        "scorer_seconds": round(searcher.stats["scorer_seconds"], 2),
        "scored_tokens": searcher.stats["scored_tokens"],
        "generator_calls": searcher.stats["generator_calls"],
        "scorer_calls": searcher.stats["scorer_calls"],
        "search_steps": steps,
        "status": dict(sorted(Counter(out["status"]).items())),
        "search_seconds": round(searcher.stats["seconds"], 2),
        "calls": recorder.calls if recorder else None,
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEMO_MODEL)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max_step", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--edit_max_new_tokens", type=int, default=96)
    parser.add_argument("--runs", type=int, default=1, help="Interleaved runs of each mode; the best is reported.")
    parser.add_argument("--threads", default="auto", help="torch threads: auto (cores not busy elsewhere) or a number")
    parser.add_argument("--quick", action="store_true", help="4 rows, 2 steps, short budgets: ~2 minutes on 2 cores.")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.max_step, args.max_new_tokens, args.edit_max_new_tokens = 4, 2, 128, 48
    threads = set_torch_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model, tokenizer = load_causal_lm(args.model, dtype=dtype, device=str(device))
    pairs = [{"query": p["query"], "answer": p["answer"]} for p in demo_pairs()[: args.rows]]
    results: dict[str, list[dict]] = {"naive": [], "lockstep": []}
    for _ in range(args.runs):
        for mode in ("naive", "lockstep"):
            results[mode].append(run_mode(model, tokenizer, pairs, args, lockstep=mode == "lockstep"))
            print(mode, json.dumps(results[mode][-1]), file=sys.stderr)
    best = {mode: min(runs, key=lambda r: r["seconds"]) for mode, runs in results.items()}
    limit = generation_limit(model, best["lockstep"].pop("calls"))
    best["naive"].pop("calls")
    lock = best["lockstep"]
    other = lock["search_seconds"] - lock["generator_seconds"] - lock["scorer_seconds"]
    prefill = sum(c["prefill_seconds"] for c in limit["calls"])
    shares = {
        "generator_prefill": prefill / lock["search_seconds"],
        "generator_decode_and_sampling": (lock["generator_seconds"] - prefill) / lock["search_seconds"],
        "scorer": lock["scorer_seconds"] / lock["search_seconds"],
        "search_logic": other / lock["search_seconds"],
    }
    summary = {
        "model": args.model,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "rows": args.rows,
        "k": args.k,
        "max_step": args.max_step,
        "naive": best["naive"],
        "lockstep": best["lockstep"],
        "speedup": ratio(best["naive"]["seconds"], best["lockstep"]["seconds"]),
        "generation_speedup": ratio(best["naive"]["generator_seconds"], best["lockstep"]["generator_seconds"]),
        "scoring_speedup": ratio(best["naive"]["scorer_seconds"], best["lockstep"]["scorer_seconds"]),
        "threads": threads,
        "wall_time_share": {k: round(v, 3) for k, v in shares.items()},
        "generation_vs_limit": limit,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
